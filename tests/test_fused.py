"""The compiled pose error against the tensor reference in ikrl.kinematics.se3."""

from __future__ import annotations

import math

import pytest
import torch

from ikrl.errors import BadParameterError, ShapeError
from ikrl.kinematics import fused, se3


def _pairs(dtype: torch.dtype, n: int = 3000) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random current poses, and targets at twists with tiny, ordinary and near-pi rotations."""
    g = torch.Generator().manual_seed(0)
    xi = torch.randn(n, 6, generator=g, dtype=torch.float64)
    xi[: n // 3, 3:] *= 1e-5
    w = xi[n // 3 : 2 * n // 3, 3:]
    xi[n // 3 : 2 * n // 3, 3:] = w / w.norm(dim=-1, keepdim=True) * (math.pi - 1e-3)
    current = se3.se3_exp(torch.randn(n, 6, generator=g, dtype=torch.float64))
    target = current @ se3.se3_exp(xi)
    return current.to(dtype), target.to(dtype), xi


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_agrees_with_the_float64_reference(dtype: torch.dtype, tol: float) -> None:
    current, target, _ = _pairs(dtype)
    twist, position, rotation = fused.error_and_distances(current, target)
    assert twist.dtype == position.dtype == rotation.dtype == dtype
    ref_twist, ref_position, ref_rotation = se3.error_and_distances(current.double(), target.double())
    assert (position.double() - ref_position).abs().max() < tol
    assert (rotation.double() - ref_rotation).abs().max() < tol * 10
    assert (twist.double() - ref_twist).abs().max() < tol * 100


def test_twist_carries_the_current_pose_onto_the_target() -> None:
    current, target, xi = _pairs(torch.float64)
    twist, _, rotation = fused.error_and_distances(current, target)
    assert torch.allclose(current @ se3.se3_exp(twist), target, atol=1e-9)
    angle = xi[:, 3:].norm(dim=-1)
    within = angle < math.pi  # the rows whose twist is itself the log (angles above pi wrap)
    assert torch.allclose(rotation[within], angle[within], atol=1e-9)


def test_keeps_leading_shape_and_matches_the_tensor_path_at_identity() -> None:
    current = torch.eye(4).expand(2, 3, 4, 4)
    twist, position, rotation = fused.error_and_distances(current, current.clone())
    assert twist.shape == (2, 3, 6) and position.shape == rotation.shape == (2, 3)
    assert twist.abs().max() == 0 and position.abs().max() == 0 and rotation.abs().max() == 0


def test_refuses_what_needs_a_gradient_or_mismatches() -> None:
    pose = torch.eye(4).expand(5, 4, 4).clone().requires_grad_()
    assert not fused.usable(pose)
    with torch.no_grad():
        assert fused.usable(pose)
    with pytest.raises(BadParameterError, match="need no gradient; use ikrl.se3.error_and_distances"):
        fused.error_and_distances(pose, pose.detach())
    with pytest.raises(BadParameterError, match="same shape and dtype"):
        fused.error_and_distances(torch.eye(4), torch.eye(4).double())
    with pytest.raises(ShapeError, match=r"current must have shape \(\.\.\., 4, 4\)"):
        fused.error_and_distances(torch.eye(3), torch.eye(3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_moved_joints_are_the_torch_clamps_bit_for_bit(dtype: torch.dtype) -> None:
    import ikrl_robots

    from ikrl.kinematics.protocol import into_limits

    chain = ikrl_robots.load("panda", dtype=dtype)  # bounded joints only
    g = torch.Generator().manual_seed(4)
    n = fused._MOVE_PARALLEL_FROM  # the parallel loop (below it, the serial one)
    q = chain.lower + (chain.upper - chain.lower) * torch.rand(n, chain.dof, generator=g, dtype=dtype)
    q[:50] = chain.upper  # at a limit, pushed past it
    action = 0.3 * torch.randn(n, chain.dof, generator=g, dtype=dtype)
    max_delta = torch.linspace(0.05, 0.2, chain.dof, dtype=dtype)
    expected = into_limits(chain, q + torch.clamp(action, -max_delta, max_delta))
    for rows in (slice(None), slice(0, 5)):  # parallel, serial
        moved = fused.moved_joints(q[rows], action[rows], max_delta, chain.lower, chain.upper)
        assert moved is not None and torch.equal(moved, expected[rows])
    action[7, 2] = float("nan")
    assert fused.moved_joints(q, action, max_delta, chain.lower, chain.upper) is None


def test_moved_joints_refuse_what_they_cannot_do() -> None:
    q, limit = torch.zeros(2, 3), torch.ones(3)
    message = r"^moved_joints takes q and action \[N, dof\] and max_delta, lower, upper \[dof\] of one dtype"
    with pytest.raises(BadParameterError, match=message):
        fused.moved_joints(q, q.double(), limit, -limit, limit)
    with pytest.raises(BadParameterError, match=message):
        fused.moved_joints(q, q.clone().requires_grad_(), limit, -limit, limit)
    with pytest.raises(BadParameterError, match=message):
        fused.moved_joints(q, torch.zeros(2, 4), limit, -limit, limit)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_step_outcome_is_the_pose_error_and_the_torch_flags(dtype: torch.dtype) -> None:
    current, target, _ = _pairs(dtype, n=900)
    # Some arms exactly at the tolerances (as rounded to the dtype), some just inside.
    position_tolerance, rotation_tolerance = 0.005, math.radians(2.0)
    current[:100] = target[:100] = torch.eye(4, dtype=dtype)
    target[:50, 0, 3] = position_tolerance
    target[50:100, 0, 3] = torch.tensor(position_tolerance, dtype=dtype).nextafter(torch.tensor(0.0, dtype=dtype))
    step_count = torch.randint(0, 100, (900, 1), generator=torch.Generator().manual_seed(1))
    for rows in (slice(None), slice(0, 60), slice(40, 140)):  # parallel, serial, serial
        c, t, steps = current[rows], target[rows], step_count[rows]
        out = fused.step_outcome(c, t, steps, position_tolerance, rotation_tolerance, 100)
        twist, position, rotation = fused.error_and_distances(c, t)
        assert torch.equal(out.twist, twist) and torch.equal(out.position, position.unsqueeze(-1))
        assert torch.equal(out.rotation, rotation.unsqueeze(-1))
        success = (out.position < position_tolerance) & (out.rotation < rotation_tolerance)  # as the torch path
        assert torch.equal(out.terminated, success) and out.terminated.dtype == torch.bool
        assert torch.equal(out.step_count, steps + 1)
        assert torch.equal(out.truncated, steps + 1 >= 100) and torch.equal(out.done, success | (steps + 1 >= 100))
    flags = fused.step_outcome(current[:100], target[:100], step_count[:100], position_tolerance, rotation_tolerance, 100)
    assert not flags.terminated[:50].any() and flags.terminated[50:100].all()  # at the tolerance is not under it


def test_step_outcome_refuses_what_it_cannot_do() -> None:
    pose, steps = torch.eye(4).expand(3, 4, 4), torch.zeros(3, 1, dtype=torch.int64)
    message = r"^step_outcome takes poses current and target \[N, 4, 4\] of one dtype and step_count int64 \[N, 1\]; got"
    with pytest.raises(BadParameterError, match=message + r".*step_count \(3,\) torch.int64"):
        fused.step_outcome(pose, pose, steps.flatten(), 0.01, 0.01, 10)
    with pytest.raises(BadParameterError, match=message + r".*step_count \(3, 1\) torch.float32"):
        fused.step_outcome(pose, pose, steps.float(), 0.01, 0.01, 10)
    with pytest.raises(BadParameterError, match=message + r" current \(3, 4, 4\) torch.float32, target \(3, 4, 4\) torch.float64"):
        fused.step_outcome(pose, pose.double(), steps, 0.01, 0.01, 10)
    with pytest.raises(BadParameterError, match="need no gradient; use ikrl.se3.error_and_distances"):
        fused.step_outcome(pose.clone().requires_grad_(), pose, steps, 0.01, 0.01, 10)
