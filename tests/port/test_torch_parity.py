"""Ported models give the logits of an independent PyTorch TSM (tests/port/torch_reference.py).

Skipped without torch (`pip install -e .[port]`; on the project machines
`pip install torch==2.13.0` installs a local CPU wheel).
"""

import copy
import os

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.port import torch_reference as ref  # noqa: E402
from tsm_keras.commands.port import main  # noqa: E402
from tsm_keras.port import PortError, port_checkpoint, read_checkpoint  # noqa: E402
from tsm_keras.run_dir import load_run, read_config  # noqa: E402

T = 4
TOLERANCE = 1e-4  # max abs difference of the logits, float32
# Keras' float32 error (against the float64 network) may be this many times PyTorch's own.
FLOAT32_FACTOR = 4


def clips(size, batch=2, seed=0):
    """Raw RGB clips in [0, 255] whose frames all differ (a wrong frame cannot match)."""
    return np.random.default_rng(seed).uniform(0, 255, (batch, T, size, size, 3)).astype("float32")


def torch_tsn(arch, place, bidirectional, tpool, size, non_local=False):
    torch.manual_seed(0)
    if arch == "mobilenetv2":
        base, features = ref.tsm_mobilenet_v2(T, bidirectional), 1280
    else:
        base = ref.tsm_resnet(int(arch[len("resnet") :]), T, place, bidirectional, tpool, non_local=non_local)
        features = 2048
    net = ref.TSN(base, 5, features, T, T // 2 if tpool else T)
    calibration = ref.normalize(clips(size, batch=4, seed=1))
    return ref.randomize(net, seed=0, calibrate=lambda: net(calibration))


def keras_logits(model_path, clip, layer="consensus"):
    model = load_run(model_path).model
    if layer != "consensus":
        model = keras.Model(model.input, model.get_layer(layer).output)
    return np.asarray(model(clip))


# (arch, shift place, bidirectional, temporal pooling, frame side)
CASES = {
    "resnet50-blockres": ("resnet50", "blockres", True, False, 32),
    "resnet50-blockres-unidirectional": ("resnet50", "blockres", False, False, 32),
    "resnet50-block-tpool": ("resnet50", "block", True, True, 32),
    "mobilenetv2": ("mobilenetv2", "blockres", True, False, 64),
    "mobilenetv2-unidirectional": ("mobilenetv2", "blockres", False, False, 64),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_ported_logits_match_pytorch(case, tmp_path):
    arch, place, bidirectional, tpool, size = CASES[case]
    net = torch_tsn(arch, place, bidirectional, tpool, size)
    name = f"TSM_kinetics_RGB_{arch}_shift8_{place}{'_tpool' if tpool else ''}_avg_segment{T}_e50.pth"
    ref.save_official(net, tmp_path / name, arch)
    clip = clips(size)
    with torch.no_grad():
        expected = net(ref.normalize(clip)).numpy()
    # The direction of a shift does not show in the tensors: it is told.
    temporal = None if bidirectional else "tsm-online"
    ported, model_path = port_checkpoint(tmp_path / name, tmp_path / "run", input_size=size, temporal=temporal)
    assert ported.model_config["temporal"] == ("tsm" if bidirectional else "tsm-online")
    assert ported.model_config["shift_place"] == place and ported.model_config["temporal_pool"] == tpool
    difference = np.abs(keras_logits(model_path, clip) - expected).max()
    print(f"{case}: max |keras - torch| = {difference:.2e} (logits up to {np.abs(expected).max():.2f})")
    assert difference <= TOLERANCE


@pytest.mark.parametrize("size", [32, pytest.param(64, marks=pytest.mark.slow)])
def test_non_local_checkpoint_matches_pytorch(size, tmp_path):
    """A `_nl` model: ResNet-50, shifts on the residual branches, non-local blocks after
    layer2[0, 2] and layer3[0, 2, 4]. Their frames are 4 x 4 and 2 x 2 at 32 px (keys pooled
    to 2 x 2 and 1 x 1), 8 x 8 and 4 x 4 at 64 px.

    The bound is float32's own error on this network: the attention's softmax amplifies
    rounding (PyTorch's float32 logits are 1e-4 from its float64 ones at 64 px), so a fixed
    bound would be either loose for the other models or picked for this one. Keras' float32
    logits must be as close to the float64 network as PyTorch's float32 ones are, within
    FLOAT32_FACTOR (results/port-non-local-float32-error.json: 1.0-1.5 on AVX2 with oneDNN's and Eigen's kernels;
    a wrong mapping is 1e4 times off)."""
    net = torch_tsn("resnet50", "blockres", True, False, size, non_local=True)
    name = f"TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment{T}_e100_dense_nl.pth"
    ref.save_official(net, tmp_path / name, "resnet50")
    assert any(".layer3.4.nl.W.1.running_var" in key for key in torch.load(tmp_path / name)["state_dict"])
    clip = clips(size)
    with torch.no_grad():
        expected = net(ref.normalize(clip)).numpy()
        exact = copy.deepcopy(net).double()(ref.normalize(clip).double()).numpy()
        # The blocks matter: the same network with their outputs zeroed (the file is saved) is far off.
        blocks = [m for m in net.modules() if isinstance(m, ref.NonLocal3d)]
        for block in blocks:
            block.W[1].weight.zero_()
            block.W[1].bias.zero_()
        without = net(ref.normalize(clip)).numpy()
    ported, model_path = port_checkpoint(tmp_path / name, tmp_path / "run", input_size=size)
    assert ported.model_config["non_local"] and len(blocks) == 5
    logits = keras_logits(model_path, clip)
    scale = np.abs(exact).max()
    # float32's error on this network: PyTorch's, at least one unit in the last place of the logits.
    torch_error = max(np.abs(expected - exact).max(), scale * np.finfo("float32").eps)
    keras_error = np.abs(logits - exact).max()
    print(
        f"resnet50-blockres-nl: max |keras - torch| = {np.abs(logits - expected).max():.2e}; from float64: "
        f"keras {keras_error:.2e}, torch {torch_error:.2e} (logits up to {scale:.2f}; "
        f"without the non-local blocks {np.abs(without - expected).max():.2e} off)"
    )
    assert keras_error <= FLOAT32_FACTOR * torch_error
    assert np.abs(without - expected).max() > 1000 * FLOAT32_FACTOR * torch_error
    source = read_config(tmp_path / "run")["source"]
    assert "clip models only" in source["streaming"]


def test_the_wrong_direction_is_far_off(tmp_path):
    # The parity above is sensitive to the shift: the same weights with the other direction differ.
    net = torch_tsn("mobilenetv2", "blockres", False, False, 64)
    ref.save_official(net, tmp_path / "uni.pth", "mobilenetv2")
    clip = clips(64)
    with torch.no_grad():
        expected = net(ref.normalize(clip)).numpy()
    _, model_path = port_checkpoint(tmp_path / "uni.pth", tmp_path / "run", input_size=64, segments=T, shift_div=8)
    assert np.abs(keras_logits(model_path, clip) - expected).max() > 100 * TOLERANCE


def test_streaming_demo_checkpoint_matches_pytorch_frame_by_frame(tmp_path):
    """The demo's bare MobileNetV2 state dict, 27 classes: PyTorch runs frame by frame with
    its own shift buffers; the ported causal Keras model runs the clip at once, and its
    per-frame logits must be the same (a causal model streams frame by frame exactly)."""
    size = 64
    torch.manual_seed(0)
    net = ref.StreamingMobileNetV2(27)
    calibration = ref.normalize(clips(size, batch=4, seed=1))
    ref.randomize(net, seed=0, calibrate=lambda: net.run(calibration))
    path = tmp_path / "mobilenetv2_jester_online.pth.tar"
    torch.save(net.state_dict(), path)
    ported, model_path = port_checkpoint(path, tmp_path / "jester", input_size=size, segments=T)
    assert ported.streaming_demo and ported.model_config["temporal"] == "tsm-online"
    assert ported.model_config["num_classes"] == 27
    clip = clips(size)
    with torch.no_grad():
        expected = net.run(ref.normalize(clip)).numpy()  # (B, T, 27), frame by frame
    per_frame = keras_logits(model_path, clip, layer="logits").reshape(expected.shape)
    difference = np.abs(per_frame - expected).max()
    print(
        f"streaming demo: max |keras - torch| per frame = {difference:.2e} (logits up to {np.abs(expected).max():.2f})"
    )
    assert difference <= TOLERANCE
    # Frames differ, and so do the per-frame outputs: the buffers carry something.
    assert np.abs(expected[:, 1:] - expected[:, :1]).max() > 100 * TOLERANCE


def test_official_checkpoint_container(tmp_path):
    """The official dict (epoch, arch, optimizer state, best_prec1 as a NumPy scalar) in the
    legacy (non-zip) format of the 2019 releases; the optimizer state is not read."""
    net = torch_tsn("mobilenetv2", "blockres", True, False, 64)
    parallel = torch.nn.DataParallel(net)
    content = {
        "epoch": 25,
        "arch": "mobilenetv2",
        "state_dict": parallel.state_dict(),
        "optimizer": {"state": {0: {"momentum_buffer": torch.zeros(3)}}, "param_groups": []},
        "best_prec1": np.float64(69.5),
    }
    path = tmp_path / "TSM_kinetics_RGB_mobilenetv2_shift8_blockres_avg_segment8_e100_dense.pth"
    torch.save(content, path, _use_new_zipfile_serialization=False)
    checkpoint = read_checkpoint(path)
    assert checkpoint.meta == {"epoch": 25, "arch": "mobilenetv2", "best_prec1": 69.5}
    assert all(name.startswith("module.") for name in checkpoint.state)
    assert checkpoint.name_hints["segments"] == 8 and checkpoint.name_hints["dense"]


def test_bare_tensor_dict_saved_by_torch_is_read(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"features.0.0.weight": torch.ones(32, 3, 3, 3, dtype=torch.float16)}, path)
    checkpoint = read_checkpoint(path)
    assert checkpoint.bare and checkpoint.state["features.0.0.weight"].dtype == np.float32


@pytest.mark.parametrize("kind", ["text", "truncated", "pickle_of_a_list", "keras_file", "code"])
def test_wrong_or_corrupt_files_give_one_line_errors(kind, tmp_path, capsys):
    path = tmp_path / "TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e50.pth"
    if kind == "text":
        path.write_text("<html>404 Not Found</html>\n")
    elif kind == "truncated":  # an interrupted download
        torch.save({"state_dict": {"module.base_model.conv1.weight": torch.zeros(64, 3, 7, 7)}, "epoch": 1}, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
    elif kind == "pickle_of_a_list":
        torch.save([torch.zeros(3)], path)
    elif kind == "keras_file":
        path.write_bytes(b"PK\x03\x04" + os.urandom(2000))
    else:  # a pickle that would run code: refused by weights_only loading
        import pickle

        class Payload:
            def __reduce__(self):
                return (os.system, (f"touch {tmp_path / 'ran'}",))

        path.write_bytes(pickle.dumps({"state_dict": Payload()}, protocol=2))
    with pytest.raises(PortError):
        read_checkpoint(path)
    (tmp_path / "runs").mkdir()
    out = tmp_path / "runs" / "model"
    assert main([str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert os.listdir(tmp_path / "runs") == []
    assert not (tmp_path / "ran").exists()


@pytest.mark.slow
def test_resnet101_shifts_every_other_block(tmp_path):
    net = torch_tsn("resnet101", "blockres", True, False, 32)
    ref.save_official(net, tmp_path / "r101.pth", "resnet101")
    clip = clips(32)
    with torch.no_grad():
        expected = net(ref.normalize(clip)).numpy()
    ported, model_path = port_checkpoint(
        tmp_path / "r101.pth", tmp_path / "run", input_size=32, segments=T, shift_div=8
    )
    assert ported.model_config["backbone"] == "resnet101_tv"
    difference = np.abs(keras_logits(model_path, clip) - expected).max()
    print(f"resnet101-blockres: max |keras - torch| = {difference:.2e} (logits up to {np.abs(expected).max():.2f})")
    assert difference <= TOLERANCE


def test_cli_ports_and_reports(tmp_path, capsys):
    net = torch_tsn("mobilenetv2", "blockres", True, False, 64)
    path = tmp_path / "TSM_something_RGB_mobilenetv2_shift8_blockres_avg_segment8_e45.pth"
    ref.save_official(net, path, "mobilenetv2")
    assert main([str(path), "--out", str(tmp_path / "run"), "--input-size", "64", "--segments", str(T)]) == 0
    out = capsys.readouterr().out
    assert "ported 262 tensors" in out and f"segments=4 (given; the file name {path.name} says 8)" in out
