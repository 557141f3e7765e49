"""Ported bLVNet-TAM checkpoints give the logits of an independent PyTorch bLVNet-TAM
(tests/port/torch_blvnet.py), with random weights and measured BN statistics.

Skipped without torch.
"""

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.port import torch_blvnet as blvnet  # noqa: E402
from tests.port import torch_reference as ref  # noqa: E402
from tsm_keras.port import PortError, assign_weights, port_checkpoint, port_state_dict  # noqa: E402
from tsm_keras.port.big_little import TAM_PARTS, read_big_little_layout  # noqa: E402

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


@pytest.mark.slow
def test_released_file_ports_by_name(net50, tmp_path):
    # The released files are bare state dicts named {dataset}-bLVNet-TAM-{depth}-a2-b4-f{T}x2.
    path = tmp_path / f"st2stv2-bLVNet-TAM-50-a2-b4-f{FRAMES // 2}x2.pth.tar"
    torch.save(net50.state_dict(), path)
    ported, model_path = port_checkpoint(path, tmp_path / "run", input_size=S)
    assert ported.model_config["num_segments"] == FRAMES  # f2x2: 2 pairs, 4 frames
    clip = clips(seed=2)
    assert_close(np.asarray(keras.models.load_model(model_path)(clip)), torch_logits(net50, clip))


@pytest.mark.slow
def test_training_checkpoint_from_dataparallel(net50, tmp_path):
    # What the reference's train.py saves: {'epoch', 'arch', 'state_dict' ('module.' names), ...}.
    run = tmp_path / "st2stv1-bLVNet-TAM-50-a2-b4-f2x2"
    run.mkdir()
    parallel = torch.nn.DataParallel(net50)
    torch.save(
        {"epoch": 3, "arch": run.name, "state_dict": parallel.state_dict(), "best_top1": 40.0},
        run / "model_best.pth.tar",
    )
    ported, model_path = port_checkpoint(run / "model_best.pth.tar", tmp_path / "out", input_size=S)
    assert ported.notes == ["segments=4 (from the folder name st2stv1-bLVNet-TAM-50-a2-b4-f2x2)"]
    clip = clips(seed=3)
    assert_close(np.asarray(keras.models.load_model(model_path)(clip)), torch_logits(net50, clip))


@pytest.mark.slow
def test_blresnet101_matches_pytorch():
    net = torch_blvnet(101, seed=1)
    ported = port_state_dict(state(net), segments=FRAMES, input_size=S, arch="blresnet101")
    assert ported.model_config["backbone"] == "blresnet101"
    clip = clips(seed=5)
    assert_close(np.asarray(ported.model(clip)), torch_logits(net, clip))
