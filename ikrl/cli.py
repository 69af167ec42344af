"""The ``ikrl`` command line (typer). Each command is a thin layer over the library."""

from __future__ import annotations

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
console = Console()


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
