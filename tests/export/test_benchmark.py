import os
import stat
import subprocess

import pytest

from tsm_keras.export.benchmark import benchmark, benchmark_model_flags, summarize
from tsm_keras.export.kinds import CLIP, STREAM, STREAM_STATE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_summary_statistics():
    s = summarize([0.001, 0.002, 0.003, 0.010])
    assert s["median_ms"] == pytest.approx(2.5) and s["min_ms"] == pytest.approx(1.0)
    assert s["max_ms"] == pytest.approx(10.0) and s["runs"] == 4


@pytest.mark.parametrize(
    "kind,signatures", [(CLIP, {"serving_default"}), (STREAM, {"reset", "step"}), (STREAM_STATE, {"step"})]
)
def test_every_signature_is_timed(float_models, int8_models, kind, signatures):
    for models in (float_models, int8_models):
        result = benchmark(models[kind], threads=1, warmup=1, repeats=3)
        assert result["kind"] == kind and set(result["signatures"]) == signatures
        assert all(0 < v["min_ms"] <= v["median_ms"] <= v["max_ms"] for v in result["signatures"].values())
    only = benchmark(float_models[kind], threads=1, warmup=0, repeats=2, signature=sorted(signatures)[-1])
    assert list(only["signatures"]) == [sorted(signatures)[-1]]
    with pytest.raises(ValueError, match="no signature 'nope'"):
        benchmark(float_models[kind], signature="nope")


def test_benchmark_model_flags_per_kind(float_models, stream_model):
    assert benchmark_model_flags(float_models[CLIP]) == []
    assert benchmark_model_flags(float_models[STREAM]) == ["--signature_to_run_for=step"]
    layers, shapes = benchmark_model_flags(float_models[STREAM_STATE])
    names = layers.split("=", 1)[1].split(",")
    assert len(names) == 11 and any("frame" in n for n in names)
    shape_list = shapes.split("=", 1)[1].split(":")
    assert "1,32,32,3" in shape_list and "1,8,8,1" in shape_list and len(shape_list) == 11


def fake_adb(folder, log):
    """An `adb` that records its arguments and answers like a phone running benchmark_model."""
    script = folder / "adb"
    script.write_text(f"""#!/usr/bin/env bash
echo "$@" >> {log}
case "$*" in
  *get-state*) echo device ;;
  *getprop*) echo Pixel ;;
  *benchmark_model\\ --graph*)
    echo "Inference timings in us: Init: 1000, First inference: 900, Warmup (avg): 800, Inference (avg): 750" ;;
  pull*) touch "${{@: -1}}/$(basename "${{@: -2:1}}")" ;;
esac
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize(
    "kind,expected",
    [(STREAM, "--signature_to_run_for=step"), (STREAM_STATE, "--input_layer="), (CLIP, "--num_threads=2")],
)
def test_android_script_runs_benchmark_model_with_the_flags_of_each_kind(tmp_path, float_models, kind, expected):
    model = tmp_path / f"{kind}_float32.tflite"
    model.write_bytes(float_models[kind])
    binary = tmp_path / "benchmark_model"
    binary.write_text("not a real binary")
    log = tmp_path / "adb.log"
    fake_adb(tmp_path, log)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "PYTHONPATH": ROOT}
    result = subprocess.run(
        [
            "bash",
            os.path.join(ROOT, "tflite", "benchmark_android.sh"),
            str(model),
            "--benchmark_model",
            str(binary),
            "--threads",
            "2",
            "--profile",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    run_line = [l for l in log.read_text().splitlines() if "benchmark_model --graph" in l][0]
    assert expected in run_line and "--enable_op_profiling=true" in run_line and "--use_xnnpack=true" in run_line
    summary = (tmp_path / "out" / f"{kind}_float32_xnnpack_t2.txt").read_text()
    assert "Inference (avg): 750" in summary


def test_android_script_errors_name_the_missing_file(tmp_path):
    result = subprocess.run(
        [
            "bash",
            os.path.join(ROOT, "tflite", "benchmark_android.sh"),
            str(tmp_path / "x.tflite"),
            "--benchmark_model",
            "bm",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and f"{tmp_path / 'x.tflite'}: no such .tflite file" in result.stderr
