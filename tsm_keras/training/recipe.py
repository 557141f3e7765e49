"""The optimisation recipe of the reference (docs/reference.md, "Training recipes"), in Keras terms."""

import math

import keras
from keras import ops

from tsm_keras._keras_private import optimizer_variable_key

MOMENTUM = 0.9
REFERENCE_BATCH = 64  # learning rates are quoted per 64 clips and scaled linearly


def scaled_learning_rate(lr, global_batch, reference_batch=REFERENCE_BATCH):
    """Linear scaling: the reference's 0.01 / 64 clips is 0.02 / 128 clips."""
    return lr * global_batch / reference_batch


@keras.saving.register_keras_serializable(package="tsm_keras")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak`, then cosine decay to 0 or x0.1 steps.

    Args:
        peak: learning rate after warm-up.
        total_steps: steps of the whole run.
        warmup_steps: steps of linear warm-up (0 for none).
        kind: 'cosine' or 'step'.
        boundaries: for 'step', the steps at which the rate is multiplied by 0.1.
    """

    def __init__(self, peak, total_steps, warmup_steps=0, kind="cosine", boundaries=()):
        if kind not in ("cosine", "step"):
            raise ValueError(f"`kind` must be 'cosine' or 'step'. Received: kind={kind!r}")
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.kind = kind
        self.boundaries = [int(b) for b in boundaries]

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = self.peak * (step + 1) / max(self.warmup_steps, 1)
        if self.kind == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            after = 0.5 * self.peak * (1 + ops.cos(math.pi * progress))
        else:
            drops = sum(ops.cast(step >= b, "float32") for b in self.boundaries) if self.boundaries else 0.0
            after = self.peak * ops.power(0.1, drops)
        return ops.where(step < self.warmup_steps, warm, after)

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "kind": self.kind,
            "boundaries": self.boundaries,
        }


@keras.saving.register_keras_serializable(package="tsm_keras")
class VideoSGD(keras.optimizers.SGD):
    """SGD with momentum and a learning-rate multiplier for the new classifier.

    The reference trains the new classifier of a fine-tuned model 5x faster (fc_lr5);
    `head_lr_mult` applies to variables whose path starts with `head_prefix`.
    """

    def __init__(self, head_lr_mult=1.0, head_prefix="logits/", **kwargs):
        super().__init__(**kwargs)
        self.head_lr_mult = float(head_lr_mult)
        self.head_prefix = head_prefix
        self._head_keys = set()

    def build(self, variables):
        super().build(variables)
        # update_step receives backend variables (no Keras path): remember the head by key.
        self._head_keys = {optimizer_variable_key(self, v) for v in variables if v.path.startswith(self.head_prefix)}

    def update_step(self, gradient, variable, learning_rate):
        if self.head_lr_mult != 1.0 and optimizer_variable_key(self, variable) in self._head_keys:
            learning_rate = learning_rate * self.head_lr_mult
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "head_lr_mult": self.head_lr_mult, "head_prefix": self.head_prefix}


def make_optimizer(learning_rate, weight_decay, clip_norm, head_lr_mult=1.0, optimizer="sgd"):
    """The reference optimiser: SGD, momentum 0.9, global grad-norm clipping.

    `weight_decay` is given in the PyTorch (coupled L2) sense of the reference recipes.
    Keras applies weight decay decoupled (w -= lr * wd * w, outside the momentum), so it is
    divided by (1 - momentum) to decay as much per step as PyTorch's L2 does through the
    momentum buffer. Like the reference, biases and BatchNormalization parameters are not
    decayed. `optimizer='nesterov'` is the same SGD with Nesterov momentum (bLVNet-TAM's
    recipe); `optimizer='adam'` is offered for training small models from scratch.
    """
    clip = clip_norm if clip_norm and clip_norm > 0 else None
    if optimizer == "adam":
        opt = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay, global_clipnorm=clip)
    elif optimizer in ("sgd", "nesterov"):
        opt = VideoSGD(
            head_lr_mult=head_lr_mult,
            learning_rate=learning_rate,
            momentum=MOMENTUM,
            nesterov=optimizer == "nesterov",
            weight_decay=weight_decay / (1 - MOMENTUM) if weight_decay else None,
            global_clipnorm=clip,
        )
    else:
        raise ValueError(f"`optimizer` must be 'sgd', 'nesterov' or 'adam'. Received: {optimizer!r}")
    if weight_decay:
        opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return opt
