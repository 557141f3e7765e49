"""From the library's words to a command line's: errors name parameters, scripts show flags.

The library's messages quote a parameter as `name` or `name=value` (Python's spelling:
`temporal='tsm-online'`, `non_local=True`). A script passes a message through `as_flags` with the
parameter names its flags stand for, and its user reads `--temporal tsm-online`, `--non-local`.
A flag is its parameter's name with dashes (tests/test_cli.py checks fit.py's and the porter's
parsers; evaluate.py passes `renamed` for its `--data`).
"""

import re

_PARAMETER = re.compile(r"`([a-z_][a-z0-9_]*)(?:=([^`]*))?`")
_QUOTES = "'\""


def flag(name):
    """The command-line flag of parameter `name`: 'shift_div' -> '--shift-div'."""
    return "--" + name.replace("_", "-")


def as_flags(message, names, renamed=None):
    """`message` with each quoted parameter in `names` written as its flag.

    `names`: the parameters the script's flags stand for; `renamed`: those whose flag has
    another name, parameter -> flag name (`{"data_path": "data"}`).

    Example:

    >>> as_flags("train with `temporal='tsm-online'`, without `non_local=True`", {"temporal", "non_local"})
    'train with --temporal tsm-online, without --non-local'
    >>> as_flags("`num_segments` must be even", {"segments"})
    '`num_segments` must be even'
    >>> as_flags("`xla=False` turns it off", {"xla"})
    '--no-xla turns it off'
    >>> as_flags("no validation data: pass `data_path`", (), renamed={"data_path": "data"})
    'no validation data: pass --data'
    """
    names = {**{name: name for name in names}, **(renamed or {})}

    def written(match):
        name, value = match.groups()
        if name not in names:
            return match.group(0)
        option = flag(names[name])
        if value is None or value == "True":
            return option
        if value == "False":  # a boolean flag's other half (argparse.BooleanOptionalAction)
            return flag(f"no_{names[name]}")
        if value == "None":  # the command lines' word for it
            value = "none"
        return f"{option} {value.strip(_QUOTES)}"

    return _PARAMETER.sub(written, str(message))


def add_runtime_arguments(parser, gpu_model="a clip_*.tflite or stream_state_*.tflite"):
    """`--runtime litert|onnxruntime|openvino` and `--accelerator cpu|gpu`, as the commands that
    run exported models (stream, benchmark) take them."""
    from tsm_keras.export.kinds import LITERT, RUNTIMES

    parser.add_argument(
        "--runtime",
        choices=sorted(RUNTIMES),
        default=LITERT,
        help="litert (.tflite, default), onnxruntime (.onnx) or openvino (.xml)",
    )
    parser.add_argument(
        "--accelerator",
        choices=("cpu", "gpu"),
        default="cpu",
        help=f"with LiteRT: cpu, the Interpreter with XNNPACK (default); gpu, LiteRT's GPU accelerator ({gpu_model})",
    )
