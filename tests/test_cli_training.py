"""The training commands end to end, with tiny budgets: train, eval, render, ablate."""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ikrl.cli.app import app

runner = CliRunner()
SPEC = "dobot_cr5+weighted_pose+sincos"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli") / "run"
    result = runner.invoke(
        app, ["train", SPEC, "--steps", "1500", "--batch-size", "64", "--out", str(folder), "--eval-targets", "20", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "success within 5 mm, 2°" in result.output and "solutions per second" in result.output
    assert f"run folder: {folder}" in " ".join(result.output.split())
    return folder


def test_train_writes_a_run_folder(run_dir):
    assert (run_dir / "checkpoint.pt").is_file() and (run_dir / "curves.png").is_file()
    assert json.loads((run_dir / "eval.json").read_text())["targets"] == 20


def test_eval_with_a_swarm_writes_its_own_json(run_dir):
    result = runner.invoke(app, ["eval", str(run_dir), "--targets", "10", "--swarm", "2"])
    assert result.exit_code == 0, result.output
    record = json.loads((run_dir / "eval-swarm2.json").read_text())
    assert record["targets"] == 10 and record["swarm"] == 2 and record["algorithm"] == "goal"
    assert "10 (swarm 2)" in result.output


def test_eval_refine_reports_the_solver_polish_beside_the_policy_alone(run_dir):
    result = runner.invoke(app, ["eval", str(run_dir), "--targets", "10", "--refine"])
    assert result.exit_code == 0, result.output
    record = json.loads((run_dir / "eval-refined.json").read_text())
    plain = json.loads((run_dir / "eval.json").read_text())
    assert record["refined"] is True and record["algorithm"] == "goal" and record["targets"] == 10
    # A local polish never loses a target the policy had reached.
    assert record["success_5mm_2deg"] >= record["policy_success_5mm_2deg"]
    assert "policy + solver" in result.output and "the policy alone:" in result.output
    assert "refined" not in plain


def test_eval_never_overwrites_a_result_and_takes_another_seed(run_dir):
    trained = (run_dir / "eval.json").read_text()
    for _ in range(2):
        result = runner.invoke(app, ["eval", str(run_dir), "--targets", "8"])
        assert result.exit_code == 0, result.output
    first, second = (json.loads((run_dir / name).read_text()) for name in ("eval-held-out.json", "eval-held-out-2.json"))
    assert (run_dir / "eval.json").read_text() == trained  # the trainer's evaluation is untouched
    assert first["targets"] == second["targets"] == 8 and first["seed"] == 7654321 and first["source"] == "uniform"
    result = runner.invoke(app, ["eval", str(run_dir), "--targets", "8", "--seed", "12345"])
    assert result.exit_code == 0, result.output
    other = json.loads((run_dir / "eval-seed12345.json").read_text())
    assert other["seed"] == 12345 and "seed 12345" in result.output
    result = runner.invoke(app, ["eval", str(run_dir), "--targets", "8", "--out", str(run_dir / "eval.json")])
    assert result.exit_code == 1 and "exists: ikrl never overwrites a result" in " ".join(result.output.split())


def test_eval_on_a_users_poses_and_on_the_specs_sampler(run_dir, tmp_path):
    import numpy as np

    from ikrl.rl.checkpoint import load_checkpoint

    chain = load_checkpoint(run_dir).make_env(batch_size=1).chain
    q = torch.zeros(5, chain.dof)
    poses = tmp_path / "mine.npy"
    np.save(poses, chain.forward_kinematics(q).double().numpy())
    result = runner.invoke(app, ["eval", str(run_dir), "--targets", str(poses)])
    assert result.exit_code == 0, result.output
    record = json.loads((run_dir / "eval-targets-mine.json").read_text())
    assert record["targets"] == 5 and record["source"] == "poses" and record["targets_file"] == str(poses)
    result = runner.invoke(app, ["eval", str(run_dir), "--targets", "6", "--spec-sampler"])
    assert result.exit_code == 0, result.output
    assert json.loads((run_dir / "eval-spec-sampler.json").read_text())["source"] == "sampler uniform()"
    result = runner.invoke(app, ["eval", str(run_dir), "--targets", "six"])
    assert result.exit_code == 1 and "--targets must be a positive count or a file of poses" in " ".join(result.output.split())
    result = runner.invoke(app, ["eval", str(run_dir), "--targets", "3", "--spec-sampler", "--swarm", "2"])
    assert result.exit_code == 1 and "takes one start per target" in " ".join(result.output.split())


def test_eval_goal_only_reports_the_nearest_heads_errors(run_dir):
    from ikrl.kinematics.se3 import pose_errors
    from ikrl.rl.checkpoint import load_checkpoint
    from ikrl.rl.evaluate import EVAL_SEED, held_out

    result = runner.invoke(app, ["eval", str(run_dir), "--targets", "12", "--goal-only"])
    assert result.exit_code == 0, result.output
    record = json.loads((run_dir / "eval-goal-only.json").read_text())
    assert record["goal_only"] is True and record["targets"] == 12 and "mean errors of the nearest head" in result.output
    # Recomputed independently: every head's error, the minimum of the score per target.
    checkpoint = load_checkpoint(run_dir)
    chain = checkpoint.make_env(batch_size=1).chain
    policy = checkpoint.policy(chain=chain)
    _, target_q = held_out(chain, 12, 1, EVAL_SEED)
    target = chain.forward_kinematics(target_q)
    heads = policy.heads(target)
    position, rotation = pose_errors(chain.forward_kinematics(heads.reshape(-1, chain.dof)), target.repeat_interleave(heads.shape[1], 0))
    score = (position / 0.005 + rotation / math.radians(2)).view(12, -1)
    best = score.argmin(-1)
    expected = position.view(12, -1)[torch.arange(12), best].double().mean()
    assert record["position_error_mean"] == pytest.approx(float(expected), rel=1e-5)
    result = runner.invoke(app, ["eval", str(run_dir), "--goal-only", "--swarm", "2"])
    assert result.exit_code == 1 and "--goal-only evaluates the goal network" in " ".join(result.output.split())


def test_solve_with_a_goal_checkpoint_seeds_from_its_heads(run_dir, tmp_path):
    out = tmp_path / "q.csv"
    result = runner.invoke(app, ["solve", "dobot_cr5", "--random", "20", "--checkpoint", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "20 of 20 (100.0 %)" in text and "policy of" in text and out.is_file()


def test_render_writes_a_gif_of_the_asked_size(run_dir, tmp_path):
    out = tmp_path / "rollout.gif"
    result = runner.invoke(app, ["render", str(run_dir), "--out", str(out), "--targets", "2", "--size", "96"])
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.size == (96, 96) and image.n_frames > 10


def test_errors_are_one_line(tmp_path):
    result = runner.invoke(app, ["eval", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "error: no checkpoint at" in result.output
    result = runner.invoke(app, ["train", SPEC, "--algorithm", "sax", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "Did you mean 'sac'" in result.output
    result = runner.invoke(app, ["train", SPEC, "--param", "lr", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0 and "NAME=VALUE" in result.output
    result = runner.invoke(app, ["train", SPEC, "--param", "colour=1", "--steps", "10", "--out", str(tmp_path / "x"), "--no-progress"])
    assert result.exit_code == 1 and "algorithm 'goal' has no parameter 'colour'; it accepts: lr=" in " ".join(result.output.split())


def test_ablate_runs_a_grid_and_resumes(tmp_path):
    out = tmp_path / "grid"
    args = ["ablate", "dobot_cr5+{weighted_pose,position}+sincos", "--seeds", "1", "--steps", "500",
            "--backend", "serial", "--out", str(out), "--eval-targets", "10"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "ran 2, skipped 0 finished, failed 0" in result.output
    table = (out / "summary.md").read_text()
    assert "| `dobot_cr5+weighted_pose+sincos` | 1 |" in table and "| `dobot_cr5+position+sincos` | 1 |" in table
    assert (out / "summary.png").is_file() and (out / "summary.csv").is_file()
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "ran 0, skipped 2 finished" in again.output
    dry = runner.invoke(app, ["ablate", "dobot_cr5+{geodesic,sparse}", "--seeds", "2", "--dry-run", "--out", str(out)])
    assert dry.exit_code == 0 and len(dry.output.strip().splitlines()) == 4 and "->" in dry.output


BAD_OUTS = [
    ("a-file", "is a file; give a folder"),
    ("missing/parent/ok", None),
    ("/proc/ikrl-out", "cannot write in /proc"),
    ("a-file/inside", "a-file is a file, so no folder can be made inside it"),
]


@pytest.mark.parametrize(("out", "message"), BAD_OUTS)
def test_train_and_ablate_check_their_folder_before_any_work(tmp_path, out, message):
    (tmp_path / "a-file").write_text("not a folder")
    target = out if out.startswith("/") else str(tmp_path / out)
    for command in (["train", SPEC, "--steps", "64", "--batch-size", "8", "--eval-targets", "2", "--no-progress"],
                    ["ablate", "dobot_cr5+{geodesic,position}", "--seeds", "1", "--steps", "64", "--backend", "serial", "--eval-targets", "2"]):  # fmt: skip
        if message is None:
            continue  # a missing parent is created: covered by the runs that succeed
        result = runner.invoke(app, [*command, "--out", target])
        assert result.exit_code == 1, result.output
        assert len(result.output.strip().splitlines()) == 1 and message in result.output and "Traceback" not in result.output
        assert f"--out {target}" in result.output


@pytest.mark.parametrize(("out", "message"), [("/proc/x.json", "cannot write in /proc"), ("a-file/x.json", "is a file, so no folder")])
def test_eval_render_and_solve_check_the_destination_before_computing(run_dir, tmp_path, out, message, monkeypatch):
    (tmp_path / "a-file").write_text("")
    target = out if out.startswith("/") else str(tmp_path / out)
    import ikrl.rl.evaluate as evaluate_module
    import ikrl.solver.pool as pool_module

    def never(*args, **kwargs):
        raise AssertionError("the work started before the destination was checked")

    monkeypatch.setattr(evaluate_module, "evaluate", never)
    monkeypatch.setattr(pool_module, "solve", never)
    for command in (["eval", str(run_dir), "--targets", "3"], ["render", str(run_dir)],
                    ["solve", "panda", "--random", "3"]):  # fmt: skip
        suffix = {"render": ".gif", "solve": ".csv"}.get(command[0], ".json")
        result = runner.invoke(app, [*command, "--out", target.replace(".json", suffix)])
        assert result.exit_code == 1, (command, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_render_and_solve_never_overwrite_a_result_unless_asked(run_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    existing = tmp_path / "mine.csv"
    existing.write_text("precious")
    result = runner.invoke(app, ["solve", "panda", "--random", "3", "--out", str(existing)])
    assert result.exit_code == 1 and f"--out {existing} exists: ikrl never overwrites a result" in result.output
    assert existing.read_text() == "precious"
    result = runner.invoke(app, ["solve", "panda", "--random", "3", "--out", str(existing), "--overwrite"])
    assert result.exit_code == 0 and existing.read_text().startswith("target,")
    first = runner.invoke(app, ["solve", "panda", "--random", "3"])
    second = runner.invoke(app, ["solve", "panda", "--random", "3"])
    assert first.exit_code == second.exit_code == 0
    assert (tmp_path / "solutions.csv").is_file() and (tmp_path / "solutions-2.csv").is_file()
    gif = tmp_path / "r.gif"
    gif.write_text("precious")
    result = runner.invoke(app, ["render", str(run_dir), "--out", str(gif), "--targets", "1", "--size", "64"])
    assert result.exit_code == 1 and "exists: ikrl never overwrites a result" in result.output and gif.read_text() == "precious"
    result = runner.invoke(app, ["solve", "panda", "--random", "3", "--out", str(tmp_path / "x.txt")])
    assert result.exit_code == 1 and "solutions are written as .csv, .npz, .npy; got '.txt'" in result.output


def test_bad_seeds_are_named_errors_on_the_command_line(tmp_path):
    for seed in ("-1", str(2**40)):
        result = runner.invoke(app, ["train", SPEC, "--seed", seed, "--steps", "10", "--out", str(tmp_path / "x"), "--no-progress"])
        assert result.exit_code == 1
        assert result.output.strip() == f"error: TrainConfig: seed must be an int from 0 to 4294967295; got {seed}"
    result = runner.invoke(app, ["solve", "panda", "--random", "2", "--seed", "-1", "--out", str(tmp_path / "s.csv")])
    assert result.exit_code == 1 and "seed must be an int from 0 to 4294967295; got -1" in result.output


def test_default_run_folders_of_different_specs_never_collide(tmp_path, monkeypatch):
    from ikrl.grid.plan import run_folder_name

    long = "dobot_cr5+weighted_pose(w=1,1,1,0.2,0.2,0.2)+near_target(noise=0.25)+sincos+normalize"
    names = {
        run_folder_name(spec, "goal", 0)
        for spec in (long + "+target", long + "+raw", "panda+fixed(file='a b.csv')", "panda+fixed(file='a/b.csv')")
    }
    assert len(names) == 4 and all(len(name) < 120 for name in names)
    assert run_folder_name("panda+sincos", "apg", 3) == "panda+sincos-apg-seed3"  # readable when nothing is lost
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", "panda+weighted_pose(w=1, 1, 1, 0, 0, 0)", "--steps", "32", "--batch-size", "8", "--eval-targets", "2", "--no-progress", "--algorithm", "apg"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [run_folder_name("panda+weighted_pose(w=1,1,1,0,0,0)", "apg", 0)]
