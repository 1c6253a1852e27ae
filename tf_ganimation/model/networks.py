"""GANimation's networks (Pumarola et al. 2018, Sec. 4 and the supplementary architecture).

- `Generator`: (image, target AUs) -> colour map C and attention mask A (Sec. 4.1, Fig. 3).
- `Critic`: PatchGAN realism map D_I and AU regression D_y from one trunk (Sec. 4.1).
- `compose`: the attention-based composition A * image + (1 - A) * C (Eq. 1, final version).
- `InstanceNormalization`: the 4-D, affine instance norm both papers' networks use.

Every size is a constructor argument whose default is the paper's, so tests build tiny networks.
With the defaults the generator has 8,471,296 weights and the critic (at 128 px) 44,860,352.

Notes: layers are written for TensorFlow Lite's GPU delegate as well as for training: 4-D tensors only
(no `GroupNormalization(groups=-1)`, which lowers to 5-D), and the AUs are spread over the image with a
tile op (not `broadcast_to` or a multiply by ones, which the delegate cannot run).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from tf_ganimation.core import action_units
from tf_ganimation.core.config import ModelConfig

# Authors' initialisation: N(0, 0.02) conv weights, zero biases.
_KERNEL_INIT = {"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": 0.02}}


def _conv(filters, kernel_size, strides=1, use_bias=False, transpose=False, name=None):
    layer_class = layers.Conv2DTranspose if transpose else layers.Conv2D
    return layer_class(
        filters, kernel_size, strides=strides, padding="same", use_bias=use_bias,
        kernel_initializer=keras.initializers.get(_KERNEL_INIT), bias_initializer="zeros", name=name)


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
        # 1 / std and gamma folded into one scale per example and channel: one pass over the feature map
        # fewer. (Folding the mean into the shift as well, x * scale + (beta - mean * scale), saves
        # another but cancels badly when the mean dwarfs the deviation, as after the first convolution.)
        scale = ops.rsqrt(variance + self.epsilon) * ops.cast(self.gamma, "float32")
        return ops.cast(centered * scale + ops.cast(self.beta, "float32"), self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="tf_ganimation")
class ResidualBlock(layers.Layer):
    """Conv 3x3 -> IN -> ReLU -> Conv 3x3 -> IN, added to the input; no activation after the sum."""

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv_1 = _conv(filters, 3, name="conv_1")
        self.norm_1 = InstanceNormalization(name="norm_1")
        self.conv_2 = _conv(filters, 3, name="conv_2")
        self.norm_2 = InstanceNormalization(name="norm_2")

    def call(self, inputs):
        x = ops.relu(self.norm_1(self.conv_1(inputs)))
        return inputs + self.norm_2(self.conv_2(x))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="tf_ganimation")
class _StridedConv(layers.Conv2D):
    """The critic's 4x4 stride-2 "same" convolution (with bias), as a matrix product on small maps.

    On even-sided inputs of side <= `matmul_below` the 16 kernel taps are gathered with strided slices and
    multiplied with the kernel as one matrix: the same numbers (to float rounding) as the convolution,
    2.5 to 3.6 times faster for the critic's last, 1024 -> 2048 layer on a CPU, whose convolution
    kernels idle on 2x2 outputs (BENCHMARKS.md). Every op has a gradient of a gradient, as the
    gradient penalty needs. Larger inputs use the ordinary convolution.
    """

    matmul_below = 8

    def __init__(self, filters, **kwargs):
        kwargs = {"kernel_size": 4, "strides": 2, "padding": "same", "use_bias": True,
                  "kernel_initializer": keras.initializers.get(_KERNEL_INIT), "bias_initializer": "zeros",
                  **kwargs}
        super().__init__(filters, **kwargs)

    def convolution_op(self, inputs, kernel):
        height, width = inputs.shape[1], inputs.shape[2]
        if height is None or width is None or max(height, width) > self.matmul_below or height % 2 or width % 2:
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


@keras.saving.register_keras_serializable(package="tf_ganimation")
class Generator(keras.Model):
    """G(image, aus) -> {"color", "attention"} (paper Sec. 4.1; architecture after CycleGAN/StarGAN).

    Args:
        filters: channels of the first convolution (64); doubled by each of the 2 downsamplings.
        residual_blocks: number of residual blocks at 1/4 resolution (6).
        num_aus: length of the AU vector (17).

    Call:
        image: float32 [batch, height, width, 3] in [-1, 1]; height and width multiples of 4.
        aus: float32 [batch, num_aus] in [0, 1], the target expression.

    Returns:
        {"color": float32 [batch, height, width, 3] in [-1, 1],
         "attention": float32 [batch, height, width, 1] in [0, 1]}; attention 1 keeps the input pixel.
    """

    def __init__(self, filters: int = 64, residual_blocks: int = 6, num_aus: int = action_units.NUM_AUS,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.residual_blocks = residual_blocks
        self.num_aus = num_aus
        # === Encoder: 7x7 then two stride-2 downsamplings ===
        self.encoder = [
            _conv(filters, 7, name="encoder_conv_1"), InstanceNormalization(name="encoder_norm_1"),
            _conv(2 * filters, 4, strides=2, name="encoder_conv_2"), InstanceNormalization(name="encoder_norm_2"),
            _conv(4 * filters, 4, strides=2, name="encoder_conv_3"), InstanceNormalization(name="encoder_norm_3"),
        ]
        # === Bottleneck ===
        self.bottleneck = [ResidualBlock(4 * filters, name=f"residual_{i + 1}") for i in range(residual_blocks)]
        # === Decoder: two stride-2 transposed convolutions ===
        self.decoder = [
            _conv(2 * filters, 4, strides=2, transpose=True, name="decoder_conv_1"),
            InstanceNormalization(name="decoder_norm_1"),
            _conv(filters, 4, strides=2, transpose=True, name="decoder_conv_2"),
            InstanceNormalization(name="decoder_norm_2"),
        ]
        # === Heads (Sec. 4.1): colour regression and attention regression ===
        self.color_head = _conv(3, 7, name="color_head")
        self.attention_head = _conv(1, 7, name="attention_head")

    def call(self, image, aus):
        height, width = image.shape[1], image.shape[2]
        if height is None or width is None:
            height, width = ops.shape(image)[1], ops.shape(image)[2]
        # Sec. 4.1: the AU vector is repeated over every pixel and concatenated to the image.
        aus = ops.reshape(ops.cast(aus, image.dtype), [-1, 1, 1, self.num_aus])
        x = ops.concatenate([image, ops.tile(aus, [1, height, width, 1])], axis=-1)
        for conv, norm in zip(self.encoder[::2], self.encoder[1::2]):
            x = ops.relu(norm(conv(x)))
        for block in self.bottleneck:
            x = block(x)
        for conv, norm in zip(self.decoder[::2], self.decoder[1::2]):
            x = ops.relu(norm(conv(x)))
        color, attention = self._heads(x)
        return {"color": ops.tanh(color), "attention": ops.sigmoid(attention)}

    def _heads(self, features):
        """Both 7x7 heads as one 4-filter convolution: float32 logits [..., 3] and [..., 1].

        A 3- or 1-filter convolution leaves most of the CPU's vector width idle; one convolution with
        both kernels side by side costs half as much as the two (BENCHMARKS.md). The weights stay the
        two layers' own, so checkpoints and exports are unchanged.
        """
        for head in (self.color_head, self.attention_head):
            if not head.built:
                head.build(features.shape)
        kernel = ops.concatenate([self.color_head.kernel, self.attention_head.kernel], axis=-1)
        logits = ops.cast(ops.conv(features, ops.cast(kernel, features.dtype), padding="same"), "float32")
        return logits[..., :3], logits[..., 3:]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "residual_blocks": self.residual_blocks,
                "num_aus": self.num_aus}


@keras.saving.register_keras_serializable(package="tf_ganimation")
class Critic(keras.Model):
    """D(image) -> {"realism", "aus"}: a PatchGAN WGAN-GP critic with an AU regression head (Sec. 4.1).

    Args:
        filters: channels of the first convolution (64); doubled by every layer.
        layers_count: number of stride-2 4x4 convolutions (6), so the image side must be a multiple of
            2**layers_count.
        num_aus: length of the AU vector (17).

    Call:
        image: float32 [batch, height, width, 3] in [-1, 1].

    Returns:
        {"realism": float32 [batch, height / 2**layers_count, width / 2**layers_count, 1], unbounded
         (higher is more real), "aus": float32 [batch, num_aus], unbounded regression of AUs in [0, 1]}.

    Notes: no normalisation layers, as WGAN-GP's per-example gradient penalty requires. The AU head's
    kernel covers the whole final feature map (2x2 at 128 px), derived from the input size at build
    time, so the critic works at any size divisible by 2**layers_count and at batch 1.
    """

    def __init__(self, filters: int = 64, layers_count: int = 6, num_aus: int = action_units.NUM_AUS, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.layers_count = layers_count
        self.num_aus = num_aus
        self.trunk = [_StridedConv(filters * 2**i, name=f"conv_{i + 1}") for i in range(layers_count)]
        self.realism_head = _conv(1, 3, name="realism_head")

    def build(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        divisor = 2**self.layers_count
        if height is None or width is None or height % divisor or width % divisor:
            raise ValueError(f"critic input of {height}x{width} px: height and width must be known multiples of "
                             f"2**layers_count = {divisor}")
        self.aus_head = layers.Conv2D(
            self.num_aus, (height // divisor, width // divisor), padding="valid", use_bias=False,
            kernel_initializer=keras.initializers.get(_KERNEL_INIT), name="aus_head")
        super().build(input_shape)

    def call(self, image):
        x = image
        for conv in self.trunk:
            x = ops.leaky_relu(conv(x), negative_slope=0.01)
        realism = ops.cast(self.realism_head(x), "float32")
        aus = ops.reshape(ops.cast(self.aus_head(x), "float32"), [-1, self.num_aus])
        return {"realism": realism, "aus": aus}

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "layers_count": self.layers_count,
                "num_aus": self.num_aus}


def compose(image, color, attention):
    """Eq. 1: attention * image + (1 - attention) * color.

    Args:
        image: float32 [batch, height, width, 3] in [-1, 1] (or [0, 1]: the formula is scale free).
        color: float32 [batch, height, width, 3], same range as image.
        attention: float32 [batch, height, width, 1] in [0, 1]; 1 keeps the input pixel.

    Returns:
        float32 [batch, height, width, 3] in the range of the inputs.

    Notes: this is the paper's final version; arXiv v1 printed (1 - A) * C + A * I the other way round.
    """
    return attention * image + (1.0 - attention) * color


def build_generator(config: ModelConfig) -> Generator:
    """A built generator of `config`'s sizes (weights created by one call on zeros)."""
    generator = Generator(config.generator_filters, config.generator_residual_blocks, config.num_aus,
                          name="generator")
    generator(ops.zeros([1, config.image_size, config.image_size, 3]), ops.zeros([1, config.num_aus]))
    return generator


def build_critic(config: ModelConfig) -> Critic:
    """A built critic of `config`'s sizes for `config.image_size` px images."""
    critic = Critic(config.critic_filters, config.critic_layers, config.num_aus, name="critic")
    critic(ops.zeros([1, config.image_size, config.image_size, 3]))
    return critic
