"""A user's own folder of videos, end to end: fit.py, then exactly the commands it prints
(evaluate, convert), then the ones convert prints (benchmark, stream), for each recipe path.
The folder (tests/training/conftest.py `own_videos`) mixes codecs and aspect ratios, has a
class named "wave hello", and sits in "my videos"; the runs go to "my runs": every printed
command must survive the spaces."""

import re
import shlex

import numpy as np
import pytest

from tests.tiny import tiny_classifier
from tests.training.commands import next_commands, run_command, run_next_commands
from tests.training.conftest import TINY, USER_CLASSES
from tsm_keras.commands.fit import parse_args
from tsm_keras.models import build_video_classifier
from tsm_keras.run_dir import read_config, write_run
from tsm_keras.training.trainer import _load_all_but_the_classifier, model_kwargs, resolve

# TINY without --weights: a fine-tuned run takes its weights from --tune-from.
TINY_SIZES = [word for pair in zip(TINY[::2], TINY[1::2]) if pair[0] != "--weights" for word in pair]


def fit(data, out, *extra):
    """python training/fit.py --data DATA --out OUT ..., as a user types it."""
    command = shlex.join(["python", "training/fit.py", "--data", str(data), "--out", str(out), *extra])
    return run_command(command).stdout


def load_in_a_fresh_process(preset):
    """What a user's own script does: load the run as a preset; nothing else."""
    script = "import sys, tsm_keras; print(tsm_keras.VideoClassifier.from_preset(sys.argv[1]).output_shape)"
    return run_command(shlex.join(["python", "-c", script, str(preset)])).stdout


def write_source_run(path, temporal="tsm-online", classes=5):
    """A run directory as fit.py or the porter writes it, for a 5-class tiny model."""
    model = tiny_classifier(temporal, num_classes=classes)
    config = {
        "model": dict(
            num_classes=classes,
            backbone="mobilenet_v2",
            num_segments=4,
            input_size=32,
            temporal=temporal,
            shift_div=8,
            width=0.35,
            dropout=0.0,
        )
    }
    write_run(path, model, config, [f"c{i}" for i in range(classes)])
    return model


def test_the_reference_recipe_on_own_videos_evaluates_and_converts(own_videos, tmp_path):
    """--data alone: the reference recipe (SGD, bidirectional TSM). Its clip models convert;
    convert says in one line how to get streaming ones and exits 0. In the default suite (70 s
    in CI): the only test that runs the commands fit.py prints for a plain --data run."""
    out = tmp_path / "my runs" / "sgd"
    printed = fit(own_videos, out, *TINY, "--epochs", "1")
    config = read_config(out)
    assert config["class_names"] == USER_CLASSES
    assert (config["training"]["optimizer"], config["model"]["temporal"]) == ("sgd", "tsm")
    assert "12 training / 3 validation clips, 3 classes" in printed  # one of five held out per class
    evaluated, converted = run_next_commands(printed, out)
    assert "wave hello" in evaluated.stdout and "(3 clips)" in evaluated.stdout
    assert "no streaming models:" in converted.stdout and "--temporal tsm-online" in converted.stdout
    assert "next:" not in converted.stdout
    assert {"clip_float32.tflite", "clip_int8.tflite", "labels.txt"} <= {p.name for p in (out / "tflite").iterdir()}
    assert (out / "tflite" / "labels.txt").read_text().splitlines() == USER_CLASSES
    assert load_in_a_fresh_process(out).strip() == "(None, 3)"


def test_a_fine_tuned_causal_run_on_own_videos_streams_them(own_videos, tmp_path):
    """The fine-tuning recipe (lr 0.001, partial BN, head lr x5) from another run's weights,
    causal so that it streams, in mixed precision: fit -> evaluate -> convert --int8 ->
    benchmark and stream, each command as the previous one printed it."""
    write_source_run(tmp_path / "ported run")
    out = tmp_path / "my runs" / "tuned"
    printed = fit(
        own_videos,
        out,
        *TINY_SIZES,
        "--epochs",
        "1",
        "--tune-from",
        str(tmp_path / "ported run"),
        "--lr",
        "0.001",
        "--partial-bn",
        "--head-lr-mult",
        "5",
        "--mixed-precision",
    )
    config = read_config(out)
    assert config["model"]["temporal"] == "tsm-online" and config["model"]["partial_bn"]  # the source's module
    assert f"weight tensors from {tmp_path / 'ported run'}; a new classifier for 3 classes" in printed
    evaluated, converted = run_next_commands(printed, out)
    assert "wave hello" in evaluated.stdout
    tflite = out / "tflite"
    for kind in ("clip", "stream", "stream_state"):
        for precision in ("float32", "int8"):
            assert (tflite / f"{kind}_{precision}.tflite").is_file(), (kind, precision)
    benchmark, stream = next_commands(converted.stdout)
    model = shlex.quote(str(tflite / "stream_int8.tflite"))
    assert (benchmark, stream) == (
        f"python tflite/benchmark.py {model}",
        f"python tflite/stream.py {model} --video VIDEO",
    )
    assert "step" in run_command(benchmark, "--threads", "1", "--repeats", "3").stdout
    video = own_videos / "wave hello" / "wave_hello_2.mkv"  # portrait FFV1
    annotated = tmp_path / "my runs" / "wave hello.mp4"
    streamed = run_command(stream.replace("VIDEO", shlex.quote(str(video))), "--out", str(annotated))
    assert annotated.stat().st_size > 0
    assert any(name in streamed.stdout for name in USER_CLASSES)
    assert load_in_a_fresh_process(out).strip() == "(None, 3)"


def test_tune_from_copies_every_weight_but_the_classifier(own_videos, tmp_path):
    source = write_source_run(tmp_path / "source")
    options = resolve(
        parse_args(
            [
                "--data",
                str(own_videos),
                "--tune-from",
                str(tmp_path / "source"),
                "--input-size",
                "48",
                "--segments",
                "8",
            ]
        )
    )
    # The architecture is the source run's; clip length and frame size are this run's.
    assert (options.backbone, options.width, options.temporal, options.shift_div) == (
        "mobilenet_v2",
        0.35,
        "tsm-online",
        8,
    )
    assert options.weights is None
    model = build_video_classifier(**model_kwargs(options, 3))
    fresh_head = model.get_layer("logits").kernel.numpy()
    copied = _load_all_but_the_classifier(model, tmp_path / "source")
    assert copied == len(model.weights) - 2
    sources = {w.path: w for w in source.weights}
    for target in model.weights:
        if target.path.split("/")[0] != "logits":
            np.testing.assert_array_equal(target.numpy(), sources[target.path].numpy())
    np.testing.assert_array_equal(model.get_layer("logits").kernel.numpy(), fresh_head)
    assert model.get_layer("logits").kernel.shape == (source.get_layer("logits").kernel.shape[0], 3)


def test_tune_from_names_the_first_weight_that_does_not_fit(tmp_path):
    """Weights are paired by their path in the model, never by position."""
    from tests.tiny import write_run as write_tiny_run

    def tiny(temporal, width=0.35):
        return build_video_classifier(3, num_segments=4, input_size=32, width=width, temporal=temporal)

    write_tiny_run(tmp_path / "source", tiny("tsm-online"))
    tam = tiny("tam-online")
    first = next(w.path for w in tam.weights if "_tam/" in w.path)
    with pytest.raises(ValueError, match=f"its model has no weight {re.escape(first)}$"):
        _load_all_but_the_classifier(tam, tmp_path / "source")
    with pytest.raises(ValueError, match=r"Conv1/kernel has shape \(3, 3, 3, 16\) there, \(3, 3, 3, 32\) in this"):
        _load_all_but_the_classifier(tiny("tsm-online", width=1.0), tmp_path / "source")
    write_tiny_run(tmp_path / "tam", tam, temporal="tam-online")
    with pytest.raises(ValueError, match=f"weights this one lacks, first {re.escape(first)}$"):
        _load_all_but_the_classifier(tiny("tsm-online"), tmp_path / "tam")


@pytest.mark.parametrize(
    "args,message",
    [
        (["--backbone", "resnet50"], "--backbone resnet50 differs from the --tune-from run's mobilenet_v2"),
        (["--width", "1.0"], "--width 1.0 differs from the --tune-from run's 0.35"),
        (["--weights", "none"], "--weights and --tune-from exclude each other"),
    ],
)
def test_tune_from_refuses_another_architecture(own_videos, tmp_path, args, message, capsys):
    write_source_run(tmp_path / "source")
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--data", str(own_videos), "--tune-from", str(tmp_path / "source"), *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_tune_from_may_change_the_weightless_shift_but_not_add_weights(own_videos, tmp_path):
    """A bidirectional model fine-tuned into a causal one (the published Kinetics TSM for a
    phone) keeps every weight; a TAM adds weights the run does not have: a clear error."""
    source = write_source_run(tmp_path / "source", temporal="tsm")
    causal = resolve(
        parse_args(["--data", str(own_videos), "--tune-from", str(tmp_path / "source"), "--temporal", "tsm-online"])
    )
    assert (causal.temporal, causal.shift_div, causal.width) == ("tsm-online", 8, 0.35)
    model = build_video_classifier(**model_kwargs(causal, 3))
    assert _load_all_but_the_classifier(model, tmp_path / "source") == len(source.weights) - 2
    tam = resolve(parse_args(["--data", str(own_videos), "--tune-from", str(tmp_path / "source"), "--temporal", "tam"]))
    with pytest.raises(ValueError, match=r"its model has no weight block_\d+_tam/kernel$"):
        _load_all_but_the_classifier(build_video_classifier(**model_kwargs(tam, 3)), tmp_path / "source")


def test_tune_from_a_folder_that_is_not_a_run(own_videos, tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--data", str(own_videos), "--tune-from", str(own_videos)])
    assert f"--tune-from {own_videos}: no config.json there" in capsys.readouterr().err
