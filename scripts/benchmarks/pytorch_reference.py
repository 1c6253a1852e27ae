"""Times a PyTorch GANimation on this machine, for comparison with scripts/benchmarks/train_step.py; prints JSON.

    pip install torch            # not a project dependency; any CPU build
    python scripts/benchmarks/pytorch_reference.py --image_size=128 --batch_size=25
    python scripts/benchmarks/pytorch_reference.py --image_size=64 --batch_size=8 --repeats=7

The networks, losses and update order are written here from the paper (Pumarola et al. 2018, Sec. 4)
with the same sizes as tf_ganimation's (the generator's 8,471,296 and the critic's 44,860,352 weights
at 128 px): PyTorch's own layers (fused InstanceNorm2d, channels-first convolutions), one combined
critic update with the gradient penalty, each critic update with its own generator pass. The figures
are the same as scripts/benchmarks/train_step.py's: median seconds of a critic update, a generator update, one
n_critic + 1 train step and an inference at batch 1, after --warmup untimed runs.

Notes: this is not the authors' code (GPL-3.0, not used here); it has the same arithmetic per step.
"""

import json
import resource
import statistics
import time

from absl import flags

from tf_ganimation import cli
from tf_ganimation import flags as training_flags

flags.DEFINE_integer("repeats", 5, "Timed runs per measurement (the median is reported).")
flags.DEFINE_integer("warmup", 1, "Untimed runs before timing.")
flags.DEFINE_integer("threads", 2, "torch.set_num_threads.")
FLAGS = training_flags.FLAGS  # --image_size, --batch_size, --n_critic: the training flags

NUM_AUS = 17


def _networks(torch, image_size):
    nn = torch.nn

    def conv_norm_relu(conv, channels):
        return [conv, nn.InstanceNorm2d(channels, affine=True), nn.ReLU(inplace=True)]

    class ResidualBlock(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.body = nn.Sequential(
                *conv_norm_relu(nn.Conv2d(channels, channels, 3, 1, 1, bias=False), channels),
                nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.InstanceNorm2d(channels, affine=True))

        def forward(self, x):
            return x + self.body(x)

    class Generator(nn.Module):
        def __init__(self, filters=64, blocks=6):
            super().__init__()
            self.body = nn.Sequential(
                *conv_norm_relu(nn.Conv2d(3 + NUM_AUS, filters, 7, 1, 3, bias=False), filters),
                *conv_norm_relu(nn.Conv2d(filters, 2 * filters, 4, 2, 1, bias=False), 2 * filters),
                *conv_norm_relu(nn.Conv2d(2 * filters, 4 * filters, 4, 2, 1, bias=False), 4 * filters),
                *[ResidualBlock(4 * filters) for _ in range(blocks)],
                *conv_norm_relu(nn.ConvTranspose2d(4 * filters, 2 * filters, 4, 2, 1, bias=False), 2 * filters),
                *conv_norm_relu(nn.ConvTranspose2d(2 * filters, filters, 4, 2, 1, bias=False), filters))
            self.color = nn.Conv2d(filters, 3, 7, 1, 3, bias=False)
            self.attention = nn.Conv2d(filters, 1, 7, 1, 3, bias=False)

        def forward(self, image, aus):
            aus = aus[:, :, None, None].expand(-1, -1, image.shape[2], image.shape[3])
            features = self.body(torch.cat([image, aus], 1))
            return torch.tanh(self.color(features)), torch.sigmoid(self.attention(features))

    class Critic(nn.Module):
        def __init__(self, filters=64, layers=6):
            super().__init__()
            trunk, channels = [], 3
            for i in range(layers):
                trunk += [nn.Conv2d(channels, filters * 2**i, 4, 2, 1), nn.LeakyReLU(0.01, inplace=True)]
                channels = filters * 2**i
            self.trunk = nn.Sequential(*trunk)
            self.realism = nn.Conv2d(channels, 1, 3, 1, 1, bias=False)
            self.aus = nn.Conv2d(channels, NUM_AUS, image_size // 2**layers, bias=False)

        def forward(self, image):
            features = self.trunk(image)
            return self.realism(features), self.aus(features).flatten(1)

    return Generator(), Critic()


def _median_seconds(function, repeats, warmup):
    # The same loop as tflite_benchmark.latency_ms, kept here so that this process never imports TensorFlow.
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv):
    del argv
    import torch

    torch.set_num_threads(FLAGS.threads)
    torch.manual_seed(0)
    generator, critic = _networks(torch, FLAGS.image_size)
    generator_optimizer = torch.optim.Adam(generator.parameters(), 1e-4, betas=(0.5, 0.999))
    critic_optimizer = torch.optim.Adam(critic.parameters(), 1e-4, betas=(0.5, 0.999))
    batch, size = FLAGS.batch_size, FLAGS.image_size
    real_image = torch.rand(batch, 3, size, size) * 2 - 1
    real_aus, target_aus = torch.rand(batch, NUM_AUS), torch.rand(batch, NUM_AUS)

    def edit(image, aus):
        color, attention = generator(image, aus)
        return attention * image + (1 - attention) * color, attention

    def total_variation(mask):
        return ((mask[:, :, 1:] - mask[:, :, :-1]).abs().sum((1, 2, 3))
                + (mask[:, :, :, 1:] - mask[:, :, :, :-1]).abs().sum((1, 2, 3))).mean()

    def critic_update():
        with torch.no_grad():
            fake_image, _ = edit(real_image, target_aus)
        critic_optimizer.zero_grad()
        real_realism, predicted_aus = critic(real_image)
        fake_realism, _ = critic(fake_image)
        alpha = torch.rand(batch, 1, 1, 1)
        interpolated = (alpha * real_image + (1 - alpha) * fake_image).requires_grad_(True)
        gradient, = torch.autograd.grad(critic(interpolated)[0].sum(), interpolated, create_graph=True)
        penalty = ((gradient.flatten(1).pow(2).sum(1) + 1e-12).sqrt() - 1).pow(2).mean()
        loss = (-real_realism.mean() + fake_realism.mean() + 10 * penalty
                + 160 * (predicted_aus - real_aus).pow(2).mean())
        loss.backward()
        critic_optimizer.step()

    def generator_update():
        generator_optimizer.zero_grad()
        fake_image, fake_attention = edit(real_image, target_aus)
        reconstructed, reconstructed_attention = edit(fake_image, real_aus)
        realism, predicted_aus = critic(fake_image)
        loss = (-realism.mean() + 160 * (predicted_aus - target_aus).pow(2).mean()
                + 10 * (reconstructed - real_image).abs().mean()
                + 0.1 * (fake_attention.mean() + reconstructed_attention.mean())
                + 2.5e-4 * (total_variation(fake_attention) + total_variation(reconstructed_attention)))
        loss.backward()
        generator_optimizer.step()

    def train_step():
        for _ in range(FLAGS.n_critic):
            critic_update()
        generator_update()

    def infer():
        with torch.no_grad():
            edit(real_image[:1], target_aus[:1])

    repeats, warmup = FLAGS.repeats, FLAGS.warmup
    result = {
        "critic_step_seconds": _median_seconds(critic_update, repeats, warmup),
        "generator_step_seconds": _median_seconds(generator_update, repeats, warmup),
        "train_step_seconds": _median_seconds(train_step, repeats, warmup),
        "inference_batch1_seconds": _median_seconds(infer, repeats * 4, warmup),
    }
    result["images_per_second"] = batch * FLAGS.n_critic / result["train_step_seconds"]
    result["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["settings"] = {"image_size": size, "batch_size": batch, "n_critic": FLAGS.n_critic,
                          "repeats": repeats, "threads": torch.get_num_threads(), "torch": torch.__version__}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    cli.run(main)
