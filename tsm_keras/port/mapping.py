"""Every tensor of a checkpoint to exactly one Keras variable, by name; nothing left over.

PyTorch -> Keras layouts:
    Conv2d weight (out, in, kh, kw)      -> Conv2D kernel (kh, kw, in, out)
    depthwise weight (C, 1, kh, kw)       -> DepthwiseConv2D kernel (kh, kw, C, 1)
    Linear weight (out, in)               -> Dense kernel (in, out)
    BatchNorm2d weight, bias, running_mean, running_var
                                          -> gamma, beta, moving_mean, moving_variance
    non-local block (NonLocalBlock), its Conv3d weights (out, in, 1, 1, 1) as 1x1 Conv2D
    kernels and its BatchNorm3d as above:
        nl.theta.*, nl.phi.0.*, nl.g.0.*  -> theta, phi, g (the '.0': a max-pool follows)
        nl.W.0.*, nl.W.1.*                -> W (1x1 conv) and batch_norm
    bLVNet's TAM: prev, curr, next (C, 1, 1, 1) -> TemporalAggregation kernel (3, C)
                                          (joined in port/big_little.py)
`num_batches_tracked` (a training step counter of BatchNorm2d) has no Keras counterpart and
is the only tensor that is read and dropped.
"""

import keras
import numpy as np

from tsm_keras.layers.non_local import NonLocalBlock
from tsm_keras.layers.temporal_aggregation import TemporalAggregation
from tsm_keras.port import big_little
from tsm_keras.port.checkpoint import PortError
from tsm_keras.port.layout import HEAD, torch_module

DROPPED = "num_batches_tracked"
_MAX_LISTED = 10


def _conv_kernel(weight):
    return weight.transpose(2, 3, 1, 0)


def _depthwise_kernel(weight):
    return weight.transpose(2, 3, 0, 1)


def _conv3d_kernel(weight):
    # A (out, in, 1, 1, 1) Conv3d weight is a 1x1 Conv2D kernel; any other shape is left
    # as it is, for the shape check to report.
    if weight.ndim == 5 and weight.shape[2] == 1:
        return _conv_kernel(weight[:, :, 0])
    return weight


def _dense_kernel(weight):
    return weight.T


def _same(value):
    return value


def _layer_variables(layer):
    """[(PyTorch parameter name, Keras variable, converter)] of one Keras layer."""
    if isinstance(layer, NonLocalBlock):
        pairs = []
        for prefix, conv in (("theta", layer.theta), ("phi.0", layer.phi), ("g.0", layer.g), ("W.0", layer.W)):
            pairs += [(f"{prefix}.weight", conv.kernel, _conv3d_kernel), (f"{prefix}.bias", conv.bias, _same)]
        norm = _layer_variables(layer.batch_norm)
        return pairs + [(f"W.1.{name}", variable, convert) for name, variable, convert in norm]
    if isinstance(layer, TemporalAggregation):  # bLVNet's TAM, its 3 weights joined (port/big_little.py)
        return [("weight", layer.kernel, _same)]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        pairs = [("weight", layer.kernel, _depthwise_kernel)]
        return pairs + ([("bias", layer.bias, _same)] if layer.use_bias else [])
    if isinstance(layer, keras.layers.Conv2D):
        pairs = [("weight", layer.kernel, _conv_kernel)]
        return pairs + ([("bias", layer.bias, _same)] if layer.use_bias else [])
    if isinstance(layer, keras.layers.BatchNormalization):
        return [
            ("weight", layer.gamma, _same),
            ("bias", layer.beta, _same),
            ("running_mean", layer.moving_mean, _same),
            ("running_var", layer.moving_variance, _same),
        ]
    if isinstance(layer, keras.layers.Dense):
        return [("weight", layer.kernel, _dense_kernel), ("bias", layer.bias, _same)]
    raise PortError(f"no PyTorch counterpart known for Keras layer {layer.name!r} ({type(layer).__name__})")


def weight_targets(model, family):
    """Canonical PyTorch tensor name -> (Keras variable, converter) for a ported classifier.

    Covers every variable of the model: the backbone layers by name (`torch_module`) and
    the 'logits' Dense as the classifier.
    """
    targets = {}
    backbone = model.get_layer("backbone")
    for layer in backbone.layers:
        if not layer.weights:
            continue
        module = (
            big_little.torch_module(layer.name) if family == big_little.FAMILY else torch_module(layer.name, family)
        )
        if module is None:
            raise PortError(f"Keras layer {layer.name!r} has weights but no PyTorch counterpart")
        for parameter, variable, convert in _layer_variables(layer):
            targets[f"{module}.{parameter}"] = (variable, convert)
    for parameter, variable, convert in _layer_variables(model.get_layer("logits")):
        targets[f"{HEAD}.{parameter}"] = (variable, convert)
    covered = {id(variable) for variable, _ in targets.values()}
    uncovered = [v.path for v in model.weights if id(v) not in covered]
    if uncovered:
        raise PortError(f"Keras variables without a PyTorch tensor: {uncovered[:_MAX_LISTED]}")
    return targets


def assign_weights(model, layout):
    """Copy every tensor of `layout` into `model`; fail with names on anything unmatched.

    Returns the number of tensors copied. Nothing is assigned unless all tensors match in
    name and shape.
    """
    targets = weight_targets(model, layout.family)
    tensors = layout.tensors
    leftovers = [
        layout.original[name]
        for name in tensors
        if name not in targets and not (name.endswith("." + DROPPED) and _is_batch_norm(name, targets))
    ]
    missing = [name for name in targets if name not in tensors]
    problems = []
    if leftovers:
        problems.append(f"{len(leftovers)} checkpoint tensors have no place in the model: {_listed(leftovers)}")
    if missing:
        problems.append(
            f"{len(missing)} tensors the model needs are not in the checkpoint "
            f"(names without 'module.', 'base_model.', '.net' and '.block'): {_listed(missing)}"
        )
    if problems:
        raise PortError(f"the checkpoint does not fit a {layout.backbone} model: " + "; ".join(problems))
    values, wrong_shapes = [], []
    for name, (variable, convert) in targets.items():
        value = convert(np.asarray(tensors[name]))
        if tuple(value.shape) != tuple(variable.shape):
            wrong_shapes.append(
                f"{layout.original[name]} {list(tensors[name].shape)} for {variable.path} {list(variable.shape)}"
            )
        values.append((variable, value))
    if wrong_shapes:
        raise PortError(f"tensors of the wrong shape (PyTorch shape for Keras shape): {_listed(wrong_shapes)}")
    for variable, value in values:
        variable.assign(value.astype(variable.dtype))
    return len(values)


def _is_batch_norm(name, targets):
    return name.rsplit(".", 1)[0] + ".running_var" in targets


def _listed(names):
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")
