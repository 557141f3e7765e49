"""Port an official TSM checkpoint to a Keras run directory.

    python -m tsm_keras.port TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e50.pth --out runs/tsm_k400
    python -m tsm_keras.port mobilenetv2_jester_online.pth.tar --out runs/jester_online --labels jester.txt
    python -m tsm_keras.port st2stv2-bLVNet-TAM-50-a2-b4-f8x2.pth.tar --out runs/blvnet_ssv2 --labels ssv2.txt

The output folder is a preset (config.json, preprocessor.json, metadata.json,
model.weights.h5, run.json: docs/training.md, "The run directory"), which training/evaluate.py,
tflite/convert.py and tsm_keras.VideoClassifier.from_preset read. Errors are one line on stderr (exit status 2).
"""

import argparse
import sys

from tsm_keras.cli import as_flags
from tsm_keras.port.checkpoint import PortError
from tsm_keras.port.porting import TEMPORAL, port_checkpoint


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tsm_keras.port",
        description="Port an official PyTorch TSM checkpoint (ResNet-50/101, non-local ResNet-50, "
        "MobileNetV2, the streaming demo's MobileNetV2) or a bLVNet-TAM checkpoint (bLResNet-50/101) to a "
        "Keras preset directory. What the tensors show (architecture, classes, shift placement, "
        "temporal pooling, non-local blocks) is inferred; the options below override or check it.",
    )
    parser.add_argument("checkpoint", help=".pth / .pth.tar (needs torch: pip install -e .[port]) or .npz state dict")
    parser.add_argument("--out", required=True, help="output directory (a preset)")
    parser.add_argument(
        "--arch",
        choices=("resnet50", "resnet101", "mobilenetv2", "blresnet50", "blresnet101"),
        help="checked against the tensors",
    )
    parser.add_argument("--num-classes", type=int, help="checked against the classifier")
    parser.add_argument(
        "--segments",
        type=int,
        help="frames per clip (bLVNet: the 2T frames, 16 for f8x2); default: from the file or folder name, "
        "else the porter asks",
    )
    parser.add_argument(
        "--shift-div",
        type=int,
        help="1/shift_div of the channels shift each way; default: from the file or folder name, else the porter asks",
    )
    parser.add_argument("--shift-place", choices=("blockres", "block"), help="checked against the tensors")
    parser.add_argument(
        "--temporal-pool",
        "--tpool",
        action="store_true",
        default=None,
        help="expect temporal pooling (TSM+TP); checked",
    )
    parser.add_argument(
        "--non-local",
        action="store_true",
        default=None,
        help="expect non-local blocks (the _nl models; read from the tensors); checked",
    )
    parser.add_argument(
        "--temporal",
        choices=TEMPORAL,
        help="tsm: bidirectional; tsm-online: unidirectional (streamable); none: TSN. "
        "Default: tsm for checkpoints with shifts, tsm-online for the streaming demo's",
    )
    parser.add_argument("--input-size", type=int, help="frame side (default 224)")
    parser.add_argument("--labels", help="text file with one class name per line")
    parser.add_argument("--force", action="store_true", help="replace existing output files")
    parser.add_argument("--debug", action="store_true", help="show the traceback of unexpected errors")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        ported, preset = port_checkpoint(
            args.checkpoint,
            args.out,
            labels=args.labels,
            force=args.force,
            arch=args.arch,
            num_classes=args.num_classes,
            segments=args.segments,
            shift_div=args.shift_div,
            shift_place=args.shift_place,
            temporal_pool=args.temporal_pool,
            temporal=args.temporal,
            non_local=args.non_local,
            input_size=args.input_size,
        )
    except PortError as error:
        print(f"error: {as_flags(error, vars(args))}", file=sys.stderr)
        return 2
    except Exception as error:  # a bug or an unforeseen file: still one line, nothing written
        if args.debug:
            raise
        reason = " ".join(str(error).split())[:300]
        print(
            f"error: porting {args.checkpoint} failed: {type(error).__name__}: {reason} (--debug for details)",
            file=sys.stderr,
        )
        return 1
    config = ported.model_config
    print(f"ported {ported.tensors} tensors into the preset {preset}/")
    print("model: " + ", ".join(f"{key}={value}" for key, value in config.items()))
    for note in ported.notes:
        print(f"  {as_flags(note, vars(args))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
