"""Planning a grid: the cells (spec, seed) of a brace pattern and their folder names."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ikrl.errors import GridError
from ikrl.spec.braces import MAX_EXPANSION, expand_braces

__all__ = ["MAX_CELLS", "Cell", "ConfigLike", "TrainFn", "plan", "run_folder_name", "seed_list", "spec_digest", "spec_slug"]

#: Cells (spec, seed) of a grid at most, as many as specs a pattern may expand to.
MAX_CELLS = MAX_EXPANSION
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+=-]+")
_SLUG_LENGTH = 80


def spec_slug(spec: str) -> str:
    """A spec as a safe folder name (see :attr:`Cell.folder`); ``ikrl train`` uses it too."""
    return _UNSAFE.sub("-", spec)[:_SLUG_LENGTH].strip("-.") or "spec"


def spec_digest(spec: str) -> str:
    """8 hex digits of the SHA-256 of ``spec``: tells specs apart whose slugs collide."""
    return hashlib.sha256(spec.encode()).hexdigest()[:8]


def run_folder_name(spec: str, algorithm: str, seed: int) -> str:
    """``ikrl train``'s default run folder name: ``<spec>-<algorithm>-seed<n>``, with the
    spec's digest added when its slug is not the spec itself (cut, or punctuation replaced),
    so two specs never share a folder.

    >>> run_folder_name("dobot_cr5+weighted_pose+sincos", "goal", 0)
    'dobot_cr5+weighted_pose+sincos-goal-seed0'
    >>> run_folder_name("panda+weighted_pose(w=1,1,1,0,0,0)", "goal", 0)
    'panda+weighted_pose-w=1-1-1-0-0-0-goal-seed0-c7a21a2d'
    """
    slug = spec_slug(spec)
    return f"{slug}-{algorithm}-seed{seed}" + ("" if slug == spec else f"-{spec_digest(spec)}")


@dataclass(frozen=True)
class Cell:
    """One training run of the grid: a canonical spec and a seed."""

    spec: str
    seed: int

    @property
    def folder(self) -> str:
        """The cell's folder name: ``<slug>-seed<n>-<hash>``, stable across runs and machines.

        The slug is the spec with every run of characters other than letters, digits and
        ``_ . + = -`` replaced by ``-`` (``weighted_pose(w=1,2)`` -> ``weighted_pose-w=1-2``),
        cut to 80 characters so that paths stay short; the hash (8 hex digits of the SHA-256 of
        the spec) keeps two specs apart when their slugs collide (cut, or differing only in
        punctuation or case). All seeds of one spec share the hash.
        """
        return f"{spec_slug(self.spec)}-seed{self.seed}-{spec_digest(self.spec)}"


def plan(pattern: str, seeds: int | Sequence[int] = 3) -> list[Cell]:
    """The cells of a pattern: every expanded spec with every seed, spec-major.

    ``seeds`` is a count (``3`` means seeds 0, 1, 2) or the seeds themselves.
    """
    seeds_used = seed_list(seeds)
    specs = expand_braces(pattern)
    if len(specs) * len(seeds_used) > MAX_CELLS:
        raise GridError(
            f"{len(specs):,} specs with {len(seeds_used):,} seeds each make {len(specs) * len(seeds_used):,} cells; "
            f"a grid has at most {MAX_CELLS:,}: fewer seeds, or split the pattern"
        )
    return [Cell(spec, seed) for spec in specs for seed in seeds_used]


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, bool) or not isinstance(seeds, (int, Sequence)) or isinstance(seeds, str):
        raise GridError(f"seeds must be a count (3) or a list of ints ([0, 7, 42]); got {seeds!r}")
    if isinstance(seeds, int):
        if not 1 <= seeds <= MAX_CELLS:
            raise GridError(f"seeds must be a count from 1 to {MAX_CELLS:,} (the number of seeds per spec); got {seeds}")
        return list(range(seeds))
    given = list(seeds)
    if not given or not all(isinstance(s, int) and not isinstance(s, bool) for s in given):
        raise GridError(f"seeds must be a non-empty list of ints; got {seeds!r}")
    repeated = sorted({s for s in given if given.count(s) > 1})
    if repeated:
        raise GridError(
            f"seeds must differ; {', '.join(map(str, repeated))} appear more than once in {given}"
        )
    return given


class ConfigLike(Protocol):
    """What :func:`run_grid` needs of a training config (TrainConfig has both methods)."""

    def replace(self, **changes: Any) -> ConfigLike: ...

    def to_dict(self) -> dict[str, Any]: ...


TrainFn = Callable[..., Any]
"""``train(spec, config, run_dir, *, progress) -> result`` with ``result.evaluation`` (a dict)
and ``result.train_seconds``; it writes ``eval.json`` last into ``run_dir``."""
