"""GANimation's networks (Pumarola et al. 2018, Sec. 4 and the supplementary architecture).

- `Generator`: (image, target AUs) -> colour map C and attention mask A (Sec. 4.1, Fig. 3).
- `Critic`: PatchGAN realism map D_I and AU regression D_y from one trunk (Sec. 4.1).
- `compose`: the attention-based composition A * image + (1 - A) * C (Eq. 1, final version).

The building blocks (instance norm, residual block, the critic's strided convolution and their CPU
variants) are in layers.py. Every size is a constructor argument whose default is the paper's, so tests
build tiny networks. With the defaults the generator has 8,471,296 weights and the critic (at 128 px)
44,860,352. `cpu_variants` (None: chosen by device, layers.cpu_variants) picks how two layers compute,
never what: the weights, checkpoints and exports are the same either way.

Notes: the AUs are spread over the image with a tile op (not `broadcast_to` or a multiply by ones,
which TensorFlow Lite's GPU delegate cannot run).
"""

from __future__ import annotations

import keras
from keras import ops

from tf_ganimation.core import action_units
from tf_ganimation.core.config import ModelConfig
from tf_ganimation.model import layers
from tf_ganimation.model.layers import conv


@keras.saving.register_keras_serializable(package="tf_ganimation")
class Generator(keras.Model):
    """G(image, aus) -> {"color", "attention"} (paper Sec. 4.1; architecture after CycleGAN/StarGAN).

    Args:
        filters: channels of the first convolution (64); doubled by each of the 2 downsamplings.
        residual_blocks: number of residual blocks at 1/4 resolution (6).
        num_aus: length of the AU vector (17).
        cpu_variants: run the two heads as one convolution (layers.fused_convolution); None: by device.

    Call:
        image: float32 [batch, height, width, 3] in [-1, 1]; height and width multiples of 4.
        aus: float32 [batch, num_aus] in [0, 1], the target expression.

    Returns:
        {"color": float32 [batch, height, width, 3] in [-1, 1],
         "attention": float32 [batch, height, width, 1] in [0, 1]}; attention 1 keeps the input pixel.
    """

    def __init__(self, filters: int = 64, residual_blocks: int = 6, num_aus: int = action_units.NUM_AUS,
                 cpu_variants: bool | None = None, **kwargs):
        super().__init__(**kwargs)
        self.cpu_variants = cpu_variants
        self.filters = filters
        self.residual_blocks = residual_blocks
        self.num_aus = num_aus
        # Every block is a named attribute, never a list, so that every standard tool (tf.train.Checkpoint,
        # save_weights, SavedModel) sees every weight.
        # === Encoder (Fig. 3): 7x7, then two stride-2 4x4 downsamplings ===
        self.encoder_1 = layers.ConvolutionBlock(filters, 7, name="encoder_1")
        self.encoder_2 = layers.ConvolutionBlock(2 * filters, 4, strides=2, name="encoder_2")
        self.encoder_3 = layers.ConvolutionBlock(4 * filters, 4, strides=2, name="encoder_3")
        # === Bottleneck: residual blocks at 1/4 resolution ===
        self.bottleneck = layers.Bottleneck(4 * filters, residual_blocks, name="bottleneck")
        # === Decoder: two stride-2 4x4 transposed convolutions ===
        self.decoder_1 = layers.ConvolutionBlock(2 * filters, 4, strides=2, transpose=True, name="decoder_1")
        self.decoder_2 = layers.ConvolutionBlock(filters, 4, strides=2, transpose=True, name="decoder_2")
        # === Heads (Sec. 4.1): colour regression and attention regression ===
        self.color_head = conv(3, 7, name="color_head")
        self.attention_head = conv(1, 7, name="attention_head")

    def blocks(self) -> list[keras.layers.Layer]:
        """Encoder, bottleneck and decoder in the order they run (the heads follow)."""
        return [self.encoder_1, self.encoder_2, self.encoder_3, self.bottleneck, self.decoder_1, self.decoder_2]

    def call(self, image, aus):
        height, width = image.shape[1], image.shape[2]
        if height is None or width is None:
            height, width = ops.shape(image)[1], ops.shape(image)[2]
        # Sec. 4.1: the AU vector is repeated over every pixel and concatenated to the image.
        aus = ops.reshape(ops.cast(aus, image.dtype), [-1, 1, 1, self.num_aus])
        x = ops.concatenate([image, ops.tile(aus, [1, height, width, 1])], axis=-1)
        for block in self.blocks():
            x = block(x)
        color, attention = self._heads(x)
        return {"color": ops.tanh(color), "attention": ops.sigmoid(attention)}

    def _heads(self, features):
        """Both 7x7 heads' float32 logits, [..., 3] and [..., 1] (layers.fused_convolution on a CPU)."""
        return layers.fused_convolution([self.color_head, self.attention_head], features, self.cpu_variants)

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
        cpu_variants: small maps as matrix products (layers.StridedConv); None: by device.

    Call:
        image: float32 [batch, height, width, 3] in [-1, 1].

    Returns:
        {"realism": float32 [batch, height / 2**layers_count, width / 2**layers_count, 1], unbounded
         (higher is more real), "aus": float32 [batch, num_aus], unbounded regression of AUs in [0, 1]}.

    Notes: no normalisation layers, as WGAN-GP's per-example gradient penalty requires. The AU head's
    kernel covers the whole final feature map (2x2 at 128 px), derived from the input size at build
    time, so the critic works at any size divisible by 2**layers_count and at batch 1.
    """

    def __init__(self, filters: int = 64, layers_count: int = 6, num_aus: int = action_units.NUM_AUS,
                 cpu_variants: bool | None = None, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.layers_count = layers_count
        self.num_aus = num_aus
        # === Trunk: layers_count stride-2 4x4 convolutions (named attributes, as in the generator) ===
        for index in range(1, layers_count + 1):
            setattr(self, f"conv_{index}",
                    layers.StridedConv(filters * 2**(index - 1), cpu_variant=cpu_variants, name=f"conv_{index}"))
        self.realism_head = conv(1, 3, name="realism_head")

    def build(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        divisor = 2**self.layers_count
        if height is None or width is None or height % divisor or width % divisor:
            raise ValueError(f"critic input of {height}x{width} px: height and width must be known multiples of "
                             f"2**layers_count = {divisor}")
        self.aus_head = keras.layers.Conv2D(
            self.num_aus, (height // divisor, width // divisor), padding="valid", use_bias=False,
            kernel_initializer=keras.initializers.get(layers.KERNEL_INITIALIZER), name="aus_head")
        super().build(input_shape)

    def call(self, image):
        x = image
        for index in range(1, self.layers_count + 1):
            x = layers.leaky_relu(getattr(self, f"conv_{index}")(x), negative_slope=0.01)
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


def build_generator(config: ModelConfig, cpu_variants: bool | None = None) -> Generator:
    """A built generator of `config`'s sizes (weights created by one call on zeros); `cpu_variants` as
    Generator's (None: by the devices TensorFlow sees)."""
    generator = Generator(config.generator_filters, config.generator_residual_blocks, config.num_aus,
                          cpu_variants=cpu_variants, name="generator")
    generator(ops.zeros([1, config.image_size, config.image_size, 3]), ops.zeros([1, config.num_aus]))
    return generator


def build_critic(config: ModelConfig, cpu_variants: bool | None = None) -> Critic:
    """A built critic of `config`'s sizes for `config.image_size` px images; `cpu_variants` as Critic's."""
    critic = Critic(config.critic_filters, config.critic_layers, config.num_aus, cpu_variants=cpu_variants,
                    name="critic")
    critic(ops.zeros([1, config.image_size, config.image_size, 3]))
    return critic
