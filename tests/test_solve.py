"""The batched solver: reachable targets solved within limits, unreachable ones reported as
failures, singular configurations in float32, the result's errors checked independently."""

from __future__ import annotations

import math

import pytest
import torch

import ikrl_robots
from ikrl.errors import ShapeError
from ikrl.se3 import pose_errors
from ikrl.solver import solve


def reachable(chain, n, seed=0):
    low, high = chain.bounds()
    generator = torch.Generator().manual_seed(seed)
    q = low + (high - low) * torch.rand(n, chain.dof, generator=generator, dtype=chain.dtype)
    return q, chain.forward_kinematics(q)


@pytest.mark.parametrize("robot", ["dobot_cr5", "panda", "ur5e"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_reachable_targets_are_solved_within_limits(robot, dtype):
    chain = ikrl_robots.load(robot, dtype=dtype)
    _, targets = reachable(chain, 100)
    result = solve(chain, targets, seed=1)
    assert result.success_rate >= 0.97  # the benchmark measures the full rate on 1,000
    assert ((result.q >= chain.lower) & (result.q <= chain.upper)).all()
    # The reported errors and flags are those of the returned joints, computed here again.
    position, rotation = pose_errors(chain.forward_kinematics(result.q), targets)
    torch.testing.assert_close(result.position_error, position)
    torch.testing.assert_close(result.rotation_error, rotation)
    assert torch.equal(result.success, (position < 1e-3) & (rotation < math.radians(1)))
    assert (result.iterations[result.success] >= 0).all() and result.q.dtype == dtype


def test_starts_at_the_answer_take_no_iterations():
    chain = ikrl_robots.load("panda", dtype=torch.float64)
    q, targets = reachable(chain, 10)
    result = solve(chain, targets, starts=q)
    assert result.success.all() and (result.iterations == 0).all()
    torch.testing.assert_close(result.q, q)


def test_unreachable_targets_are_failures_never_successes():
    chain = ikrl_robots.load("ur5e", dtype=torch.float64)
    _, targets = reachable(chain, 6)
    far = targets.clone()
    far[:3, :3, 3] *= 5.0  # five times as far from the base as any reachable pose
    result = solve(chain, far, restarts=1, candidates=2, seed=1)
    assert not result.success[:3].any()
    assert (result.position_error[:3] > 0.5).all()
    assert result.success[3:].float().mean() > 0.5


def test_singular_configurations_in_float32_do_not_fail():
    # The UR5e stretched straight up (and a wrist singularity): J loses rank.
    chain = ikrl_robots.load("ur5e", dtype=torch.float32)
    q = torch.tensor([[0.0, -math.pi / 2, 0.0, -math.pi / 2, 0.0, 0.0], [0.3, -1.0, 1.2, 0.4, 0.0, 0.2]])
    assert torch.linalg.svdvals(chain.jacobian(q)).min(-1).values.max() < 1e-3
    targets = chain.forward_kinematics(q)
    result = solve(chain, targets, starts=q + 0.05)
    assert torch.isfinite(result.q).all()
    assert result.success.all()


def test_continuous_joints_are_wrapped():
    from .conftest import TOY_ARM_URDF
    import ikrl

    chain = ikrl.load_chain(TOY_ARM_URDF, dtype=torch.float64)
    q, targets = reachable(chain, 20)
    result = solve(chain, targets, starts=q + torch.tensor([6.0, 0, 0, 0], dtype=torch.float64))
    assert result.success.all()
    assert ((result.q[:, 0] >= -math.pi) & (result.q[:, 0] < math.pi)).all()


def test_bad_inputs():
    chain = ikrl_robots.load("panda")
    with pytest.raises(ShapeError, match=r"targets must be poses of shape \(N, 4, 4\); got \(4, 4\)"):
        solve(chain, torch.eye(4))
    with pytest.raises(ShapeError, match=r"starts must have shape \(2, 7\) for 2 targets; got \(2, 6\)"):
        solve(chain, torch.eye(4).expand(2, 4, 4), starts=torch.zeros(2, 6))


def test_the_solver_does_not_start_on_answers_drawn_from_the_same_seed():
    chain = ikrl_robots.load("panda", dtype=torch.float64)
    _, targets = reachable(chain, 50, seed=0)
    result = solve(chain, targets, seed=0, restarts=0)
    assert (result.iterations > 0).all()  # no start was already a solution
