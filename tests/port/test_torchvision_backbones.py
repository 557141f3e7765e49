"""The torchvision-compatible backbones: v1.5 strides, no biases, BN epsilon, symmetric padding."""

import keras
import numpy as np

from tsm_keras.models import build_video_classifier
from tsm_keras.models.insertion import producer_of
from tsm_keras.models.torchvision_backbones import torchvision_mobilenet_v2, torchvision_resnet
from tsm_keras.port import shift_states


def convs(model):
    return [l for l in model.layers if isinstance(l, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]


def check_pytorch_conventions(model):
    for layer in convs(model):
        assert not layer.use_bias, layer.name
        assert layer.padding == "valid", layer.name
        kernel = layer.kernel_size[0]
        if kernel > 1:  # explicit symmetric padding of k // 2, as PyTorch's padding=k//2
            pad = model.get_layer(producer_of(model, layer.name))
            assert isinstance(pad, keras.layers.ZeroPadding2D), layer.name
            assert pad.padding == ((kernel // 2, kernel // 2), (kernel // 2, kernel // 2)), layer.name
    norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert norms and all(l.epsilon == 1e-5 for l in norms)


def test_resnet_v1_5_layout():
    model = torchvision_resnet(50, (224, 224, 3))
    check_pytorch_conventions(model)
    # v1.5: the stride of a downsampling block is on the 3x3 conv (and the shortcut)
    for stage in (3, 4, 5):
        assert model.get_layer(f"conv{stage}_block1_1_conv").strides == (1, 1)
        assert model.get_layer(f"conv{stage}_block1_2_conv").strides == (2, 2)
        assert model.get_layer(f"conv{stage}_block1_0_conv").strides == (2, 2)
    sides = {
        name: model.get_layer(name).output.shape[1]
        for name in [
            "conv1_conv",
            "pool1_pool",
            "conv2_block3_out",
            "conv3_block4_out",
            "conv4_block6_out",
            "conv5_block3_out",
        ]
    }
    assert sides == {
        "conv1_conv": 112,
        "pool1_pool": 56,
        "conv2_block3_out": 56,
        "conv3_block4_out": 28,
        "conv4_block6_out": 14,
        "conv5_block3_out": 7,
    }
    assert model.count_params() - 2 * 26560 == 23508032  # torchvision resnet50 without fc; BN stats counted by Keras
    assert sum(1 for l in torchvision_resnet(101, (32, 32, 3)).layers if l.name.endswith("_out")) == 33


def test_mobilenet_v2_layout():
    model = torchvision_mobilenet_v2((224, 224, 3))
    check_pytorch_conventions(model)
    assert model.get_layer("block_1_depthwise").strides == (2, 2)
    assert model.get_layer("block_1_expand").strides == (1, 1)
    assert [l.name for l in model.layers if l.name.endswith("_add")] == [
        f"block_{i}_add" for i in (2, 4, 5, 7, 8, 9, 11, 12, 14, 15)
    ]
    assert model.output_shape == (None, 7, 7, 1280)


def test_symmetric_padding_differs_from_keras_same():
    # stride 2 on an even input: PyTorch pads 1 on every side; Keras 'same' would pad 0 top/left
    model = torchvision_mobilenet_v2((32, 32, 3))
    conv = model.get_layer("Conv1")
    x = np.zeros((1, 32, 32, 3), "float32")
    x[0, 0, 0, :] = 1.0  # impulse in the top-left corner
    kernel = np.zeros(conv.kernel.shape, "float32")
    kernel[0, 0, :, :] = 1.0  # the kernel reads only its top-left tap
    conv.kernel.assign(kernel)
    padded = model.get_layer("Conv1_pad")(x)
    y = np.asarray(conv(padded))
    # output (i, j) reads input (2i - 1, 2j - 1) with its top-left tap: the corner is never seen
    assert y.max() == 0.0
    conv.kernel.assign(np.roll(kernel, (1, 1), axis=(0, 1)))  # centre tap: reads (2i, 2j)
    assert np.asarray(conv(padded))[0, 0, 0, 0] == 3.0


def test_streaming_states_match_the_demo_buffers():
    # The streaming demo's 10 buffers (NHWC, batch 1): 27,048 values in all.
    model = build_video_classifier(
        27, backbone="mobilenet_v2_tv", num_segments=8, input_size=224, temporal="tsm-online"
    )
    states = list(shift_states(model).values())
    assert states == [
        (56, 56, 3),
        (28, 28, 4),
        (28, 28, 4),
        (14, 14, 8),
        (14, 14, 8),
        (14, 14, 8),
        (14, 14, 12),
        (14, 14, 12),
        (7, 7, 20),
        (7, 7, 20),
    ]
    assert sum(int(np.prod(s)) for s in states) == 27048
