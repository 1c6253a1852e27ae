"""--strategy=multi_worker (trainer.py): two worker processes on 127.0.0.1 against one process.

A fair comparison needs both runs to see the same global batches. With MultiWorkerMirroredStrategy
each worker runs its own input pipeline (`make_training_dataset` with the InputContext of pipeline
i of 2): worker i reads shard i of the examples and its replica gets that pipeline's elements. So the
one-process reference builds the same two pipelines with hand-made InputContexts and concatenates
their elements along the batch axis, which is exactly the global batch of the two-worker run (worker
0's examples first, as replica 0's); it then runs the same `train_step` on one device. Initial weights
come from the same seed (the chief's are broadcast), and the gradient penalty's alpha is drawn for the
global batch and sliced by replica, so only the order of float additions differs. Adam divides each
gradient by its own magnitude, so where a gradient is a sum that cancels to ~0 that order shows (see
the tolerances below); elsewhere the runs agree to float32 rounding.
"""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_ganimation.data import inventory, pipeline
from tf_ganimation.model import ganimation
from tf_ganimation.runs import loading, run_folder
from tf_ganimation.synthetic import synthetic_dataset
from tf_ganimation.training.schedule import make_schedule

from conftest import PROJECT_ROOT, TWO_CPU_DEVICES_SCRIPT

STEPS = 3


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run_two_workers(data_dir, run_dir):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    command = [sys.executable, "scripts/train.py", "--flagfile=configs/smoke.flags", f"--data_dir={data_dir}",
               f"--workdir={run_dir}", f"--max_steps={STEPS}", "--strategy=multi_worker", "--n_critic=1",
               "--eval_every=2"]
    workers = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        env = {**os.environ, "TF_CONFIG": tf_config, "TF_CPP_MIN_LOG_LEVEL": "2"}
        workers.append(subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=400)[1])
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    return [worker.returncode for worker in workers], outputs


def _one_process_reference(run_dir):
    """STEPS train_steps on one device over the concatenated elements of input pipelines 0 and 1."""
    config = run_folder.load_config(run_dir)
    examples = inventory.load_examples(config.data)
    schedule = make_schedule(config, len(examples.train))
    keras.utils.set_random_seed(config.run.seed)
    gan = ganimation.make_gan(config, schedule.total_steps, schedule.decay_steps)
    initial = [weight.numpy().copy() for weight in (*gan.generator.weights, *gan.critic.weights)]
    pipelines = [pipeline.make_training_dataset(config.data, tf.distribute.InputContext(2, index, 2), examples)
                 for index in range(2)]
    global_batches = tf.data.Dataset.zip(tuple(pipelines)).map(
        lambda first, second: {key: tf.concat([first[key], second[key]], axis=0) for key in first})
    train_step = tf.function(gan.train_step)
    for element in global_batches.take(STEPS):
        assert element["real_image"].shape[0] == config.data.batch_size
        train_step(element)
    return gan, initial


@pytest.mark.slow
def test_two_workers_end_with_the_weights_of_one_process_on_the_same_global_batches(tmp_path):
    data_dir, run_dir = tmp_path / "faces", tmp_path / "run"
    synthetic_dataset.make_dataset(os.fspath(data_dir), num_images=40, image_size=32, seed=0, progress=False)
    codes, outputs = _run_two_workers(data_dir, run_dir)
    assert codes == [0, 0], "\n\n".join(output[-3000:] for output in outputs)
    # The summary is the last JSON line: TensorFlow may log after it while the process exits.
    results = [json.loads([line for line in output.splitlines() if line.startswith("{")][-1]) for output in outputs]
    assert [result["step"] for result in results] == [STEPS, STEPS]
    assert results[0]["generator_loss"] == results[1]["generator_loss"]  # logs are reduced over workers
    assert "CollectiveAllReduceStrategy with 2 replicas" in outputs[0]
    # Evaluated at step 2 by the chief alone, whose probe ran no op before the strategy existed.
    assert "step 2 evaluation: l1_ratio_to_baseline" in outputs[0] and " evaluation: " not in outputs[1]

    # Only the chief (worker 0) wrote the run's files; worker 1's temporary checkpoints are gone.
    checkpoint_files = sorted(path.name for path in (run_dir / "checkpoints").iterdir())
    assert checkpoint_files == ["checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index",
                           "ckpt-3.data-00000-of-00001", "ckpt-3.index"]
    assert (run_dir / "flags.txt").is_file() and len(list((run_dir / "logs").iterdir())) == 1

    reference, initial = _one_process_reference(run_dir)
    generator, _ = loading.load_generator(run_dir)
    critic, _ = loading.load_critic(run_dir)
    trained = [weight.numpy() for weight in (*generator.weights, *critic.weights)]
    expected = [weight.numpy() for weight in (*reference.generator.weights, *reference.critic.weights)]
    names = [weight.path for weight in (*generator.weights, *critic.weights)]
    errors = {}
    for name, start, got, want in zip(names, initial, trained, expected):
        update = want - start
        if np.abs(update).max() > 0:
            errors[name] = (float(np.linalg.norm((got - start) - update) / np.linalg.norm(update)),
                            float(np.abs(got - want).max()))
    assert len(errors) >= 20
    worst_update = max(errors.items(), key=lambda item: item[1][0])
    worst_weight = max(errors.items(), key=lambda item: item[1][1])
    # Measured: updates agree to <= 8e-5 (relative L2) except the generator's first kernel, 1e-3, whose
    # cancelling gradient sums Adam normalises (1.6% of its elements differ by > 1e-7); weights to 4.5e-6.
    # A worker training on its own batch only would be off by ~1 relative, ~1e-4 absolute (lr 1e-4).
    assert worst_update[1][0] < 1e-2, worst_update
    assert worst_weight[1][1] < 2e-5, worst_weight
    assert int(reference.generator_optimizer.iterations) == STEPS


# Runs in a subprocess: logical devices must be configured before TensorFlow starts.
_NAN_ON_ONE_REPLICA_SCRIPT = TWO_CPU_DEVICES_SCRIPT + """
with strategy.scope():
    keras.utils.set_random_seed(3)
    gan = ganimation.make_gan(config, total_steps=10, decay_steps=0)
bad, good = random_batch(4, 2, 32, seed=0), random_batch(4, 2, 32, seed=1)
bad["real_image"][3, :, 0, 0, 0] = np.nan  # example 3: replica 1's half of the batch only
dataset = tf.data.Dataset.from_tensor_slices({k: np.stack([bad[k], good[k]]) for k in bad}).unbatch().batch(4)
iterator = iter(strategy.experimental_distribute_dataset(dataset))
step = trainer.make_step_function(gan, strategy)
variables = gan.generator.weights + gan.critic.weights
copies = lambda: [[np.array(c.numpy()) for c in strategy.experimental_local_results(v.value)] for v in variables]
before = copies()
logs, skipped, stop = step(iterator, tf.constant(False), tf.constant(1))
after_bad = copies()
logs_good, skipped_good, _ = step(iterator, tf.constant(False), tf.constant(1))
after_good = copies()
print(json.dumps({
    "bad_critic_loss": float(logs["critic_loss"][0]), "skipped": {k: float(v[0]) for k, v in skipped.items()},
    "unchanged": all(np.array_equal(a, b) for va, vb in zip(before, after_bad) for a, b in zip(va, vb)),
    "good_skipped": {k: float(v[0]) for k, v in skipped_good.items()},
    "changed": any(not np.array_equal(a[0], b[0]) for a, b in zip(before, after_good)),
    "replicas_equal": all(np.array_equal(v[0], v[1]) for v in after_good),
    "finite": all(np.isfinite(c).all() for v in after_good for c in v),
    "steps": int(gan.generator_optimizer.iterations.numpy()), "stop": float(stop),
    "copies_per_variable": sorted({len(v) for v in before})}))
"""


@pytest.mark.slow
def test_a_nan_on_one_replica_skips_the_update_on_every_replica():
    result = subprocess.run([sys.executable, "-c", _NAN_ON_ONE_REPLICA_SCRIPT], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert not np.isfinite(report["bad_critic_loss"])
    # Replica 1's two critic updates and its generator update; replica 0 was finite but skipped too.
    assert report["skipped"] == {"critic": 2.0, "generator": 1.0}
    assert report["unchanged"]
    assert report["good_skipped"] == {"critic": 0.0, "generator": 0.0}
    assert report["changed"] and report["replicas_equal"] and report["finite"]
    assert report["steps"] == 2 and report["stop"] == 0.0 and report["copies_per_variable"] == [2]
