"""Decoding video files with OpenCV: only the frames a clip needs, as RGB uint8.

Strategy (measured, see docs/data.md): open the file once and read it sequentially,
`grab()`-bing every frame (demux + decode, no colour conversion) and `retrieve()`-ing
only the sampled ones, stopping after the last sampled index. Seeking
(CAP_PROP_POS_FRAMES) decodes forward from the previous key frame on every call and was
2-3x slower for clips up to 10 s at 256 px, so it is not used.

CAP_PROP_FRAME_COUNT comes from the container header and can be wrong. When the video
ends before a sampled index, the true count is now known: it is remembered for the
file and the indices are drawn again (same noise) over the true length. A missing
count (<= 0) is measured by grabbing through the file once. A count that is too small
is not detected: the frames past it are never sampled.
"""

import os
import threading

import cv2
import numpy as np

VIDEO_EXTENSIONS = frozenset(
    (
        ".mp4",
        ".m4v",
        ".mov",
        ".avi",
        ".mkv",
        ".webm",
        ".mpg",
        ".mpeg",
        ".wmv",
        ".flv",
        ".3gp",
        ".ogv",
        ".ts",
        ".mts",
        ".m2ts",
        ".vob",
        ".asf",
        ".divx",
    )
)


class UnreadableError(Exception):
    """A sample that cannot be read; the message is the reason shown to the user."""


class FrameCounts:
    """Thread-safe memory of true frame counts found while decoding, per file."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = {}

    def get(self, path):
        with self._lock:
            return self._counts.get(path)

    def set(self, path, count):
        with self._lock:
            self._counts[path] = count


def to_rgb(frame):
    """OpenCV frame (BGR, BGRA, gray, 8 or 16 bit) -> contiguous RGB uint8 (H, W, 3)."""
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype != np.uint8:
        frame = cv2.convertScaleAbs(frame)
    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def fit_short_side(frame, short_side, upscale=False):
    """Resizes so that the short side is `short_side` (None: keep). Only shrinks unless `upscale`."""
    if not short_side:
        return frame
    h, w = frame.shape[:2]
    short = min(h, w)
    if short == short_side or (short < short_side and not upscale):
        return frame
    scale = short_side / short
    size = (max(short_side, round(w * scale)), max(short_side, round(h * scale)))
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(frame, size, interpolation=method)


def _same_size(frame, first):
    """Frames whose size changes mid-stream are resized to the first frame's size."""
    if first is None or frame.shape == first.shape:
        return frame
    return cv2.resize(frame, (first.shape[1], first.shape[0]), interpolation=cv2.INTER_AREA)


def check_file(path):
    """Raises UnreadableError for a missing or empty file."""
    try:
        size = os.stat(path).st_size
    except OSError as e:
        raise UnreadableError(f"cannot open file ({e.strerror or e})") from None
    if not os.path.isfile(path):
        raise UnreadableError("not a regular file")
    if size == 0:
        raise UnreadableError("empty file (0 bytes)")


def open_video(path):
    check_file(path)
    # FFmpeg explicitly: other backends would read "%d" in a name as an image sequence.
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise UnreadableError("OpenCV cannot open it as a video (corrupt, truncated or not a video)")
    return cap


def _count_frames(path):
    cap = open_video(path)
    try:
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


def _read_indices(cap, wanted, short_side):
    """Frames at the sorted unique indices `wanted` from an open capture at frame 0,
    or (None, frames seen) if the video ends first."""
    frames = {}
    first = None
    targets = iter(wanted)
    target = next(targets)
    pos = 0
    while True:
        if not cap.grab():
            return None, pos
        if pos == target:
            ok, frame = cap.retrieve()
            if not ok or frame is None:
                return None, pos
            frame = _same_size(fit_short_side(to_rgb(frame), short_side), first)
            first = frame if first is None else first
            frames[pos] = frame
            target = next(targets, None)
            if target is None:
                return frames, pos + 1
        pos += 1


def read_clip(path, sampling, noise=None, short_side=256, counts=None):
    """Decodes the frames `sampling` picks from a video file.

    Args:
        path: the video file.
        sampling: a `Sampling`.
        noise: its uniform numbers (training only).
        short_side: frames whose short side is larger are shrunk to it (None: keep).
        counts: a `FrameCounts` shared across calls, to remember corrected lengths.

    Returns:
        uint8 RGB array (clips * num_segments, H, W, 3), clip-major.

    Raises:
        UnreadableError: with the reason, for anything that stops the clip being read.
    """
    counts = counts if counts is not None else FrameCounts()
    cap = open_video(path)
    try:
        n = counts.get(path)
        if n is None:
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            if n <= 0:  # unknown length (some webm/mkv streams): measure it once
                n = _count_frames(path)
                counts.set(path, n)
        if n <= 0:
            raise UnreadableError("no decodable frame")
        for attempt in range(2):
            idx = sampling.indices(n, noise).reshape(-1)
            frames, seen = _read_indices(cap, np.unique(idx).tolist(), short_side)
            if frames is not None:
                return np.stack([frames[i] for i in idx.tolist()])
            if seen == 0:
                raise UnreadableError("no decodable frame")
            if attempt == 0:  # the header over-counted: sample again over the frames that exist
                n = seen
                counts.set(path, n)
                cap.release()
                cap = open_video(path)
        raise UnreadableError("the video ended at a different frame on each read")
    finally:
        cap.release()


def read_all_frames(path, short_side=256):
    """Every frame of a video, RGB uint8 (N, H, W, 3), short side resized to `short_side`
    (up or down; None keeps the size). Raises UnreadableError."""
    cap = open_video(path)
    try:
        frames = []
        first = None
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            frame = _same_size(fit_short_side(to_rgb(frame), short_side, upscale=True), first)
            first = frame if first is None else first
            frames.append(frame)
    finally:
        cap.release()
    if not frames:
        raise UnreadableError("no decodable frame")
    return np.stack(frames)
