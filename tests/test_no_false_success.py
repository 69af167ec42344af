"""Inputs that used to give silently wrong results are named errors now."""

from __future__ import annotations

import math

import ikrl_robots
import numpy as np
import pytest
import torch

import ikrl
from ikrl.errors import BadParameterError, JointInputError, NotAPoseError, TargetsFileError, UrdfError
from ikrl.kinematics.protocol import random_joints
from ikrl.kinematics.se3 import check_poses
from ikrl.rl.training.run import TrainConfig
from ikrl.solver.targets import load_targets

from .conftest import TOY_ARM_URDF


def _poses(n: int = 4) -> torch.Tensor:
    chain = ikrl_robots.load("panda")
    q = torch.zeros(n, chain.dof)
    return chain.forward_kinematics(q)


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda p: p[:, :3, :3].zero_(), r"targets\[0\] is not a pose: its rotation block is not orthonormal"),
        (lambda p: p[2, :3, :3].mul_(2.0), r"targets\[2\] is not a pose: its rotation block is not orthonormal \(largest entry of R\^T R - I is 3"),
        (lambda p: p[1, 3].copy_(torch.tensor([1.0, 2.0, 3.0, 4.0])), r"targets\[1\] is not a pose: its bottom row is 1 2 3 4, not 0 0 0 1"),
        (lambda p: p[3, 0, 3].fill_(math.nan), r"targets\[3\] is not a pose: it has an entry that is not finite"),
        (lambda p: p[0, :3, 0].neg_(), r"targets\[0\] is not a pose: its rotation block has determinant -1"),
    ],
)
def test_the_solver_refuses_targets_that_are_not_poses(break_it, message):
    chain = ikrl_robots.load("panda")
    poses = _poses()
    break_it(poses)
    with pytest.raises(NotAPoseError, match=message):
        ikrl.solve(chain, poses)


def test_a_random_matrix_is_not_a_pose_for_the_environment_either():
    env = ikrl.make_env("panda+weighted_pose", batch_size=2, seed=0)
    target = torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(NotAPoseError, match=r"target\[0\] is not a pose"):
        env.state_at(torch.zeros(2, env.chain.dof), target)


def test_forward_kinematics_poses_pass_in_float32_and_float64():
    for dtype in (torch.float32, torch.float64):
        chain = ikrl_robots.load("dobot_cr5", dtype=dtype)
        q = random_joints(chain, 500, torch.Generator().manual_seed(1))
        check_poses(chain.forward_kinematics(q))


def test_a_nan_start_is_a_named_error_not_nan_joints():
    chain = ikrl_robots.load("panda")
    poses = _poses(3)
    starts = torch.zeros(3, chain.dof)
    starts[1, 2] = math.nan
    with pytest.raises(JointInputError, match="starts: the start of target 1 has a value that is not finite"):
        ikrl.solve(chain, poses, starts=starts)
    with pytest.raises(JointInputError, match="warm_start: the start of target 1 has a value that is not finite"):
        ikrl.solve(chain, poses, warm_start=lambda q: starts)


def test_a_nan_action_is_a_named_error():
    env = ikrl.make_env("panda+weighted_pose", batch_size=3, seed=0)
    td = env.reset()
    td["action"] = torch.zeros(3, env.chain.dof)
    td["action"][2, 0] = math.nan
    with pytest.raises(JointInputError, match="env.step: the action of arm 2 has a value that is not finite"):
        env.step(td)


def test_a_urdf_with_a_nan_origin_is_refused_naming_the_joint():
    text = TOY_ARM_URDF.replace('xyz="0 0 0.1"', 'xyz="0 nan 0.1"', 1)
    assert text != TOY_ARM_URDF
    with pytest.raises(UrdfError, match=r"joint '.*': <origin xyz rpy> must be finite numbers"):
        ikrl.load_chain(text)


def test_complex_targets_are_refused(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, np.eye(4, dtype=np.complex128)[None] * (1 + 1j))
    with pytest.raises(TargetsFileError, match="targets must be real numbers; the file holds complex values"):
        load_targets(path)


def test_an_infinite_budget_is_refused():
    with pytest.raises(BadParameterError, match=r"minutes must be a positive finite number \(CPU minutes\); got inf"):
        TrainConfig(minutes=math.inf)


def test_poses_written_with_six_decimals_are_still_poses(tmp_path):
    # The file reader and the solver share one check and one tolerance: what a file of
    # targets passes, solve passes too.
    chain = ikrl_robots.load("panda", dtype=torch.float64)
    q = random_joints(chain, 50, torch.Generator().manual_seed(2))
    rounded = torch.round(chain.forward_kinematics(q) * 1e6) / 1e6
    path = tmp_path / "t.csv"
    np.savetxt(path, rounded.reshape(50, 16).numpy(), delimiter=",", fmt="%.6f")
    poses = load_targets(path)
    assert bool(ikrl.solve(chain, poses).success.all())


def test_nan_is_written_as_json_null_and_read_back_as_missing(tmp_path):
    import json

    from ikrl.rl.evaluate import Evaluation

    far = torch.full((4,), 1.0)
    evaluation = Evaluation(far, far, torch.full((4,), -1), 1.0, 1, 100)  # nothing succeeded: no mean steps
    path = evaluation.to_json(tmp_path / "eval.json")

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    record = json.loads(path.read_text(), parse_constant=refuse)
    assert record["mean_steps_to_success"] is None and record["success_5mm_2deg"] == 0.0


def test_training_into_a_finished_run_is_refused_unless_resumed_or_overwritten(tmp_path):
    from ikrl.errors import CheckpointError
    from ikrl.rl.checkpoint import load_checkpoint
    from ikrl.rl.training.run import train

    small = TrainConfig(steps=3 * 16, batch_size=16, eval_targets=8, params={"heads": 1, "goal_width": 8, "goal_depth": 1}, hidden=(8,))
    train("panda+weighted_pose+sincos", small, tmp_path, progress=False, logger="none")
    (tmp_path / "eval-held-out.json").write_text("{}")  # an evaluation of the old run
    with pytest.raises(CheckpointError, match=r"already holds a run \(checkpoint.pt, config.json, metrics.csv, curves.png, eval.json\): resume it"):
        train("panda+weighted_pose+sincos", small, tmp_path, progress=False, logger="none")
    train("panda+weighted_pose+sincos", small.replace(steps=3 * 16 * 2), tmp_path, resume=tmp_path, progress=False, logger="none")
    assert load_checkpoint(tmp_path).progress["steps"] == 3 * 16 * 2
    train("dobot_cr5+weighted_pose+sincos", small, tmp_path, overwrite=True, progress=False, logger="none")
    assert load_checkpoint(tmp_path).robot["name"] == "dobot_cr5" and (tmp_path / "eval-held-out.json").is_file()
