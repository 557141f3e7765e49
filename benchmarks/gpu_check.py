"""Every model of a run on LiteRT's GPU accelerator: fully accelerated or not, and its top-1 and
agreement with the CPU on the run's validation clips.

    python benchmarks/gpu_check.py RUN_DIR [CONVERT.PY OPTIONS ...]

Runs `tflite/convert.py RUN_DIR --int8 --float16 --gpu-check always` (a software Vulkan device
too: Mesa's llvmpipe checks what a GPU computes, never how fast) and tabulates report.json's
"gpu" section: per file, whether it compiles for the GPU alone, top-1 on the GPU at its default
(float16) arithmetic against the same file on the CPU, the share of validation clips with the
same top-1, and the largest logit difference from the CPU with float32 arithmetic
(`enforce_f32`) on the verification clips. Ends by writing its ledger entry,
results/gpu-demo.json (benchmarks/ledger.py).
"""

import json
import subprocess
import sys
from pathlib import Path

from ledger import command, write_entry

ROOT = Path(__file__).resolve().parents[1]


def _cell(value, digits=2):
    return None if value is None else round(value, digits)


def main():
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        raise SystemExit(__doc__)
    run, extra = sys.argv[1], sys.argv[2:]
    convert = [sys.executable, str(ROOT / "tflite" / "convert.py"), run, "--int8", "--float16"]
    subprocess.run([*convert, "--gpu-check", "always", *extra], cwd=ROOT, check=True)
    report = json.loads((Path(run) / "tflite" / "report.json").read_text())
    gpu = report["gpu"]
    if not gpu.get("checked"):
        raise SystemExit(f"not checked: {gpu.get('not_checked')}")
    rows = []
    for name, model in sorted(gpu["models"].items()):
        default, exact = model.get("default", {}), model.get("enforce_f32", {})
        rows.append(
            [
                name,
                "yes" if model["fully_accelerated"] else f"no ({model['refused'][:60]})",
                _cell(default.get("top1")),
                _cell(default.get("top1_cpu")),
                _cell(default.get("agreement_with_cpu"), 1),
                _cell(exact.get("max_abs_difference_vs_cpu"), 6) if "failed" not in exact else exact["failed"][:60],
            ]
        )
    columns = ["model", "fully accelerated", "top-1 GPU", "top-1 CPU", "same top-1 %", "enforce_f32 max |diff|"]
    print("| " + " | ".join(columns) + " |")
    for row in rows:
        print("| " + " | ".join("" if c is None else str(c) for c in row) + " |")
    accelerated = [row for row in rows if row[1] == "yes"]
    write_entry(
        "gpu-demo",
        "gpu",
        "Every model of a run on LiteRT's GPU accelerator, against the CPU",
        command(),
        columns,
        rows,
        summary={
            "fully accelerated": f"{len(accelerated)} of {len(rows)} files",
            "lowest agreement with the CPU": f"{min(row[4] for row in accelerated if row[4] is not None)}%",
        },
        notes=(
            f"Device: {gpu['device']} (software: the arithmetic of a GPU, not its speed). "
            f"{report['accuracy'].get('validation_clips')} validation clips of {report['run_dir']}. "
            "The stream_* files keep their buffers in resource variables, which the accelerator refuses: "
            "they are the CPU's streaming models; stream_state_* is the GPU's."
        ),
    )


if __name__ == "__main__":
    main()
