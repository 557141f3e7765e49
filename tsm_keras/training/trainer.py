"""Training a video classifier end to end: data, model, recipe, run directory, report.

`python training/fit.py` parses arguments into the options below and calls `train`.
"""

import dataclasses
import json
import os
import platform
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import Optional, Union

import keras
import tensorflow as tf

from tsm_keras._keras_private import patch_keras_for_multi_worker
from tsm_keras._startup import onednn_enabled
from tsm_keras.data.augment import SCALES
from tsm_keras.data.view import View, preprocessing
from tsm_keras.layers import TemporalAggregation, TemporalShift
from tsm_keras.layers.batch_norm import with_fused_batch_norm
from tsm_keras.models import (
    BACKBONES,
    TEMPORAL_LABELS,
    TEMPORAL_MODULES,
    build_video_classifier,
    parameter_overhead,
    temporal_modules,
)
from tsm_keras.models.blvnet import check_big_little
from tsm_keras.run_dir import CONFIG, RunError, is_run, load_run, read_config, write_config
from tsm_keras.training import callbacks, distribute, evaluation, recipe


@dataclasses.dataclass
class FitOptions:
    """Everything a run depends on. None means: the profile's default (see `resolve`)."""

    data: Optional[str] = None  # None: the built-in temporal data set
    val_data: Optional[str] = None
    backbone: Optional[str] = None
    width: Optional[float] = None
    segments: Optional[int] = None
    input_size: Optional[int] = None
    temporal: Optional[str] = None
    shift_div: Optional[int] = None
    shift_place: Optional[str] = None
    temporal_pool: Optional[bool] = None
    non_local: Optional[bool] = None
    epochs: Optional[int] = None
    batch_size: Optional[int] = None  # global batch, split over replicas
    lr: Optional[float] = None  # per 64 clips, scaled linearly to the batch
    schedule: str = "cosine"
    warmup_epochs: Optional[float] = None
    weight_decay: Optional[float] = None
    dropout: Optional[float] = None
    crop_scales: Optional[tuple] = None  # training crop sides, fractions of the short side
    clip_norm: float = 20.0
    optimizer: Optional[str] = None
    partial_bn: bool = False
    head_lr_mult: float = 1.0
    bn_momentum: float = 0.9
    sync_bn: bool = False
    weights: Optional[str] = None
    tune_from: Optional[str] = None  # a run directory (trained or ported): all weights but the classifier
    mixed_precision: bool = False
    # None: graph mode on CPUs (measured faster); on GPUs "auto", Keras' choice (`_choose_step`)
    xla: Optional[Union[bool, str]] = None
    tpu: Optional[str] = None
    seed: int = 0
    deterministic: bool = False  # TensorFlow's op determinism: the same seed gives the same history
    out: Optional[str] = None
    workers: Optional[int] = None  # data-loading parallelism (None: AUTOTUNE)


# Settings that do not depend on the profile; training/fit.py's help shows them from here.
DEFAULTS = {f.name: f.default for f in dataclasses.fields(FitOptions)}

# The built-in demonstration: small enough for 2 CPU cores, trained from scratch. No crop
# augmentation (the whole 80 px frame resized to 64): a from-scratch model on 2,000 clips
# underfits, and the multi-scale crop slowed learning. Causal TSM (it streams, so the run goes
# on to int8 streaming models). Every choice and its measurements: docs/synthetic.md.
# The two profiles read as tables: no formatter.
# fmt: off
DEMO = dict(temporal="tsm-online", width=0.35, segments=8, input_size=64, epochs=20, batch_size=16, lr=0.008,
            warmup_epochs=1, weight_decay=1e-4, dropout=0.5, crop_scales=(1.0,), optimizer="adam", weights="none")
# Both profiles: the architecture's defaults (the demo's shift_div is set in `resolve`).
COMMON = dict(backbone="mobilenet_v2", shift_place="blockres", temporal_pool=False, non_local=False)
# The settings that fine-tuning (--tune-from) takes from the run it starts from, unless given.
ARCHITECTURE = ("backbone", "width", "temporal", "shift_div", "shift_place", "temporal_pool", "non_local")
# A user's data: the reference recipe (docs/reference.md, "Training recipes"), from ImageNet weights.
RECIPE = dict(temporal="tsm", width=1.0, segments=8, input_size=224, epochs=50, batch_size=64, lr=0.01,
              warmup_epochs=5, weight_decay=5e-4, dropout=0.5, crop_scales=SCALES, optimizer="sgd",
              weights="imagenet")
# bLVNet-TAM (--backbone blresnet50/101), on top of either profile: its TAM, and with --data the
# reference's recipe (Nesterov SGD, cosine, no warm-up, 16 frames = 8 pairs). It has no Keras
# ImageNet weights, so it trains from scratch unless --weights names a file. Flips stay off.
BIG_LITTLE_DEMO = dict(temporal="tam", width=1.0)
BIG_LITTLE_RECIPE = dict(temporal="tam", width=1.0, segments=16, optimizer="nesterov", warmup_epochs=0, weights="none")
# fmt: on


def resolve(options):
    """Fills the defaults of the profile (demo or recipe) and checks every argument.

    Raises ValueError with a one-line reason for anything invalid.
    """
    profile = {**COMMON, **(DEMO if options.data is None else RECIPE)}
    if _is_big_little(options.backbone):
        profile.update(BIG_LITTLE_DEMO if options.data is None else BIG_LITTLE_RECIPE)
    if options.tune_from is not None:
        profile.update(_tuned_architecture(options))
    values = {
        k: (profile[k] if getattr(options, k) is None and k in profile else getattr(options, k))
        for k in (f.name for f in dataclasses.fields(options))
    }
    o = FitOptions(**values)
    if o.backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {o.backbone!r}; choose from {', '.join(sorted(BACKBONES))}")
    preset = BACKBONES[o.backbone]
    if not preset.has_width and o.width != 1.0:
        if options.width is not None:
            raise ValueError(f"`width` applies to MobileNetV2 only, not to {o.backbone}")
        o.width = 1.0
    if o.temporal not in TEMPORAL_MODULES:
        raise ValueError(f"unknown `temporal={o.temporal!r}`; choose from {', '.join(TEMPORAL_MODULES)}")
    if o.shift_div is None:
        # The demo's causal shift moves 1/4 of the channels, as many as the bidirectional
        # shift moves in all: at width 0.35 a block has 8-56 input channels, so 1/8 would be
        # 1-7 (docs/synthetic.md). Everything else uses the reference's 1/8.
        o.shift_div = 4 if options.data is None and o.temporal == "tsm-online" else 8
    if o.segments < 1:
        raise ValueError(f"`segments` must be >= 1, got {o.segments}")
    if preset.big_little is not None:
        try:
            check_big_little(o.segments, o.input_size, o.temporal, o.shift_place)
        except ValueError as error:
            raise ValueError(f"`backbone={o.backbone!r}`: {error}") from None
    if o.input_size < preset.min_input_size:
        raise ValueError(f"`input_size={o.input_size}` is too small for {o.backbone} (minimum {preset.min_input_size})")
    for name in ("epochs", "batch_size"):
        if getattr(o, name) < 1:
            raise ValueError(f"`{name}` must be >= 1, got {getattr(o, name)}")
    if o.lr <= 0:
        raise ValueError(f"`lr` must be > 0, got {o.lr}")
    o.crop_scales = tuple(float(s) for s in o.crop_scales)
    if not o.crop_scales or not all(0 < s <= 1 for s in o.crop_scales):
        raise ValueError(f"`crop_scales` must be fractions in (0, 1], got {' '.join(map(str, o.crop_scales))}")
    if o.schedule not in ("cosine", "step"):
        raise ValueError(f"`schedule` must be cosine or step, got {o.schedule!r}")
    if o.temporal_pool and preset.pool_before is None:
        raise ValueError(f"`temporal_pool` is defined for ResNets, not for {o.backbone}")
    if o.non_local and not preset.non_local_after:
        raise ValueError(f"`non_local` is defined for ResNet-50 (resnet50, resnet50_tv), not for {o.backbone}")
    if o.non_local and o.temporal_pool:
        raise ValueError("`non_local` and `temporal_pool` exclude each other (the official code cannot combine them)")
    for name in ("data", "val_data"):
        path = getattr(o, name)
        if path is not None and not os.path.exists(path):
            raise ValueError(f"`{name}={path}` does not exist")
    if o.weights.lower() == "none":
        o.weights = None
    elif o.weights != "imagenet" and not os.path.exists(o.weights):
        raise ValueError(f"`weights={o.weights}` does not exist (use none, imagenet or a weights file)")
    return o


def _is_big_little(backbone):
    return backbone in BACKBONES and BACKBONES[backbone].big_little is not None


def _tuned_architecture(options):
    """The architecture of the run that `tune_from` names (its config.json), as profile
    defaults. The backbone and its width fix the weights, so giving another is an error; the
    weightless settings may change (a bidirectional Kinetics TSM fine-tuned into a causal one
    for a phone: `temporal='tsm-online'`). A TAM changes the weights: the copy refuses it."""
    if options.weights is not None:
        raise ValueError("`weights` and `tune_from` exclude each other: the weights come from the `tune_from` run")
    config = Path(options.tune_from) / CONFIG
    if not config.is_file():
        raise ValueError(
            f"`tune_from={options.tune_from}`: no {CONFIG} there (a run directory from "
            "training/fit.py or python -m tsm_keras.port)"
        )
    try:
        source = read_config(config)["model"]
    except RunError as error:
        raise ValueError(f"`tune_from={options.tune_from}`: {error}") from None
    # build_video_classifier's defaults, for keys an older or ported config leaves out
    source = {"width": 1.0, "temporal": "tsm", "shift_div": 8, **COMMON, **source}
    for key in ("backbone", "width"):
        given = getattr(options, key)
        if given is not None and given != source[key]:
            raise ValueError(
                f"`{key}={given}` differs from the `tune_from` run's {source[key]} ({config}): "
                "fine-tuning keeps the network its weights were trained in"
            )
    return {**{key: source[key] for key in ARCHITECTURE}, "weights": "none"}


def model_kwargs(o, num_classes):
    """The exact arguments of build_video_classifier, stored in config.json."""
    return dict(
        num_classes=num_classes,
        backbone=o.backbone,
        num_segments=o.segments,
        input_size=o.input_size,
        temporal=o.temporal,
        shift_div=o.shift_div,
        shift_place=o.shift_place,
        temporal_pool=o.temporal_pool,
        non_local=o.non_local,
        dropout=o.dropout,
        width=o.width,
        partial_bn=o.partial_bn,
        bn_momentum=o.bn_momentum,
        sync_batch_norm=o.sync_bn,
    )


def default_run_dir(o, dataset_name):
    """runs/<data>-<backbone>-<temporal>[-...]: the same command maps to the same directory,
    which is what lets a killed run resume by being started again."""
    parts = [dataset_name, o.backbone, o.temporal]
    if o.segments != 8:
        parts.append(f"{o.segments}f")
    if o.seed:
        parts.append(f"seed{o.seed}")
    return Path("runs") / re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))


def _describe(o):
    width = f" x{o.width:g}" if BACKBONES[o.backbone].has_width else ""
    module = TEMPORAL_LABELS[o.temporal]
    if o.non_local:
        module += f" + {len(BACKBONES[o.backbone].non_local_after)} non-local blocks"
    pairs = f" ({o.segments // 2} pairs)" if _is_big_little(o.backbone) else ""
    return f"{module} on {o.backbone}{width}, {o.segments} frames{pairs} of {o.input_size} px"


EIGEN_WARNING = (
    "TensorFlow runs its Eigen CPU kernels in this process; its oneDNN kernels trained this "
    "project's models faster in its benchmarks on an x86 CPU with AVX2. To train with them, set "
    "TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow loads, or use the tsm-fit command, which does."
)


def _choose_step(o):
    """Sets `o.xla` when not given and returns the start line that says how the step runs.

    On a CPU the default is graph mode with the fused BatchNormalization: with oneDNN's
    kernels (which the commands turn on, tsm_keras_start.py) it trained TSM-MobileNetV2 and
    TSM-ResNet-50 faster than XLA did (docs/benchmarks.md); on an x86 CPU running Eigen's
    kernels it warns (`EIGEN_WARNING`). On a GPU, where nothing has been measured here, Keras
    decides (`jit_compile="auto"`: XLA when every layer supports it, with Keras' own
    BatchNormalization; `train` says what it chose).
    """
    asked = o.xla is not None
    if not asked and tf.config.list_physical_devices("GPU"):
        o.xla = "auto"
        return "as Keras decides on a GPU (jit_compile='auto'; `xla=False` for graph mode); GPU speed not measured yet"
    o.xla = bool(o.xla)
    step = "XLA" if o.xla else "graph mode, fused BatchNormalization"
    step += " (as asked)" if asked else " (`xla=True` compiles it with XLA instead)"
    if tf.config.list_physical_devices("GPU"):
        return step + "; GPU speed not measured yet"
    if onednn_enabled() is False:
        if platform.machine() in ("x86_64", "AMD64"):  # where oneDNN's kernels are the other choice
            warnings.warn(EIGEN_WARNING, stacklevel=1)  # here: shown once, Python warns once per place
        return step + "; TensorFlow's Eigen CPU kernels"
    return step + "; oneDNN CPU kernels"


def _describe_crop(scales):
    if scales == (1.0,):
        return "no crop"
    return "multi-scale crop " + "/".join(f"{s:g}" for s in scales)


def train(options, log=print):
    """Runs (or resumes) a training run; returns the validation summary and the run dir."""
    from tsm_keras import data

    o = resolve(options)
    keras.utils.set_random_seed(o.seed)  # Python's, NumPy's and TensorFlow's generators
    if o.deterministic:
        # Every op picks a deterministic kernel (tf.data's order is fixed by then too); for
        # the rest of the process, as TensorFlow offers no way back.
        tf.config.experimental.enable_op_determinism()
    # Physical, not logical, devices from here on: listing logical ones starts TensorFlow's
    # runtime, and MultiWorkerMirroredStrategy must configure it first.
    step_mode = _choose_step(o)
    if o.mixed_precision:
        gpu = bool(tf.config.list_physical_devices("GPU"))
        keras.mixed_precision.set_global_policy("mixed_float16" if gpu else "mixed_bfloat16")

    if o.data is None:
        from tsm_keras.data.synthetic import ensure_default_dataset

        root = ensure_default_dataset()
        train_path, val_path, dataset_name = root, root, "temporal_shapes"
        log(
            "demo: temporal_shapes, five motions and the same five played backwards; a model blind to "
            "frame order (TSN, `temporal='none'`) cannot pass 50%, one that relates frames (TSM) can"
        )
    else:
        train_path, val_path = o.data, o.val_data or o.data
        dataset_name = Path(o.data.rstrip("/")).stem
    train_src = data.open_source(str(train_path), split="train")
    val_src = data.open_source(str(val_path), split="val")
    class_names = list(train_src.class_names)
    if list(val_src.class_names) != class_names:
        raise ValueError(f"training and validation data have different classes: {class_names} vs {val_src.class_names}")

    run_dir = Path(o.out) if o.out else default_run_dir(o, dataset_name)
    # How the model sees a clip at evaluation and deployment: whole frames stay whole.
    view = View.for_training(o.input_size, o.crop_scales)
    config = {
        "model": model_kwargs(o, len(class_names)),
        "class_names": class_names,
        "preprocessing": preprocessing(view, BACKBONES[o.backbone].mean, BACKBONES[o.backbone].std),
        "data": {"train": str(train_path), "val": str(val_path)},
        "training": {k: v for k, v in dataclasses.asdict(o).items() if k not in ("out", "workers")},
    }
    chief = distribute.is_chief()
    _check_resume_compatible(run_dir, config)

    strategy = distribute.choose_strategy(o.tpu)
    replicas = strategy.num_replicas_in_sync
    steps = train_src.num_clips // o.batch_size
    if steps < 1:
        raise ValueError(f"{train_path}: {train_src.num_clips} training clips is less than one batch of {o.batch_size}")
    with strategy.scope():
        model = build_video_classifier(**config["model"], weights=o.weights)
        if o.tune_from:
            copied = _load_all_but_the_classifier(model, o.tune_from)
        model = compile_for_training(model, o, steps)
        if o.xla == "auto":
            step_mode = f"{'XLA' if model.jit_compile else 'graph mode'}, " + step_mode
        initial_epoch = callbacks.restore_latest(model, run_dir / "checkpoints")

    if chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(run_dir, config, class_names)
    modules = len(temporal_modules(model, (TemporalShift, TemporalAggregation)))
    log(f"{_describe(o)}: {modules} temporal modules, {model.count_params():,} parameters")
    log(f"training step: {step_mode}" + ("; deterministic (TensorFlow's op determinism)" if o.deterministic else ""))
    overhead = parameter_overhead(model)
    if overhead.total:  # learned modules (TAM): r * C weights each, against the 2D model
        per_module = ", ".join(f"{count:,}" for count in overhead.per_module.values() if count)
        log(
            f"temporal parameters: {per_module} per module; +{overhead.total:,} on the "
            f"{overhead.base:,} of the 2D model (+{100 * overhead.fraction:.3f}%)"
        )
    log(
        f"data: {train_src.num_clips} training / {val_src.num_clips} validation clips, "
        f"{len(class_names)} classes ({train_path})"
    )
    peak = recipe.scaled_learning_rate(o.lr, o.batch_size)
    log(
        f"recipe: {o.optimizer}, lr {peak:.4g} (batch {o.batch_size} on {replicas} replica(s)), {o.schedule} schedule, "
        f"{o.epochs} epochs, {_describe_crop(o.crop_scales)}, run directory {run_dir}"
    )
    if o.tune_from:
        log(f"fine-tuning: {copied} weight tensors from {o.tune_from}; a new classifier for {len(class_names)} classes")
    if initial_epoch:
        log(f"resuming after epoch {initial_epoch} from {run_dir / 'checkpoints'}")

    train_ds = data.make_train_dataset(
        train_src,
        num_segments=o.segments,
        input_size=o.input_size,
        batch_size=o.batch_size,
        seed=o.seed,
        scales=o.crop_scales,
    ).repeat()
    val_ds = data.make_eval_dataset(
        val_src, num_segments=o.segments, input_size=o.input_size, batch_size=o.batch_size, view=view
    ).map(lambda clips, labels: (clips[:, 0], labels))
    if replicas > 1:
        train_ds, val_ds = (_shard_by_data(ds) for ds in (train_ds, val_ds))
    patch_keras_for_multi_worker(model, strategy, val_ds, multi_worker=distribute.cluster_size() > 1)

    scratch = Path(tempfile.mkdtemp(prefix="tsm-worker-")) if not chief else None
    cbs = [
        keras.callbacks.TerminateOnNaN(),
        # History and best model first: the checkpoint, written last, marks the epoch as done,
        # so a run killed in between redoes that epoch and its history row.
        callbacks.RunLogger(run_dir, initial_epoch=initial_epoch, write=chief),
        callbacks.EpochCheckpoint(run_dir / "checkpoints", write=chief),
        keras.callbacks.TensorBoard(str((run_dir if chief else scratch) / "logs"), write_graph=False),
    ]
    cbs.append(data.SkipReport({"train": train_src, "val": val_src}, print_fn=log))
    start = time.time()
    with warnings.catch_warnings():
        # The validation data ends after each pass (its length is unknown while bad clips are
        # skipped), and Keras warns about that; the training data repeats and never runs out.
        warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)
        model.fit(
            train_ds,
            epochs=o.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps,
            validation_data=val_ds,
            callbacks=cbs,
            verbose=1 if chief else 0,
            shuffle=False,
        )
    log(f"training took {time.time() - start:.0f} s")
    if model.stop_training and not is_run(run_dir):
        raise RuntimeError("training stopped (NaN loss) before any model was saved")

    summary = None
    if chief:
        best = load_run(run_dir).model
        eval_ds = data.make_eval_dataset(
            val_src, num_segments=o.segments, input_size=o.input_size, batch_size=o.batch_size, view=view
        )
        summary = evaluation.summarize(*evaluation.predict_views(best, eval_ds), class_names)
        evaluation.write_report(summary, class_names, run_dir)
        log("\nbest model on the validation set, " + evaluation.format_summary(summary, class_names))
    return summary, run_dir, model


def compile_for_training(model, o, steps_per_epoch):
    """Prepares `model` to train as `train` trains it with the resolved options `o` (`resolve`;
    `o.xla` False, True or "auto", as `_choose_step` sets it), `steps_per_epoch` steps an epoch.

    Not XLA: the fused BatchNormalization, in a new model that shares every other layer
    (`with_fused_batch_norm`): use the model it returns. The recipe's optimiser (`o.optimizer`,
    `o.weight_decay`, `o.clip_norm`, `o.head_lr_mult`) on its schedule (`o.lr` per 64 clips
    scaled to `o.batch_size`, `o.warmup_epochs` of warm-up, then `o.schedule` to the end of
    `o.epochs`), cross-entropy on the logits, top-1 and top-5 accuracy, `jit_compile=o.xla`.
    The benchmarks that time fit.py's step compile their models with it. Returns the compiled model.
    """
    schedule = recipe.WarmupSchedule(
        recipe.scaled_learning_rate(o.lr, o.batch_size),
        total_steps=steps_per_epoch * o.epochs,
        warmup_steps=int(round(o.warmup_epochs * steps_per_epoch)),
        kind=o.schedule,
        boundaries=[int(steps_per_epoch * o.epochs * f) for f in (0.4, 0.8)],
    )
    if not o.xla:  # Keras 3 trains BatchNormalization from separate ops; XLA fuses them itself
        model = with_fused_batch_norm(model)
    model.compile(
        optimizer=recipe.make_optimizer(schedule, o.weight_decay, o.clip_norm, o.head_lr_mult, o.optimizer),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="top1"),
            keras.metrics.SparseTopKCategoricalAccuracy(k=min(5, model.output_shape[-1]), name="top5"),
        ],
        jit_compile=o.xla,
    )
    return model


def _load_all_but_the_classifier(model, run_dir):
    """Copies every weight of the run (a preset or an older run) into `model`, paired by its path in the
    model ('block_1_expand/kernel'), but the classifier's ("logits"), which keeps its fresh
    initialisation: the reference's --tune_from. The architectures match (`_tuned_architecture`);
    clip length and frame size may differ. Raises naming the first weight (in this model's
    order) that the run lacks or holds in another shape, or the first one it has in excess."""
    source = load_run(run_dir).model

    def body(m):
        head = {id(w) for w in m.get_layer("logits").weights}
        return {w.path: w for w in m.weights if id(w) not in head}

    targets, sources = body(model), body(source)
    for path, target in targets.items():
        if path not in sources:
            raise ValueError(f"`tune_from={run_dir}`: its model has no weight {path}")
        if tuple(target.shape) != tuple(sources[path].shape):
            raise ValueError(
                f"`tune_from={run_dir}`: {path} has shape {tuple(sources[path].shape)} there, "
                f"{tuple(target.shape)} in this model"
            )
    extra = [path for path in sources if path not in targets]
    if extra:
        raise ValueError(f"`tune_from={run_dir}`: its model has weights this one lacks, first {extra[0]}")
    for path, target in targets.items():
        target.assign(sources[path])
    return len(targets)


def _shard_by_data(dataset):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _same_settings(old, new, key=None):
    """Equal settings (of one `key` of two dicts, or whole values). A key the old config lacks
    counts as equal when the new value is off (False or None): an option added since the run
    began (such as non_local), at its default, leaves the run what it was."""
    if key is not None:
        return old.get(key) == new.get(key) or (key not in old and new.get(key) in (False, None))
    if isinstance(old, dict) and isinstance(new, dict):
        return set(old) <= set(new) and all(_same_settings(old, new, k) for k in new)
    return old == new


def _check_resume_compatible(run_dir, config):
    """A run directory resumes only the run it was made for."""
    if not (run_dir / CONFIG).is_file():
        return
    old = read_config(run_dir)
    keys = ("model", "class_names", "training")
    new = json.loads(json.dumps(config))
    for settings in (old, new):  # how the step is compiled does not change the run's settings
        for key in ("xla", "deterministic"):
            settings.get("training", {}).pop(key, None)
    changed = [k for k in keys if not _same_settings(old.get(k), new[k])]
    if changed:
        details = []
        for key in changed:
            a, b = old.get(key) or {}, new[key]
            if isinstance(a, dict):
                details += [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in b if not _same_settings(a, b, k)]
            else:
                details.append(key)
        raise ValueError(
            f"{run_dir} holds a run with other settings ({'; '.join(details)}): pass `out` for a new run "
            "directory, or delete the old one"
        )
