"""Target poses in and joint solutions out: the files ``ikrl solve`` reads and writes.

Targets (one pose of the tip in the base frame per row), as ``.npy``, ``.csv`` or ``.pt`` (a
tensor saved with :func:`torch.save`):

* 16 numbers per row, or an array ``[N, 4, 4]``: the homogeneous matrix, row-major;
* 7 numbers per row: position ``x, y, z`` (metres) and unit quaternion ``qw, qx, qy, qz``.

A CSV may start with one header line. Nothing is silently fixed: a rotation that is not
orthonormal, a bottom row other than ``0 0 0 1``, a quaternion far from unit length or a
value that is not finite is an error naming the row.

Solutions, by the output's suffix: ``.csv`` (one row per target: joint values by joint name,
success, errors in mm and degrees, iterations, attempts), ``.npz`` (the same arrays, plus
the joint names) or ``.npy`` (the joint values alone, ``[N, dof]``).
"""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ikrl.errors import NotAPoseError, TargetsFileError
from ikrl.kinematics.protocol import KinematicChain, random_joints
from ikrl.kinematics.se3 import check_poses, quaternion_to_matrix
from ikrl.solver.pool import SolveResult
from ikrl.util.checks import check_seed

__all__ = ["SOLUTION_SUFFIXES", "TARGET_SUFFIXES", "load_targets", "random_targets", "write_solutions"]

TARGET_SUFFIXES = (".npy", ".csv", ".pt")
SOLUTION_SUFFIXES = (".csv", ".npz", ".npy")
#: How far a read quaternion may be from unit length (poses: kinematics.se3.POSE_TOLERANCE).
_TOLERANCE = 1e-5


def random_targets(chain: KinematicChain, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``(q [n, dof], poses [n, 4, 4])``: joint values uniform within the limits (from
    ``seed``) and the poses they reach, so every target is reachable."""
    q = random_joints(chain, n, torch.Generator(device=chain.device).manual_seed(check_seed("random_targets", seed)))
    with torch.no_grad():
        return q, chain.forward_kinematics(q)


def load_targets(path: str | Path) -> Tensor:
    """Target poses ``[N, 4, 4]`` (float64) from a ``.npy``, ``.csv`` or ``.pt`` file (module docstring)."""
    path = Path(path)
    if path.suffix not in TARGET_SUFFIXES:
        kinds = f"{', '.join(TARGET_SUFFIXES[:-1])} or {TARGET_SUFFIXES[-1]}"
        raise TargetsFileError(f"{path}: targets must be a {kinds} file; got {path.suffix or 'no suffix'!r}")
    if not path.is_file():
        raise TargetsFileError(f"{path}: no such file of targets")
    try:
        if path.suffix == ".npy":
            rows = np.load(path, allow_pickle=False)
        elif path.suffix == ".pt":
            rows = _read_tensor(path)
        else:
            rows = _read_csv(path)
        if np.iscomplexobj(rows):
            raise TargetsFileError(f"{path}: targets must be real numbers; the file holds complex values")
        if isinstance(rows, np.ndarray) and rows.dtype == np.bool_:  # as a .pt file's bool tensor is refused
            raise TargetsFileError(f"{path}: targets must be real numbers (ints or floats); the file holds an array of bools")
        rows = np.asarray(rows, dtype=np.float64)
    except TargetsFileError:
        raise
    except csv.Error as error:  # a CSV field past the csv module's limit: not a file of numbers
        raise TargetsFileError(f"{path}: not a CSV file of numbers: {error}") from error
    except (ValueError, TypeError, OSError, RuntimeError) as error:
        raise TargetsFileError(f"{path}: cannot read targets as numbers: {error}") from error
    if rows.size == 0:
        raise TargetsFileError(f"{path}: holds no targets (an array of shape {rows.shape}); give at least one pose")
    if rows.ndim == 3 and rows.shape[1:] == (4, 4):
        rows = rows.reshape(-1, 16)
    if rows.ndim != 2 or rows.shape[1] not in (7, 16) or len(rows) == 0:
        raise TargetsFileError(
            f"{path}: targets must be rows of 16 numbers (a 4x4 pose, row-major) or 7 (x, y, z, qw, qx, qy, qz), "
            f"or an array of shape (N, 4, 4); got shape {rows.shape}"
        )
    bad = ~np.isfinite(rows).all(1)
    if bad.any():
        raise TargetsFileError(f"{path}: row {int(np.argmax(bad))} has a value that is not finite")
    values = torch.from_numpy(rows)
    return _from_quaternions(path, values) if values.shape[1] == 7 else _from_matrices(path, values)


def _read_tensor(path: Path) -> np.ndarray:
    # weights_only: a .pt file may come from anywhere, and must not run code when loaded.
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(f"not a torch.save file of plain tensors ({error})") from error
    if not isinstance(value, Tensor):
        raise TypeError(f"a .pt file of targets must hold one real tensor; it holds {type(value).__name__}")
    if value.is_complex() or value.dtype == torch.bool:
        raise ValueError(f"a .pt file of targets must hold one real tensor; it holds a {value.dtype} tensor")
    return value.detach().double().numpy()


def _read_csv(path: Path) -> np.ndarray:
    # utf-8-sig: a byte order mark (Excel writes one) is not part of the first number.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        lines = [row for row in csv.reader(handle) if row and not row[0].lstrip().startswith("#")]
    if lines and not any(_numeric([cell]) for cell in lines[0]):
        lines = lines[1:]  # a header: names only (x, y, z, qw, ...)
    elif lines and not _numeric(lines[0]):
        raise ValueError(
            f"row 0 mixes numbers and text: {lines[0]}; a header row holds names only, a row of targets numbers only"
        )
    widths = {len(row) for row in lines}
    if len(widths) > 1:
        raise ValueError(f"rows have different numbers of values: {sorted(widths)}")
    for number, row in enumerate(lines):
        if not _numeric(row):
            raise ValueError(f"row {number} is not all numbers: {row}")
    if not lines:
        raise ValueError("no rows of numbers")
    return np.array([[float(v) for v in row] for row in lines], dtype=np.float64)


def _numeric(row: list[str]) -> bool:
    try:
        [float(v) for v in row]
    except ValueError:
        return False
    return True


def _from_quaternions(path: Path, values: Tensor) -> Tensor:
    norm = torch.linalg.vector_norm(values[:, 3:], dim=-1)
    off = torch.nonzero((norm - 1).abs() > _TOLERANCE).squeeze(-1)
    if len(off):
        row = int(off[0])
        raise TargetsFileError(
            f"{path}: row {row}'s quaternion (qw, qx, qy, qz) has norm {float(norm[row]):.6g}; it must be a unit quaternion"
        )
    poses = torch.eye(4, dtype=torch.float64).repeat(len(values), 1, 1)
    poses[:, :3, :3] = quaternion_to_matrix(values[:, 3:])
    poses[:, :3, 3] = values[:, :3]
    return poses


def _from_matrices(path: Path, values: Tensor) -> Tensor:
    poses = values.reshape(-1, 4, 4)
    try:
        return check_poses(poses, f"{path}: row {{}}")
    except NotAPoseError as error:
        raise TargetsFileError(f"{error}; each row must be a pose") from None


def write_solutions(path: str | Path, chain: KinematicChain, result: SolveResult) -> Path:
    """Write ``result`` to ``path`` as ``.csv``, ``.npz`` or ``.npy`` (module docstring)."""
    path = Path(path)
    if path.suffix not in SOLUTION_SUFFIXES:
        raise TargetsFileError(f"{path}: solutions are written as {', '.join(SOLUTION_SUFFIXES)}; got {path.suffix or 'no suffix'!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    q = result.q.detach().cpu().double().numpy()
    columns = {
        "success": result.success.cpu().numpy(),
        "position_error_mm": 1e3 * result.position_error.detach().cpu().double().numpy(),
        "rotation_error_deg": np.degrees(result.rotation_error.detach().cpu().double().numpy()),
        "iterations": result.iterations.cpu().numpy(),
        "attempts": result.attempts.cpu().numpy(),
    }
    if path.suffix == ".npy":
        np.save(path, q)
    elif path.suffix == ".npz":
        np.savez(path, q=q, joint_names=np.array(chain.joint_names), **columns)
    else:
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["target", *chain.joint_names, *columns])
            for i in range(len(q)):
                writer.writerow(
                    [i, *(repr(float(v)) for v in q[i]), int(columns["success"][i]),
                     f"{columns['position_error_mm'][i]:.6g}", f"{columns['rotation_error_deg'][i]:.6g}",
                     int(columns["iterations"][i]), int(columns["attempts"][i])]
                )  # fmt: skip
    return path
