"""A :class:`~ikrl.kinematics.chain.Chain`'s kinematics as compiled code (numba), for callers
that need no gradient: the one copy of the compiled helpers the rest of ikrl shares.

A batched torch pass over the chain is a few dozen operations, each a sweep over the batch
with its own temporaries; below a few thousand rows the per-operation cost dominates, and the
Jacobian adds a stack of small products on top. Here one loop over the batch computes each
row's pose and Jacobian in float64 registers straight from the chain's exact constants
(numba, ``cache=True``: compiled once per machine, then loaded from ``__pycache__``), and
writes them into the output tensors in the chain's dtype.

* :func:`usable`: whether the compiled path may stand in for the tensor path (CPU, float32
  or float64, no gradient wanted);
* :func:`jacobian`: ``(pose [B, 4, 4], Jacobian [B, 6, dof])`` like
  :meth:`Chain.forward_kinematics_and_jacobian`, base frame, linear rows first;
* for other compiled code (the solver's kernel, :mod:`ikrl.kinematics.fused`): :data:`jit`,
  :func:`serial_and_parallel`, :func:`for_rows`, :func:`match_torch_threads`,
  :func:`constants`, :func:`fk_jac` (with its parts :func:`joint_values`,
  :func:`pose_and_columns` and :func:`columns_to_jacobian`),
  :func:`row_dot` and :func:`column_dot`; :func:`pose_defects` for the pose checks.
"""

from __future__ import annotations

import math
import types
import weakref
from collections.abc import Callable
from typing import Any

import numba
import numba.core.config as numba_config
import numpy as np
import torch
from torch import Tensor

__all__ = [
    "PARALLEL_FROM",
    "column_dot",
    "columns_to_jacobian",
    "constants",
    "fk_jac",
    "for_rows",
    "jacobian",
    "jit",
    "joint_values",
    "match_torch_threads",
    "pose_and_columns",
    "pose_defects",
    "row_dot",
    "serial_and_parallel",
    "usable",
]

#: How ikrl compiles: cached on disk, and releasing the GIL (other Python threads run on).
jit = numba.njit(cache=True, nogil=True)
#: The most threads numba's pool has (the cores, unless NUMBA_NUM_THREADS says fewer).
_MAX_THREADS = int(numba_config.NUMBA_NUM_THREADS)  # pyright: ignore[reportAttributeAccessIssue]
#: From this many rows on, the parallel loops (waking their threads costs more than a few rows).
PARALLEL_FROM = 256


def serial_and_parallel(function: Callable) -> tuple[Any, Any]:
    """``function`` (whose loop over rows is a ``numba.prange``) compiled twice: serial (the
    ``prange`` a plain ``range``, for small batches) and parallel, each with its own cache.

    numba's on-disk cache is keyed by the function's name and first line and the argument
    types, not by the compile options: two compilations of one function would share a cache
    entry, and whichever was compiled first would be loaded for both (parallel code with
    one thread, or a thread pool woken for three rows). The parallel build therefore
    compiles a copy of the function under its own name, ``<name>_parallel``.

    Examples:
        >>> serial, parallel = serial_and_parallel(_rows)  # this module's Jacobian loop
        >>> serial.py_func.__qualname__, parallel.py_func.__qualname__, parallel.targetoptions["parallel"]
        ('_rows', '_rows_parallel', True)
    """
    copy = types.FunctionType(
        function.__code__, function.__globals__, function.__name__ + "_parallel", function.__defaults__, function.__closure__
    )
    copy.__qualname__ = function.__qualname__ + "_parallel"
    copy.__doc__, copy.__module__ = function.__doc__, function.__module__
    return numba.njit(cache=True, nogil=True)(function), numba.njit(cache=True, nogil=True, parallel=True)(copy)


def for_rows(count: int, serial: Any, parallel: Any, parallel_from: int = PARALLEL_FROM) -> Any:
    """The build of :func:`serial_and_parallel` to run over ``count`` rows: ``serial`` below
    ``parallel_from`` rows (waking the threads would cost more), else ``parallel`` with as many
    threads as torch uses (:func:`match_torch_threads`)."""
    if count < parallel_from:
        return serial
    match_torch_threads()
    return parallel


def match_torch_threads() -> None:
    """Let numba's parallel loops use as many threads as torch is told to (ikrl's
    ``--threads`` options set torch's), within the threads numba's pool has."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), _MAX_THREADS)))


def usable(*tensors: Tensor) -> bool:
    """Whether the compiled code can stand in for the tensor path here: CPU tensors of float32
    or float64 of which none needs a gradient (in the current grad mode).

    Examples:
        >>> usable(torch.zeros(3)), usable(torch.zeros(3, requires_grad=True)), usable(torch.zeros(3, dtype=torch.int64))
        (True, False, False)
    """
    grad = torch.is_grad_enabled()
    return all(
        t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) and not (grad and t.requires_grad)
        for t in tensors
    )


# ---------------------------------------------------------------------------------- the chain


#: Per chain: its float64 constants in the order the compiled functions take them.
_CONSTANTS: weakref.WeakKeyDictionary[Any, tuple] = weakref.WeakKeyDictionary()


def constants(chain) -> tuple:
    """The chain's float64 constants for the compiled code, cached per chain: ``(fixed parts
    P_i of the joints' local transforms [n, 4, 4], last joint to tip [4, 4], mimic matrix
    [n, dof], mimic offsets [n], revolute flags [n], lower and upper limits [dof] (the
    chain's own, dtype-rounded inward), continuous flags [dof])``, from the coefficients of
    :func:`ikrl.kinematics.chain._precompute` (``P_i`` is the local transform at zero)."""
    model = _CONSTANTS.get(chain)
    if model is None:
        exact = chain._exact  # noqa: SLF001 - the compiled path reads the Chain's own constants
        n = exact["mimic_matrix"].shape[0]
        # At x = 0: const + 1 * (cos factor) (+ 0 * the others): P_i, turn or slide undone.
        fixed = exact["first_joint"].reshape(n, 4, 4) + exact["first_joint_k"].reshape(n, -1, 4, 4)[:, 0]
        model = (
            fixed.numpy().copy(),
            exact["to_tip"].numpy().copy(),
            exact["mimic_matrix"].numpy().copy(),
            exact["mimic_offset"].reshape(n).numpy().copy(),
            exact["revolute"].numpy().copy(),
            chain.lower.double().cpu().numpy().copy(),
            chain.upper.double().cpu().numpy().copy(),
            exact["continuous"].numpy().copy(),
        )
        _CONSTANTS[chain] = model
    return model


# ---------------------------------------------------------------------------------- compiled


@numba.njit(cache=True, nogil=True, inline="always")
def row_dot(a, b, r, c):  # pragma: no cover - compiled
    """Row ``r`` of ``a``'s rotation . row ``c`` of ``b``'s: ``(R_a R_b^T)[r, c]``, in float64."""
    return np.float64(a[r, 0]) * b[c, 0] + np.float64(a[r, 1]) * b[c, 1] + np.float64(a[r, 2]) * b[c, 2]


@numba.njit(cache=True, nogil=True, inline="always")
def column_dot(a, b, r, c):  # pragma: no cover - compiled
    """Column ``r`` of ``a``'s rotation . column ``c`` of ``b``'s: ``(R_a^T R_b)[r, c]``, in float64."""
    return np.float64(a[0, r]) * b[0, c] + np.float64(a[1, r]) * b[1, c] + np.float64(a[2, r]) * b[2, c]


@jit
def pose_defects(poses, tolerance, finite, off, bottom, det):  # pragma: no cover - compiled
    """Per pose of ``poses [N, 4, 4]`` (float32 or float64): whether every entry is finite
    into ``finite [N]``, the largest entry of ``|R^T R - I|`` into ``off [N]``, the largest of
    ``|bottom row - (0 0 0 1)|`` into ``bottom [N]`` and ``det R`` into ``det [N]``, in
    float64 (what :func:`ikrl.kinematics.se3.check_poses` judges). Returns whether every pose
    passes: finite, ``off`` and ``bottom`` within ``tolerance``, ``det`` not negative."""
    passes = True
    for p in range(poses.shape[0]):
        v = poses[p]
        ok = True
        for r in range(4):
            for c in range(4):
                ok = ok and math.isfinite(v[r, c])
        finite[p] = ok
        worst = 0.0
        for a in range(3):
            for b in range(3):
                worst = max(worst, abs(column_dot(v, v, a, b) - (1.0 if a == b else 0.0)))
        off[p] = worst
        bottom[p] = max(abs(np.float64(v[3, 0])), abs(np.float64(v[3, 1])), abs(np.float64(v[3, 2])), abs(np.float64(v[3, 3]) - 1.0))
        v00, v01, v02 = np.float64(v[0, 0]), np.float64(v[0, 1]), np.float64(v[0, 2])
        v10, v11, v12 = np.float64(v[1, 0]), np.float64(v[1, 1]), np.float64(v[1, 2])
        v20, v21, v22 = np.float64(v[2, 0]), np.float64(v[2, 1]), np.float64(v[2, 2])
        det[p] = v00 * (v11 * v22 - v12 * v21) - v01 * (v10 * v22 - v12 * v20) + v02 * (v10 * v21 - v11 * v20)
        passes = passes and ok and off[p] <= tolerance and bottom[p] <= tolerance and det[p] >= 0.0
    return passes


@jit
def joint_values(q, mimic_matrix, mimic_offset, x, c, s):  # pragma: no cover - compiled
    """Every movable joint's value ``x [n]`` from ``q [dof]`` (mimic joints follow their
    source), with its cosine ``c [n]`` and sine ``s [n]``: what :func:`pose_and_columns` takes."""
    for i in range(x.shape[0]):
        value = mimic_offset[i]
        for j in range(q.shape[0]):
            value += mimic_matrix[i, j] * q[j]
        x[i], c[i], s[i] = value, math.cos(value), math.sin(value)


@numba.njit(cache=True, nogil=True, inline="always")
def pose_and_columns(x, c, s, fixed, to_tip, revolute, tip, columns):  # pragma: no cover - compiled
    """The tip pose into ``tip [4, 4]`` (any float dtype) and each movable joint's Jacobian
    column, per unit of its own value, into ``columns [n, 6]`` (float64; linear part first,
    base frame), at the joint values ``x [n]`` with their cosines ``c [n]`` and sines
    ``s [n]`` (from :func:`joint_values`, or batched from torch's vectorised cos and sin),
    from :func:`constants`.

    Joint i's local transform is ``P_i M(x_i)`` (see :func:`ikrl.kinematics.chain._precompute`):
    the fixed part ``P_i`` times a turn about z or a slide along z. The frame is kept as
    twelve scalars (registers, not memory): ``F P_i`` is 36 products, the turn mixes columns
    0 and 1 only, the slide moves column 3 only. The frame after joint i has the joint's
    axis as column 2 and a point on it as column 3, all a Jacobian column needs.
    """
    n = fixed.shape[0]
    f00, f01, f02, f03 = 1.0, 0.0, 0.0, 0.0
    f10, f11, f12, f13 = 0.0, 1.0, 0.0, 0.0
    f20, f21, f22, f23 = 0.0, 0.0, 1.0, 0.0
    for i in range(n):
        g00 = f00 * fixed[i, 0, 0] + f01 * fixed[i, 1, 0] + f02 * fixed[i, 2, 0]
        g01 = f00 * fixed[i, 0, 1] + f01 * fixed[i, 1, 1] + f02 * fixed[i, 2, 1]
        g02 = f00 * fixed[i, 0, 2] + f01 * fixed[i, 1, 2] + f02 * fixed[i, 2, 2]
        g03 = f00 * fixed[i, 0, 3] + f01 * fixed[i, 1, 3] + f02 * fixed[i, 2, 3] + f03
        g10 = f10 * fixed[i, 0, 0] + f11 * fixed[i, 1, 0] + f12 * fixed[i, 2, 0]
        g11 = f10 * fixed[i, 0, 1] + f11 * fixed[i, 1, 1] + f12 * fixed[i, 2, 1]
        g12 = f10 * fixed[i, 0, 2] + f11 * fixed[i, 1, 2] + f12 * fixed[i, 2, 2]
        g13 = f10 * fixed[i, 0, 3] + f11 * fixed[i, 1, 3] + f12 * fixed[i, 2, 3] + f13
        g20 = f20 * fixed[i, 0, 0] + f21 * fixed[i, 1, 0] + f22 * fixed[i, 2, 0]
        g21 = f20 * fixed[i, 0, 1] + f21 * fixed[i, 1, 1] + f22 * fixed[i, 2, 1]
        g22 = f20 * fixed[i, 0, 2] + f21 * fixed[i, 1, 2] + f22 * fixed[i, 2, 2]
        g23 = f20 * fixed[i, 0, 3] + f21 * fixed[i, 1, 3] + f22 * fixed[i, 2, 3] + f23
        f02, f12, f22 = g02, g12, g22
        if revolute[i] > 0.5:  # G Rz(x): columns 0 and 1 turn, 2 and 3 stay
            ci, si = c[i], s[i]
            f00, f01 = ci * g00 + si * g01, ci * g01 - si * g00
            f10, f11 = ci * g10 + si * g11, ci * g11 - si * g10
            f20, f21 = ci * g20 + si * g21, ci * g21 - si * g20
            f03, f13, f23 = g03, g13, g23
        else:  # G Tz(x): the origin slides along column 2
            xi = x[i]
            f00, f01, f10, f11, f20, f21 = g00, g01, g10, g11, g20, g21
            f03, f13, f23 = g03 + xi * g02, g13 + xi * g12, g23 + xi * g22
        # Until the tip is known: the axis point in 0-2, the axis in 3-5.
        columns[i, 0], columns[i, 1], columns[i, 2] = f03, f13, f23
        columns[i, 3], columns[i, 4], columns[i, 5] = f02, f12, f22
    t0 = f00 * to_tip[0, 3] + f01 * to_tip[1, 3] + f02 * to_tip[2, 3] + f03
    t1 = f10 * to_tip[0, 3] + f11 * to_tip[1, 3] + f12 * to_tip[2, 3] + f13
    t2 = f20 * to_tip[0, 3] + f21 * to_tip[1, 3] + f22 * to_tip[2, 3] + f23
    for k in range(3):
        tip[0, k] = f00 * to_tip[0, k] + f01 * to_tip[1, k] + f02 * to_tip[2, k]
        tip[1, k] = f10 * to_tip[0, k] + f11 * to_tip[1, k] + f12 * to_tip[2, k]
        tip[2, k] = f20 * to_tip[0, k] + f21 * to_tip[1, k] + f22 * to_tip[2, k]
    tip[0, 3], tip[1, 3], tip[2, 3] = t0, t1, t2
    tip[3, 0], tip[3, 1], tip[3, 2], tip[3, 3] = 0.0, 0.0, 0.0, 1.0
    for i in range(n):
        zx, zy, zz = columns[i, 3], columns[i, 4], columns[i, 5]
        if revolute[i] > 0.5:  # a turn moves the tip by axis x (tip - axis point)
            dx, dy, dz = t0 - columns[i, 0], t1 - columns[i, 1], t2 - columns[i, 2]
            columns[i, 0], columns[i, 1], columns[i, 2] = zy * dz - zz * dy, zz * dx - zx * dz, zx * dy - zy * dx
        else:  # a slide moves it along the axis and turns nothing
            columns[i, 0], columns[i, 1], columns[i, 2] = zx, zy, zz
            columns[i, 3], columns[i, 4], columns[i, 5] = 0.0, 0.0, 0.0


@numba.njit(cache=True, nogil=True, inline="always")
def columns_to_jacobian(columns, mimic_matrix, identity, jac):  # pragma: no cover - compiled
    """``jac [6, dof]`` (any float dtype) from the per-joint ``columns [n, 6]`` of
    :func:`pose_and_columns`: each actuated value moves every joint that follows it, by its
    multiplier (``identity``: no mimic joints, the columns are the Jacobian's)."""
    if identity:
        for r in range(6):
            for i in range(columns.shape[0]):
                jac[r, i] = columns[i, r]
    else:
        for r in range(6):
            for j in range(jac.shape[1]):
                acc = 0.0
                for i in range(columns.shape[0]):
                    acc += mimic_matrix[i, j] * columns[i, r]
                jac[r, j] = acc


@jit
def fk_jac(q, fixed, to_tip, mimic_matrix, mimic_offset, revolute, tip, jac, work):  # pragma: no cover - compiled
    """Tip pose ``tip [4, 4]`` and Jacobian ``jac [6, dof]`` (base frame, like Chain.jacobian)
    at ``q [dof]``, from the first five of :func:`constants`. ``work`` is scratch space of at
    least ``9 n`` numbers (no allocation per call)."""
    n = fixed.shape[0]
    x, c, s = work[6 * n : 7 * n], work[7 * n : 8 * n], work[8 * n : 9 * n]
    columns = work[: 6 * n].reshape((n, 6))
    joint_values(q, mimic_matrix, mimic_offset, x, c, s)
    pose_and_columns(x, c, s, fixed, to_tip, revolute, tip, columns)
    columns_to_jacobian(columns, mimic_matrix, False, jac)


def _rows(x, c, s, fixed, to_tip, mimic_matrix, revolute, identity, tips, jacs, chunks):  # pragma: no cover - compiled
    """Every row's pose into ``tips [B, 4, 4]`` and Jacobian into ``jacs [B, 6, dof]`` from the
    joint values ``x [B, n]`` and their cosines and sines: in ``chunks`` slices, each with its
    own scratch space (allocated once per slice, not per row)."""
    batch = x.shape[0]
    size = (batch + chunks - 1) // chunks
    for chunk in numba.prange(chunks):
        columns = np.empty((fixed.shape[0], 6))
        for b in range(chunk * size, min(batch, (chunk + 1) * size)):
            pose_and_columns(x[b], c[b], s[b], fixed, to_tip, revolute, tips[b], columns)
            columns_to_jacobian(columns, mimic_matrix, identity, jacs[b])


_SERIAL, _PARALLEL = serial_and_parallel(_rows)


def jacobian(chain, q: Tensor) -> tuple[Tensor, Tensor]:
    """``(pose [B, 4, 4], Jacobian [B, 6, dof])`` of ``chain`` at ``q [B, dof]``, compiled, in
    the chain's dtype: the pose of the tip in the base frame and the Jacobian of
    :meth:`Chain.jacobian` (rows 0-2 the tip origin's linear velocity, rows 3-5 the angular
    velocity, base frame, per unit velocity of each joint value).

    ``q`` must already be checked (:func:`ikrl.kinematics.protocol.check_joints`) and be
    :func:`usable`; computed in float64 from the chain's exact constants, then rounded once.

    Examples:
        >>> import ikrl_robots
        >>> chain = ikrl_robots.load("dobot_cr5")
        >>> pose, jac = jacobian(chain, torch.zeros(2, chain.dof))
        >>> pose.shape, jac.shape, bool(torch.allclose(jac, chain.jacobian(torch.zeros(2, chain.dof)), atol=1e-6))
        (torch.Size([2, 4, 4]), torch.Size([2, 6, 6]), True)
    """
    fixed, to_tip, mimic_matrix, mimic_offset, revolute, *_ = constants(chain)
    batch = q.shape[0]
    # The joint values and their cos and sin by torch: vectorised, where numba's are not.
    x = q.detach().double()
    identity = chain._identity_mimic  # noqa: SLF001 - the chain knows whether it has mimic joints
    if not identity:
        x = torch.addmm(torch.from_numpy(mimic_offset), x, torch.from_numpy(mimic_matrix).T)
    x = x.contiguous()
    pose = torch.empty(batch, 4, 4, dtype=chain.dtype)
    jac = torch.empty(batch, 6, chain.dof, dtype=chain.dtype)
    if batch:
        kernel = for_rows(batch, _SERIAL, _PARALLEL)
        chunks = 8 * numba.get_num_threads() if kernel is _PARALLEL else 1
        cos, sin = torch.cos(x).numpy(), torch.sin(x).numpy()
        kernel(x.numpy(), cos, sin, fixed, to_tip, mimic_matrix, revolute, identity, pose.numpy(), jac.numpy(), chunks)
    return pose, jac
