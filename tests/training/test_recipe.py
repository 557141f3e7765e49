import keras
import numpy as np
import pytest

from tsm_keras.training.recipe import WarmupSchedule, make_optimizer, scaled_learning_rate


def test_linear_scaling_matches_the_reference_recipes():
    assert scaled_learning_rate(0.01, 64) == pytest.approx(0.01)
    assert scaled_learning_rate(0.01, 128) == pytest.approx(0.02)  # Kinetics: 0.02 / 128
    assert scaled_learning_rate(0.01, 16) == pytest.approx(0.0025)


def test_warmup_then_cosine():
    schedule = WarmupSchedule(0.1, total_steps=110, warmup_steps=10, kind="cosine")
    lr = [float(schedule(step)) for step in range(110)]
    np.testing.assert_allclose(lr[:10], [0.1 * (s + 1) / 10 for s in range(10)], rtol=1e-6)
    assert lr[10] == pytest.approx(0.1)
    assert lr[60] == pytest.approx(0.05, rel=1e-5)  # half-way through the decay
    assert lr[109] < 0.001 and all(a >= b for a, b in zip(lr[10:], lr[11:]))


def test_warmup_then_steps():
    schedule = WarmupSchedule(1.0, total_steps=100, warmup_steps=0, kind="step", boundaries=[40, 80])
    assert [float(schedule(s)) for s in (0, 39, 40, 79, 80, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


@pytest.mark.parametrize("warmup_epochs", [1, 5])  # the demo's and the reference recipe's
def test_keras_cosine_decay_warms_up_one_step_behind(warmup_epochs):
    # Why WarmupSchedule stays: Keras' CosineDecay(warmup_target=, warmup_steps=) starts its
    # warm-up at `initial_learning_rate` (0) on step 0 and reaches the peak on step W, where
    # this schedule gives peak / W on step 0 and the peak on step W - 1 (the reference's
    # (step + 1) / W). After the warm-up both are the same cosine, to float rounding.
    peak, per_epoch, epochs = 0.002, 125, 20  # the demo: lr 0.008 per 64 clips at batch 16
    total, warmup = per_epoch * epochs, per_epoch * warmup_epochs
    ours = WarmupSchedule(peak, total, warmup, "cosine")
    keras_schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=total - warmup, warmup_target=peak, warmup_steps=warmup
    )
    a, b = _curve(ours, total), _curve(keras_schedule, total)
    np.testing.assert_allclose(b[warmup:], a[warmup:], rtol=1e-5, atol=1e-9)
    assert b[0] == 0.0 and a[0] == pytest.approx(peak / warmup)
    np.testing.assert_allclose(b[1:warmup], a[: warmup - 1], rtol=1e-5)  # one step behind
    np.testing.assert_allclose(a[:warmup] - b[:warmup], peak / warmup, rtol=1e-4)
    # Without warm-up (bLVNet-TAM's recipe) the two are one curve.
    plain = keras.optimizers.schedules.CosineDecay(peak, decay_steps=total)
    no_warmup = WarmupSchedule(peak, total, 0, "cosine")
    np.testing.assert_allclose(_curve(plain, total), _curve(no_warmup, total), rtol=1e-5, atol=1e-9)


def _curve(schedule, steps):
    """The learning rate of every step in range(steps) (one traced function, called per step)."""
    import tensorflow as tf

    rate = tf.function(schedule)
    return np.array([float(rate(tf.constant(step, "int64"))) for step in range(steps)])


def test_schedule_serializes():
    schedule = WarmupSchedule(0.2, 50, 5, "step", [20, 40])
    clone = WarmupSchedule.from_config(schedule.get_config())
    assert [float(clone(s)) for s in range(50)] == pytest.approx([float(schedule(s)) for s in range(50)])


def _one_step(optimizer, kernel=1.0, bias=1.0, grad=0.0):
    layer = keras.layers.Dense(1, name="logits")
    layer.build((None, 1))
    layer.kernel.assign([[kernel]])
    layer.bias.assign([bias])
    optimizer.apply([np.full((1, 1), grad, "float32"), np.full((1,), grad, "float32")], [layer.kernel, layer.bias])
    return float(layer.kernel.numpy()[0, 0]), float(layer.bias.numpy()[0])


def test_weight_decay_matches_pytorch_l2_per_step_and_spares_biases():
    # Decoupled decay of wd / (1 - momentum) per step = PyTorch's L2 in steady state with momentum 0.9.
    kernel, bias = _one_step(make_optimizer(0.1, weight_decay=1e-3, clip_norm=0))
    assert kernel == pytest.approx(1 - 0.1 * 1e-3 / (1 - 0.9), rel=1e-6)
    assert bias == 1.0  # biases (and BN gamma/beta) are not decayed


def test_head_learning_rate_multiplier():
    plain = _one_step(make_optimizer(0.1, 0, 0, head_lr_mult=1.0), grad=1.0)
    head = _one_step(make_optimizer(0.1, 0, 0, head_lr_mult=5.0), grad=1.0)
    assert 1 - plain[0] == pytest.approx(0.1) and 1 - head[0] == pytest.approx(0.5)


def test_gradient_norm_clipping():
    kernel, _ = _one_step(make_optimizer(1.0, 0, clip_norm=1.0), grad=100.0)
    # global norm of [100, 100] is 141.4 -> each clipped to 100 / 141.4 = 0.707
    assert 1 - kernel == pytest.approx(1 / np.sqrt(2), rel=1e-4)


def test_summary_counts_top1_top5_and_the_confusion_matrix():
    from tsm_keras.training.evaluation import summarize

    logits = np.array(
        [
            [9, 1, 2, 3, 4, 5, 0],  # true 0: right
            [0, 1, 9, 2, 3, 4, 5],  # true 1: predicted 2, true class 6th of 7: not in the top 5
            [1, 9, 0, 2, 3, 4, 5],  # true 1: right
            [5, 4, 3, 2, 1, 0, 9],
        ],
        "float32",
    )  # true 0: predicted 6, second: in the top 5
    summary = summarize(logits, np.array([0, 1, 1, 0]), [f"c{i}" for i in range(7)])
    assert summary["top1"] == 0.5 and summary["top5"] == 0.75 and summary["clips"] == 4
    assert summary["confusion"][0] == [1, 0, 0, 0, 0, 0, 1] and summary["confusion"][1] == [0, 1, 1, 0, 0, 0, 0]
    assert summary["per_class"]["c0"] == 0.5 and summary["per_class"]["c2"] is None
