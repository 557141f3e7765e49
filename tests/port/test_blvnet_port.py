"""Ported bLVNet-TAM checkpoints give the logits of an independent PyTorch bLVNet-TAM
(tests/port/torch_blvnet.py), with random weights and measured BN statistics.

Skipped without torch.
"""

import json
import shlex

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.port import torch_blvnet as blvnet  # noqa: E402
from tests.port import torch_reference as ref  # noqa: E402
from tests.training.commands import run_command  # noqa: E402
from tsm_keras.port import PortError, assign_weights, port_state_dict  # noqa: E402
from tsm_keras.port.big_little import TAM_PARTS, read_big_little_layout  # noqa: E402
from tsm_keras.run_dir import load_run, read_config  # noqa: E402

FRAMES, S, K = 4, 64, 5  # 2T = 4 frames (the name's f2x2), 64 px
RELATIVE = 1e-4


def clips(batch=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, FRAMES, S, S, 3)).astype("float32")


def torch_blvnet(depth, seed=0):
    torch.manual_seed(seed)
    net = blvnet.BLVNetTAM(depth, FRAMES, K)
    calibration = ref.normalize(clips(batch=4, seed=1))
    return ref.randomize(net, seed=seed, calibrate=lambda: net(calibration))


def torch_logits(net, clip):
    with torch.no_grad():
        return net(ref.normalize(clip)).numpy()


def assert_close(keras_logits, expected):
    scale = max(1.0, float(np.abs(expected).max()))
    difference = float(np.abs(keras_logits - expected).max())
    print(f"max |keras - torch| = {difference:.2e}, logits up to {np.abs(expected).max():.2f}")
    assert difference <= RELATIVE * scale


def state(net):
    return {name: value.numpy() for name, value in net.state_dict().items()}


@pytest.fixture(scope="module")
def net50():
    return torch_blvnet(50)


@pytest.fixture(scope="module")
def ported50(net50):
    return port_state_dict(state(net50), segments=FRAMES, input_size=S)


def test_ported_logits_match_pytorch_and_see_the_pairing(net50, ported50):
    assert ported50.model_config["backbone"] == "blresnet50" and ported50.model_config["temporal"] == "tam"
    tensors = [n for n in net50.state_dict() if not n.endswith("num_batches_tracked")]
    # Every tensor is copied; a TAM's three weights become one kernel (7 TAMs).
    assert ported50.tensors == len(tensors) - 7 * (len(TAM_PARTS) - 1)
    clip = clips()
    expected = torch_logits(net50, clip)
    assert_close(np.asarray(ported50.model(clip)), expected)
    # The parity is sensitive to the pairing: the frames of each pair swapped give other logits.
    swapped = np.ascontiguousarray(clip.reshape(2, FRAMES // 2, 2, S, S, 3)[:, :, ::-1].reshape(clip.shape))
    assert np.abs(np.asarray(ported50.model(swapped)) - expected).max() > 100 * RELATIVE * np.abs(expected).max()


def test_leftover_and_missing_tensors_fail_with_their_names(net50, ported50):
    tensors = state(net50)

    def assign(changed):
        return assign_weights(ported50.model, read_big_little_layout(changed))

    with pytest.raises(PortError, match=r"no place in the model: baseline_model\.layer4\.0\.extra\.weight"):
        assign({**tensors, "baseline_model.layer4.0.extra.weight": np.zeros((3,), "float32")})
    with pytest.raises(PortError, match=r"not in the checkpoint .*layer2\.little_e\.1\.running_var"):
        assign({k: v for k, v in tensors.items() if k != "baseline_model.layer2.little_e.1.running_var"})
    with pytest.raises(PortError, match=r"the TAM 'layer1\.tam' lacks its \['next'\] weights"):
        assign({k: v for k, v in tensors.items() if k != "baseline_model.layer1.tam.next.weight"})


def test_segments_are_asked_for_not_guessed(net50):
    with pytest.raises(PortError, match="pass `segments`"):
        port_state_dict(state(net50), input_size=S)


# The default suite's check of the documented commands on a ported bLVNet-TAM: a released file
# and a DataParallel training checkpoint, at 32 px and 2T = 4, each ported into a run directory
# by `python -m tsm_keras.port`, then evaluated and converted by the scripts.
TINY = 32


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """The built-in data set at its smallest: 10 classes x (2 train + 1 val) clips of 8 frames."""
    from tsm_keras.data.synthetic import ensure_default_dataset

    root = tmp_path_factory.mktemp("data") / "tiny_shapes"
    return ensure_default_dataset(root, train_per_class=2, val_per_class=1, frames=8, size=40, progress=False)


@pytest.fixture(scope="module")
def tiny_net(tiny_data):
    classes = len((tiny_data / "labels.txt").read_text().split("\n")) - 1
    torch.manual_seed(0)
    net = blvnet.BLVNetTAM(50, FRAMES, classes)
    video = np.random.default_rng(1).uniform(0, 255, (8, FRAMES, TINY, TINY, 3)).astype("float32")
    calibration = ref.normalize(video)  # 8 clips: at 32 px stage 4 is 1 x 1, BN needs a batch
    return ref.randomize(net, seed=0, calibrate=lambda: net(calibration))


@pytest.mark.parametrize("layout", ["released file", "training checkpoint"])
def test_ported_checkpoints_evaluate_and_convert(layout, tiny_net, tiny_data, tmp_path):
    if layout == "released file":
        path = tmp_path / f"st2stv2-bLVNet-TAM-50-a2-b4-f{FRAMES // 2}x2.pth.tar"
        torch.save(tiny_net.state_dict(), path)
    else:  # what the reference's train.py saves, in a folder named after the model
        path = tmp_path / f"st2stv1-bLVNet-TAM-50-a2-b4-f{FRAMES // 2}x2" / "model_best.pth.tar"
        path.parent.mkdir()
        state = torch.nn.DataParallel(tiny_net).state_dict()
        torch.save({"epoch": 3, "arch": path.parent.name, "state_dict": state, "best_top1": 40.0}, path)
    run = tmp_path / "runs" / "blvnet"
    labels, data = shlex.quote(str(tiny_data / "labels.txt")), shlex.quote(str(tiny_data))
    ported = run_command(
        f"python -m tsm_keras.port {shlex.quote(str(path))} --out {run} --labels {labels} --input-size {TINY}"
    )
    assert f"num_segments={FRAMES}" in ported.stdout and "backbone=blresnet50" in ported.stdout
    config = read_config(run)
    assert config["source"]["checkpoint"] == path.name and "streaming" not in config["source"]
    clip = np.random.default_rng(2).uniform(0, 255, (1, FRAMES, TINY, TINY, 3)).astype("float32")
    assert_close(np.asarray(load_run(run).model(clip)), torch_logits(tiny_net, clip))

    run_command(f"python training/evaluate.py {run} --data {data}")
    summary = json.loads((run / "eval-1clipx1crop" / "summary.json").read_text())
    assert summary["clips"] == 10
    # docs/blvnet.md's `convert.py RUN --int8 --data DATA` once; the run directories of the two
    # layouts differ only in run.json's "source". A random network's near-tied logits make
    # the int8 gate noise: --force (the gate is tested on trained models in tests/export).
    int8 = ["--int8", "--data", data, "--force", "--calibration-clips", "2"] if layout == "released file" else []
    run_command(f"python tflite/convert.py {run} {' '.join(int8)}")
    report = json.loads((run / "tflite" / "report.json").read_text())
    written = sorted(p.name for p in (run / "tflite").glob("*.tflite"))
    assert written == ["clip_float32.tflite"] + (["clip_int8.tflite"] if int8 else [])
    assert "pairs frames" in report["streaming"]["refused"]
    assert report["verification"]["clip_float32.tflite"]["max_abs_difference_vs_keras"] <= 1e-4 * max(
        1.0, float(np.abs(torch_logits(tiny_net, clip)).max())
    )


@pytest.mark.slow
def test_blresnet101_matches_pytorch():
    net = torch_blvnet(101, seed=1)
    ported = port_state_dict(state(net), segments=FRAMES, input_size=S, arch="blresnet101")
    assert ported.model_config["backbone"] == "blresnet101"
    clip = clips(seed=5)
    assert_close(np.asarray(ported.model(clip)), torch_logits(net, clip))
