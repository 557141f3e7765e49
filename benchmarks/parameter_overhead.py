"""Parameters that TAM adds to the 2D model (r * C per module), against TSM's zero.

    PYTHONPATH=. python benchmarks/parameter_overhead.py
    PYTHONPATH=. python benchmarks/parameter_overhead.py --backbones resnet50 --per-module

Counts come from the built models' weights (`tsm_keras.models.parameter_overhead`), with a
400-class head (Kinetics) on the 2D model. Parameter counts do not depend on the input
size, so the models are built at the smallest one.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tsm_keras.models import BACKBONES, build_video_classifier, parameter_overhead


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--backbones", nargs="+", default=["mobilenet_v2", "resnet50", "resnet101"], choices=sorted(BACKBONES)
    )
    parser.add_argument("--temporal", nargs="+", default=["tsm", "tam", "tam-online"])
    parser.add_argument("--num-classes", type=int, default=400)
    parser.add_argument("--per-module", action="store_true", help="also list every module")
    args = parser.parse_args()
    print(f"{'backbone':<14}{'temporal':<12}{'modules':>8}{'2D model':>13}{'added':>10}{'added %':>10}")
    for backbone in args.backbones:
        size = BACKBONES[backbone].min_input_size
        for temporal in args.temporal:
            model = build_video_classifier(args.num_classes, backbone, input_size=size, temporal=temporal)
            overhead = parameter_overhead(model)
            print(
                f"{backbone:<14}{temporal:<12}{len(overhead.per_module):>8}{overhead.base:>13,}"
                f"{overhead.total:>+10,}{100 * overhead.fraction:>9.3f}%",
                flush=True,
            )
            if args.per_module:
                print(overhead)


if __name__ == "__main__":
    main()
