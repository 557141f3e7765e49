"""Train a TSM (or TSN, TAM) video classifier.

With no arguments: generates the built-in temporal data set once (time-reversed class
pairs that only a model that sees frame order can tell apart), trains a small causal
(online) TSM-MobileNetV2 from scratch on the CPU and reports validation top-1; the run
converts to int8 streaming models for a phone (tflite/convert.py --int8). Compare with
the TSN baseline: `python training/fit.py --temporal none`.

With --data: the reference recipe (bidirectional TSM, SGD, momentum 0.9, ImageNet weights,
224 px, 8 frames).
Starting the same command again resumes a killed run after its last completed epoch.

bLVNet-TAM: --backbone blresnet50 (or blresnet101) --temporal tam. Its clips carry 2T frames
that form T pairs: --segments counts the frames (even; 16 = the reference's "8x2"), and its
stage 4 and the consensus see the T pairs. With --data its defaults are the reference's
recipe: 16 frames, Nesterov SGD, cosine, no warm-up, from scratch (no Keras ImageNet weights).
"""

import argparse
import shlex
import sys

from tsm_keras.cli import as_flags
from tsm_keras.models import BACKBONES, TEMPORAL_LABELS, TEMPORAL_MODULES
from tsm_keras.training.trainer import (
    BIG_LITTLE_RECIPE,
    DEFAULTS,
    DEMO,
    RECIPE,
    FitOptions,
    resolve,
    train,
)

# The library's parameters that this script's flags stand for (tsm_keras.cli).
OPTIONS = tuple(DEFAULTS)


def parse_args(argv=None):
    d = lambda key: f"(default: {DEMO[key]} for the built-in demo, {RECIPE[key]} with --data)"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        help="a folder of videos (one subfolder per class, optional train/ and val/), "
        "a list file (frames_dir num_frames label) or a TFRecord folder from prepare.py "
        "(default: the built-in temporal data set)",
    )
    g.add_argument("--val-data", help="validation data in the same forms (default: the val split of --data)")
    g.add_argument("--workers", type=int, help="parallel decoding calls (default: AUTOTUNE)")
    g = p.add_argument_group("model")
    g.add_argument(
        "--backbone",
        choices=sorted(BACKBONES),
        help="2D network, or blresnet50/blresnet101: bLVNet-TAM's Big-Little network over frame pairs "
        "(default: mobilenet_v2)",
    )
    g.add_argument("--width", type=float, help=f"MobileNetV2 width multiplier {d('width')}")
    g.add_argument(
        "--segments",
        type=int,
        help=f"frames per clip T {d('segments')}; for blresnet50/101 the frames the clip carries, 2T "
        f"(T pairs, even; default: {DEMO['segments']} for the demo, {BIG_LITTLE_RECIPE['segments']} with --data)",
    )
    g.add_argument("--input-size", type=int, help=f"frame side in pixels {d('input_size')}")
    g.add_argument(
        "--temporal",
        choices=list(TEMPORAL_MODULES),
        help="; ".join(f"{name}: {label}" for name, label in TEMPORAL_LABELS.items()) + f" {d('temporal')}",
    )
    g.add_argument(
        "--shift-div",
        type=int,
        help="1/shift_div of the channels move (each way, when bidirectional) "
        "(default: 8; 4 for the built-in demo's tsm-online)",
    )
    g.add_argument(
        "--shift-place",
        choices=["blockres", "block"],
        help="blockres: residual branch only (released models; the default); block: the whole block input",
    )
    g.add_argument(
        "--temporal-pool", action="store_true", default=None, help="TSM+TP: halve the frames after stage 1 (ResNets)"
    )
    g.add_argument(
        "--non-local",
        action="store_true",
        default=None,
        help="non-local blocks after ResNet-50 blocks layer2[0, 2] and layer3[0, 2, 4], as the official _nl "
        "models (resnet50, resnet50_tv; the model then converts to clip models only, it cannot stream)",
    )
    g.add_argument(
        "--crop-scales",
        type=float,
        nargs="+",
        help="training crop sides as fractions of the short "
        "side; 1.0 alone: no crop (default: 1.0 for the built-in demo, the multi-scale crop "
        f"{' '.join(map(str, RECIPE['crop_scales']))} with --data)",
    )
    g.add_argument("--dropout", type=float, help=f"dropout before the classifier {d('dropout')}")
    g.add_argument(
        "--weights", help=f"backbone initialisation: none, imagenet (needs internet) or a weights file {d('weights')}"
    )
    g.add_argument(
        "--tune-from",
        metavar="RUN",
        help="fine-tune: start from the weights of a run directory "
        "(trained, or ported with python -m tsm_keras.port) but its classifier; backbone and width are "
        "the run's, and so are the temporal module and shift unless given (e.g. --temporal tsm-online "
        "turns a bidirectional model into a streamable one)",
    )
    g.add_argument(
        "--partial-bn",
        action="store_true",
        help="freeze all BatchNormalization layers but the first "
        "(the reference does this when fine-tuning on small data)",
    )
    g.add_argument(
        "--bn-momentum",
        type=float,
        help=f"BatchNormalization momentum (default: {DEFAULTS['bn_momentum']:g}, "
        "PyTorch's 0.1; Keras' MobileNetV2 0.999 is too slow for training from scratch)",
    )
    g.add_argument(
        "--sync-bn",
        action="store_true",
        help="with several replicas, BatchNormalization uses the "
        "statistics of the global batch (default: each replica its own, like PyTorch DDP)",
    )
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help=f"{d('epochs')}")
    g.add_argument("--batch-size", type=int, help=f"global batch in clips, split over replicas {d('batch_size')}")
    g.add_argument("--lr", type=float, help=f"learning rate per 64 clips, scaled linearly to --batch-size {d('lr')}")
    g.add_argument(
        "--optimizer",
        choices=["sgd", "nesterov", "adam"],
        help=f"sgd: momentum 0.9 as the reference; nesterov: the same with Nesterov momentum "
        f"(bLVNet-TAM's recipe, its default with --data) {d('optimizer')}",
    )
    g.add_argument(
        "--schedule",
        choices=["cosine", "step"],
        help=f"cosine decay, or x0.1 steps at 40%% and 80%% of the epochs (default: {DEFAULTS['schedule']})",
    )
    g.add_argument("--warmup-epochs", type=float, help=f"linear warm-up {d('warmup_epochs')}")
    g.add_argument("--weight-decay", type=float, help=f"L2 in the PyTorch sense {d('weight_decay')}")
    g.add_argument(
        "--clip-norm",
        type=float,
        help=f"global gradient-norm clipping, 0 for none (default: {DEFAULTS['clip_norm']:g})",
    )
    g.add_argument(
        "--head-lr-mult",
        type=float,
        help="learning-rate multiplier of the new classifier "
        f"(the reference uses 5 when fine-tuning; default: {DEFAULTS['head_lr_mult']:g})",
    )
    g = p.add_argument_group("hardware and run")
    g.add_argument("--mixed-precision", action="store_true", help="float16 on GPUs, bfloat16 elsewhere")
    g.add_argument(
        "--xla",
        action=argparse.BooleanOptionalAction,
        help="compile the training step with XLA (default on a CPU: off, graph mode with oneDNN's kernels was "
        "measured faster for ResNet-50 and MobileNetV2; on a GPU: as Keras decides, jit_compile='auto')",
    )
    g.add_argument("--tpu", help="train on a TPU: 'local' or its name/address (TPUStrategy)")
    g.add_argument("--seed", type=int, help=f"(default: {DEFAULTS['seed']})")
    g.add_argument(
        "--deterministic",
        action="store_true",
        help="TensorFlow's op determinism: two runs of one seed on one machine give the same history.csv "
        "(docs/training.md has its cost)",
    )
    g.add_argument("--out", help="run directory (default: runs/<data>-<backbone>-<temporal>)")
    args = p.parse_args(argv)
    # Options not given keep FitOptions' defaults (the profile fills the rest in `resolve`).
    options = FitOptions(**{k: v for k, v in vars(args).items() if v is not None})
    try:
        resolve(options)
    except ValueError as error:
        p.error(as_flags(error, OPTIONS))
    return options


def main(argv=None):
    options = parse_args(argv)
    try:
        summary, run_dir, _ = train(options, log=lambda line: print(as_flags(line, OPTIONS)))
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        sys.exit(f"fit.py: error: {as_flags(error, OPTIONS)}")
    if summary is not None:
        print(f"\nvalidation top-1: {100 * summary['top1']:.1f}%   run written to {run_dir}/")
        run = shlex.quote(str(run_dir))
        print(f"next: python training/evaluate.py {run}   |   python tflite/convert.py {run} --int8")
        if options.data is None:
            other = "python training/fit.py" if options.temporal == "none" else "python training/fit.py --temporal none"
            print(f"compare with: {other}   (the README has both results on this machine)")


if __name__ == "__main__":
    main()
