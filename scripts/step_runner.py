"""Runs a step bundle's train_step with JAX's XLA on whatever device JAX finds; prints one JSON object.

    python run_step.py BUNDLE_FOLDER                      # the steps_per_execution loop, 2 warm-up + 5 timed calls
    python run_step.py BUNDLE_FOLDER --program=step --repeats=10
    python run_step.py BUNDLE_FOLDER --values=state.npz --outputs=after.npz --warmup=0 --repeats=1

Needs only numpy, jax and jaxlib (tested with jax 0.11.2 on Python 3.12 and 0.10.2 on Python 3.11);
no TensorFlow and nothing of tf_ganimation: scripts/step_bundle.py copies this file into every bundle
as run_step.py. It compiles the bundle's HLO (spec.json names the files) for the first device JAX sees,
draws the state on that device from the spec's initialisers (or reads --values), then calls the
program --warmup times untimed and --repeats times timed, each call's state fed to the next (the state
buffers are donated: the program's outputs alias them). The JSON: compile seconds, milliseconds per
train_step and images/s (medians over the timed calls), peak device memory, XLA's FLOP count, and the
loss terms of the first and the last call with whether all are finite.

Notes: the AUs and images are drawn once and fed to every call, like a prefetched batch: the figure
has no input pipeline and no host loop besides this one.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import pathlib
import statistics
import sys
import time

try:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax._src.lib import _jax
except ImportError as error:  # the one place that imports jax
    sys.exit(f"run_step.py needs numpy, jax and jaxlib ({error}): pip install -r requirements-jax.txt "
             "(jax==0.11.2 on Python 3.12)")

jax.config.update("jax_enable_x64", True)  # the step counters are int64


def load_program(bundle: pathlib.Path, program: str) -> tuple[dict, dict, bytes]:
    """(spec, the program's spec, its serialized HloModuleProto) of `program` ("step" or "loop")."""
    spec = json.loads((bundle / "spec.json").read_text())
    if program not in spec["programs"]:
        raise SystemExit(f"{bundle / 'spec.json'} has no program {program!r}: it has {sorted(spec['programs'])}")
    entry = spec["programs"][program]
    return spec, entry, gzip.decompress((bundle / entry["file"]).read_bytes())


def compile_program(hlo: bytes, device):
    """(the loaded executable for `device`, seconds to convert, seconds to compile)."""
    started = time.perf_counter()
    module = _jax.mlir.hlo_to_stablehlo(hlo)
    converted = time.perf_counter()
    client = device.client
    load = getattr(client, "compile_and_load", None) or client.compile
    executable = load(module, _jax.DeviceList((device,)), _jax.CompileOptions())
    return executable, converted - started, time.perf_counter() - converted


def draw(initializer: dict, shape, dtype, key):
    """One parameter's value from its spec initialiser, drawn on the default device."""
    if "constant" in initializer:
        return jnp.full(shape, initializer["constant"], dtype)
    kind = initializer["distribution"]
    if kind == "normal":
        values = initializer["mean"] + initializer["stddev"] * jax.random.normal(key, shape, jnp.float32)
    elif kind == "truncated_normal":  # Keras truncates at two standard deviations
        values = initializer["mean"] + initializer["stddev"] * jax.random.truncated_normal(key, -2.0, 2.0, shape)
    elif kind == "uniform":
        values = jax.random.uniform(key, shape, jnp.float32, initializer["low"], initializer["high"])
    elif kind == "integers":
        values = jax.random.randint(key, shape, initializer["low"], initializer["high"], jnp.int32)
    else:
        raise SystemExit(f"unknown initializer {initializer} in spec.json")
    return values.astype(dtype)


def initial_arguments(program: dict, device, seed: int, values: dict | None) -> list:
    """Every parameter on `device`: from `values` (name -> array) where given, else drawn."""
    key = jax.random.key(seed)
    arguments = []
    with jax.default_device(device):
        for parameter in program["parameters"]:
            name, shape, dtype = parameter["name"], tuple(parameter["shape"]), jnp.dtype(parameter["dtype"])
            if values is not None and name in values:
                value = np.asarray(values[name])
                if value.shape != shape:
                    raise SystemExit(f"--values: {name} has shape {value.shape}, the program expects {shape}")
                arguments.append(jax.device_put(value.astype(dtype), device))
            else:
                key_of_parameter = jax.random.fold_in(key, parameter["index"])
                arguments.append(draw(parameter["initializer"], shape, dtype, key_of_parameter))
    return jax.block_until_ready(arguments)


def call(executable, program: dict, arguments: list) -> tuple[list, list]:
    """Runs the program once: (outputs, the next call's arguments: the state replaced by its new value)."""
    outputs = [shards[0] for shards in executable.execute_sharded(arguments).disassemble_into_single_device_arrays()]
    following = list(arguments)
    for parameter in program["parameters"]:
        if parameter["aliased_output"] is not None:
            following[parameter["index"]] = outputs[parameter["aliased_output"]]
    return outputs, following


def scalars(program: dict, outputs: list, kind: str) -> dict[str, float]:
    return {entry["name"].split("/", 1)[1]: float(np.asarray(outputs[entry["index"]]))
            for entry in program["outputs"] if entry["kind"] == kind}


def flops(executable) -> float | None:
    """XLA's count of floating-point operations per call, where the backend reports one."""
    try:
        analysis = executable.cost_analysis()
    except (NotImplementedError, RuntimeError):  # not every backend implements it (JaxRuntimeError is a RuntimeError)
        return None
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) and analysis else analysis
    return float(analysis["flops"]) if isinstance(analysis, dict) and "flops" in analysis else None


def memory(device, executable) -> dict:
    """Peak device memory (MiB) where the device reports it, and what XLA planned for the program."""
    stats = device.memory_stats() or {}
    planned = executable.get_compiled_memory_stats()
    planned_bytes = (planned.argument_size_in_bytes + planned.output_size_in_bytes - planned.alias_size_in_bytes
                     + planned.temp_size_in_bytes)
    peak = stats.get("peak_bytes_in_use")
    return {"peak_device_memory_mib": None if peak is None else round(peak / 2**20, 1),
            "program_memory_mib": round(planned_bytes / 2**20, 1)}


def run(bundle: pathlib.Path, program_name: str, warmup: int, repeats: int, seed: int = 0,
        values: dict | None = None, outputs_path: pathlib.Path | None = None, platform: str | None = None) -> dict:
    """Compiles, initialises and times the bundle's program; returns the JSON object main prints."""
    spec, program, hlo = load_program(bundle, program_name)
    device = jax.devices(platform)[0] if platform else jax.devices()[0]
    executable, convert_seconds, compile_seconds = compile_program(hlo, device)
    arguments = initial_arguments(program, device, seed, values)
    outputs, arguments = call(executable, program, arguments)
    jax.block_until_ready(outputs)
    if outputs_path is not None:
        np.savez(outputs_path, **{entry["name"]: np.asarray(outputs[entry["index"]]) for entry in program["outputs"]})
    first = scalars(program, outputs, "loss")
    for _ in range(max(warmup - 1, 0)):
        outputs, arguments = call(executable, program, arguments)
    jax.block_until_ready(outputs)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        outputs, arguments = call(executable, program, arguments)
        jax.block_until_ready(outputs)
        times.append(time.perf_counter() - started)
    last = scalars(program, outputs, "loss")
    steps = program["train_steps"]
    result = {"bundle": bundle.name, "program": program_name, "train_steps_per_call": steps,
              "setting": spec["setting"], "device": f"{device.platform}: {device.device_kind}",
              "jax": jax.__version__, "hlo_to_stablehlo_seconds": round(convert_seconds, 2),
              "compile_seconds": round(compile_seconds, 2), "timed_calls": len(times)}
    if times:
        seconds_per_step = statistics.median(times) / steps
        result.update(ms_per_step=round(1000 * seconds_per_step, 3),
                      ms_per_step_calls=[round(1000 * t / steps, 3) for t in times],
                      images_per_second=round(spec["images_per_step"] / seconds_per_step, 1))
    program_flops = flops(executable)
    if program_flops is not None:
        result["xla_flops_per_step"] = program_flops / steps
        if times:
            result["achieved_tflops_per_second"] = round(program_flops / steps / seconds_per_step / 1e12, 3)
    result.update(memory(device, executable))
    result.update(first_losses=first, last_losses=last, skipped_updates=scalars(program, outputs, "skipped"),
                  finite_losses=all(math.isfinite(value) for value in [*first.values(), *last.values()]))
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=pathlib.Path, help="a bundle folder (holding spec.json)")
    parser.add_argument("--program", default="loop", help="step: one train_step per call; loop (default): "
                        "steps_per_execution train_steps per call, as the training loop calls them")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls, the first included (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls; the median is reported (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drawn state and inputs")
    parser.add_argument("--values", type=pathlib.Path, help="an .npz of initial values by parameter name")
    parser.add_argument("--outputs", type=pathlib.Path, help="write the first call's outputs by name to this .npz")
    parser.add_argument("--platform", help="a JAX platform (cpu, cuda, ...); default: JAX's first device")
    args = parser.parse_args(argv)
    if not (args.bundle / "spec.json").is_file():
        parser.error(f"{args.bundle} is not a step bundle: it has no spec.json")
    if args.warmup < 1 and args.repeats < 1:
        parser.error("--warmup and --repeats are both 0: nothing would run")
    values = dict(np.load(args.values)) if args.values else None
    result = run(args.bundle, args.program, args.warmup, args.repeats, args.seed, values, args.outputs, args.platform)
    print(json.dumps(result))
    return 0 if result["finite_losses"] else 1


if __name__ == "__main__":
    sys.exit(main())
