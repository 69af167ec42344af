"""``ikrl solve`` end to end, target files in and solution files out, and the policy warm start."""

from __future__ import annotations

import csv
import math
import re

import ikrl_robots
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import ikrl
from ikrl import make_env
from ikrl.cli.app import app
from ikrl.errors import CheckpointMismatchError, ShapeError, TargetsFileError
from ikrl.kinematics.se3 import matrix_to_quaternion, pose_errors, quaternion_to_matrix, so3_exp
from ikrl.rl.policy import Policy
from ikrl.rl.warmstart import policy_starts
from ikrl.solver.pool import solve
from ikrl.solver.targets import load_targets, random_targets, write_solutions
from tests.test_checkpoint import _checkpoint

runner = CliRunner()


# ---------------------------------------------------------------------- quaternions and target files


def test_quaternion_to_matrix_inverts_matrix_to_quaternion_and_ignores_sign_and_scale():
    generator = torch.Generator().manual_seed(0)
    rotations = so3_exp(2.5 * torch.randn(50, 3, generator=generator, dtype=torch.float64))
    quaternions = matrix_to_quaternion(rotations)
    torch.testing.assert_close(quaternion_to_matrix(quaternions), rotations)
    torch.testing.assert_close(quaternion_to_matrix(-3.0 * quaternions), rotations)
    # A quarter turn about z by hand: (cos 45°, 0, 0, sin 45°).
    quarter = torch.tensor([math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)], dtype=torch.float64)
    torch.testing.assert_close(quaternion_to_matrix(quarter), torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64))


@pytest.fixture
def poses():
    chain = ikrl_robots.load("panda", dtype=torch.float64)
    return random_targets(chain, 5, seed=3)[1]


def test_targets_round_trip_through_npy_and_csv_in_both_layouts(tmp_path, poses):
    np.save(tmp_path / "m.npy", poses.numpy())
    np.save(tmp_path / "flat.npy", poses.reshape(5, 16).numpy())
    seven = torch.cat([poses[:, :3, 3], matrix_to_quaternion(poses[:, :3, :3])], -1)
    (tmp_path / "q.csv").write_text("x,y,z,qw,qx,qy,qz\n" + "\n".join(",".join(repr(v) for v in row) for row in seven.tolist()) + "\n")
    (tmp_path / "m.csv").write_text("\n".join(",".join(repr(v) for v in row) for row in poses.reshape(5, 16).tolist()))
    torch.save(poses.float(), tmp_path / "m.pt")
    torch.save(seven, tmp_path / "q.pt")
    for name in ("m.npy", "flat.npy", "q.csv", "m.csv", "q.pt"):
        torch.testing.assert_close(load_targets(tmp_path / name), poses, msg=name)
    torch.testing.assert_close(load_targets(tmp_path / "m.pt"), poses.float().double(), msg="m.pt")


def test_a_pt_file_must_hold_one_real_tensor(tmp_path):
    torch.save({"targets": torch.eye(4)[None]}, tmp_path / "dict.pt")
    with pytest.raises(TargetsFileError, match="must hold one real tensor; it holds dict"):
        load_targets(tmp_path / "dict.pt")
    torch.save(torch.ones(2, 16, dtype=torch.bool), tmp_path / "bool.pt")
    with pytest.raises(TargetsFileError, match="it holds a torch.bool tensor"):
        load_targets(tmp_path / "bool.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(TargetsFileError, match="cannot read targets as numbers"):
        load_targets(tmp_path / "junk.pt")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1,2,3\n", r"rows of 16 numbers .* or 7 .*; got shape \(1, 3\)"),
        ("0,0,0,1,0,0,0\n0,0,0,1,0\n", r"different numbers of values: \[5, 7\]"),
        ("0,0,0,2,0,0,0\n", r"row 0's quaternion .* has norm 2; it must be a unit quaternion"),
        ("0,0,0,1,0,0,0\n0,0,nan,1,0,0,0\n", r"row 1 has a value that is not finite"),
        ("2,0,0,0, 0,1,0,0, 0,0,1,0, 0,0,0,1\n", r"row 0 is not a pose: its rotation block is not orthonormal"),
        ("1,0,0,0, 0,1,0,0, 0,0,1,0, 0,0,1,1\n", r"row 0 is not a pose: its bottom row is 0 0 1 1, not 0 0 0 1"),
        ("-1,0,0,0, 0,1,0,0, 0,0,1,0, 0,0,0,1\n", r"row 0 is not a pose: its rotation block has determinant -1"),
        ("x,y\n", r"cannot read targets as numbers: no rows of numbers"),
    ],
)
def test_malformed_target_files_name_the_row_and_the_fix(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(TargetsFileError, match=message):
        load_targets(path)


def test_a_npy_file_of_text_is_a_clear_error(tmp_path):
    np.save(tmp_path / "words.npy", np.array([["a"] * 16]))
    with pytest.raises(TargetsFileError, match="cannot read targets as numbers"):
        load_targets(tmp_path / "words.npy")


def test_missing_or_unknown_target_files(tmp_path):
    with pytest.raises(TargetsFileError, match=r"must be a \.npy, \.csv or \.pt file; got '\.txt'"):
        load_targets(tmp_path / "t.txt")
    with pytest.raises(TargetsFileError, match="no such file of targets"):
        load_targets(tmp_path / "t.npy")


def test_solutions_are_written_as_csv_npz_and_npy(tmp_path):
    chain = ikrl_robots.load("panda", dtype=torch.float64)
    _, targets = random_targets(chain, 4, seed=1)
    targets[3, :3, 3] *= 10  # out of reach: written, flagged as a failure
    result = solve(chain, targets, restarts=10, seed=0)
    with (write_solutions(tmp_path / "s.csv", chain, result)).open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["success"]) for r in rows] == result.success.int().tolist() == [1, 1, 1, 0]
    q = torch.tensor([[float(r[name]) for name in chain.joint_names] for r in rows], dtype=torch.float64)
    torch.testing.assert_close(q, result.q)
    assert float(rows[3]["position_error_mm"]) == pytest.approx(1e3 * float(result.position_error[3]), rel=1e-5)
    saved = np.load(write_solutions(tmp_path / "s.npz", chain, result))
    assert saved["q"].shape == (4, 7) and list(saved["joint_names"]) == list(chain.joint_names)
    assert saved["attempts"][3] == 11 and not saved["success"][3]
    assert np.load(write_solutions(tmp_path / "s.npy", chain, result)).shape == (4, 7)
    with pytest.raises(TargetsFileError, match=r"written as .csv, .npz, .npy; got '.json'"):
        write_solutions(tmp_path / "s.json", chain, result)


# ---------------------------------------------------------------------- the command


def test_solve_random_targets_writes_csv_and_prints_the_summary(tmp_path):
    out = tmp_path / "solutions.csv"
    result = runner.invoke(app, ["solve", "ur5e", "--random", "40", "--out", str(out), "--seed", "2"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "40 of 40 (100.0 %) within 1 mm, 1°" in text and "all within joint limits │ yes" in text
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 40 and all(r["success"] == "1" for r in rows)
    # The written joint values reach the targets, checked here in float64.
    chain = ikrl_robots.load("ur5e", dtype=torch.float64)
    _, targets = random_targets(chain, 40, seed=2)
    q = torch.tensor([[float(r[n]) for n in chain.joint_names] for r in rows], dtype=torch.float64)
    position, rotation = pose_errors(chain.forward_kinematics(q), targets)
    assert (position < 1.001e-3).all() and (rotation < math.radians(1.001)).all()


def test_solve_a_target_file_on_a_urdf_in_float64(tmp_path):
    from tests.conftest import CR5_URDF

    chain = ikrl.load_chain(CR5_URDF, dtype=torch.float64)
    _, targets = random_targets(chain, 6, seed=4)
    np.save(tmp_path / "targets.npy", targets.numpy())
    out = tmp_path / "q.npz"
    result = runner.invoke(app, ["solve", str(CR5_URDF), "--targets", str(tmp_path / "targets.npy"), "--out", str(out), "--float64"])
    assert result.exit_code == 0, result.output
    assert "float64" in result.output and np.load(out)["success"].all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["panda"], "give exactly one of --targets FILE and --random N"),
        (["pandda", "--random", "2"], "unknown robot 'pandda'. Did you mean 'panda'?"),
        (["panda+sincos", "--random", "2"], "ikrl solve takes a robot, not a whole spec"),
        (["panda", "--random", "2", "--tip", "x"], "--base and --tip go with a URDF file"),
        (["panda", "--targets", "nowhere.csv"], "no such file of targets"),
        (["panda", "--random", "2", "--device", "gpu0"], "device must be a torch device such as 'cpu'"),
    ],
)
def test_solve_errors_are_one_line(args, message):
    result = runner.invoke(app, ["solve", *args])
    assert result.exit_code == 1 and message in " ".join(result.output.split()), result.output


# ---------------------------------------------------------------------- the policy warm start


@pytest.fixture
def panda_checkpoint():
    env = make_env("panda+weighted_pose+sincos", batch_size=2)
    torch.manual_seed(0)
    policy = Policy(env.observation_spec["observation"].shape[-1], env.max_delta, hidden=(16,))
    return _checkpoint(env, policy)


def test_policy_starts_are_the_policy_rollout(panda_checkpoint):
    chain = ikrl_robots.load("panda")
    q, _ = random_targets(chain, 8, seed=1)
    _, targets = random_targets(chain, 8, seed=2)
    moved = policy_starts(panda_checkpoint, chain, targets, q, steps=3)
    env = panda_checkpoint.make_env(batch_size=8)
    network = panda_checkpoint.policy()
    with torch.no_grad():
        td = env.state_at(q, targets)
        for _ in range(3):
            td["action"] = network(td["observation"])
            td = env.step(td)["next"]
    torch.testing.assert_close(moved, td["q"])
    assert not torch.equal(moved, q)  # the policy moved the arms (by at most 3 max_delta)
    assert ((moved - q).abs() <= 3 * env.max_delta + 1e-6).all()


def test_solve_refines_the_policy_rollout(panda_checkpoint, tmp_path, monkeypatch):
    chain = ikrl_robots.load("panda", dtype=torch.float64)
    answers, targets = random_targets(chain, 10, seed=5)
    seen = {}

    def fake_rollout(q):
        seen.update(q=q)
        return answers  # a perfect policy: the solver has nothing left to do

    result = solve(chain, targets, warm_start=fake_rollout)
    assert result.success.all() and (result.iterations == 0).all() and (result.attempts == 1).all()
    assert seen["q"].shape == (10, 7)
    with pytest.raises(ShapeError, match=re.escape("warm_start must return joint values of shape (10, 7) or (10, K, 7) for 10 targets; got (10, 6)")):
        solve(chain, targets, warm_start=lambda q: q[:, :6])


def test_solve_with_a_real_checkpoint_file_and_a_wrong_robot(panda_checkpoint, tmp_path):
    panda_checkpoint.save(tmp_path)
    chain = ikrl_robots.load("panda")
    _, targets = random_targets(chain, 20, seed=6)
    result = solve(chain, targets, warm_start=lambda q: policy_starts(tmp_path, chain, targets, q, steps=2))
    assert result.success_rate >= 0.95
    ur5e = ikrl_robots.load("ur5e")
    ur5e_targets = random_targets(ur5e, 2)[1]
    with pytest.raises(CheckpointMismatchError, match=re.escape("trained for robot 'panda'")):
        solve(ur5e, ur5e_targets, warm_start=lambda q: policy_starts(tmp_path, ur5e, ur5e_targets, q))


def test_solve_command_with_a_checkpoint(panda_checkpoint, tmp_path):
    panda_checkpoint.save(tmp_path / "run")
    out = tmp_path / "s.npy"
    result = runner.invoke(
        app, ["solve", "panda", "--random", "12", "--checkpoint", str(tmp_path / "run"), "--policy-steps", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "policy of" in result.output and np.load(out).shape == (12, 7)
