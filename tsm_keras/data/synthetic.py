"""The built-in default data set, ``temporal_shapes``: ten classes that only the order of frames tells apart.

Five motions, each paired with its time reversal:

    00_move_right / 01_move_left                  a shape crosses the frame
    02_move_down / 03_move_up
    04_grow / 05_shrink                           a shape's radius ramps up
    06_rotate_clockwise / 07_rotate_counterclockwise
    08_brighten / 09_darken                       the light on the whole scene ramps up

A clip of the second class of a pair is a clip of the first with its frames reversed, drawn with
the same per-clip randomness, so the bag of frames of a pair's two classes has exactly one
distribution: a model that averages per-frame predictions (TSN) cannot beat 50% inside a pair,
whatever it learns, while a model that relates neighbouring frames (TSM) can reach 100%.

Which pair a clip belongs to shows in a single frame: moving shapes are motion-blurred along their
axis (symmetrically, so the blur gives the axis, not the sign), only growing shapes are discs, only
rotating shapes carry a marker dot, and the light pair has no shape. So TSN can reach the
order-blind ceiling of 50%, and only the order of frames separates TSM from it.

Each forward process is also stationary in time: positions wrap around (the frame is a torus:
what leaves on one side shows on the other), angles start at a uniform phase, and the radius and the
light are sawtooth ramps with a uniform phase (once per period the radius or the light drops back
and ramps up again). So even one frame taken at a known index says nothing about the direction;
only the change between frames does.

The data set is written once as MJPG .avi files in the folder-per-class layout under
``$TSM_KERAS_CACHE/temporal_shapes-v2`` (``TSM_KERAS_CACHE`` defaults to ``~/.cache/tsm_keras``),
so the default training run reads it through the same OpenCV decoding path as a user's videos.

Example:

>>> clip = render_clip(CLASS_NAMES.index("00_move_right"), clip_seed=7, frames=16, size=48)
>>> clip.shape, clip.dtype
((16, 48, 48, 3), dtype('uint8'))
>>> bool((render_clip(1, clip_seed=7, frames=16, size=48) == clip[::-1]).all())
True
"""

import json
import os
import shutil
import socket
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

CLASS_NAMES = (
    "00_move_right",
    "01_move_left",
    "02_move_down",
    "03_move_up",
    "04_grow",
    "05_shrink",
    "06_rotate_clockwise",
    "07_rotate_counterclockwise",
    "08_brighten",
    "09_darken",
)
"""Class names in label order; they are also the folder names, and sorted() keeps this order."""

NAME = "temporal_shapes"
VERSION = 2
SPLITS = ("train", "val")
DEFAULT_TRAIN_PER_CLASS = 200
DEFAULT_VAL_PER_CLASS = 50
DEFAULT_FRAMES = 16
DEFAULT_SIZE = 80

# MJPG in AVI: every frame is coded on its own (no motion prediction), so a decoded reversed clip
# is exactly the reversed decoded clip and the pairing survives compression. mp4v (.mp4) codes
# P-frames, whose error depends on the frame order (up to 50 grey levels between a decoded reversed
# clip and the reversed decoded clip), and its error is higher; its files are smaller.
FOURCC = "MJPG"
SUFFIX = ".avi"
FPS = 8

_MARKER = "DONE.json"
_DESIGN_SIZE = 80  # pixel quantities below are for 80 px frames and scale with `size`.

_MOVE_X, _MOVE_Y, _GROW, _ROTATE, _BRIGHTEN = range(5)  # forward process of each pair


def partner(label):
    """The label of the time-reversed class: 0 <-> 1, 2 <-> 3, ..."""
    return int(label) ^ 1


def render_clip(label, clip_seed, *, frames=DEFAULT_FRAMES, size=DEFAULT_SIZE):
    """Render one clip of class `label` from its per-clip randomness.

    The two classes of a pair share the per-clip randomness: `render_clip(partner(label), s)` is
    `render_clip(label, s)` with its frames reversed.

    Args:
        label: class index into CLASS_NAMES.
        clip_seed: anything `np.random.default_rng` takes (an int, or a tuple of ints); it fixes
            the shape, colours, background, motion and noise.
        frames: number of frames T.
        size: height and width of the frames in pixels.

    Returns:
        uint8 RGB array of shape (T, size, size, 3).
    """
    label = _check_label(label)
    frames = _check_int("frames", frames, 2)
    size = _check_int("size", size, 16)
    pair, reverse = divmod(label, 2)
    clip = _render_forward(pair, np.random.default_rng(clip_seed), frames, size)
    return np.ascontiguousarray(clip[::-1]) if reverse else clip


def dataset_clip_seed(seed, split, label, index):
    """The per-clip randomness of file `index` of class `label` in `split` of the data set.

    Both classes of a pair get the same one: the data set holds each forward clip and its reversal.
    """
    return (int(seed), SPLITS.index(split), _check_label(label) // 2, int(index))


def clip_path(root, split, label, index):
    """Where the data set at `root` keeps file `index` of class `label` in `split`."""
    name = CLASS_NAMES[_check_label(label)]
    return Path(root) / split / name / f"{name}_{index:04d}{SUFFIX}"


def default_cache_dir():
    """``$TSM_KERAS_CACHE``, or ``~/.cache/tsm_keras`` when it is not set."""
    return Path(os.environ.get("TSM_KERAS_CACHE") or Path.home() / ".cache" / "tsm_keras")


def ensure_default_dataset(
    root=None,
    *,
    seed=0,
    train_per_class=DEFAULT_TRAIN_PER_CLASS,
    val_per_class=DEFAULT_VAL_PER_CLASS,
    frames=DEFAULT_FRAMES,
    size=DEFAULT_SIZE,
    progress=True,
):
    """Generate the ``temporal_shapes`` data set once, and return its folder.

    Layout: ``root/{train,val}/<class name>/<class name>_NNNN.avi``, ``root/labels.txt`` (the class
    names in label order, which is also their sorted order) and ``root/DONE.json`` (what was made).
    The files are written into a temporary sibling folder that is renamed to `root` only when
    complete, so a killed run never leaves a `root` that looks finished; temporary folders of runs
    that died are removed by the next call. A `root` that is already complete is returned at once.

    Args:
        root: folder of the data set. Default: ``default_cache_dir() / "temporal_shapes-v2"`` for
            the default arguments, and a name that spells out the arguments otherwise.
        seed: the data set's seed; the same seed gives the same decoded frames.
        train_per_class: clips per class in ``train``.
        val_per_class: clips per class in ``val``.
        frames: frames per clip.
        size: frame height and width in pixels.
        progress: show a progress bar while generating.

    Returns:
        pathlib.Path of the complete data set.

    Raises:
        ValueError: `root` holds a data set made with other arguments.
        FileExistsError: `root` exists but is not a data set made here.
    """
    spec = {
        "name": NAME,
        "version": VERSION,
        "seed": int(seed),
        "train_per_class": _check_int("train_per_class", train_per_class, 1),
        "val_per_class": _check_int("val_per_class", val_per_class, 1),
        "frames": _check_int("frames", frames, 2),
        "size": _check_int("size", size, 16),
        "classes": list(CLASS_NAMES),
        "fourcc": FOURCC,
        "fps": FPS,
    }
    root = Path(root) if root is not None else default_cache_dir() / _default_folder_name(spec)
    if _is_complete(root, spec):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_partials(root)

    partial = root.with_name(f".{root.name}.partial-{_host()}-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        start = time.perf_counter()
        _generate(partial, spec, progress)
        done = dict(spec, seconds=round(time.perf_counter() - start, 1))
        (partial / _MARKER).write_text(json.dumps(done, indent=2) + "\n")
        try:
            partial.rename(root)
        except OSError:
            if not _is_complete(root, spec):  # not a concurrent run that finished first
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return root


# -- generation ---------------------------------------------------------------------------------


def _generate(folder, spec, progress):
    counts = {"train": spec["train_per_class"], "val": spec["val_per_class"]}
    frames, size = spec["frames"], spec["size"]
    for split in SPLITS:
        for name in CLASS_NAMES:
            (folder / split / name).mkdir(parents=True)
    (folder / "labels.txt").write_text("".join(name + "\n" for name in sorted(CLASS_NAMES)))

    total = len(CLASS_NAMES) * sum(counts.values())
    with tqdm(total=total, desc=f"Generating {NAME}", unit="clip", disable=not progress) as bar:
        checked = False
        for split in SPLITS:
            for first in range(0, len(CLASS_NAMES), 2):
                for index in range(counts[split]):
                    clip_seed = dataset_clip_seed(spec["seed"], split, first, index)
                    clip = render_clip(first, clip_seed, frames=frames, size=size)
                    for label, frames_in_order in ((first, clip), (first + 1, clip[::-1])):
                        path = clip_path(folder, split, label, index)
                        _write_video(path, frames_in_order)
                        if not checked:
                            _check_round_trip(path, frames_in_order)
                            checked = True
                    bar.update(2)


def _write_video(path, clip):
    height, width = clip.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC), FPS, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {FOURCC} {SUFFIX} files here: {path}")
    try:
        for frame in clip:
            writer.write(np.ascontiguousarray(frame[..., ::-1]))  # RGB -> BGR
    finally:
        writer.release()


def _check_round_trip(path, clip):
    """Fail early, with a clear message, where this OpenCV build writes files it cannot read back."""
    capture = cv2.VideoCapture(str(path))
    decoded = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        decoded.append(frame[..., ::-1])
    capture.release()
    if len(decoded) != len(clip):
        raise RuntimeError(f"{path}: wrote {len(clip)} frames, OpenCV decoded {len(decoded)}")
    error = np.abs(np.stack(decoded).astype(np.int16) - clip).mean()
    if error > 16:  # measured here: up to about 9 on clips of fine stripes
        raise RuntimeError(f"{path}: decoded frames differ from the written ones by {error:.1f} on average")


# -- the cache folder ---------------------------------------------------------------------------


def _default_folder_name(spec):
    folder = f"{NAME}-v{VERSION}"
    defaults = (0, DEFAULT_TRAIN_PER_CLASS, DEFAULT_VAL_PER_CLASS, DEFAULT_FRAMES, DEFAULT_SIZE)
    chosen = (spec["seed"], spec["train_per_class"], spec["val_per_class"], spec["frames"], spec["size"])
    if chosen != defaults:
        folder += "-seed{}-train{}-val{}-t{}-{}px".format(*chosen)
    return folder


def _is_complete(root, spec):
    marker = root / _MARKER
    if not marker.is_file():
        if root.exists() and not (root.is_dir() and not any(root.iterdir())):  # empty: ours to fill
            raise FileExistsError(
                f"{root} exists but is not a complete {NAME} data set (no {_MARKER}); delete it or pass another `root`."
            )
        return False
    made = json.loads(marker.read_text())
    differing = {key: made.get(key) for key in spec if made.get(key) != spec[key]}
    if differing:
        raise ValueError(
            f"{root} holds a {NAME} data set made with {differing}, not with "
            f"{ {key: spec[key] for key in differing} }; delete it or pass another `root`."
        )
    return True


def _host():
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname()) or "host"


def _remove_dead_partials(root):
    """Remove this host's temporary folders for `root` whose process is gone (a killed run)."""
    prefix = f".{root.name}.partial-{_host()}-"
    for partial in root.parent.glob(f"{prefix}*"):
        pid = partial.name[len(prefix) :]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)


def _process_alive(pid):
    if os.name != "posix":
        return True  # os.kill(pid, 0) would terminate it on Windows: leave the folder, it is ignored
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_label(label):
    if not 0 <= int(label) < len(CLASS_NAMES) or int(label) != label:
        raise ValueError(f"`label` must be an integer in [0, {len(CLASS_NAMES)}). Received: label={label}")
    return int(label)


def _check_int(name, value, minimum):
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


# -- rendering ----------------------------------------------------------------------------------


def _render_forward(pair, rng, frames, size):
    """One clip of the forward class of `pair` (the even label), noise added, as uint8."""
    scale = size / _DESIGN_SIZE
    t = np.arange(frames, dtype=np.float64)
    background = _background(rng, size)
    if rng.random() < 0.2:  # a small static distractor, never a disc (discs are the growing pair's)
        outline = _shape(rng, _ANGULAR) * rng.uniform(4, 7) * scale + rng.uniform(0.15, 0.85, size=2) * size
        _paint(background, [outline], _colour(rng, background))
    colour = _colour(rng, background)
    gain = np.full(frames, rng.uniform(0.45, 1.0))
    painted = []  # per frame: (polygons, colour, blur) to paint in order

    if pair in (_MOVE_X, _MOVE_Y):
        outline = _rotate(_shape(rng, _ANGULAR), rng.uniform(0, 2 * np.pi)) * rng.uniform(9, 14) * scale
        # The frame is a torus: a uniform start keeps every frame's position uniform, and what
        # leaves on one side shows on the other, so the whole shape is always in view.
        speed = rng.uniform(3.5, 5.0) * scale
        along = (rng.uniform(0, size) + speed * t) % size
        across = rng.uniform(0.25, 0.75) * size
        # Motion blur over the frame's exposure: symmetric, so it shows the axis of the motion
        # (which pair) in a single frame, but not its sign (which class of the pair).
        blur = (int(round(speed)) | 1, 1) if pair == _MOVE_X else (1, int(round(speed)) | 1)
        for i in range(frames):
            copies = [(along[i] + wrap, across) for wrap in (-size, 0, size)]
            if pair == _MOVE_Y:
                copies = [(x, y) for y, x in copies]
            painted.append([([outline + copy for copy in copies], colour, blur)])
    elif pair == _GROW:
        unit = _SHAPES["circle"]  # a disc: in a single frame, only this pair shows one
        centre = rng.uniform(0.3, 0.7, size=2) * size
        smallest, largest = rng.uniform(3, 5) * scale, rng.uniform(24, 30) * scale
        radius = smallest + (largest - smallest) * _sawtooth(rng, t)
        painted = [[([unit * radius[i] + centre], colour, None)] for i in range(frames)]
    elif pair == _ROTATE:
        radius = rng.uniform(15, 24) * scale
        # Shapes that look the same after a turn of 120 degrees (triangle) or only a full turn
        # (pie): at most 3 frames (the widest gap of TSN sampling of 8 from 16) at 18 degrees a
        # frame stay under half of that, so no turn looks like a smaller one the other way (a
        # star, the same after 72 degrees, turned 40 degrees clockwise looks turned 32 the other
        # way). A black or white disc off the centre turns with the shape, too. (Black or white:
        # JPEG keeps brightness edges, but blurs a small disc that differs only in colour.)
        unit = _shape(rng, _TURNING) * radius
        marker = _SHAPES["circle"] * 0.22 * radius + (0.55 * radius, 0)
        marker_colour = np.full(3, 0.0 if colour @ (0.299, 0.587, 0.114) > 128 else 255.0, np.float32)
        centre = rng.uniform(0.3, 0.7, size=2) * size
        angle = rng.uniform(0, 2 * np.pi) + np.deg2rad(rng.uniform(12, 18)) * t  # clockwise: y points down
        for i in range(frames):
            shape, dot = _rotate(unit, angle[i]) + centre, _rotate(marker, angle[i]) + centre
            painted.append([([shape], colour, None), ([dot], marker_colour, None)])
    elif pair == _BRIGHTEN:
        # No moving shape: the light on the whole scene ramps.
        painted = [[]] * frames
        darkest = rng.uniform(0.2, 0.35)
        gain = darkest + (1 - darkest) * _sawtooth(rng, t)
    else:
        raise ValueError(f"unknown pair {pair}")

    clip = np.empty((frames, size, size, 3), np.float32)
    for frame, layers in zip(clip, painted):
        frame[...] = background
        for polygons, layer_colour, blur in layers:
            _paint(frame, polygons, layer_colour, blur)
    clip *= gain[:, None, None, None].astype(np.float32)
    clip += rng.uniform(0.5, 3) * rng.standard_normal(clip.shape, dtype=np.float32)
    return np.clip(np.rint(clip), 0, 255).astype(np.uint8)


def _sawtooth(rng, t):
    """A ramp from 0 to 1 over a random period of 11 to 15 frames, at a uniform random phase."""
    return (rng.uniform(0, 1) + t / rng.uniform(11, 15)) % 1.0


def _background(rng, size):
    low, high = rng.uniform(20, 235, size=(2, 3))
    kind = rng.choice(4, p=(0.35, 0.35, 0.15, 0.15))
    if kind >= 2:  # textures stay fainter than the shapes
        high = low + (high - low) * rng.uniform(0.3, 0.6)
    if kind == 0:  # solid
        return np.broadcast_to(low, (size, size, 3)).astype(np.float32)
    if kind == 1:  # linear gradient in a random direction
        yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
        direction = rng.uniform(0, 2 * np.pi)
        mix = np.clip(0.5 + np.cos(direction) * xx + np.sin(direction) * yy, 0, 1)
    elif kind == 2:  # smooth blobs: coarse noise, upsampled
        coarse = rng.uniform(0, 1, size=(rng.integers(3, 9),) * 2).astype(np.float32)
        mix = np.clip(cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC), 0, 1)
    else:  # stripes of a random width and direction
        yy, xx = np.mgrid[0:size, 0:size] / _DESIGN_SIZE
        direction = rng.uniform(0, np.pi)
        wave = np.cos(direction) * xx + np.sin(direction) * yy
        mix = 0.5 + 0.5 * np.sin(2 * np.pi * wave * rng.uniform(2, 6) + rng.uniform(0, 2 * np.pi))
    return (low + (high - low) * mix[..., None]).astype(np.float32)


def _colour(rng, background):
    """A colour at least 120 (RGB distance) from the background's mean, where one is found."""
    mean = background.reshape(-1, 3).mean(axis=0)
    for _ in range(30):
        colour = rng.uniform(0, 255, size=3)
        if np.linalg.norm(colour - mean) >= 120:
            break
    return colour.astype(np.float32)


_ROUND = np.linspace(0, 2 * np.pi, 33)[:-1]


def _polygon(angles, radii):
    return np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=-1)


_SHAPES = {
    "circle": _polygon(_ROUND, 1.0),
    "triangle": _polygon(np.deg2rad([-90, 30, 150]), 1.0),
    "square": _polygon(np.deg2rad([45, 135, 225, 315]), 1.0),
    "star": _polygon(np.linspace(0, 2 * np.pi, 11)[:-1] - np.pi / 2, np.tile([1.0, 0.45], 5)),
    "cross": np.array(
        [
            [1, 0.35],
            [0.35, 0.35],
            [0.35, 1],
            [-0.35, 1],
            [-0.35, 0.35],
            [-1, 0.35],
            [-1, -0.35],
            [-0.35, -0.35],
            [-0.35, -1],
            [0.35, -1],
            [0.35, -0.35],
            [1, -0.35],
        ]
    ),
    # A disc with a 70-degree wedge cut out: round, yet its rotation shows.
    "pie": np.concatenate([[[0.0, 0.0]], _polygon(np.linspace(np.deg2rad(35), np.deg2rad(325), 30), 1.0)]),
}
_ANGULAR = tuple(name for name in _SHAPES if name != "circle")
_TURNING = ("triangle", "pie")  # the rotating pair's: no symmetry under turns of less than 120 degrees


def _shape(rng, names):
    return _SHAPES[names[rng.integers(len(names))]]


def _rotate(points, angle):
    cos, sin = np.cos(angle), np.sin(angle)
    return points @ np.array([[cos, sin], [-sin, cos]])  # x' = x cos - y sin, y' = x sin + y cos


def _paint(image, polygons, colour, blur=None):
    """Fill non-overlapping polygons ((N, 2) arrays of x, y pixel coordinates) with `colour`, in place.

    `blur`: None, or the (width, height) of a box filter applied to the coverage (motion blur).
    """
    coverage = np.zeros(image.shape[:2], np.uint8)
    fixed_point = [np.rint(polygon * 16).astype(np.int32) for polygon in polygons]  # 4 fractional bits
    cv2.fillPoly(coverage, fixed_point, 255, lineType=cv2.LINE_AA, shift=4)  # anti-aliased
    alpha = coverage.astype(np.float32) / 255
    if blur is not None:
        alpha = cv2.blur(alpha, blur, borderType=cv2.BORDER_CONSTANT)
    alpha = alpha[..., None]
    image *= 1 - alpha
    image += alpha * colour
