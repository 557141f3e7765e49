"""Official TSM checkpoint -> the same model in Keras, built by `build_video_classifier`.

What the model is comes from three sources, most trusted first:
1. the tensors: architecture (names and shapes), classes (the classifier's shape), where the
   shift is and whether time is pooled (the `.net` wrappers), non-local blocks (`.block` and
   `.nl`);
2. the caller (`segments`, `shift_div`, `temporal`, `input_size`): what tensors
   cannot say;
3. the official run name, in the file name or else the folder name (`TSM_.../ckpt.pth.tar`),
   or a table of known published files (segments, shift_div; checked against the tensors).
Anything the caller or the name claims that the tensors contradict is an error, and a
setting that changes the outputs but that nothing says (segments, shift_div) is asked for.
"""

import dataclasses
import hashlib
import os
import re

from tsm_keras.data.view import View, preprocessing
from tsm_keras.layers.non_local import NonLocalBlock
from tsm_keras.layers.temporal_pool import TemporalMaxPool
from tsm_keras.layers.temporal_shift import TemporalShift
from tsm_keras.models.backbones import get_backbone
from tsm_keras.models.classifier import build_video_classifier
from tsm_keras.models.insertion import temporal_modules
from tsm_keras.port.big_little import is_big_little, read_big_little_layout
from tsm_keras.port.checkpoint import PortError, read_checkpoint
from tsm_keras.port.layout import (
    MOBILENET_V2,
    file_arch_preset,
    placement,
    read_layout,
    torch_module,
    wrapped_module,
)
from tsm_keras.port.mapping import assign_weights
from tsm_keras.port.run_dir import read_labels, write_run_dir

TEMPORAL = ("tsm", "tsm-online", "none")
DEFAULT_SHIFT_DIV = 8
DEFAULT_DROPOUT = 0.5  # the reference's Kinetics recipe; no effect on inference


@dataclasses.dataclass
class Ported:
    """A ported model and what describes it.

    Attributes:
        model: the Keras video classifier with the checkpoint's weights.
        model_config: the exact keyword arguments of `build_video_classifier` that build it.
        tensors: number of tensors copied.
        notes: how each setting was decided (for the command line to print).
        streaming_demo: the checkpoint is the streaming demo's bare MobileNetV2.
    """

    model: object
    model_config: dict
    tensors: int
    notes: list
    streaming_demo: bool


def port_state_dict(
    state,
    *,
    name_hints=None,
    meta=None,
    arch=None,
    num_classes=None,
    segments=None,
    shift_div=None,
    shift_place=None,
    temporal_pool=None,
    temporal=None,
    non_local=None,
    input_size=None,
):
    """Build the Keras twin of a TSM state dict (name -> NumPy array) and copy its weights.

    The state dict can come from `read_checkpoint(path).state` (a .pth with PyTorch, or an
    .npz without), or from any dict of arrays with the official names.

    Args:
        state: the state dict, names as saved ('module.base_model...' or bare).
        name_hints: `name_hints(path)` of the file, if any.
        meta: the checkpoint's 'arch', 'epoch', 'best_prec1'.
        arch: 'resnet50', 'resnet101' or 'mobilenetv2' (or a tsm_keras preset name):
            checked against the tensors.
        num_classes: checked against the classifier.
        segments: frames per clip T. Default: what the file or folder name says; when
            neither says, PortError (the tensors cannot tell it).
        shift_div: as `segments` (not needed for a TSN checkpoint).
        shift_place: 'blockres' or 'block': checked against the tensors.
        temporal_pool: True / False: checked against the tensors.
        temporal: 'tsm' (bidirectional), 'tsm-online' (unidirectional) or 'none'; default:
            'tsm' for checkpoints with shifts, 'tsm-online' for the streaming demo's bare
            MobileNetV2, 'none' for TSN checkpoints. The direction of a shift does not
            show in the tensors: a unidirectional model trained with the official layout
            needs temporal='tsm-online'.
        non_local: True / False: checked against the tensors (the official `_nl` models
            have non-local blocks after ResNet-50 blocks layer2[0, 2] and layer3[0, 2, 4]).
        input_size: frame side (default 224, as trained).

    Raises:
        PortError: the checkpoint is not a supported TSM model, or does not fit the model
            the arguments describe; nothing is built half-way.
    """
    hints, meta = dict(name_hints or {}), dict(meta or {})
    if is_big_little(state):
        if shift_div is not None or shift_place is not None or temporal_pool:
            raise PortError("`shift_div`, `shift_place` and `temporal_pool` are TSM settings: a bLVNet has none")
        return _port_big_little(state, hints, meta, arch, num_classes, segments, temporal, input_size)
    layout = read_layout(state)
    notes = []
    demo = layout.family == MOBILENET_V2 and not layout.in_base_model and not layout.wrapped

    _check_claims(layout, hints, meta, arch, num_classes)
    place, pooled = placement(layout)
    _check_placement(layout, hints, place, pooled, shift_place, temporal_pool, demo)
    _check_non_local(layout, hints, non_local)

    if temporal is None:
        temporal = "tsm" if place else "tsm-online" if demo else "none"
        notes.append(
            f"temporal={temporal!r} ("
            + (
                "the checkpoint's shifts; a shift's direction does not show in the tensors, "
                "use `temporal='tsm-online'` for a unidirectional model"
                if place
                else "the streaming demo's bare MobileNetV2 state dict is unidirectional"
                if demo
                else "no temporal shift in the checkpoint: a TSN model"
            )
            + ")"
        )
    elif temporal not in TEMPORAL:
        raise PortError(f"temporal must be one of {TEMPORAL}. Received: {temporal!r}")
    elif temporal == "none" and place:
        raise PortError(f"`temporal='none'` but the checkpoint shifts ({sorted(layout.wrapped)[0]}.net)")
    elif temporal != "none" and not place and not demo:
        raise PortError(f"`temporal={temporal!r}` but the checkpoint has no temporal shift (a TSN model)")

    segments = _pick("segments", segments, hints, "`segments`", notes)
    if temporal == "none":
        div = DEFAULT_SHIFT_DIV  # no shift: the value is never used
    elif demo and shift_div is None and "shift_div" not in hints:
        div = DEFAULT_SHIFT_DIV
        notes.append(f"shift_div={div} (the streaming demo's network)")
    else:
        div = _pick("shift_div", shift_div, hints, "`shift_div`", notes)
    if demo and div != DEFAULT_SHIFT_DIV:
        raise PortError(f"the streaming demo's model shifts 1/8 of the channels. Received: shift_div={div}")
    input_size = 224 if input_size is None else input_size
    model_config = {
        "num_classes": layout.num_classes,
        "backbone": layout.backbone,
        "num_segments": segments,
        "input_size": input_size,
        "temporal": temporal,
        "shift_div": div,
        "shift_place": place or "blockres",
        "temporal_pool": pooled,
        "non_local": bool(layout.non_local),
        "dropout": DEFAULT_DROPOUT,
    }
    try:
        model = build_video_classifier(**model_config)
    except ValueError as error:
        raise PortError(f"cannot build the model: {error}") from error
    if not demo:
        _check_wrappers(model, layout, place)
    tensors = assign_weights(model, layout)
    return Ported(model, model_config, tensors, notes, demo)


def _port_big_little(state, hints, meta, arch, num_classes, segments, temporal, input_size):
    """A bLVNet-TAM state dict into `build_video_classifier(backbone='blresnet50' / '101')`."""
    layout = read_big_little_layout(state)
    notes = []
    for source, claim in (
        ("`arch`", arch),
        ("the name", hints.get("arch")),
        ("the checkpoint's 'arch'", meta.get("arch")),
    ):
        said = _big_little_arch(claim)
        if claim is not None and said != layout.backbone:
            raise PortError(f"{source} says {claim!r} but the tensors are those of a {layout.backbone} model")
    if num_classes is not None and num_classes != layout.num_classes:
        raise PortError(f"`num_classes={num_classes}` but the checkpoint's classifier has {layout.num_classes} outputs")
    has_tam = any(name.endswith("tam.weight") for name in layout.tensors)
    found = "tam" if has_tam else "none"
    if temporal is not None and temporal != found:
        raise PortError(f"`temporal={temporal!r}` but the checkpoint's network has {'TAM' if has_tam else 'no TAM'}")
    segments = _pick("segments", segments, hints, "`segments` (the frames a clip carries, 2T: 16 for f8x2)", notes)
    model_config = {
        "num_classes": layout.num_classes,
        "backbone": layout.backbone,
        "num_segments": segments,
        "input_size": 224 if input_size is None else input_size,
        "temporal": found,
        "non_local": False,  # as every run's config: the key is read by the run's report
        "dropout": DEFAULT_DROPOUT,
    }
    try:
        model = build_video_classifier(**model_config)
    except ValueError as error:
        raise PortError(f"cannot build the model: {error}") from error
    tensors = assign_weights(model, layout)
    return Ported(model, model_config, tensors, notes, False)


def _big_little_arch(claim):
    """The preset an `arch`, a name or a checkpoint's 'arch' names ('blresnet50', 'st2stv2-bLVNet-TAM-50-...')."""
    if claim is None:
        return None
    match = re.search(r"(?:blresnet|bLVNet-TAM-)(\d+)", str(claim))
    return f"blresnet{match[1]}" if match else str(claim)


def _pick(key, value, hints, option, notes):
    """A setting the tensors cannot tell: given, or from the checkpoint's name; never guessed."""
    said, source = hints.get(key), hints.get("source", "the file name")
    if value is not None:
        if said is not None and said != value:
            notes.append(f"{key}={value} (given; {source} says {said})")
        return value
    if said is not None:
        notes.append(f"{key}={said} (from {source})")
        return said
    raise PortError(
        f"{key} is not in the checkpoint's file or folder name, and the tensors cannot tell it "
        f"(it changes the outputs): pass {option}"
    )


def _check_claims(layout, hints, meta, arch, num_classes):
    claims = [("`arch`", arch), ("the file name", hints.get("arch")), ("the checkpoint's 'arch'", meta.get("arch"))]
    for source, claim in claims:
        if claim is None:
            continue
        preset = claim if claim in ("resnet50_tv", "resnet101_tv", "mobilenet_v2_tv") else file_arch_preset(claim)
        if preset is None:
            raise PortError(
                f"{source} names architecture {claim!r}: only resnet50, resnet101 and mobilenetv2 are supported"
            )
        if preset != layout.backbone:
            raise PortError(f"{source} says {claim!r} but the tensors are those of a {layout.backbone} model")
    if num_classes is not None and num_classes != layout.num_classes:
        raise PortError(f"`num_classes={num_classes}` but the checkpoint's classifier has {layout.num_classes} outputs")
    if hints.get("modality", "RGB") != "RGB":
        raise PortError(f"{hints['modality']} models are not supported, RGB models are")
    if hints.get("consensus", "avg") != "avg":
        raise PortError(f"consensus {hints['consensus']!r} is not supported: the Keras classifier averages (avg)")


def _check_placement(layout, hints, place, pooled, shift_place, temporal_pool, demo):
    if shift_place is not None:
        if shift_place not in ("blockres", "block"):
            raise PortError(f"shift_place must be 'blockres' or 'block'. Received: {shift_place!r}")
        if place and shift_place != place:
            raise PortError(f"`shift_place={shift_place!r}` but the checkpoint shifts as {place!r}")
        if not place and not demo:
            raise PortError(f"`shift_place={shift_place!r}` but the checkpoint has no temporal shift")
    if temporal_pool is not None and bool(temporal_pool) != pooled:
        raise PortError(
            "`temporal_pool=True` but the checkpoint does not pool over time (no 'layer2.net.*' tensors)"
            if temporal_pool
            else "the checkpoint pools over time (layer2.net.*): it is a TSM+TP model"
        )
    if "shift" in hints:
        name = hints.get("source", "the file name")
        if hints["shift"] and not place:
            raise PortError(
                f"{name} says shift{hints['shift_div']}_{hints['shift_place']} but the "
                "checkpoint has no shifted ('.net') tensors"
            )
        if hints["shift"] and hints["shift_place"] != place:
            raise PortError(f"{name} says {hints['shift_place']!r} but the checkpoint shifts as {place!r}")
        if not hints["shift"] and place:
            raise PortError(f"{name} says TSN (no shift) but the checkpoint has shifted ('.net') tensors")
        if hints["tpool"] != pooled:
            raise PortError(
                f"{name} and the tensors disagree on temporal pooling "
                f"(file name: {'tpool' if hints['tpool'] else 'none'}, tensors: {'tpool' if pooled else 'none'})"
            )


def _check_non_local(layout, hints, non_local):
    found = bool(layout.non_local)
    if found and layout.backbone != "resnet50_tv":
        raise PortError(
            f"non-local blocks in a {layout.backbone} checkpoint (at {sorted(layout.non_local)[:3]}): the "
            "official code adds them to ResNet-50 only"
        )
    if non_local is not None and bool(non_local) != found:
        raise PortError(
            "`non_local=True` but the checkpoint has no non-local blocks (no '.nl.' tensors)"
            if non_local
            else f"the checkpoint has non-local blocks ({sorted(layout.non_local)[0]}.nl.*): it is a _nl model"
        )
    if "non_local" in hints and hints["non_local"] != found:
        name = hints.get("source", "the file name")
        raise PortError(
            f"{name} and the tensors disagree on non-local blocks (name: {'_nl' if hints['non_local'] else 'none'}, "
            f"tensors: {'non-local at ' + sorted(layout.non_local)[0] if found else 'none'})"
        )


def _check_wrappers(model, layout, place):
    """The model shifts, pools and has non-local blocks exactly where the checkpoint's
    `.net` and `.block` wrappers say."""
    problems = []
    expected = {
        wrapped_module(layer.name, layout.family, place)
        for layer in temporal_modules(model, (TemporalShift, TemporalMaxPool))
    }
    expected_non_local = {
        torch_module(layer.name, layout.family).removesuffix(".nl") for layer in temporal_modules(model, NonLocalBlock)
    }
    for what, found, wanted in (
        ("temporal modules", layout.wrapped, expected),
        ("non-local blocks", layout.non_local, expected_non_local),
    ):
        extra, absent = sorted(found - wanted), sorted(wanted - found)
        if extra or absent:
            problems.append(
                f"the checkpoint's {what} are not where the model puts them: "
                + (f"only the checkpoint wraps {extra[:5]}" if extra else "")
                + ("; " if extra and absent else "")
                + (f"only the model wraps {absent[:5]}" if absent else "")
            )
    if problems:
        raise PortError("; ".join(problems))


def port_checkpoint(path, out, *, labels=None, force=False, verify=True, **options):
    """Read a checkpoint, port it and write it as a preset (a run directory) atomically.

    Args:
        path: `.pth` / `.pth.tar` (needs torch) or `.npz` state dict.
        out: the preset directory to write (tsm_keras.run_dir).
        labels: a text file with one class name per line (default: class_0, class_1, ...).
        force: replace existing outputs.
        verify: reload the written model and check it gives the same outputs.
        **options: see `port_state_dict`.

    Returns:
        (the `Ported` result, the path of the written preset directory).
    """
    checkpoint = read_checkpoint(path)
    ported = port_state_dict(checkpoint.state, name_hints=checkpoint.name_hints, meta=checkpoint.meta, **options)
    num_classes = ported.model_config["num_classes"]
    class_names = read_labels(labels, num_classes) if labels else [f"class_{i}" for i in range(num_classes)]
    config = {
        "model": ported.model_config,
        "class_names": class_names,
        "preprocessing": _preprocessing(ported.model_config),
        "source": _source(path, checkpoint, ported),
    }
    return ported, write_run_dir(out, ported.model, config, class_names, force=force, verify=verify)


def _preprocessing(model_config):
    preset = get_backbone(model_config["backbone"])  # ImageNet mean/std in RGB, as trained
    size = model_config["input_size"]
    if preset.big_little is not None:
        # The bLVNet-TAM README evaluates with --disable_scaleup: short side resized to the crop.
        record = preprocessing(View(size, size), preset.mean, preset.std)
        return {**record, "frames": f"{model_config['num_segments']} per clip (TSN segments), in pairs (2k, 2k+1)"}
    return preprocessing(View.paper(size), preset.mean, preset.std)  # TSM's test protocol


def _source(path, checkpoint, ported):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    hints = checkpoint.name_hints
    source = {
        "checkpoint": os.path.basename(os.fspath(path)),
        "sha256": digest.hexdigest(),
        "layout": "streaming demo (bare state dict)"
        if ported.streaming_demo
        else "bare state dict"
        if checkpoint.bare
        else "official training checkpoint",
        "tensors": ported.tensors,
        **checkpoint.meta,
    }
    if "dataset" in hints:
        source.update(dataset=hints["dataset"], sampling="dense" if hints.get("dense") else "segments")
    if hints:
        source["settings_from"] = hints["source"]
    if ported.model_config["non_local"]:
        source["streaming"] = "non-local blocks read every frame of the clip: convert.py writes the clip models only"
    elif ported.streaming_demo or ported.model_config["temporal"] == "tsm-online":
        source["streaming"] = "unidirectional shifts: convert.py can make the per-frame streaming model"
    return source


def shift_states(model):
    """{shift layer name: per-frame state shape} of a unidirectional model (the stream's buffers)."""
    states = {}
    for layer in temporal_modules(model, TemporalShift):
        states[layer.name] = layer.state_shape(tuple(layer.input.shape[1:]))
    return states
