"""Whole models on the JAX backend: the same logits as on TensorFlow, and a training step.

The Keras backend is chosen per process, so the JAX side runs in a fresh Python
(tests.backends.run_on_jax). Weights go across in a `.weights.h5` file.
"""

import numpy as np

from tests.backends import needs_jax, run_on_jax
from tsm_keras.models import build_video_classifier

CASES = {
    "tsm": dict(backbone="mobilenet_v2", width=0.35, temporal="tsm"),
    "tsm-online": dict(backbone="mobilenet_v2", width=0.35, temporal="tsm-online", shift_div=4),
    "tam": dict(backbone="mobilenet_v2", width=0.35, temporal="tam"),
    "blresnet_cpu": dict(backbone="blresnet_cpu", temporal="tam"),
}
SEGMENTS, SIZE = 4, 32


def _random_statistics(model, rng):
    """Non-trivial BatchNormalization statistics, so that every layer shows in the logits."""
    for weight in model.weights:
        if "moving_variance" in weight.path:
            weight.assign(rng.uniform(0.5, 2.0, weight.shape).astype("float32"))
        elif "moving_mean" in weight.path:
            weight.assign(rng.normal(0, 0.1, weight.shape).astype("float32"))


@needs_jax
def test_models_give_tensorflows_logits_and_train_on_jax(tmp_path):
    rng = np.random.default_rng(0)
    clips = rng.uniform(0, 255, (2, SEGMENTS, SIZE, SIZE, 3)).astype("float32")
    np.save(tmp_path / "clips.npy", clips)
    for name, settings in CASES.items():
        model = build_video_classifier(3, num_segments=SEGMENTS, input_size=SIZE, **settings)
        _random_statistics(model, rng)
        np.save(tmp_path / f"{name}.npy", np.asarray(model(clips, training=False)))
        model.save_weights(tmp_path / f"{name}.weights.h5")
    # One process for all models (a JAX start costs seconds); the demo's model also trains.
    code = f"""
import numpy as np, keras
from tsm_keras.models import build_video_classifier
assert keras.backend.backend() == "jax"
clips = np.load({str(tmp_path / "clips.npy")!r})
for name, settings in {CASES!r}.items():
    model = build_video_classifier(3, num_segments={SEGMENTS}, input_size={SIZE}, **settings)
    model.load_weights({str(tmp_path)!r} + f"/{{name}}.weights.h5")
    expected = np.load({str(tmp_path)!r} + f"/{{name}}.npy")
    logits = np.asarray(model(clips, training=False))
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max(), err_msg=name)
# Training (the demo's causal TSM): five steps on one batch lower its loss.
model = build_video_classifier(3, num_segments={SEGMENTS}, input_size={SIZE}, **{CASES["tsm-online"]!r})
model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
labels = np.array([0, 2])
before = float(model.evaluate(clips, labels, verbose=0))
model.fit(clips, labels, epochs=5, batch_size=2, verbose=0)
after = float(model.evaluate(clips, labels, verbose=0))
assert after < before, (before, after)
print("jax ok", before, after)
"""
    run_on_jax(code)
