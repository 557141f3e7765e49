import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.training.commands import run_command, run_next_commands
from tests.training.conftest import TINY
from tsm_keras import VideoClassifier
from tsm_keras.commands.fit import parse_args
from tsm_keras.data.augment import SCALES
from tsm_keras.layers.batch_norm import BatchNormalization
from tsm_keras.models import build_video_classifier, parameter_overhead, temporal_modules, walk_layers
from tsm_keras.run_dir import load_run, read_config
from tsm_keras.training.callbacks import checkpoints, read_history
from tsm_keras.training.evaluation import evaluate_run
from tsm_keras.training.trainer import _choose_step, compile_for_training, resolve, train

ROOT = Path(__file__).resolve().parents[2]


def fit_args(data, out, *extra):
    return ["--data", str(data), "--out", str(out), *TINY, *extra]


@pytest.fixture(scope="module")
def tiny_run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    summary, run_dir, model = train(parse_args(fit_args(tiny_data, out, "--epochs", "2")), log=lambda *a: None)
    return summary, run_dir, model


def test_run_directory_has_everything_to_rebuild_and_report(tiny_run):
    summary, run_dir, model = tiny_run
    # A run on the user's data, trained with the multi-scale crop, keeps the paper's test view.
    preprocessing = json.loads((run_dir / "preprocessor.json").read_text())
    assert (preprocessing["resize_short_side"], preprocessing["center_crop"]) == (37, 32)
    for name in (
        "config.json",
        "preprocessor.json",
        "metadata.json",
        "model.weights.h5",
        "run.json",
        "history.csv",
        "curves.png",
        "confusion.png",
        "per_class.csv",
        "summary.json",
    ):
        assert (run_dir / name).is_file(), name
    config = read_config(run_dir)
    assert config["model"]["num_segments"] == 4 and config["model"]["input_size"] == 32
    assert len(config["class_names"]) == 10 and config["training"]["epochs"] == 2
    assert json.loads((run_dir / "config.json").read_text())["config"] == config["model"]
    # The run is a preset: config.json rebuilds the architecture, model.weights.h5 holds the best weights.
    best = VideoClassifier.from_preset(run_dir)
    assert best.class_names == config["class_names"] and best.count_params() == model.count_params()
    clip = np.random.default_rng(0).uniform(0, 255, (1, 4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(load_run(run_dir).model(clip)), np.asarray(best(clip)), atol=1e-6)
    rows = read_history(run_dir / "history.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"loss", "top1", "val_loss", "val_top1", "learning_rate"} <= set(rows[0])
    assert [p.name for p, _ in checkpoints(run_dir / "checkpoints")] == ["epoch-0002.weights.h5"]
    assert summary["clips"] == 10 and np.asarray(summary["confusion"]).sum() == 10
    best_val = max(float(r["val_top1"]) for r in rows)
    assert summary["top1"] == pytest.approx(best_val, abs=1e-6)  # the saved model is the best epoch


def test_evaluate_views_average(tiny_run):
    _, run_dir, _ = tiny_run
    summary, out = evaluate_run(run_dir, clips=2, crops=3, log=lambda *a: None)
    assert summary["views"] == "2clipsx3crops" and summary["clips"] == 10
    assert (out / "confusion.png").is_file() and (out / "summary.json").is_file()


def test_same_directory_with_other_settings_is_refused(tiny_run, tiny_data):
    _, run_dir, _ = tiny_run
    with pytest.raises(ValueError, match=r"other settings .*lr: 0.05 -> 0.1"):
        train(parse_args(fit_args(tiny_data, run_dir, "--epochs", "2", "--lr", "0.1")), log=lambda *a: None)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--backbone", "vgg"], "invalid choice: 'vgg'"),
        (["--segments", "0"], "--segments must be >= 1"),
        (["--input-size", "16"], "--input-size 16 is too small for mobilenet_v2"),
        (["--data", "/no/such/videos"], "--data /no/such/videos does not exist"),
        (["--width", "0.5", "--backbone", "resnet50"], "--width applies to MobileNetV2 only"),
        (["--crop-scales", "1.0", "0"], "--crop-scales must be fractions in (0, 1]"),
    ],
)
def test_invalid_arguments_fail_at_start_with_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_demo_trains_without_crops_and_user_data_with_the_multi_scale_crop(tiny_data):
    assert parse_args([]).crop_scales is None  # filled in by the profile, not by argparse
    assert resolve(parse_args([])).crop_scales == (1.0,)
    assert resolve(parse_args(["--data", str(tiny_data)])).crop_scales == SCALES
    assert resolve(parse_args(["--crop-scales", "1", "0.8"])).crop_scales == (1.0, 0.8)


def test_the_demo_trains_a_streamable_model_and_user_data_the_reference_tsm(tiny_data):
    demo, user = resolve(parse_args([])), resolve(parse_args(["--data", str(tiny_data)]))
    assert (demo.temporal, demo.shift_div) == ("tsm-online", 4)  # 1/4 of the channels move, as in tsm
    assert (user.temporal, user.shift_div) == ("tsm", 8)  # the reference: 1/8 each way
    assert resolve(parse_args(["--temporal", "tsm"])).shift_div == 8
    assert resolve(parse_args(["--data", str(tiny_data), "--temporal", "tsm-online"])).shift_div == 8
    assert resolve(parse_args(["--shift-div", "8"])).shift_div == 8


def test_the_step_runs_in_graph_mode_with_onednn_unless_asked():
    # Measured on this CPU (benchmarks/vs_pytorch.py, docs/benchmarks.md): graph mode with oneDNN's
    # kernels and the fused BatchNormalization beat XLA for ResNet-50 and MobileNetV2.
    chosen = {}
    for args in ([], ["--backbone", "resnet50"], ["--backbone", "resnet50", "--no-xla"], ["--xla"]):
        o = resolve(parse_args(args))
        message = _choose_step(o)
        chosen[" ".join(args)] = o.xla
        assert message.startswith("XLA") == o.xla
        assert message.endswith("; oneDNN CPU kernels"), message  # tests/conftest.py loads TensorFlow as a command
    assert chosen == {"": False, "--backbone resnet50": False, "--backbone resnet50 --no-xla": False, "--xla": True}
    assert _choose_step(resolve(parse_args([]))).startswith("graph mode, fused BatchNormalization (`xla=True`")


def test_eigen_kernels_on_an_x86_cpu_warn_once_with_the_remedy(monkeypatch):
    from tsm_keras.training import trainer

    monkeypatch.setattr(trainer, "onednn_enabled", lambda: False)  # as with TF_ENABLE_ONEDNN_OPTS=0
    monkeypatch.setattr(trainer.platform, "machine", lambda: "x86_64")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's own filter: once per place
        messages = [_choose_step(resolve(parse_args([]))) for _ in range(2)]
    assert all(message.endswith("; TensorFlow's Eigen CPU kernels") for message in messages), messages
    assert [str(w.message) for w in caught] == [trainer.EIGEN_WARNING]
    assert (
        "TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow loads" in trainer.EIGEN_WARNING
        and "tsm-fit" in trainer.EIGEN_WARNING
    )


def test_on_a_gpu_keras_decides_unless_asked(monkeypatch):
    # No GPU here: TensorFlow is told it has one, which is all `_choose_step` reads.
    real = tf.config.list_physical_devices
    monkeypatch.setattr(
        tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else real(kind)
    )
    o = resolve(parse_args([]))
    assert _choose_step(o).startswith("as Keras decides on a GPU (jit_compile='auto'") and o.xla == "auto"
    for flag, xla in (("--xla", True), ("--no-xla", False)):
        o = resolve(parse_args([flag]))
        assert _choose_step(o).endswith("(as asked); GPU speed not measured yet") and o.xla is xla


def test_the_demo_trains_with_the_fused_batch_norm(tiny_run):
    # In graph mode fit.py gives every BatchNormalization TensorFlow's fused training kernel
    # (tsm_keras.layers.batch_norm); its saved weights load into Keras' layer, which infers alike.
    _, run_dir, model = tiny_run
    loaded = load_run(run_dir).model
    for network, kind in ((model, BatchNormalization), (loaded, keras.layers.BatchNormalization)):
        norms = [layer for layer in walk_layers(network) if isinstance(layer, keras.layers.BatchNormalization)]
        assert len(norms) > 10 and {type(layer) for layer in norms} == {kind}


def test_benchmarks_compile_a_model_with_the_demos_training_set_up():
    # benchmarks/shift_overhead.py --train times fit.py's step: `train` and it share compile_for_training.
    o = resolve(parse_args(["--no-xla"]))
    model = build_video_classifier(10, num_segments=4, input_size=32, temporal="tsm-online", width=0.35, weights=None)
    model = compile_for_training(model, o, steps_per_epoch=125)
    norms = [layer for layer in walk_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    assert {type(layer) for layer in norms} == {BatchNormalization}
    config = model.optimizer.get_config()
    assert type(model.optimizer) is keras.optimizers.AdamW and model.jit_compile is False
    assert (config["weight_decay"], config["global_clipnorm"]) == (1e-4, 20.0)
    schedule = config["learning_rate"]["config"]
    assert schedule == {
        "peak": 0.002,
        "total_steps": 2500,
        "warmup_steps": 125,
        "kind": "cosine",
        "boundaries": [1000, 2000],
    }


def test_a_run_resumes_with_the_step_compiled_another_way(tiny_run, tiny_data, capsys):
    # XLA or not changes the speed, not the numbers: not a reason to refuse the run directory.
    _, run_dir, _ = tiny_run
    summary, _, _ = train(parse_args(fit_args(tiny_data, run_dir, "--epochs", "2", "--xla")), log=print)
    assert "training step: XLA (as asked)" in capsys.readouterr().out
    assert summary["top1"] >= 0


def test_killed_run_resumes_after_its_last_epoch(tiny_data, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, str(ROOT / "training" / "fit.py"), *fit_args(tiny_data, out, "--epochs", "3")]
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not checkpoints(out / "checkpoints") and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done = checkpoints(out / "checkpoints")[-1][1]
    assert 1 <= done < 3, "the run should be killed after its first checkpoint and before the end"
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resuming after epoch {done}" in second.stdout
    rows = read_history(out / "history.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [n for _, n in checkpoints(out / "checkpoints")] == [3]
    assert "validation top-1" in second.stdout


# The bidirectional TAM trains end to end in the default suite inside bLVNet-TAM
# (tests/training/test_blvnet_fit.py); here it is slow (30 s).
@pytest.mark.parametrize("temporal,window", [pytest.param("tam", 3, marks=pytest.mark.slow), ("tam-online", 2)])
def test_tam_trains_end_to_end_and_reports_its_parameters(tiny_data, tmp_path, temporal, window):
    lines = []
    out = tmp_path / temporal
    summary, run_dir, model = train(
        parse_args(fit_args(tiny_data, out, "--temporal", temporal, "--epochs", "1")), log=lines.append
    )
    assert read_config(run_dir)["model"]["temporal"] == temporal
    assert summary["clips"] == 10
    # The start-up summary: r * C per module and the total against the 2D model.
    overhead = parameter_overhead(model)
    channels = [int(layer.kernel.shape[1]) for layer in temporal_modules(model)]
    assert list(overhead.per_module.values()) == [window * c for c in channels] and len(channels) == 10
    line = next(l for l in lines if l.startswith("temporal parameters:"))
    assert f"{window * channels[0]:,}, " in line and f"+{overhead.total:,} on the {overhead.base:,}" in line
    # The best model reloads with its learned aggregation weights.
    loaded = load_run(run_dir).model
    clip = np.random.default_rng(0).uniform(0, 255, (1, 4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(clip)), np.asarray(model(clip)), atol=1e-5)


def test_the_default_demo_chain_ends_in_int8_streaming_models(tiny_data, tmp_path, monkeypatch, capsys):
    """`python training/fit.py` (the demo profile, at tiny sizes on a tiny built-in set), then
    the commands it prints: convert --int8 writes the clip model and both streaming models
    in float32 and int8, benchmark.py times them, stream.py annotates a video."""
    from tsm_keras.commands.fit import main
    from tsm_keras.data import synthetic

    monkeypatch.setattr(synthetic, "ensure_default_dataset", lambda *args, **kwargs: tiny_data)
    out = tmp_path / "demo"
    main(["--out", str(out), *TINY[2:], "--epochs", "1"])  # no --data: the built-in demo
    printed = capsys.readouterr().out
    assert read_config(out)["model"]["temporal"] == "tsm-online"
    run_next_commands(printed, out)
    tflite = out / "tflite"
    streaming = {f"{kind}_{p}.tflite" for kind in ("stream", "stream_state") for p in ("float32", "int8")}
    assert streaming | {"clip_float32.tflite", "clip_int8.tflite"} <= {p.name for p in tflite.iterdir()}
    timed = run_command(f"python tflite/benchmark.py {tflite / 'stream_int8.tflite'} --threads 1 --repeats 3")
    assert "step" in timed.stdout
    video = next((tiny_data / "val" / "00_move_right").glob("*.avi"))
    annotated = tmp_path / "annotated.mp4"
    streamed = run_command(
        f"python tflite/stream.py {tflite / 'stream_int8.tflite'} --stride 2 --video {video} --out {annotated}"
    )
    assert annotated.stat().st_size > 0
    # One view from training to phone: the demo trains on whole frames, is evaluated, calibrated
    # and gated on whole frames, and the app crops whole frames.
    view = {"resize_short_side": 32, "center_crop": 32}
    config = read_config(out)
    assert {k: config["preprocessing"][k] for k in view} == view
    assert json.loads((tflite / "report.json").read_text())["preprocessing"] == view
    assert f"# view: short side to 32 px, centre 32 px ({tflite / 'report.json'})" in streamed.stdout


def test_deterministic_runs_of_one_seed_give_the_same_history(tiny_data, tmp_path):
    # Each run in its own process: op determinism is process-wide and cannot be turned off.
    printed, histories = [], []
    for name in ("first", "again"):
        out = tmp_path / name
        args = " ".join(fit_args(tiny_data, out, "--epochs", "2", "--seed", "3", "--deterministic"))
        printed.append(run_command(f"python training/fit.py {args}").stdout)
        histories.append((out / "history.csv").read_text())
    assert "; deterministic (TensorFlow's op determinism)" in printed[0]
    assert histories[0] == histories[1] and histories[0].count("\n") == 3
    assert read_config(tmp_path / "first")["training"]["deterministic"] is True
