"""fit.py's --non-local: what it builds, what it refuses, and runs from before the option still resume."""

import json

import pytest

from tsm_keras.commands.fit import parse_args
from tsm_keras.training.trainer import _check_resume_compatible, model_kwargs, resolve

RESNET = ["--backbone", "resnet50_tv", "--weights", "none", "--input-size", "32", "--segments", "4"]


def test_non_local_goes_into_the_model_config():
    options = resolve(parse_args(RESNET + ["--non-local"]))
    assert model_kwargs(options, 3)["non_local"] is True
    assert model_kwargs(resolve(parse_args(RESNET)), 3)["non_local"] is False


@pytest.mark.parametrize(
    "args,message",
    [
        (["--non-local"], "--non-local is defined for ResNet-50 (resnet50, resnet50_tv), not for mobilenet_v2"),
        (RESNET + ["--non-local", "--temporal-pool"], "--non-local and --temporal-pool exclude each other"),
    ],
)
def test_refused_at_start_with_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_run_from_before_the_option_resumes(tmp_path):
    config = {
        "model": model_kwargs(resolve(parse_args(RESNET)), 3),
        "class_names": ["a", "b", "c"],
        "training": {"lr": 0.01, "non_local": False},
    }
    older = {
        "model": {k: v for k, v in config["model"].items() if k != "non_local"},
        "class_names": config["class_names"],
        "training": {"lr": 0.01},
    }
    (tmp_path / "config.json").write_text(json.dumps(older))
    _check_resume_compatible(tmp_path, config)  # no error: the option is off
    config["model"]["non_local"] = True
    with pytest.raises(ValueError, match="non_local: None -> True"):
        _check_resume_compatible(tmp_path, config)
