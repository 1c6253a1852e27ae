"""One compile and run of a .tflite model on LiteRT's GPU accelerator, in a child process.

    result = litert_gpu_process.run(model_bytes, ("/usr/lib/chromium/vk_swiftshader_icd.json",), enforce_f32=True)
    result["compiled"], result["max_abs_error"], result["cpu_operators"], result.get("crashed")

A child process, because the runtime can end the process (CUMSUM over the channels of a 4-D tensor
raises SIGILL) and because the Vulkan driver is chosen by VK_ICD_FILENAMES before the loader starts.
The child compiles with `CompiledModel` and HardwareAccelerator.GPU alone, runs the model, runs LiteRT's
CPU interpreter on the same inputs, and writes a JSON result; the parent reads the delegate's log
(parse_delegate_log): the adapter chosen, the operators it leaves to the CPU with its reasons, and the
errors it logs while building kernels. gpu_runtime.py turns this into a report.

This is the only module of the package that imports `ai_edge_litert`'s CompiledModel, and only in the
child (`python -m tf_ganimation.export.litert_gpu_process REQUEST.json`).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np


def run(content: bytes, icd_paths: tuple[str, ...], enforce_f32: bool, inputs: dict | None = None, repeats: int = 1,
        timeout_s: float = 600, seed: int = 0) -> dict:
    """Compiles and runs `content` in a child process whose Vulkan loader sees only `icd_paths`.

    Args:
        content: the .tflite bytes.
        icd_paths: Vulkan driver manifests, set as VK_ICD_FILENAMES.
        enforce_f32: GpuOptions(enforce_f32): float32 arithmetic; False lets the delegate use float16.
        inputs: {input name: array}; inputs not given are uniform in [0, 1) from `seed`.
        repeats: runs; the result keeps the median of those after the first (which compiles shaders).
        timeout_s: the child's limit.

    Returns:
        {"compiled", "error", "crashed", "fully_accelerated", "compile_seconds", "run_seconds",
         "outputs" (the first 64 values of each output), "max_abs_error" ({output: against the CPU
         interpreter}), and parse_delegate_log's keys}; keys are absent where the child did not get that far.
    """
    with tempfile.TemporaryDirectory(prefix="gpu_runtime_") as folder:
        folder = pathlib.Path(folder)
        (folder / "model.tflite").write_bytes(content)
        if inputs is not None:
            np.savez(folder / "inputs.npz", **inputs)
        request = {"model": str(folder / "model.tflite"), "enforce_f32": enforce_f32, "seed": seed,
                   "inputs": str(folder / "inputs.npz") if inputs is not None else None, "repeats": repeats,
                   "result": str(folder / "result.json")}
        (folder / "request.json").write_text(json.dumps(request))
        package_root = str(pathlib.Path(__file__).resolve().parents[2])
        python_path = [package_root] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
        environment = dict(os.environ, VK_ICD_FILENAMES=os.pathsep.join(icd_paths),
                           PYTHONPATH=os.pathsep.join(python_path))
        try:
            command = [sys.executable, "-m", "tf_ganimation.export.litert_gpu_process", str(folder / "request.json")]
            done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout_s,
                                  env=environment)
            log, returncode = done.stderr + done.stdout, done.returncode
        except subprocess.TimeoutExpired as expired:
            log, returncode = (expired.stderr or b"").decode(errors="replace"), None
        result_path = folder / "result.json"
        result = json.loads(result_path.read_text()) if result_path.is_file() else {}
    result.update(parse_delegate_log(log))
    if returncode is None:
        result.setdefault("error", f"no result within {timeout_s:g} s")
    elif returncode < 0:
        result["crashed"] = _signal_name(-returncode)
    elif not result:
        result["error"] = f"the child process exited with status {returncode}: {log.strip()[-500:]}"
    return result


def _signal_name(number: int) -> str:
    try:
        return f"signal {number} ({signal.Signals(number).name})"
    except ValueError:
        return f"signal {number}"


_ADAPTER = re.compile(r"Selected adapter: (.+)")
_SPLIT = re.compile(r"(\d+) operations will run on the GPU, and the remaining (\d+) operations? will run on the CPU")
_ALL_ON_CPU = re.compile(r"No operations will run on the GPU, and all (\d+) operations? will run on the CPU")
_OFFENDER = re.compile(r"^([A-Z][A-Z0-9_]*): (.+)$")
_LOGGED_ERROR = re.compile(r"^E\d{4} [\d:. ]+\d+ (\S+\.cc):\d+\] (.+)$")
_UNSUPPORTED_HEADER = "Following operations are not supported by GPU delegate:"


def parse_delegate_log(log: str) -> dict:
    """{adapter, cpu_operators [(op, reason)], operators_on_cpu, builder_errors} read from the runtime's log."""
    parsed = {"cpu_operators": [], "operators_on_cpu": 0, "builder_errors": []}
    in_list = False
    for line in log.splitlines():
        line = line.rstrip()
        if match := _ADAPTER.search(line):
            parsed["adapter"] = match.group(1)
        if _UNSUPPORTED_HEADER in line:
            in_list = True
            continue
        if match := _SPLIT.search(line):
            parsed["operators_on_cpu"] = int(match.group(2))
            in_list = False
        elif match := _ALL_ON_CPU.search(line):
            parsed["operators_on_cpu"] = int(match.group(1))
            in_list = False
        elif in_list and (match := _OFFENDER.match(line)):
            pair = [match.group(1), match.group(2)]
            if pair not in parsed["cpu_operators"]:
                parsed["cpu_operators"].append(pair)
        elif (match := _LOGGED_ERROR.match(line)) and match.group(1) != "cuda_platform.cc":
            parsed["builder_errors"].append(match.group(2))
        elif "Validation error:" in line:
            parsed["builder_errors"].append(line.split("Validation error:", 1)[1].strip())
    return parsed


# === The child process ===

def _child_main(request_path: str) -> None:
    """Compiles, runs and compares one model; writes result.json (see _run_child)."""
    from ai_edge_litert import compiled_model as litert_compiled
    from ai_edge_litert.interpreter import Interpreter

    request = json.loads(pathlib.Path(request_path).read_text())
    result: dict = {"compiled": False}

    def write():
        pathlib.Path(request["result"]).write_text(json.dumps(result))

    options = litert_compiled.Options(hardware_accelerators=litert_compiled.HardwareAccelerator.GPU,
                                      gpu_options=litert_compiled.GpuOptions(enforce_f32=request["enforce_f32"]))
    write()  # a crash while compiling leaves {"compiled": false}
    start = time.perf_counter()
    try:
        model = litert_compiled.CompiledModel.from_file(request["model"], options=options)
    except RuntimeError as error:
        result["error"] = str(error).strip().splitlines()[-1].strip("└ ")
        return write()
    result.update(compiled=True, compile_seconds=time.perf_counter() - start,
                  fully_accelerated=model.is_fully_accelerated())
    write()  # what is known so far survives a crash while running
    signature = next(iter(model.get_signature_list()))
    input_details = model.get_input_tensor_details(signature)
    output_details = model.get_output_tensor_details(signature)
    given = dict(np.load(request["inputs"])) if request["inputs"] else {}
    rng = np.random.default_rng(request["seed"])
    feeds = {name: given.get(name, rng.uniform(0.0, 1.0, details["shape"]).astype(np.float32))
             for name, details in input_details.items()}
    input_buffers = {name: model.create_input_buffer_by_name(signature, name) for name in input_details}
    output_buffers = {name: model.create_output_buffer_by_name(signature, name) for name in output_details}
    times, outputs = [], {}
    for _ in range(request["repeats"]):
        start = time.perf_counter()
        for name, buffer in input_buffers.items():
            buffer.write(feeds[name])
        model.run_by_name(signature, input_buffers, output_buffers)
        outputs = {name: output_buffers[name].read(int(np.prod(details["shape"])), np.float32).reshape(details["shape"])
                   for name, details in output_details.items()}
        times.append(time.perf_counter() - start)
    result["run_seconds"] = float(np.median(times[1:] or times))  # the first run also compiles shaders
    result["outputs"] = [outputs[name].ravel()[:64].tolist() for name in output_details]

    interpreter = Interpreter(model_path=request["model"])  # the CPU reference, by tensor index
    interpreter.allocate_tensors()
    for name, details in input_details.items():
        interpreter.set_tensor(details["index"], feeds[name])
    interpreter.invoke()
    result["max_abs_error"] = {
        name: float(np.max(np.abs(outputs[name] - interpreter.get_tensor(details["index"]).reshape(details["shape"]))))
        for name, details in output_details.items()}
    write()


if __name__ == "__main__":
    _child_main(sys.argv[1])
