"""The ``ikrl`` command line (typer). Each command is a thin layer over the library."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.console import Console
from rich.table import Table

from ikrl.errors import IkrlError

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


def _fail(error: Exception) -> typer.Exit:
    console.print(f"[bold red]error:[/] {error}", highlight=False)
    return typer.Exit(code=1)


def _best_time(fn, repeats: int = 3) -> float:
    """Best of a few wall-clock timings (after one warm-up call), in seconds."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@app.command()
def demo(
    robot: Annotated[str, typer.Option(help="A robot that ships with ikrl (see robots/).")] = "dobot_cr5",
    batch: Annotated[int, typer.Option(min=1, help="Configurations in the batched forward kinematics.")] = 65536,
    out: Annotated[Path, typer.Option(help="Where to write the picture of the arm (PNG).")] = Path("ikrl-demo.png"),
    seed: Annotated[int, typer.Option(help="Seed of the random configurations.")] = 0,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 2,
) -> None:
    """Load a robot's chain, time batched forward kinematics and Jacobians, draw the arm."""
    import ikrl_robots
    from ikrl.render import draw_arm

    torch.set_num_threads(threads)
    try:
        info = ikrl_robots.info(robot)
        chain = ikrl_robots.load(robot)
    except IkrlError as error:
        raise _fail(error) from None
    generator = torch.Generator().manual_seed(seed)
    q = chain.lower + (chain.upper - chain.lower) * torch.rand(batch, chain.dof, generator=generator)

    table = Table(title=f"{info.title}: {chain.base} to {chain.tip}", show_header=False)
    table.add_row("URDF", str(info.urdf))
    table.add_row("joints", ", ".join(f"{n} [{lo:.2f}, {hi:.2f}]" for n, lo, hi in
                                      zip(chain.joint_names, chain.lower.tolist(), chain.upper.tolist(), strict=True)))  # fmt: skip
    jac_q = q[: min(batch, 4096)]
    with torch.no_grad():
        poses = chain.forward_kinematics(q)
        fk_seconds = _best_time(lambda: chain.forward_kinematics(q))
        jac_seconds = _best_time(lambda: chain.jacobian(jac_q))
    table.add_row("forward kinematics", f"{batch:,} poses in {fk_seconds * 1e3:.1f} ms ({batch / fk_seconds:,.0f} poses/s)")
    table.add_row("Jacobians", f"{len(jac_q):,} in {jac_seconds * 1e3:.2f} ms ({len(jac_q) / jac_seconds:,.0f} /s)")

    # Self-check in float64: the analytic Jacobian against central differences of the pose.
    exact = chain.to(dtype=torch.float64)
    q0 = q[0].double()
    step = 1e-6
    columns = []
    for i in range(chain.dof):
        dq = torch.zeros_like(q0)
        dq[i] = step
        plus, minus = exact.forward_kinematics(q0 + dq), exact.forward_kinematics(q0 - dq)
        columns.append((plus[:3, 3] - minus[:3, 3]) / (2 * step))
    fd_error = (torch.stack(columns, 1) - exact.jacobian(q0)[:3]).abs().max().item()
    table.add_row("Jacobian vs finite differences", f"max difference {fd_error:.1e}")
    pose = poses[0]
    table.add_row("tip pose of the first configuration", f"position {[round(v, 4) for v in pose[:3, 3].tolist()]} m")
    console.print(table)

    shown = torch.cat([torch.zeros(1, chain.dof), q[1:6]]).clamp(chain.lower.clamp(min=-3.2), chain.upper.clamp(max=3.2))
    labels = ["zero"] + [f"random {i}" for i in range(1, len(shown))]
    path = draw_arm(chain, shown, out, labels=labels, title=f"{info.title}: zero and random configurations")
    console.print(f"picture: {path}")


@app.command("list")
def list_components(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of a table.")] = False,
) -> None:
    """List the installed robots, rewards, samplers and transforms, and who provides each."""
    from ikrl.registry import default_registry

    try:
        components = default_registry().components()
    except IkrlError as error:
        raise _fail(error) from None
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


@app.command()
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

    from ikrl.registry import make_env

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
    specs = {("action",): env.action_spec, ("reward",): env.reward_spec}
    specs.update({(k,): v for k, v in env.observation_spec.items()})
    specs.update({(k,): v for k, v in env.done_spec.items()})
    for (key,), value in specs.items():
        table.add_row(key, str(tuple(value.shape)), str(value.dtype).removeprefix("torch."), type(value).__name__)
    console.print(table)
    reward = rollout["next", "reward"]
    final = rollout[..., -1]["next"]
    console.print(
        f"random rollout of {steps} steps: mean reward {reward.mean():.4g}, "
        f"final position error median {final['position_error'].median():.3g} m, "
        f"rotation error median {final['rotation_error'].median():.3g} rad"
    )
