"""Smoke tests of benchmarks/speed.py and benchmarks/gpu.py at their smallest settings: they
run, print their markdown tables and exit 0. No figure is checked (speed targets belong in
benchmarks/, never in timed tests). Each runs in a fresh process, as a user runs it: the
scripts set torch's thread count and time whole calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=BENCHMARKS.parent,
        env=env,
    )
    assert result.returncode == 0, (
        f"{script} {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}"
    )
    return result


def _tables(text: str) -> list[str]:
    """The header rows of the markdown tables in ``text`` (the line above each |---| line)."""
    lines = text.splitlines()
    return [lines[i - 1] for i, line in enumerate(lines) if line.startswith("|---") and i > 0]


@pytest.mark.slow
def test_speed_quick_prints_a_table_per_part_and_a_verdict(tmp_path):
    pytest.importorskip("pytorch_kinematics")  # the bench extra: the peer of the bars
    out, figures = tmp_path / "speed.md", tmp_path / "speed.json"
    result = _run(
        "speed.py", "--quick", "--repeats", "1", "--robots", "dobot_cr5",
        "--out", str(out), "--json", str(figures),
    )  # fmt: skip
    text = result.stdout
    assert "load average" in text.splitlines()[0]
    headers = _tables(text)
    assert len(headers) == 4, text  # one table per part
    for part in ("1. Batch-1", "2. Batch solve", "3. env.step", "4. Kinematics"):
        assert part in text
    assert any(
        line.startswith("Overall: PASS") or line.startswith("Overall: FAIL") for line in text.splitlines()
    )
    assert _tables(out.read_text()) == headers
    record = json.loads(figures.read_text())
    assert {row["part"] for row in record["counted"]} == {1, 2, 3, 4}


def test_gpu_without_cuda_says_so_and_exits_0():
    result = _run("gpu.py", env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert result.stdout.strip() == "no CUDA device: nothing to time"


@pytest.mark.slow
def test_gpu_timing_code_runs_on_the_cpu(tmp_path):
    out = tmp_path / "gpu.md"
    result = _run("gpu.py", "--device", "cpu", "--quick", "--out", str(out))
    assert _tables(result.stdout) == ["| what | batch | median time per call | rate | note |"]
    for what in ("forward kinematics", "Jacobian", "env.step", "solve (CR5", "APG.update()"):
        assert what in result.stdout
    assert "success" in result.stdout
    assert _tables(out.read_text()) == _tables(result.stdout)
