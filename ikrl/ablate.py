"""Ablation grids: train every spec of a brace pattern with several seeds, then compare.

A *pattern* is a spec string with shell-like braces, ``"dobot_cr5+{weighted_pose,geodesic}+
{sincos,raw}"``; :func:`expand_braces` turns it into canonical specs, :func:`plan` crosses them
with seeds into :class:`Cell` s, :func:`run_grid` trains each cell into its own folder and
:func:`summarize` reduces the folders to mean ± std per spec (a markdown table, a CSV, a plot).

Design:

* **The folder is the state.** Each cell trains into ``out_dir/<cell.folder>``; the trainer
  writes ``eval.json`` last, so a folder holding it is finished and is skipped on a rerun,
  and a folder without it is half-finished (a crash, a kill, a failure) and is deleted and
  rerun from scratch. ``out_dir/grid.json`` records the config and every cell ever planned
  there, so a rerun with another config is refused (mixing budgets would make the means
  meaningless), while a rerun with another pattern or more seeds and the *same* config
  adds cells to the grid.
* **Backends only schedule.** ``"serial"`` runs in this process (debugging, tests);
  ``"process"`` uses a spawn-started process pool (fork after torch has started threads can
  deadlock) and splits the CPU cores between workers with ``torch.set_num_threads``;
  ``"ray"`` sends cells to a Ray cluster (an optional dependency, imported on first use).
  Every backend runs the same module-level :func:`_run_cell`, which catches a cell's error,
  writes it to ``error.txt`` in the cell's folder and returns it, so one bad cell never
  stops the others, and :class:`GridResult` lists the failures.
* **Duck-typed config.** :func:`run_grid` needs only two methods of its ``config``:
  ``replace(**changes)`` (a copy with the cell's seed) and ``to_dict()`` (what grid.json
  records and compares). :class:`ikrl.training.run.TrainConfig` has both; tests pass a
  small stand-in.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import statistics
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, Self

from ikrl.errors import GridError, MissingDependencyError, SpecError, SpecSyntaxError, closest
from ikrl.spec import EnvSpec

__all__ = [
    "Cell",
    "CellOutcome",
    "ConfigLike",
    "GridResult",
    "SpecStats",
    "Summary",
    "expand_braces",
    "plan",
    "plot",
    "run_grid",
    "spec_slug",
    "summarize",
]


Backend = Literal["process", "ray", "serial"]
BACKENDS: tuple[str, ...] = ("process", "ray", "serial")
GRID_FILE = "grid.json"
EVAL_FILE = "eval.json"  # written last by the trainer: the marker of a finished cell
CELL_FILE = "cell.json"  # written by run_grid after the trainer returns: seed, seconds
ERROR_FILE = "error.txt"  # the traceback of a failed cell
_GRID_FORMAT = 1


# ----------------------------------------------------------------------------- braces

_EMPTY = "\ue000"  # marks an empty alternative until its part is dropped (private use)


def expand_braces(pattern: str) -> list[str]:
    """Expand shell-like braces into canonical spec strings, in row-major order.

    ``"a+{b,c}+{d,e}"`` gives ``a+b+d, a+b+e, a+c+d, a+c+e``: the first brace varies
    slowest, as in a shell. Rules:

    * A comma splits alternatives only directly inside a brace: commas inside parentheses
      belong to the part, so ``{weighted_pose(w=1,1,1,0.5,0.5,0.5),geodesic}`` has two
      alternatives. Braces inside quotes are plain text.
    * Braces may nest (``{a,b{c,d}}``) and may sit inside a part, which sweeps a parameter:
      ``weighted_pose(w={1,2})``. A brace with one alternative is just that text.
    * An empty alternative means "no part": ``dobot_cr5+{sincos,}`` gives ``dobot_cr5+sincos``
      and ``dobot_cr5``; the ``+`` left dangling by a part that came out empty is removed.
      A ``+`` with nothing beside it that no brace produced (``a++b``) stays, and is an error.

    Every result is validated by :meth:`EnvSpec.parse` and returned in canonical form;
    two alternatives that give the same canonical spec are an error, since the grid would
    train one spec twice under two names. Unbalanced braces or parentheses raise
    :class:`SpecSyntaxError` with the position and a caret.
    """
    if not isinstance(pattern, str):
        raise SpecSyntaxError(
            f"a pattern must be a string like 'dobot_cr5+{{geodesic,position}}'; got {type(pattern).__name__}"
        )
    if _EMPTY in pattern:
        raise _pattern_error(pattern, pattern.index(_EMPTY), "the reserved character U+E000", "; remove it")
    tree = _BraceParser(pattern).parse()
    raw = [_drop_empty_parts(text) for text in _expand(tree)]

    canonical: list[str] = []
    sources: dict[str, list[str]] = {}
    for text in raw:
        try:
            spec = str(EnvSpec.parse(text))
        except SpecError as error:
            raise SpecSyntaxError(
                f"pattern {pattern!r} expands to {text!r}, which is not a valid spec: {error}"
            ) from None
        if spec not in sources:
            canonical.append(spec)
            sources[spec] = []
        sources[spec].append(text)
    repeated = {spec: texts for spec, texts in sources.items() if len(texts) > 1}
    if repeated:
        listing = "; ".join(
            f"{spec!r} from {' and '.join(map(repr, texts))}" for spec, texts in repeated.items()
        )
        raise SpecSyntaxError(
            f"pattern {pattern!r} gives the same spec more than once: {listing}. "
            f"Each alternative must give a different spec; remove the repeats"
        )
    return canonical


# A parsed pattern: a sequence of literal text and brace groups; a group is a list of
# alternatives, each itself a sequence.
_Seq = list["str | _Group"]


@dataclass
class _Group:
    alternatives: list[_Seq]


def _pattern_error(text: str, pos: int, problem: str, fix: str = "") -> SpecSyntaxError:
    """An error pointing at ``pos`` under the pattern, formatted as ikrl.spec does."""
    pointer = " " * (pos + 1) + "^"
    return SpecSyntaxError(f"bad pattern {text!r}: {problem} at position {pos}{fix}\n {text}\n{pointer}")


class _BraceParser:
    """Recursive descent over braces, tracking parentheses and quotes for commas and errors."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> _Seq:
        return self.sequence(brace_at=None)  # at the top level it reads to the end or raises

    def sequence(self, brace_at: int | None) -> _Seq:
        """Read up to the ',' or '}' that ends this alternative (or the end of the text)."""
        text = self.text
        seq: _Seq = []
        literal: list[str] = []
        parens: list[int] = []  # positions of '(' opened in this alternative
        while self.pos < len(text):
            char = text[self.pos]
            if char in "'\"":
                literal.append(self.quoted())
                continue
            if char == "(":
                parens.append(self.pos)
            elif char == ")":
                if not parens:
                    raise _pattern_error(
                        text, self.pos, "')' without a matching '('", "; remove it or add the '('"
                    )
                parens.pop()
            elif char == "{":
                if literal:
                    seq.append("".join(literal))
                    literal = []
                seq.append(self.group())
                continue
            elif char == "}":
                if brace_at is None:
                    raise _pattern_error(
                        text, self.pos, "'}' without a matching '{'", "; remove it or add the '{'"
                    )
                if parens:
                    raise _pattern_error(
                        text,
                        parens[-1],
                        "unclosed '('",
                        f"; close it before the '}}' at position {self.pos} that ends its brace",
                    )
                break
            elif char == "," and brace_at is not None and not parens:
                break
            literal.append(char)
            self.pos += 1
        else:
            if parens:
                raise _pattern_error(
                    text, parens[-1], "unclosed '('", "; add the ')' that ends its parameters"
                )
            if brace_at is not None:
                raise _pattern_error(
                    text, brace_at, "unclosed '{'", "; add the '}' that ends its alternatives"
                )
        if literal:
            seq.append("".join(literal))
        return seq

    def group(self) -> _Group:
        start = self.pos
        self.pos += 1  # the '{'
        alternatives = [self.sequence(brace_at=start)]
        while self.text[self.pos] == ",":  # sequence() stopped at ',' or '}' (else it raised)
            self.pos += 1
            alternatives.append(self.sequence(brace_at=start))
        self.pos += 1  # the '}'
        return _Group([alt if alt else [_EMPTY] for alt in alternatives])

    def quoted(self) -> str:
        """A quoted value, verbatim (quotes and escapes kept): EnvSpec.parse reads it later."""
        quote, start = self.text[self.pos], self.pos
        end = self.pos + 1
        while end < len(self.text):
            if self.text[end] == "\\":
                end += 2
                continue
            if self.text[end] == quote:
                self.pos = end + 1
                return self.text[start : self.pos]
            end += 1
        raise _pattern_error(self.text, start, f"unclosed {quote}", f"; add the closing {quote}")


def _expand(seq: _Seq) -> list[str]:
    """Every string the sequence stands for; the first group varies slowest."""
    choices: list[list[str]] = []
    for item in seq:
        if isinstance(item, str):
            choices.append([item])
        else:
            choices.append([text for alternative in item.alternatives for text in _expand(alternative)])
    return ["".join(combination) for combination in itertools.product(*choices)]


def _drop_empty_parts(text: str) -> str:
    """Remove the parts an empty alternative left blank, with their '+' (see expand_braces)."""
    if _EMPTY not in text:
        return text
    parts = _split_top_level(text)
    kept = [part for part in parts if not (_EMPTY in part and not part.replace(_EMPTY, "").strip())]
    return "+".join(kept).replace(_EMPTY, "")


def _split_top_level(text: str) -> list[str]:
    """Split at each '+' outside parentheses and quotes."""
    parts, start, depth, pos = [], 0, 0, 0
    while pos < len(text):
        char = text[pos]
        if char in "'\"":
            end = pos + 1
            while end < len(text) and text[end] != char:
                end += 2 if text[end] == "\\" else 1
            pos = end + 1
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "+" and depth == 0:
            parts.append(text[start:pos])
            start = pos + 1
        pos += 1
    parts.append(text[start:])
    return parts


# ----------------------------------------------------------------------------- the grid

_UNSAFE = re.compile(r"[^A-Za-z0-9_.+=-]+")
_SLUG_LENGTH = 80


def spec_slug(spec: str) -> str:
    """A spec as a safe folder name (see :attr:`Cell.folder`); ``ikrl train`` uses it too."""
    return _UNSAFE.sub("-", spec)[:_SLUG_LENGTH].strip("-.") or "spec"


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
        slug = spec_slug(self.spec)
        digest = hashlib.sha256(self.spec.encode()).hexdigest()[:8]
        return f"{slug}-seed{self.seed}-{digest}"


def plan(pattern: str, seeds: int | Sequence[int] = 3) -> list[Cell]:
    """The cells of a pattern: every expanded spec with every seed, spec-major.

    ``seeds`` is a count (``3`` means seeds 0, 1, 2) or the seeds themselves.
    """
    seed_list = _seed_list(seeds)
    return [Cell(spec, seed) for spec in expand_braces(pattern) for seed in seed_list]


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, bool) or not isinstance(seeds, (int, Sequence)) or isinstance(seeds, str):
        raise GridError(f"seeds must be a count (3) or a list of ints ([0, 7, 42]); got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise GridError(f"seeds must be at least 1 (the number of seeds per spec); got {seeds}")
        return list(range(seeds))
    seed_list = list(seeds)
    if not seed_list or not all(isinstance(s, int) and not isinstance(s, bool) for s in seed_list):
        raise GridError(f"seeds must be a non-empty list of ints; got {seeds!r}")
    repeated = sorted({s for s in seed_list if seed_list.count(s) > 1})
    if repeated:
        raise GridError(
            f"seeds must differ; {', '.join(map(str, repeated))} appear more than once in {seed_list}"
        )
    return seed_list


class ConfigLike(Protocol):
    """What :func:`run_grid` needs of a training config (TrainConfig has both methods)."""

    def replace(self, **changes: Any) -> ConfigLike: ...

    def to_dict(self) -> dict[str, Any]: ...


TrainFn = Callable[..., Any]
"""``train(spec, config, run_dir, *, progress) -> result`` with ``result.evaluation`` (a dict)
and ``result.train_seconds``; it writes ``eval.json`` last into ``run_dir``."""


@dataclass(frozen=True)
class CellOutcome:
    """What happened to one cell in a :func:`run_grid` call."""

    cell: Cell
    status: Literal["done", "skipped", "failed"]
    evaluation: dict[str, Any] | None = None
    train_seconds: float | None = None
    error: str | None = None  # one line; the traceback is in the folder's error.txt


@dataclass(frozen=True)
class GridResult:
    """The cells of a grid (planned by this call) and the summary of the whole folder."""

    out_dir: Path
    outcomes: tuple[CellOutcome, ...]
    summary: Summary

    @property
    def ran(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status == "done"]

    @property
    def skipped(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status == "skipped"]

    @property
    def failures(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        """True when every cell finished; the CLI exits non-zero otherwise."""
        return not self.failures


def run_grid(
    pattern: str,
    *,
    seeds: int | Sequence[int] = 3,
    config: ConfigLike,
    out_dir: Path | str,
    backend: Backend = "process",
    workers: int | None = None,
    ray_address: str | None = None,
    train_fn: TrainFn | None = None,
    progress: bool = True,
) -> GridResult:
    """Train every cell of ``pattern`` × ``seeds`` into ``out_dir`` and summarise the folder.

    Each cell runs ``train_fn(cell.spec, config.replace(seed=cell.seed), out_dir / cell.folder,
    progress=False)`` (``train_fn`` defaults to :func:`ikrl.training.run.train`; one given
    for the process or ray backend must be a module-level function, so that it pickles).
    Finished cells (their folder holds eval.json) are skipped; half-finished ones are deleted
    and rerun. ``out_dir/grid.json`` records the config: rerunning into the same folder needs
    the same config (the error lists what differs); a new pattern or new seeds add cells.

    ``backend``: ``"process"`` (a spawn process pool of ``workers`` processes, default
    ``min(cells, CPU cores)``, each with ``cores // workers`` torch threads), ``"ray"``
    (``ray.init(address=ray_address)``, or a local Ray if no address and none is running;
    ``workers`` caps the cells in flight; on a cluster ``out_dir`` must be on a filesystem
    every node shares) or ``"serial"`` (this process, in order).

    A cell that raises is recorded (error.txt in its folder, and in the result) and the
    others go on. At the end summary.md, summary.csv and summary.png are written to out_dir.
    """
    if backend not in BACKENDS:
        hint = closest(str(backend), BACKENDS)
        raise GridError(
            f"unknown backend {backend!r}.{f' Did you mean {hint!r}?' if hint else ''} "
            f"Backends: {', '.join(BACKENDS)}"
        )
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise GridError(f"workers must be a positive int (or None for the default); got {workers!r}")
    if ray_address is not None and backend != "ray":
        raise GridError(
            f"ray_address={ray_address!r} only applies to backend='ray'; got backend={backend!r}"
        )
    if not (callable(getattr(config, "replace", None)) and callable(getattr(config, "to_dict", None))):
        raise GridError(
            f"config must have replace(**changes) and to_dict(), as ikrl.training.run.TrainConfig "
            f"has; got {type(config).__name__}"
        )
    seed_list = _seed_list(seeds)
    cells = [Cell(spec, seed) for spec in expand_braces(pattern) for seed in seed_list]
    if train_fn is None:
        from ikrl.training.run import train as train_fn  # imported here: training pulls in torchrl
    out_dir = Path(out_dir)
    _record_grid(out_dir, pattern, seed_list, config, cells)

    outcomes: dict[Cell, CellOutcome] = {}
    todo: list[Cell] = []
    for cell in cells:
        folder = out_dir / cell.folder
        if (folder / EVAL_FILE).is_file():
            outcomes[cell] = _finished_outcome(folder, cell)
            continue
        if folder.exists():  # half-finished or failed before: start again from nothing
            shutil.rmtree(folder)
        todo.append(cell)

    jobs = [
        (train_fn, cell.spec, cell.seed, config.replace(seed=cell.seed), str(out_dir / cell.folder))
        for cell in todo
    ]
    with _Progress(progress, total=len(cells), done=len(cells) - len(todo)) as bar:

        def finished(index: int, record: dict[str, Any]) -> None:
            cell = todo[index]
            outcomes[cell] = _outcome(cell, record)
            bar.advance(cell, outcomes[cell])

        if not jobs:
            pass
        elif backend == "serial":
            for index, job in enumerate(jobs):
                finished(index, _run_cell(*job, threads=None))
        elif backend == "process":
            _run_processes(jobs, workers, finished)
        else:
            _run_ray(jobs, workers, ray_address, finished)

    summary = summarize(out_dir)
    summary.write(out_dir)
    return GridResult(out_dir, tuple(outcomes[cell] for cell in cells), summary)


def _run_cell(
    train_fn: TrainFn, spec: str, seed: int, config: ConfigLike, run_dir: str, threads: int | None
) -> dict[str, Any]:
    """Train one cell in whatever process runs this; errors come back as data, not raised.

    Returning the error (and writing its traceback to error.txt) rather than raising keeps
    every backend's bookkeeping the same and needs no exception to pickle across processes.
    """
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    folder = Path(run_dir)
    start = time.perf_counter()
    try:
        result = train_fn(spec, config, folder, progress=False)
        if not (folder / EVAL_FILE).is_file():
            raise GridError(
                f"the trainer returned but wrote no {EVAL_FILE} into {folder}; "
                f"a finished run must write it last"
            )
        evaluation = getattr(result, "evaluation", None)
        if evaluation is None:
            evaluation = json.loads((folder / EVAL_FILE).read_text())
        seconds = getattr(result, "train_seconds", None)
        wall = time.perf_counter() - start
        record = {
            "spec": spec,
            "seed": seed,
            "train_seconds": float(seconds) if seconds is not None else wall,
            "wall_seconds": wall,
        }
        _write_json(folder / CELL_FILE, record)
        return {"ok": True, "evaluation": dict(evaluation), "train_seconds": record["train_seconds"]}
    except Exception as error:  # noqa: BLE001 - a cell's failure of any kind is recorded, not fatal
        message = f"{type(error).__name__}: {' '.join(str(error).split())}"
        _write_error(folder, spec, seed, traceback.format_exc())
        return {"ok": False, "error": message}


def _write_error(folder: Path, spec: str, seed: int, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ERROR_FILE).write_text(f"spec: {spec}\nseed: {seed}\n\n{text}")


def _outcome(cell: Cell, record: dict[str, Any]) -> CellOutcome:
    if record["ok"]:
        return CellOutcome(cell, "done", record["evaluation"], record["train_seconds"])
    return CellOutcome(cell, "failed", error=record["error"])


def _finished_outcome(folder: Path, cell: Cell) -> CellOutcome:
    evaluation, seconds = _read_finished(folder)
    return CellOutcome(cell, "skipped", evaluation, seconds)


def _read_finished(folder: Path) -> tuple[dict[str, Any], float | None]:
    """A finished cell's evaluation and training seconds (None if cell.json is missing)."""
    try:
        evaluation = json.loads((folder / EVAL_FILE).read_text())
    except (OSError, ValueError) as error:
        raise GridError(
            f"{folder / EVAL_FILE} is not readable JSON ({error}); delete the folder "
            f"{folder} to rerun that cell"
        ) from None
    seconds = None
    try:
        seconds = json.loads((folder / CELL_FILE).read_text()).get("train_seconds")
    except (OSError, ValueError):
        seconds = evaluation.get("train_seconds")
    return evaluation, seconds


def _cpu_count() -> int:
    """Cores this process may use (the affinity mask where there is one, e.g. in containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _set_threads(threads: int) -> None:
    """Process-pool initializer: split the cores between workers instead of oversubscribing."""
    import torch

    torch.set_num_threads(threads)


def _run_processes(jobs: list[tuple], workers: int | None, finished: Callable[[int, dict], None]) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    cores = _cpu_count()
    workers = min(workers or cores, len(jobs))  # no idle processes, and their cores go to the busy ones
    threads = max(1, cores // workers)
    executor = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),  # fork after torch started threads can hang
        initializer=_set_threads,
        initargs=(threads,),
    )
    try:
        futures = {executor.submit(_run_cell, *job, threads=None): index for index, job in enumerate(jobs)}
        for future in as_completed(futures):
            index = futures[future]
            try:
                record = future.result()
            except Exception as error:  # noqa: BLE001 - the worker died (killed for memory?) or did not pickle
                record = _lost_cell(jobs[index], error)
            finished(index, record)
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown()


def _lost_cell(job: tuple, error: BaseException) -> dict[str, Any]:
    """A cell whose worker failed outside _run_cell: record it as _run_cell would have."""
    _, spec, seed, _, run_dir = job
    message = f"{type(error).__name__}: {' '.join(str(error).split()) or 'the worker process died'}"
    _write_error(Path(run_dir), spec, seed, "".join(traceback.format_exception(error)))
    return {"ok": False, "error": message}


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            'backend="ray" needs Ray, which is not installed; install it with '
            'pip install "ikrl[ray]" (or use backend="process")'
        ) from None
    return ray


def _run_ray(
    jobs: list[tuple], workers: int | None, address: str | None, finished: Callable[[int, dict], None]
) -> None:
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address)
        else:
            ray.init(include_dashboard=False)
        started = True
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        node_cpus = max([int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")] or [1])
        # With workers given, each cell asks for its share of the cores (at most one node's);
        # without, one core each, and Ray runs as many at once as the cluster has cores.
        threads = max(1, min(node_cpus, cpus // workers)) if workers else 1
        in_flight = workers or len(jobs)
        remote = ray.remote(num_cpus=threads, max_retries=0)(_run_cell)
        queue = list(enumerate(jobs))
        pending: dict[Any, int] = {}
        while queue or pending:
            while queue and len(pending) < in_flight:
                index, job = queue.pop(0)
                pending[remote.remote(*job, threads=threads)] = index
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                index = pending.pop(ref)
                try:
                    record = ray.get(ref)
                except Exception as error:  # noqa: BLE001 - the worker or node died
                    record = _lost_cell(jobs[index], error)
                finished(index, record)
    finally:
        if started:
            ray.shutdown()


class _Progress:
    """A rich progress bar over cells, or nothing when progress=False."""

    def __init__(self, enabled: bool, *, total: int, done: int) -> None:
        self.enabled = enabled
        self.total, self.done = total, done
        self.progress: Any = None

    def __enter__(self) -> Self:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("[bold]cells"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.description}"),
            )
            self.progress.__enter__()
            skipped = f"{self.done} already finished" if self.done else ""
            self.task = self.progress.add_task(skipped, total=self.total, completed=self.done)
        return self

    def advance(self, cell: Cell, outcome: CellOutcome) -> None:
        if self.progress is None:
            return
        from rich.markup import escape  # specs and error messages may hold '[', which rich reads as markup

        if outcome.status == "failed":
            self.progress.console.print(
                f"[bold red]failed[/] {escape(cell.spec)} seed {cell.seed}: {escape(outcome.error or '')}",
                highlight=False,
                soft_wrap=True,
            )
        self.progress.update(self.task, advance=1, description=escape(f"last: {cell.spec} seed {cell.seed}"))

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)


# ----------------------------------------------------------------------------- grid.json


def _write_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file, so a reader never sees half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def _config_dict(config: ConfigLike) -> dict[str, Any]:
    """The config as JSON would give it back, without the seed (each cell sets its own)."""
    data = json.loads(json.dumps(config.to_dict(), default=str))
    data.pop("seed", None)
    return data


def _record_grid(
    out_dir: Path, pattern: str, seeds: list[int], config: ConfigLike, cells: list[Cell]
) -> None:
    """Create or extend grid.json; refuse a folder trained with another config."""
    path = out_dir / GRID_FILE
    config_data = _config_dict(config)
    if path.is_file():
        try:
            grid = json.loads(path.read_text())
            old_config, old_cells, runs = grid["config"], grid["cells"], grid["runs"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise GridError(
                f"{path} is not a grid file this version can read ({error}); use another out_dir or delete it"
            ) from None
        if old_config != config_data:
            raise GridError(
                f"{out_dir} holds a grid trained with another config: {_differences(old_config, config_data)}. "
                f"Rerun with the same config to resume or extend that grid, or choose another out_dir"
            )
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise GridError(
            f"{out_dir} is not empty and has no {GRID_FILE}, so it is not an ablation folder; "
            f"choose a new or empty out_dir"
        )
    else:
        old_cells, runs = [], []
    known = {(c["spec"], c["seed"]) for c in old_cells}
    new_cells = [
        {"spec": c.spec, "seed": c.seed, "folder": c.folder} for c in cells if (c.spec, c.seed) not in known
    ]
    run = {"pattern": pattern, "seeds": seeds}
    grid = {
        "format": _GRID_FORMAT,
        "config": config_data,
        "runs": runs + ([run] if run not in runs else []),
        "cells": old_cells + new_cells,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(path, grid)


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    changes = []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            changes.append(f"{key}={old[key]!r} there, missing here")
        elif key not in old:
            changes.append(f"{key}={new[key]!r} here, missing there")
        elif old[key] != new[key]:
            changes.append(f"{key}={old[key]!r} there, {new[key]!r} here")
    return "; ".join(changes)


def _grid_cells(out_dir: Path) -> tuple[list[Cell], dict[str, Any]]:
    path = Path(out_dir) / GRID_FILE
    try:
        grid = json.loads(path.read_text())
        return [Cell(c["spec"], int(c["seed"])) for c in grid["cells"]], grid
    except FileNotFoundError:
        raise GridError(f"{out_dir} has no {GRID_FILE}: it is not a folder that run_grid wrote") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise GridError(f"{path} is not a grid file this version can read ({error})") from None


# ----------------------------------------------------------------------------- summary

TRAIN_SECONDS = "train_seconds"

# The columns of the markdown table: metric, heading, scale, format.
_COLUMNS: tuple[tuple[str, str, float, str], ...] = (
    ("success_5mm_2deg", "success 5mm/2° (%)", 100.0, ".1f"),
    ("success_1mm_1deg", "success 1mm/1° (%)", 100.0, ".1f"),
    ("position_error_median", "median pos. error (mm)", 1000.0, ".2f"),
    ("rotation_error_median", "median rot. error (°)", 180.0 / math.pi, ".2f"),
    (TRAIN_SECONDS, "train time (s)", 1.0, ".1f"),
)


@dataclass(frozen=True)
class SpecStats:
    """Mean and standard deviation of each metric over one spec's finished seeds."""

    spec: str
    seeds: tuple[int, ...]
    mean: dict[str, float]
    std: dict[str, float]


@dataclass(frozen=True)
class Summary:
    """One row per spec with at least one finished cell, in the order the grid planned them.

    ``std`` is the sample standard deviation (ddof=1) over seeds, and 0 when a spec has one
    finished seed (there is no spread to estimate then, and 0 keeps the table numeric).
    ``unfinished`` lists the planned cells without eval.json (failed, or not run yet).
    """

    rows: tuple[SpecStats, ...]
    metrics: tuple[str, ...]
    unfinished: tuple[Cell, ...] = field(default=())

    def markdown(self) -> str:
        """A markdown table: spec, seeds, the headline metrics as mean ± std, train time."""
        header = ["spec", "seeds"] + [heading for _, heading, _, _ in _COLUMNS]
        lines = ["| " + " | ".join(header) + " |", "|---|---:|" + "---:|" * len(_COLUMNS)]
        for row in self.rows:
            cells = [f"`{row.spec}`".replace("|", "\\|"), str(len(row.seeds))]
            for metric, _, scale, fmt in _COLUMNS:
                if metric in row.mean:
                    cells.append(f"{row.mean[metric] * scale:{fmt}} ± {row.std[metric] * scale:{fmt}}")
                else:
                    cells.append("–")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("Mean ± standard deviation over seeds (sample std, ddof=1; 0 with one seed).")
        if not self.rows:
            lines.append("No cell has finished yet.")
        if self.unfinished:
            listing = ", ".join(f"{c.spec} seed {c.seed}" for c in self.unfinished)
            lines.append(f"{len(self.unfinished)} cell(s) not finished: {listing}.")
        return "\n".join(lines) + "\n"

    def to_csv(self, path: Path | str) -> Path:
        """One row per spec: spec, seeds (count), seed_list, then <metric>_mean, <metric>_std."""
        path = Path(path)
        with path.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(
                ["spec", "seeds", "seed_list"] + [f"{m}_{s}" for m in self.metrics for s in ("mean", "std")]
            )
            for row in self.rows:
                values = []
                for metric in self.metrics:
                    values += [row.mean.get(metric, ""), row.std.get(metric, "")]
                writer.writerow([row.spec, len(row.seeds), " ".join(map(str, row.seeds))] + values)
        return path

    def write(self, out_dir: Path | str) -> None:
        """summary.md, summary.csv and summary.png in out_dir."""
        out_dir = Path(out_dir)
        (out_dir / "summary.md").write_text(self.markdown())
        self.to_csv(out_dir / "summary.csv")
        plot(self, out_dir / "summary.png")


def summarize(out_dir: Path | str) -> Summary:
    """Mean ± std per spec over the finished cells (folders with eval.json) of a grid folder.

    Every numeric entry of eval.json is averaged, plus ``train_seconds`` (from the cell.json
    run_grid writes). A metric missing from some seeds is averaged over the seeds that have it.
    """
    cells, _ = _grid_cells(Path(out_dir))
    values: dict[str, dict[str, list[float]]] = {}
    seeds: dict[str, list[int]] = {}
    metrics: dict[str, None] = {}  # ordered set
    unfinished = []
    for cell in cells:
        folder = Path(out_dir) / cell.folder
        if not (folder / EVAL_FILE).is_file():
            unfinished.append(cell)
            continue
        evaluation, seconds = _read_finished(folder)
        numbers = {
            k: float(v)
            for k, v in evaluation.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in _NOT_METRICS
        }
        if seconds is not None:
            numbers[TRAIN_SECONDS] = float(seconds)
        seeds.setdefault(cell.spec, []).append(cell.seed)
        for key, value in numbers.items():
            metrics.setdefault(key)
            values.setdefault(cell.spec, {}).setdefault(key, []).append(value)
    rows = []
    for spec, spec_seeds in seeds.items():
        by_metric = values.get(spec, {})
        rows.append(
            SpecStats(
                spec,
                tuple(spec_seeds),
                {k: _mean(v) for k, v in by_metric.items()},
                {k: _std(v) for k, v in by_metric.items()},
            )
        )
    return Summary(tuple(rows), tuple(metrics), tuple(unfinished))


#: Numbers in eval.json that describe the protocol, not the result.
_NOT_METRICS = frozenset({"seed", "targets", "swarm", "steps"})


def _finite(values: list[float]) -> list[float]:
    # A metric can be NaN in a cell (mean steps to success when nothing succeeded): it is
    # left out of that metric's mean and std rather than making them NaN or crashing.
    return [v for v in values if math.isfinite(v)]


def _mean(values: list[float]) -> float:
    finite = _finite(values)
    return statistics.fmean(finite) if finite else math.nan


def _std(values: list[float]) -> float:
    finite = _finite(values)
    return statistics.stdev(finite) if len(finite) > 1 else (0.0 if finite else math.nan)


def plot(summary: Summary, path: Path | str) -> Path:
    """A PNG: success (5 mm, 2°) and median position error per spec, bars with std error bars."""
    from matplotlib.figure import Figure

    path = Path(path)
    rows = summary.rows
    height = 1.5 + 0.4 * max(1, len(rows))
    fig = Figure(figsize=(11, height), dpi=100, layout="constrained")
    success_ax, error_ax = fig.subplots(1, 2, sharey=True)
    if not rows:
        success_ax.text(
            0.5, 0.5, "no finished cells", ha="center", va="center", transform=success_ax.transAxes
        )
    labels = [row.spec for row in rows]
    positions = list(range(len(rows)))
    panels: Iterable[tuple[Any, str, float, str, str]] = (
        (success_ax, "success_5mm_2deg", 100.0, "success within 5 mm and 2° (%)", "tab:green"),
        (error_ax, "position_error_median", 1000.0, "median position error (mm)", "tab:blue"),
    )
    for ax, metric, scale, title, colour in panels:
        means = [row.mean.get(metric, math.nan) * scale for row in rows]
        stds = [row.std.get(metric, 0.0) * scale for row in rows]
        ax.barh(positions, means, xerr=stds, color=colour, alpha=0.8, capsize=3)
        ax.set_xlabel(title)
        ax.grid(axis="x", alpha=0.3)
    success_ax.set_yticks(positions, labels, fontsize=8)
    success_ax.invert_yaxis()  # the first spec at the top, as in the table
    seeds = sorted({len(row.seeds) for row in rows})
    fig.suptitle(f"mean ± std over {'/'.join(map(str, seeds)) or 0} seed(s)", fontsize=10)
    fig.savefig(path)
    return path
