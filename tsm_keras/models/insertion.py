"""Insert temporal modules (shift, aggregation, pooling) into an existing 2D Keras model.

The 2D model is never changed: `clone_model` builds a new graph through the *same* layer
objects, so the temporal model shares every weight with the model it was made from.
"""

import dataclasses
import re

import keras

from tsm_keras._keras_private import input_producer
from tsm_keras.layers.non_local import NonLocalBlock
from tsm_keras.layers.temporal_aggregation import OFFLINE_OFFSETS, TemporalAggregation
from tsm_keras.layers.temporal_pool import TemporalMaxPool
from tsm_keras.layers.temporal_shift import BIDIRECTIONAL, TemporalShift

BLOCKRES = "blockres"  # shift the residual branch only (all released TSM models)
BLOCK = "block"  # shift the whole block input, identity path included ("in-place")
PLACEMENTS = (BLOCKRES, BLOCK)

# Insertion points of the architectures we know, found by layer name: the first layer of
# each residual branch. Each rule maps a regular expression over layer names to a function
# from its match to (stage, block index within the stage, name prefix of the block).
#   keras.applications ResNet50/101/152:  conv{stage}_block{i}_1_conv
#   keras.applications MobileNetV2:       block_{i}_expand, only where block_{i}_add exists
_RESNET_BRANCH = re.compile(r"^conv(\d+)_block(\d+)_1_conv$")
_MOBILENET_BRANCH = re.compile(r"^block_(\d+)_expand$")

# Layers that mix information across frames (what `temporal_modules` reports).
TEMPORAL_LAYERS = (TemporalShift, TemporalAggregation, TemporalMaxPool, NonLocalBlock)

# Deep ResNets (>= 23 blocks in stage 4, i.e. ResNet-101 and deeper) shift the residual
# branch of every other block, as the reference code does; its 'block' placement shifts
# every block whatever the depth, and checkpoints trained that way must be rebuilt that way.
_DEEP_RESNET_BLOCKS = 23


def find_insertion_points(model, place=BLOCKRES):
    """Names of the layers before which TSM shifts (the first layer of each residual branch).

    Known: keras.applications ResNet50/101/152 and MobileNetV2, and the tsm_keras backbones
    that follow the same layer names. For any other model, pass `layer_names` explicitly.
    `place` matters for deep ResNets only: 'blockres' shifts every other block there.
    """
    names = [layer.name for layer in model.layers]
    resnet = [(int(m[1]), int(m[2]), n) for n in names if (m := _RESNET_BRANCH.match(n))]
    if resnet:
        stage4 = sum(1 for stage, _, _ in resnet if stage == 4)
        every = 2 if stage4 >= _DEEP_RESNET_BLOCKS and place == BLOCKRES else 1
        return [name for _, block, name in resnet if (block - 1) % every == 0]
    adds = set(names)
    mobilenet = [n for n in names if (m := _MOBILENET_BRANCH.match(n)) and f"block_{m[1]}_add" in adds]
    if mobilenet:
        return mobilenet
    raise ValueError(
        f"Cannot find the residual blocks of model '{model.name}': tsm_keras knows the layer "
        "names of keras.applications ResNet50/101/152 (conv{stage}_block{i}_1_conv) and "
        "MobileNetV2 (block_{i}_expand with block_{i}_add). For another architecture, pass "
        "`layer_names=[...]`: the names of the first layer of each residual branch (the "
        "shift goes right before them)."
    )


def module_name(layer_name, suffix):
    """Stable name of a module inserted before `layer_name`: conv2_block1_shift, block_2_shift."""
    prefix = re.sub(r"_(1_conv|expand)$", "", layer_name)
    return f"{prefix}_{suffix}"


def insert_layers(model, before=None, after=None, name=None):
    """A new Functional model with extra callables wired in, sharing all layers of `model`.

    Args:
        model: a Functional Keras model (left unchanged).
        before: {layer name: f} - the layer's first input `x` is replaced by `f(x)`.
        after: {layer name: f} - the layer's output `y` is replaced by `f(y)` for every
            consumer of that layer.
        name: name of the new model (default: the old one).
    """
    before, after = dict(before or {}), dict(after or {})
    known = {layer.name for layer in model.layers}
    missing = sorted((set(before) | set(after)) - known)
    if missing:
        raise ValueError(f"Model '{model.name}' has no layers named {missing}")

    def call_function(layer, *args, **kwargs):
        if layer.name in before:
            args = (before[layer.name](args[0]),) + args[1:]
        outputs = layer(*args, **kwargs)
        if layer.name in after:
            outputs = after[layer.name](outputs)
        return outputs

    new = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call_function)
    new.name = name or model.name
    return new


def producer_of(model, layer_name):
    """Name of the layer whose output is the (first) input of `layer_name` in `model`."""
    return input_producer(model, layer_name)


def insert_temporal_modules(model, make_module, place=BLOCKRES, layer_names=None, name=None, after=None):
    """Insert one temporal module per residual block of a 2D model.

    Args:
        model: a 2D Functional model (e.g. keras.applications.ResNet50(include_top=False)).
        make_module: `f(layer_name) -> keras layer`, the module for the block whose residual
            branch starts at `layer_name`.
        after: extra {layer name: f} applied to layer outputs first (temporal pooling).
        place: 'blockres' (residual branch only, default) or 'block' (the whole block input,
            so the identity path sees the shifted tensor too).
        layer_names: first layers of the residual branches; found automatically for the
            known architectures (`find_insertion_points`).
    """
    if place not in PLACEMENTS:
        raise ValueError(f"`place` must be one of {PLACEMENTS}. Received: place={place!r}")
    targets = list(layer_names) if layer_names is not None else find_insertion_points(model, place)
    modules = {target: make_module(target) for target in targets}
    after = dict(after or {})
    if place == BLOCKRES:
        return insert_layers(model, before=modules, after=after, name=name)
    for target, module in modules.items():
        producer = producer_of(model, target)
        first = after.get(producer)
        after[producer] = module if first is None else _compose(first, module)
    return insert_layers(model, after=after, name=name)


def _compose(first, second):
    return lambda x: second(first(x))


def insert_temporal_shift(
    model,
    num_segments,
    shift_div=8,
    mode=BIDIRECTIONAL,
    place=BLOCKRES,
    layer_names=None,
    name=None,
):
    """Turn a 2D model into a TSM model: a `TemporalShift` in each residual block.

    Example:

    >>> import keras
    >>> base = keras.applications.MobileNetV2((32, 32, 3), alpha=0.35, include_top=False, weights=None)
    >>> tsm = insert_temporal_shift(base, num_segments=4)
    >>> sum(isinstance(layer, TemporalShift) for layer in tsm.layers)
    10
    >>> tsm.count_params() == base.count_params()
    True
    """

    def make_shift(target):
        return TemporalShift(num_segments, shift_div, mode, name=module_name(target, "shift"))

    return insert_temporal_modules(model, make_shift, place, layer_names, name)


def insert_temporal_aggregation(
    model,
    num_segments,
    offsets=OFFLINE_OFFSETS,
    activation="relu",
    initializer="shift",
    shift_div=8,
    place=BLOCKRES,
    layer_names=None,
    name=None,
):
    """Turn a 2D model into a TAM model: a `TemporalAggregation` where TSM would shift.

    Arguments as `TemporalAggregation` and `insert_temporal_shift`. Each module adds
    `len(offsets) * C` parameters (C: the channels of its block input).

    Example:

    >>> import keras
    >>> base = keras.applications.MobileNetV2((32, 32, 3), alpha=0.35, include_top=False, weights=None)
    >>> tam = insert_temporal_aggregation(base, num_segments=4, activation=None)
    >>> [layer.name for layer in temporal_modules(tam)][:2]
    ['block_2_tam', 'block_4_tam']
    >>> tam.count_params() - base.count_params()  # 3 * (8 + 16 + 16 + 24 * 3 + 32 * 2 + 56 * 2)
    864
    """

    def make_aggregation(target):
        return TemporalAggregation(
            num_segments, offsets, activation, initializer, shift_div, name=module_name(target, "tam")
        )

    return insert_temporal_modules(model, make_aggregation, place, layer_names, name)


def walk_layers(model):
    """Every layer of a model, nested models flattened (not yielded themselves), in graph order."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from walk_layers(layer)
        else:
            yield layer


def temporal_modules(model, types=TEMPORAL_LAYERS):
    """The layers of `types` in a model, nested models included, in graph order."""
    return [layer for layer in walk_layers(model) if isinstance(layer, types)]


@dataclasses.dataclass(frozen=True)
class ParameterOverhead:
    """Parameters that the temporal modules of a model add to its 2D network.

    Attributes:
        per_module: {module name: parameters}, in graph order (0 for shifts and pooling;
            those of its convolutions and BN for a `NonLocalBlock`;
            `len(offsets) * C` for a `TemporalAggregation` on C channels).
        base: parameters of the rest of the model: the 2D model (with its head) as built.
    """

    per_module: dict
    base: int

    @property
    def total(self):
        return sum(self.per_module.values())

    @property
    def fraction(self):
        return self.total / self.base if self.base else 0.0

    def __str__(self):
        lines = [f"{'module':<24}{'parameters':>12}"]
        lines += [f"{name:<24}{count:>12,}" for name, count in self.per_module.items()]
        lines.append(
            f"{len(self.per_module)} temporal modules: +{self.total:,} parameters on the "
            f"{self.base:,} of the 2D model (+{100 * self.fraction:.3f}%)"
        )
        return "\n".join(lines)


def parameter_overhead(model):
    """What the temporal modules of `model` cost in parameters, counted from its weights.

    Example:

    >>> import keras
    >>> base = keras.applications.MobileNetV2((32, 32, 3), alpha=0.35, include_top=False, weights=None)
    >>> overhead = parameter_overhead(insert_temporal_aggregation(base, 4, offsets=(-1, 0)))
    >>> overhead.per_module["block_2_tam"], overhead.total, overhead.base == base.count_params()
    (16, 576, True)
    """
    per_module = {layer.name: layer.count_params() for layer in temporal_modules(model)}
    return ParameterOverhead(per_module, model.count_params() - sum(per_module.values()))
