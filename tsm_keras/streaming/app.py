"""The streaming app: OpenCV frames -> a streaming .tflite frame by frame -> smoothed top class.

Each camera or video frame is cropped to the centre square that the run's view keeps
(report.json's "preprocessing", written by convert.py: what the model was evaluated on),
resized to the model's input size and converted BGR -> RGB; the streaming model gives this frame's logits; the logits of
the last `window` frames are averaged (the official TSM demo sums its last 12 logit
vectors, the same ranking); the top class and its softmax score are drawn on the frame.
The buffers are reset at the start of every video and on request.
"""

import collections
import dataclasses
import json
from pathlib import Path

import numpy as np

DEFAULT_WINDOW = 12


class Smoother:
    """Mean of the logits of the last `window` frames."""

    def __init__(self, window=DEFAULT_WINDOW):
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"`window` must be an integer >= 1. Received: window={window!r}")
        self.recent = collections.deque(maxlen=window)

    def add(self, logits):
        self.recent.append(np.asarray(logits, "float32"))
        return np.mean(self.recent, axis=0)

    def reset(self):
        self.recent.clear()


def softmax(logits):
    z = np.asarray(logits, "float64") - np.max(logits)
    e = np.exp(z)
    return e / e.sum()


def prepare_frame(bgr, view):
    """A BGR camera frame `(H, W, 3)` uint8 -> the model's RGB input: the centre square that
    `view` (`tsm_keras.data.view.View`) keeps, resized to `view.center_crop` with INTER_AREA."""
    import cv2

    top, left, side = view.square(*bgr.shape[:2])
    square = bgr[top : top + side, left : left + side]
    size = view.center_crop
    resized = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)


def model_view(model_path, input_size):
    """(the view a .tflite was evaluated on, where it was read): report.json beside the model,
    as convert.py writes it; a model without one is shown the whole centre square."""
    from tsm_keras.data.view import View

    report = Path(model_path).resolve().parent / "report.json"
    if report.is_file():
        config = json.loads(report.read_text())
        if "preprocessing" in config:
            return View.of_run({"model": {"input_size": input_size}, **config}), str(report)
    return View(input_size, input_size), f"no preprocessing in {report}: the whole centre square"


def annotate(bgr, text, score):
    """Draw the class and score at the top of a BGR frame (in place) and return it."""
    import cv2

    scale = max(0.4, bgr.shape[1] / 640)
    label = f"{text} {score:.2f}"
    cv2.rectangle(bgr, (0, 0), (bgr.shape[1], int(28 * scale) + 4), (0, 0, 0), -1)
    cv2.putText(
        bgr,
        label,
        (6, int(22 * scale)),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.7 * scale,
        (255, 255, 255),
        max(1, int(2 * scale)),
        cv2.LINE_AA,
    )
    return bgr


@dataclasses.dataclass
class Prediction:
    frame: int  # frames seen since the last reset, this one included minus one
    label: str
    score: float  # softmax probability of the smoothed logits
    logits: np.ndarray  # smoothed logits


class StreamingClassifier:
    """A streaming runner, its smoother and the class names: `update(bgr) -> Prediction`."""

    def __init__(self, runner, class_names, window=DEFAULT_WINDOW, view=None):
        """`view`: what each frame is cropped to (default: the whole centre square)."""
        from tsm_keras.data.view import View

        self.runner, self.smoother = runner, Smoother(window)
        self.view = View(runner.input_size, runner.input_size) if view is None else view
        if self.view.center_crop != runner.input_size:
            raise ValueError(f"a view of {self.view.center_crop} px for a model of {runner.input_size} px")
        self.class_names = list(class_names)
        classes = int(runner.output["shape"][-1])
        if len(self.class_names) != classes:
            raise ValueError(f"{len(self.class_names)} class names for a model with {classes} outputs")
        self.frames = 0

    def reset(self):
        """A new video: zero buffers, empty smoothing window."""
        self.runner.reset()
        self.smoother.reset()
        self.frames = 0

    def update(self, bgr):
        logits = self.smoother.add(self.runner.step(prepare_frame(bgr, self.view)))
        top = int(np.argmax(logits))
        prediction = Prediction(self.frames, self.class_names[top], float(softmax(logits)[top]), logits)
        self.frames += 1
        return prediction


def frames_of(capture):
    """BGR frames of an opened cv2.VideoCapture, until it ends."""
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield frame


def open_capture(source):
    """cv2.VideoCapture of a video file path or a camera index, or ValueError naming it."""
    import cv2

    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        what = f"camera {source}" if isinstance(source, int) else f"{source}"
        raise ValueError(f"{what}: cannot be opened as a video")
    return capture


def run_video(classifier, frames, writer=None, reset_every=None, should_reset=None, on_prediction=None, stride=1):
    """Classify a sequence of BGR frames from zero buffers; returns the list of predictions.

    Args:
        writer: a cv2.VideoWriter for the annotated frames (or None).
        reset_every: also reset every this many frames (or None).
        should_reset: `f() -> bool`, polled before each frame: a reset on request.
        on_prediction: `f(prediction, annotated_bgr)` after each frame.
        stride: run the model on every `stride`-th frame only (the others show the last
            prediction). The shift mixes a frame with the one the model saw before it, so
            this should match the frame spacing of training: about (video frames per
            clip) / num_segments with TSN sampling.
    """
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"`stride` must be an integer >= 1. Received: stride={stride!r}")
    classifier.reset()
    predictions = []
    prediction = None
    for index, frame in enumerate(frames):
        if (reset_every and index and index % reset_every == 0) or (should_reset and should_reset()):
            classifier.reset()
        if index % stride == 0 or prediction is None:
            prediction = classifier.update(frame)
        predictions.append(prediction)
        annotated = annotate(frame.copy(), prediction.label, prediction.score)
        if writer is not None:
            writer.write(annotated)
        if on_prediction is not None:
            on_prediction(prediction, annotated)
    return predictions
