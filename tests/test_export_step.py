"""scripts/export_step.py at --tiny on the CPU: the bundle's files, its size, device_check.sh's rows."""

import json
import os
import subprocess
import sys

from conftest import PROJECT_ROOT, TINY_STEP_SETTING

MAX_BUNDLE_BYTES = 64 * 2**20  # what one call to a GPU machine may carry


def test_the_bundle_holds_the_programs_the_runners_and_the_device_check(tiny_step_bundle):
    files = sorted(str(path.relative_to(tiny_step_bundle)) for path in tiny_step_bundle.rglob("*") if path.is_file())
    assert files == [f"{TINY_STEP_SETTING}/loop.hlo.pb.gz", f"{TINY_STEP_SETTING}/spec.json",
                     f"{TINY_STEP_SETTING}/step.hlo.pb.gz", "device_check.sh", "device_check.tsv",
                     "pytorch_reference.py", "run_step.py"]
    assert sum((tiny_step_bundle / name).stat().st_size for name in files) < MAX_BUNDLE_BYTES
    rows = [line.split("\t") for line in (tiny_step_bundle / "device_check.tsv").read_text().splitlines()
            if not line.startswith("#")]
    assert [row[:4] for row in rows] == [["jax", TINY_STEP_SETTING, "2", "float32"],
                                         ["torch", TINY_STEP_SETTING, "2", "float32"],
                                         ["torch_compile", TINY_STEP_SETTING, "2", "float32"]]
    assert rows[1][5] == ("--image_size=32 --generator_filters=8 --generator_residual_blocks=1 --critic_filters=8 "
                          "--critic_layers=3 --n_critic=2")


def test_the_device_check_skips_the_rows_its_budget_cannot_hold(tiny_step_bundle, tmp_path):
    results = tmp_path / "results.jsonl"
    environment = {**os.environ, "PYTHON": sys.executable, "DEVICE_CHECK_BUDGET": "0",
                   "DEVICE_CHECK_RESULTS": str(results)}
    result = subprocess.run(["bash", str(tiny_step_bundle / "device_check.sh")], env=environment,
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [row["kind"] for row in rows] == ["jax", "torch", "torch_compile"]
    assert all(row["status"] == "skipped: 150 s cap, 0 s of the budget left" for row in rows)
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 4 and table[1].startswith(f"| jax | {TINY_STEP_SETTING} | skipped: 150 s cap")


def test_a_missing_out_folder_is_a_user_error(tmp_path):
    result = subprocess.run([sys.executable, "scripts/export_step.py", "--tiny"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 2 and "--out is required" in result.stderr
