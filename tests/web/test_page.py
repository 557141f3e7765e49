"""web/ in headless Chromium against the Python path: the numbers of ai_edge_litert on the
same frames, the resize of OpenCV, the camera against tflite/stream.py's code on the same
file, and clear messages for a wrong model, a too small video and a refused camera."""

import numpy as np
import pytest

from tests.tiny import S, smooth_clips
from tests.web.page import CAMERA, LABELS, history, load, load_model, recorded_rgb, run_raw
from tests.web.video import blocky_frames, number_frames, read_number, write_webm
from tsm_keras.data.view import View
from tsm_keras.export.kinds import STREAM_STATE
from tsm_keras.export.runtime import StreamRunner
from tsm_keras.streaming.app import StreamingClassifier, frames_of, open_capture, prepare_frame, run_video

FLOAT, INT8 = "stream_state_float32.tflite", "stream_state_int8.tflite"


@pytest.fixture(scope="module")
def page(browser, server):
    """One page without camera permission for the tests that feed raw frames or pick models
    (a page load compiles LiteRT's WebAssembly: about a second)."""
    context = browser.new_context()
    page = context.new_page()
    page.requested = []  # every address the page asked for
    page.on("request", lambda request: page.requested.append(request.url))
    yield load(page, server, model=FLOAT, window=3)
    context.close()


@pytest.fixture(scope="module")
def frames():
    """12 raw frames, every one different (identical frames would hide a wrong buffer)."""
    return smooth_clips(3, seed=21).reshape(-1, S, S, 3).astype("uint8")


def test_the_page_and_litert_come_from_the_server_alone(page, server):
    """LiteRT.js's script and WebAssembly are served from web/node_modules, not a CDN."""
    assert any(url.endswith("/node_modules/@litertjs/core/dist/index.js") for url in page.requested)
    assert any(url.endswith(".wasm") for url in page.requested)
    assert [url for url in page.requested if not url.startswith(server)] == []


def test_float32_page_equals_litert_on_the_same_frames(page, float_models, frames):
    load_model(page, FLOAT)  # zero buffers, empty window (window=3 from the page's address)
    runner, smoother_window = StreamRunner(float_models[STREAM_STATE]), 3
    reference = StreamingClassifier(runner, LABELS, smoother_window)
    steps = run_raw(page, frames)
    for frame, got in zip(frames, steps):
        raw = runner.step(frame)
        logits = reference.smoother.add(raw)
        np.testing.assert_allclose(got["raw"], raw, rtol=0, atol=1e-4)
        np.testing.assert_allclose(got["logits"], logits, rtol=0, atol=1e-4)
        assert got["label"] == LABELS[int(np.argmax(logits))]
    # The Reset button: zero buffers and an empty window give the first numbers again.
    page.click("#reset")
    again = run_raw(page, frames[:4])
    assert [step["frame"] for step in again] == [0, 1, 2, 3]
    assert [step["raw"] for step in again] == [step["raw"] for step in steps[:4]]


def test_int8_page_gives_litert_top_class_on_every_frame(page, int8_models, frames):
    load_model(page, INT8)
    runner = StreamRunner(int8_models[STREAM_STATE])
    got = np.array([step["raw"] for step in run_raw(page, frames)])
    expected = runner.run(frames)
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    # Same kernels (XNNPACK) on both sides: at most one step of the int8 logits apart.
    assert np.abs(got - expected).max() <= runner.output["quantization"][0] + 1e-6


def test_page_resizes_as_opencv(page):
    """The view's centre square, INTER_AREA, RGB: equal to app.prepare_frame to the last bit on
    noise (the worst case for rounding), for shrinks by 2 (OpenCV's integer path), 3, 1
    (a crop only) and fractions, wide and tall."""
    sizes = [(64, 64, 32), (48, 72, 32), (97, 50, 32), (96, 96, 32), (41, 37, 16), (32, 40, 32), (90, 120, 64)]
    # The whole centre square, and the paper's view (the centre 7/8 of the short side).
    views = [View(size, size) for *_, size in sizes] + [View.paper(size) for *_, size in sizes[:3]]
    for (height, width, _), view in zip(sizes + sizes[:3], views):
        size, resize = view.center_crop, view.resize_short_side
        rgb = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
        rgba = np.concatenate([rgb, np.full((height, width, 1), 255, np.uint8)], axis=2)
        got = page.evaluate(
            "([v, w, h, s, r]) => window.tsm.prepareFrame(v, w, h, s, r)",
            [rgba.ravel().tolist(), width, height, size, resize],
        )
        expected = prepare_frame(rgb[..., ::-1], view)
        np.testing.assert_array_equal(np.array(got, np.uint8).reshape(size, size, 3), expected, f"{width}x{height}")


def test_camera_shows_the_top_class_of_stream_py_on_the_same_file(open_page, camera_file, camera_frames, float_models):
    """Chromium's fake camera plays camera.y4m in a loop at its frame rate; the page classifies
    the frames it gets (a busy page or browser misses some). Which file frame each step saw is
    read from its number in the margin. Two comparisons:
    1. the page's frames, as it read them from the video, through stream.py's code
       (app.run_video) give the page's logits within 1e-4 at every step;
    2. stream.py's code on the whole file from frame 0 (decoded by OpenCV): a causal model
       with B one-frame buffers has forgotten its first frames after B steps, and its window
       of W steps after B + W (checked below). Once the page has classified B + W frames in a
       row, its last step (file frame j) sees what stream.py's step j sees: the logits agree
       within 1e-4 and the top class shown is stream.py's. The frames are black and white,
       which Chromium and OpenCV decode to the very pixels written (checked); with colour
       their YUV-to-RGB rounding differed by up to 3 levels (one frame measured), which moved
       the tiny untrained model's logits by 1.2 and would make the comparison a matter of luck."""
    window = 4
    memory = len(StreamRunner(float_models[STREAM_STATE]).state_details) + window  # frames a step depends on
    page = open_page(camera=True, model=FLOAT, window=window, record=200)
    page.click("#camera")
    # Until the page has classified `memory` frames in a row.
    page.wait_for_function(
        "(need) => { const h = window.tsm.history().slice(-need); return h.length === need && "
        "h.every((step, i) => i === 0 || step.presented === h[i - 1].presented + 1); }",
        arg=memory,
        timeout=30_000,
    )
    shown = history(page)
    steps = shown["steps"]
    assert shown["shown"] == f"{steps[-1]['label']} {steps[-1]['score']:.2f}"
    assert [step["frame"] for step in steps] == list(range(len(steps)))
    assert (steps[0]["width"], steps[0]["height"]) == (CAMERA["width"], CAMERA["height"])
    images = [recorded_rgb(step) for step in steps]
    numbers = [read_number(image, CAMERA["margin"]) for image in images]
    centre = slice(CAMERA["margin"], CAMERA["width"] - CAMERA["margin"])
    for image, number in zip(images, numbers):  # Chromium decodes the pixels written
        np.testing.assert_array_equal(image[:, centre], camera_frames[number][:, centre])

    def classify(bgr_frames):
        return run_video(StreamingClassifier(StreamRunner(float_models[STREAM_STATE]), LABELS, window), bgr_frames)

    # 1. The page's frames through the Python app: the page's numbers.
    for step, expected in zip(steps, classify([image[..., ::-1] for image in images])):
        np.testing.assert_allclose(step["logits"], expected.logits, rtol=0, atol=1e-4)
        assert step["label"] == expected.label

    # 2. stream.py's code on the file, decoded by OpenCV (to the pixels written, too).
    capture = open_capture(str(camera_file))
    file_frames = list(frames_of(capture))
    capture.release()
    np.testing.assert_array_equal(np.stack(file_frames)[..., ::-1], camera_frames)
    reference = classify(file_frames)
    late = classify(file_frames[7:])  # started 7 frames later: the same logits after `memory` frames
    for j in range(7 + memory - 1, len(file_frames)):
        np.testing.assert_array_equal(late[j - 7].logits, reference[j].logits)
    j = numbers[-1]
    assert numbers[-memory:] == list(range(j - memory + 1, j + 1)) and j >= memory - 1, numbers
    np.testing.assert_allclose(steps[-1]["logits"], reference[j].logits, rtol=0, atol=1e-4)
    assert steps[-1]["label"] == reference[j].label, (len(steps), j)


def test_a_new_video_file_starts_from_zero_buffers_and_a_too_small_one_is_refused(open_page, float_models, tmp_path):
    page = open_page(camera=True, model=FLOAT, window=2, record=500)
    page.click("#camera")
    page.wait_for_function("window.tsm.history().length >= 3")
    video = write_webm(tmp_path / "clip.webm", number_frames(blocky_frames(12, 48, 72, seed=9), 12), fps=10)
    page.set_input_files("#file", str(video))
    page.wait_for_function("window.tsm.history().some((step) => step.source === 'clip.webm')")
    first = next(step for step in history(page)["steps"] if step["source"] == "clip.webm")
    assert first["frame"] == 0
    fresh = StreamRunner(float_models[STREAM_STATE])  # zero buffers
    expected = fresh.step(prepare_frame(recorded_rgb(first)[..., ::-1], View(S, S)))  # no report: the whole square
    np.testing.assert_allclose(first["raw"], expected, atol=1e-4)

    small = write_webm(tmp_path / "small.webm", blocky_frames(4, 24, 24, seed=1), fps=10)
    page.set_input_files("#file", str(small))
    page.wait_for_selector("#message.error")
    assert page.inner_text("#message").startswith(
        "the video is 24x24: its centre square (24 px) is smaller than the model's input (32 px)"
    )


@pytest.mark.parametrize(
    "name, says",
    [
        (
            "clip_float32.tflite",
            "clip_float32.tflite: a clip model (input 'clip' [4,32,32,3]), not a streaming model",
        ),
        ("stream_int8.tflite", "stream_int8.tflite: a streaming model that keeps its buffers in resource variables"),
    ],
)
def test_a_wrong_model_is_named_with_the_file_to_pick(page, name, says):
    load_model(page, name)
    message = page.inner_text("#message")
    assert says in message and "pick stream_state_float32.tflite or stream_state_int8.tflite" in message
    assert page.evaluate("window.tsm.info()") is None


def test_a_refused_camera_says_so(page, server):
    load(page, server)  # no camera permission; no ?model: the int8 streaming model is the default
    assert page.evaluate("window.tsm.info().name") == INT8
    page.click("#camera")
    page.wait_for_selector("#message.error")
    assert page.inner_text("#message").startswith("No camera permission: the browser refused the camera")
