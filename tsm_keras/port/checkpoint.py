"""Reading official TSM checkpoints into plain NumPy arrays, with errors that say what is wrong.

PyTorch is needed for `.pth` / `.pth.tar` files only (the `port` extra); an `.npz` holding
the same state dict (tensor name -> array) is read with NumPy alone.
"""

import dataclasses
import os
import re
import zipfile
from collections.abc import Mapping

import numpy as np


class PortError(Exception):
    """A checkpoint cannot be ported; the message says why, in one line."""

    def __init__(self, message):
        super().__init__(" ".join(str(message).split()))


@dataclasses.dataclass
class Checkpoint:
    """A state dict as NumPy arrays, plus what the file says about itself.

    Attributes:
        state: tensor name -> array, names as saved (with any 'module.' prefix).
        meta: scalar fields saved beside the state dict ('epoch', 'arch', 'best_prec1').
        bare: the file held a bare state dict rather than {'state_dict': ...}.
        name_hints: what the file or folder name says (`name_hints`).
    """

    state: dict
    meta: dict = dataclasses.field(default_factory=dict)
    bare: bool = False
    name_hints: dict = dataclasses.field(default_factory=dict)


# The official training script names a run (its folder, and the released files) as
#   TSM_{dataset}_{modality}_{arch}[_shift{div}_{place}][_tpool]_{consensus}_segment{T}_e{E}
# then appends, in order: _{pretrain} (not ImageNet), _{lr_type} (e.g. _cos), _dense, _nl and
# a free _{suffix}. Released files are that name + ".pth"; a training run saves
# {name}/ckpt.pth.tar and {name}/ckpt.best.pth.tar. (TSN baselines have no shift part.)
_RUN_NAME = re.compile(
    r"^TSM_(?P<dataset>[A-Za-z0-9]+)_(?P<modality>RGB|Flow|RGBDiff)_(?P<arch>[A-Za-z0-9]+)"
    r"(?:_shift(?P<shift_div>\d+)_(?P<shift_place>blockres|block))?(?P<tpool>_tpool)?"
    r"_(?P<consensus>[A-Za-z]+)_segment(?P<segments>\d+)_e(?P<epochs>\d+)(?P<suffixes>(?:_.+)?)$"
)
_EXTENSIONS = (".pth.tar", ".pth", ".tar", ".npz")

# Published files whose name does not carry their settings, and what they are.
KNOWN_FILES = {
    # The online demo's MobileNetV2 (Jester): trained on 8 segments, 1/8 of the channels shifted.
    "mobilenetv2_jester_online.pth.tar": {"segments": 8, "shift_div": 8},
}


# bLVNet-TAM's model names (its released files, and the folder of a training run):
#   {dataset}-bLVNet-TAM-{depth}-a{alpha}-b{beta}-f{T}x2, e.g. st2stv2-bLVNet-TAM-50-a2-b4-f8x2
# "f8x2" is 8 pairs: 16 frames per clip.
_BIG_LITTLE_NAME = re.compile(
    r"^(?P<dataset>[A-Za-z0-9_]+)-bLVNet-TAM-(?P<depth>\d+)-a(?P<alpha>\d+)-b(?P<beta>\d+)-f(?P<pairs>\d+)x2$"
)


def parse_big_little_name(stem):
    """What a bLVNet-TAM model name says; {} when it is not one.

    >>> hints = parse_big_little_name("st2stv1-bLVNet-TAM-101-a2-b4-f16x2")
    >>> hints["arch"], hints["segments"], hints["dataset"]
    ('blresnet101', 32, 'st2stv1')
    """
    match = _BIG_LITTLE_NAME.match(stem)
    if not match:
        return {}
    return {
        "dataset": match["dataset"],
        "arch": f"blresnet{match['depth']}",
        "alpha": int(match["alpha"]),
        "beta": int(match["beta"]),
        "segments": 2 * int(match["pairs"]),
    }


def parse_run_name(name):
    """What an official run or file name says; {} when it does not follow the pattern.

    >>> parse_run_name("TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e50.pth")["segments"]
    8
    >>> hints = parse_run_name("TSM_something_RGB_resnet50_shift4_blockres_avg_segment16_e45_cos_mine")
    >>> hints["shift_div"], hints["segments"], hints["suffixes"]
    (4, 16, ['cos', 'mine'])
    """
    stem = os.path.basename(str(name).rstrip("/"))
    for extension in _EXTENSIONS:
        if stem.endswith(extension):
            stem = stem[: -len(extension)]
            break
    match = _RUN_NAME.match(stem)
    if not match:
        return parse_big_little_name(stem)
    suffixes = match["suffixes"].split("_")[1:]
    hints = {
        "dataset": match["dataset"],
        "modality": match["modality"],
        "arch": match["arch"],
        "shift": match["shift_div"] is not None,
        "consensus": match["consensus"],
        "segments": int(match["segments"]),
        "epochs": int(match["epochs"]),
        "tpool": bool(match["tpool"]),
        "dense": "dense" in suffixes,
        "non_local": "nl" in suffixes,
        "suffixes": [token for token in suffixes if token not in ("dense", "nl")],
    }
    if match["shift_div"] is not None:
        hints.update(shift_div=int(match["shift_div"]), shift_place=match["shift_place"])
    return hints


def name_hints(path):
    """What the checkpoint's name says about its settings, and where that came from: the
    file name, else the folder name (`TSM_.../ckpt.best.pth.tar`), else the table of
    known published files. {} when none of them says anything."""
    path = os.path.abspath(str(path))
    for source, name in (
        ("file name", os.path.basename(path)),
        ("folder name", os.path.basename(os.path.dirname(path))),
    ):
        hints = parse_run_name(name)
        if hints:
            return {**hints, "source": f"the {source} {name}"}
    known = KNOWN_FILES.get(os.path.basename(path))
    return {**known, "source": f"the known published file {os.path.basename(path)}"} if known else {}


def read_checkpoint(path):
    """Read a `.pth`/`.pth.tar` (with PyTorch) or `.npz` state dict.

    Accepts what the official code saves ({'epoch', 'arch', 'state_dict', 'optimizer',
    'best_prec1'}, from DataParallel or not) and bare state dicts (the streaming demo's).
    The optimizer state is not read.

    Raises:
        PortError: missing, unreadable, truncated or non-checkpoint files, in one line.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PortError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise PortError(f"{path}: the file is empty")
    if path.endswith(".npz"):
        content = _read_npz(path)
    else:
        content = _read_torch(path)
    checkpoint = _unwrap(path, content)
    checkpoint.name_hints = name_hints(path)
    return checkpoint


def _read_npz(path):
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise PortError(f"{path}: not a readable .npz state dict ({_reason(error)})") from error


def _read_torch(path):
    try:
        import torch
    except ImportError as error:
        raise PortError(
            f"{path}: reading PyTorch checkpoints needs torch: `pip install -e .[port]` "
            "(on the project machines `pip install torch==2.13.0` installs a local CPU wheel)"
        ) from error
    # weights_only: a checkpoint is data, never code to run. Old checkpoints may hold NumPy
    # scalars (best_prec1), which are data too.
    safe = [np.dtype, *{type(np.dtype(kind)) for kind in "bhilqefdBHILQ?"}]
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            safe.append(__import__(module, fromlist=["scalar"]).scalar)
        except (ImportError, AttributeError):
            pass
    try:
        if not hasattr(torch.serialization, "safe_globals"):  # torch < 2.5
            return torch.load(path, map_location="cpu", weights_only=True)
        with torch.serialization.safe_globals(safe):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        raise PortError(
            f"{path}: not a readable PyTorch checkpoint, or a truncated download ({_reason(error)})"
        ) from error


def _reason(error):
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _is_array(value):
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _unwrap(path, content):
    if not isinstance(content, Mapping):
        raise PortError(f"{path}: not a checkpoint (it holds a {type(content).__name__}, not a dict)")
    bare = "state_dict" not in content
    state = content if bare else content["state_dict"]
    if not isinstance(state, Mapping) or not state:
        raise PortError(f"{path}: the checkpoint's 'state_dict' is empty or not a dict")
    not_tensors = sorted(str(name) for name, value in state.items() if not _is_array(value))
    if not_tensors:
        what = "top-level keys" if bare else "non-tensor entries in 'state_dict'"
        raise PortError(
            f"{path}: not a state dict: {what} {not_tensors[:5]}"
            + (f" and {len(not_tensors) - 5} more" if len(not_tensors) > 5 else "")
        )
    arrays = {str(name): _to_numpy(value) for name, value in state.items()}
    broken = sorted(
        name for name, value in arrays.items() if value.dtype.kind == "f" and not np.all(np.isfinite(value))
    )
    if broken:
        raise PortError(f"{path}: tensors with NaN or infinite values (a corrupt file?): {broken[:5]}")
    meta = {}
    if not bare:
        for key in ("epoch", "arch", "best_prec1"):
            value = content.get(key)
            if _is_array(value) and getattr(value, "ndim", 1) == 0:
                value = value.item()
            if isinstance(value, (int, float, str, np.generic)):
                meta[key] = value.item() if isinstance(value, np.generic) else value
    return Checkpoint(state=arrays, meta=meta, bare=bare)


def _to_numpy(value):
    if isinstance(value, np.ndarray):
        return value
    value = value.detach().cpu()
    if value.dtype.is_floating_point:
        value = value.float()  # half / bfloat16 checkpoints: port in float32
    return value.numpy()
