"""TFRecord shards of JPEG frames: the writer behind training/prepare.py, and their reader.

One tf.train.Example per video: "frames" (the JPEG of every frame, short side resized),
"label" (int64) and "name" (the source sample). Shards hold videos in a fixed shuffled
order, so that every shard mixes classes.

Crash safety and resuming. For split S, the writer first records its plan (source,
settings, the ordered sample list) in S.plan.json. Shard k is written to
S-0000k.tfrecord.tmp, renamed to S-0000k.tfrecord when complete, then described by
S-0000k.json (records, bytes, samples consumed, skipped ones). A shard counts as done
only when both exist and the sizes agree; a rerun keeps the done prefix, deletes the
rest and continues after the last done sample. manifest.json, the only file readers
trust, is renamed into place last. A killed run can leave a .tmp shard or a shard
without its .json; neither is listed in a manifest, and the next run removes them.
"""

import collections
import concurrent.futures
import glob
import json
import os

import cv2
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from tsm_keras.data.base import DataError, Source, add_noise
from tsm_keras.data.labels import write_labels
from tsm_keras.data.video import UnreadableError
from tsm_keras.files import atomic_write

MANIFEST = "manifest.json"
FORMAT = "tsm-keras-tfrecord"
VERSION = 1
FEATURES = {
    "frames": tf.io.VarLenFeature(tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
    "name": tf.io.FixedLenFeature([], tf.string),
}
AUTOTUNE = tf.data.AUTOTUNE


def encode_example(frames, label, name, quality=90):
    """A serialized tf.train.Example of one video: RGB uint8 frames (N, H, W, 3) as JPEGs."""
    jpegs = []
    for frame in frames:
        ok, data = cv2.imencode(
            ".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
        )
        if not ok:
            raise UnreadableError("JPEG encoding failed")
        jpegs.append(data.tobytes())
    feature = {
        "frames": tf.train.Feature(bytes_list=tf.train.BytesList(value=jpegs)),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
        "name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[name.encode("utf-8")])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_json(path, data):
    atomic_write(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


class TFRecordSource(Source):
    """TFRecord shards written by `write_tfrecords` (training/prepare.py), read through
    manifest.json. Everything runs in the graph: parse, pick the sampled frames' JPEGs,
    shuffle those (a buffer of small elements, not of whole videos), tf.io.decode_jpeg.
    The writer never writes a video without frames, so every record yields a clip."""

    def __init__(self, path, split="train", *, class_names=None, shuffle_buffer=512):
        super().__init__(path, split, [])
        self.shuffle_buffer = shuffle_buffer
        manifest = _read_json(os.path.join(self.path, MANIFEST))
        if manifest is None:
            raise DataError(
                f"{self.path}: no readable {MANIFEST}: prepare.py has not finished writing this "
                "folder; run it again with the same arguments to resume"
            )
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise DataError(f"{self.path}: {MANIFEST} is not a {FORMAT} v{VERSION} manifest")
        self.manifest = manifest
        self.class_names = list(manifest["class_names"])
        if not self.class_names:
            raise DataError(f"{self.path}: the manifest lists no classes")
        if class_names is not None and list(class_names) != self.class_names:
            raise DataError(
                f"{self.path}: its classes differ from the given class list "
                f"({len(self.class_names)} vs {len(class_names)} classes)"
            )
        splits = manifest["splits"]
        names = sorted(splits) if split == "all" else [split]
        if split != "all" and split not in splits:
            raise DataError(f"{self.path}: no '{split}' split (found: {sorted(splits)})")
        self.shards = []
        self._num = 0
        for name in names:
            for shard in splits[name]["shards"]:
                file = os.path.join(self.path, shard["file"])
                if not os.path.isfile(file) or os.path.getsize(file) != shard["bytes"]:
                    raise DataError(f"{file}: missing, or its size differs from {MANIFEST}")
                if shard["num_clips"]:
                    self.shards.append(file)
                    self._num += shard["num_clips"]
        if not self._num:
            raise DataError(f"{self.path}: split '{split}' has no clips")

    @property
    def num_clips(self):
        return self._num

    def clips(self, sampling, seed=None):
        ds = tf.data.Dataset.from_tensor_slices(self.shards)
        if seed is not None:
            ds = ds.shuffle(len(self.shards), seed=seed, reshuffle_each_iteration=True)
        ds = ds.interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(8, len(self.shards)),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
        ds = add_noise(ds, sampling, seed)

        def select(serialized, noise):
            example = tf.io.parse_single_example(serialized, FEATURES)
            jpegs = example["frames"].values
            idx = sampling.indices_tf(tf.size(jpegs), noise)
            unique, pos = tf.unique(tf.reshape(idx, [-1]))
            return tf.gather(jpegs, unique), pos, tf.cast(example["label"], tf.int32)

        def decode(jpegs, pos, label):
            # Plain decode: these JPEGs were encoded by the writer from decoded frames,
            # and TFRecord checksums catch damage on disk (a DataLossError naming no
            # clip: a damaged shard is a structural problem). The never-raising decoder
            # of the frame-folder source costs 50% more here.
            frames = tf.map_fn(
                lambda b: tf.io.decode_jpeg(b, channels=3),
                jpegs,
                fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8),
            )
            frames = tf.gather(frames, pos)
            shape = tf.shape(frames)
            frames = tf.reshape(frames, [sampling.clips, sampling.num_segments, shape[1], shape[2], 3])
            return frames, label

        ds = ds.map(select, num_parallel_calls=AUTOTUNE)
        if seed is not None:
            ds = ds.shuffle(max(1, min(self._num, self.shuffle_buffer)), seed=seed, reshuffle_each_iteration=True)
        return ds.map(decode, num_parallel_calls=AUTOTUNE)


def _shard_name(split, k):
    return f"{split}-{k:05d}"


def _done_shards(out_dir, split, num_items):
    """The sidecars of the consecutive valid shards 0, 1, ... of `split`."""
    done = []
    consumed = 0
    while True:
        name = _shard_name(split, len(done))
        meta = _read_json(os.path.join(out_dir, name + ".json"))
        file = os.path.join(out_dir, name + ".tfrecord")
        if (
            meta is None
            or not os.path.isfile(file)
            or os.path.getsize(file) != meta.get("bytes")
            or consumed + meta.get("consumed", 0) > num_items
        ):
            return done
        consumed += meta["consumed"]
        done.append(meta)


def _remove_after(out_dir, split, keep):
    """Deletes temporary files and shards numbered `keep` or more: leftovers of a killed run."""
    prefix = os.path.join(out_dir, f"{split}-")
    for path in glob.glob(glob.escape(prefix) + "*"):
        stem = os.path.basename(path)[len(split) + 1 :].split(".")[0]
        if path.endswith(".tmp") or ".tmp-" in path or (stem.isdigit() and int(stem) >= keep):
            os.remove(path)


class _ShardWriter:
    """Collects one shard under a temporary name; `close` renames it and writes its sidecar."""

    def __init__(self, out_dir, split, k):
        self.out_dir = out_dir
        self.name = _shard_name(split, k)
        self.tmp = os.path.join(out_dir, self.name + ".tfrecord.tmp")
        self.writer = tf.io.TFRecordWriter(self.tmp)
        self.bytes = 0
        self.num_clips = 0
        self.consumed = 0
        self.per_class = collections.Counter()
        self.skipped = []

    def write(self, record, class_name):
        self.writer.write(record)
        self.bytes += len(record) + 16  # TFRecord framing: length, two CRCs
        self.num_clips += 1
        self.consumed += 1
        self.per_class[class_name] += 1

    def skip(self, name, reason):
        self.consumed += 1
        self.skipped.append({"file": name, "reason": reason})

    def close(self):
        self.writer.close()
        with open(self.tmp, "rb+") as f:
            os.fsync(f.fileno())
        final = os.path.join(self.out_dir, self.name + ".tfrecord")
        os.replace(self.tmp, final)
        meta = {
            "file": self.name + ".tfrecord",
            "bytes": os.path.getsize(final),
            "num_clips": self.num_clips,
            "consumed": self.consumed,
            "per_class": dict(self.per_class),
            "skipped": self.skipped,
        }
        _write_json(os.path.join(self.out_dir, self.name + ".json"), meta)
        return meta


def _encode(source, index, label, name, short_side, quality):
    try:
        frames = source.read_all_frames(index, short_side)
        return encode_example(frames, label, name, quality), None
    except UnreadableError as e:
        return None, str(e)
    except Exception as e:  # noqa: BLE001 - one odd file must not stop a long conversion
        return None, f"{type(e).__name__}: {e}"


def _ordered(executor, fn, items, ahead):
    """executor.map with at most `ahead` tasks in flight (bounded memory), results in order."""
    pending = collections.deque()
    for item in items:
        pending.append(executor.submit(fn, *item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _plan(source, out_dir, split, short_side, quality, shard_mb, seed):
    """What a split's conversion will write; raises if out_dir holds another plan for it."""
    names = source.names
    plan = {
        "source": os.path.abspath(source.path),
        "class_names": source.class_names,
        "settings": {"short_side": short_side, "jpeg_quality": quality, "shard_mb": shard_mb, "seed": seed},
        "items": [names[i] for i in np.random.RandomState(seed).permutation(len(names))],
    }
    plan_path = os.path.join(out_dir, f"{split}.plan.json")
    old = _read_json(plan_path)
    if old is not None and old != plan:
        raise DataError(
            f"{out_dir}: split '{split}' was started from another source or with other "
            f"settings ({plan_path}); delete the folder or write to a new one"
        )
    return plan


def write_split(
    source, out_dir, split, *, short_side=256, quality=90, shard_mb=128, workers=None, seed=0, progress=True
):
    """Writes (or resumes writing) the shards of one split; returns its manifest entry."""
    plan = _plan(source, out_dir, split, short_side, quality, shard_mb, seed)
    listed = [
        {"file": _relative(file, source.path), "reason": reason}  # not even a sample
        for file, reason in source.skipped.events()
    ]
    names = source.names
    order = np.random.RandomState(seed).permutation(len(names)).tolist()
    plan_path = os.path.join(out_dir, f"{split}.plan.json")
    if not os.path.exists(plan_path):
        _remove_after(out_dir, split, 0)
        _write_json(plan_path, plan)
    done = _done_shards(out_dir, split, len(order))
    _remove_after(out_dir, split, len(done))
    start = sum(meta["consumed"] for meta in done)
    limit = int(shard_mb * 2**20)
    workers = workers or os.cpu_count() or 1
    todo = [(source, i, source.labels[i], names[i], short_side, quality) for i in order[start:]]
    bar = tqdm(total=len(order), initial=start, desc=f"{split}", unit="video", disable=not progress)
    shard = None
    try:
        with concurrent.futures.ThreadPoolExecutor(workers) as executor:
            for (_, _, label, name, _, _), (record, reason) in zip(
                todo, _ordered(executor, _encode, todo, 2 * workers)
            ):
                if shard is None:
                    shard = _ShardWriter(out_dir, split, len(done))
                if record is None:
                    shard.skip(name, reason)
                    source.skipped.add(name, reason)
                else:
                    if shard.num_clips and shard.bytes + len(record) + 16 > limit:
                        done.append(shard.close())
                        shard = _ShardWriter(out_dir, split, len(done))
                    shard.write(record, source.class_names[label])
                bar.update(1)
                bar.set_postfix(shards=len(done) + 1, skipped=sum(len(m["skipped"]) for m in done) + len(shard.skipped))
            if shard is not None:
                done.append(shard.close())
                shard = None
    finally:
        bar.close()
        if shard is not None:  # interrupted: drop the partial shard (a hard kill leaves it; reruns remove it)
            shard.writer.close()
            os.remove(shard.tmp)
    per_class = collections.Counter()
    for meta in done:
        per_class.update(meta["per_class"])
    return {
        "source": plan["source"],
        "settings": plan["settings"],
        "num_clips": sum(meta["num_clips"] for meta in done),
        "per_class": {c: per_class.get(c, 0) for c in source.class_names},
        "shards": [{"file": m["file"], "num_clips": m["num_clips"], "bytes": m["bytes"]} for m in done],
        "skipped": listed + [s for meta in done for s in meta["skipped"]],
    }


def _relative(file, root):
    if os.path.isdir(root) and os.path.abspath(file).startswith(os.path.abspath(root) + os.sep):
        return os.path.relpath(file, root)
    return file


def write_tfrecords(sources, out_dir, **options):
    """Converts sources to TFRecord shards in `out_dir`, resuming an interrupted run.

    Args:
        sources: {split: Source} (video-folder or list-file sources with the same classes).
        out_dir: the output folder; splits already in its manifest are kept.
        **options: short_side (256; resize the short side, up or down; None keeps it),
            quality (JPEG, 90), shard_mb (bound on shard size, 128), workers (decoding
            threads, all cores), seed (order of videos in shards, 0), progress (tqdm bar).

    Returns:
        The manifest (also written to out_dir/manifest.json, with labels.txt).
    """
    if not sources:
        raise ValueError("`sources` must name at least one split")
    class_names = None
    for split, source in sources.items():
        if not hasattr(source, "read_all_frames"):
            raise ValueError(f"Split {split!r}: {type(source).__name__} cannot be converted")
        if class_names is not None and source.class_names != class_names:
            raise DataError(f"{source.path}: its classes differ from the other splits'")
        class_names = source.class_names
    os.makedirs(out_dir, exist_ok=True)
    settings = {k: options.get(k, d) for k, d in (("short_side", 256), ("quality", 90), ("shard_mb", 128), ("seed", 0))}
    for split, source in sources.items():
        _plan(source, out_dir, split, **settings)  # refuse before touching anything
    manifest_path = os.path.join(out_dir, MANIFEST)
    manifest = _read_json(manifest_path)
    if manifest is not None and manifest.get("class_names") != class_names:
        if set(manifest["splits"]) - set(sources):
            raise DataError(f"{out_dir}: its other splits have different classes")
        manifest = None
    if manifest is None:
        manifest = {"format": FORMAT, "version": VERSION, "class_names": class_names, "splits": {}}
    if os.path.exists(manifest_path):
        os.remove(manifest_path)  # shards may change now: readers must wait for the new one
    for split, source in sources.items():
        manifest["splits"][split] = write_split(source, out_dir, split, **options)
    write_labels(os.path.join(out_dir, "labels.txt"), class_names)
    _write_json(manifest_path, manifest)
    return manifest
