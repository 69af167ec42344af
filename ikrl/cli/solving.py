"""``ikrl solve``: batched inverse kinematics from the command line."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.table import Table

from ikrl.cli.base import _fail, command, console, result_path
from ikrl.util.metrics import percent

#: ``ikrl solve --random`` at most: ten million targets already take minutes and gigabytes.
MAX_RANDOM_TARGETS = 10_000_000


def _robot_chain(robot: str, base: str | None, tip: str | None, xacro_args: dict[str, str] | None = None):
    """A chain from an installed robot's name (with spec parameters, e.g. ``panda``) or a
    URDF, xacro or MJCF file."""
    from ikrl.errors import SpecError
    from ikrl.extend.registry import build_robot
    from ikrl.kinematics.urdf import load_chain
    from ikrl.spec.grammar import EnvSpec

    if robot.endswith((".urdf", ".xacro", ".xml")) or Path(robot).is_file():
        return load_chain(Path(robot), base=base, tip=tip, xacro_args=xacro_args or None)
    if xacro_args:
        raise SpecError(f"--xacro-arg goes with a .xacro file; {robot!r} is an installed robot")
    if base is not None or tip is not None:
        raise SpecError(f"--base and --tip go with a URDF file; for the installed robot {robot!r} write e.g. {robot}(tip=LINK)")
    spec = EnvSpec.parse(robot)
    if spec.parts:
        raise SpecError(f"ikrl solve takes a robot, not a whole spec: {robot!r} names {', '.join(p.name for p in spec.parts)} too")
    return build_robot(spec.robot)


def _xacro_args(values: list[str]) -> dict[str, str]:
    """``--xacro-arg prefix=left_``: split on the first ``=``."""
    args = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"--xacro-arg takes NAME=VALUE, e.g. prefix=left_; got {item!r}")
        args[name.strip()] = value
    return args


@command()
def solve(
    robot: Annotated[str, typer.Argument(help="An installed robot (e.g. dobot_cr5, panda; see `ikrl list`) or a URDF, xacro or MJCF file.")],
    targets: Annotated[Path | None, typer.Option(help="Target poses: .npy, .csv or .pt, rows of 16 (4x4 row-major) or 7 (x y z qw qx qy qz).")] = None,
    random: Annotated[
        int | None, typer.Option(min=1, max=MAX_RANDOM_TARGETS, help="Instead of --targets: N reachable targets (poses of uniform joint values).")
    ] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="A trained run folder or checkpoint for this robot: its rollout warm-starts the solver.")] = None,
    policy_steps: Annotated[int | None, typer.Option(min=1, help="Steps of the warm-start rollout (default: the checkpoint's max_steps).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write the solutions: .csv, .npz or .npy (joint values only; default: a new solutions.csv).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file (default: refuse).")] = False,
    position_tolerance: Annotated[float, typer.Option(min=0, help="Position tolerance in metres.")] = 1e-3,
    rotation_tolerance: Annotated[float, typer.Option(min=0, max=180, help="Rotation tolerance in degrees (at most 180).")] = 1.0,
    max_iters: Annotated[int, typer.Option(min=1, help="Iterations per candidate start.")] = 15,
    restarts: Annotated[int, typer.Option(min=0, help="Further candidate starts per unsolved target.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of --random targets and of the solver's own draws.")] = 0,
    float64: Annotated[bool, typer.Option("--float64", help="Solve in float64 instead of float32.")] = False,
    base: Annotated[str | None, typer.Option(help="Base link, for a URDF file (default: its root).")] = None,
    tip: Annotated[str | None, typer.Option(help="Tip link (or MJCF site), for a robot file (default: its only leaf).")] = None,
    xacro_arg: Annotated[list[str] | None, typer.Option(help="A xacro argument NAME=VALUE for a .xacro file (repeatable).")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads (default: torch's).")] = None,
    device: Annotated[str, typer.Option(help="torch device to solve on, e.g. cpu or cuda.")] = "cpu",
) -> None:
    """Joint values that put ROBOT's tip on each target pose, within its joint limits.

    Writes one solution per target (failures too, flagged) and prints a summary.
    """
    from ikrl.errors import TargetsFileError
    from ikrl.solver.pool import solve as run_solver
    from ikrl.solver.targets import SOLUTION_SUFFIXES, load_targets, random_targets, write_solutions
    from ikrl.util.checks import check_device

    if threads is not None:
        torch.set_num_threads(threads)
    if (targets is None) == (random is None):
        raise _fail("give exactly one of --targets FILE and --random N")
    if out is not None and out.suffix not in SOLUTION_SUFFIXES:
        raise TargetsFileError(f"{out}: solutions are written as {', '.join(SOLUTION_SUFFIXES)}; got {out.suffix or 'no suffix'!r}")
    out = result_path(out, "solutions.csv", overwrite=overwrite)
    chain = _robot_chain(robot, base, tip, _xacro_args(xacro_arg or [])).to(dtype=torch.float64 if float64 else torch.float32, device=check_device(device))
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
    stats = result.statistics(chain)
    n = int(stats["targets"])
    table = Table(title=f"{chain.name}: {source}", show_header=False)
    solved = f"{int(stats['solved']):,} of {n:,} ({percent(int(stats['solved']), n)})"
    table.add_row("solved", f"{solved} within {position_tolerance * 1e3:g} mm, {rotation_tolerance:g}°")
    table.add_row("all within joint limits", "yes" if stats["within_limits"] else "NO")
    table.add_row("position error, median / max", f"{1e3 * stats['position_error_median']:.4f} / {1e3 * stats['position_error_max']:.4f} mm")
    table.add_row("rotation error, median / max", f"{math.degrees(stats['rotation_error_median']):.4f} / {math.degrees(stats['rotation_error_max']):.4f} °")
    table.add_row("iterations per target, mean / max", f"{stats['iterations_mean']:.1f} / {int(stats['iterations_max'])}")
    table.add_row("candidate starts per target, mean", f"{stats['attempts_mean']:.2f}")
    table.add_row("warm start", f"policy of {checkpoint}" if checkpoint else "none (seed table and restarts)")
    table.add_row("time", f"{seconds * 1e3:,.0f} ms ({n / seconds:,.0f} solutions/s, {str(chain.dtype).removeprefix('torch.')})")
    console.print(table)
    console.print(f"written: {path}", highlight=False)
    if stats["solved"] < n:
        console.print(f"[yellow]{n - int(stats['solved'])} target(s) not solved[/] (flagged in the output)", highlight=False)
