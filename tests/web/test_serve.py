"""tflite/serve.py: what it serves, what it refuses, and the errors that say what to run."""

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tsm_keras.commands.serve import LITERT, ServeError, check, make_server
from tsm_keras.export.kinds import STREAM_STATE

ROOT = Path(__file__).resolve().parents[2]


def fake_run(root, names=("stream_state_float32.tflite", "clip_float32.tflite"), labels=True):
    tflite = root / "run" / "tflite"
    tflite.mkdir(parents=True)
    for name in names:
        (tflite / name).write_bytes(b"TFL3" + name.encode())
    if labels:
        (tflite / "labels.txt").write_text("left\nright\n")
    (tflite / "report.json").write_text(json.dumps({"preprocessing": {"resize_short_side": 73, "center_crop": 64}}))
    (root / "run" / "config.json").write_text("{}")
    return tflite.parent


def fake_web(root):
    web = root / "web"
    (web / LITERT).mkdir(parents=True)
    (web / LITERT / "litert_wasm_internal.wasm").write_bytes(b"\0asm")
    (web / "index.html").write_text("<!doctype html>")
    return web


@pytest.fixture
def served(tmp_path):
    server = make_server(fake_run(tmp_path), port=0, web_dir=fake_web(tmp_path))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def get(url):
    try:
        with urllib.request.urlopen(url) as response:
            return response.status, response.headers.get("Content-Type"), response.read()
    except urllib.error.HTTPError as error:
        return error.code, None, b""


def test_serves_the_page_the_runtime_and_only_the_runs_models_and_labels(served, tmp_path, float_models):
    status, _, body = get(served + "/model/models.json")
    unreadable = "LiteRT cannot read it (The model is not a valid Flatbuffer buffer)"
    assert status == 200 and json.loads(body) == {
        "run": "run",
        "models": [
            {"name": name, "kind": None, "error": f"{name}: {unreadable}"}
            for name in ("clip_float32.tflite", "stream_state_float32.tflite")
        ],
        "preprocessing": {"resize_short_side": 73, "center_crop": 64},  # the run's view, from report.json
    }
    assert get(served + "/model/stream_state_float32.tflite")[2] == b"TFL3stream_state_float32.tflite"
    assert get(served + "/model/labels.txt")[2] == b"left\nright\n"
    assert get(served + "/")[2] == b"<!doctype html>"
    status, kind, _ = get(served + "/node_modules/@litertjs/core/wasm/litert_wasm_internal.wasm")
    assert (status, kind) == (200, "application/wasm")
    (tmp_path / "run" / "tflite" / "stream_state_float32.tflite").write_bytes(float_models[STREAM_STATE])
    models = json.loads(get(served + "/model/models.json")[2])["models"]  # a changed file is read again
    assert [(m["name"], m["kind"], m.get("precision")) for m in models] == [
        ("clip_float32.tflite", None, None),
        ("stream_state_float32.tflite", "stream_state", "float32"),
    ]
    for hidden in ("/model/report.json", "/model/%2e%2e/config.json", "/model/..%2fconfig.json", "/config.json"):
        assert get(served + hidden)[0] == 404, hidden


def test_refuses_a_run_it_cannot_serve_and_says_what_to_run(tmp_path):
    web = fake_web(tmp_path)
    with pytest.raises(ServeError, match="no such run directory"):
        check(tmp_path / "nowhere", web)
    clip_only = fake_run(tmp_path / "a", names=("clip_float32.tflite",))
    with pytest.raises(ServeError, match=r"no stream_state_\*.tflite to serve: run python tflite/convert.py .* --int8"):
        check(clip_only, web)
    with pytest.raises(ServeError, match=r"labels.txt: missing"):
        check(fake_run(tmp_path / "b", labels=False), web)
    with pytest.raises(ServeError, match=r"missing: run `npm ci` in"):
        check(fake_run(tmp_path / "c"), tmp_path / "empty")


def test_the_script_prints_the_address_it_serves(tmp_path):
    run = fake_run(tmp_path)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tflite" / "serve.py"), str(run), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith(f"serving {run} at http://127.0.0.1:"), line + process.stderr.read()
        url = line.split(" at ")[1].split()[0]
        assert get(url + "model/labels.txt")[2] == b"left\nright\n"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_models_json_gives_each_models_kind_precision_and_signatures_as_ai_edge_litert_reads_them(server, web_run):
    """The page takes each model's kind and quantization from models.json: checked here
    against the interpreter's own details."""
    from ai_edge_litert.interpreter import Interpreter

    listing = json.loads(get(server + "model/models.json")[2])
    models = {model["name"]: model for model in listing["models"]}
    assert listing["run"] == web_run.name and sorted(models) == sorted(p.name for p in web_run.glob("tflite/*.tflite"))
    for name, model in models.items():
        kind, precision = name.removesuffix(".tflite").rsplit("_", 1)
        assert (model["kind"], model["precision"]) == (kind, precision), name
        litert = Interpreter(model_path=str(web_run / "tflite" / name))
        assert sorted(model["signatures"]) == sorted(litert.get_signature_list())
        for key, signature in model["signatures"].items():
            runner = litert.get_signature_runner(key)
            for side, details in (("inputs", runner.get_input_details()), ("outputs", runner.get_output_details())):
                assert sorted(signature[side]) == sorted(details), (name, key, side)
                for tensor, detail in details.items():
                    got = signature[side][tensor]
                    assert got["shape"] == detail["shape"].tolist() and got["dtype"] == detail["dtype"].__name__
                    assert tuple(got["quantization"]) == detail["quantization"], (name, tensor)
    step = models["stream_state_int8.tflite"]["signatures"]["step"]
    assert step["inputs"]["frame"] == {"shape": [1, 32, 32, 3], "dtype": "int8", "quantization": [1.0, -128]}
    assert step["outputs"]["logits"]["shape"] == [1, 5] and step["outputs"]["logits"]["quantization"][0] > 0
    clip = models["clip_float32.tflite"]["signatures"]["serving_default"]
    assert clip["inputs"]["clip"]["shape"] == [4, 32, 32, 3]
