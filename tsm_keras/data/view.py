"""The view: how a run's model sees a video at evaluation and at deployment.

One record per run (config.json `"preprocessing"`, copied into the TFLite report): resize the
frame's short side to `resize_short_side`, keep the centre `center_crop` x `center_crop`.
Everything that feeds the trained model reads it: fit's validation, evaluate.py, int8
calibration and its gate, stream.py and the web page. In a frame's own pixels that is the
centre square of side `short * center_crop // resize_short_side`, which the apps crop before
resizing to the model's input.

- A run trained on whole frames (crop_scales `(1.0,)`, the built-in demo) is seen whole:
  `resize_short_side == center_crop`, the full centre square.
- A run trained with the multi-scale crop keeps the paper's test protocol: resize 256,
  centre 224 (the same 8/7 ratio at other sizes).
- A run written before the record existed was evaluated with the paper's protocol, and
  loads with it.

Pure Python: the apps read it without TensorFlow.
"""

import dataclasses

TEST_RESIZE_RATIO = 256 / 224  # the paper's test crop: short side 256, centre 224


@dataclasses.dataclass(frozen=True)
class View:
    """Resize the short side to `resize_short_side`, keep the centre `center_crop` square.

    >>> View.for_training(64, (1.0,)), View.for_training(224, (1.0, 0.875, 0.75, 0.66))
    (View(center_crop=64, resize_short_side=64), View(center_crop=224, resize_short_side=256))
    >>> View(224, 256).square(height=480, width=640)  # (top, left, side) in the frame's pixels
    (30, 110, 420)
    >>> View.of_run({"model": {"input_size": 64}})  # a run written before views were recorded
    View(center_crop=64, resize_short_side=73)
    """

    center_crop: int
    resize_short_side: int

    def __post_init__(self):
        if not 0 < self.center_crop <= self.resize_short_side:
            raise ValueError(
                f"a view keeps a centre crop of at most the resized short side. Received: center_crop="
                f"{self.center_crop}, resize_short_side={self.resize_short_side}"
            )

    @classmethod
    def paper(cls, input_size):
        """The paper's test crop at this input size: short side 8/7 of it, the centre kept."""
        return cls(input_size, int(round(input_size * TEST_RESIZE_RATIO)))

    @classmethod
    def for_training(cls, input_size, crop_scales):
        """The view of a run trained with `crop_scales`: whole frames stay whole."""
        return cls(input_size, input_size) if tuple(crop_scales) == (1.0,) else cls.paper(input_size)

    @classmethod
    def of_run(cls, config):
        """The view a run's config.json records, or the paper's for a run written before it."""
        record = config.get("preprocessing") or {}
        if "resize_short_side" in record and "center_crop" in record:
            return cls(int(record["center_crop"]), int(record["resize_short_side"]))
        return cls.paper(int(config["model"]["input_size"]))

    def record(self):
        """config.json's and report.json's `"preprocessing"` entries of this view."""
        return {"resize_short_side": self.resize_short_side, "center_crop": self.center_crop}

    def square(self, height, width):
        """`(top, left, side)`: the centre square of a `height` x `width` frame that the view
        keeps, in the frame's pixels (integer arithmetic: web/stream_app.js does the same)."""
        side = min(height, width) * self.center_crop // self.resize_short_side
        return (height - side) // 2, (width - side) // 2, side


def preprocessing(view, mean, std):
    """config.json's `"preprocessing"`: the view, and what a frame is (raw RGB; the model
    normalises inside with `mean` and `std`, given in [0, 255] as the backbone presets hold them)."""
    return {
        "color": "RGB",
        "input": "raw frames in [0, 255]; the model normalises inside",
        "mean": [round(m / 255, 6) for m in mean],
        "std": [round(s / 255, 6) for s in std],
        **view.record(),
    }
