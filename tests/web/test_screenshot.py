"""The page on a trained run and one of its validation videos, with a screenshot (docs/web.md
shows it). Slow: it needs a converted causal run, by default the README's demo run:

    TSM_WEB_RUN=runs/NAME TSM_WEB_SCREENSHOT=docs/images/web_demo.png \
        python -m pytest tests/web/test_screenshot.py
"""

import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.web.page import history, load, recorded_rgb
from tests.web.video import write_webm
from tsm_keras.commands.serve import make_server
from tsm_keras.export.runtime import StreamRunner
from tsm_keras.run_dir import read_config
from tsm_keras.streaming.app import StreamingClassifier, frames_of, model_view, open_capture, run_video

DEMO_RUN = "runs/temporal_shapes-mobilenet_v2-tsm-online"


@pytest.mark.slow
def test_trained_run_on_a_validation_video(browser, tmp_path):
    run = Path(os.environ.get("TSM_WEB_RUN", DEMO_RUN))
    model = run / "tflite" / "stream_state_int8.tflite"
    if not model.is_file():
        pytest.skip(f"{model}: missing (set TSM_WEB_RUN to a run converted with tflite/convert.py --int8)")
    config = read_config(run)
    videos = sorted((Path(config["data"]["val"]) / "val").glob("*/*.avi"))
    if not videos:
        pytest.skip(f"{config['data']['val']}/val: no validation videos")
    source = videos[len(videos) // 2]  # a class from the middle of the list
    capture = open_capture(str(source))
    frames = list(frames_of(capture))
    fps = capture.get(cv2.CAP_PROP_FPS) or 8.0
    capture.release()
    video = write_webm(tmp_path / f"{source.stem}.webm", np.stack(frames)[..., ::-1], fps)

    server = make_server(run, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    context = browser.new_context(viewport={"width": 960, "height": 400})
    try:
        page = load(context.new_page(), f"http://127.0.0.1:{server.server_address[1]}/", stride=2, record=100)
        page.set_input_files("#file", str(video))
        page.wait_for_function("document.querySelector('#message').textContent.startsWith('End of the video')")
        steps = history(page)["steps"]
        page.screenshot(path=os.environ.get("TSM_WEB_SCREENSHOT", str(tmp_path / "web_demo.png")))
    finally:
        context.close()
        server.shutdown()
        server.server_close()

    # The page's frames (as Chromium decoded the webm) through stream.py's code: its numbers.
    names = (run / "tflite" / "labels.txt").read_text().split()
    runner = StreamRunner(str(model))
    classifier = StreamingClassifier(runner, names, view=model_view(model, runner.input_size)[0])
    expected = run_video(classifier, [recorded_rgb(step)[..., ::-1] for step in steps])
    np.testing.assert_allclose([s["logits"] for s in steps], [e.logits for e in expected], rtol=0, atol=1e-4)
    assert [s["label"] for s in steps] == [e.label for e in expected]
