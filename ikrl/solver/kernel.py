"""The solver's compiled path: the same damped least squares, one target at a time, in numba.

At small batches :func:`ikrl.solve`'s tensor path is bound by per-operation overhead: an
iteration of a few dozen torch operations costs about the same for one row as for a
thousand (~0.3 ms on a CPU), and a hard target needs hundreds of iterations. Here the whole
search for a target runs as compiled code (numba, ``cache=True``: compiled once per machine,
then loaded from ``__pycache__``): forward kinematics and the Jacobian of a :class:`Chain`
from its precomputed coefficients, the error, the step with held joints solved by a
Cholesky factorisation, the adaptive damping, and the candidate queue of the tensor path in
the same order (given starts, seed-table neighbours, then turned, fresh, kicked and fresh
starts). An iteration costs about a microsecond, so a target takes tens of microseconds.

Everything here runs in float64 from the chain's exact constants; the answer is then put in
the chain's dtype, moved into its limits and judged by :func:`ikrl.se3.pose_errors` like the
tensor path's, so a success means the same thing on both paths. Random numbers (the seed
table, fresh and kicked starts) come from the solver's torch generator, so a seed repeats.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["PARALLEL_FROM", "RANK_BY_MATMUL_FROM", "search", "seed_table", "table_neighbours"]

import numba

from ikrl.kinematics.compiled import constants, fk_jac, for_rows, jit, row_dot, serial_and_parallel
from ikrl.solver.table import ROTATION_LENGTH, nearest_in_parts, pose_features

# The solver's constants (ikrl.solver.pool), repeated as plain floats for the compiled code.
_LAMBDA_START, _LAMBDA_MIN, _LAMBDA_MAX, _SHRINK, _GROW = 1e-2, 1e-9, 1e6, 0.3, 5.0
_PATIENCE, _PROGRESS, _KICK, _NEAR_LIMIT = 3, 0.99, 0.3, 0.05
#: Restarts drawn at once for a target its first candidates did not solve.
_RESTART_BLOCK = 16



# ---------------------------------------------------------------------------------- the error


@jit
def _error(tip, goal, error):  # pragma: no cover - compiled
    """The error twist the steps reduce (as ikrl.solver.pool._error) into ``error [6]``;
    returns (position error, rotation angle)."""
    for r in range(3):
        error[r] = goal[r, 3] - tip[r, 3]
    # Entries of R_goal R_tip^T, as scalars (no allocation): (r, c) = goal row r . tip row c.
    vx = 0.5 * (row_dot(goal, tip, 2, 1) - row_dot(goal, tip, 1, 2))
    vy = 0.5 * (row_dot(goal, tip, 0, 2) - row_dot(goal, tip, 2, 0))
    vz = 0.5 * (row_dot(goal, tip, 1, 0) - row_dot(goal, tip, 0, 1))
    sine = math.sqrt(vx * vx + vy * vy + vz * vz)
    cosine = 0.5 * (row_dot(goal, tip, 0, 0) + row_dot(goal, tip, 1, 1) + row_dot(goal, tip, 2, 2) - 1.0)
    angle = math.atan2(sine, cosine)
    scale = angle / sine if sine > 1e-12 else 1.0
    error[3], error[4], error[5] = vx * scale, vy * scale, vz * scale
    return math.sqrt(error[0] ** 2 + error[1] ** 2 + error[2] ** 2), angle


@jit
def _into_limits(q, lower, upper, continuous):  # pragma: no cover - compiled
    for j in range(q.shape[0]):
        if continuous[j]:
            y = (q[j] + math.pi) % (2 * math.pi) - math.pi
            q[j] = y - 2 * math.pi if y >= math.pi else y
        else:
            q[j] = min(max(q[j], lower[j]), upper[j])


@jit
def _cholesky_solve(a, b, x):  # pragma: no cover - compiled
    """Solve ``a x = b`` for symmetric positive definite ``a`` (overwritten); False if it is not."""
    n = a.shape[0]
    for j in range(n):
        d = a[j, j]
        for m in range(j):
            d -= a[j, m] * a[j, m]
        if not d > 0.0:
            return False
        d = math.sqrt(d)
        a[j, j] = d
        for i in range(j + 1, n):
            s = a[i, j]
            for m in range(j):
                s -= a[i, m] * a[j, m]
            a[i, j] = s / d
    for i in range(n):
        s = b[i]
        for m in range(i):
            s -= a[i, m] * x[m]
        x[i] = s / a[i, i]
    for i in range(n - 1, -1, -1):
        s = x[i]
        for m in range(i + 1, n):
            s -= a[m, i] * x[m]
        x[i] = s / a[i, i]
    return True


@jit
def _held_step(q, jac, error, damping, lower, upper, step, work):  # pragma: no cover - compiled
    """The damped step with held joints (as ikrl.solver.pool._held_step) into ``step``; False
    when the system cannot be solved (the step then counts as a bad one). ``work``: scratch
    space of at least ``2 dof + max(dof, 6)**2 + 12`` numbers."""
    dof = q.shape[0]
    free = work[0:dof]
    descent = work[dof : 2 * dof]
    size = dof if dof <= 6 else 6
    system = work[2 * dof : 2 * dof + size * size].reshape((size, size))
    y = work[2 * dof + size * size : 2 * dof + size * size + 6]
    rhs = work[2 * dof + size * size + 6 : 2 * dof + size * size + 12]
    for j in range(dof):
        g = 0.0
        for r in range(6):
            g += jac[r, j] * error[r]
        held = (q[j] <= lower[j]) if g < 0 else (q[j] >= upper[j])
        free[j] = 0.0 if (held and g != 0.0) else 1.0
        descent[j] = g * free[j]
    if dof <= 6:
        for a in range(dof):
            for b in range(dof):
                acc = 0.0
                for r in range(6):
                    acc += jac[r, a] * jac[r, b]
                system[a, b] = acc * free[a] * free[b] + (damping if a == b else 0.0)
        if not _cholesky_solve(system, descent, step):
            return False
    else:
        for a in range(6):
            for b in range(6):
                acc = 0.0
                for j in range(dof):
                    acc += jac[a, j] * jac[b, j] * free[j]
                system[a, b] = acc + (damping if a == b else 0.0)
        rhs[:] = error
        if not _cholesky_solve(system, rhs, y):
            return False
        for j in range(dof):
            acc = 0.0
            for r in range(6):
                acc += jac[r, j] * y[r]
            step[j] = acc * free[j]
    for j in range(dof):
        step[j] *= free[j]
        if not math.isfinite(step[j]):
            return False
    return True


# ---------------------------------------------------------------------------------- the search


@jit
def _refine(q, goal, max_iters, position_tolerance, rotation_tolerance, model):  # pragma: no cover - compiled
    """Iterate one candidate from ``q`` (changed in place) as the tensor path iterates a row;
    returns (position error, rotation error, iterations used)."""
    fixed, to_tip, mimic_matrix, mimic_offset, revolute, lower, upper, continuous = model
    dof = q.shape[0]
    tip, jac, error = np.empty((4, 4)), np.empty((6, dof)), np.empty(6)
    new_tip, new_jac, new_error = np.empty((4, 4)), np.empty((6, dof)), np.empty(6)
    step, proposal = np.empty(dof), np.empty(dof)
    fk_work = np.empty(9 * fixed.shape[0])
    step_work = np.empty(2 * dof + max(dof, 6) ** 2 + 12)
    fk_jac(q, fixed, to_tip, mimic_matrix, mimic_offset, revolute, tip, jac, fk_work)
    position, rotation = _error(tip, goal, error)
    if position < position_tolerance and rotation < rotation_tolerance:
        return position, rotation, 0
    cost = 0.0
    for r in range(6):
        cost += error[r] * error[r]
    damping, stalled, used = _LAMBDA_START, 0, 0
    while True:
        better = False
        if _held_step(q, jac, error, damping, lower, upper, step, step_work):
            for j in range(dof):
                proposal[j] = q[j] + step[j]
            _into_limits(proposal, lower, upper, continuous)
            fk_jac(proposal, fixed, to_tip, mimic_matrix, mimic_offset, revolute, new_tip, new_jac, fk_work)
            new_position, new_rotation = _error(new_tip, goal, new_error)
            new_cost = 0.0
            for r in range(6):
                new_cost += new_error[r] * new_error[r]
            if new_cost < cost:  # a NaN cost is never better
                better = True
                progress = new_cost < _PROGRESS * cost
                q[:] = proposal
                jac[:, :] = new_jac
                error[:] = new_error
                position, rotation, cost = new_position, new_rotation, new_cost
                stalled = 0 if progress else stalled + 1
        if not better:
            stalled += 1
        damping = min(max(damping * (_SHRINK if better else _GROW), _LAMBDA_MIN), _LAMBDA_MAX)
        used += 1
        if (position < position_tolerance and rotation < rotation_tolerance) or stalled >= _PATIENCE or used >= max_iters:
            return position, rotation, used


@jit
def _neighbours(goal, table_features, parts, out):  # pragma: no cover - compiled
    """Indices of the nearest seed-table entry of each of ``parts`` equal parts, nearest
    first, into ``out [parts]`` (as ikrl.solver.pool._seed_table_neighbours), from the
    table's features stored feature-major, ``[12, size]``: the inner loop runs along the
    table, one feature at a time, which the compiler turns into vector instructions."""
    wanted = np.empty(12)
    for r in range(3):
        wanted[r] = goal[r, 3]
        for c in range(3):
            wanted[3 + 3 * r + c] = ROTATION_LENGTH * goal[r, c]
    size = table_features.shape[1] // parts
    best = np.empty(parts)
    distance = np.empty(size)
    for part in range(parts):
        start = part * size
        distance[:] = 0.0
        for f in range(12):  # summed feature by feature, in order, for every entry at once
            feature, w = table_features[f, start : start + size], wanted[f]
            for i in range(size):
                diff = feature[i] - w
                distance[i] += diff * diff
        nearest = np.argmin(distance)  # the first of equal distances, as a strict < scan
        best[part] = distance[nearest]
        out[part] = start + nearest
    order = np.argsort(best)
    ranked = out[order].copy()
    out[:] = ranked


@jit
def _search(goal, first, table_q, table_features, parts, table, fresh, kicks, restart, best_q, best_score, max_iters, position_tolerance, rotation_tolerance, model):  # pragma: no cover - compiled
    """One target's candidates in the tensor path's order until one solves it: ``first``
    (given starts), the nearest entries of the first ``table`` of ``parts`` parts of the
    seed table (nearest first), then
    restarts ``restart``, ``restart + 1``... whose kinds cycle turned, fresh, kicked, fresh
    (``fresh [R, dof]``: uniform joint values, ``kicks [R, dof]``: normal draws, one row each).

    ``best_q`` and ``best_score`` (-1 for solved, else position + rotation error) carry the
    target's best over calls and are updated in place. Returns (solved, iterations,
    candidates tried).
    """
    fixed, to_tip, mimic_matrix, mimic_offset, revolute, lower, upper, continuous = model
    dof = best_q.shape[0]
    n_first = first.shape[0]
    table = table if table_q.shape[0] > 0 else 0
    index = np.zeros(max(parts, 1), dtype=np.int64)
    if table:
        _neighbours(goal, table_features, parts, index)
    total = n_first + table + fresh.shape[0]
    iterations = 0
    q = np.empty(dof)
    turns = np.empty(dof, dtype=np.bool_)
    for j in range(dof):
        span = upper[j] - lower[j]
        turns[j] = math.isfinite(span) and span >= 2 * math.pi - _NEAR_LIMIT
    for attempt in range(total):
        if attempt < n_first:
            q[:] = first[attempt]
        elif attempt < n_first + table:
            q[:] = table_q[index[attempt - n_first]]
        else:
            r = attempt - n_first - table
            kind = (restart + r) % 4
            if kind == 0:  # the best point with joints near a limit turned a full turn
                for j in range(dof):
                    shift = 0.0
                    if turns[j] and best_q[j] - lower[j] < _NEAR_LIMIT:
                        shift = 2 * math.pi
                    elif turns[j] and upper[j] - best_q[j] < _NEAR_LIMIT:
                        shift = -2 * math.pi
                    q[j] = best_q[j] + shift
                _into_limits(q, lower, upper, continuous)
            elif kind == 2:  # the best point kicked
                for j in range(dof):
                    q[j] = best_q[j] + _KICK * kicks[r, j]
                _into_limits(q, lower, upper, continuous)
            else:
                q[:] = fresh[r]
        position, rotation, used = _refine(q, goal, max_iters, position_tolerance, rotation_tolerance, model)
        iterations += used
        solved = position < position_tolerance and rotation < rotation_tolerance
        score = -1.0 if solved else position + rotation
        if score < best_score[0]:
            best_score[0] = score
            best_q[:] = q
        if solved:
            return True, iterations, attempt + 1
    return False, iterations, total


def _search_rows(goals, first, table_q, table_features, parts, table, fresh, kicks, restart, best_q, best_score, active, max_iters, position_tolerance, rotation_tolerance, model, solved, iterations, tried):  # pragma: no cover - compiled
    """:func:`_search` for every ``active`` target. Compiled twice (:data:`_SERIAL`,
    :data:`_PARALLEL`): ``prange`` is a plain ``range`` unless compiled parallel. Each
    target's search is independent, so the result does not depend on the number of threads."""
    for t in numba.prange(goals.shape[0]):
        if active[t]:
            ok, used, count = _search(
                goals[t], first[t], table_q, table_features, parts, table, fresh[t], kicks[t], restart,
                best_q[t], best_score[t : t + 1], max_iters, position_tolerance, rotation_tolerance, model,
            )
            solved[t] = ok
            iterations[t] += used
            tried[t] += count


_SERIAL, _PARALLEL = serial_and_parallel(_search_rows)
#: From this many targets on, the parallel loop (waking its threads costs more than a target).
PARALLEL_FROM = 32
#: From this many targets on, the seed table is ranked by one matrix product for all targets.
RANK_BY_MATMUL_FROM = 64


@jit
def _verdicts(q, goals, model, position, rotation):  # pragma: no cover - compiled
    """Position and rotation errors of the final joint values ``q [N, dof]`` (already in the
    chain's dtype and limits, held in float64) against ``goals [N, 4, 4]``: the numbers
    :func:`ikrl.se3.pose_errors` gives in float64 (tested to agree to 1e-12)."""
    fixed, to_tip, mimic_matrix, mimic_offset, revolute, lower, upper, continuous = model
    tip, jac, error = np.empty((4, 4)), np.empty((6, q.shape[1])), np.empty(6)
    work = np.empty(9 * fixed.shape[0])
    for t in range(q.shape[0]):
        fk_jac(q[t], fixed, to_tip, mimic_matrix, mimic_offset, revolute, tip, jac, work)
        position[t], rotation[t] = _error(tip, goals[t], error)


# ---------------------------------------------------------------------------------- the driver


#: Per chain: its seed tables by (size, parts, seed).
_TABLES: weakref.WeakKeyDictionary[Any, dict] = weakref.WeakKeyDictionary()


def seed_table(chain, table_size: int, parts: int, generator: torch.Generator, seed: int) -> tuple[np.ndarray, np.ndarray, Tensor]:
    """``(joint values [size, dof], pose features [12, size], the same features [size, 12] in
    float32)`` of the seed table the tensor path draws (``table_size`` rounded down to a
    multiple of ``parts``, its parts) from ``generator`` (seeded by ``seed``), cached per chain and (size, seed):
    drawing it again is what a small batch would otherwise spend most of its time on. The
    generator is left where drawing it would have left it."""
    from ikrl.kinematics.protocol import random_joints

    size = table_size - table_size % parts
    tables = _TABLES.setdefault(chain, {})
    key = (size, parts, seed)
    entry = tables.get(key)
    if entry is None:
        start_state = generator.get_state()
        table_q = random_joints(chain, size, generator)
        with torch.no_grad():
            pose = chain.forward_kinematics(table_q).double()
        features = pose_features(pose)
        # Feature-major for _neighbours; float32 (as the tensor path ranks) for large batches.
        entry = (
            table_q.double().cpu().numpy(), np.ascontiguousarray(features.cpu().numpy().T), features.float().cpu(),
            start_state, generator.get_state(),
        )  # fmt: skip
        tables[key] = entry
    else:
        generator.set_state(entry[4])
    return entry[0], entry[1], entry[2]


def table_neighbours(chain, targets: Tensor, table_size: int, parts: int, generator: torch.Generator, seed: int, count: int) -> np.ndarray:
    """``[N, count, dof]`` (float64): for each of ``targets [N, 4, 4]``, the joint values of
    the nearest entries of the first ``count`` of the :func:`seed_table`'s ``parts`` parts,
    nearest first, ranked as the tensor path ranks them (float32, one matrix product)."""
    table_q, _, features = seed_table(chain, table_size, parts, generator, seed)
    index = nearest_in_parts(features, pose_features(targets.detach()).float(), parts)[:, :count]
    return table_q[index.numpy()]


def search(
    chain,
    targets: Tensor,
    first: Tensor | None,
    table_size: int,
    parts: int,
    generator: torch.Generator,
    seed: int,
    position_tolerance: float,
    rotation_tolerance: float,
    max_iters: int,
    candidates: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Every target's search, compiled: ``(q [N, dof], success [N], position and rotation
    errors [N], iterations [N], attempts [N])``, joint values and errors in the chain's dtype.
    ``first [N, K, dof]`` are given starts (None: none)."""
    from ikrl.kinematics.protocol import into_limits, random_joints

    model = constants(chain)
    n, dof = targets.shape[0], chain.dof
    if table_size:
        table_q, features, _ = seed_table(chain, table_size, parts, generator, seed)
    else:
        table_q, features = np.zeros((0, dof)), np.zeros((12, 0))
    goals = targets.detach().double().cpu().numpy()
    starts = first.detach().double().cpu().numpy() if first is not None else np.zeros((n, 0, dof))
    starts = np.ascontiguousarray(starts[:, :candidates])
    table = min(parts if table_size else 0, candidates - starts.shape[1])
    restarts = candidates - starts.shape[1] - table
    if table and n >= RANK_BY_MATMUL_FROM:
        # Many targets: the table ranked for all of them at once, in one matrix product, is a
        # fraction of one scan per target; the neighbours then join the given starts, in the
        # same place in each target's queue.
        neighbours = table_neighbours(chain, targets, table_size, parts, generator, seed, table)
        starts = np.ascontiguousarray(np.concatenate([starts, neighbours], axis=1))
        table = 0
    q_out = np.zeros((n, dof))
    best_score = np.full(n, np.inf)
    solved = np.zeros(n, dtype=np.bool_)
    iterations = np.zeros(n, dtype=np.int64)
    attempts = np.zeros(n, dtype=np.int64)
    none = np.zeros((n, 0, dof))
    _rows(n)(
        goals, starts, table_q if table else np.zeros((0, dof)), features if table else np.zeros((12, 0)), parts, table,
        none, none, 0, q_out, best_score, np.ones(n, dtype=np.bool_), max_iters, position_tolerance, rotation_tolerance,
        model, solved, iterations, attempts,
    )  # fmt: skip
    done = 0
    # Restarts are drawn in blocks, only for the targets still unsolved (most never need one).
    while done < restarts and not solved.all():
        left = np.nonzero(~solved)[0]
        count = min(_RESTART_BLOCK, restarts - done)
        fresh = random_joints(chain, len(left) * count, generator).double().cpu().numpy().reshape(len(left), count, dof)
        kicks = torch.randn(len(left), count, dof, generator=generator, device=generator.device, dtype=torch.float64).cpu().numpy()
        sub_q, sub_score, sub_solved = q_out[left], best_score[left], solved[left]
        sub_iterations, sub_attempts = iterations[left], attempts[left]
        _rows(len(left))(
            goals[left], np.zeros((len(left), 0, dof)), np.zeros((0, dof)), np.zeros((12, 0)), 1, 0, fresh, kicks, done,
            sub_q, sub_score, np.ones(len(left), dtype=np.bool_), max_iters, position_tolerance, rotation_tolerance,
            model, sub_solved, sub_iterations, sub_attempts,
        )  # fmt: skip
        q_out[left], best_score[left], solved[left] = sub_q, sub_score, sub_solved
        iterations[left], attempts[left] = sub_iterations, sub_attempts
        done += count
    # The answer in the chain's dtype and limits, judged as it will be used. Every candidate
    # stayed inside the limits, which are the chain dtype's (rounded inward): rounding to that
    # dtype keeps a bounded joint inside them (the clip only guards), a continuous one may
    # round up to pi and is wrapped.
    lower, upper, continuous = model[5:]
    dtype = np.float32 if chain.dtype == torch.float32 else np.float64
    q = torch.from_numpy(np.clip(q_out.astype(dtype), lower.astype(dtype), upper.astype(dtype)))
    if continuous.any():
        q = into_limits(chain, q)
    position, rotation = np.empty(n), np.empty(n)
    _verdicts(q.numpy().astype(np.float64), goals, model, position, rotation)
    # Reported in the chain's dtype, and judged on what is reported (as the tensor path's).
    position, rotation = position.astype(dtype), rotation.astype(dtype)
    success = (position < position_tolerance) & (rotation < rotation_tolerance)
    return (
        q, torch.from_numpy(success), torch.from_numpy(position), torch.from_numpy(rotation),
        torch.from_numpy(iterations), torch.from_numpy(attempts),
    )  # fmt: skip


def _rows(count: int):
    """The serial or the parallel search loop for ``count`` targets."""
    return for_rows(count, _SERIAL, _PARALLEL, PARALLEL_FROM)

