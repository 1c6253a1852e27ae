"""Times a PyTorch GANimation on this machine, for comparison with scripts/benchmarks/train_step.py; prints JSON.

    pip install torch            # not a project dependency; any CPU or CUDA build
    python scripts/benchmarks/pytorch_reference.py --image_size=128 --batch_size=25
    python scripts/benchmarks/pytorch_reference.py --image_size=64 --batch_size=8 --repeats=7
    python pytorch_reference.py --device=cuda --precision=bfloat16 --train_step_only [--compile]  # a GPU

The networks, losses and update order are written here from the paper (Pumarola et al. 2018, Sec. 4)
with the same sizes as tf_ganimation's (the generator's 8,471,296 and the critic's 44,860,352 weights
at 128 px): PyTorch's own layers (fused InstanceNorm2d, channels-first convolutions), one combined
critic update with the gradient penalty, each critic update with its own generator pass. The figures
are the same as scripts/benchmarks/train_step.py's: median seconds of a critic update, a generator update, one
n_critic + 1 train step and an inference at batch 1, after --warmup untimed runs.

It needs only torch (and the standard library): step bundles (scripts/export_step.py) carry it
to GPU machines that have no TensorFlow. --precision=bfloat16 runs the networks under
`torch.autocast(bfloat16)`, PyTorch's counterpart of Keras' mixed_bfloat16; --compile wraps both
networks in `torch.compile` (whose AOT autograd may refuse the gradient penalty's double backward:
the JSON then says so instead of a figure).

Notes: this is not the authors' code (GPL-3.0, not used here); it has the same arithmetic per step.
"""

import argparse
import contextlib
import json
import math
import resource
import statistics
import sys
import time

NUM_AUS = 17


def _networks(torch, args):
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
            self.aus = nn.Conv2d(channels, NUM_AUS, args.image_size // 2**layers, bias=False)

        def forward(self, image):
            features = self.trunk(image)
            return self.realism(features), self.aus(features).flatten(1)

    return (Generator(args.generator_filters, args.generator_residual_blocks),
            Critic(args.critic_filters, args.critic_layers))


def _median_seconds(function, repeats, warmup, synchronize=lambda: None):
    # The same loop as tflite_benchmark.latency_ms, kept here so that this process never imports TensorFlow.
    for _ in range(warmup):
        function()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default, text in [("image_size", 128, "Side of the square images (paper: 128)."),
                                ("batch_size", 25, "Images per critic update (paper: 25)."),
                                ("n_critic", 5, "Critic updates per generator update (paper: 5)."),
                                ("generator_filters", 64, "Channels of the generator's first convolution (paper: 64)."),
                                ("generator_residual_blocks", 6, "Residual blocks in the generator (paper: 6)."),
                                ("critic_filters", 64, "Channels of the critic's first convolution (paper: 64)."),
                                ("critic_layers", 6, "Stride-2 convolutions in the critic (paper: 6)."),
                                ("repeats", 5, "Timed runs per measurement (the median is reported)."),
                                ("warmup", 1, "Untimed runs before timing."),
                                ("threads", 2, "torch.set_num_threads (CPU).")]:
        parser.add_argument(f"--{name}", type=int, default=default, help=text)
    parser.add_argument("--device", default="auto", help="cpu, cuda, ...; auto: cuda when available, else cpu")
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"],
                        help="bfloat16: the networks under torch.autocast (weights and Adam stay float32)")
    parser.add_argument("--compile", action="store_true", help="torch.compile both networks")
    parser.add_argument("--train_step_only", action="store_true", help="time only the n_critic + 1 train step")
    return parser.parse_args(argv)


def main(argv=None):
    args = _arguments(argv)
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    on_cuda = device.type == "cuda"
    synchronize = torch.cuda.synchronize if on_cuda else (lambda: None)
    generator, critic = (network.to(device) for network in _networks(torch, args))
    generator_optimizer = torch.optim.Adam(generator.parameters(), 1e-4, betas=(0.5, 0.999))
    critic_optimizer = torch.optim.Adam(critic.parameters(), 1e-4, betas=(0.5, 0.999))
    if args.compile:
        generator, critic = torch.compile(generator), torch.compile(critic)
    autocast = ((lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.precision == "bfloat16"
                else contextlib.nullcontext)
    batch, size = args.batch_size, args.image_size
    real_image = (torch.rand(batch, 3, size, size) * 2 - 1).to(device)
    real_aus, target_aus = torch.rand(batch, NUM_AUS).to(device), torch.rand(batch, NUM_AUS).to(device)
    losses = {}

    def edit(image, aus):
        color, attention = generator(image, aus)
        return attention * image + (1 - attention) * color, attention

    def total_variation(mask):
        return ((mask[:, :, 1:] - mask[:, :, :-1]).abs().sum((1, 2, 3))
                + (mask[:, :, :, 1:] - mask[:, :, :, :-1]).abs().sum((1, 2, 3))).mean()

    def critic_update():
        with torch.no_grad(), autocast():
            fake_image, _ = edit(real_image, target_aus)
        critic_optimizer.zero_grad()
        with autocast():
            real_realism, predicted_aus = critic(real_image)
            fake_realism, _ = critic(fake_image)
            alpha = torch.rand(batch, 1, 1, 1, device=device)
            interpolated = (alpha * real_image + (1 - alpha) * fake_image.float()).requires_grad_(True)
            gradient, = torch.autograd.grad(critic(interpolated)[0].float().sum(), interpolated, create_graph=True)
            penalty = ((gradient.flatten(1).pow(2).sum(1) + 1e-12).sqrt() - 1).pow(2).mean()
            loss = (-real_realism.float().mean() + fake_realism.float().mean() + 10 * penalty
                    + 160 * (predicted_aus.float() - real_aus).pow(2).mean())
        loss.backward()
        critic_optimizer.step()
        losses["critic_loss"] = loss.detach()

    def generator_update():
        generator_optimizer.zero_grad()
        with autocast():
            fake_image, fake_attention = edit(real_image, target_aus)
            reconstructed, reconstructed_attention = edit(fake_image, real_aus)
            realism, predicted_aus = critic(fake_image)
            loss = (-realism.float().mean() + 160 * (predicted_aus.float() - target_aus).pow(2).mean()
                    + 10 * (reconstructed.float() - real_image).abs().mean()
                    + 0.1 * (fake_attention.float().mean() + reconstructed_attention.float().mean())
                    + 2.5e-4 * (total_variation(fake_attention.float())
                                + total_variation(reconstructed_attention.float())))
        loss.backward()
        generator_optimizer.step()
        losses["generator_loss"] = loss.detach()

    def train_step():
        for _ in range(args.n_critic):
            critic_update()
        generator_update()

    def infer():
        with torch.no_grad(), autocast():
            edit(real_image[:1], target_aus[:1])

    result = {}
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    first_call = time.perf_counter()
    try:
        train_step()
        synchronize()
    except Exception as error:  # torch.compile's AOT autograd refuses double backward in some versions
        if not args.compile:
            raise
        result["error"] = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}"
    result["first_train_step_seconds"] = time.perf_counter() - first_call
    repeats, warmup = args.repeats, args.warmup
    if "error" not in result:
        first_losses = {name: float(value) for name, value in losses.items()}
        if not args.train_step_only:
            result["critic_step_seconds"] = _median_seconds(critic_update, repeats, warmup, synchronize)
            result["generator_step_seconds"] = _median_seconds(generator_update, repeats, warmup, synchronize)
        result["train_step_seconds"] = _median_seconds(train_step, repeats, warmup, synchronize)
        if not args.train_step_only:
            result["inference_batch1_seconds"] = _median_seconds(infer, repeats * 4, warmup, synchronize)
        result["images_per_second"] = batch * args.n_critic / result["train_step_seconds"]
        last_losses = {name: float(value) for name, value in losses.items()}
        result.update(first_losses=first_losses, last_losses=last_losses,
                      finite_losses=all(math.isfinite(v) for v in [*first_losses.values(), *last_losses.values()]))
    if on_cuda:
        result["peak_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    else:
        result["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["settings"] = {"image_size": size, "batch_size": batch, "n_critic": args.n_critic, "repeats": repeats,
                          **{name: getattr(args, name) for name in ("generator_filters", "generator_residual_blocks",
                                                                    "critic_filters", "critic_layers")},
                          "precision": args.precision, "compile": args.compile, "device": str(device),
                          "device_name": torch.cuda.get_device_name(device) if on_cuda else "cpu",
                          "threads": torch.get_num_threads(), "torch": torch.__version__}
    print(json.dumps(result, indent=None if args.train_step_only else 2))
    return 0 if result.get("finite_losses") else 1


if __name__ == "__main__":
    sys.exit(main())
