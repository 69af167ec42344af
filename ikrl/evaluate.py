"""Evaluation of a trained policy on held-out targets.

The protocol (fixed, so figures from different runs compare): ``targets`` target poses from
joint values uniform within the limits and as many start configurations, uniform too, both
drawn from :data:`EVAL_SEED` (a stream no training run uses). Each arm runs the policy for the
environment's ``max_steps`` steps without stopping early; its *solution* is its final joint
values. An arm succeeds within ``(position, rotation)`` when its final errors are both under
them. With ``swarm=K``, every target gets K starts and the best final pose is kept (ranked
by position/5 mm + rotation/2 degrees), as in earlier RL-for-IK work. With ``refine``, the
kept pose is then the start of :func:`ikrl.solver.solve` (no restarts, no seed table: only a
local polish of the policy's answer), and the metrics are those of the polished answers
(where the solver's answer is worse, the policy's is kept), timed with the rollout; the
policy's own success rates stay in ``extra``, and the mean steps to success stay the policy's.

Errors are :func:`ikrl.se3.pose_errors`, the definition the environment and the solver share.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ikrl.errors import BadParameterError
from ikrl.policy import Policy

__all__ = ["EVAL_SEED", "TOLERANCES", "Evaluation", "evaluate", "evaluate_policy", "held_out", "rollout_policy", "rows_from_metrics", "summarize_errors"]

#: Seed of the held-out targets and starts. Training draws from its own seeds, and the
#: evaluation stream is a separate torch.Generator, so held-out targets are never trained on
#: by construction of the streams (not by checking).
EVAL_SEED = 7_654_321
#: The (metres, radians) success thresholds every evaluation reports.
TOLERANCES = {"5mm_2deg": (0.005, math.radians(2.0)), "1mm_1deg": (0.001, math.radians(1.0))}


@dataclass
class Evaluation:
    """Metrics (plain numbers, see :meth:`metrics`) and the per-target results behind them."""

    position_error: Tensor  # [targets] metres, final
    rotation_error: Tensor  # [targets] radians, final
    first_success_step: Tensor  # [targets] first step within (5 mm, 2 deg), -1 if never
    seconds: float
    swarm: int
    steps: int
    spec: str = ""
    extra: dict = field(default_factory=dict)
    answers: Tensor | None = None  # [targets, dof] joint values of each kept answer

    def metrics(self) -> dict[str, float]:
        return summarize_errors(
            self.position_error, self.rotation_error, self.first_success_step, self.seconds
        ) | {"targets": int(self.position_error.numel()), "swarm": self.swarm, "steps": self.steps}

    def to_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"spec": self.spec, "seed": EVAL_SEED, **self.metrics(), **self.extra}
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(record, indent=2) + "\n")
        partial.replace(path)
        return path

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) rows for a table."""
        return rows_from_metrics(self.metrics())


def rows_from_metrics(m: dict) -> list[tuple[str, str]]:
    """(label, value) table rows from :meth:`Evaluation.metrics` (or an eval.json record)."""
    steps = m["mean_steps_to_success"]
    swarm = m.get("swarm", 1)
    return [
        ("held-out targets", f"{m['targets']}" + (f" (swarm {swarm})" if swarm > 1 else "")),
        ("success within 5 mm, 2°", f"{100 * m['success_5mm_2deg']:.1f} %"),
        ("success within 1 mm, 1°", f"{100 * m['success_1mm_1deg']:.1f} %"),
        ("position error, median / p95", f"{1000 * m['position_error_median']:.2f} / {1000 * m['position_error_p95']:.2f} mm"),
        ("rotation error, median / p95", f"{math.degrees(m['rotation_error_median']):.2f} / {math.degrees(m['rotation_error_p95']):.2f} °"),
        ("mean steps to success", "n/a" if steps is None or math.isnan(steps) else f"{steps:.1f}"),
        ("solutions per second", f"{m['solutions_per_second']:,.0f}"),
    ]


def summarize_errors(position: Tensor, rotation: Tensor, first_success_step: Tensor, seconds: float) -> dict[str, float]:
    """The evaluation metrics from final errors (metres, radians) and first-success steps."""
    position = position.detach().double().cpu()
    rotation = rotation.detach().double().cpu()
    out: dict[str, float] = {}
    for name, (pos_tol, rot_tol) in TOLERANCES.items():
        out[f"success_{name}"] = float(((position < pos_tol) & (rotation < rot_tol)).double().mean())
    out["position_error_median"] = float(position.median())
    out["position_error_p95"] = float(torch.quantile(position, 0.95))
    out["rotation_error_median"] = float(rotation.median())
    out["rotation_error_p95"] = float(torch.quantile(rotation, 0.95))
    pos_tol, rot_tol = TOLERANCES["5mm_2deg"]
    solved = (position < pos_tol) & (rotation < rot_tol) & (first_success_step >= 0).cpu()
    steps = first_success_step.cpu()[solved].double()
    out["mean_steps_to_success"] = float(steps.mean()) if steps.numel() else math.nan
    out["solutions_per_second"] = position.numel() / seconds if seconds > 0 else math.inf
    return out


@torch.no_grad()
def rollout_policy(env, policy: Policy, q: Tensor, target: Tensor, *, record: bool = False):
    """Run ``policy`` for ``env.max_steps`` steps from joint values ``q`` towards ``target``
    poses (one per arm of ``env``), without stopping early.

    Returns ``(final tensordict, first step within (5 mm, 2 deg) or -1, joint values per step
    [steps + 1, N, dof] if record else None)``.
    """
    pos_tol, rot_tol = TOLERANCES["5mm_2deg"]
    td = env.state_at(q, target)
    n = q.shape[0]
    first = torch.full((n,), -1, dtype=torch.int64, device=q.device)
    history = [td["q"]] if record else None
    for step in range(1, env.max_steps + 1):
        td["action"] = policy(td["observation"])
        td = env.step(td)["next"]
        hit = (td["position_error"].squeeze(-1) < pos_tol) & (td["rotation_error"].squeeze(-1) < rot_tol)
        first = torch.where((first < 0) & hit.to(first.device), torch.full_like(first, step), first)
        if record:
            history.append(td["q"])
    return td, first, (torch.stack(history) if record else None)


def held_out(chain, targets: int, swarm: int, seed: int = EVAL_SEED) -> tuple[Tensor, Tensor]:
    """Held-out (start joints [targets*swarm, dof], target joints [targets, dof])."""
    generator = torch.Generator(device=chain.device).manual_seed(seed)
    target_q = chain.random_joints(targets, generator)
    starts = chain.random_joints(targets * swarm, generator)
    return starts, target_q


def evaluate(
    checkpoint, *, targets: int = 1000, swarm: int = 1, device: str = "cpu", seed: int = EVAL_SEED, refine: bool = False
) -> Evaluation:
    """Evaluate a :class:`~ikrl.checkpoint.Checkpoint` on held-out targets (module docstring)."""
    if not isinstance(targets, int) or targets < 1:
        raise BadParameterError(f"targets must be a positive int; got {targets!r}")
    if not isinstance(swarm, int) or swarm < 1:
        raise BadParameterError(f"swarm must be a positive int (starts per target); got {swarm!r}")
    env = checkpoint.make_env(batch_size=targets * swarm, seed=seed, device=device)
    policy = checkpoint.policy(device)
    return evaluate_policy(env, policy, targets=targets, swarm=swarm, seed=seed, spec=checkpoint.spec, refine=refine)


def evaluate_policy(
    env, policy: Policy, *, targets: int, swarm: int = 1, seed: int = EVAL_SEED, spec: str = "", refine: bool = False
) -> Evaluation:
    """Evaluate ``policy`` in ``env`` (whose batch size must be ``targets * swarm``); with
    ``refine``, polish each kept answer with the solver (module docstring)."""
    if env.batch_size[0] != targets * swarm:
        raise BadParameterError(f"the environment has {env.batch_size[0]} arms; evaluation needs targets*swarm = {targets * swarm}")
    chain = env.chain
    starts, target_q = held_out(chain, targets, swarm, seed)
    with torch.no_grad():
        target = chain.forward_kinematics(target_q).repeat_interleave(swarm, dim=0)
    start_time = time.perf_counter()
    td, first, _ = rollout_policy(env, policy, starts, target)
    seconds = time.perf_counter() - start_time
    position = td["position_error"].squeeze(-1).reshape(targets, swarm)
    rotation = td["rotation_error"].squeeze(-1).reshape(targets, swarm)
    pos_tol, rot_tol = TOLERANCES["5mm_2deg"]
    best = (position / pos_tol + rotation / rot_tol).argmin(-1, keepdim=True)
    final_q = td["q"].reshape(targets, swarm, -1)
    final_q = final_q.gather(1, best.unsqueeze(-1).expand(-1, -1, final_q.shape[-1])).squeeze(1)
    evaluation = Evaluation(
        position_error=position.gather(-1, best).squeeze(-1),
        rotation_error=rotation.gather(-1, best).squeeze(-1),
        first_success_step=first.reshape(targets, swarm).gather(-1, best).squeeze(-1),
        seconds=seconds,
        swarm=swarm,
        steps=env.max_steps,
        spec=spec or str(env.resolved_spec or ""),
        answers=final_q,
    )
    return _refined(evaluation, chain, target[::swarm]) if refine else evaluation


def _refined(evaluation: Evaluation, chain, target: Tensor) -> Evaluation:
    """``evaluation`` with its answers polished by the solver (module docstring)."""
    from ikrl.solver import solve

    policy_only = summarize_errors(evaluation.position_error, evaluation.rotation_error, evaluation.first_success_step, evaluation.seconds)
    tol_pos, tol_rot = TOLERANCES["1mm_1deg"]
    start_time = time.perf_counter()
    result = solve(chain, target, starts=evaluation.answers, restarts=0, seeds=0, tol_pos=tol_pos, tol_rot=tol_rot)
    # Keep the policy's answer where the solver's is worse (a step that lowers the squared
    # error can trade position for rotation): a polish never loses a success.
    polished = _rank(result.position_error, result.rotation_error) <= _rank(evaluation.position_error, evaluation.rotation_error)
    answers = torch.where(polished[:, None], result.q, evaluation.answers)
    position = torch.where(polished, result.position_error, evaluation.position_error)
    rotation = torch.where(polished, result.rotation_error, evaluation.rotation_error)
    seconds = time.perf_counter() - start_time
    extra = {
        "refined": True,
        "solver_seconds": seconds,
        "solver_iterations_mean": float(result.iterations.double().mean()),
        **{f"policy_{name}": policy_only[name] for name in ("success_5mm_2deg", "success_1mm_1deg")},
    }
    return Evaluation(
        position_error=position,
        rotation_error=rotation,
        first_success_step=evaluation.first_success_step,
        seconds=evaluation.seconds + seconds,
        swarm=evaluation.swarm,
        steps=evaluation.steps,
        spec=evaluation.spec,
        extra=evaluation.extra | extra,
        answers=answers,
    )


def _rank(position: Tensor, rotation: Tensor) -> Tensor:
    """Lower is better: failing (5 mm, 2 deg) first, then failing (1 mm, 1 deg), then the
    errors relative to (5 mm, 2 deg)."""
    (loose_pos, loose_rot), (tight_pos, tight_rot) = TOLERANCES["5mm_2deg"], TOLERANCES["1mm_1deg"]
    score = position.double() / loose_pos + rotation.double() / loose_rot
    loose = (position < loose_pos) & (rotation < loose_rot)
    tight = (position < tight_pos) & (rotation < tight_rot)
    return 4.0 * (~loose).double() + 2.0 * (~tight).double() + score / (1.0 + score)
