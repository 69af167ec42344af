"""Batched inverse kinematics: damped least squares over a pool of candidate starts.

:func:`solve` finds joint values that put the tip on each of many target poses at once.

**The step.** Each iteration takes a Levenberg step on the pose error with the analytic
Jacobian (``chain.forward_kinematics_and_jacobian``, one pass per iteration):

* the error is the tip-to-target position difference and the rotation vector of
  ``R_target R_tip^T``, both in the base frame, matching the rows of ``chain.jacobian``;
* the step solves the damped normal equations in float64, in
  joint space (``(J^T J + lambda I) dq = J^T e``) or, for arms with more than six joints, in
  task space (``dq = J^T (J J^T + lambda I)^-1 e``, the same step, a smaller system). So
  float32 chains do not fail at singular configurations: ``lambda > 0`` keeps the system
  positive definite, and a row whose solve fails anyway is rejected like a bad step;
* ``lambda`` adapts per row: it shrinks after a step that lowers the error and grows after
  one that does not, which is then undone;
* joints at a limit that the descent direction ``J^T e`` pushes past it are held (their
  columns dropped before the solve), and every step is moved into the limits
  (:func:`~ikrl.kinematics.protocol.into_limits`: bounded joints clamped, continuous joints wrapped), so limits
  hold throughout, not only at the end.

**The pool.** Every target has a queue of candidate starts: the given ``starts`` (or a
``warm_start``'s answer, a trained policy's rollout for instance), then seed-table neighbours (joint values drawn uniformly within
the limits, indexed by the pose they reach; the nearest entry of each part of the table),
then in turn: the target's best point with its joints stuck at a limit turned a full turn
(a joint of range ``[-3.14, 3.14]`` stuck at -3.13 misses solutions just inside +3.14),
fresh uniform joint values, a random kick of the best point, and fresh values again. A
batch of rows iterates together; a row ends when its target is solved, when it stalls (a
local minimum, typically at a limit or a singular configuration) or after ``max_iters``
iterations, and the rows are regrouped: finished rows leave, and unsolved targets get their
next candidates. When few targets are left, each gets many candidates at once (up to
:data:`_MIN_WIDTH` rows in all); once a target is solved, its other candidates stop. On a
CPU an iteration costs about the same for one row as for hundreds, so what this saves is
iterations run one after another.

Success is judged at the end with :func:`ikrl.se3.pose_errors`, the definition the
environment and the evaluation use: a result flagged a success is one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ikrl.errors import BadParameterError, JointInputError, NotAPoseError, ShapeError
from ikrl.kinematics.chain import Chain
from ikrl.kinematics.protocol import KinematicChain, into_limits, random_joints
from ikrl.kinematics.se3 import check_poses, pose_errors
from ikrl.solver.table import NEIGHBOURS, nearest_in_parts, pose_features
from ikrl.util.checks import check_int, check_number, check_seed

__all__ = ["SolveResult", "solve"]

_SEED_SALT = 0x1C5D_2B8E_9F41
_LAMBDA_START = 1e-2
_LAMBDA_MIN = 1e-9
_LAMBDA_MAX = 1e6
_SHRINK = 0.3
_GROW = 5.0
#: A row ends after this many iterations without a 1% drop in its squared error.
_PATIENCE = 3
_PROGRESS = 0.99
#: Standard deviation (radians or metres) of the kick that restarts near a target's best point.
_KICK = 0.3
#: Radians from a limit within which a joint that turns almost a full circle is turned over.
_NEAR_LIMIT = 0.05
#: Rows wanted in flight while few targets are left: each of them gets several candidates
#: at once (on a CPU, an iteration over a few hundred rows costs little more than over one).
_MIN_WIDTH = 1024
#: Rows are regrouped once this fraction (1/_REGROUP) of them has finished.
_REGROUP = 8
#: ``backend="auto"`` takes the compiled path up to this many targets: it is faster at every
#: batch size measured on a CPU (benchmarks/solve.py); the bound only keeps its float64
#: host copies of huge batches from doubling their memory.
COMPILED_UP_TO = 1_000_000
BACKENDS = ("auto", "compiled", "tensor")


@dataclass(frozen=True)
class SolveResult:
    """Per target: the joint values found and how good they are."""

    q: Tensor  #: [N, dof] joint values, within the limits
    success: Tensor  #: [N] bool: within both tolerances
    position_error: Tensor  #: [N] metres
    rotation_error: Tensor  #: [N] radians
    iterations: Tensor  #: [N] int64: iterations used, summed over every candidate tried
    attempts: Tensor  #: [N] int64: candidate starts tried

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean()) if self.success.numel() else 1.0

    def statistics(self, chain: KinematicChain) -> dict[str, float]:
        """Summary numbers of the batch: ``solved`` and ``targets`` (counts), ``within_limits``
        (1.0 when every joint value, read in float64, lies inside ``chain``'s float64 limits),
        position errors (metres) and rotation errors (radians), median and max, iterations
        (mean, max) and candidate starts (mean) per target."""
        position, rotation = self.position_error.double(), self.rotation_error.double()
        empty = not self.success.numel()
        exact = chain.to(device=self.q.device, dtype=torch.float64)
        q = self.q.detach().double()
        inside = bool(((q >= exact.lower) & (q <= exact.upper)).all())
        return {
            "solved": int(self.success.sum()),
            "targets": int(self.success.numel()),
            "within_limits": float(inside),
            "position_error_median": math.nan if empty else float(position.median()),
            "position_error_max": math.nan if empty else float(position.max()),
            "rotation_error_median": math.nan if empty else float(rotation.median()),
            "rotation_error_max": math.nan if empty else float(rotation.max()),
            "iterations_mean": math.nan if empty else float(self.iterations.double().mean()),
            "iterations_max": math.nan if empty else int(self.iterations.max()),
            "attempts_mean": math.nan if empty else float(self.attempts.double().mean()),
        }


def solve(
    chain: KinematicChain,
    targets: Tensor,
    *,
    starts: Tensor | None = None,
    warm_start: Callable[[Tensor], Tensor] | None = None,
    position_tolerance: float = 1e-3,
    rotation_tolerance: float = math.radians(1.0),
    max_iters: int = 15,
    restarts: int = 200,
    seeds: int = 2048,
    seed: int = 0,
    backend: str = "auto",
) -> SolveResult:
    """Joint values that reach ``targets`` (``[N, 4, 4]`` poses of the tip in the base frame).

    Args:
        starts: ``[N, dof]`` first candidate of each target, or ``[N, K, dof]``: its first K
            candidates, tried before the seed table (moved into the limits).
        warm_start: called once with each target's first candidate ``[N, dof]`` (the first of
            ``starts``, else its nearest seed-table entry), it returns the starts to refine,
            ``[N, dof]`` or ``[N, K, dof]`` like ``starts``: a trained policy's rollout, or a
            goal network's heads (:func:`ikrl.rl.warmstart.policy_starts`).
        position_tolerance, rotation_tolerance: a target is solved when its position error is under ``position_tolerance``
            (metres) and its rotation error under ``rotation_tolerance`` (radians).
        max_iters: iterations per candidate start.
        restarts: further candidates per target after the first (seed-table neighbours, then
            turned, kicked and fresh starts: see the module docstring); a target that none
            of them solves is reported as a failure.
        seeds: size of the seed table (0: no table, the first candidates are uniform).
        seed: of the solver's own random stream (seed table and restarts).
        backend: ``"compiled"`` (:mod:`ikrl.solver.kernel`: each target's search as compiled
            code, a :class:`~ikrl.kinematics.chain.Chain` on the CPU), ``"tensor"`` (batched
            torch operations: any chain, any device) or ``"auto"``: compiled where it applies.
            Both take the same steps in the same candidate order and judge success alike.

    Returns the best joint values found for every target, failures included (flagged).
    """
    targets = _check_targets(chain, targets)
    _check_settings(position_tolerance, rotation_tolerance, max_iters, restarts, seeds)
    check_seed("solve", seed)
    n = targets.shape[0]
    # The solver's own stream: a plain manual_seed(seed) would reproduce the draws of anyone
    # who made their targets from the same seed, starting the solver on the answers.
    generator = torch.Generator(device=chain.device).manual_seed((seed * 1_000_003 + _SEED_SALT) % 2**63)
    first = _start_queue(chain, starts, n, "starts must have") if starts is not None else None
    if _use_compiled(chain, n, backend):
        from ikrl.solver import kernel  # numba loads on first use, not with ikrl

        if warm_start is not None:
            if first is None and seeds:
                # The nearest entry of the table the search will use (cached per chain and seed).
                nearest = kernel.table_neighbours(chain, targets, seeds, min(NEIGHBOURS, seeds), generator, seed, 1)
                first = torch.from_numpy(nearest).to(chain.dtype)
            elif first is None:
                first = random_joints(chain, n, generator)[:, None]
                generator.manual_seed((seed * 1_000_003 + _SEED_SALT) % 2**63)  # as if nothing was drawn
            first = _start_queue(chain, warm_start(first[:, 0]), n, "warm_start must return joint values of")
        q, success, position, rotation, iterations, attempts = kernel.search(
            chain, targets, first, seeds, min(NEIGHBOURS, seeds), generator, seed, position_tolerance, rotation_tolerance, max_iters, 1 + restarts
        )
        return SolveResult(q, success, position, rotation, iterations, attempts)
    neighbours = _seed_table_neighbours(chain, targets, seeds, generator) if seeds and n else None
    if warm_start is not None and n:
        if first is None:
            first = neighbours[:, :1] if neighbours is not None else random_joints(chain, n, generator)[:, None]
            neighbours = neighbours[:, 1:] if neighbours is not None else None
        first = _start_queue(chain, warm_start(first[:, 0]), n, "warm_start must return joint values of")
    if first is not None:
        # Further starts of each target go before its seed-table neighbours in its queue.
        if first.shape[1] > 1:
            neighbours = first[:, 1:] if neighbours is None else torch.cat([first[:, 1:], neighbours], 1)
        first = first[:, 0]
    pool = _Pool(chain, targets, first, neighbours, generator, position_tolerance, rotation_tolerance, max_iters, 1 + restarts)
    pool.run()
    position, rotation = pose_errors(chain.forward_kinematics(pool.best_q), targets)
    success = (position < position_tolerance) & (rotation < rotation_tolerance)
    return SolveResult(pool.best_q, success, position, rotation, pool.iterations, pool.attempts)


# ---------------------------------------------------------------------------------- the pool


class _Pool:
    """The rows iterating together and the candidate queue of every target."""

    # Per-row state (set together by _set_rows): [R] or [R, ...] tensors, one row per candidate.
    target: Tensor
    q: Tensor
    goal: Tensor
    jac: Tensor
    error: Tensor
    cost: Tensor
    position: Tensor
    rotation: Tensor
    damping: Tensor
    stalled: Tensor
    used: Tensor
    active: Tensor

    #: Per-row state, in the order :meth:`_rows` builds it.
    _ROW_STATE = ("target", "q", "goal", "jac", "error", "cost", "position", "rotation", "damping", "stalled", "used", "active")

    def __init__(
        self,
        chain: KinematicChain,
        targets: Tensor,
        first: Tensor | None,
        neighbours: Tensor | None,
        generator: torch.Generator,
        position_tolerance: float,
        rotation_tolerance: float,
        max_iters: int,
        candidates: int,
    ) -> None:
        self.chain, self.targets, self.first, self.neighbours = chain, targets, first, neighbours
        self.generator = generator
        self.position_tolerance, self.rotation_tolerance, self.max_iters, self.candidates = position_tolerance, rotation_tolerance, max_iters, candidates
        n, device = targets.shape[0], chain.device
        # Placeholders until each target's first candidate finishes (every target gets one).
        if first is not None:
            self.best_q = first.clone()
        elif neighbours is not None:
            self.best_q = neighbours[:, 0].clone()
        else:
            self.best_q = into_limits(chain, torch.zeros(n, chain.dof, dtype=chain.dtype, device=device))
        self.best_score = torch.full((n,), math.inf, dtype=torch.float64, device=device)
        self.solved = torch.zeros(n, dtype=torch.bool, device=device)
        self.iterations = torch.zeros(n, dtype=torch.int64, device=device)
        self.attempts = torch.zeros(n, dtype=torch.int64, device=device)  # candidates handed out
        everyone = torch.arange(n, device=device)
        self._set_rows(self._rows(everyone, self._candidates(everyone, torch.zeros_like(everyone))))
        self.attempts += 1

    def run(self) -> None:
        while True:
            running = int(self.active.sum())
            # Regrouping costs about as much as an iteration: do it once an eighth of the
            # rows have finished, or all of them.
            regroup = running == 0 or len(self.active) - running >= max(1, len(self.active) // _REGROUP)
            if regroup and not self._regroup():
                return
            self._iterate()

    # ------------------------------------------------------------------ iterating

    def _iterate(self) -> None:
        chain, active = self.chain, self.active
        step = _held_step(chain, self.q, self.jac.double(), self.error.double(), self.damping)
        proposal = into_limits(chain, self.q + step.to(chain.dtype))
        pose, jac = chain.forward_kinematics_and_jacobian(proposal)
        error, position, rotation = _error(pose, self.goal)
        cost = (error * error).sum(-1)
        better = active & (cost < self.cost)  # a NaN cost is never better
        keep = better[:, None]
        self.q = torch.where(keep, proposal, self.q)
        self.jac = torch.where(keep[..., None], jac, self.jac)
        self.error = torch.where(keep, error, self.error)
        self.position = torch.where(better, position, self.position)
        self.rotation = torch.where(better, rotation, self.rotation)
        # Progress of less than 1% counts towards giving up this candidate.
        progress = better & (cost < _PROGRESS * self.cost)
        self.stalled = torch.where(progress, 0, self.stalled + 1)
        self.cost = torch.where(better, cost, self.cost)
        self.damping = (self.damping * torch.where(better, _SHRINK, _GROW)).clamp_(_LAMBDA_MIN, _LAMBDA_MAX)
        self.used += active
        done = self._solved_rows() | (self.stalled >= _PATIENCE) | (self.used >= self.max_iters)
        self.active = active & ~done

    def _solved_rows(self) -> Tensor:
        return (self.position < self.position_tolerance) & (self.rotation < self.rotation_tolerance)

    # ------------------------------------------------------------------ bookkeeping

    def _regroup(self) -> bool:
        """Fold finished rows into their targets' best results, drop them and the rows of
        targets now solved, and add the next candidates of unsolved targets. Returns whether
        any rows are left."""
        finished = ~self.active
        if bool(finished.any()):
            rows = torch.nonzero(finished).squeeze(-1)
            target = self.target[rows]
            solved = self._solved_rows()[rows]
            score = torch.where(solved, -1.0, (self.position[rows] + self.rotation[rows]).double())
            round_best = torch.full_like(self.best_score, math.inf).scatter_reduce(0, target, score, reduce="amin")
            # One winning row per target (any of equal score).
            is_best = score == round_best[target]
            winner = torch.full_like(self.iterations, -1).scatter(0, target[is_best], rows[is_best])
            improved = torch.nonzero(round_best < self.best_score).squeeze(-1)
            self.best_q[improved] = self.q[winner[improved]]
            self.best_score = torch.minimum(self.best_score, round_best)
            self.solved |= self.best_score < 0
        # Rows of targets now solved stop too; every dropped row's iterations are counted.
        drop = finished | self.solved[self.target]
        self.iterations.scatter_add_(0, self.target, torch.where(drop, self.used, 0))
        keep = torch.nonzero(~drop).squeeze(-1)
        # Unsolved targets with candidates left get rows: one each, or several each when
        # few are left (a batch of a few dozen rows costs about what one row does).
        in_flight = torch.bincount(self.target[keep], minlength=len(self.solved))
        left = torch.where(self.solved, 0, self.candidates - self.attempts)
        unsolved = int((left > 0).sum())
        want = max(1, _MIN_WIDTH // max(unsolved, 1))
        extra = torch.minimum((want - in_flight).clamp(min=0), left)
        target = torch.repeat_interleave(torch.arange(len(extra), device=extra.device), extra)
        rank = torch.arange(len(target), device=target.device) - torch.repeat_interleave(
            torch.cumsum(extra, 0) - extra, extra
        )
        index = self.attempts[target] + rank  # which candidate of its target each new row takes
        self.attempts += extra
        old = [getattr(self, name)[keep] for name in self._ROW_STATE]
        new = self._rows(target, self._candidates(target, index))
        self._set_rows([torch.cat([a, b]) for a, b in zip(old, new, strict=True)])
        return len(self.active) > 0

    def _set_rows(self, state: list[Tensor]) -> None:
        for name, value in zip(self._ROW_STATE, state, strict=True):
            setattr(self, name, value)

    def _rows(self, target: Tensor, q: Tensor) -> list[Tensor]:
        """The state of new rows starting at ``q`` for ``target`` (in :data:`_ROW_STATE` order)."""
        pose, jac = self.chain.forward_kinematics_and_jacobian(q)
        goal = self.targets[target]
        error, position, rotation = _error(pose, goal)
        zeros = torch.zeros_like(target)
        active = ~((position < self.position_tolerance) & (rotation < self.rotation_tolerance))  # a start on target takes no iterations
        damping = torch.full((len(target),), _LAMBDA_START, dtype=torch.float64, device=q.device)
        return [target, q, goal, jac, error, (error * error).sum(-1), position, rotation, damping, zeros, zeros.clone(), active]

    def _candidates(self, target: Tensor, index: Tensor) -> Tensor:
        """Joint values of candidate ``index`` of each ``target``: the first start, then the
        seed-table neighbours, then in turn: the best point so far with its joints near a
        limit turned a full turn (:func:`_turned`), fresh uniform joint values, a random kick
        of the best point, fresh uniform joint values again."""
        chain = self.chain
        q = torch.empty(len(target), chain.dof, dtype=chain.dtype, device=chain.device)
        table = 0 if self.neighbours is None else self.neighbours.shape[1]
        offset = 0
        if self.first is not None:
            use = index == 0
            q[use] = self.first[target[use]]
            offset = 1
        if self.neighbours is not None and table:
            use = (index >= offset) & (index < offset + table)
            q[use] = self.neighbours[target[use], index[use] - offset]
        rest = torch.nonzero(index >= offset + table).squeeze(-1)
        if len(rest):
            kind = ((index[rest] - offset - table) % 4)[:, None]
            best = self.best_q[target[rest]]
            kick = torch.randn(len(rest), chain.dof, generator=self.generator, device=self.generator.device, dtype=torch.float64)
            kicked = into_limits(chain, best + (_KICK * kick).to(device=chain.device, dtype=chain.dtype))
            fresh = random_joints(chain, len(rest), self.generator)
            q[rest] = torch.where(kind == 0, _turned(chain, best), torch.where(kind == 2, kicked, fresh))
        return q


# ---------------------------------------------------------------------------------- pieces


def _use_compiled(chain: KinematicChain, n: int, backend: str) -> bool:
    """Whether ``n`` targets go to the compiled path (:mod:`ikrl.solver.kernel`): it needs a
    :class:`~ikrl.kinematics.chain.Chain` on the CPU."""
    if backend not in BACKENDS:
        raise BadParameterError(component="solve", parameter="backend", accepted=" or ".join(map(repr, BACKENDS)), value=backend)
    fits = isinstance(chain, Chain) and chain.device.type == "cpu"
    if backend == "compiled" and not fits:
        raise BadParameterError(
            f"solve: backend 'compiled' cannot run here: it runs a Chain on the CPU; got {type(chain).__name__} "
            f"on {chain.device}; use backend='tensor' or 'auto'"
        )
    return backend != "tensor" and fits and n > 0 and (backend == "compiled" or n <= COMPILED_UP_TO)


def _start_queue(chain: KinematicChain, starts: object, n: int, what: str) -> Tensor:
    """``starts`` (``[N, dof]``, or ``[N, K, dof]``: K candidates per target, in order) as an
    ``[N, K, dof]`` queue inside the limits."""
    shape = tuple(starts.shape) if isinstance(starts, Tensor) else type(starts).__name__
    if not isinstance(starts, Tensor) or not (
        tuple(starts.shape) == (n, chain.dof) or (starts.dim() == 3 and starts.shape[0] == n and starts.shape[1] >= 1 and starts.shape[2] == chain.dof)
    ):
        raise ShapeError(f"{what} shape ({n}, {chain.dof}) or ({n}, K, {chain.dof}) for {n} targets; got {shape}")
    if not starts.is_floating_point() or starts.is_meta:
        # Complex starts would lose their imaginary parts, bools and ints are no joint values.
        where = " on the meta device (no values)" if starts.is_meta else ""
        raise JointInputError(f"{what.split()[0]}: joint values must be a real floating-point tensor (float32 or float64); got {starts.dtype}{where}")
    queue = starts if starts.dim() == 3 else starts[:, None]
    finite = torch.isfinite(queue).flatten(1).all(-1)
    if not bool(finite.all()):
        # A NaN start would cost its target every attempt and come back as NaN joint values.
        raise JointInputError(f"{what.split()[0]}: the start of target {int(torch.nonzero(~finite)[0, 0])} has a value that is not finite")
    return into_limits(chain, queue.to(device=chain.device, dtype=chain.dtype))


def _turned(chain: KinematicChain, q: Tensor) -> Tensor:
    """``q`` with every joint that turns (almost) a full circle and sits near one of its
    limits moved a full turn towards the other one (then into the limits).

    Such a joint stuck at -3.13 of [-3.14, 3.14] points the link the same way as at
    +3.15: the solution it misses may lie just inside the other limit, which local steps
    from here cannot reach.
    """
    span = chain.upper - chain.lower  # inf for continuous joints
    turns = (span >= 2 * math.pi - _NEAR_LIMIT) & torch.isfinite(span)
    low = turns & (q - chain.lower < _NEAR_LIMIT)
    high = turns & (chain.upper - q < _NEAR_LIMIT)
    return into_limits(chain, q + 2 * math.pi * low.to(q.dtype) - 2 * math.pi * high.to(q.dtype))


def _seed_table_neighbours(chain: KinematicChain, targets: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """``[N, k, dof]``: for each target, the seed-table joint values whose poses are nearest
    to it in each of ``k`` parts of the table, nearest first (see :mod:`ikrl.solver.table`)."""
    k = min(NEIGHBOURS, size)
    size -= size % k
    table_q = random_joints(chain, size, generator)
    with torch.no_grad():
        # Ranking needs no float64: features in float32 halve the cost of the search.
        table = pose_features(chain.forward_kinematics(table_q)).float()
        index = nearest_in_parts(table, pose_features(targets).float(), k)
    return table_q[index]


def _held_step(chain: KinematicChain, q: Tensor, jac: Tensor, error: Tensor, damping: Tensor) -> Tensor:
    """The damped step (float64) with joints held that sit at a limit and that the descent
    direction ``J^T e`` pushes past it: their columns are dropped before the step is solved,
    so the other joints make the most of the step (a clamped step would not).

    Holding by the gradient's sign (the usual active-set rule of projected methods) needs one
    solve; holding by the step's own sign would need a second, for the rows held.
    """
    descent = (jac.transpose(-1, -2) @ error.unsqueeze(-1)).squeeze(-1)  # J^T e, [B, dof]
    held = torch.where(descent < 0, q <= chain.lower, q >= chain.upper) & (descent != 0)
    free = (~held).to(jac.dtype)
    # With F = diag(free): (J F)^T e = F J^T e, so the descent direction is reused.
    return _damped_step(jac * free.unsqueeze(-2), error, damping, descent * free) * free


def _damped_step(jac: Tensor, error: Tensor, damping: Tensor, descent: Tensor | None = None) -> Tensor:
    """``(J^T J + lambda I)^-1 J^T e``, solved in whichever of joint and task space is smaller
    (``descent``: ``J^T e`` if already known).

    The matrix is symmetric positive definite for ``lambda > 0``; ``solve_ex`` (LU) is a
    little faster than a Cholesky factorisation and solve for these small batched systems,
    and, like ``cholesky_ex``, never raises: a failed row gives non-finite values, whose
    cost is never "better", so the row's damping grows and it tries again.
    """
    rows, cols = jac.shape[-2:]
    jt = jac.transpose(-1, -2)
    if cols <= rows:
        if descent is None:
            descent = (jt @ error.unsqueeze(-1)).squeeze(-1)
        system = torch.baddbmm(damping[:, None, None] * _eye(cols, jac), jt, jac)
        return torch.linalg.solve_ex(system, descent.unsqueeze(-1))[0].squeeze(-1)
    system = torch.baddbmm(damping[:, None, None] * _eye(rows, jac), jac, jt)
    return (jt @ torch.linalg.solve_ex(system, error.unsqueeze(-1))[0]).squeeze(-1)


def _eye(n: int, like: Tensor) -> Tensor:
    return torch.eye(n, dtype=like.dtype, device=like.device)


def _error(pose: Tensor, goal: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The error ``[N, 6]`` the steps reduce (position difference and rotation vector of
    ``R_goal R_pose^T``, base frame) and the position and rotation errors.

    The rotation angle is ``atan2(|v|, (tr R - 1) / 2)`` with ``v`` the axis times
    ``sin(angle)``: the angle of :func:`ikrl.se3.pose_errors`, from fewer operations
    (this runs every iteration; the final verdict uses ``pose_errors`` itself).
    """
    offset = goal[:, :3, 3] - pose[:, :3, 3]
    relative = goal[:, :3, :3] @ pose[:, :3, :3].transpose(-1, -2)
    r = relative.reshape(-1, 9)
    v = 0.5 * torch.stack([r[:, 7] - r[:, 5], r[:, 2] - r[:, 6], r[:, 3] - r[:, 1]], -1)
    sine = torch.linalg.vector_norm(v, dim=-1)
    cosine = 0.5 * (r[:, 0] + r[:, 4] + r[:, 8] - 1.0)
    angle = torch.atan2(sine, cosine)
    # axis * angle; where the sine vanishes (angle 0 or pi) v itself is the best direction known.
    scale = torch.where(sine > 1e-12, angle / sine.clamp(min=1e-12), torch.ones_like(sine))
    return torch.cat([offset, v * scale[:, None]], -1), torch.linalg.vector_norm(offset, dim=-1), angle


def _check_targets(chain: KinematicChain, targets: Tensor) -> Tensor:
    if not isinstance(targets, Tensor) or targets.dim() != 3 or tuple(targets.shape[1:]) != (4, 4):
        shape = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
        raise ShapeError(f"targets must be poses of shape (N, 4, 4); got {shape}")
    if targets.dtype not in (torch.float32, torch.float64):
        raise NotAPoseError(f"solve: targets must be a float32 or float64 tensor of poses (N, 4, 4); got dtype {targets.dtype}")
    if targets.is_meta:
        raise NotAPoseError("solve: targets are on the meta device, which holds no values; give them on the CPU or the chain's device")
    # Checked in the caller's dtype, before any rounding: a pose that is not one would be
    # "solved" against a meaningless rotation error.
    check_poses(targets, "targets[{}]")
    converted = targets.to(device=chain.device, dtype=chain.dtype)
    if converted.dtype != targets.dtype and converted.numel():
        finite = torch.isfinite(converted).flatten(1).all(-1)
        if not bool(finite.all()):
            row = int(torch.nonzero(~finite)[0, 0])
            name = str(chain.dtype).removeprefix("torch.")
            raise NotAPoseError(
                f"solve: targets[{row}] does not fit the {name} chain (an entry overflows to inf in {name}); "
                f"give targets within +-{torch.finfo(chain.dtype).max:.3g} or solve with a float64 chain"
            )
    return converted


def _check_settings(position_tolerance: float, rotation_tolerance: float, max_iters: int, restarts: int, seeds: int) -> None:
    check_number("solve", "position_tolerance", position_tolerance, accepted="a positive finite number", low=0, low_open=True)
    check_number(
        "solve", "rotation_tolerance", rotation_tolerance, accepted="a number of radians in (0, pi] (math.radians(1) for 1 degree)",
        low=0, low_open=True, high=math.pi,
    )  # fmt: skip
    check_int("solve", "max_iters", max_iters, low=1)
    check_int("solve", "restarts", restarts, low=0)
    check_int("solve", "seeds", seeds, low=0, high=2**22)  # a larger seed table would not fit in memory
