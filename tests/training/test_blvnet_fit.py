"""bLVNet-TAM through the whole chain at tiny sizes: fit.py -> evaluate.py -> convert.py --int8."""

import json

import numpy as np
import pytest

from tests.training.conftest import TINY
from tsm_keras.commands.fit import parse_args
from tsm_keras.models import temporal_modules
from tsm_keras.run_dir import load_run, read_config
from tsm_keras.training.evaluation import evaluate_run
from tsm_keras.training.trainer import resolve, train

# The CPU-sized preset (two blocks per stage, a quarter of the channels; the full blresnet50
# takes minutes to trace and convert on 2 cores: the slow test below), 32 px, 2T = 4 frames
# (2 pairs), batch 4, one epoch on the tiny built-in set (30 clips).
TINY_BLVNET = ["--temporal", "tam", *TINY[4:]]


def test_blvnet_recipe_defaults(tiny_data):
    user = resolve(parse_args(["--data", str(tiny_data), "--backbone", "blresnet50"]))
    assert (user.temporal, user.segments, user.optimizer, user.schedule) == ("tam", 16, "nesterov", "cosine")
    assert (user.lr, user.weight_decay, user.epochs, user.warmup_epochs, user.weights) == (0.01, 5e-4, 50, 0, None)
    demo = resolve(parse_args(["--backbone", "blresnet50"]))
    assert (demo.temporal, demo.segments, demo.width) == ("tam", 8, 1.0)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--segments", "5"], "must be an even integer"),
        (["--input-size", "48"], "multiple of 32"),
        (["--temporal", "tsm-online"], "must be one of"),
    ],
)
def test_blvnet_settings_fail_at_start(args, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--backbone", "blresnet50", *args])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "backbone,modules", [("blresnet_cpu", 6), pytest.param("blresnet50", 7, marks=pytest.mark.slow)]
)
def test_fit_evaluate_convert_int8(tiny_data, tmp_path, capsys, backbone, modules):
    from tsm_keras.commands.convert import main as convert

    lines = []
    out = tmp_path / "blvnet"
    args = ["--data", str(tiny_data), "--out", str(out), "--backbone", backbone, *TINY_BLVNET, "--epochs", "1"]
    summary, run_dir, model = train(parse_args(args), log=lines.append)
    config = read_config(run_dir)["model"]
    assert (config["backbone"], config["temporal"], config["num_segments"]) == (backbone, "tam", 4)
    started = f"TAM (learned aggregation of frames t-1, t, t+1) on {backbone}, 4 frames (2 pairs) of 32 px"
    assert any(started in line for line in lines)
    assert len(temporal_modules(model)) == modules and summary["clips"] == 10

    evaluated, report_dir = evaluate_run(run_dir, log=lambda *a: None)
    assert evaluated["clips"] == 10 and evaluated["top1"] == pytest.approx(summary["top1"], abs=1e-6)

    assert convert([str(run_dir), "--int8", "--force", "--calibration-clips", "4"]) == 0
    printed = capsys.readouterr().out
    refusal = next(line for line in printed.splitlines() if line.startswith("no streaming models:"))
    assert "bLVNet has no per-frame streaming model: it pairs frames (2k, 2k+1)" in refusal
    report = json.loads((run_dir / "tflite" / "report.json").read_text())
    assert {"clip_float32.tflite", "clip_int8.tflite"} == set(report["files"])
    # The float clip model equals Keras (1e-4, checked by convert.py itself) on clips whose frames differ.
    assert report["verification"]["clip_float32.tflite"]["max_abs_difference_vs_keras"] <= 1e-4
    operators = set(report["files"]["clip_int8.tflite"]["operators"])
    # Pairing: STRIDED_SLICE and CONCATENATION; the 2x nearest upsampling: TILE; TAM: DEPTHWISE_CONV_2D.
    assert {"STRIDED_SLICE", "CONCATENATION", "TILE", "AVERAGE_POOL_2D", "DEPTHWISE_CONV_2D"} <= operators
    assert not any("FLEX" in op or "CUSTOM" in op for op in operators)
    # The run reloads as it was written.
    reloaded = load_run(run_dir).model
    clip = np.random.default_rng(0).uniform(0, 255, (1, 4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(reloaded(clip)), np.asarray(model(clip)), atol=1e-5)
