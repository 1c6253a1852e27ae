"""Does a .tflite model run whole, and right, on a real GPU runtime? LiteRT's GPU accelerator decides.

    devices = vulkan_devices.find_vulkan_devices()      # () when this machine has no Vulkan device
    report = gpu_runtime.check_model("ganimation_fp16.tflite", devices[0], arithmetic="float32")
    report.problems()          # [] when every operator ran on the GPU and the outputs match the CPU's
    report.cpu_operators       # (RuntimeOffender("MUL", "Tensor dimensions must be less than 5. ..."), ...)
    report.max_abs_error       # {"images": 1.5e-05, ...}: GPU against LiteRT's CPU interpreter
    gpu_runtime.verify(model_bytes, "require")   # what a conversion runs; raises GpuRuntimeError

The check compiles the model with LiteRT's `CompiledModel` and the GPU accelerator alone (ai-edge-litert
ships it as libLiteRtWebGpuAccelerator.so: WebGPU through Dawn, on Vulkan), runs it on fixed random
inputs in [0, 1), and compares every output with LiteRT's CPU interpreter on the same file
(litert_gpu_process.py, in a child process). It reports:

- every operator kind the delegate leaves to the CPU, with the delegate's own reason, and how many
  operators that is (the delegate's partition log names kinds, not indices; gpu_compatibility.py gives
  indices for the rules it knows). With the GPU alone, such a model does not compile at all;
- errors the delegate logs while building kernels for operators it accepted: the model may still
  compile "fully accelerated" and compute wrong values (TOPK_V2 over a channel count that is not a
  multiple of 4 drops the tail). Outputs are therefore compared, and `is_fully_accelerated()` (True for
  models the delegate split between GPU and CPU) is recorded but not trusted;
- a crash of the runtime (CUMSUM over the channels of a 4-D tensor ends the process with SIGILL).

`arithmetic="float16"` lets the delegate compute in float16 (its default, what phones do);
`"float32"` sets GpuOptions(enforce_f32=True). vulkan_devices.py finds the devices and measures which
of them really compute in float16.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib

from tf_ganimation.export import litert_gpu_process
from tf_ganimation.export.vulkan_devices import VulkanDevice, find_vulkan_devices, no_device_message

ARITHMETICS = ("float32", "float16")
# Max abs difference from LiteRT's CPU interpreter on the same file (so float16 weights cost nothing).
TOLERANCES = {"float32": 1e-4, "float16": 1e-2}
RUNTIME_CHECKS = ("auto", "require", "off")
_TIMEOUT_S = 600


@dataclasses.dataclass(frozen=True)
class RuntimeOffender:
    """An operator kind the GPU delegate leaves to the CPU, with the delegate's reason.

    Attributes:
        op_name: the builtin operator's name ("MUL").
        reason: the delegate's reason, as it logs it.
        indices: the positions (main subgraph, from 0) of the operators of that kind: the delegate logs
            kinds, so these are the candidates, exactly the offenders when their number across kinds
            equals the report's operators_on_cpu.
    """

    op_name: str
    reason: str
    indices: tuple[int, ...] = ()

    def __str__(self) -> str:
        where = f" (#{', #'.join(map(str, self.indices))})" if self.indices else ""
        return f"{self.op_name}{where}: {self.reason}"


@dataclasses.dataclass(frozen=True)
class GpuRuntimeReport:
    """What one compile and run of a model on a Vulkan device showed.

    Attributes:
        device: where it ran.
        arithmetic: "float32" (enforce_f32) or "float16" (the delegate's default precision).
        compiled: the GPU-only compile succeeded.
        crashed: how the child process ended when it did not end normally ("signal 4 (SIGILL)"), else None.
        error: the runtime's error message when compiling or running failed, else None.
        cpu_operators: the operator kinds the delegate left to the CPU, with its reasons.
        operators_on_cpu: how many operators that is (from the delegate's log), 0 when all ran on the GPU.
        builder_errors: errors logged while building GPU kernels (wrong results may follow).
        fully_accelerated: what CompiledModel.is_fully_accelerated() said (recorded, not trusted).
        max_abs_error: {output name: max abs difference from the CPU interpreter}; empty when it did not run.
        compile_seconds: the GPU compile's wall time.
        run_seconds: the median wall time of a run, inputs written to outputs read.
    """

    device: VulkanDevice
    arithmetic: str
    compiled: bool
    crashed: str | None
    error: str | None
    cpu_operators: tuple[RuntimeOffender, ...]
    operators_on_cpu: int
    builder_errors: tuple[str, ...]
    fully_accelerated: bool | None
    max_abs_error: dict
    compile_seconds: float
    run_seconds: float

    @property
    def tolerance(self) -> float:
        return TOLERANCES[self.arithmetic]

    def problems(self) -> list[str]:
        """Why the model does not run whole and right on this device; empty when it does."""
        found = []
        if self.crashed:
            found.append(f"the runtime crashed ({self.crashed})")
        if self.operators_on_cpu or self.cpu_operators:
            kinds = "; ".join(str(offender) for offender in self.cpu_operators) or "kinds not logged"
            found.append(f"{self.operators_on_cpu or 'some'} operator(s) would run on the CPU ({kinds})")
        elif self.error:
            found.append(f"the GPU compile or run failed: {self.error}")
        found.extend(f"the delegate logged a kernel error: {error}" for error in self.builder_errors)
        wrong = {name: value for name, value in self.max_abs_error.items() if not value <= self.tolerance}
        if wrong:
            found.append("outputs differ from the CPU interpreter's beyond " f"{self.tolerance:g}: "
                         + ", ".join(f"{name} {value:.3g}" for name, value in wrong.items()))
        return found

    def summary(self) -> str:
        where = f"{self.device.driver} ({self.device.adapter.split(',')[0]}), {self.arithmetic} arithmetic"
        problems = self.problems()
        if problems:
            return f"{where}: " + "; ".join(problems)
        errors = ", ".join(f"{name} {value:.2g}" for name, value in self.max_abs_error.items())
        return (f"{where}: every operator on the GPU; max abs error against the CPU interpreter {errors} "
                f"(tolerance {self.tolerance:g}); compile {self.compile_seconds:.1f} s, run {self.run_seconds:.3g} s")

    def as_dict(self) -> dict:
        value = dataclasses.asdict(self)
        value["device"]["icd_paths"] = list(self.device.icd_paths)
        value["problems"] = self.problems()
        return value


class GpuRuntimeError(ValueError):
    """A model failed the GPU runtime check; `reports` holds what each device showed."""

    def __init__(self, reports, source: str = "the model"):
        self.reports = tuple(reports)
        lines = [report.summary() for report in self.reports if report.problems()]
        super().__init__(f"{source} does not run whole and right on LiteRT's GPU accelerator:\n  " + "\n  ".join(lines))


# === Checking a model ===

def verify(model: bytes, mode: str = "auto", allow_cpu_fallback: bool = False,
           source: str = "the model") -> tuple[GpuRuntimeReport, ...]:
    """The check a conversion runs: float32 on the first device found, float16 on the first that has it.

    Args:
        model: the .tflite bytes.
        mode: "auto" (check where a Vulkan device is found, else log no_device_message()), "require"
            (no device is an error) or "off".
        allow_cpu_fallback: only log, instead of raising, what would leave the GPU or compute wrong.
        source: how errors name the model.

    Returns:
        The reports, float32 first; empty when off or when no device was found.

    Raises:
        GpuRuntimeError: an operator leaves the GPU, the runtime crashes or logs a kernel error, or the
            float32 outputs differ from the CPU interpreter's (float16 arithmetic beyond its tolerance is
            reported in the result, not raised: it is a property of the device's arithmetic).
        ValueError: mode is "require" and no Vulkan device is found, or mode is unknown.
    """
    if mode not in RUNTIME_CHECKS:
        raise ValueError(f"gpu_runtime={mode!r} is invalid: expected one of {RUNTIME_CHECKS}")
    if mode == "off":
        return ()
    devices = find_vulkan_devices()
    if not devices:
        if mode == "require":
            raise ValueError(no_device_message().replace("did not run", "is required (--gpu_runtime=require)"))
        from absl import logging

        logging.warning("%s", no_device_message())
        return ()
    reports = [check_model(model, devices[0], "float32")]
    float16_devices = [device for device in devices if device.float16]
    if float16_devices:
        reports.append(check_model(model, float16_devices[0], "float16"))
    failed = [report for report in reports
              if report.problems() and (report.arithmetic == "float32" or not _only_parity(report))]
    if failed and not allow_cpu_fallback:
        raise GpuRuntimeError(reports, source)
    return tuple(reports)


def _only_parity(report: GpuRuntimeReport) -> bool:
    return report.compiled and not (report.crashed or report.operators_on_cpu or report.cpu_operators
                                    or report.builder_errors)


def check_model(model: bytes | os.PathLike | str, device: VulkanDevice, arithmetic: str = "float32",
                seed: int = 0, repeats: int = 1, timeout_s: float = _TIMEOUT_S) -> GpuRuntimeReport:
    """Compiles `model` with LiteRT's GPU accelerator alone on `device`, runs it, compares with the CPU.

    Args:
        model: a .tflite flatbuffer, as bytes or a path.
        device: one of find_vulkan_devices().
        arithmetic: "float32" or "float16" (see the module's docstring).
        seed: seed of the inputs, float32 uniform in [0, 1) in each input's shape.
        repeats: timed runs (>= 1); the report keeps their median.
        timeout_s: the child process's limit; past it the report says so.
    """
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"arithmetic={arithmetic!r} is invalid: expected one of {ARITHMETICS}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats={repeats!r} is invalid: expected an integer >= 1")
    content = model if isinstance(model, (bytes, bytearray)) else _read_model(model)
    run = litert_gpu_process.run(bytes(content), device.icd_paths, arithmetic == "float32", None, repeats,
                                 timeout_s, seed)
    return GpuRuntimeReport(
        device=device, arithmetic=arithmetic, compiled=bool(run.get("compiled")), crashed=run.get("crashed"),
        error=run.get("error"), cpu_operators=_offenders(bytes(content), run["cpu_operators"]),
        operators_on_cpu=run["operators_on_cpu"], builder_errors=tuple(run["builder_errors"]),
        fully_accelerated=run.get("fully_accelerated"), max_abs_error=run.get("max_abs_error", {}),
        compile_seconds=run.get("compile_seconds", math.nan), run_seconds=run.get("run_seconds", math.nan))


def _offenders(content: bytes, pairs: list) -> tuple[RuntimeOffender, ...]:
    """(kind, reason) pairs from the delegate's log, with the indices of the operators of each kind."""
    if not pairs:
        return ()
    from tf_ganimation.export import flatbuffer

    names = [operator.name for operator in flatbuffer.read_operators(content)]
    return tuple(RuntimeOffender(kind, reason, tuple(i for i, name in enumerate(names) if name == kind))
                 for kind, reason in pairs)


def _read_model(path) -> bytes:
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: expected a .tflite model")
    return path.read_bytes()


