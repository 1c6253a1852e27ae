"""The train_step as a folder that runs without TensorFlow: its XLA program (HLO), a spec and a runner.

On a GPU the training loop compiles the whole train_step with XLA (`--jit_compile=auto`), and XLA is
also what JAX runs. A step bundle holds that program as TensorFlow lowers it, so that any machine with
numpy and jax/jaxlib can compile and time it (scripts/step_runner.py, copied into the bundle as
`run_step.py`). One setting (image size, networks, batch, n_critic, precision) is one folder:

- `step.hlo.pb.gz`: the HloModuleProto of one `gan.update` (n_critic critic updates, the generator
  update, both Adams), serialized and gzipped;
- `loop.hlo.pb.gz`: `steps_per_execution` train_steps in one program (a while loop over the same
  update), as the training loop calls them on a GPU;
- `spec.json`: each program's parameters (the element's tensors, then every variable: name, shape,
  dtype, initialiser, the output that returns its new value) and outputs (loss terms, skipped
  updates, the new variables), and the images per train_step.

Variables are parameters of the program; their new values are outputs aliased to them, so a runner
donates the state buffers and feeds the outputs back. The gradient penalty's alpha is drawn inside
the program (stateless Philox, seeded by the step variable). The weights are not in the bundle: the
runner draws them on the device from their initialisers (the networks' own; Adam's moments 0).

Notes: TensorFlow lowers the program for the CPU device type: lowering for a GPU needs a GPU (tf2xla
cannot place the variables otherwise). The layers are those of `target`: on "gpu" the plain
convolutions a GPU builds (model/layers.py, "CPU variants"), chosen by making `layers.cpu_variants`
answer for the target while the GAN is built and traced.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import pathlib
import shutil
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
import throughput  # scripts/throughput.py, beside this module

from tf_ganimation.core import atomic
from tf_ganimation.core.config import Config
from tf_ganimation.model import ganimation, layers

TARGETS = ("gpu", "cpu")
PRECISIONS = ("float32", "mixed_bfloat16")
STEP_FILE, LOOP_FILE, SPEC_FILE = "step.hlo.pb.gz", "loop.hlo.pb.gz", "spec.json"
RUNNER_FILE = "run_step.py"
RUNNER_SOURCE = pathlib.Path(__file__).with_name("step_runner.py")
# The element's tensors as the input pipeline emits them (throughput.random_element draws the same).
INPUT_INITIALIZERS = {
    "real_image": {"distribution": "integers", "low": 0, "high": 256},
    "real_aus": {"distribution": "uniform", "low": 0.0, "high": 1.0},
    "target_aus": {"distribution": "uniform", "low": 0.0, "high": 1.0},
}


@dataclasses.dataclass(frozen=True)
class StepSetting:
    """One bundle's setting: `config` (networks, batch, n_critic), precision, target device, loop length."""

    config: Config
    precision: str = "float32"
    target: str = "gpu"
    steps_per_execution: int = 8

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is invalid: expected one of {PRECISIONS}")
        if self.target not in TARGETS:
            raise ValueError(f"target={self.target!r} is invalid: expected one of {TARGETS}")
        if self.steps_per_execution < 1:
            raise ValueError(f"steps_per_execution={self.steps_per_execution} is invalid: expected an integer >= 1")

    @property
    def name(self) -> str:
        """The bundle folder's name, e.g. "128px_batch25_bfloat16"."""
        precision = "bfloat16" if self.precision == "mixed_bfloat16" else self.precision
        return f"{self.config.model.image_size}px_batch{self.config.data.batch_size}_{precision}"

    @property
    def images_per_step(self) -> int:
        """Images one train_step reads: batch x n_critic."""
        return self.config.data.batch_size * self.config.data.n_critic


@contextlib.contextmanager
def target_layers(target: str):
    """While open, networks built and traced use the layers `target` ("gpu" or "cpu") would choose."""
    if target not in TARGETS:
        raise ValueError(f"target={target!r} is invalid: expected one of {TARGETS}")
    with mock.patch.object(layers, "cpu_variants", lambda: target == "cpu"):
        yield


@contextlib.contextmanager
def recorded_initializers():
    """While open, every weight a Keras layer adds is recorded: yields {id(variable): initializer}."""
    recorded = {}
    add_weight = keras.layers.Layer.add_weight

    def recording_add_weight(self, *args, **kwargs):
        variable = add_weight(self, *args, **kwargs)
        initializer = kwargs["initializer"] if "initializer" in kwargs else (args[1] if len(args) > 1 else None)
        recorded[id(variable)] = initializer
        return variable

    with mock.patch.object(keras.layers.Layer, "add_weight", recording_add_weight):
        yield recorded


def initializer_spec(initializer, value: np.ndarray) -> dict:
    """A variable's initialiser as the runner draws it: {"distribution": "normal" | "truncated_normal" |
    "uniform", ...parameters} or {"constant": number}.

    Args:
        initializer: what the layer passed to add_weight (a Keras initializer, its name, or None when
            the variable was not made by a layer: optimizer slots, counters).
        value: the variable's freshly initialised value; a constant value is its own initialiser.

    Raises:
        ValueError: an initializer the runner cannot draw, or a non-constant value with none recorded.
    """
    if value.size and np.all(value == value.flat[0]):
        return {"constant": value.flat[0].item()}
    if initializer is None:
        raise ValueError("a variable with random initial values and no recorded initializer: cannot describe it")
    initializer = keras.initializers.get(initializer)
    config = initializer.get_config()
    if isinstance(initializer, keras.initializers.TruncatedNormal):
        return {"distribution": "truncated_normal", "mean": config["mean"], "stddev": config["stddev"]}
    if isinstance(initializer, keras.initializers.RandomNormal):
        return {"distribution": "normal", "mean": config["mean"], "stddev": config["stddev"]}
    if isinstance(initializer, keras.initializers.RandomUniform):
        return {"distribution": "uniform", "low": config["minval"], "high": config["maxval"]}
    raise ValueError(f"initializer {type(initializer).__name__} is not supported by the step runner: "
                     "expected RandomNormal, TruncatedNormal, RandomUniform or a constant")


def _named_variables(gan) -> list[tuple[str, object]]:
    """(name, variable) for both networks' weights, both optimizers' variables and the GAN's own."""
    named = [(variable.path, variable) for variable in gan.generator.weights + gan.critic.weights]
    # By role, not by the optimizer's own name, which Keras numbers by how many were made in the process.
    for role in ("generator_optimizer", "critic_optimizer"):
        named += [(f"{role}/{variable.name}", variable) for variable in getattr(gan, role).variables]
    named += [(f"gan/{value.name.split(':')[0]}", value) for value in vars(gan).values()
              if isinstance(value, tf.Variable)]
    names = [name for name, _ in named]
    if len(set(names)) != len(names):
        raise ValueError(f"two variables share a name: {sorted({name for name in names if names.count(name) > 1})}")
    return named


def _handle(variable):
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


# XLA's element types by numpy's names, as the runner reads them.
_DTYPES = {"PRED": "bool", "U8": "uint8", "S32": "int32", "S64": "int64", "F16": "float16", "BF16": "bfloat16",
           "F32": "float32", "F64": "float64"}


def _hlo_shape(shape) -> tuple[list[int], str]:
    from tensorflow.compiler.xla import xla_data_pb2

    element_type = xla_data_pb2.PrimitiveType.Name(shape.element_type)
    if element_type not in _DTYPES:
        raise ValueError(f"the HLO has a {element_type} parameter or output: expected one of {sorted(_DTYPES)}")
    return list(shape.dimensions), _DTYPES[element_type]


def program_spec(hlo: bytes, concrete, input_names: list[str], output_names: list[str], gan,
                 initializers: dict) -> dict:
    """The parameters and outputs of the HLO of `concrete` (a traced tf.function of the element).

    Parameters are the element's tensors (flattened: sorted by name), then the captured variables in
    the concrete function's order; outputs are the function's flattened outputs, then one per
    variable it writes, aliased to that variable's parameter.

    Raises:
        ValueError: the HLO's parameters or outputs do not line up with the function's.
    """
    from tensorflow.compiler.xla.service import hlo_pb2

    module = hlo_pb2.HloModuleProto.FromString(hlo)
    shape = module.host_program_shape
    by_handle = {id(_handle(variable)): (name, variable) for name, variable in _named_variables(gan)}
    captured = [by_handle.get(id(tensor)) for tensor in concrete.captured_inputs]
    if None in captured or len(shape.parameters) != len(input_names) + len(captured):
        raise ValueError(f"the HLO's {len(shape.parameters)} parameters are not the element's {len(input_names)} "
                         f"tensors and the {len(captured)} variables of the GAN")
    aliases = {entry.parameter_number: entry.output_shape_index[0] for entry in module.input_output_alias.entries}
    parameters, outputs = [], [None] * len(shape.result.tuple_shapes)
    for index, parameter_shape in enumerate(shape.parameters):
        dims, dtype = _hlo_shape(parameter_shape)
        entry = {"index": index, "shape": dims, "dtype": dtype, "aliased_output": aliases.get(index)}
        if index < len(input_names):
            entry.update(name=input_names[index], kind="input", initializer=INPUT_INITIALIZERS[input_names[index]])
        else:
            name, variable = captured[index - len(input_names)]
            value = np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable)
            entry.update(name=name, kind="state", initializer=initializer_spec(initializers.get(id(variable)), value))
            if index in aliases:
                outputs[aliases[index]] = {"name": name, "kind": "state", "parameter": index}
        parameters.append(entry)
    if outputs[:len(output_names)] != [None] * len(output_names) or None in outputs[len(output_names):]:
        raise ValueError("the HLO's outputs are not the function's outputs followed by the variables it writes")
    for index, name in enumerate(output_names):
        outputs[index] = {"name": name, "kind": name.split("/")[0]}
    for index, (output, output_shape) in enumerate(zip(outputs, shape.result.tuple_shapes)):
        output["index"] = index
        output["shape"], output["dtype"] = _hlo_shape(output_shape)
    return {"parameters": parameters, "outputs": outputs}


def _flat_update(gan, element) -> dict:
    """gan.update(element) as one flat dict: "loss/<term>" and "skipped/<network>", float32 []."""
    terms, skipped = gan.update(element)
    return {**{f"loss/{name}": value for name, value in terms.items()},
            **{f"skipped/{name}": value for name, value in skipped.items()}}


def step_functions(gan, element, steps_per_execution: int):
    """(step, loop): XLA-compiled tf.functions of the element; `loop` makes steps_per_execution train_steps
    and returns the last one's values (the same flat dict as `step`)."""
    step = tf.function(lambda element: _flat_update(gan, element), jit_compile=True)
    structure = step.get_concrete_function(element).structured_outputs

    def loop(element):
        def body(index, values):
            return index + 1, _flat_update(gan, element)

        values = {name: tf.zeros(spec.shape, spec.dtype) for name, spec in structure.items()}
        return tf.while_loop(lambda index, _: index < steps_per_execution, body, (tf.constant(0), values))[1]

    return step, tf.function(loop, jit_compile=True)


def build(setting: StepSetting):
    """(gan, element, initializers): the GAN of `setting` built with its target's layers, one random
    element (throughput.random_element) and the initialisers its layers recorded. Call it, and trace
    the GAN, inside `target_layers(setting.target)` under the setting's precision policy."""
    config = setting.config
    with recorded_initializers() as initializers:
        gan = ganimation.make_gan(config, total_steps=10**6, decay_steps=0)
    element = throughput.random_element(config.data.batch_size, config.data.n_critic, config.model.image_size)
    return gan, element, initializers


@contextlib.contextmanager
def precision_policy(precision: str):
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def export(setting: StepSetting, root: pathlib.Path, loop: bool = True) -> dict:
    """Writes `setting`'s bundle into `root / setting.name` (created) and the runner into `root`.

    Returns the spec (also in spec.json): {"setting", "images_per_step", "programs": {"step", "loop"}},
    each program {"file", "train_steps", "parameters", "outputs"} (`program_spec`).
    """
    out_dir = pathlib.Path(root) / setting.name
    config = setting.config
    spec = {"setting": {"name": setting.name, "image_size": config.model.image_size,
                        "batch_size": config.data.batch_size, "n_critic": config.data.n_critic,
                        "precision": setting.precision, "target": setting.target,
                        "networks": dataclasses.asdict(config.model),
                        "steps_per_execution": setting.steps_per_execution,
                        "tensorflow": tf.__version__},
            "images_per_step": setting.images_per_step, "programs": {}}
    with precision_policy(setting.precision), target_layers(setting.target):
        gan, element, initializers = build(setting)
        step, loop_function = step_functions(gan, element, setting.steps_per_execution)
        programs = {"step": (step, STEP_FILE, 1)}
        if loop:
            programs["loop"] = (loop_function, LOOP_FILE, setting.steps_per_execution)
        input_names = sorted(element)
        for name, (function, file_name, train_steps) in programs.items():
            concrete = function.get_concrete_function(element)
            hlo = function.experimental_get_compiler_ir(element)(stage="hlo_serialized")
            output_names = sorted(concrete.structured_outputs)
            spec["programs"][name] = {"file": file_name, "train_steps": train_steps,
                                      **program_spec(hlo, concrete, input_names, output_names, gan, initializers)}
            atomic.write_bytes(out_dir / file_name, gzip.compress(hlo, mtime=0))
    atomic.write_json(out_dir / SPEC_FILE, spec, indent=1)
    write_runner(root)
    return spec


def write_runner(root: pathlib.Path) -> pathlib.Path:
    """Copies the runner (scripts/step_runner.py) into `root` as run_step.py."""
    return atomic.write_with(pathlib.Path(root) / RUNNER_FILE, lambda path: shutil.copyfile(RUNNER_SOURCE, path))


def state_values(gan, spec_program: dict) -> dict[str, np.ndarray]:
    """The current values of the program's state parameters, by name (the GAN's variables as numpy)."""
    variables = dict(_named_variables(gan))
    return {entry["name"]: np.asarray(variables[entry["name"]].numpy())
            for entry in spec_program["parameters"] if entry["kind"] == "state"}
