"""What the web tests share: the tiny run's class names, the fake camera's video, and
reading the page's test hook (window.tsm)."""

import base64
from urllib.parse import urlencode

import numpy as np

LABELS = ["jump", "run", "sit", "wave", "clap"]  # the session's tiny models have 5 classes
# The fake camera: 72 x 48, so its centre square (48 px, shrunk 1.5x to the models' 32 px)
# leaves 12 columns on each side for the frame number.
CAMERA = {"height": 48, "width": 72, "margin": 12, "frames": 120, "fps": 10}


def run_raw(page, frames):
    """Raw S x S x 3 uint8 frames through the page's classifier (tsm.stepRaw), in order."""
    return page.evaluate(
        "async (frames) => { const out = []; for (const f of frames) out.push(await window.tsm.stepRaw(f)); "
        "return out; }",
        [frame.ravel().tolist() for frame in frames],
    )


def history(page):
    """The page's steps on video frames, oldest first, with the label it shows now."""
    return page.evaluate("({steps: window.tsm.history(), shown: document.querySelector('#label').textContent})")


def recorded_rgb(step):
    """The RGB frame the page read from the video for this step (pages opened with ?record=N)."""
    rgba = np.frombuffer(base64.b64decode(step["image"]), np.uint8)
    return rgba.reshape(step["height"], step["width"], 4)[..., :3]


def load(page, server, **query):
    """`page` at the server's page with `query` (model, window, stride, record), once its model
    is loaded or has failed to load (window.tsm.info() null and an error shown)."""
    page.goto(server + "?" + urlencode(query))
    page.wait_for_function(
        "window.tsm && (window.tsm.info() || document.querySelector('#message.error'))", timeout=30_000
    )
    return page


def load_model(page, name):
    """Loads another model into an open page (its model list), as picking it does."""
    page.select_option("#model", name)
    page.wait_for_function(
        "(name) => window.tsm.info()?.name === name || document.querySelector('#message.error')", arg=name
    )
