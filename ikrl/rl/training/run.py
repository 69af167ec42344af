"""A training run: an algorithm driven within a budget, with logs, checkpoints and a verdict.

``train(spec, config, run_dir)`` builds the environment from the spec, the algorithm named by
``config.algorithm`` and a fresh policy for it (the algorithm's ``policy_for(env, hidden=...,
seed=..., **params)`` when it has one, else an MLP :class:`~ikrl.rl.policy.Policy`; or the one
of a checkpoint, to resume); it then calls ``update()`` until the budget is spent: minutes of
**CPU time** of the training process (``time.process_time``, so that runs sharing a machine
get equal work; an algorithm that starts worker processes gives each the same CPU time),
environment steps, or both (the first reached). Optional algorithm methods the loop calls:
``set_budget(cpu_seconds, steps)`` before the first update, ``finish()`` after the last,
``summary()`` for the evaluation's record. Along the way it shows a progress
bar with live metrics, logs scalars with TorchRL's logger (CSV, or TensorBoard when asked and
installed), validates on a small held-out set a few times, and checkpoints. At the end the run
folder holds:

==================  =====================================================================
``checkpoint.pt``   policy, resolved spec, kinematics fingerprint, config, versions (:mod:`ikrl.rl.checkpoint`)
``config.json``     the training configuration and the resolved spec
``metrics.csv``     one row per log point: steps, seconds, training and validation metrics
``curves.png``      the training curves
``eval.json``       the final evaluation (:mod:`ikrl.rl.evaluate`), written last
``logs/``           TorchRL's logger output
==================  =====================================================================
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ikrl.errors import BadParameterError, CheckpointError, CheckpointMismatchError, PluginError
from ikrl.extend.components import Algorithm
from ikrl.extend.registry import default_registry
from ikrl.rl.checkpoint import (
    MAX_EPISODE_STEPS,
    Checkpoint,
    env_record,
    kinematics_fingerprint,
    load_checkpoint,
    robot_record,
)
from ikrl.rl.evaluate import evaluate, evaluate_policy
from ikrl.rl.policy import Policy, goal_features
from ikrl.rl.training.gradients import check_reward_gradient, needs_reward_gradient
from ikrl.util.checks import check_device, check_int, check_seed
from ikrl.util.metrics import METRICS
from ikrl.util.progress import ProgressBar
from ikrl.viz.curves import plot_curves

__all__ = ["DEFAULT_MINUTES", "RunResult", "TrainConfig", "train"]

#: The default budget when neither minutes nor steps is given: the README's main job
#: (training plus the final evaluation) stays within 10 minutes on a 2-core CPU.
DEFAULT_MINUTES = 7.5
#: Seed of the validation targets shown during training (not the final held-out set).
VALIDATION_SEED = 1_234_567
VALIDATION_TARGETS = 256
#: Validations (and checkpoints) per run.
VALIDATIONS = 10


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``minutes`` and ``steps`` (environment transitions) bound the budget;
    with neither, it is :data:`DEFAULT_MINUTES`. ``threads`` sets torch's CPU threads (default
    1 on CPU, see :func:`train`). ``params`` are the algorithm's own
    hyperparameters (keyword arguments of its class, e.g. ``{"lr": 1e-3}`` for apg)."""

    algorithm: str = "goal"
    minutes: float | None = None
    steps: int | None = None
    batch_size: int | None = None
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    hidden: tuple[int, ...] = (256, 256, 256)
    max_steps: int = 100
    eval_targets: int = 1000
    threads: int | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        default_registry().algorithm(self.algorithm)  # an unknown name raises with suggestions
        check_seed("TrainConfig", self.seed)
        check_int("TrainConfig", "max_steps", self.max_steps, low=1, high=MAX_EPISODE_STEPS)
        if self.minutes is not None and not (
            isinstance(self.minutes, (int, float)) and not isinstance(self.minutes, bool) and 0 < self.minutes < math.inf
        ):
            raise BadParameterError(f"minutes must be a positive finite number (CPU minutes); got {self.minutes!r}")
        if self.steps is not None and not (isinstance(self.steps, int) and self.steps > 0):
            raise BadParameterError(f"steps must be a positive int (environment transitions); got {self.steps!r}")
        if self.batch_size is not None and not (isinstance(self.batch_size, int) and self.batch_size > 0):
            raise BadParameterError(f"batch_size must be a positive int (arms); got {self.batch_size!r}")
        if self.dtype not in ("float32", "float64"):
            raise BadParameterError(f"dtype must be float32 or float64; got {self.dtype!r}")
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "params", dict(self.params))

    @property
    def arms(self) -> int:
        if self.batch_size:
            return self.batch_size
        component = default_registry().algorithm(self.algorithm)
        size = getattr(component.factory, "default_batch_size", None)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise PluginError(
                f"algorithm {self.algorithm!r} from {component.distribution!r} declares no default_batch_size "
                f"(a positive int); give batch_size, or add default_batch_size to its factory"
            )
        return size

    @property
    def processes(self) -> int:
        """Processes one run of this config keeps busy: the algorithm's ``processes(minutes,
        params)`` when it declares one (``goal`` starts a worker), else 1."""
        count = getattr(default_registry().algorithm(self.algorithm).factory, "processes", None)
        found = count(self.budget_minutes if self.steps is None else None, self.params) if callable(count) else 1
        if isinstance(found, bool) or not isinstance(found, int) or found < 1:
            raise PluginError(f"algorithm {self.algorithm!r}: processes(minutes, params) must return a positive int; got {found!r}")
        return found

    @property
    def budget_minutes(self) -> float | None:
        return self.minutes if (self.minutes is not None or self.steps is not None) else DEFAULT_MINUTES

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["hidden"] = list(self.hidden)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(record) - known
        if unknown:
            raise BadParameterError(f"unknown training options {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        return cls(**record)


@dataclass
class RunResult:
    run_dir: Path
    checkpoint: Path
    evaluation: dict[str, float]
    train_seconds: float
    steps: int


class _Budget:
    def __init__(self, config: TrainConfig, steps: int, seconds: float) -> None:
        self.minutes = config.budget_minutes
        self.max_steps = config.steps
        self.steps, self.seconds = steps, seconds

    def fraction(self) -> float:
        parts = []
        if self.minutes is not None:
            parts.append(self.seconds / (60 * self.minutes))
        if self.max_steps is not None:
            parts.append(self.steps / self.max_steps)
        return min(max(parts), 1.0)

    def spent(self) -> bool:
        return self.fraction() >= 1.0


def train(
    spec: str,
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    logger: str = "csv",
    on_log: Callable[[dict[str, float]], None] | None = None,
) -> RunResult:
    """Train a policy for ``spec``; see the module docstring for what the run folder holds.

    ``resume`` is a checkpoint (or run folder) to continue from: same spec, same kinematics;
    the budget counts what it had already used. A ``run_dir`` that already holds a run is
    refused unless it is resumed or ``overwrite`` is given (which deletes that run's files
    first, so no file of the old run stays beside the new one). ``logger`` is ``csv``,
    ``tensorboard`` or ``none``. Returns the run's :class:`RunResult`.
    """
    from ikrl.env.make import make_env

    # Checked here, not in TrainConfig: a config may be written where its device is absent
    # (an ablation's head node) and run where it is.
    device = check_device(config.device)
    run_dir = Path(run_dir)
    _claim(run_dir, resume, overwrite)
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    elif device.type == "cpu":
        # Batches of a few hundred arms gain nothing from intra-op threads, and lose 4x or
        # more when another process shares the cores (measured on 2 cores).
        torch.set_num_threads(1)
    torch.manual_seed(config.seed)
    dtype = getattr(torch, config.dtype)
    env = make_env(spec, batch_size=config.arms, seed=config.seed, device=config.device, dtype=dtype, max_steps=config.max_steps)
    resolved = str(env.resolved_spec)
    registry = default_registry()
    component = registry.algorithm(config.algorithm)
    component.check_parameters(config.params)
    if needs_reward_gradient(component.factory):
        others = [c.name for c in registry.components("algorithm") if not needs_reward_gradient(c.factory)]
        check_reward_gradient(env, config.algorithm, others)
    # Any: a policy is an nn.Module with config() and kind (ikrl.rl.policy), an algorithm a
    # plugin's object with the Algorithm protocol and optional members, checked below.
    policy: Any = new_policy(component.factory, env, config).to(config.device)
    algorithm: Any = component.factory(env, policy, seed=config.seed, **config.params)
    if not isinstance(algorithm, Algorithm):
        raise PluginError(
            f"algorithm {config.algorithm!r} from {component.distribution!r} built a {type(algorithm).__name__}, "
            f"which lacks {', '.join(m for m in ('update', 'set_progress', 'state_dict', 'load_state_dict', 'default_batch_size') if not hasattr(algorithm, m))} "
            f"(see ikrl.extend.components.Algorithm)"
        )
    policy_kind = getattr(policy, "kind", "mlp")
    steps, seconds, history = 0, 0.0, []
    if resume is not None:
        previous = load_checkpoint(resume)
        previous.check_chain(env.chain)
        if previous.spec != resolved:
            raise CheckpointMismatchError(
                f"cannot resume {previous.path}: it was trained on {previous.spec!r}, not {resolved!r}"
            )
        if previous.algorithm != config.algorithm or previous.policy_kind != policy_kind:
            raise CheckpointMismatchError(
                f"cannot resume {previous.path} with {config.algorithm!r}: it was trained with {previous.algorithm!r}"
            )
        policy.load_state_dict(previous.policy_state)
        if previous.optimizer is not None:
            algorithm.load_state_dict(previous.optimizer)
        steps = int(previous.progress.get("steps", 0))
        seconds = float(previous.progress.get("seconds", 0.0))
        if previous.path is not None:
            # The rows logged up to the checkpoint: what was logged after it is redone.
            history = [row for row in read_metrics(previous.path.parent / "metrics.csv") if row["steps"] <= steps]
    (run_dir / "config.json").write_text(json.dumps({"spec": resolved, "config": config.to_dict()}, indent=2) + "\n")

    validation_env = make_env(
        resolved, batch_size=VALIDATION_TARGETS, seed=VALIDATION_SEED, device=config.device, dtype=dtype, max_steps=config.max_steps
    )
    log = _Logger(run_dir, logger, history)
    budget = _Budget(config, steps, seconds)
    fingerprint = kinematics_fingerprint(env.chain)

    def checkpoint() -> Checkpoint:
        return Checkpoint(
            algorithm=config.algorithm,
            spec=resolved,
            fingerprint=fingerprint,
            robot=robot_record(env.chain),
            env=env_record(env),
            policy_config=policy.config(),
            policy_kind=policy_kind,
            policy_state={k: v.detach().cpu().clone() for k, v in policy.state_dict().items()},
            train_config=config.to_dict(),
            progress={"steps": budget.steps, "seconds": budget.seconds, "updates": getattr(algorithm, "updates", 0)} | summary(),
            optimizer=algorithm.state_dict(),
        )

    def validate(train_metrics: dict[str, float]) -> dict[str, float]:
        policy.eval()
        result = evaluate_policy(validation_env, policy, targets=VALIDATION_TARGETS, seed=VALIDATION_SEED).metrics()
        policy.train()
        row = {"steps": budget.steps, "seconds": round(budget.seconds, 3), "fraction": budget.fraction()}
        row |= {f"train/{k}": v for k, v in train_metrics.items() if k != "transitions"}
        row |= {f"val/{k}": result[k] for k in ("success_5mm_2deg", "success_1mm_1deg", "position_error_median", "rotation_error_median")}
        history.append(row)
        log.write(row)
        checkpoint().save(run_dir)
        if on_log is not None:
            on_log(row)
        return row

    # The optional members of an algorithm (ikrl.extend.components.Algorithm).
    summarize = getattr(algorithm, "summary", None)
    set_budget = getattr(algorithm, "set_budget", None)
    finish = getattr(algorithm, "finish", None)

    def summary() -> dict[str, float]:
        return dict(summarize()) if summarize is not None else {}

    if set_budget is not None:
        minutes = budget.minutes
        set_budget(None if minutes is None else 60.0 * minutes, config.steps)
    next_validation = budget.fraction()
    wall_start = time.perf_counter()
    last: dict[str, float] = {}
    validation_text = ""
    with ProgressBar(progress, total=1.0, label=f"{config.algorithm} {resolved}", completed=budget.fraction()) as bar:
        while not budget.spent():
            algorithm.set_progress(budget.fraction())
            start = time.process_time()
            metrics = algorithm.update()
            budget.seconds += time.process_time() - start
            budget.steps += int(metrics["transitions"])
            last = metrics
            if budget.fraction() >= next_validation or budget.spent():
                row = validate(metrics)
                next_validation = budget.fraction() + 1.0 / VALIDATIONS
                validation_text = "val " + ", ".join(
                    METRICS[name].show(row[f"val/{name}"]) for name in ("success_5mm_2deg", "position_error_median", "rotation_error_median")
                )
            bar.update(completed=budget.fraction(), description=f"reward {metrics.get('reward', math.nan):.4f} | {validation_text}")
        if finish is not None:
            finish()  # e.g. wait for a worker's last weights: validate those
            validate(last)
        elif not history or history[-1]["steps"] != budget.steps:
            validate(last)
    saved = checkpoint().save(run_dir)
    plot_curves(history, run_dir / "curves.png", title=f"{resolved} ({config.algorithm})")
    final = evaluate(load_checkpoint(saved), targets=config.eval_targets, device=config.device)
    final.extra = {
        "algorithm": config.algorithm,
        "train_seconds": budget.seconds,
        "train_wall_seconds": time.perf_counter() - wall_start,
        "train_steps": budget.steps,
    } | summary()
    final.to_json(run_dir / "eval.json")
    return RunResult(run_dir, saved, final.metrics(), budget.seconds, budget.steps)


#: What a run writes into its folder (removed by ``overwrite``; evaluations' own files stay).
RUN_FILES = ("checkpoint.pt", "config.json", "metrics.csv", "curves.png", "eval.json")


def _claim(run_dir: Path, resume: str | Path | None, overwrite: bool) -> None:
    """Refuse to train over an earlier run unless resuming it or told to overwrite it."""
    held = [name for name in RUN_FILES if (run_dir / name).exists()]
    if not held:
        return
    if resume is not None and Path(resume).resolve() in (run_dir.resolve(), (run_dir / "checkpoint.pt").resolve()):
        return
    if not overwrite:
        raise CheckpointError(
            f"{run_dir} already holds a run ({', '.join(held)}): resume it (--resume {run_dir}), "
            f"replace it (--overwrite), or train into another folder (--out)"
        )
    import shutil

    for name in held:
        (run_dir / name).unlink()
    shutil.rmtree(run_dir / "logs", ignore_errors=True)


def new_policy(factory: Any, env, config: TrainConfig) -> torch.nn.Module:
    """A fresh policy for ``env``: the algorithm's ``policy_for`` if it has one, else the
    anchored MLP :class:`~ikrl.rl.policy.Policy` sized by ``config.hidden``."""
    policy_for = getattr(factory, "policy_for", None)
    if policy_for is not None:
        return policy_for(env, hidden=config.hidden, seed=config.seed, **config.params)
    size = env.observation_spec["observation"].shape[-1]
    return Policy(size, env.max_delta, hidden=config.hidden, goal_features=goal_features(env))


# ---------------------------------------------------------------------- logging


def read_metrics(path: Path) -> list[dict[str, float]]:
    """The rows of a run's ``metrics.csv`` as numbers (``[]`` when there is none); an empty
    cell is NaN. A file that is not such a table is a :class:`CheckpointError`."""
    if not path.is_file():
        return []
    try:
        with path.open(newline="") as handle:
            rows = [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items()} for row in csv.DictReader(handle)]
    except (ValueError, csv.Error, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: cannot read the run's metrics to keep them on resume ({error}); move it away to start a new history") from None
    if rows and "steps" not in rows[0]:
        raise CheckpointError(f"{path}: has no 'steps' column; move it away to start a new history")
    return rows


class _Logger:
    """``metrics.csv`` (ours, one table) plus TorchRL's logger for the same scalars."""

    def __init__(self, run_dir: Path, kind: str, earlier: list[dict[str, float]] | None = None) -> None:
        if kind not in ("csv", "tensorboard", "none"):
            raise BadParameterError(f"logger must be csv, tensorboard or none; got {kind!r}")
        self.path = run_dir / "metrics.csv"
        self.rows: list[dict[str, float]] = list(earlier or [])  # a resumed run keeps its history
        self.torchrl = None
        if kind == "csv":
            from torchrl.record.loggers import CSVLogger

            self.torchrl = CSVLogger(exp_name="train", log_dir=str(run_dir / "logs"))
        elif kind == "tensorboard":
            try:
                from torchrl.record.loggers import TensorboardLogger

                self.torchrl = TensorboardLogger(exp_name="train", log_dir=str(run_dir / "logs"))
            except ImportError as error:
                raise BadParameterError(f"the tensorboard logger needs the tensorboard package (pip install tensorboard): {error}") from None

    def write(self, row: dict[str, float]) -> None:
        self.rows.append(row)
        columns = list(dict.fromkeys(k for r in self.rows for k in r))
        with self.path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)
        if self.torchrl is not None:
            for key, value in row.items():
                if key != "steps" and isinstance(value, (int, float)) and math.isfinite(value):
                    self.torchrl.log_scalar(key, float(value), step=int(row["steps"]))
