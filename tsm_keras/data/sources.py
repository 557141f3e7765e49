"""Data sources: a folder of videos, a TSM/mmaction2 list of JPEG-frame folders, TFRecords.

`open_source(path, split)` picks the kind from what `path` is:
- a folder with manifest.json: TFRecord shards written by training/prepare.py;
- another folder: videos in one subfolder per class, split by train/ val/ test/
  folders, by split files (train.txt, val.txt: one relative video path per line), or,
  with neither, by a fixed hash of each file name (`val_fraction` of every class is val);
- a file: a list file, one `frames_dir num_frames label` per line.
"""

import hashlib
import os

import cv2
import numpy as np
import tensorflow as tf

from tsm_keras.data import video
from tsm_keras.data.base import DataError, Source, add_noise, drop_bad, report_if_bad
from tsm_keras.data.jpeg import decode_jpeg_frames
from tsm_keras.data.labels import read_labels
from tsm_keras.data.tfrecord import MANIFEST, TFRecordSource

SPLITS = ("train", "val", "test", "all")
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "validation"), "test": ("test",)}
AUTOTUNE = tf.data.AUTOTUNE


def open_source(
    path,
    split="train",
    *,
    class_names=None,
    short_side=256,
    val_fraction=0.1,
    split_file=None,
    frame_template="img_{:05d}.jpg",
    start_index=1,
    frames_root=None,
    labels_file=None,
    shuffle_buffer=512,
):
    """Opens a data set and checks its structure.

    Args:
        path: a folder of videos, a list file, or a folder written by prepare.py.
        split: "train", "val", "test" or "all" (a list file is one split: ignored).
        class_names: the class list to label with (e.g. the training source's, for a
            validation source); a class the data has that is not in it is an error.
        short_side: videos: decoded frames with a larger short side are shrunk to it.
        val_fraction: videos without split folders or files: the share of each class
            held out, by a fixed hash of the file name, as "val".
        split_file: videos: a file of relative video paths that defines the split.
        frame_template, start_index: list files: frame file names, e.g. "img_{:05d}.jpg"
            from 1 (Kinetics, UCF101, HMDB51), "{:05d}.jpg" (SSv1, Jester), "{:06d}.jpg" (SSv2).
        frames_root: list files: the folder frame paths are relative to (default: the
            list file's folder).
        labels_file: list files: class names, one per line (default: labels.txt beside the
            list; otherwise the classes are named "0".."K-1").
        shuffle_buffer: TFRecords: shuffle buffer in clips, after sampling.

    Returns:
        A `Source`.

    Raises:
        DataError: for structural problems (no such path, no classes, no samples, a label
            outside the class list, an unfinished TFRecord folder).
    """
    path = os.fspath(path)
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}. Received: split={split!r}")
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file or folder")
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, MANIFEST)) or any(
            name.endswith((".tfrecord", ".tfrecord.tmp")) for name in os.listdir(path)
        ):
            return TFRecordSource(path, split, class_names=class_names, shuffle_buffer=shuffle_buffer)
        return VideoFolderSource(
            path,
            split,
            class_names=class_names,
            short_side=short_side,
            val_fraction=val_fraction,
            split_file=split_file,
        )
    return FrameListSource(
        path,
        split,
        class_names=class_names,
        frame_template=frame_template,
        start_index=start_index,
        frames_root=frames_root,
        labels_file=labels_file,
    )


def available_splits(path):
    """The splits `open_source(path, split)` can open, for prepare.py's default."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return ["train"]  # a list file is one split
    if os.path.exists(os.path.join(path, MANIFEST)):
        return sorted(TFRecordSource(path, "all").manifest["splits"])
    found = [s for s, names in SPLIT_FOLDERS.items() if any(os.path.isdir(os.path.join(path, d)) for d in names)]
    found = found or [s for s in SPLIT_FOLDERS if os.path.isfile(os.path.join(path, f"{s}.txt"))]
    return found or ["train", "val"]


def _visible(names):
    return sorted(n for n in names if not n.startswith("."))


def _subfolders(path):
    return [n for n in _visible(os.listdir(path)) if os.path.isdir(os.path.join(path, n))]


def _files_under(folder):
    """Every non-hidden file below `folder` (recursively), sorted; broken links included."""
    found = []
    for here, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = _visible(dirs)
        found.extend(os.path.join(here, f) for f in _visible(files))
    return sorted(found)


def _held_out(files, fraction):
    """The files of one class that form the validation part: a fixed share, chosen by hash."""
    if len(files) < 2 or fraction <= 0:
        return set()
    count = min(max(1, round(len(files) * fraction)), len(files) - 1)
    ranked = sorted(files, key=lambda f: (hashlib.sha1(f.encode()).hexdigest(), f))
    return set(ranked[:count])


def _check_classes(path, found, class_names):
    if not found:
        raise DataError(f"{path}: no classes (expected one subfolder per class, each holding videos)")
    if class_names is None:
        return sorted(found)
    unknown = sorted(set(found) - set(class_names))
    if unknown:
        raise DataError(f"{path}: class folders {unknown} are not in the given class list ({len(class_names)} classes)")
    return list(class_names)


class VideoFolderSource(Source):
    """Videos in one subfolder per class, decoded with OpenCV inside tf.data.

    Decoding runs in `tf.numpy_function` with parallel calls: OpenCV releases the GIL
    while it decodes, so calls run on all cores. See `open_source` for the layouts.
    """

    def __init__(self, path, split="train", *, class_names=None, short_side=256, val_fraction=0.1, split_file=None):
        super().__init__(path, split, [])
        self.short_side = short_side
        self._counts = video.FrameCounts()
        self._bad = {}
        root = self.path
        split_dirs = {
            s: os.path.join(root, d)
            for s, names in SPLIT_FOLDERS.items()
            for d in names
            if os.path.isdir(os.path.join(root, d))
        }
        split_files = {
            s: os.path.join(root, f"{s}.txt") for s in SPLIT_FOLDERS if os.path.isfile(os.path.join(root, f"{s}.txt"))
        }
        if split_dirs and split_file is None:
            self.layout = "split folders"
            found = sorted({c for d in split_dirs.values() for c in _subfolders(d)})
            self.class_names = _check_classes(root, found, class_names)
            if split == "all":
                tops = list(split_dirs.values())
            elif split in split_dirs:
                tops = [split_dirs[split]]
            else:
                raise DataError(f"{root}: no '{split}' folder (split folders found: {sorted(split_dirs)})")
            candidates = [(f, c) for top in tops for c in _subfolders(top) for f in _files_under(os.path.join(top, c))]
        elif split_file is not None or split_files:
            self.layout = "split files"
            self.class_names = _check_classes(root, _subfolders(root), class_names)
            if split_file is None and split not in split_files:
                raise DataError(
                    f"{root}: no split file '{split}.txt' (found: "
                    f"{sorted(os.path.basename(f) for f in split_files.values())})"
                )
            candidates = self._read_split_file(split_file or split_files[split])
        else:
            self.layout = "class folders"
            self.class_names = _check_classes(root, _subfolders(root), class_names)
            if split == "test":
                raise DataError(f"{root}: no test split (no test/ folder or test.txt)")
            candidates = []
            for c in _subfolders(root):
                files = _files_under(os.path.join(root, c))
                held = _held_out([os.path.relpath(f, root) for f in files], val_fraction)
                for f in files:
                    in_val = os.path.relpath(f, root) in held
                    if split == "all" or in_val == (split == "val"):
                        candidates.append((f, c))
        self.files, self.labels = [], []
        label_of = {c: i for i, c in enumerate(self.class_names)}
        for f, c in candidates:
            ext = os.path.splitext(f)[1].lower()
            if ext in video.VIDEO_EXTENSIONS:
                self.files.append(f)
                self.labels.append(label_of[c])
            else:
                self.skipped.add(f, f"not a video file (extension {ext or 'none'!r})")
        if not self.files:
            raise DataError(f"{root}: no videos in split '{split}' ({self.layout} layout)")

    def _read_split_file(self, list_path):
        candidates = []
        with open(list_path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                rel = line if os.path.exists(os.path.join(self.path, line)) else line.split()[0]
                parts = os.path.normpath(rel).split(os.sep)
                if len(parts) < 2 or parts[0] not in self.class_names:
                    self.skipped.add(f"{list_path}:{lineno}", f"'{rel}' is not inside a class folder of {self.path}")
                    continue
                candidates.append((os.path.join(self.path, rel), parts[0]))
        return candidates

    @property
    def num_clips(self):
        return len(self.files)

    @property
    def names(self):
        """Sample names (paths relative to the folder), in order."""
        return [os.path.relpath(f, self.path) for f in self.files]

    def read_all_frames(self, index, short_side=256):
        """Every frame of sample `index` (RGB uint8), for prepare.py. Raises UnreadableError."""
        return video.read_all_frames(self.files[index], short_side)

    def _load(self, sampling, path, noise):
        path = path.decode("utf-8")
        empty = np.zeros([sampling.clips * sampling.num_segments, 1, 1, 3], np.uint8)
        reason = self._bad.get(path)
        if reason is None:
            try:
                return video.read_clip(path, sampling, noise, self.short_side, self._counts), True
            except video.UnreadableError as e:
                reason = str(e)
            except Exception as e:  # noqa: BLE001 - one odd file must never end an epoch
                reason = f"{type(e).__name__}: {e}"
            self._bad[path] = reason
        self.skipped.add(path, reason)
        return empty, False

    def clips(self, sampling, seed=None):
        ds = tf.data.Dataset.from_tensor_slices((tf.constant(self.files), tf.constant(self.labels, tf.int32)))
        if seed is not None:
            ds = ds.shuffle(len(self.files), seed=seed, reshuffle_each_iteration=True)
        ds = add_noise(ds, sampling, seed)

        def load(path, label, noise):
            frames, ok = tf.numpy_function(lambda p, u: self._load(sampling, p, u), [path, noise], [tf.uint8, tf.bool])
            shape = tf.shape(frames)
            frames = tf.reshape(frames, [sampling.clips, sampling.num_segments, shape[1], shape[2], 3])
            return frames, label, tf.ensure_shape(ok, [])

        return drop_bad(ds.map(load, num_parallel_calls=AUTOTUNE))


class FrameListSource(Source):
    """A TSM/mmaction2 list file over folders of JPEG frames (`frames_dir num_frames label`).

    Frame files are read in Python (to name a missing one) and decoded by
    tf.io.decode_jpeg in the graph. A line with the wrong number of fields, a bad frame
    count or a label that is not a number nor a known class name is skipped; an integer
    label outside the class list is an error (the list and the class list disagree).
    """

    def __init__(
        self,
        path,
        split="train",
        *,
        class_names=None,
        frame_template="img_{:05d}.jpg",
        start_index=1,
        frames_root=None,
        labels_file=None,
    ):
        super().__init__(path, split, [])
        try:
            frame_template.format(start_index)
        except (IndexError, KeyError, ValueError) as e:
            raise ValueError(
                f"`frame_template` must format one integer, like 'img_{{:05d}}.jpg'. "
                f"Received: frame_template={frame_template!r} ({e})"
            ) from None
        self.frame_template = frame_template
        self.start_index = start_index
        self.frames_root = frames_root or os.path.dirname(os.path.abspath(self.path))
        if class_names is None:
            beside = os.path.join(os.path.dirname(os.path.abspath(self.path)), "labels.txt")
            labels_file = labels_file or beside
            if os.path.isfile(labels_file):
                class_names = read_labels(labels_file)
        self.dirs, self.frame_counts, self.labels = [], [], []
        rows = self._parse(class_names)
        if class_names is None:
            top = max((label for _, _, label in rows), default=-1)
            class_names = [str(i) for i in range(top + 1)]
        self.class_names = list(class_names)
        for d, n, label in rows:
            if not 0 <= label < len(self.class_names):
                raise DataError(
                    f"{self.path}: label {label} of '{d}' is outside the class list "
                    f"({len(self.class_names)} classes): the list and the class names disagree"
                )
            self.dirs.append(d)
            self.frame_counts.append(n)
            self.labels.append(label)
        if not self.dirs:
            raise DataError(f"{self.path}: no usable lines (expected 'frames_dir num_frames label')")

    def _parse(self, class_names):
        rows = []
        try:
            f = open(self.path, encoding="utf-8")
        except (OSError, UnicodeError) as e:
            raise DataError(f"{self.path}: cannot read the list file ({e})") from None
        with f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                where = f"{self.path}:{lineno}"
                parts = line.rsplit(None, 2)
                if len(parts) != 3:
                    self.skipped.add(where, f"expected 'frames_dir num_frames label', got {line!r}")
                    continue
                d, n, label = parts
                try:
                    n = int(n)
                except ValueError:
                    n = 0
                if n <= 0:
                    self.skipped.add(where, f"num_frames must be a positive integer, got {parts[1]!r}")
                    continue
                try:
                    label = int(label)
                except ValueError:
                    if class_names is None or label not in class_names:
                        self.skipped.add(where, f"unknown label {label!r}")
                        continue
                    label = list(class_names).index(label)
                rows.append((os.path.join(self.frames_root, d), n, label))
        return rows

    @property
    def num_clips(self):
        return len(self.dirs)

    @property
    def names(self):
        return list(self.dirs)

    def frame_path(self, folder, index):
        """The file of 0-based frame `index` in `folder`."""
        return os.path.join(folder, self.frame_template.format(index + self.start_index))

    def read_all_frames(self, index, short_side=256):
        """Every listed frame of sample `index` (RGB uint8), for prepare.py."""
        folder = self.dirs[index]
        if not os.path.isdir(folder):
            raise video.UnreadableError("frame folder not found")
        frames, first = [], None
        for i in range(self.frame_counts[index]):
            path = self.frame_path(folder, i)
            image = cv2.imread(path, cv2.IMREAD_COLOR) if os.path.isfile(path) else None
            if image is None:
                raise video.UnreadableError(f"missing or unreadable frame {os.path.basename(path)}")
            image = video.fit_short_side(video.to_rgb(image), short_side, upscale=True)
            if first is not None and image.shape != first.shape:
                raise video.UnreadableError(f"frame {os.path.basename(path)} differs in size from the first frame")
            first = image if first is None else first
            frames.append(image)
        return np.stack(frames)

    def _read(self, folder, indices):
        """Bytes and file names of the frames at `indices`; ok False after recording why not."""
        folder = folder.decode("utf-8")
        names = [os.path.basename(self.frame_path(folder, i)) for i in indices.tolist()]
        blobs = []
        reason = None
        if not os.path.isdir(folder):
            reason = "frame folder not found"
        else:
            for name in names:
                try:
                    with open(os.path.join(folder, name), "rb") as f:
                        blob = f.read()
                except OSError:
                    reason = f"missing frame {name}"
                    break
                if not blob:
                    reason = f"empty frame file {name}"
                    break
                blobs.append(blob)
        names = np.array(names, dtype=object)
        if reason is not None:
            self.skipped.add(folder, reason)
            return np.array([b""] * len(names), dtype=object), names, False
        return np.array(blobs, dtype=object), names, True

    def clips(self, sampling, seed=None):
        ds = tf.data.Dataset.from_tensor_slices(
            (tf.constant(self.dirs), tf.constant(self.frame_counts, tf.int64), tf.constant(self.labels, tf.int32))
        )
        if seed is not None:
            ds = ds.shuffle(len(self.dirs), seed=seed, reshuffle_each_iteration=True)
        ds = add_noise(ds, sampling, seed)

        def decode(folder, jpegs, names):
            frames, ok, bad, why = decode_jpeg_frames(jpegs)
            reason = tf.strings.join([tf.gather(names, tf.maximum(bad, 0)), why], ": ")
            return frames, report_if_bad(self.skipped, ok, folder, reason)

        def load(folder, num_frames, label, noise):
            idx = sampling.indices_tf(num_frames, noise)
            unique, pos = tf.unique(tf.reshape(idx, [-1]))
            jpegs, names, read_ok = tf.numpy_function(self._read, [folder, unique], [tf.string, tf.string, tf.bool])
            jpegs = tf.ensure_shape(jpegs, [None])
            names = tf.ensure_shape(names, [None])
            frames, ok = tf.cond(
                tf.ensure_shape(read_ok, []),
                lambda: decode(folder, jpegs, names),
                lambda: (tf.zeros([tf.size(unique), 1, 1, 3], tf.uint8), tf.constant(False)),
            )
            frames = tf.gather(frames, pos)
            shape = tf.shape(frames)
            frames = tf.reshape(frames, [sampling.clips, sampling.num_segments, shape[1], shape[2], 3])
            return frames, label, ok

        return drop_bad(ds.map(load, num_parallel_calls=AUTOTUNE))
