"""The ``ikrl`` command line (typer). Each command is a thin layer over the library."""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from rich.console import Console
from rich.table import Table

from ikrl.errors import BadParameterError, IkrlError
from ikrl.kinematics.protocol import jacobian_error
from ikrl.rl.evaluate import EVAL_SEED
from ikrl.util.timing import best_time

__all__ = ["app"]

app = typer.Typer(
    help="ikrl: inverse kinematics as reinforcement learning, for any robot arm.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)  # an error stays on one line, however narrow the terminal


@app.callback()
def main() -> None:
    """ikrl: inverse kinematics as reinforcement learning, for any robot arm."""


def _fail(error: Exception | str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {error}", highlight=False)
    return typer.Exit(code=1)


def command(name: str | None = None) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """``@app.command`` with the one error handler: an :class:`IkrlError` becomes a one-line
    message and exit code 1, never a traceback."""

    def decorate(function: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> None:
            try:
                function(*args, **kwargs)
            except IkrlError as error:
                raise _fail(error) from None

        return app.command(name)(run)

    return decorate


@command()
def demo(
    robot: Annotated[str, typer.Option(help="A robot that ships with ikrl (see robots/).")] = "dobot_cr5",
    batch: Annotated[int, typer.Option(min=1, help="Configurations in the batched forward kinematics.")] = 65536,
    out: Annotated[Path, typer.Option(help="Where to write the picture of the arm (PNG).")] = Path("ikrl-demo.png"),
    seed: Annotated[int, typer.Option(help="Seed of the random configurations.")] = 0,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 2,
) -> None:
    """Load a robot's chain, time batched forward kinematics and Jacobians, draw the arm."""
    from ikrl.extend.registry import build_robot
    from ikrl.spec.grammar import Part
    from ikrl.viz.arm import draw_arm

    torch.set_num_threads(threads)
    chain = build_robot(Part(robot))
    generator = torch.Generator().manual_seed(seed)
    q = chain.lower + (chain.upper - chain.lower) * torch.rand(batch, chain.dof, generator=generator)

    table = Table(title=f"{chain.name}", show_header=False)
    table.add_row("joints", ", ".join(f"{n} [{lo:.2f}, {hi:.2f}]" for n, lo, hi in
                                      zip(chain.joint_names, chain.lower.tolist(), chain.upper.tolist(), strict=True)))  # fmt: skip
    jac_q = q[: min(batch, 4096)]
    with torch.no_grad():
        poses = chain.forward_kinematics(q)
        fk_seconds = best_time(lambda: chain.forward_kinematics(q))
        jac_seconds = best_time(lambda: chain.jacobian(jac_q))
    table.add_row("forward kinematics", f"{batch:,} poses in {fk_seconds * 1e3:.1f} ms ({batch / fk_seconds:,.0f} poses/s)")
    table.add_row("Jacobians", f"{len(jac_q):,} in {jac_seconds * 1e3:.2f} ms ({len(jac_q) / jac_seconds:,.0f} /s)")

    fd_error = jacobian_error(chain, q[0])
    table.add_row("Jacobian vs finite differences", f"max difference {fd_error:.1e}")
    pose = poses[0]
    table.add_row("tip pose of the first configuration", f"position {[round(v, 4) for v in pose[:3, 3].tolist()]} m")
    console.print(table)

    shown = torch.cat([torch.zeros(1, chain.dof), q[1:6]]).clamp(chain.lower.clamp(min=-3.2), chain.upper.clamp(max=3.2))
    labels = ["zero"] + [f"random {i}" for i in range(1, len(shown))]
    path = draw_arm(chain, shown, out, labels=labels, title=f"{chain.name}: zero and random configurations")
    console.print(f"picture: {path}")


@command("list")
def list_components(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of a table.")] = False,
) -> None:
    """List the installed robots, rewards, samplers and transforms, and who provides each."""
    from ikrl.extend.registry import default_registry

    components = default_registry().components()
    rows = [
        {
            "kind": c.kind,
            "name": c.name,
            "parameters": {n: (None if p.default is p.empty else p.default) for n, p in c.parameters().items()},
            "plugin": c.plugin,
            "distribution": c.distribution,
        }
        for c in components
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title="ikrl components")
    for column in ("kind", "name", "parameters", "distribution"):
        table.add_column(column)
    for row in rows:
        params = ", ".join(k if v is None else f"{k}={v!r}" for k, v in row["parameters"].items())
        table.add_row(row["kind"], row["name"], params, row["distribution"])
    console.print(table)


@command()
def check(
    spec: Annotated[str, typer.Argument(help='A spec string, e.g. "dobot_cr5+weighted_pose+sincos".')],
    batch_size: Annotated[int, typer.Option(min=1, help="Arms in the environment.")] = 8,
    steps: Annotated[int, typer.Option(min=1, help="Steps of the random rollout.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the environment.")] = 0,
    float64: Annotated[bool, typer.Option("--float64", help="Check in float64 instead of float32.")] = False,
) -> None:
    """Build SPEC, run TorchRL's spec check and a short random rollout, print the specs."""
    import logging

    from torchrl.envs.utils import check_env_specs

    from ikrl.env.make import make_env

    logging.getLogger("torchrl").setLevel(logging.WARNING)  # its "succeeded" line would repeat ours
    try:
        env = make_env(spec, batch_size=batch_size, seed=seed, dtype=torch.float64 if float64 else torch.float32)
        check_env_specs(env, seed=seed)
        rollout = env.rollout(steps, break_when_any_done=False)
    except Exception as error:  # a checker: every failure, ours or a plugin's, is one line
        message = " ".join(str(error).split())
        kind = "" if isinstance(error, IkrlError) else f"{type(error).__name__}: "
        raise _fail(f"{kind}{message}") from None
    console.print(f"[bold green]ok[/] {env.resolved_spec}")
    table = Table(show_header=True)
    for column in ("entry", "shape", "dtype", "spec"):
        table.add_column(column)
    observations: Any = env.observation_spec  # Composite specs (TorchRL types them as TensorSpec)
    flags: Any = env.done_spec
    specs: list[tuple[str, Any]] = [("action", env.action_spec), ("reward", env.reward_spec)]
    specs += [(str(k), v) for k, v in observations.items()] + [(str(k), v) for k, v in flags.items()]
    for key, value in specs:
        table.add_row(key, str(tuple(value.shape)), str(value.dtype).removeprefix("torch."), type(value).__name__)
    console.print(table)
    reward = rollout["next", "reward"]
    final = rollout[..., -1]["next"]
    console.print(
        f"random rollout of {steps} steps: mean reward {reward.mean():.4g}, "
        f"final position error median {final['position_error'].median():.3g} m, "
        f"rotation error median {final['rotation_error'].median():.3g} rad"
    )


# ---------------------------------------------------------------------- training and after


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
    logger: Annotated[str, typer.Option(help="csv, tensorboard or none (TorchRL's logger, in <out>/logs).")] = "csv",
    param: Annotated[list[str] | None, typer.Option(help="An algorithm hyperparameter, NAME=VALUE (repeatable).")] = None,
    eval_targets: Annotated[int, typer.Option(min=1, help="Held-out targets of the final evaluation.")] = 1000,
    threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads (default 1: small batches gain nothing from more).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a policy for SPEC, then evaluate it on held-out targets.

    The run folder gets checkpoint.pt, config.json, metrics.csv, curves.png, eval.json and logs/.
    """
    from ikrl.grid.plan import spec_slug
    from ikrl.rl.training.run import TrainConfig
    from ikrl.rl.training.run import train as run_training

    config = TrainConfig(
        algorithm=algorithm, minutes=minutes, steps=steps, batch_size=batch_size, seed=seed,
        device=device, eval_targets=eval_targets, threads=threads, params=_params(param or []),
    )  # fmt: skip
    folder = out or Path("runs") / f"{spec_slug(spec)}-{algorithm}-seed{seed}"
    console.print(f"training {spec} with {algorithm} into {folder}", highlight=False)
    result = run_training(spec, config, folder, resume=resume, progress=progress, logger=logger)
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
    from ikrl.solver.targets import load_targets
    from ikrl.util.files import unused_path

    if threads is not None:
        torch.set_num_threads(threads)
    if out is not None and out.exists():
        raise BadParameterError(f"--out {out} exists: ikrl never overwrites a result; give another path or remove it")
    count, poses = _count_or_poses(targets, load_targets)
    checkpoint = load_checkpoint(run)
    if goal_only and (poses is not None or spec_sampler or swarm > 1 or refine):
        raise BadParameterError("--goal-only evaluates the goal network on held-out targets: without --swarm, --refine, --spec-sampler or a targets file")
    if goal_only:
        result = evaluate_heads(checkpoint, targets=count, device=device, seed=seed)
    else:
        result = evaluate(checkpoint, targets=count, swarm=swarm, device=device, seed=seed, refine=refine, poses=poses, sampler=spec_sampler)
    result.extra |= {"algorithm": checkpoint.algorithm, "checkpoint": str(checkpoint.path)}
    if poses is not None:
        result.extra["targets_file"] = str(targets)
    parts = [f"seed{seed}"] if seed != EVAL_SEED else []
    parts += [f"targets-{Path(targets).stem}"] if poses is not None else []
    parts += ["spec-sampler"] if spec_sampler else []
    parts += [f"swarm{swarm}"] if swarm > 1 else []
    parts += ["refined"] if refine else []
    parts += ["goal-only"] if goal_only else []
    folder = checkpoint.path.parent if checkpoint.path is not None else Path(".")
    path = result.to_json(out or unused_path(folder, "eval-" + ("-".join(parts) or "held-out"), ".json"))
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


def _count_or_poses(targets: str, load_targets) -> tuple[int, torch.Tensor | None]:
    """``--targets``: a positive count of held-out targets, or a file of poses."""
    if targets.isdigit() and not Path(targets).exists():
        if int(targets) < 1:
            raise BadParameterError(f"--targets must be a positive count or a file of poses; got {targets!r}")
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
    workers: Annotated[int | None, typer.Option(min=1, help="Cells at once (default: one per CPU core).")] = None,
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

    if dry_run:
        for cell in plan(pattern, seeds):
            console.print(f"{cell.spec}  seed {cell.seed}  ->  {out / cell.folder}", highlight=False)
        return
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
    out: Annotated[Path, typer.Option(help="The animated GIF to write.")] = Path("rollout.gif"),
    targets: Annotated[int, typer.Option(min=1, max=8, help="Arms (targets) drawn together.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the starts and targets.")] = 0,
    size: Annotated[int, typer.Option(min=64, help="Width and height in pixels.")] = 480,
    fps: Annotated[int, typer.Option(min=1, help="Frames per second.")] = 10,
) -> None:
    """Draw the trained policy moving the arm from its starts to a few targets, as a GIF."""
    from ikrl.rl.checkpoint import load_checkpoint
    from ikrl.rl.evaluate import held_out, rollout_policy
    from ikrl.viz.arm import render_rollout

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


# ---------------------------------------------------------------------- solving


def _robot_chain(robot: str, base: str | None, tip: str | None):
    """A chain from an installed robot's name (with spec parameters, e.g. ``panda``) or a URDF file."""
    from ikrl.errors import SpecError
    from ikrl.extend.registry import build_robot
    from ikrl.kinematics.urdf import load_chain
    from ikrl.spec.grammar import EnvSpec

    if robot.endswith(".urdf") or Path(robot).is_file():
        return load_chain(Path(robot), base=base, tip=tip)
    if base is not None or tip is not None:
        raise SpecError(f"--base and --tip go with a URDF file; for the installed robot {robot!r} write e.g. {robot}(tip=LINK)")
    spec = EnvSpec.parse(robot)
    if spec.parts:
        raise SpecError(f"ikrl solve takes a robot, not a whole spec: {robot!r} names {', '.join(p.name for p in spec.parts)} too")
    return build_robot(spec.robot)


@command()
def solve(
    robot: Annotated[str, typer.Argument(help="An installed robot (e.g. dobot_cr5, panda; see `ikrl list`) or a URDF file.")],
    targets: Annotated[Path | None, typer.Option(help="Target poses: .npy, .csv or .pt, rows of 16 (4x4 row-major) or 7 (x y z qw qx qy qz).")] = None,
    random: Annotated[int | None, typer.Option(min=1, help="Instead of --targets: N reachable targets (poses of uniform joint values).")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="A trained run folder or checkpoint for this robot: its rollout warm-starts the solver.")] = None,
    policy_steps: Annotated[int | None, typer.Option(min=1, help="Steps of the warm-start rollout (default: the checkpoint's max_steps).")] = None,
    out: Annotated[Path, typer.Option(help="Where to write the solutions: .csv, .npz or .npy (joint values only).")] = Path("solutions.csv"),
    position_tolerance: Annotated[float, typer.Option(min=0, help="Position tolerance in metres.")] = 1e-3,
    rotation_tolerance: Annotated[float, typer.Option(min=0, help="Rotation tolerance in degrees.")] = 1.0,
    max_iters: Annotated[int, typer.Option(min=1, help="Iterations per candidate start.")] = 15,
    restarts: Annotated[int, typer.Option(min=0, help="Further candidate starts per unsolved target.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of --random targets and of the solver's own draws.")] = 0,
    float64: Annotated[bool, typer.Option("--float64", help="Solve in float64 instead of float32.")] = False,
    base: Annotated[str | None, typer.Option(help="Base link, for a URDF file (default: its root).")] = None,
    tip: Annotated[str | None, typer.Option(help="Tip link, for a URDF file (default: its only leaf).")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads (default: torch's).")] = None,
    device: Annotated[str, typer.Option(help="torch device to solve on, e.g. cpu or cuda.")] = "cpu",
) -> None:
    """Joint values that put ROBOT's tip on each target pose, within its joint limits.

    Writes one solution per target (failures too, flagged) and prints a summary.
    """
    from ikrl.solver.pool import solve as run_solver
    from ikrl.solver.targets import load_targets, random_targets, write_solutions
    from ikrl.util.checks import check_device

    if threads is not None:
        torch.set_num_threads(threads)
    if (targets is None) == (random is None):
        raise _fail("give exactly one of --targets FILE and --random N")
    chain = _robot_chain(robot, base, tip).to(dtype=torch.float64 if float64 else torch.float32, device=check_device(device))
    if targets is not None:
        poses = load_targets(targets)
        source = str(targets)
    else:
        assert random is not None  # exactly one of the two was given
        _, poses = random_targets(chain.to(dtype=torch.float64), random, seed)
        source = f"{random:,} random reachable targets (seed {seed})"
    warm_start: Callable[[torch.Tensor], torch.Tensor] | None = None
    if checkpoint is not None:
        from ikrl.rl.warmstart import policy_starts

        trained = checkpoint

        def policy_warm_start(q: torch.Tensor) -> torch.Tensor:
            return policy_starts(trained, chain, poses, q, steps=policy_steps)

        warm_start = policy_warm_start

    poses = poses.to(dtype=chain.dtype, device=chain.device)
    start = time.perf_counter()
    result = run_solver(
        chain, poses, warm_start=warm_start, position_tolerance=position_tolerance,
        rotation_tolerance=math.radians(rotation_tolerance), max_iters=max_iters, restarts=restarts, seed=seed,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    path = write_solutions(out, chain, result)
    n = len(result.success)
    within = bool(((result.q >= chain.lower) & (result.q <= chain.upper)).all())
    table = Table(title=f"{chain.name}: {source}", show_header=False)
    table.add_row("solved", f"{int(result.success.sum()):,} of {n:,} ({100 * result.success_rate:.1f} %) within {position_tolerance * 1e3:g} mm, {rotation_tolerance:g}°")
    table.add_row("all within joint limits", "yes" if within else "NO")
    position, rotation = result.position_error.double(), result.rotation_error.double()
    table.add_row("position error, median / max", f"{1e3 * float(position.median()):.4f} / {1e3 * float(position.max()):.4f} mm")
    table.add_row("rotation error, median / max", f"{math.degrees(float(rotation.median())):.4f} / {math.degrees(float(rotation.max())):.4f} °")
    table.add_row("iterations per target, mean / max", f"{float(result.iterations.double().mean()):.1f} / {int(result.iterations.max())}")
    table.add_row("candidate starts per target, mean", f"{float(result.attempts.double().mean()):.2f}")
    table.add_row("warm start", f"policy of {checkpoint}" if checkpoint else "none (seed table and restarts)")
    table.add_row("time", f"{seconds * 1e3:,.0f} ms ({n / seconds:,.0f} solutions/s, {str(chain.dtype).removeprefix('torch.')})")
    console.print(table)
    console.print(f"written: {path}", highlight=False)
    if not bool(result.success.all()):
        console.print(f"[yellow]{n - int(result.success.sum())} target(s) not solved[/] (flagged in the output)", highlight=False)
