"""convert's float check at full size: a 224 px TSM-ResNet-50 in the ported layout (random
weights, BN statistics measured) passes it, and the same TFLite model with every shift moving
the wrong way is refused. The bound is relative to the logits' scale (docs/tflite.md,
"Verification"); an absolute 1e-4 would refuse correct large models for float32 rounding.

Skipped without torch.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.port import torch_reference as ref  # noqa: E402
from tests.port.test_torch_parity import torch_tsn  # noqa: E402
from tsm_keras.export.kinds import CLIP, FLOAT32  # noqa: E402
from tsm_keras.export.pipeline import verification_clips  # noqa: E402
from tsm_keras.export.runtime import ClipRunner  # noqa: E402
from tsm_keras.export.tflite import convert  # noqa: E402
from tsm_keras.export.verify import VerificationError, clip_vs_keras, float_bound  # noqa: E402
from tsm_keras.port import port_checkpoint  # noqa: E402
from tsm_keras.run_dir import load_run  # noqa: E402

SIZE, SEGMENTS = 224, 4


class FramesReversed:
    """The TFLite clip model fed its frames last to first. The consensus averages over time,
    so this is the model with every shift moving the other way: a one-off direction error."""

    name = "wrong_direction.tflite"

    def __init__(self, runner):
        self.runner = runner

    def __call__(self, clip):
        return self.runner(clip[::-1])


@pytest.mark.slow
def test_resnet50_at_224_px_passes_and_the_wrong_direction_is_refused(tmp_path):
    net = torch_tsn("resnet50", "blockres", True, False, 64)  # BN statistics measured at 64 px
    name = f"TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment{SEGMENTS}_e50.pth"
    ref.save_official(net, tmp_path / name, "resnet50")
    port_checkpoint(tmp_path / name, tmp_path / "run", input_size=SIZE)
    model = load_run(tmp_path / "run", float32=True).model
    runner = ClipRunner(convert(model, CLIP, FLOAT32), name="clip_float32.tflite")
    clips = verification_clips(SEGMENTS, SIZE)  # what convert checks with
    expected = np.asarray(model.predict_on_batch(clips))
    difference = clip_vs_keras(runner, model, clips)  # raises above the bound
    wrong = np.abs(np.stack([FramesReversed(runner)(c) for c in clips]) - expected).max()
    print(
        f"ResNet-50 {SIZE} px: |tflite - keras| {difference:.2e} (bound {float_bound(expected):.2e}, logits up "
        f"to {np.abs(expected).max():.2f}); shifts the wrong way: {wrong:.2e}"
    )
    with pytest.raises(VerificationError, match="wrong_direction.tflite: clip logits differ from Keras"):
        clip_vs_keras(FramesReversed(runner), model, clips)
