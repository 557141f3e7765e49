"""Headless Chromium (Debian's, driven by Playwright) on web/ served by tflite/serve.py with a
run folder of the session's tiny models, and a fake camera playing a numbered .y4m.

The tests skip only when no Chromium is installed; a missing Playwright or web/node_modules
(both installed by .ci/run) is an error that says what to install."""

import os
import shutil
import threading

import pytest

from tests.web.page import CAMERA, LABELS, load
from tests.web.video import black_and_white_frames, number_frames, write_y4m
from tsm_keras.commands.serve import LITERT, WEB, make_server

# A fresh profile comes from Playwright; these keep Chromium off the (closed) network.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium():
    for name in (os.environ.get("TSM_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        path = name and shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def camera_frames():
    """The fake camera's RGB frames, numbered in the left margin."""
    frames = black_and_white_frames(CAMERA["frames"], CAMERA["height"], CAMERA["width"], seed=3)
    return number_frames(frames, CAMERA["margin"])


@pytest.fixture(scope="session")
def camera_file(tmp_path_factory, camera_frames):
    return write_y4m(tmp_path_factory.mktemp("camera") / "camera.y4m", camera_frames, CAMERA["fps"])


@pytest.fixture(scope="session")
def browser(camera_file):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium to drive: install it (Debian: apt-get install chromium) or set TSM_CHROMIUM")
    if not (WEB / LITERT).is_dir():
        pytest.fail(f"{WEB / LITERT} is missing: run `npm ci` in {WEB}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Python package playwright is missing: pip install -e '.[test]'")
    playwright = sync_playwright().start()
    camera = ["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={camera_file}"]
    browser = playwright.chromium.launch(executable_path=chromium, args=FLAGS + camera, headless=True)
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture(scope="session")
def web_run(tmp_path_factory, float_models, int8_models):
    """A run folder as tflite/convert.py leaves it: tflite/*.tflite and labels.txt."""
    from tsm_keras.data.labels import write_labels
    from tsm_keras.export.kinds import CLIP, FLOAT32, INT8, STREAM, STREAM_STATE, file_name

    tflite = tmp_path_factory.mktemp("web_run") / "tflite"
    tflite.mkdir()
    for precision, models in ((FLOAT32, float_models), (INT8, int8_models)):
        for kind in (CLIP, STREAM, STREAM_STATE):
            (tflite / file_name(kind, precision)).write_bytes(models[kind])
    write_labels(tflite / "labels.txt", LABELS)
    return tflite.parent


@pytest.fixture(scope="session")
def server(web_run):
    server = make_server(web_run, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def open_page(browser, server):
    """`open_page(camera=False, **query)`: a new page in its own context (`camera` grants the
    camera), once its model is loaded or has failed to load. Closed after the test."""
    contexts = []

    def open_(camera=False, **query):
        contexts.append(browser.new_context(permissions=["camera"] if camera else []))
        return load(contexts[-1].new_page(), server, **query)

    yield open_
    for context in contexts:
        context.close()
