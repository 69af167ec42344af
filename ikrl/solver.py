"""Batched inverse kinematics: damped least squares with adaptive damping and restarts.

:func:`solve` finds joint values that put the tip on each of many target poses at once.
Each iteration takes a Levenberg step on the pose error, using the analytic Jacobian
(:meth:`Chain.forward_kinematics_and_jacobian`, one pass per iteration):

* the error is the tip-to-target position difference and rotation vector, both in the
  base frame, matching the rows of :meth:`Chain.jacobian`;
* the step solves ``(J^T J + lambda I) dq = J^T e`` per target; the small ``dof x dof``
  system is solved in float64 with a Cholesky factorisation, so float32 chains do not
  fail at singular configurations (``lambda > 0`` keeps it positive definite);
* ``lambda`` adapts per target: it shrinks after a step that lowers the error and grows
  after one that does not, which is then undone;
* joint values are moved into their limits after every step (:meth:`Chain.into_limits`:
  bounded joints clamped, continuous joints wrapped), so limits hold throughout;
* an attempt ends after ``max_iters`` iterations, or earlier once the error stops falling
  (typically a local minimum at a singular configuration, where ``J^T e`` vanishes);
  unsolved targets restart with several candidates at once (in one batch), half from a
  random kick of their best point so far and half from fresh uniform joint values, and
  only those keep iterating.

Success is judged with :func:`ikrl.se3.pose_errors`, the definition the environment uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ikrl.chain import Chain
from ikrl.errors import ShapeError
from ikrl.se3 import error_and_distances, pose_errors

__all__ = ["SolveResult", "solve"]

_SEED_SALT = 0x1C5D_2B8E_9F41
_LAMBDA_START = 1e-2
_LAMBDA_MIN = 1e-9
_LAMBDA_MAX = 1e6
_SHRINK = 0.3
_GROW = 5.0
#: An attempt ends after this many iterations without a 1% drop in the squared error.
_PATIENCE = 6
_PROGRESS = 0.99
#: Standard deviation (radians or metres) of the kick that restarts a stuck row near its best point.
_KICK = 0.3


@dataclass(frozen=True)
class SolveResult:
    """Per target: the joint values found and how good they are."""

    q: Tensor  #: [N, dof] joint values, within the limits
    success: Tensor  #: [N] bool: within both tolerances
    position_error: Tensor  #: [N] metres
    rotation_error: Tensor  #: [N] radians
    iterations: Tensor  #: [N] int64: iterations used, restarts included

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean()) if self.success.numel() else 1.0


def solve(
    chain: Chain,
    targets: Tensor,
    *,
    starts: Tensor | None = None,
    tol_pos: float = 1e-3,
    tol_rot: float = math.radians(1.0),
    max_iters: int = 60,
    restarts: int = 5,
    candidates: int = 8,
    seed: int = 0,
) -> SolveResult:
    """Joint values that reach ``targets`` (``[N, 4, 4]`` poses of the tip in the base frame).

    ``starts`` (``[N, dof]``) are the initial joint values; by default, and for every
    restart, they are drawn uniformly within the limits from the solver's own random
    stream, derived from ``seed``. A target counts as solved when its position error is under ``tol_pos``
    (metres) and its rotation error under ``tol_rot`` (radians); each attempt has
    ``max_iters`` iterations, and unsolved targets get up to ``restarts`` more rounds of
    ``candidates`` parallel attempts each. ``iterations`` counts every candidate's.
    The best joint values found are returned for unsolved targets too, flagged as failures.
    """
    targets = _check_targets(chain, targets)
    n = targets.shape[0]
    # The solver's own stream: a plain manual_seed(seed) would reproduce the draws of anyone
    # who made their targets from the same seed, starting the solver on the answers.
    generator = torch.Generator(device=chain.device).manual_seed((seed * 1_000_003 + _SEED_SALT) % 2**63)
    if starts is None:
        q = chain.random_joints(n, generator)
    else:
        if tuple(starts.shape) != (n, chain.dof):
            raise ShapeError(f"starts must have shape ({n}, {chain.dof}) for {n} targets; got {tuple(starts.shape)}")
        q = chain.into_limits(starts.to(device=chain.device, dtype=chain.dtype))

    best_q = q.clone()
    best_pos = torch.full((n,), math.inf, dtype=chain.dtype, device=chain.device)
    best_rot = torch.full_like(best_pos, math.inf)
    iterations = torch.zeros(n, dtype=torch.int64, device=chain.device)
    unsolved = torch.arange(n, device=chain.device)
    rows = unsolved  # the target of each candidate row
    for attempt in range(restarts + 1):
        if attempt > 0:
            # Each unsolved target gets ``candidates`` new starts at once, in one batch. Stuck
            # rows usually sit in a local minimum at a singular configuration near a solution:
            # half the candidates kick the best point found, the others start anew.
            rows = unsolved.repeat_interleave(candidates)
            kick = torch.randn(len(rows), chain.dof, generator=generator, device=generator.device, dtype=torch.float64)
            kicked = chain.into_limits(best_q[rows] + (_KICK * kick).to(chain.dtype))
            fresh = chain.random_joints(len(rows), generator)
            q = torch.where((torch.arange(len(rows), device=rows.device) % 2 == 0)[:, None], kicked, fresh)
        q, pos, rot, used = _attempt(chain, q, targets[rows], tol_pos, tol_rot, max_iters)
        # Keep each target's best candidate (solved ones first, then the smallest error).
        score = torch.where((pos < tol_pos) & (rot < tol_rot), -1.0, (pos + rot).double())
        best_score = torch.full((n,), math.inf, dtype=torch.float64, device=chain.device)
        best_score.scatter_reduce_(0, rows, score, reduce="amin")
        winner = torch.full((n,), -1, dtype=torch.int64, device=chain.device)
        is_best = score == best_score[rows]
        winner.scatter_(0, rows[is_best], torch.nonzero(is_best).squeeze(-1))
        iterations.scatter_add_(0, rows, used)
        chosen = winner[unsolved]
        better = (pos[chosen] + rot[chosen]) < (best_pos[unsolved] + best_rot[unsolved])
        best_q[unsolved] = torch.where(better[:, None], q[chosen], best_q[unsolved])
        best_pos[unsolved] = torch.where(better, pos[chosen], best_pos[unsolved])
        best_rot[unsolved] = torch.where(better, rot[chosen], best_rot[unsolved])
        unsolved = unsolved[~((best_pos[unsolved] < tol_pos) & (best_rot[unsolved] < tol_rot))]
        if len(unsolved) == 0:
            break
    position, rotation = pose_errors(chain.forward_kinematics(best_q), targets)
    success = (position < tol_pos) & (rotation < tol_rot)
    return SolveResult(best_q, success, position, rotation, iterations)


def _attempt(
    chain: Chain, q: Tensor, targets: Tensor, tol_pos: float, tol_rot: float, max_iters: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Up to ``max_iters`` damped steps from ``q``; rows stop once solved.

    Returns the final joint values, position and rotation errors, and iterations used.
    """
    n = q.shape[0]
    pose, jac = chain.forward_kinematics_and_jacobian(q)
    error, position, rotation = _error(pose, targets)
    cost = (error * error).sum(-1)
    damping = torch.full((n,), _LAMBDA_START, dtype=torch.float64, device=q.device)
    used = torch.zeros(n, dtype=torch.int64, device=q.device)
    active = torch.nonzero(~((position < tol_pos) & (rotation < tol_rot))).squeeze(-1)
    stalled = torch.zeros(n, dtype=torch.int64, device=q.device)
    for _ in range(max_iters):
        if len(active) == 0:
            break
        q_active = q[active]
        step = _held_step(chain, q_active, jac[active].double(), error[active].double(), damping[active])
        proposal = chain.into_limits(q_active + step.to(q.dtype))
        new_pose, new_jac = chain.forward_kinematics_and_jacobian(proposal)
        new_error, new_position, new_rotation = _error(new_pose, targets[active])
        new_cost = (new_error * new_error).sum(-1)
        better = torch.isfinite(new_cost) & (new_cost < cost[active])
        keep = better[:, None]
        q[active] = torch.where(keep, proposal, q_active)
        jac[active] = torch.where(keep[..., None], new_jac, jac[active])
        error[active] = torch.where(keep, new_error, error[active])
        position[active] = torch.where(better, new_position, position[active])
        rotation[active] = torch.where(better, new_rotation, rotation[active])
        # Progress of less than 1% counts towards giving up this attempt.
        progress = better & (new_cost < _PROGRESS * cost[active])
        stalled[active] = torch.where(progress, 0, stalled[active] + 1)
        cost[active] = torch.where(better, new_cost, cost[active])
        damping[active] = torch.where(better, damping[active] * _SHRINK, damping[active] * _GROW).clamp(
            _LAMBDA_MIN, _LAMBDA_MAX
        )
        used[active] += 1
        # Stop rows that are solved, or stuck (a local minimum: better to restart elsewhere).
        done = (position[active] < tol_pos) & (rotation[active] < tol_rot) | (stalled[active] >= _PATIENCE)
        active = active[~done]
    return q, position, rotation, used


def _held_step(chain: Chain, q: Tensor, jac: Tensor, error: Tensor, damping: Tensor) -> Tensor:
    """The damped step ``(J^T J + lambda I)^-1 J^T e`` (float64), with joints held that sit
    at a limit and would be pushed past it: their columns are dropped and the step re-solved,
    so the other joints still make the most of the step (a clamped step would not)."""
    step = _damped_step(jac, error, damping)
    held = ((q <= chain.lower) & (step < 0)) | ((q >= chain.upper) & (step > 0))
    if bool(held.any()):
        free = (~held).to(jac.dtype)
        step = _damped_step(jac * free.unsqueeze(-2), error, damping) * free
    return step


def _damped_step(jac: Tensor, error: Tensor, damping: Tensor) -> Tensor:
    jt = jac.transpose(-1, -2)
    eye = torch.eye(jac.shape[-1], dtype=jac.dtype, device=jac.device)
    factor, _ = torch.linalg.cholesky_ex(jt @ jac + damping[:, None, None] * eye)
    return torch.cholesky_solve(jt @ error.unsqueeze(-1), factor).squeeze(-1)


def _error(pose: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The error ``[N, 6]`` the steps reduce (position difference and rotation vector from
    tip to target, base frame), with the position and rotation errors of :func:`pose_errors`."""
    twist, position, rotation = error_and_distances(pose, targets)
    # The twist's rotation part is in the tip frame: turn it into the base frame.
    turn = (pose[:, :3, :3] @ twist[:, 3:].unsqueeze(-1)).squeeze(-1)
    return torch.cat([targets[:, :3, 3] - pose[:, :3, 3], turn], -1), position, rotation


def _check_targets(chain: Chain, targets: Tensor) -> Tensor:
    if not isinstance(targets, Tensor) or targets.dim() != 3 or tuple(targets.shape[1:]) != (4, 4):
        shape = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
        raise ShapeError(f"targets must be poses of shape (N, 4, 4); got {shape}")
    return targets.to(device=chain.device, dtype=chain.dtype)
