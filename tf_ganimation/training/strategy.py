"""The distribution strategy of a run, and this process's place in a multi_worker cluster."""

from __future__ import annotations

import tensorflow as tf

from tf_ganimation.core.config import DataConfig, RunConfig


def make_strategy(name: str) -> tf.distribute.Strategy:
    """auto: MirroredStrategy over every GPU when there are several, else the default (one device).

    multi_worker reads the cluster from the TF_CONFIG environment variable; it must be created before
    TensorFlow runs any op, so `trainer.train` creates the strategy first.

    Raises:
        ValueError: `name` is not one of auto, one_device, mirrored, multi_worker.
    """
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    raise ValueError(f"strategy={name!r} is invalid: expected one of auto, one_device, mirrored, multi_worker")


def has_accelerator() -> bool:
    """Whether TensorFlow sees a GPU or a TPU."""
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def uses_xla(run: RunConfig) -> bool:
    """RunConfig.jit_compile resolved: "auto" is XLA where a GPU or TPU is present (BENCHMARKS.md: it is several
    times slower on CPU)."""
    return run.jit_compile == "true" or (run.jit_compile == "auto" and has_accelerator())


# CPU flags (Linux /proc/cpuinfo) of bfloat16 matrix arithmetic, which oneDNN uses for bfloat16 convolutions.
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            return {flag for line in cpuinfo if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    except OSError:  # not Linux: no flag is known, so auto stays float32
        return set()


def mixed_precision(run: RunConfig, cpu_flags: set[str] | None = None) -> tuple[str, str]:
    """RunConfig.mixed_precision resolved, and why: (policy, reason).

    "auto" is mixed_bfloat16 on GPUs of compute capability 8.0 or more (Ampere on), which have bfloat16
    tensor cores, and on CPUs with AVX512_BF16 or AMX (BENCHMARKS.md: the quick start's step is faster
    there); float32 ("none") elsewhere, where bfloat16 would be emulated. `cpu_flags`: this CPU's (None:
    read from /proc/cpuinfo).
    """
    if run.mixed_precision != "auto":
        return run.mixed_precision, "--mixed_precision set"
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability") or (0, 0)
                        for gpu in gpus]
        if min(capabilities) >= (8, 0):
            return "mixed_bfloat16", f"GPUs of compute capability {min(capabilities)} have bfloat16 tensor cores"
        return "none", f"a GPU of compute capability {min(capabilities)} has no bfloat16 tensor cores"
    found = sorted(set(BFLOAT16_CPU_FLAGS) & (_cpu_flags() if cpu_flags is None else cpu_flags))
    if found:
        return "mixed_bfloat16", f"the CPU has bfloat16 arithmetic ({', '.join(found)})"
    return "none", f"the CPU has no bfloat16 arithmetic (none of {', '.join(BFLOAT16_CPU_FLAGS)}): float32"


# train_steps per tf.function call under RunConfig.steps_per_execution=0: on a GPU the host's per-call
# work (reading the logs, the NaN guard, the progress bar) is then paid once per 8 steps; on CPU a
# step takes far longer than that work.
AUTO_STEPS_PER_EXECUTION = {"accelerator": 8, "cpu": 1}


def steps_per_execution(run: RunConfig) -> int:
    """RunConfig.steps_per_execution resolved: 0 is AUTO_STEPS_PER_EXECUTION for this machine."""
    if run.steps_per_execution:
        return run.steps_per_execution
    return AUTO_STEPS_PER_EXECUTION["accelerator" if has_accelerator() else "cpu"]


def global_batch_size(data: DataConfig, num_replicas: int) -> int:
    """The global batch of one critic update: per_replica_batch_size x replicas when set, else batch_size.

    Raises:
        ValueError: batch_size does not divide over the replicas; the message names the nearest global
            batches that do, and the per-replica batches that give them.
    """
    if data.per_replica_batch_size:
        return data.per_replica_batch_size * num_replicas
    if data.batch_size % num_replicas == 0:
        return data.batch_size
    below = data.batch_size // num_replicas * num_replicas
    working = [batch for batch in (below, below + num_replicas) if batch > 0]
    batches = " or ".join(f"--batch_size={batch}" for batch in working)
    per_replica = " or ".join(f"--per_replica_batch_size={batch // num_replicas}" for batch in working)
    raise ValueError(
        f"batch_size={data.batch_size} is invalid on {num_replicas} replicas: the global batch is split evenly "
        f"over the replicas, so it must be a multiple of {num_replicas}. The nearest that work: {batches} "
        f"({per_replica}); README: Batch size on several GPUs says what each does to the recipe")


def task_of(run: RunConfig) -> tuple[str | None, int, bool]:
    """(task type, task id, whether it is the chief) of this process, from TF_CONFIG for multi_worker.

    Reads only the environment: no TensorFlow op runs.
    """
    if run.strategy != "multi_worker":
        return None, 0, True
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    task_type, task_id = resolver.task_type, resolver.task_id or 0
    has_chief = "chief" in resolver.cluster_spec().jobs
    chief = task_type is None or task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief)
    return task_type, task_id, chief


def is_chief(run: RunConfig) -> bool:
    """Whether this process writes the run's files: always, except on the non-chief workers of multi_worker."""
    return task_of(run)[2]
