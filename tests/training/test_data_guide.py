"""The own-data guide (docs/data.md) means what it says: every fit.py command in it parses
and resolves to the settings the guide claims, and every later command is the one the
scripts print for that run (the printed chain itself runs in test_own_videos.py)."""

import json
import re
import shlex
from pathlib import Path

import pytest

from tsm_keras.commands.fit import parse_args
from tsm_keras.commands.port import parse_args as port_args
from tsm_keras.training.trainer import default_run_dir, resolve

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "data.md"


def guide_commands():
    text = GUIDE.read_text()
    section = text[text.index("## Your own videos: a guide") : text.index("\n## Sources")]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [shlex.split(line.split("  #")[0]) for block in blocks for line in block.strip().splitlines()]


@pytest.fixture
def guide_folder(own_videos, tmp_path, monkeypatch):
    """The guide's working directory: videos/ (the user-like folder), a ported run in
    runs/kinetics-tsm (config.json of a ported MobileNetV2: bidirectional, 400 classes) and
    the Keras ImageNet weights file copied from another machine."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "videos").symlink_to(own_videos)
    ported = tmp_path / "runs" / "kinetics-tsm"
    ported.mkdir(parents=True)
    config = {
        "model": {
            "num_classes": 400,
            "backbone": "mobilenet_v2_tv",
            "num_segments": 8,
            "input_size": 224,
            "temporal": "tsm",
            "shift_div": 8,
            "shift_place": "blockres",
            "temporal_pool": False,
            "dropout": 0.5,
        }
    }
    (ported / "config.json").write_text(json.dumps(config))
    (tmp_path / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5").write_bytes(b"")
    return tmp_path


def test_every_guide_command_parses_and_means_what_the_guide_says(guide_folder):
    commands = guide_commands()
    fits = [resolve(parse_args(words[2:])) for words in commands if words[:2] == ["python", "training/fit.py"]]
    assert len(fits) == 6
    reference, causal, tuned, tuned_online, scratch, from_file = fits
    assert (reference.temporal, reference.optimizer, reference.weights, reference.input_size) == (
        "tsm",
        "sgd",
        "imagenet",
        224,
    )
    assert causal.temporal == "tsm-online"
    # The reference's fine-tuning recipe, from the ported run's network.
    for o in (tuned, tuned_online):
        assert (o.lr, o.epochs, o.partial_bn, o.head_lr_mult) == (0.001, 25, True, 5.0)
        assert (o.backbone, o.shift_div, o.weights) == ("mobilenet_v2_tv", 8, None)
    assert (tuned.temporal, tuned_online.temporal) == ("tsm", "tsm-online")
    assert scratch.weights is None and from_file.weights.endswith("_no_top.h5")

    # The later commands are what fit.py and convert.py print for the causal run.
    run = default_run_dir(causal, "videos")
    assert str(run) == "runs/videos-mobilenet_v2-tsm-online"
    model = shlex.quote(str(run / "tflite" / "stream_int8.tflite"))
    printed = [
        f"python training/evaluate.py {run}",
        f"python tflite/convert.py {run} --int8",
        f"python tflite/benchmark.py {model}",
        f"python tflite/stream.py {model} --video VIDEO",
    ]
    later = [
        shlex.join(words)
        for words in commands
        if words[1] in ("training/evaluate.py", "tflite/convert.py", "tflite/benchmark.py", "tflite/stream.py")
    ]
    assert later[:3] == printed[:3]
    assert later[3].startswith(printed[3].replace("VIDEO", "")) and "'videos/wave hello/" in later[3]

    ported = [words for words in commands if words[:3] == ["python", "-m", "tsm_keras.port"]]
    assert len(ported) == 1 and port_args(ported[0][3:]).out == "runs/kinetics-tsm"
