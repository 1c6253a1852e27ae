"""scripts/gpu_check.py end to end at --tiny on the CPU: the table, its JSON, a training run and its evaluation."""

import json
import math
import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT


@pytest.mark.slow
def test_gpu_check_tiny_prints_the_table_and_writes_its_numbers(tmp_path):
    output = tmp_path / "gpu_check.json"
    result = subprocess.run([sys.executable, "scripts/gpu_check.py", "--tiny", f"--output={output}",
                             f"--workdir={tmp_path / 'work'}"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert "\n".join(table) == report["table"]
    assert table[0].startswith("| setting | images/s | s/step | first call s | memory MB")
    rows = report["rows"]
    assert len(table) == 2 + len(rows) + 1 and len(rows) == 3
    # the first row is the training run's setting; the others are measured while the budget lasts
    assert rows[0]["status"] == "measured" and rows[0]["row"] == "32 px tiny, float32, no XLA, batch 2"
    assert all(row["status"] in ("measured", "skipped: budget") for row in rows)
    measured = [row for row in rows if row["status"] == "measured"]
    for row in measured:
        assert math.isfinite(row["images_per_second"]) and row["images_per_second"] > 0 and row["finite_losses"]
        assert f"| {row['row']} | {row['images_per_second']:.1f} |" in report["table"]
    training = report["training"]
    assert training["exit_status"] == 0 and training["steps"] == training["max_steps"] > 0
    assert training["images_per_second"] > 0
    evaluation = training["evaluation"]
    assert math.isfinite(evaluation["l1_ratio"]) and evaluation["paired_l1"] > 0
    assert table[-1].startswith("| training: scripts/train.py") and "paired L1" in table[-1]
    assert (tmp_path / "work" / "run" / "gpu_check_evaluation" / "metrics.json").is_file()
