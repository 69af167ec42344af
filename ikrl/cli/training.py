"""``ikrl train``, ``ikrl eval``, ``ikrl ablate``, ``ikrl render``: learning and what comes after."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.table import Table

from ikrl.cli.base import command, console, result_path
from ikrl.errors import BadParameterError
from ikrl.rl.evaluate import EVAL_SEED

#: ``ikrl eval --targets N`` at most: every target is an arm of one environment.
MAX_EVAL_TARGETS = 1_000_000


def _evaluation_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False)
    for label, value in rows:
        table.add_row(label, value)
    return table


def _params(values: list[str]) -> dict[str, object]:
    """``--param lr=1e-3 --param horizon=5``: values parsed as spec values (numbers, true/false, strings)."""
    from ikrl.spec.grammar import parse_value

    params = {}
    for item in values:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"--param takes NAME=VALUE, e.g. lr=1e-3; got {item!r}")
        params[name.strip()] = parse_value(text.strip())
    return params


@command()
def train(
    spec: Annotated[str, typer.Argument(help='What to learn, e.g. "dobot_cr5+weighted_pose+sincos".')],
    algorithm: Annotated[str, typer.Option(help="goal (goal network + learned corrector), apg (back-propagation through rollouts) or sac (TorchRL's SAC).")] = "goal",
    minutes: Annotated[float | None, typer.Option(min=0, help="Training budget in minutes (default 7.5 when --steps is not given).")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Training budget in environment steps (transitions).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Arms per environment batch (default: the algorithm's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the environment, the networks and the curriculum.")] = 0,
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda.")] = "cpu",
    out: Annotated[Path | None, typer.Option(help="Run folder (default: runs/<spec>-<algorithm>-seed<seed>).")] = None,
    resume: Annotated[Path | None, typer.Option(help="A checkpoint or run folder to continue training from.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a run already in the folder (default: refuse).")] = False,
    logger: Annotated[str, typer.Option(help="csv, tensorboard or none (TorchRL's logger, in <out>/logs).")] = "csv",
    param: Annotated[list[str] | None, typer.Option(help="An algorithm hyperparameter, NAME=VALUE (repeatable).")] = None,
    eval_targets: Annotated[int, typer.Option(min=1, help="Held-out targets of the final evaluation.")] = 1000,
    threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads (default 1: small batches gain nothing from more).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a policy for SPEC, then evaluate it on held-out targets.

    The run folder gets checkpoint.pt, config.json, metrics.csv, curves.png, eval.json and logs/.
    """
    from ikrl.grid.plan import run_folder_name
    from ikrl.rl.training.run import TrainConfig
    from ikrl.rl.training.run import train as run_training
    from ikrl.spec.grammar import EnvSpec
    from ikrl.util.files import check_destination

    config = TrainConfig(
        algorithm=algorithm, minutes=minutes, steps=steps, batch_size=batch_size, seed=seed,
        device=device, eval_targets=eval_targets, threads=threads, params=_params(param or []),
    )  # fmt: skip
    folder = out or Path("runs") / run_folder_name(str(EnvSpec.parse(spec)), algorithm, seed)
    check_destination(folder, folder=True)
    console.print(f"training {spec} with {algorithm} into {folder}", highlight=False)
    result = run_training(spec, config, folder, resume=resume, overwrite=overwrite, progress=progress, logger=logger)
    evaluation = json.loads((result.run_dir / "eval.json").read_text())
    _print_evaluation(evaluation, title=f"{evaluation['spec']} ({algorithm}, {result.train_seconds / 60:.1f} min, {result.steps:,} steps)")
    console.print(f"run folder: {result.run_dir} (checkpoint.pt, curves.png, eval.json)", highlight=False)


def _print_evaluation(record: dict, *, title: str) -> None:
    from ikrl.rl.evaluate import rows_from_metrics

    console.print(_evaluation_table(title, rows_from_metrics(record)))


@command("eval")
def evaluate_command(
    run: Annotated[Path, typer.Argument(help="A run folder or checkpoint file.")],
    targets: Annotated[
        str, typer.Option(help="How many held-out targets, or a file of target poses (.npy, .csv, .pt: the formats ikrl solve reads).")
    ] = "1000",
    seed: Annotated[int, typer.Option(help="Seed of the held-out targets and starts (another seed: another held-out set).")] = EVAL_SEED,
    spec_sampler: Annotated[
        bool, typer.Option("--spec-sampler", help="Draw starts and targets from the spec's own sampler, not uniformly.")
    ] = False,
    swarm: Annotated[int, typer.Option(min=1, help="Starts per target; the best final pose counts.")] = 1,
    device: Annotated[str, typer.Option(help="torch device.")] = "cpu",
    out: Annotated[
        Path | None, typer.Option(help="Where to write the JSON (default: a new <run>/eval-<what>.json; never an old one).")
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads (default: torch's).")] = None,
    refine: Annotated[
        bool, typer.Option("--refine", help="Polish each answer with the solver (no restarts) and report that.")
    ] = False,
    goal_only: Annotated[
        bool, typer.Option("--goal-only", help="A goal policy's goal network alone: the nearest head's errors, no rollout.")
    ] = False,
) -> None:
    """Evaluate a trained policy on held-out targets: success rates, errors, speed.

    Each evaluation writes a file of its own: the trainer's eval.json is never overwritten.
    """
    from ikrl.rl.checkpoint import load_checkpoint
    from ikrl.rl.evaluate import evaluate, evaluate_heads
    if threads is not None:
        torch.set_num_threads(threads)
    count, poses = _count_or_poses(targets)
    checkpoint = load_checkpoint(run)
    parts = [f"seed{seed}"] if seed != EVAL_SEED else []
    parts += [f"targets-{Path(targets).stem}"] if poses is not None else []
    parts += ["spec-sampler"] if spec_sampler else []
    parts += [f"swarm{swarm}"] if swarm > 1 else []
    parts += ["refined"] if refine else []
    parts += ["goal-only"] if goal_only else []
    folder = checkpoint.path.parent if checkpoint.path is not None else Path(".")
    # Checked before the work: an existing --out is refused, an unwritable one named.
    destination = result_path(out, "eval-" + ("-".join(parts) or "held-out") + ".json", folder=folder)
    if goal_only and (poses is not None or spec_sampler or swarm > 1 or refine):
        raise BadParameterError("--goal-only evaluates the goal network on held-out targets: without --swarm, --refine, --spec-sampler or a targets file")
    if goal_only:
        result = evaluate_heads(checkpoint, targets=count, device=device, seed=seed)
    else:
        result = evaluate(checkpoint, targets=count, swarm=swarm, device=device, seed=seed, refine=refine, poses=poses, sampler=spec_sampler)
    result.extra |= {"algorithm": checkpoint.algorithm, "checkpoint": str(checkpoint.path)}
    if poses is not None:
        result.extra["targets_file"] = str(targets)
    path = result.to_json(destination)
    how = "policy + solver" if refine else "goal network alone" if goal_only else checkpoint.algorithm
    _print_evaluation(result.metrics(), title=f"{checkpoint.spec} ({how}; targets: {result.source}, seed {seed})")
    if goal_only:
        console.print(
            f"mean errors of the nearest head: {1000 * result.extra['position_error_mean']:.2f} mm, "
            f"{math.degrees(result.extra['rotation_error_mean']):.2f}°",
            highlight=False,
        )
    if refine:
        console.print(
            f"the policy alone: {100 * result.extra['policy_success_5mm_2deg']:.1f} % within 5 mm, 2°; "
            f"{100 * result.extra['policy_success_1mm_1deg']:.1f} % within 1 mm, 1°; "
            f"the solver added {result.extra['solver_iterations_mean']:.1f} iterations per target",
            highlight=False,
        )
    console.print(f"written: {path}", highlight=False)


def _count_or_poses(targets: str) -> tuple[int, torch.Tensor | None]:
    """``--targets``: a positive count of held-out targets, or a file of poses."""
    from ikrl.solver.targets import load_targets

    if targets.isdigit() and not Path(targets).exists():
        if not 1 <= int(targets) <= MAX_EVAL_TARGETS:
            raise BadParameterError(
                f"--targets must be a count from 1 to {MAX_EVAL_TARGETS:,} or a file of poses; got {targets!r}"
            )
        return int(targets), None
    if not Path(targets).suffix and not Path(targets).exists():
        raise BadParameterError(f"--targets must be a positive count or a file of poses (.npy, .csv, .pt); got {targets!r}")
    poses = load_targets(targets)
    return len(poses), poses


@command()
def ablate(
    pattern: Annotated[str, typer.Argument(help='Specs with braces: "dobot_cr5+{weighted_pose,geodesic}+{sincos,raw}".')],
    seeds: Annotated[int, typer.Option(min=1, help="Seeds per spec: 0, 1, ..., SEEDS-1.")] = 3,
    out: Annotated[Path, typer.Option(help="The grid folder: a folder per cell, grid.json, summary.md/.csv/.png.")] = Path("ablation"),
    backend: Annotated[str, typer.Option(help="process (local processes), ray (a Ray cluster) or serial (this process).")] = "process",
    workers: Annotated[int | None, typer.Option(min=1, help="Cells at once (default: one per CPU core, one per two for goal runs in minutes: its worker takes the other).")] = None,
    ray_address: Annotated[str | None, typer.Option(help="Address of a running Ray cluster (default: start a local one).")] = None,
    algorithm: Annotated[str, typer.Option(help="Training algorithm of every cell.")] = "goal",
    steps: Annotated[int | None, typer.Option(min=1, help="Budget per cell in environment steps.")] = None,
    minutes: Annotated[float | None, typer.Option(min=0, help="Budget per cell in minutes.")] = None,
    eval_targets: Annotated[int, typer.Option(min=1, help="Held-out targets of each cell's evaluation.")] = 1000,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the cells and their folders, train nothing.")] = False,
) -> None:
    """Train every spec PATTERN expands to with several seeds; summarise mean ± std per spec.

    Rerunning into the same --out resumes: finished cells are skipped, half-finished ones rerun.
    """
    from ikrl.grid import plan, run_grid
    from ikrl.rl.training.run import TrainConfig
    from ikrl.util.files import check_destination

    if dry_run:
        for cell in plan(pattern, seeds):
            console.print(f"{cell.spec}  seed {cell.seed}  ->  {out / cell.folder}", highlight=False)
        return
    check_destination(out, folder=True)
    budget = {k: v for k, v in {"steps": steps, "minutes": minutes}.items() if v is not None}
    config = TrainConfig(algorithm=algorithm, eval_targets=eval_targets, **budget)
    result = run_grid(
        pattern, seeds=seeds, config=config, out_dir=out, backend=backend, workers=workers, ray_address=ray_address
    )
    typer.echo(result.summary.markdown())
    console.print(
        f"ran {len(result.ran)}, skipped {len(result.skipped)} finished, failed {len(result.failures)}; "
        f"summary: {out / 'summary.md'}, {out / 'summary.csv'}, {out / 'summary.png'}",
        highlight=False,
    )
    if result.failures:
        for failure in result.failures:
            console.print(
                f"[bold red]failed:[/] {failure.cell.spec} seed {failure.cell.seed}: {failure.error} "
                f"({out / failure.cell.folder / 'error.txt'})",
                highlight=False,
            )
        raise typer.Exit(code=1)


@command()
def render(
    run: Annotated[Path, typer.Argument(help="A run folder or checkpoint file.")],
    out: Annotated[Path | None, typer.Option(help="The animated GIF to write (default: a new rollout.gif).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file (default: refuse).")] = False,
    targets: Annotated[int, typer.Option(min=1, max=8, help="Arms (targets) drawn together.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the starts and targets.")] = 0,
    size: Annotated[int, typer.Option(min=64, help="Width and height in pixels.")] = 480,
    fps: Annotated[int, typer.Option(min=1, help="Frames per second.")] = 10,
) -> None:
    """Draw the trained policy moving the arm from its starts to a few targets, as a GIF."""
    from ikrl.rl.checkpoint import load_checkpoint
    from ikrl.rl.evaluate import held_out, rollout_policy
    from ikrl.viz.arm import render_rollout

    out = result_path(out, "rollout.gif", overwrite=overwrite)
    checkpoint = load_checkpoint(run)
    env = checkpoint.make_env(batch_size=targets, seed=seed)
    starts, target_q = held_out(env.chain, targets, 1, seed=seed)
    with torch.no_grad():
        target = env.chain.forward_kinematics(target_q)
    final, _, history = rollout_policy(env, checkpoint.policy(chain=env.chain), starts, target, record=True)
    assert history is not None  # record=True
    path = render_rollout(env.chain, history, target, out, fps=fps, size=(size, size), title=checkpoint.spec)
    errors = ", ".join(
        f"{1000 * p:.1f} mm / {math.degrees(r):.2f}°"
        for p, r in zip(final["position_error"].squeeze(-1).tolist(), final["rotation_error"].squeeze(-1).tolist(), strict=True)
    )
    console.print(f"written: {path} ({len(history)} steps; final errors {errors})", highlight=False)
