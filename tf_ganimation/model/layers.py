"""The networks' building blocks, and the CPU variants of two of them, chosen by device.

- `conv`: the paper's convolutions with the authors' initialisation (N(0, 0.02) kernels, zero biases).
- `InstanceNormalization`: the 4-D, affine instance norm both networks use.
- `ConvolutionBlock`: convolution, instance norm, ReLU: the generator's encoder and decoder steps.
- `ResidualBlock`, `Bottleneck`: the generator's residual block, and its bottleneck of them.
- `StridedConv`: the critic's 4x4 stride-2 convolution; on a CPU, small maps run as one matrix product.
- `fused_convolution`: several "same" convolutions of one input as one (the generator's two heads).
- `leaky_relu`: the critic's activation, written so that its gradient of a gradient optimises cleanly.

CPU variants: a CPU's convolution kernels leave most of the vector width idle on 1- to 4-filter
outputs and on 2x2 maps (BENCHMARKS.md, "CPU layer variants"), so on a CPU the critic's small maps
become matrix products and the generator's two heads one convolution. On a GPU or TPU cuDNN's (or
XLA's) own convolutions are the fast path, so the plain Keras layers run. Both variants compute the
same function with the same weights: checkpoints and exports do not depend on the choice.
`cpu_variants()` decides by the devices TensorFlow sees; the networks take `cpu_variants=` to override.

Notes: layers are written for TensorFlow Lite's GPU delegate as well as for training: 4-D tensors only
(no `GroupNormalization(groups=-1)`, which lowers to 5-D).
"""

from __future__ import annotations

import functools
from typing import Sequence

import keras
from keras import layers, ops

# Authors' initialisation: N(0, 0.02) conv weights, zero biases.
KERNEL_INITIALIZER = {"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": 0.02}}


@functools.cache
def cpu_variants() -> bool:
    """True when TensorFlow sees no GPU and no TPU: the CPU variants of the layers are the fast path."""
    import tensorflow as tf

    return not (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def conv(filters, kernel_size, strides=1, use_bias=False, transpose=False, name=None):
    """A "same" Conv2D (or Conv2DTranspose) with the authors' initialisation."""
    layer_class = layers.Conv2DTranspose if transpose else layers.Conv2D
    return layer_class(
        filters, kernel_size, strides=strides, padding="same", use_bias=use_bias,
        kernel_initializer=keras.initializers.get(KERNEL_INITIALIZER), bias_initializer="zeros", name=name)


@keras.saving.register_keras_serializable(package="tf_ganimation")
class InstanceNormalization(layers.Layer):
    """Per-example, per-channel normalisation over height and width, with a learned scale and offset.

    Input and output: [batch, height, width, channels]. Statistics are computed in float32 whatever the
    compute dtype (mixed precision). Matches PyTorch's `InstanceNorm2d(affine=True)` (epsilon 1e-5,
    biased variance, gamma 1 and beta 0 at initialisation).
    """

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        mean = ops.mean(x, axis=[1, 2], keepdims=True)
        centered = x - mean
        variance = ops.mean(ops.square(centered), axis=[1, 2], keepdims=True)
        # 1 / std and gamma folded into one scale: one pass over the feature map fewer. Folding the mean
        # into the shift as well would save another, but cancels badly when the mean dwarfs the
        # deviation, as after the first convolution.
        scale = ops.rsqrt(variance + self.epsilon) * ops.cast(self.gamma, "float32")
        return ops.cast(centered * scale + ops.cast(self.beta, "float32"), self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="tf_ganimation")
class ConvolutionBlock(layers.Layer):
    """Conv (or transposed conv) -> IN -> ReLU: one step of the generator's encoder or decoder (Fig. 3).

    Args:
        filters: output channels.
        kernel_size: the square kernel's side (7 for the first encoder step, 4 for the others).
        strides: 2 to halve (or, transposed, double) the height and width.
        transpose: a transposed convolution (the decoder's upsampling).

    Input [batch, height, width, channels] -> [batch, height', width', filters], ReLU so >= 0.
    """

    def __init__(self, filters: int, kernel_size: int, strides: int = 1, transpose: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides, self.transpose = filters, kernel_size, strides, transpose
        self.convolution = conv(filters, kernel_size, strides=strides, transpose=transpose, name="convolution")
        self.norm = InstanceNormalization(name="norm")

    def call(self, inputs):
        return ops.relu(self.norm(self.convolution(inputs)))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "transpose": self.transpose}


@keras.saving.register_keras_serializable(package="tf_ganimation")
class ResidualBlock(layers.Layer):
    """Conv 3x3 -> IN -> ReLU -> Conv 3x3 -> IN, added to the input; no activation after the sum."""

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv_1 = conv(filters, 3, name="conv_1")
        self.norm_1 = InstanceNormalization(name="norm_1")
        self.conv_2 = conv(filters, 3, name="conv_2")
        self.norm_2 = InstanceNormalization(name="norm_2")

    def call(self, inputs):
        x = ops.relu(self.norm_1(self.conv_1(inputs)))
        return inputs + self.norm_2(self.conv_2(x))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="tf_ganimation")
class Bottleneck(layers.Layer):
    """`blocks` residual blocks in a row, each a named attribute (residual_1, residual_2, ...).

    Input and output: [batch, height, width, filters].

    Notes: attributes rather than a list, so that tf.train.Checkpoint and SavedModel see every weight
    (TensorFlow's object graph does not follow the lists Keras 3 tracks).
    """

    def __init__(self, filters: int, blocks: int, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.blocks = filters, blocks
        for index in range(1, blocks + 1):
            setattr(self, f"residual_{index}", ResidualBlock(filters, name=f"residual_{index}"))

    def call(self, inputs):
        x = inputs
        for index in range(1, self.blocks + 1):
            x = getattr(self, f"residual_{index}")(x)
        return x

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "blocks": self.blocks}


@keras.saving.register_keras_serializable(package="tf_ganimation")
class StridedConv(layers.Conv2D):
    """The critic's 4x4 stride-2 "same" convolution (with bias).

    Args:
        filters: output channels.
        cpu_variant: on even-sided inputs of side <= `matmul_below`, gather the 16 kernel taps with
            strided slices and multiply them with the kernel as one matrix: the same numbers (to float
            rounding) as the convolution, faster on a CPU (module docstring). None: `cpu_variants()`.

    Every op of both paths has a gradient of a gradient, as the gradient penalty needs.
    """

    matmul_below = 8

    def __init__(self, filters, cpu_variant: bool | None = None, **kwargs):
        kwargs = {"kernel_size": 4, "strides": 2, "padding": "same", "use_bias": True,
                  "kernel_initializer": keras.initializers.get(KERNEL_INITIALIZER), "bias_initializer": "zeros",
                  **kwargs}
        super().__init__(filters, **kwargs)
        self.cpu_variant = cpu_variants() if cpu_variant is None else bool(cpu_variant)

    def convolution_op(self, inputs, kernel):
        height, width = inputs.shape[1], inputs.shape[2]
        if (not self.cpu_variant or height is None or width is None or max(height, width) > self.matmul_below
                or height % 2 or width % 2):
            return super().convolution_op(inputs, kernel)
        # "same" padding of a 4x4 stride-2 convolution on an even side: one pixel on each side.
        padded = ops.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]])
        taps = [padded[:, row:row + height:2, column:column + width:2, :]
                for row in range(4) for column in range(4)]
        patches = ops.concatenate(taps, axis=-1)  # [batch, height / 2, width / 2, 16 * channels]
        # The kernel [4, 4, channels, filters] flattens in the same (row, column, channel) order.
        outputs = ops.matmul(ops.reshape(patches, [-1, patches.shape[-1]]),
                             ops.reshape(kernel, [-1, kernel.shape[-1]]))
        return ops.reshape(outputs, [-1, height // 2, width // 2, kernel.shape[-1]])



def leaky_relu(features, negative_slope: float = 0.01):
    """max(x, slope * x) for 0 <= slope <= 1, as `where(x > 0, x, slope * x)`: the critic's activation.

    Args:
        features: float [batch, height, width, channels] (any shape, any float dtype).
        negative_slope: the slope below 0 (the paper's 0.01).

    Returns:
        The same shape and dtype; bit for bit what `keras.ops.leaky_relu` returns, and so are its
        gradient and its gradient of a gradient (tested), so the choice does not change training.

    Notes: written out because TensorFlow's LeakyRelu op, in the critic's Conv2D + BiasAdd + LeakyRelu,
    makes grappler's remapper fail on the gradient penalty's double backward pass: it fuses the three
    into one kernel while the LeakyReluGrad still reads the BiasAdd, rejects its own rewrite and logs an
    error, and then the whole graph runs without any of its fusions (BUILD_NOTES.md, "Log lines").
    """
    return ops.where(features > 0, features, features * negative_slope)


def fused_convolution(convolutions: Sequence[layers.Conv2D], features, fuse: bool | None = None) -> list:
    """Bias-free "same" convolutions of one input: float32 outputs, one per layer.

    Args:
        convolutions: Conv2D layers with the same kernel size and stride 1, no bias.
        features: [batch, height, width, channels].
        fuse: run them as one convolution with the kernels side by side (the CPU variant) or one by one.
            None: `cpu_variants()`. The weights stay each layer's own either way.
    """
    fuse = cpu_variants() if fuse is None else fuse
    if not fuse:
        return [ops.cast(convolution(features), "float32") for convolution in convolutions]
    for convolution in convolutions:
        if not convolution.built:
            convolution.build(features.shape)
    kernel = ops.concatenate([convolution.kernel for convolution in convolutions], axis=-1)
    outputs = ops.cast(ops.conv(features, ops.cast(kernel, features.dtype), padding="same"), "float32")
    sizes = [convolution.filters for convolution in convolutions]
    starts = [sum(sizes[:index]) for index in range(len(sizes))]
    return [outputs[..., start:start + size] for start, size in zip(starts, sizes)]
