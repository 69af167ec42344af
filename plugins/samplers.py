"""ikrl's own start/target samplers: uniform, near the target, and targets from a file.

Every sampler returns ``(start, target)`` joint values ``[n, dof]`` on ``chain.device`` in
``chain.dtype``, within the chain's limits, continuous joints in ``[-pi, pi)``. All
randomness comes from the ``generator`` passed in, drawn in float64 on the generator's own
device (``torch.rand`` insists on that) and then moved, so a seed repeats on any chain
device and dtype. Targets are drawn before starts, so with one seed ``uniform`` and
``near_target`` reach for the same targets.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from ikrl.errors import BadParameterError
from ikrl.extend.components import Sampler
from ikrl.extend.plugins import hookimpl
from ikrl.kinematics.chain import Chain
from ikrl.kinematics.protocol import into_limits, random_joints
from ikrl.util.checks import is_finite_number

__all__ = ["Fixed", "NearTarget", "Uniform", "ikrl_samplers"]

#: Noise of ``fixed(starts="near")`` and ``near_target``'s default: radians (metres for
#: prismatic joints).
NEAR_NOISE = 0.3
#: How far (radians or metres) rows of a ``fixed`` file may lie outside the limits, for
#: values written with few digits; such rows are clamped onto the limits.
LIMIT_TOLERANCE = 1e-4



def _near(chain: Chain, target: Tensor, noise: float, generator: torch.Generator) -> Tensor:
    """``target + noise * N(0, 1)`` per joint, clamped or wrapped back into range."""
    eps = torch.randn(target.shape, generator=generator, device=generator.device, dtype=torch.float64)
    start = target.to(torch.float64) + noise * eps.to(target.device)
    return into_limits(chain, start.to(chain.dtype))


def _check_n(component: str, n: object) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"{component}: n must be an int >= 0; got {n!r}")


class Uniform:
    """Start and target independent and uniform within the joint limits."""

    name = "uniform"

    def __call__(self, chain: Chain, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        _check_n(self.name, n)
        target = random_joints(chain, n, generator)
        return random_joints(chain, n, generator), target

    def __repr__(self) -> str:
        return f"{self.name}()"


class NearTarget:
    """Target uniform within the limits; start a Gaussian perturbation of it.

    ``start = target + noise * N(0, 1)`` per joint, clamped to the limits of bounded joints
    and wrapped into ``[-pi, pi)`` for continuous ones: episodes that begin close to the
    answer, for curricula and local refinement.
    """

    name = "near_target"

    def __init__(self, *, noise: float = NEAR_NOISE) -> None:
        """``noise``: standard deviation per joint, radians (metres for prismatic joints), >= 0."""
        if not (is_finite_number(noise) and noise >= 0):
            raise BadParameterError(
                f"{self.name}: noise must be a finite number >= 0 (radians, or metres for prismatic "
                f"joints); got {noise!r}"
            )
        self.noise = float(noise)

    def __call__(self, chain: Chain, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        _check_n(self.name, n)
        target = random_joints(chain, n, generator)
        return _near(chain, target, self.noise, generator), target

    def __repr__(self) -> str:
        return f"{self.name}(noise={self.noise})"


class Fixed:
    """Targets drawn (with replacement) from the rows of a file of joint values.

    The file is ``.csv`` (comma-separated, one row per target, optionally a header line of
    joint names, which must then be the chain's), ``.npy`` or ``.pt`` (a 2-D tensor);
    values in radians (metres for prismatic joints). Starts are uniform, or ``near`` the
    target (``start = target + 0.3 N(0, 1)``, as ``near_target``).

    The file is read and checked (2-D, finite) when the sampler is made; its width and
    limits are checked against the chain on the first call for that chain.
    """

    name = "fixed"
    STARTS = ("uniform", "near")

    def __init__(self, *, file: str | os.PathLike[str], starts: str = "uniform") -> None:
        """``file``: path of the table of targets; ``starts``: ``"uniform"`` or ``"near"``."""
        if starts not in self.STARTS:
            raise BadParameterError(f"{self.name}: starts must be 'uniform' or 'near'; got {starts!r}")
        if not isinstance(file, str | os.PathLike) or not str(file):
            raise BadParameterError(
                f"{self.name}: file must be the path of a .csv, .npy or .pt file; got {file!r}"
            )
        self.file = str(file)
        self.starts = starts
        self.header, self.table = self._read(Path(file).expanduser())
        # Per chain (name, joints, dtype, device): the table checked, clamped and converted.
        self._checked: dict[tuple[object, ...], Tensor] = {}

    def _fail(self, problem: str) -> BadParameterError:
        return BadParameterError(f"{self.name}: file {self.file!r} {problem}")

    def _read(self, path: Path) -> tuple[tuple[str, ...] | None, Tensor]:
        """The header (csv only, None without one) and the rows ``[m, width]`` in float64 on the CPU."""
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".npy", ".pt"):
            raise self._fail("must end in .csv, .npy or .pt")
        if not path.is_file():
            where = "" if path.is_absolute() else f" (relative to {os.getcwd()})"
            raise self._fail(f"does not exist or is not a file{where}")
        header = None
        try:
            if suffix == ".csv":
                header, table = self._read_csv(path)
            elif suffix == ".npy":
                import numpy as np

                table = torch.from_numpy(np.load(path, allow_pickle=False))
            else:
                table = torch.load(path, map_location="cpu", weights_only=True)
        except BadParameterError:
            raise
        except Exception as exc:  # unreadable, corrupt, not a tensor file, ...
            raise self._fail(f"could not be read: {type(exc).__name__}: {exc}") from exc
        if not isinstance(table, Tensor):
            raise self._fail(f"must hold a tensor of joint values; it holds a {type(table).__name__}")
        if table.dim() != 2 or table.shape[0] == 0 or table.shape[1] == 0:
            raise self._fail(
                "must hold a non-empty 2-D table, one row of joint values per target; "
                f"got shape {tuple(table.shape)}"
            )
        if table.dtype == torch.bool or table.is_complex():
            raise self._fail(f"must hold real numbers; got {table.dtype}")
        table = table.to(torch.float64)
        bad = ~torch.isfinite(table)
        if bad.any():
            row = int(bad.any(1).nonzero()[0])
            raise self._fail(f"holds values that are not finite (first in row {row})")
        return header, table

    def _read_csv(self, path: Path) -> tuple[tuple[str, ...] | None, Tensor]:
        with path.open(newline="", encoding="utf-8") as f:
            rows = [[cell.strip() for cell in row] for row in csv.reader(f) if any(c.strip() for c in row)]
        header = None
        if rows and not all(_is_float(cell) for cell in rows[0]):
            header, rows = tuple(rows[0]), rows[1:]
        widths = {len(row) for row in rows}
        if len(widths) > 1:
            raise self._fail(f"has rows of different lengths ({', '.join(map(str, sorted(widths)))} values)")
        for i, row in enumerate(rows):
            for cell in row:
                if not _is_float(cell):
                    raise self._fail(f"has a value that is not a number, {cell!r}, in data row {i}")
        if header is not None and rows and len(header) != len(rows[0]):
            raise self._fail(f"has {len(header)} column names but {len(rows[0])} values per row")
        if not rows:
            return header, torch.zeros(0, 0 if header is None else len(header), dtype=torch.float64)
        return header, torch.tensor([[float(c) for c in row] for row in rows], dtype=torch.float64)

    def _table_for(self, chain: Chain) -> Tensor:
        """The targets checked against ``chain`` and converted to its dtype and device (cached)."""
        key = (chain.name, chain.joint_names, chain.dtype, chain.device)
        table = self._checked.get(key)
        if table is not None:
            return table
        if self.header is not None and self.header != chain.joint_names:
            raise self._fail(
                f"names columns ({', '.join(self.header)}) but chain {chain.name!r} has joints "
                f"({', '.join(chain.joint_names)}), in that order"
            )
        if self.table.shape[1] != chain.dof:
            raise self._fail(
                f"has {self.table.shape[1]} values per row but chain {chain.name!r} has {chain.dof} joints "
                f"({', '.join(chain.joint_names)})"
            )
        lower = chain.lower.detach().cpu().to(torch.float64)
        upper = chain.upper.detach().cpu().to(torch.float64)
        outside = (self.table < lower - LIMIT_TOLERANCE) | (self.table > upper + LIMIT_TOLERANCE)
        if outside.any():
            row, joint = (int(i) for i in outside.nonzero()[0])
            raise self._fail(
                f"has {int(outside.any(1).sum())} row(s) outside the limits of chain {chain.name!r}; first: "
                f"row {row}, {chain.joint_names[joint]} = {float(self.table[row, joint]):g} not in "
                f"[{float(lower[joint]):g}, {float(upper[joint]):g}]"
            )
        table = into_limits(chain, self.table.clamp(lower, upper).to(device=chain.device, dtype=chain.dtype))
        self._checked[key] = table
        return table

    def __call__(self, chain: Chain, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        _check_n(self.name, n)
        table = self._table_for(chain)
        rows = torch.randint(table.shape[0], (n,), generator=generator, device=generator.device)
        target = table[rows.to(table.device)]
        if self.starts == "near":
            return _near(chain, target, NEAR_NOISE, generator), target
        return random_joints(chain, n, generator), target

    def __repr__(self) -> str:
        return f"{self.name}(file={self.file!r}, starts={self.starts!r})"



def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_SAMPLERS = (Uniform, NearTarget, Fixed)


@hookimpl
def ikrl_samplers() -> dict[str, Callable[..., Sampler]]:
    """ikrl's start/target samplers, by name."""
    return {sampler.name: sampler for sampler in _SAMPLERS}
