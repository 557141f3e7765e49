"""Library errors name parameters; each script shows them as its flags (tsm_keras.cli)."""

import ast
import pathlib
import re

import pytest

from tsm_keras.cli import flag

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _help(parse_args, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    return capsys.readouterr().out


def test_every_parameter_fit_translates_is_one_of_its_flags(capsys):
    from tsm_keras.commands.fit import OPTIONS, parse_args

    shown = _help(parse_args, capsys)
    assert [name for name in OPTIONS if flag(name) not in shown] == []
    # convert.py writes a streaming refusal's parameters as fit.py's flags.
    assert {"temporal", "non_local"} <= set(OPTIONS)


def test_every_option_of_the_porter_is_its_parameter_with_dashes(capsys):
    from tsm_keras.commands.port import parse_args

    shown = _help(parse_args, capsys)
    names = vars(parse_args(["model.npz", "--out", "x"]))
    assert [name for name in names if name != "checkpoint" and flag(name) not in shown] == []


@pytest.mark.parametrize(
    "argv,shown",
    [
        (["--width", "0.5", "--backbone", "resnet50"], "--width applies to MobileNetV2 only"),
        (["--lr", "0"], "--lr must be > 0"),
        (["--weights", "none", "--tune-from", "runs/x"], "--weights and --tune-from exclude each other"),
    ],
)
def test_fit_shows_flags_where_the_library_names_parameters(argv, shown, capsys):
    from tsm_keras.commands.fit import parse_args

    with pytest.raises(SystemExit):
        parse_args(argv)
    err = capsys.readouterr().err
    assert shown in err and "`" not in err


def _error_texts(path):
    """The string pieces of every `raise` in a module."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Raise) and node.exc is not None:
            for piece in ast.walk(node.exc):
                if isinstance(piece, ast.Constant) and isinstance(piece.value, str):
                    yield node.lineno, piece.value


def test_library_errors_name_parameters_not_flags():
    found = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for path in (ROOT / "tsm_keras").rglob("*.py")
        if path.name != "__main__.py" and "commands" not in path.parts  # the commands are scripts
        for line, text in _error_texts(path)
        if re.search(r"(^|[\s(])--[a-z]", text)
    ]
    assert found == []


def test_evaluate_names_its_own_flag_for_data(tmp_path, capsys):
    from tests.tiny import tiny_classifier, write_run
    from tsm_keras.commands.evaluate import main

    run = write_run(tmp_path / "ported", tiny_classifier())  # a run with no data, as a port writes
    with pytest.raises(SystemExit) as exit:
        main([str(run)])
    assert str(exit.value).endswith("names no validation data (run.json): pass --data")
