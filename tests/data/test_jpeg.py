import cv2
import numpy as np
import pytest
import tensorflow as tf

from tsm_keras.data.jpeg import decode_jpeg_frames

rng = np.random.default_rng(0)


def jpeg(h=24, w=32):
    coarse = rng.integers(0, 255, (3, 4, 3), dtype=np.uint8)
    image = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)  # smooth: JPEG keeps it
    return cv2.imencode(".jpg", image)[1].tobytes(), image[..., ::-1]


GOOD = [jpeg() for _ in range(4)]
decode = tf.function(decode_jpeg_frames, input_signature=[tf.TensorSpec([None], tf.string)])
CORRUPT = GOOD[1][0][:200] + bytes(rng.integers(0, 255, 300, dtype=np.uint8)) + GOOD[1][0][500:]


@pytest.mark.parametrize(
    "case,bad,why",
    [
        ([0, 1, 2, 3], -1, ""),
        ([0, "corrupt", 2, 3], 1, "cannot be decoded as JPEG"),
        (["corrupt", 1], 0, "cannot be decoded as JPEG"),
        ([0, 1, "small"], 2, "differs in size from the first frame"),
        ([0, ""], 1, "cannot be decoded as JPEG"),
    ],
)
def test_decode_flags_the_first_bad_frame_and_never_raises(case, bad, why):
    blobs = {"corrupt": CORRUPT, "small": jpeg(16, 16)[0], "": b""}
    jpegs = tf.constant([blobs[c] if isinstance(c, str) else GOOD[c][0] for c in case])
    frames, ok, first_bad, reason = decode(jpegs)
    assert bool(ok) == (bad == -1)
    assert int(first_bad) == bad and reason.numpy().decode() == why
    if bad == -1:
        expected = np.stack([GOOD[c][1] for c in case])
        assert frames.shape == expected.shape
        assert np.abs(frames.numpy().astype(int) - expected).mean() < 3
    else:
        assert frames.shape == (len(case), 1, 1, 3)
