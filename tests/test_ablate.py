"""Ablation grids: brace expansion, cell folders, resumable runs on every backend, summaries.

The trainers here are fakes (module-level, so the spawn and Ray workers can import them as
``tests.test_ablate``): they write eval.json with numbers derived from the spec and seed, so
the summary can be checked against hand-computed means and standard deviations.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ikrl.errors import IkrlError, SpecSyntaxError
from ikrl.grid import Cell, plan, run_grid, summarize
from ikrl.spec.braces import expand_braces


@dataclass(frozen=True)
class StubConfig:
    """Stands in for ikrl.rl.training.run.TrainConfig: run_grid needs only replace() and to_dict()."""

    algorithm: str = "apg"
    steps: int | None = 10
    minutes: float | None = None
    batch_size: int = 8
    seed: int = 0
    device: str = "cpu"

    def replace(self, **changes) -> StubConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FakeResult:
    run_dir: Path
    evaluation: dict
    train_seconds: float


def fake_evaluation(spec: str, seed: int) -> dict:
    """Numbers a reader can average by hand: success 0.5 + 0.1 * seed, +0.2 for geodesic."""
    bonus = 0.2 if "geodesic" in spec else 0.0
    return {
        "success_5mm_2deg": 0.5 + 0.1 * seed + bonus,
        "success_1mm_1deg": 0.2 + 0.1 * seed,
        "position_error_median": 0.001 * (seed + 1),
        "position_error_p95": 0.01 * (seed + 1),
        "rotation_error_median": 0.01 * (seed + 1),
        "rotation_error_p95": 0.1 * (seed + 1),
        "mean_steps_to_success": 10.0 + seed,
        "solutions_per_second": 1000.0,
    }


def fake_train(spec: str, config: StubConfig, run_dir: Path, *, progress: bool = True) -> FakeResult:
    """Writes a checkpoint placeholder, then eval.json last, as the real trainer does."""
    import torch

    run_dir.mkdir(parents=True)  # not exist_ok: a stale folder must have been deleted first
    calls = run_dir.parent / "calls"
    calls.mkdir(exist_ok=True)
    (calls / f"{run_dir.name}.{os.getpid()}.{time.time_ns()}").touch()
    (run_dir / "checkpoint.pt").write_text(
        f"{spec} seed={config.seed} threads={torch.get_num_threads()} pid={os.getpid()} progress={progress}"
    )
    evaluation = fake_evaluation(spec, config.seed)
    (run_dir / "eval.json").write_text(json.dumps(evaluation))
    return FakeResult(run_dir, evaluation, train_seconds=10.0 + config.seed)


def failing_train(spec: str, config: StubConfig, run_dir: Path, *, progress: bool = True) -> FakeResult:
    """Fails for the 'position' reward after writing part of its folder."""
    if "position" in spec:
        run_dir.mkdir(parents=True)
        (run_dir / "checkpoint.pt").write_text("partial")
        raise RuntimeError(f"reward exploded for {spec}")
    return fake_train(spec, config, run_dir, progress=progress)


def calls(out_dir: Path) -> list[str]:
    """The cell folders the fake trainer was called for, one entry per call."""
    folder = out_dir / "calls"
    return sorted(p.name.rsplit(".", 2)[0] for p in folder.iterdir()) if folder.exists() else []


GRID = "dobot_cr5+{weighted_pose,geodesic,position}+{sincos,raw}"


# ------------------------------------------------------------------------------ braces


def test_braces_expand_in_row_major_order_to_canonical_specs():
    assert expand_braces(GRID) == [
        "dobot_cr5+weighted_pose+sincos",
        "dobot_cr5+weighted_pose+raw",
        "dobot_cr5+geodesic+sincos",
        "dobot_cr5+geodesic+raw",
        "dobot_cr5+position+sincos",
        "dobot_cr5+position+raw",
    ]
    assert expand_braces(" dobot_cr5 + geodesic ") == ["dobot_cr5+geodesic"]  # canonical, no braces


def test_commas_inside_parentheses_belong_to_the_part():
    assert expand_braces("panda+{weighted_pose(w=1,1,1,0.5,0.5,0.5),geodesic}") == [
        "panda+weighted_pose(w=1,1,1,0.5,0.5,0.5)",
        "panda+geodesic",
    ]
    # A brace inside a part sweeps a parameter; parameters come out sorted by name.
    assert expand_braces("panda+weighted_pose(w={1,2}, scale=3)") == [
        "panda+weighted_pose(scale=3,w=1)",
        "panda+weighted_pose(scale=3,w=2)",
    ]
    assert expand_braces("panda+{a,b{c,d}}") == ["panda+a", "panda+bc", "panda+bd"]  # nested
    assert expand_braces("panda+x(f='{a,b}')") == ["panda+x(f='{a,b}')"]  # quoted braces are text


def test_an_empty_alternative_means_no_part():
    assert expand_braces("dobot_cr5+weighted_pose+{sincos,}") == [
        "dobot_cr5+weighted_pose+sincos",
        "dobot_cr5+weighted_pose",
    ]
    assert expand_braces("dobot_cr5+{,uniform}+geodesic") == [
        "dobot_cr5+geodesic",
        "dobot_cr5+uniform+geodesic",
    ]
    with pytest.raises(SpecSyntaxError, match="not a valid spec"):
        expand_braces("panda++geodesic")  # a blank part no brace made is the user's typo


@pytest.mark.parametrize(
    ("pattern", "position", "words"),
    [
        ("panda+{a,b", 6, "unclosed '{'"),
        ("panda+a,b}", 9, "'}' without a matching '{'"),
        ("panda+{a(x=1,b}", 8, "close it before the '}' at position 14"),
        ("panda+a(x=1", 7, "unclosed '('"),
        ("panda+a)", 7, "')' without a matching '('"),
        ("panda+x(f='ab)", 10, "unclosed '"),
    ],
)
def test_unbalanced_braces_and_parentheses_point_at_the_spot(pattern, position, words):
    with pytest.raises(SpecSyntaxError) as info:
        expand_braces(pattern)
    message = str(info.value)
    assert f"at position {position}" in message and words in message
    text_line, caret_line = message.splitlines()[-2:]
    assert text_line == " " + pattern
    assert caret_line.index("^") - 1 == position


def test_alternatives_giving_the_same_canonical_spec_are_an_error():
    with pytest.raises(SpecSyntaxError, match=r"same spec more than once: 'panda\+a\(x=1,2\)'"):
        expand_braces("panda+{a(x=1,2),a( x = 1, 2 ),b}")


# ------------------------------------------------------------------------------ cells


def test_cell_folders_are_unique_safe_and_stable():
    cells = plan(GRID + "+{near_target(noise=0.3),uniform}", seeds=3)
    assert len(cells) == 36 and len({c.folder for c in cells}) == 36
    assert cells[:2] == [
        Cell("dobot_cr5+weighted_pose+sincos+near_target(noise=0.3)", 0),
        Cell("dobot_cr5+weighted_pose+sincos+near_target(noise=0.3)", 1),
    ]
    assert all(re.fullmatch(r"[A-Za-z0-9_.+=-]{1,100}", c.folder) for c in cells)
    # Fixed literals: the names must not change between versions or machines.
    assert Cell("dobot_cr5+geodesic+sincos", 0).folder == "dobot_cr5+geodesic+sincos-seed0-f4095beb"
    assert Cell("panda+weighted_pose(w=1,1,1,0.5,0.5,0.5)", 2).folder == (
        "panda+weighted_pose-w=1-1-1-0.5-0.5-0.5-seed2-cd4ea285"
    )
    assert [c.seed for c in plan("panda+geodesic", seeds=[7, 3])] == [7, 3]
    with pytest.raises(IkrlError, match="seeds must differ"):
        plan("panda+geodesic", seeds=[1, 1])


# ------------------------------------------------------------------------------ running


def test_serial_run_then_rerun_skips_finished_cells(tmp_path):
    out = tmp_path / "grid"
    result = run_grid(
        "panda+{geodesic,weighted_pose}",
        seeds=2,
        config=StubConfig(),
        out_dir=out,
        backend="serial",
        train_fn=fake_train,
        progress=False,
    )
    assert result.ok and len(result.ran) == 4 and not result.skipped
    assert len(calls(out)) == 4
    checkpoint = (out / Cell("panda+geodesic", 1).folder / "checkpoint.pt").read_text()
    assert "seed=1" in checkpoint and "progress=False" in checkpoint
    grid = json.loads((out / "grid.json").read_text())
    assert grid["runs"] == [{"pattern": "panda+{geodesic,weighted_pose}", "seeds": [0, 1]}]
    assert grid["config"] == {
        "algorithm": "apg",
        "steps": 10,
        "minutes": None,
        "batch_size": 8,
        "device": "cpu",
    }
    assert [(c["spec"], c["seed"]) for c in grid["cells"]] == [
        ("panda+geodesic", 0),
        ("panda+geodesic", 1),
        ("panda+weighted_pose", 0),
        ("panda+weighted_pose", 1),
    ]

    again = run_grid(
        "panda+{geodesic,weighted_pose}",
        seeds=2,
        config=StubConfig(seed=5),
        out_dir=out,
        backend="serial",
        train_fn=fake_train,
        progress=False,
    )
    assert len(again.skipped) == 4 and not again.ran
    assert len(calls(out)) == 4  # no new call
    assert again.skipped[0].evaluation == fake_evaluation("panda+geodesic", 0)
    assert again.skipped[1].train_seconds == 11.0


def test_a_half_finished_cell_is_deleted_and_rerun(tmp_path):
    out = tmp_path / "grid"
    run_grid(
        "panda+{geodesic,position}",
        seeds=1,
        config=StubConfig(),
        out_dir=out,
        backend="serial",
        train_fn=fake_train,
        progress=False,
    )
    stale = out / Cell("panda+position", 0).folder
    (stale / "eval.json").unlink()  # as if killed before the evaluation
    (stale / "stale.txt").write_text("left by the killed run")
    result = run_grid(
        "panda+{geodesic,position}",
        seeds=1,
        config=StubConfig(),
        out_dir=out,
        backend="serial",
        train_fn=fake_train,
        progress=False,
    )
    assert [o.cell.spec for o in result.ran] == ["panda+position"]
    assert [o.cell.spec for o in result.skipped] == ["panda+geodesic"]
    assert not (stale / "stale.txt").exists() and (stale / "eval.json").is_file()
    assert calls(out).count(stale.name) == 2


def test_rerunning_with_another_config_is_refused_but_a_new_pattern_extends_the_grid(tmp_path):
    out = tmp_path / "grid"
    run_grid(
        "panda+geodesic",
        seeds=1,
        config=StubConfig(),
        out_dir=out,
        backend="serial",
        train_fn=fake_train,
        progress=False,
    )
    with pytest.raises(
        IkrlError, match=r"another config: device='cpu' there, 'cuda' here; steps=10 there, 20 here\."
    ):
        run_grid(
            "panda+geodesic",
            seeds=1,
            config=StubConfig(steps=20, device="cuda"),
            out_dir=out,
            backend="serial",
            train_fn=fake_train,
            progress=False,
        )
    result = run_grid(
        "panda+{geodesic,position}",
        seeds=2,
        config=StubConfig(),
        out_dir=out,
        backend="serial",
        train_fn=fake_train,
        progress=False,
    )
    assert len(result.skipped) == 1 and len(result.ran) == 3
    grid = json.loads((out / "grid.json").read_text())
    assert [run["pattern"] for run in grid["runs"]] == ["panda+geodesic", "panda+{geodesic,position}"]
    assert len(grid["cells"]) == 4


def test_a_folder_that_is_not_a_grid_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(IkrlError, match="not empty and has no grid.json"):
        run_grid(
            "panda+geodesic",
            seeds=1,
            config=StubConfig(),
            out_dir=tmp_path,
            backend="serial",
            train_fn=fake_train,
            progress=False,
        )
    with pytest.raises(IkrlError, match="unknown backend 'proces'. Did you mean 'process'?"):
        run_grid(
            "panda+geodesic",
            config=StubConfig(),
            out_dir=tmp_path / "x",
            backend="proces",
            train_fn=fake_train,
        )


def test_a_failing_cell_is_reported_and_the_others_still_run(tmp_path, capsys):
    out = tmp_path / "grid"
    result = run_grid(
        "panda+{position,geodesic}",
        seeds=2,
        config=StubConfig(),
        out_dir=out,
        backend="serial",
        train_fn=failing_train,
        progress=True,
    )
    assert not result.ok
    assert [(o.cell.spec, o.cell.seed) for o in result.failures] == [
        ("panda+position", 0),
        ("panda+position", 1),
    ]
    assert result.failures[0].error == "RuntimeError: reward exploded for panda+position"
    assert len(result.ran) == 2
    error_text = (out / Cell("panda+position", 0).folder / "error.txt").read_text()
    assert "Traceback" in error_text and "reward exploded" in error_text
    assert "failed" in capsys.readouterr().out
    summary = summarize(out)
    assert [row.spec for row in summary.rows] == ["panda+geodesic"]
    assert len(summary.unfinished) == 2 and "2 cell(s) not finished" in summary.markdown()
    # A rerun retries only the failed cells, from a clean folder.
    again = run_grid(
        "panda+{position,geodesic}",
        seeds=2,
        config=StubConfig(),
        out_dir=out,
        backend="serial",
        train_fn=fake_train,
        progress=False,
    )
    assert again.ok and len(again.ran) == 2 and len(again.skipped) == 2


@pytest.mark.slow  # two spawned workers each import torch: several seconds on two cores
def test_process_backend_runs_cells_in_spawned_workers(tmp_path):
    out = tmp_path / "grid"
    result = run_grid(
        "panda+{geodesic,position}",
        seeds=2,
        config=StubConfig(),
        out_dir=out,
        backend="process",
        workers=2,
        train_fn=failing_train,
        progress=False,
    )
    assert len(result.ran) == 2 and len(result.failures) == 2
    assert "reward exploded" in result.failures[0].error
    for outcome in result.ran:
        text = (out / outcome.cell.folder / "checkpoint.pt").read_text()
        assert f"pid={os.getpid()}" not in text  # trained in a worker, not here
        assert f"threads={max(1, len(os.sched_getaffinity(0)) // 2)}" in text  # cores split between 2 workers
    assert (out / "summary.png").stat().st_size > 0


def test_runs_that_keep_two_processes_busy_get_two_cores_each(tmp_path, monkeypatch):
    import ikrl.grid.run as grid_run
    from ikrl.rl.training.run import TrainConfig

    seen = []
    real = grid_run.backend_named

    def spy(name, *, workers=None, ray_address=None):
        seen.append(workers)
        return real("serial")

    monkeypatch.setattr(grid_run, "backend_named", spy)
    monkeypatch.setattr(grid_run, "cpu_count", lambda: 4)
    assert TrainConfig(minutes=1).processes == 2 and TrainConfig(steps=10).processes == 1
    run_grid("panda+geodesic", seeds=1, config=StubConfig(), out_dir=tmp_path / "a", train_fn=fake_train, progress=False)
    run_grid("panda+geodesic", seeds=1, config=TrainConfig(minutes=1), out_dir=tmp_path / "b", train_fn=fake_train, progress=False)
    assert seen == [4, 2]  # a StubConfig has no processes: one per core


def test_ray_backend_without_ray_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(IkrlError, match=r'pip install "ikrl\[ray\]"'):
        run_grid(
            "panda+geodesic",
            seeds=1,
            config=StubConfig(),
            out_dir=tmp_path / "g",
            backend="ray",
            train_fn=fake_train,
            progress=False,
        )


@pytest.mark.slow
def test_ray_backend_runs_cells_as_tasks(tmp_path):
    ray = pytest.importorskip("ray")
    out = tmp_path / "grid"
    result = run_grid(
        "panda+{geodesic,position}",
        seeds=2,
        config=StubConfig(),
        out_dir=out,
        backend="ray",
        workers=2,
        train_fn=failing_train,
        progress=False,
    )
    assert not ray.is_initialized()  # run_grid started a local Ray, so it shut it down
    assert len(result.ran) == 2 and len(result.failures) == 2
    assert "reward exploded" in result.failures[0].error
    assert [row.spec for row in summarize(out).rows] == ["panda+geodesic"]


# ------------------------------------------------------------------------------ summary


def test_summary_means_and_sample_stds_match_hand_numbers(tmp_path):
    out = tmp_path / "grid"
    run_grid(
        "panda+{geodesic,position}",
        seeds=3,
        config=StubConfig(),
        out_dir=out,
        backend="serial",
        train_fn=fake_train,
        progress=False,
    )
    run_grid(
        "panda+raw",
        seeds=[4],
        config=StubConfig(),
        out_dir=out,
        backend="serial",
        train_fn=fake_train,
        progress=False,
    )
    summary = summarize(out)
    geodesic, position, single = summary.rows
    assert (geodesic.spec, geodesic.seeds) == ("panda+geodesic", (0, 1, 2))
    # success 0.7, 0.8, 0.9: mean 0.8, sample std 0.1; train seconds 10, 11, 12: mean 11, std 1.
    assert geodesic.mean["success_5mm_2deg"] == pytest.approx(0.8)
    assert geodesic.std["success_5mm_2deg"] == pytest.approx(0.1)
    assert position.mean["success_5mm_2deg"] == pytest.approx(0.6)
    assert geodesic.mean["train_seconds"] == pytest.approx(11.0) and geodesic.std[
        "train_seconds"
    ] == pytest.approx(1.0)
    # position error 1, 2, 3 mm: mean 2 mm, std 1 mm.
    assert position.mean["position_error_median"] == pytest.approx(0.002)
    assert position.std["position_error_median"] == pytest.approx(0.001)
    # One seed: the mean is that seed's value and the std is 0.
    assert single.seeds == (4,) and single.mean["success_5mm_2deg"] == pytest.approx(0.9)
    assert single.std["success_5mm_2deg"] == 0.0

    markdown = summary.markdown()
    rows = [line for line in markdown.splitlines() if line.startswith("| `")]
    assert len(rows) == 3
    assert rows[0].startswith("| `panda+geodesic` | 3 | 80.0 ± 10.0 | 30.0 ± 10.0 | 2.00 ± 1.00 | ")
    assert rows[0].endswith(" | 11.0 ± 1.0 | – |")  # no train steps in these records; rotation 0.02 ± 0.01 rad = 1.15 ± 0.57 deg before it
    assert "| 1.15 ± 0.57 |" in rows[0]

    with (out / "summary.csv").open(newline="") as file:
        table = list(csv.DictReader(file))
    assert [row["spec"] for row in table] == ["panda+geodesic", "panda+position", "panda+raw"]
    assert float(table[0]["success_5mm_2deg_mean"]) == pytest.approx(0.8)
    assert float(table[0]["success_5mm_2deg_std"]) == pytest.approx(0.1)
    assert float(table[2]["train_seconds_mean"]) == pytest.approx(14.0) and table[2]["seeds"] == "1"
    assert (out / "summary.md").read_text() == markdown

    png = (out / "summary.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000


def test_summarize_needs_a_grid_folder(tmp_path):
    with pytest.raises(IkrlError, match="has no grid.json"):
        summarize(tmp_path)


def test_summary_leaves_nan_metrics_out_of_mean_and_std(tmp_path):
    from ikrl.grid.summary import _mean, _std

    assert _mean([1.0, math.nan, 3.0]) == 2.0
    assert _std([1.0, math.nan, 3.0]) == pytest.approx(math.sqrt(2.0))
    assert math.isnan(_mean([math.nan])) and math.isnan(_std([math.nan, math.nan]))
    assert _std([5.0]) == 0.0
