"""Counts the ops of one traced training call; prints one JSON object.

    python scripts/benchmarks/op_count.py                                   # 128 px, the paper's networks
    python scripts/benchmarks/op_count.py --image_size=32 --generator_filters=8 --generator_residual_blocks=1 \
        --critic_filters=8 --critic_layers=3 --batch_size=4 --n_critic=2

Traces the function training calls (training.trainer.make_step_function, float32, without XLA: what
TensorFlow's executor dispatches op by op) with get_concrete_function and counts the node_def entries
of its graph and of every function that graph calls, followed recursively through the function
library (the per-replica function, while bodies, gradient functions), each function once. "real_ops"
leaves out the ops that do no arithmetic: Const, Identity, NoOp, Placeholder, _Arg and _Retval.
The model, batch and n_critic flags are the training flags (tf_ganimation/flags.py), with the paper's
defaults. Nothing is run, so it takes seconds plus the trace. Results go in BENCHMARKS.md; never asserted.
"""

import collections
import inspect
import json

from tf_ganimation import cli  # before anything loads TensorFlow: cli readies its start (cli.py)

# isort: split
import numpy as np
import tensorflow as tf
from absl import flags

from tf_ganimation import flags as training_flags
from tf_ganimation.core.config import Config, DataConfig
from tf_ganimation.model import ganimation
from tf_ganimation.training import trainer
from tf_ganimation.training.strategy import make_strategy

_TOP = flags.DEFINE_integer("top", 15, "Op types listed, most frequent first.")

NOT_REAL = ("Const", "Identity", "NoOp", "Placeholder", "_Arg", "_Retval")


def _called_functions(node_def, library: dict) -> set[str]:
    """Names of the library functions a node calls: as its op (a function call) or through attributes."""
    names = {node_def.op} & library.keys()
    for value in node_def.attr.values():
        if value.HasField("func"):
            names.add(value.func.name)
        names.update(function.name for function in value.list.func)
    return names & library.keys()


def count_ops(graph_def) -> dict:
    """Op counts of a GraphDef and of every library function it reaches, each function counted once."""
    library = {function.signature.name: function for function in graph_def.library.function}
    counts, per_graph, seen, pending = collections.Counter(), {}, set(), []

    def visit(name, nodes):
        per_graph[name] = len(nodes)
        for node_def in nodes:
            counts[node_def.op] += 1
            pending.extend(_called_functions(node_def, library) - seen)

    visit("(outer graph)", graph_def.node)
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            visit(name, library[name].node_def)
    return {"counts": counts, "ops_per_graph": per_graph, "functions": len(seen), "library_functions": len(library)}


def _traced_step(gan, strategy, element):
    """The concrete function of one training call, whichever signature make_step_function has."""
    if "steps_per_execution" not in inspect.signature(trainer.make_step_function).parameters:
        # The one-step signature step(iterator, stop), whose train_step takes images in [-1, 1].
        element = {**element, "real_image": tf.cast(element["real_image"], tf.float32) / 127.5 - 1.0}
        dataset = tf.data.Dataset.from_tensors(element).repeat()
        iterator = iter(strategy.experimental_distribute_dataset(dataset))
        return trainer.make_step_function(gan, strategy, False).get_concrete_function(iterator, tf.constant(False))
    iterator = iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(element).repeat()))
    step = trainer.make_step_function(gan, strategy, jit_compile=False, steps_per_execution=1)
    return step.get_concrete_function(iterator, tf.constant(False), tf.constant(1, tf.int32))


def main(argv):
    if len(argv) > 1:
        raise cli.UserError(f"unexpected arguments {argv[1:]}: every setting is a --flag")
    settings = training_flags.build_config()  # the model, batch and n_critic flags; float32, no XLA here
    model, size = settings.model, settings.model.image_size
    batch, n_critic = settings.data.batch_size, settings.data.n_critic
    config = Config(model=model, data=DataConfig(image_size=size, batch_size=batch, n_critic=n_critic))
    strategy = make_strategy("one_device")
    with strategy.scope():
        gan = ganimation.make_gan(config, total_steps=1000, decay_steps=0)
    rng = np.random.default_rng(0)
    element = {"real_image": tf.constant(rng.integers(0, 256, (batch, n_critic, size, size, 3), np.uint8)),
               "real_aus": tf.constant(rng.uniform(0, 1, (batch, n_critic, 17)), tf.float32),
               "target_aus": tf.constant(rng.uniform(0, 1, (batch, n_critic, 17)), tf.float32)}
    counted = count_ops(_traced_step(gan, strategy, element).graph.as_graph_def())
    counts = counted["counts"]
    real = {op: count for op, count in counts.items() if op not in NOT_REAL}
    print(json.dumps({
        "total_ops": sum(counts.values()),
        "real_ops": sum(real.values()),
        "real_ops_exclude": list(NOT_REAL),
        "functions": counted["functions"],
        "library_functions": counted["library_functions"],
        "ops_per_graph": counted["ops_per_graph"],
        "top_op_types": dict(counts.most_common(_TOP.value)),
        "top_real_op_types": dict(collections.Counter(real).most_common(_TOP.value)),
        "settings": {"image_size": size, "batch_size": batch, "n_critic": n_critic,
                     "generator_filters": model.generator_filters,
                     "generator_residual_blocks": model.generator_residual_blocks,
                     "critic_filters": model.critic_filters, "critic_layers": model.critic_layers,
                     "precision": "float32", "jit_compile": False,
                     "make_step_function": str(inspect.signature(trainer.make_step_function)),
                     "tensorflow": tf.__version__},
    }, indent=2))


if __name__ == "__main__":
    cli.run(main)
