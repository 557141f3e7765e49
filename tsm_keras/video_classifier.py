"""`VideoClassifier`: a video classifier that loads and saves as a preset in KerasHub's layout."""

import keras

from tsm_keras.models.backbones import get_backbone
from tsm_keras.models.classifier import build_video_classifier


@keras.saving.register_keras_serializable(package="tsm_keras")
class VideoClassifier(keras.Model):
    """A TSM (or TSN, TAM, bLVNet-TAM) video classifier with its view and class names.

    The Functional model that `build_video_classifier` builds from the same arguments (raw
    RGB clips `(B, T, S, S, 3)` in [0, 255] in, clip logits out), as KerasHub's tasks are
    Functional models, plus `class_names` and `preprocessing` (how clips are sampled and
    cropped: `tsm_keras.data.view`). `from_preset` loads a run directory of training/fit.py
    or the porter, `save_to_preset` writes one (docs/training.md, "The run directory").

    >>> import tempfile
    >>> model = VideoClassifier(num_classes=3, num_segments=2, input_size=32, width=0.35)
    >>> model.class_names = ["push", "pull", "wave"]
    >>> folder = tempfile.mkdtemp()
    >>> model.save_to_preset(folder)
    >>> VideoClassifier.from_preset(folder).class_names
    ['push', 'pull', 'wave']

    Args: those of `build_video_classifier` (`weights` included, not kept in the config).
    """

    def __init__(self, num_classes, weights=None, **arguments):
        network = build_video_classifier(num_classes, weights=weights, **arguments)
        super().__init__(inputs=network.input, outputs=network.output, name=network.name)
        self.arguments = {"num_classes": num_classes, **arguments}
        self.class_names = [str(i) for i in range(num_classes)]
        self.preprocessing = _default_preprocessing(self.arguments)

    def get_config(self):
        return dict(self.arguments)

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @classmethod
    def from_preset(cls, preset):
        """The classifier of a preset directory (or of a run written before presets), with
        its weights, class names and view. Raises `tsm_keras.run_dir.RunError` naming the file
        that is missing or wrong."""
        from tsm_keras.run_dir import load_run  # here: the run directory's readers load TensorFlow

        run = load_run(preset, build=cls)
        model = run.model
        model.class_names = run.class_names
        model.preprocessing = run.config.get("preprocessing") or _default_preprocessing(run.model_config)
        return model

    def save_to_preset(self, preset_dir):
        """Writes config.json, preprocessor.json, metadata.json and model.weights.h5 into `preset_dir`."""
        from tsm_keras.run_dir import write_run

        config = {"model": self.arguments, "preprocessing": self.preprocessing}
        write_run(preset_dir, self, config, self.class_names)


def _default_preprocessing(arguments):
    """The paper's test view at the model's frame size, with its backbone's mean and std."""
    from tsm_keras.data.view import View, preprocessing

    backbone = get_backbone(arguments.get("backbone", "mobilenet_v2"))
    size = arguments.get("input_size") or backbone.input_size
    return preprocessing(View.paper(size), backbone.mean, backbone.std)
