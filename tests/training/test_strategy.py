import json

import pytest
import tensorflow as tf

from tf_ganimation.core.config import RunConfig
from tf_ganimation.training import strategy


@pytest.mark.parametrize("cluster, task, chief", [
    ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 0}, True),
    ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 1}, False),
    ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "worker", "index": 0}, False),
    ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "chief", "index": 0}, True),
])
def test_the_chief_is_task_0_of_the_workers_unless_the_cluster_names_one(monkeypatch, cluster, task, chief):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    assert strategy.is_chief(RunConfig(strategy="multi_worker")) is chief
    assert strategy.is_chief(RunConfig(strategy="mirrored")) is True  # TF_CONFIG only matters to multi_worker


def test_task_of_reads_the_task_from_tf_config(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:1"]},
                                                "task": {"type": "worker", "index": 1}}))
    assert strategy.task_of(RunConfig(strategy="multi_worker")) == ("worker", 1, False)
    assert strategy.task_of(RunConfig(strategy="one_device")) == (None, 0, True)


def test_one_device_and_auto_on_a_machine_without_gpus_use_the_cpu():
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("this machine has GPUs: auto picks them")
    for name in ("one_device", "auto"):
        made = strategy.make_strategy(name)
        assert isinstance(made, tf.distribute.OneDeviceStrategy) and made.num_replicas_in_sync == 1
        assert made.extended.worker_devices == ("/job:localhost/replica:0/task:0/device:CPU:0",)


def test_an_unknown_strategy_names_the_allowed_ones():
    with pytest.raises(ValueError, match="strategy='tpu' is invalid: expected one of auto, one_device, mirrored"):
        strategy.make_strategy("tpu")


def test_a_batch_that_does_not_divide_names_the_nearest_working_batches():
    from tf_ganimation.core.config import DataConfig

    with pytest.raises(ValueError, match=r"batch_size=25 is invalid on 8 replicas.*multiple of 8.*"
                                         r"--batch_size=24 or --batch_size=32 "
                                         r"\(--per_replica_batch_size=3 or --per_replica_batch_size=4\)"):
        strategy.global_batch_size(DataConfig(batch_size=25), 8)
    with pytest.raises(ValueError, match=r"The nearest that work: --batch_size=3 \(--per_replica_batch_size=1\)"):
        strategy.global_batch_size(DataConfig(batch_size=2), 3)
    assert strategy.global_batch_size(DataConfig(batch_size=24), 8) == 24
    assert strategy.global_batch_size(DataConfig(batch_size=25), 1) == 25
    # The per-replica batch wins over batch_size: the global batch grows with the replicas.
    assert strategy.global_batch_size(DataConfig(batch_size=25, per_replica_batch_size=3), 8) == 24
    assert strategy.global_batch_size(DataConfig(per_replica_batch_size=25), 4) == 100


def test_auto_means_xla_and_8_steps_per_call_with_an_accelerator_and_neither_on_cpu(monkeypatch):
    for accelerator, xla, steps in ((False, False, 1), (True, True, 8)):
        monkeypatch.setattr(strategy, "has_accelerator", lambda accelerator=accelerator: accelerator)
        assert strategy.uses_xla(RunConfig()) is xla
        assert strategy.steps_per_execution(RunConfig()) == steps
        assert strategy.uses_xla(RunConfig(jit_compile="true")) is True
        assert strategy.uses_xla(RunConfig(jit_compile="false")) is False
        assert strategy.steps_per_execution(RunConfig(steps_per_execution=5)) == 5
    monkeypatch.undo()
    assert strategy.has_accelerator() is bool(tf.config.list_logical_devices("GPU") or
                                              tf.config.list_logical_devices("TPU"))


def test_auto_precision_is_bfloat16_on_cpus_with_bfloat16_arithmetic_and_float32_elsewhere():
    auto = RunConfig()
    assert auto.mixed_precision == "auto"
    for flags, expected in (({"avx2", "avx512f", "avx512_bf16"}, "mixed_bfloat16"),
                            ({"avx2", "amx_bf16", "amx_tile"}, "mixed_bfloat16"),
                            ({"avx2", "fma", "avx512f"}, "none"), (set(), "none")):
        precision, reason = strategy.mixed_precision(auto, cpu_flags=flags)
        assert precision == expected, flags
        assert reason.startswith("the CPU has bfloat16 arithmetic (" if expected == "mixed_bfloat16"
                                 else "the CPU has no bfloat16 arithmetic"), reason
    assert strategy.mixed_precision(RunConfig(mixed_precision="none"), {"amx_bf16"}) == (
        "none", "--mixed_precision set")
    # This machine's own answer follows its /proc/cpuinfo.
    with open("/proc/cpuinfo") as cpuinfo:
        has_bfloat16 = any(flag in line.split() for line in cpuinfo if line.startswith("flags")
                           for flag in strategy.BFLOAT16_CPU_FLAGS)
    if not tf.config.list_physical_devices("GPU"):
        assert strategy.mixed_precision(auto)[0] == ("mixed_bfloat16" if has_bfloat16 else "none")
