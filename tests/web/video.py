"""Test videos for the page: a .y4m for Chromium's fake camera, each frame numbered in its
left margin (outside the centre square that the model sees), and a VP8 .webm for the file
input."""

import cv2
import numpy as np

CODE_BITS = 8  # frame numbers 0..255, one bit per band of the left margin


def blocky_frames(count, height, width, seed=0):
    """RGB uint8 frames of random 8-pixel colour blocks, new blocks every frame (so that every
    frame differs and the chroma of a 4:2:0 file is constant over each 2x2 pixel cell)."""
    rng = np.random.default_rng(seed)
    cells = rng.uniform(0, 255, (count, height // 8, width // 8, 3))
    return np.kron(cells, np.ones((1, 8, 8, 1))).astype("uint8")


def black_and_white_frames(count, height, width, seed=0):
    """RGB uint8 frames of random black and white 8-pixel blocks, new blocks every frame.
    Written as Y 0 or 255 with neutral chroma, every YUV-to-RGB conversion (Chromium's,
    FFmpeg's, limited or full range) clips them back to exactly 0 and 255: both sides of a
    test decode the same pixels."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 2, (count, height // 8, width // 8, 1)) * 255
    return np.kron(cells, np.ones((1, 8, 8, 3))).astype("uint8")


def number_frames(frames, margin):
    """Writes frame i's number in binary into its left `margin` columns (bands of white for 1,
    black for 0). The margin must lie outside the centre square."""
    frames = frames.copy()
    height = frames.shape[1]
    band = height // CODE_BITS
    for i, frame in enumerate(frames):
        frame[:, :margin] = 0
        for bit in range(CODE_BITS):
            if (i >> bit) & 1:
                frame[bit * band : (bit + 1) * band, :margin] = 255
    return frames


def read_number(rgb, margin):
    """The frame number written by `number_frames`, read back from a decoded RGB frame."""
    band = rgb.shape[0] // CODE_BITS
    bits = [rgb[b * band + 1 : (b + 1) * band - 1, 1 : margin - 1].mean() > 128 for b in range(CODE_BITS)]
    return sum(1 << b for b, on in enumerate(bits) if on)


def write_y4m(path, frames, fps):
    """RGB uint8 frames -> an uncompressed YUV 4:2:0 .y4m (BT.601, limited range, as Chromium's
    fake camera and FFmpeg read it). Grey 0 and 255 become Y 0 and 255 (outside the limited
    range, so that decoding clips them back exactly)."""
    count, height, width = frames.shape[:3]
    rgb = frames.astype("float64")
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    grey = (r == g) & (g == b)
    y = np.where(grey & (r == 0), 0, np.where(grey & (r == 255), 255, y))
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b

    def half(plane):
        return plane.reshape(count, height // 2, 2, width // 2, 2).mean(axis=(2, 4))

    planes = [np.clip(np.round(p), 0, 255).astype("uint8") for p in (y, half(u), half(v))]
    with open(path, "wb") as file:
        file.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(count):
            file.write(b"FRAME\n")
            for plane in planes:
                file.write(plane[i].tobytes())
    return path


def write_webm(path, frames, fps):
    """RGB uint8 frames -> a VP8 .webm (a codec every Chromium build plays)."""
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), float(fps), (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"{path}: this OpenCV cannot write VP8 .webm")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path
