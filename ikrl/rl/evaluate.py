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

Other problems a user can ask for: another ``seed`` (another held-out set from the same
distribution), their own target ``poses`` (uniform starts from ``seed``), or ``sampler=True``:
starts and targets from the spec's own sampler (seeded by ``seed``), for a policy trained on a
sampler other than uniform. :attr:`Evaluation.source` records which.

Errors are :func:`ikrl.se3.pose_errors`, the definition the environment and the solver share.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ikrl.errors import BadParameterError
from ikrl.kinematics.protocol import random_joints
from ikrl.kinematics.se3 import pose_errors
from ikrl.rl.rollout import rollout_policy
from ikrl.solver.pool import solve
from ikrl.util.checks import check_seed
from ikrl.util.files import atomic_write_json
from ikrl.util.metrics import METRICS, TOLERANCES

__all__ = [
    "EVAL_SEED", "TABLE_METRICS", "TOLERANCES", "Evaluation", "evaluate", "evaluate_heads", "evaluate_policy", "held_out",
    "rows_from_metrics", "summarize_errors",
]  # fmt: skip

#: Seed of the held-out targets and starts. Training draws from its own seeds, and the
#: evaluation stream is a separate torch.Generator, so held-out targets are never trained on
#: by construction of the streams (not by checking).
EVAL_SEED = 7_654_321


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
    seed: int = EVAL_SEED  # of the held-out targets and starts
    answers: Tensor | None = None  # [targets, dof] joint values of each kept answer
    source: str = "uniform"  # where the targets came from: uniform, the spec's sampler, or a file

    def metrics(self) -> dict[str, float]:
        return summarize_errors(
            self.position_error, self.rotation_error, self.first_success_step, self.seconds
        ) | {"targets": int(self.position_error.numel()), "swarm": self.swarm, "steps": self.steps}

    def to_json(self, path: str | Path) -> Path:
        record = {"spec": self.spec, "seed": self.seed, "source": self.source, **self.metrics(), **self.extra}
        return atomic_write_json(path, record)

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) rows for a table."""
        return rows_from_metrics(self.metrics())


#: The metrics an evaluation table shows, in order (labels and units from :data:`METRICS`).
TABLE_METRICS = (
    "success_5mm_2deg", "success_1mm_1deg", "position_error_median", "position_error_p95",
    "rotation_error_median", "rotation_error_p95", "mean_steps_to_success", "solutions_per_second",
)  # fmt: skip


def rows_from_metrics(m: dict) -> list[tuple[str, str]]:
    """(label, value) table rows from :meth:`Evaluation.metrics` (or an eval.json record)."""
    swarm = m.get("swarm", 1)
    rows = [("held-out targets", f"{m['targets']}" + (f" (swarm {swarm})" if swarm > 1 else ""))]
    return rows + [(METRICS[name].label, METRICS[name].show(m.get(name))) for name in TABLE_METRICS]


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


def held_out(chain, targets: int, swarm: int, seed: int = EVAL_SEED) -> tuple[Tensor, Tensor]:
    """Held-out (start joints [targets*swarm, dof], target joints [targets, dof])."""
    generator = torch.Generator(device=chain.device).manual_seed(check_seed("held-out targets", seed))
    target_q = random_joints(chain, targets, generator)
    starts = random_joints(chain, targets * swarm, generator)
    return starts, target_q


def evaluate(
    checkpoint,
    *,
    targets: int = 1000,
    swarm: int = 1,
    device: str = "cpu",
    seed: int = EVAL_SEED,
    refine: bool = False,
    poses: Tensor | None = None,
    sampler: bool = False,
) -> Evaluation:
    """Evaluate a :class:`~ikrl.rl.checkpoint.Checkpoint` on held-out targets, or on ``poses``
    ``[T, 4, 4]``, or on the spec's sampler (module docstring)."""
    if poses is not None:
        if not isinstance(poses, Tensor) or poses.dim() != 3 or tuple(poses.shape[1:]) != (4, 4) or len(poses) == 0:
            raise BadParameterError(f"poses must be target poses of shape (T, 4, 4); got {getattr(poses, 'shape', type(poses).__name__)}")
        targets = len(poses)
    _check_count("targets", targets)
    _check_count("swarm", swarm, " (starts per target)")
    env = checkpoint.make_env(batch_size=targets * swarm, seed=seed, device=device)
    policy = checkpoint.policy(device, env.chain)
    return evaluate_policy(
        env, policy, targets=targets, swarm=swarm, seed=seed, spec=checkpoint.spec, refine=refine, poses=poses, sampler=sampler
    )


def evaluate_policy(
    env,
    policy: torch.nn.Module,
    *,
    targets: int,
    swarm: int = 1,
    seed: int = EVAL_SEED,
    spec: str = "",
    refine: bool = False,
    poses: Tensor | None = None,
    sampler: bool = False,
) -> Evaluation:
    """Evaluate ``policy`` in ``env`` (whose batch size must be ``targets * swarm``); with
    ``refine``, polish each kept answer with the solver; ``poses`` and ``sampler`` choose other
    problems (module docstring)."""
    if env.batch_size[0] != targets * swarm:
        raise BadParameterError(f"the environment has {env.batch_size[0]} arms; evaluation needs targets*swarm = {targets * swarm}")
    if poses is not None and sampler:
        raise BadParameterError("evaluate on given poses or on the spec's sampler, not both")
    if sampler and swarm != 1:
        raise BadParameterError(f"evaluating on the spec's sampler takes one start per target (its starts belong to its targets); got swarm={swarm}")
    chain = env.chain
    source = "uniform"
    if sampler:
        generator = torch.Generator(device=chain.device).manual_seed(seed)
        starts, target_q = env.sampler(chain, targets, generator)
        source = f"sampler {env.sampler!r}"
    else:
        starts, target_q = held_out(chain, targets, swarm, seed)
    with torch.no_grad():
        if poses is not None:
            target = poses.to(device=chain.device, dtype=chain.dtype).repeat_interleave(swarm, dim=0)
            source = "poses"
        else:
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
        seed=seed,
        answers=final_q,
        source=source,
    )
    return _refined(evaluation, chain, target[::swarm]) if refine else evaluation


def evaluate_heads(checkpoint, *, targets: int = 1000, device: str = "cpu", seed: int = EVAL_SEED) -> Evaluation:
    """A goal policy's goal network alone, on the held-out targets: the errors of the head
    whose forward kinematics is nearest each target (no rollout, no corrector). ``extra``
    holds the mean errors, the figure goal-network papers (IKFlow) report."""
    if checkpoint.policy_kind != "goal":
        raise BadParameterError(f"only a goal policy has a goal network; this checkpoint holds a {checkpoint.policy_kind!r} policy")
    _check_count("targets", targets)
    env = checkpoint.make_env(batch_size=1, seed=seed, device=device)
    chain = env.chain
    policy = checkpoint.policy(device, chain)
    _, target_q = held_out(chain, targets, 1, seed)
    start_time = time.perf_counter()
    with torch.no_grad():
        target = chain.forward_kinematics(target_q)
        answers = policy.best_head(target)
        position, rotation = pose_errors(chain.forward_kinematics(answers), target)
    seconds = time.perf_counter() - start_time
    pos_tol, rot_tol = TOLERANCES["5mm_2deg"]
    first = torch.where((position < pos_tol) & (rotation < rot_tol), 0, -1)
    extra = {
        "goal_only": True,
        "position_error_mean": float(position.double().mean()),
        "rotation_error_mean": float(rotation.double().mean()),
        "refine_steps": policy.refine_steps,
    }
    return Evaluation(position, rotation, first, seconds, 1, 0, spec=checkpoint.spec, extra=extra, seed=seed, answers=answers)


def _check_count(name: str, value: object, meaning: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadParameterError(f"{name} must be a positive int{meaning}; got {value!r}")


def _refined(evaluation: Evaluation, chain, target: Tensor) -> Evaluation:
    """``evaluation`` with its answers polished by the solver (module docstring)."""
    policy_only = summarize_errors(evaluation.position_error, evaluation.rotation_error, evaluation.first_success_step, evaluation.seconds)
    position_tolerance, rotation_tolerance = TOLERANCES["1mm_1deg"]
    start_time = time.perf_counter()
    assert evaluation.answers is not None  # evaluate_policy always keeps them
    result = solve(chain, target, starts=evaluation.answers, restarts=0, seeds=0, position_tolerance=position_tolerance, rotation_tolerance=rotation_tolerance)
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
        seed=evaluation.seed,
        extra=evaluation.extra | extra,
        answers=answers,
        source=evaluation.source,
    )


def _rank(position: Tensor, rotation: Tensor) -> Tensor:
    """Lower is better: failing (5 mm, 2 deg) first, then failing (1 mm, 1 deg), then the
    errors relative to (5 mm, 2 deg)."""
    (loose_pos, loose_rot), (tight_pos, tight_rot) = TOLERANCES["5mm_2deg"], TOLERANCES["1mm_1deg"]
    score = position.double() / loose_pos + rotation.double() / loose_rot
    loose = (position < loose_pos) & (rotation < loose_rot)
    tight = (position < tight_pos) & (rotation < tight_rot)
    return 4.0 * (~loose).double() + 2.0 * (~tight).double() + score / (1.0 + score)
