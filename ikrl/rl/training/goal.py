"""The ``goal`` algorithm: a goal network and a learned corrector, ikrl's default training.

It trains the two parts of a :class:`~ikrl.rl.goal.policy.GoalPolicy`:

* **the goal network** (:mod:`ikrl.rl.training.goal_heads`), self-supervised through the
  differentiable chain on fresh targets from the spec's sampler. Its loss is
  :func:`~ikrl.rl.goal.heads.pose_score` (position / 5 mm + rotation / 2 degrees) rather than
  the spec's reward: a reward scores a *step* (the error before and after), and a shaped one
  (progress, a difference of potentials) is zero for a pose compared with itself, so it
  cannot rank poses;
* **the corrector** (:class:`~ikrl.rl.goal.corrector.Corrector`), with analytic policy
  gradients through the environment, maximising **the spec's reward** over ``horizon`` steps.
  Targets come from the spec's sampler; starts are the target's joint values plus noise of a
  log-uniform size between ``start_noise`` radians (the corrector is the local part, and
  the approach brings every arm near its goal before it acts). Arms reset every ``episode``
  steps and keep going after success. Its learned gain sees **the spec's observation**
  without the columns that vanish on target.

With a budget in minutes (``parallel=True``) the goal network trains in a worker process
(one core each) for the same CPU time as this process, and its weights arrive by snapshot;
with a budget in steps, or ``parallel=False``, one goal-network step follows each corrector
update in this process, and the run is deterministic. The worker rebuilds the environment
from the spec, so robots and samplers must come from installed plugins.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ikrl.errors import TrainingError
from ikrl.kinematics.protocol import into_limits
from ikrl.rl.goal.corrector import Corrector
from ikrl.rl.goal.heads import GoalNet
from ikrl.rl.goal.policy import GoalPolicy
from ikrl.rl.policy import goal_features
from ikrl.rl.training.goal_heads import HeadsTraining, load_part, save_part
from ikrl.rl.training.gradients import check_reward_gradient
from ikrl.rl.training.schedules import cosine_lr
from ikrl.util.checks import check_int, check_number

__all__ = ["GoalTraining", "corrector_columns"]

#: Corrector updates between looks for a newer goal-network snapshot.
POLL_EVERY = 25


def corrector_columns(env) -> tuple[int, ...]:
    """The observation columns the corrector's learned gain sees: all but the
    :func:`~ikrl.rl.policy.goal_features` (the error twist), which the gain multiplies instead."""
    vanishing = set(goal_features(env))
    return tuple(c for c in range(env.observation_spec["observation"].shape[-1]) if c not in vanishing)


class GoalTraining:
    """Trains a :class:`~ikrl.rl.goal.policy.GoalPolicy` in place; see the module docstring.

    Args (corrector): ``lr``, ``final_lr`` (fraction of ``lr`` at the end), ``horizon``,
    ``grad_clip``, ``start_noise`` (radians, the log-uniform range of start noise),
    ``episode`` (steps between resets).
    Args (goal network): ``goal_lr``, ``goal_batch``, ``mean_weight``, ``mean_until``,
    ``parallel``.
    Args (the policy, see :meth:`policy_for`): ``heads``, ``goal_width``, ``goal_depth``,
    ``damping``, ``switch``, ``refine_steps``.
    """

    name = "goal"
    default_batch_size = 256
    #: It back-propagates through the reward (ikrl.rl.training.gradients).
    needs_reward_gradient = True

    def __init__(
        self,
        env,
        policy: GoalPolicy,
        *,
        seed: int = 0,
        lr: float = 1e-3,
        final_lr: float = 0.01,
        horizon: int = 3,
        grad_clip: float = 1.0,
        start_noise: tuple[float, float] = (0.003, 0.6),
        episode: int = 30,
        goal_lr: float = 2e-3,
        goal_batch: int = 512,
        mean_weight: float = 0.05,
        mean_until: float = 0.7,
        parallel: bool = True,
        heads: int = 8,
        goal_width: int = 256,
        goal_depth: int = 4,
        damping: float = 0.05,
        switch: float = 0.05,
        refine_steps: int = 0,
    ) -> None:
        if not isinstance(policy, GoalPolicy):
            raise TrainingError(f"goal: trains a GoalPolicy (from GoalTraining.policy_for); got {type(policy).__name__}")
        for name, value in (("lr", lr), ("grad_clip", grad_clip), ("goal_lr", goal_lr)):
            check_number("goal", name, value, accepted="a positive number", low=0, low_open=True)
        check_number("goal", "final_lr", final_lr, accepted="a number in (0, 1]", low=0, low_open=True, high=1)
        check_number("goal", "mean_weight", mean_weight, accepted="a number >= 0", low=0)
        check_number("goal", "mean_until", mean_until, accepted="a number in [0, 1]", low=0, high=1)
        check_int("goal", "horizon", horizon, low=1)
        check_int("goal", "episode", episode, low=1)
        check_int("goal", "goal_batch", goal_batch, low=1)
        low, high = (float(x) for x in start_noise)
        if not 0 < low <= high:
            raise TrainingError(f"goal: start_noise must be (low, high) radians with 0 < low <= high; got {start_noise!r}")
        check_reward_gradient(env, "goal")
        self.env, self.policy, self.seed = env, policy, seed
        self.lr, self.final_lr, self.horizon, self.grad_clip = lr, final_lr, horizon, grad_clip
        self.start_noise, self.episode, self.parallel = (low, high), episode, bool(parallel)
        self.optimizer = torch.optim.Adam(policy.corrector.parameters(), lr=lr)
        self.generator = torch.Generator(device=env.device).manual_seed(seed)
        self.heads = HeadsTraining(
            policy.goal, env.chain, env.sampler, seed=seed + 1, lr=goal_lr, batch=goal_batch, mean_weight=mean_weight, mean_until=mean_until
        )
        self.progress, self.updates = 0.0, 0
        self.budget_seconds: float | None = None
        self._state = None
        self._age: Tensor | None = None
        self._worker: _Worker | None = None
        self._heads_seconds = 0.0  # CPU seconds the goal network has trained (worker) so far

    @staticmethod
    def processes(minutes: float | None, params: dict[str, Any]) -> int:
        """Processes a run keeps busy: 2 with a budget in minutes only (``minutes`` is None
        when steps are in the budget) and ``parallel`` (the goal network's worker), else 1.
        An ablation grid runs cores // this many cells at once."""
        return 2 if minutes is not None and params.get("parallel", True) else 1

    @classmethod
    def policy_for(
        cls,
        env,
        *,
        hidden: tuple[int, ...] = (256, 256, 256),
        seed: int = 0,
        heads: int = 8,
        goal_width: int = 256,
        goal_depth: int = 4,
        damping: float = 0.05,
        switch: float = 0.05,
        refine_steps: int = 0,
        **_training: Any,
    ) -> GoalPolicy:
        """A fresh :class:`GoalPolicy` for ``env``; ``hidden`` sizes the corrector's MLP."""
        columns = corrector_columns(env)
        goal = GoalNet.for_chain(env.chain, seed=seed, heads=heads, width=goal_width, depth=goal_depth)
        corrector = Corrector(len(columns), env.max_delta, hidden=hidden, damping=damping)
        size = env.observation_spec["observation"].shape[-1]
        return GoalPolicy(goal, corrector, env.chain, columns, size, switch=switch, refine_steps=refine_steps)

    # ------------------------------------------------------------------ schedules

    def set_budget(self, seconds: float | None, steps: int | None) -> None:
        """The run's budget: CPU seconds (the worker gets as many) and/or environment steps.
        With steps in the budget the run may end before its seconds are spent, so the goal
        network then trains in this process, in step with the corrector."""
        self.budget_seconds = seconds if steps is None else None

    def set_progress(self, fraction: float) -> None:
        self.progress = min(max(float(fraction), 0.0), 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = cosine_lr(self.progress, self.lr, self.final_lr)

    # ------------------------------------------------------------------ training

    def _starts(self, n: int) -> tuple[Tensor, Tensor]:
        env, chain = self.env, self.env.chain
        _, target = env.sampler(chain, n, env.rng)
        target = target.to(device=env.device, dtype=env.dtype)
        low, high = math.log(self.start_noise[0]), math.log(self.start_noise[1])
        size = torch.exp(low + (high - low) * torch.rand(n, 1, generator=self.generator, device=env.device, dtype=env.dtype))
        noise = torch.randn(target.shape, generator=self.generator, device=env.device, dtype=env.dtype)
        return into_limits(chain, target + size * noise), target

    def _reset(self, mask: Tensor | None):
        env = self.env
        n = env.batch_size[0]
        start, target_q = self._starts(n)
        with torch.no_grad():
            target = env.chain.forward_kinematics(target_q)
        zero = torch.zeros(n, 1, dtype=torch.int64, device=env.device)
        if mask is None or self._state is None or self._age is None:
            # Desynchronised episodes: arms start at random points of their episode.
            self._age = torch.randint(0, self.episode, (n,), generator=self.generator, device=env.device)
            return env.state_at(start, target, step_count=zero)
        keep = ~mask.reshape(n, 1)
        old = self._state
        self._age = torch.where(mask, torch.zeros_like(self._age), self._age)
        q = torch.where(keep, old["q"], start)
        target = torch.where(keep.unsqueeze(-1), old["target"], target)
        return env.state_at(q, target, step_count=zero)

    def update(self) -> dict[str, float]:
        if self._state is None:
            self._state = self._reset(None)
        self._step_heads()
        policy, env = self.policy, self.env
        td = self._state
        rewards = []
        for _ in range(self.horizon):
            td["action"] = policy.corrector(td["q"], policy.features(td["observation"]), td["error"], env.chain)
            td = env.step(td)["next"]
            rewards.append(td["reward"].mean())
        objective = torch.stack(rewards).mean()
        self.optimizer.zero_grad(set_to_none=True)
        (-objective).backward()
        grad_norm = nn.utils.clip_grad_norm_(policy.corrector.parameters(), self.grad_clip)
        self.optimizer.step()
        self.updates += 1
        td = td.detach()
        self._state = td
        assert self._age is not None
        self._age = self._age + self.horizon
        # The env would truncate at its own max_steps; our episodes are shorter, and counted here.
        done = (self._age >= self.episode) | td["truncated"].squeeze(-1)
        if bool(done.any()):
            self._state = self._reset(done)
        return {
            "transitions": self.horizon * env.batch_size[0],
            "reward": float(objective.detach()),
            "success_rate": float(td["terminated"].float().mean()),
            "grad_norm": float(grad_norm),
            "lr": cosine_lr(self.progress, self.lr, self.final_lr),
            "goal_steps": float(self.heads.steps),
            "goal_loss": self.heads.last_loss,
        }

    def _step_heads(self) -> None:
        if not self.parallel or self.budget_seconds is None:
            self.heads.step(self.progress)
            return
        if self._worker is None:
            self._worker = _Worker(self)
        if self.updates % POLL_EVERY == 0:
            self._worker.poll()

    def finish(self) -> None:
        """Wait for the goal network's worker and take its final weights."""
        if self._worker is not None:
            self._worker.finish()
            self._worker = None

    def summary(self) -> dict[str, float]:
        """What the run's evaluation records of this algorithm's work."""
        return {
            "corrector_updates": self.updates,
            "goal_steps": self.heads.steps,
            "goal_targets": self.heads.steps * self.heads.batch,
            "goal_seconds": self._heads_seconds,
            "goal_parallel": float(self.parallel and self.budget_seconds is not None),
        }

    # ------------------------------------------------------------------ resuming

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "updates": self.updates,
            "progress": self.progress,
            "heads": self.heads.state_dict(),
            "heads_seconds": self._heads_seconds,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.updates = int(state["updates"])
        self.heads.load_state_dict(state["heads"])
        self._heads_seconds = float(state.get("heads_seconds", 0.0))
        self.set_progress(float(state["progress"]))


class _Worker:
    """The goal network's training in a process of its own (module docstring)."""

    def __init__(self, owner: GoalTraining) -> None:
        assert owner.budget_seconds is not None
        self.owner = owner
        self._folder = tempfile.TemporaryDirectory(prefix="ikrl-goal-")
        self.folder = Path(self._folder.name)
        net = owner.policy.goal
        env = owner.env
        heads = owner.heads
        save_part(
            self.folder / "init.pt",
            {
                "spec": str(env.resolved_spec),
                "dtype": str(env.dtype).removeprefix("torch."),
                "seed": owner.seed + 1,
                "net_config": net.config(),
                "net_state": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
                "trainer_state": heads.state_dict() if heads.steps else None,
                "options": {"lr": heads.lr, "batch": heads.batch, "mean_weight": heads.mean_weight, "mean_until": heads.mean_until},
                "seconds": owner.budget_seconds,
                "seconds_used": owner._heads_seconds,
            },
        )
        self.log = (self.folder / "log.txt").open("w")
        environment = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ikrl.rl.training.goal_heads", str(self.folder), str(os.getpid())],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
        self._seen = 0.0

    def _take(self, path: Path) -> None:
        record = load_part(path)
        owner = self.owner
        owner.policy.goal.load_state_dict(record["net_state"])
        owner.heads.load_state_dict(record["trainer_state"])
        owner.heads.last_loss = float(record.get("loss", math.nan))
        owner._heads_seconds = float(record["seconds_used"])
        owner.policy.train(owner.policy.training)  # forget heads cached from older weights

    def poll(self) -> None:
        path = self.folder / "snapshot.pt"
        try:
            changed = path.stat().st_mtime_ns
        except FileNotFoundError:
            changed = 0
        if changed and changed != self._seen:
            self._seen = changed
            self._take(path)
        if self.process.poll() not in (None, 0):
            self._failed()

    def finish(self) -> None:
        try:
            while self.process.poll() is None:
                time.sleep(0.05)
        except BaseException:
            self.process.kill()
            raise
        if self.process.returncode != 0 or not (self.folder / "final.pt").is_file():
            self._failed()
        self._take(self.folder / "final.pt")
        self.close()

    def _failed(self) -> None:
        self.log.flush()
        tail = (self.folder / "log.txt").read_text(errors="replace")[-2000:]
        code = self.process.returncode
        self.close()
        raise TrainingError(
            f"goal: the goal network's worker process failed (exit code {code}). It rebuilds the environment "
            f"from the spec, so the robot and sampler must be installed plugins; train with params "
            f"{{'parallel': False}} to keep it in this process. Its log ends:\n{tail}"
        )

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()
        self._folder.cleanup()

    def __del__(self) -> None:  # a run interrupted before finish() leaves no process behind
        try:
            self.close()
        except Exception:
            pass
