"""Porting logic that needs no PyTorch: names, leftovers, missing tensors, bad files, outputs.

State dicts come from tests/port/synthetic.py (NumPy, official names) and travel as .npz.
"""

import os
import sys

import numpy as np
import pytest

from tests.port.synthetic import mobilenet_v2_state, resnet_state
from tsm_keras.commands.port import main
from tsm_keras.layers import NonLocalBlock
from tsm_keras.models import build_video_classifier, temporal_modules
from tsm_keras.port import PortError, name_hints, parse_run_name, port_checkpoint, port_state_dict, read_checkpoint
from tsm_keras.run_dir import PRESET_FILES, load_run, read_config

T, S = 4, 32


def save_npz(path, state):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, **state)
    return path


def test_file_name_pattern():
    hints = parse_run_name("/x/TSM_kinetics_RGB_resnet50_shift8_blockres_tpool_avg_segment8_e100_dense.pth")
    assert hints["dataset"] == "kinetics" and hints["arch"] == "resnet50" and hints["segments"] == 8
    assert hints["shift_div"] == 8 and hints["shift_place"] == "blockres" and hints["tpool"] and hints["dense"]
    tsn = parse_run_name("TSM_something_RGB_resnet50_avg_segment5_e50.pth")
    assert tsn["shift"] is False and tsn["segments"] == 5 and "shift_div" not in tsn
    assert parse_run_name("TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e100_dense_nl.pth")["non_local"]
    assert parse_run_name("mobilenetv2_jester_online.pth.tar") == {}


def test_mobilenet_v2_tensors_land_on_the_layers_of_the_same_name(tmp_path):
    state = mobilenet_v2_state(num_classes=5)
    path = save_npz(tmp_path / "TSM_kinetics_RGB_mobilenetv2_shift8_blockres_avg_segment4_e50.npz", state)
    ported, model_path = port_checkpoint(path, tmp_path / "run", input_size=S)
    assert ported.model_config == {
        "num_classes": 5,
        "backbone": "mobilenet_v2_tv",
        "num_segments": T,
        "input_size": S,
        "temporal": "tsm",
        "shift_div": 8,
        "shift_place": "blockres",
        "temporal_pool": False,
        "non_local": False,
        "dropout": 0.5,
    }
    # every tensor but the 52 BN step counters
    assert ported.tensors == len(state) - sum(name.endswith("num_batches_tracked") for name in state)
    assert model_path == str(tmp_path / "run")
    model = load_run(model_path).model
    backbone = model.get_layer("backbone")
    base = "module.base_model.features"
    np.testing.assert_array_equal(  # shifted 1x1 conv (out, in, 1, 1) -> (1, 1, in, out)
        backbone.get_layer("block_2_expand").kernel, state[f"{base}.3.conv.0.net.weight"].transpose(2, 3, 1, 0)
    )
    np.testing.assert_array_equal(  # depthwise (C, 1, 3, 3) -> (3, 3, C, 1)
        backbone.get_layer("block_1_depthwise").kernel, state[f"{base}.2.conv.3.weight"].transpose(2, 3, 0, 1)
    )
    np.testing.assert_array_equal(  # t=1 block: features.1 = expanded_conv (no expansion conv)
        backbone.get_layer("expanded_conv_project").kernel, state[f"{base}.1.conv.3.weight"].transpose(2, 3, 1, 0)
    )
    bn = backbone.get_layer("block_16_project_BN")
    for keras_name, torch_name in [
        ("gamma", "weight"),
        ("beta", "bias"),
        ("moving_mean", "running_mean"),
        ("moving_variance", "running_var"),
    ]:
        np.testing.assert_array_equal(getattr(bn, keras_name), state[f"{base}.17.conv.7.{torch_name}"])
    np.testing.assert_array_equal(
        backbone.get_layer("Conv_1").kernel, state[f"{base}.18.0.weight"].transpose(2, 3, 1, 0)
    )
    np.testing.assert_array_equal(model.get_layer("logits").kernel, state["module.new_fc.weight"].T)
    np.testing.assert_array_equal(model.get_layer("logits").bias, state["module.new_fc.bias"])
    assert backbone.get_layer("bn_Conv1").epsilon == 1e-5

    run = tmp_path / "run"
    assert sorted(os.listdir(run)) == sorted(PRESET_FILES)
    config = read_config(run)
    assert config["class_names"] == [f"class_{i}" for i in range(5)]
    assert config["source"]["checkpoint"] == path.name
    assert config["preprocessing"]["color"] == "RGB"
    assert config["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
    assert config["preprocessing"]["std"] == [0.229, 0.224, 0.225]
    # the contract of evaluate.py / convert.py: config["model"] rebuilds the same model
    rebuilt = build_video_classifier(**config["model"])
    assert [layer.name for layer in rebuilt.get_layer("backbone").layers] == [layer.name for layer in backbone.layers]
    rebuilt.set_weights(model.get_weights())
    clip = np.random.default_rng(0).uniform(0, 255, (1, T, S, S, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(rebuilt(clip)), np.asarray(model(clip)))


def test_resnet_placement_and_pooling_come_from_the_net_wrappers():
    ported = port_state_dict(resnet_state(50, place="block", tpool=True), segments=T, shift_div=8, input_size=S)
    config = ported.model_config
    assert config["backbone"] == "resnet50_tv" and config["shift_place"] == "block" and config["temporal_pool"]
    modules = {layer.name: layer.num_segments for layer in temporal_modules(ported.model)}
    assert (
        modules["temporal_pool"] == T and modules["conv2_block3_shift"] == T and modules["conv3_block1_shift"] == T // 2
    )
    assert len(modules) == 17


def test_leftover_and_missing_tensors_fail_with_their_names():
    state = mobilenet_v2_state()
    state["module.base_model.features.3.conv.9.weight"] = np.zeros((1,), "float32")
    del state["module.base_model.features.5.conv.4.running_var"]
    with pytest.raises(PortError) as error:
        port_state_dict(state, segments=T, shift_div=8, input_size=S)
    message = str(error.value)
    assert "module.base_model.features.3.conv.9.weight" in message  # leftover, as named in the file
    assert "features.5.conv.4.running_var" in message  # missing
    assert "\n" not in message


def test_wrong_shapes_fail_with_their_names():
    state = mobilenet_v2_state(num_classes=5)
    state["module.new_fc.weight"] = np.zeros((5, 1000), "float32")
    with pytest.raises(PortError, match=r"module.new_fc.weight \[5, 1000\] for logits/kernel \[1280, 5\]"):
        port_state_dict(state, segments=T, shift_div=8, input_size=S)


def test_shifts_where_the_model_does_not_put_them_are_refused():
    state = resnet_state(50)
    # a shift on block 2 of layer1 removed: the model would shift there, the checkpoint does not
    state["module.base_model.layer1.1.conv1.weight"] = state.pop("module.base_model.layer1.1.conv1.net.weight")
    with pytest.raises(PortError, match=r"only the model wraps \['layer1.1.conv1'\]"):
        port_state_dict(state, segments=T, shift_div=8, input_size=S)


@pytest.mark.parametrize(
    "state,options,message",
    [
        (
            lambda: {
                **resnet_state(50),
                "module.base_model.layer2.0.nl.g.0.weight": np.zeros((1, 1, 1, 1, 1), "float32"),
            },
            {},
            r"non-local tensors without the '.block' wrapper .*layer2.0.*module.base_model.layer2.0.nl.g.0.weight",
        ),
        (lambda: resnet_state(18), {}, "basic blocks"),
        (
            lambda: {**resnet_state(50), "module.base_model.conv1.weight": np.zeros((64, 10, 7, 7), "float32")},
            {},
            "10 input channels: only RGB",
        ),
        (
            lambda: {
                "features.1.conv.0.0.weight": np.zeros((32, 1, 3, 3), "float32"),
                "features.0.0.weight": np.zeros((32, 3, 3, 3), "float32"),
            },
            {},
            "torchvision's own MobileNetV2 layout",
        ),
        (lambda: {"encoder.weight": np.zeros((3, 3), "float32")}, {}, "not a TSM ResNet-50/101 or MobileNetV2"),
        (
            lambda: resnet_state(50),
            {"arch": "mobilenetv2"},
            "`arch` says 'mobilenetv2' but the tensors are those of a resnet50_tv",
        ),
        (lambda: resnet_state(50), {"name_hints": {"arch": "resnet101"}}, "file name says 'resnet101'"),
        (lambda: resnet_state(50), {"num_classes": 400}, "`num_classes=400` but the checkpoint's classifier has 5"),
        (
            lambda: resnet_state(50),
            {"shift_place": "block"},
            "`shift_place='block'` but the checkpoint shifts as 'blockres'",
        ),
        (lambda: resnet_state(50), {"temporal_pool": True}, "`temporal_pool=True` but the checkpoint does not pool"),
        (lambda: resnet_state(50), {"temporal": "none"}, "`temporal='none'` but the checkpoint shifts"),
        (lambda: resnet_state(50, place=None), {"temporal": "tsm"}, "no temporal shift"),
        (lambda: mobilenet_v2_state(base="", head="classifier", shifted=False), {"shift_div": 4}, "1/8"),
    ],
)
def test_other_architectures_and_contradictions_are_refused(state, options, message):
    options = {"segments": T, "input_size": S, **options}
    with pytest.raises(PortError, match=message):
        port_state_dict(state(), **options)


def test_the_streaming_demo_layout_is_unidirectional():
    # bare state dict: no 'module.', no 'base_model.', no '.net', classifier named 'classifier'
    state = mobilenet_v2_state(num_classes=27, shifted=False, base="", head="classifier")
    ported = port_state_dict(state, segments=T, shift_div=8, input_size=S)
    assert ported.streaming_demo and ported.model_config["temporal"] == "tsm-online"
    assert len(temporal_modules(ported.model)) == 10
    assert (
        port_state_dict(state, segments=T, shift_div=8, input_size=S, temporal="tsm").model_config["temporal"] == "tsm"
    )


def test_tsn_checkpoints_port_without_shifts():
    ported = port_state_dict(mobilenet_v2_state(shifted=False), segments=T, input_size=S)
    assert ported.model_config["temporal"] == "none" and not temporal_modules(ported.model)


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "empty"),
        (b"this is not a checkpoint\n", "not a readable .npz"),
        ("truncated", "not a readable .npz"),
    ],
)
def test_corrupt_files_give_one_line_errors_and_write_nothing(tmp_path, capsys, content, message):
    path = tmp_path / "model.npz"
    if content == "truncated":
        save_npz(path, mobilenet_v2_state())
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(PortError, match=message):
        read_checkpoint(path)
    (tmp_path / "runs").mkdir()
    out = tmp_path / "runs" / "run"
    assert main([str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message.split()[0] in err
    assert not out.exists() and os.listdir(tmp_path / "runs") == []  # no half-written model, no temp dir


def test_a_failing_port_leaves_existing_outputs_alone(tmp_path, capsys):
    good = str(save_npz(tmp_path / "good.npz", mobilenet_v2_state()))
    out = tmp_path / "run"
    assert main([good, "--out", str(out), "--segments", str(T), "--shift-div", "8", "--input-size", str(S)]) == 0
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    assert (
        main([good, "--out", str(out), "--segments", str(T), "--shift-div", "8", "--input-size", str(S)]) == 2
    )  # exists
    assert "--force" in capsys.readouterr().err
    broken = mobilenet_v2_state()
    del broken["module.new_fc.bias"]
    bad = str(save_npz(tmp_path / "bad.npz", broken))
    assert main([bad, "--out", str(out), "--force", "--segments", str(T), "--input-size", str(S)]) == 2
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\nd\ne\n")
    named = tmp_path / "named"
    arguments = ["--labels", str(labels), "--segments", str(T), "--shift-div", "8", "--input-size", str(S)]
    assert main([good, "--out", str(named), *arguments]) == 0
    assert read_config(named)["class_names"] == list("abcde")
    assert main([good, "--out", str(tmp_path / "single" / "tsm.keras"), *arguments]) == 2
    assert "the porter writes a preset directory" in capsys.readouterr().err
    assert not (tmp_path / "single").exists()
    labels.write_text("a\nb\n")
    assert (
        main([good, "--out", str(tmp_path / "x"), "--labels", str(labels), "--segments", "4", "--shift-div", "8"]) == 2
    )
    assert "has 2 class names; the checkpoint has 5 classes" in capsys.readouterr().err


def test_pth_without_torch_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as on a machine without torch
    path = tmp_path / "TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e50.pth"
    path.write_bytes(b"PK\x03\x04 not read")
    with pytest.raises(PortError, match=r"needs torch: `pip install -e \.\[port\]`"):
        read_checkpoint(path)


def test_settings_come_from_the_run_folder_of_a_training_checkpoint(tmp_path):
    """The official training script saves RUN_NAME/ckpt.best.pth.tar; the run name carries
    segments and shift_div, with suffixes the released names do not have."""
    folder = tmp_path / "TSM_something_RGB_mobilenetv2_shift4_blockres_avg_segment4_e45_cos_mine"
    path = save_npz(folder / "ckpt.best.npz", mobilenet_v2_state())
    ported, _ = port_checkpoint(path, tmp_path / "run", input_size=S)
    assert (ported.model_config["num_segments"], ported.model_config["shift_div"]) == (4, 4)
    assert f"shift_div=4 (from the folder name {folder.name})" in ported.notes
    source = read_config(tmp_path / "run")["source"]
    assert source["settings_from"] == f"the folder name {folder.name}" and source["dataset"] == "something"


def test_settings_nothing_names_are_asked_for_and_nothing_is_written(tmp_path):
    path = save_npz(tmp_path / "my_run" / "ckpt.best.npz", mobilenet_v2_state())
    with pytest.raises(PortError, match="segments is not in the checkpoint's file or folder name.*pass `segments`"):
        port_checkpoint(path, tmp_path / "run", input_size=S)
    with pytest.raises(PortError, match="shift_div is not .*pass `shift_div`"):
        port_checkpoint(path, tmp_path / "run", input_size=S, segments=4)
    assert not (tmp_path / "run").exists()
    # Given, both: ported. A TSN checkpoint needs no shift_div.
    assert (
        port_checkpoint(path, tmp_path / "run", input_size=S, segments=4, shift_div=4)[0].model_config["shift_div"] == 4
    )
    tsn = save_npz(tmp_path / "tsn" / "ckpt.npz", mobilenet_v2_state(shifted=False))
    assert port_checkpoint(tsn, tmp_path / "tsn_run", input_size=S, segments=4)[0].model_config["temporal"] == "none"


def test_known_published_files_without_settings_in_their_names():
    hints = name_hints("/downloads/mobilenetv2_jester_online.pth.tar")
    assert (hints["segments"], hints["shift_div"]) == (8, 8) and "known published file" in hints["source"]
    assert name_hints("/downloads/model.pth") == {}


NL = "TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment4_e100_dense_nl.npz"


def test_non_local_tensors_land_on_the_non_local_blocks():
    state = resnet_state(50, non_local=True)
    ported = port_state_dict(state, name_hints=parse_run_name(NL), shift_div=8, input_size=S)
    assert ported.model_config["non_local"] and ported.model_config["backbone"] == "resnet50_tv"
    assert ported.tensors == len(state) - sum(name.endswith("num_batches_tracked") for name in state)
    backbone = ported.model.get_layer("backbone")
    assert [layer.name for layer in temporal_modules(backbone, NonLocalBlock)] == [
        "conv3_block1_nl",
        "conv3_block3_nl",
        "conv4_block1_nl",
        "conv4_block3_nl",
        "conv4_block5_nl",
    ]
    base = "module.base_model"
    for keras_name, torch_name in [
        ("conv3_block1_1_conv", "layer2.0.block.conv1.net"),  # the wrapped block: .block and .net dropped
        ("conv4_block2_1_conv", "layer3.1.conv1.net"),  # a block between two non-local ones: not wrapped
    ]:
        weight = state[f"{base}.{torch_name}.weight"]
        np.testing.assert_array_equal(backbone.get_layer(keras_name).kernel, weight.transpose(2, 3, 1, 0))
    block = backbone.get_layer("conv4_block5_nl")
    nl = f"{base}.layer3.4.nl"
    for conv, name in [(block.theta, "theta"), (block.phi, "phi.0"), (block.g, "g.0"), (block.W, "W.0")]:
        weight = state[f"{nl}.{name}.weight"]  # Conv3d (out, in, 1, 1, 1) -> (1, 1, in, out)
        np.testing.assert_array_equal(conv.kernel, weight[:, :, 0].transpose(2, 3, 1, 0))
        np.testing.assert_array_equal(conv.bias, state[f"{nl}.{name}.bias"])
    assert block.theta.kernel.shape == (1, 1, 1024, 512) and block.W.kernel.shape == (1, 1, 512, 1024)
    for keras_name, torch_name in [
        ("gamma", "weight"),
        ("beta", "bias"),
        ("moving_mean", "running_mean"),
        ("moving_variance", "running_var"),
    ]:
        np.testing.assert_array_equal(getattr(block.batch_norm, keras_name), state[f"{nl}.W.1.{torch_name}"])


def test_non_local_leftover_missing_and_misplaced_tensors_fail():
    base = "module.base_model"
    state = resnet_state(50, non_local=True)
    state[f"{base}.layer2.0.nl.extra.weight"] = np.zeros((1,), "float32")
    del state[f"{base}.layer3.4.nl.W.1.running_var"]
    with pytest.raises(PortError) as error:
        port_state_dict(state, segments=T, shift_div=8, input_size=S)
    message = str(error.value)
    assert f"{base}.layer2.0.nl.extra.weight" in message and "layer3.4.nl.W.1.running_var" in message
    # a non-local block after layer3[3] instead of layer3[4]: not where the model puts them
    moved = {
        name.replace("layer3.4.nl", "layer3.3.nl")
        .replace("layer3.4.block", "layer3.3.block")
        .replace("layer3.3.conv", "layer3.4.conv")
        .replace("layer3.3.bn", "layer3.4.bn"): value
        for name, value in resnet_state(50, non_local=True).items()
    }
    with pytest.raises(PortError, match=r"non-local blocks are not where .*only the checkpoint wraps \['layer3.3'\]"):
        port_state_dict(moved, segments=T, shift_div=8, input_size=S)


@pytest.mark.parametrize(
    "state,options,message",
    [
        (lambda: resnet_state(50), {"non_local": True}, "`non_local=True` but the checkpoint has no non-local blocks"),
        (lambda: resnet_state(50, non_local=True), {"non_local": False}, "it is a _nl model"),
        (
            lambda: resnet_state(50),
            {"name_hints": parse_run_name(NL)},
            "file name and the tensors disagree on non-local blocks",
        ),
        (
            lambda: resnet_state(50, non_local=True),
            {"name_hints": parse_run_name(NL.replace("_nl", ""))},
            r"disagree on non-local blocks \(name: none, tensors: non-local at layer2.0\)",
        ),
        (
            lambda: {
                **resnet_state(50, non_local=True),
                **{k.replace("layer2.0.block", "layer2.0"): v for k, v in resnet_state(50).items() if "layer2.0." in k},
            },
            {},
            "both hold",
        ),
        (lambda: resnet_state(101, non_local=True), {}, "non-local blocks in a resnet101_tv checkpoint"),
    ],
)
def test_non_local_contradictions_are_refused(state, options, message):
    options = {"segments": T, "shift_div": 8, "input_size": S, **options}
    with pytest.raises(PortError, match=message):
        port_state_dict(state(), **options)


def test_cli_non_local_flag_is_checked_against_the_tensors(tmp_path, capsys):
    path = save_npz(tmp_path / "TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment4_e50.npz", resnet_state(50))
    assert main([str(path), "--out", str(tmp_path / "run"), "--non-local"]) == 2
    assert "--non-local but the checkpoint has no non-local blocks" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
