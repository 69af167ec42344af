"""``ikrl demo``, ``ikrl list``, ``ikrl check``: the kinematics and the components."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from rich.table import Table

from ikrl.cli.base import _fail, command, console, result_path
from ikrl.errors import BadParameterError, IkrlError
from ikrl.kinematics.protocol import jacobian_error
from ikrl.util.checks import check_seed
from ikrl.util.timing import best_time

#: ``ikrl demo --batch`` at most: 4M poses take about 1 GB in float32 (the timing loop needs several copies).
MAX_DEMO_BATCH = 2**22


def _check_picture_suffix(out: Path) -> None:
    """``--out``'s suffix is a format matplotlib writes (PNG, or SVG, PDF, JPEG...), checked before the work."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    if out.suffix.lower().removeprefix(".") not in formats:
        raise BadParameterError(
            f"--out {out}: the picture is written as PNG (out.png) or another format matplotlib writes "
            f"({', '.join(formats)}), told by the suffix; got {out.suffix or 'no suffix'!r}"
        )


@command()
def demo(
    robot: Annotated[str, typer.Option(help="A robot: one that ships with ikrl or one a plugin provides (ikrl list).")] = "dobot_cr5",
    batch: Annotated[int, typer.Option(min=1, max=MAX_DEMO_BATCH, help="Configurations in the batched forward kinematics.")] = 65536,
    out: Annotated[Path | None, typer.Option(help="Where to write the picture of the arm (PNG; default: a new ikrl-demo.png).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file (default: refuse).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the random configurations.")] = 0,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 2,
) -> None:
    """Load a robot's chain, time batched forward kinematics and Jacobians, draw the arm."""
    from ikrl.extend.registry import build_robot
    from ikrl.kinematics.protocol import random_joints
    from ikrl.spec.grammar import Part
    from ikrl.viz.arm import draw_arm

    out = result_path(out, "ikrl-demo.png", overwrite=overwrite)
    _check_picture_suffix(out)
    torch.set_num_threads(threads)
    chain = build_robot(Part(robot))
    generator = torch.Generator().manual_seed(check_seed("demo", seed))
    q = random_joints(chain, batch, generator)  # within the limits; continuous joints in [-pi, pi)

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
    """List the installed robots, rewards, samplers, transforms and training algorithms, and who
    provides each; and the installed plugins that were not loaded, and why."""
    from ikrl.extend.registry import default_registry

    registry = default_registry()
    components = registry.components()
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
    else:
        table = Table(title="ikrl components")
        for column in ("kind", "name", "parameters", "distribution"):
            table.add_column(column)
        for row in rows:
            params = ", ".join(k if v is None else f"{k}={v!r}" for k, v in row["parameters"].items())
            table.add_row(row["kind"], row["name"], params, row["distribution"])
        console.print(table)
    # On stderr, so that --json stays one JSON document on stdout.
    for plugin, why in registry.skipped:
        typer.echo(f"not loaded: plugin {plugin} ({why})", err=True)


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
        dtype = torch.float64 if float64 else torch.float32
        env = make_env(spec, batch_size=batch_size, seed=seed, dtype=dtype)  # runs the components' trial
        check_env_specs(env, seed=seed)
        rollout = env.rollout(steps, break_when_any_done=False)
        twins = [make_env(spec, batch_size=batch_size, seed=seed, dtype=dtype) for _ in range(2)]
        repeats = _repeats(twins[0], twins[1], steps)
        action_gradient = _action_gradient(env)
    except Exception as error:  # a checker: every failure, ours or a plugin's, is one line
        message = " ".join(str(error).split())
        kind = "" if isinstance(error, IkrlError) else f"{type(error).__name__}: "
        raise _fail(f"{kind}{message}") from None
    if not repeats:
        raise _fail(
            f"{env.resolved_spec}: two environments seeded with {seed} gave different rollouts: "
            "a component draws random numbers outside the generator the environment passes its sampler"
        )
    console.print(f"[bold green]ok[/] {env.resolved_spec}")
    console.print(
        "components: the sampler, transforms and reward returned what their protocols say (one trial "
        "draw and step); one seed gives the same rollout twice"
    )
    if env.reward_differentiable and action_gradient:
        console.print("gradients: the reward has a gradient in the action, so every algorithm can train on it")
    else:
        from ikrl.extend.registry import default_registry
        from ikrl.rl.training.gradients import needs_reward_gradient

        algorithms = default_registry().components("algorithm")
        need = ", ".join(c.name for c in algorithms if needs_reward_gradient(c.factory))
        others = " or ".join(c.name for c in algorithms if not needs_reward_gradient(c.factory)) or "another reward"
        console.print(
            f"[bold yellow]gradients: the reward {env.reward_shape!r} has none[/]; algorithms that back-propagate "
            f"through it ({need}) refuse it: train with --algorithm {others}"
        )
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


def _repeats(env: Any, twin: Any, steps: int) -> bool:
    """Whether two fresh environments built with one seed give the same rollout (zero actions)."""
    def rollout(e: Any) -> Any:
        td = e.reset()
        for _ in range(min(steps, 5)):
            td["action"] = torch.zeros_like(td["q"])
            td = e.step(td)["next"]
        return td

    first, second = rollout(env), rollout(twin)
    return all(torch.equal(first[k], second[k]) for k in ("q", "target", "observation", "reward"))


def _action_gradient(env: Any) -> bool:
    """Whether one step's reward has a non-zero gradient in the action (through the kinematics)."""
    td = env.reset()
    action = (0.5 * env.action_spec.rand()).requires_grad_(True)
    td["action"] = action
    reward = env.step(td)["next", "reward"]
    if not reward.requires_grad:
        return False
    (gradient,) = torch.autograd.grad(reward.sum(), action, allow_unused=True)
    return gradient is not None and bool((gradient != 0).any())
