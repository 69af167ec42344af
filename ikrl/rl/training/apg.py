"""Analytic policy gradients (APG): train a policy by back-propagating through rollouts.

The environment is differentiable end to end, so the return of a short rollout is a
differentiable function of the policy's weights. Each :meth:`APG.update`:

1. runs the policy for ``horizon`` steps from the arms' current states (truncated
   back-propagation through time: the graph is cut after every update, so memory and the
   variance of long-horizon gradients stay bounded);
2. maximises the mean discounted reward of those steps with Adam, the gradient norm clipped;
3. resets arms whose episode was truncated (``max_steps``), drawing starts from the
   curriculum below. Arms within the success tolerance keep going rather than being reset:
   staying on target is what a controller must learn, and most of the precision is learnt
   there.

Schedules, driven by :meth:`set_progress` (fraction of the budget used):

* learning rate: linear warm-up over the first 2 %, then cosine decay to ``lr * final_lr``;
* start-state curriculum: starts near the target (joint noise growing from
  ``curriculum_noise[0]`` to ``curriculum_noise[1]`` radians) for the first
  ``curriculum_end`` of the budget, while the share of starts from the spec's own sampler
  grows from 0 to 1 (uniform starts, for the default sampler).

Episodes are desynchronised at the first reset (random initial step counts), so arms reset
a few at a time and every update sees arms at all stages of an episode.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ikrl.errors import BadParameterError
from ikrl.kinematics.protocol import into_limits
from ikrl.rl.policy import Policy
from ikrl.rl.training.gradients import check_reward_gradient
from ikrl.rl.training.schedules import cosine_lr
from ikrl.util.checks import check_int, check_number

__all__ = ["APG"]


class APG:
    """Analytic policy gradients; see the module docstring.

    Args:
        env: an :class:`~ikrl.env.IKEnv`; its batch size is the number of arms per update.
        policy: the :class:`~ikrl.rl.policy.Policy` to train, in place.
        seed: seeds the curriculum's random stream (the env has its own seed).
        lr: peak Adam learning rate.
        final_lr: the learning rate at the end, as a fraction of ``lr``.
        horizon: steps per update (truncated back-propagation through time).
        gamma: discount of rewards within a horizon.
        grad_clip: largest gradient norm.
        curriculum_end: fraction of the budget after which starts come only from the spec's sampler.
        curriculum_noise: (first, last) joint noise of near-target starts, radians.
    """

    name = "apg"
    default_batch_size = 256
    #: It back-propagates through the reward (ikrl.rl.training.gradients).
    needs_reward_gradient = True

    def __init__(
        self,
        env,
        policy: Policy,
        *,
        seed: int = 0,
        lr: float = 3e-3,
        final_lr: float = 0.01,
        horizon: int = 3,
        gamma: float = 1.0,
        grad_clip: float = 1.0,
        curriculum_end: float = 0.3,
        curriculum_noise: tuple[float, float] = (0.2, 1.5),
    ) -> None:
        for name, value in (("lr", lr), ("grad_clip", grad_clip)):
            check_number("apg", name, value, accepted="a positive number", low=0, low_open=True)
        check_int("apg", "horizon", horizon, low=1)
        if not (0 < gamma <= 1 and 0 < final_lr <= 1 and 0 <= curriculum_end <= 1):
            raise BadParameterError(
                f"apg: need 0 < gamma <= 1, 0 < final_lr <= 1 and 0 <= curriculum_end <= 1; "
                f"got gamma={gamma}, final_lr={final_lr}, curriculum_end={curriculum_end}"
            )
        check_reward_gradient(env, "apg")
        self.env = env
        self.policy = policy
        self.lr, self.final_lr, self.horizon, self.gamma = lr, final_lr, horizon, gamma
        self.grad_clip = grad_clip
        self.curriculum_end = curriculum_end
        self.curriculum_noise = tuple(curriculum_noise)
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
        self.generator = torch.Generator(device=env.device).manual_seed(seed)
        self.progress = 0.0
        self.updates = 0
        self._state = None
        self._weights = torch.tensor([gamma**t for t in range(horizon)], dtype=env.dtype, device=env.device)
        self._weights = self._weights / self._weights.sum()

    # ------------------------------------------------------------------ schedules

    def set_progress(self, fraction: float) -> None:
        self.progress = min(max(float(fraction), 0.0), 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()

    def learning_rate(self) -> float:
        return cosine_lr(self.progress, self.lr, self.final_lr)

    def curriculum(self) -> tuple[float, float]:
        """(near-target joint noise, share of starts from the spec's sampler) now."""
        if self.curriculum_end <= 0 or self.progress >= self.curriculum_end:
            return self.curriculum_noise[1], 1.0
        x = self.progress / self.curriculum_end
        first, last = self.curriculum_noise
        return first + (last - first) * x, x

    def _starts(self, n: int) -> tuple[Tensor, Tensor]:
        """Start and target joint values for ``n`` arms, following the curriculum."""
        chain = self.env.chain
        start, target = self.env.sampler(chain, n, self.env.rng)
        start = start.to(device=self.env.device, dtype=self.env.dtype)
        target = target.to(device=self.env.device, dtype=self.env.dtype)
        noise, share = self.curriculum()
        if share < 1.0:
            eps = torch.randn(target.shape, generator=self.generator, device=self.env.device, dtype=self.env.dtype)
            near = into_limits(chain, target + noise * eps)
            use_sampler = torch.rand(n, 1, generator=self.generator, device=self.env.device) < share
            start = torch.where(use_sampler, start, near)
        return start, target

    def _reset(self, mask: Tensor | None):
        env = self.env
        n = env.batch_size[0]
        start, target_q = self._starts(n)
        with torch.no_grad():
            target = env.chain.forward_kinematics(target_q)
        if mask is None:
            # Desynchronise episodes: arms start at random points of their step budget.
            count = torch.randint(0, env.max_steps, (n, 1), generator=self.generator, device=env.device)
            return env.state_at(start, target, step_count=count)
        old = self._state
        assert old is not None  # a masked reset follows a first, unmasked one
        keep = ~mask.reshape(n, 1)
        q = torch.where(keep, old["q"], start)
        target = torch.where(keep.unsqueeze(-1), old["target"], target)
        count = torch.where(keep, old["step_count"], torch.zeros_like(old["step_count"]))
        return env.state_at(q, target, step_count=count)

    # ------------------------------------------------------------------ training

    def update(self) -> dict[str, float]:
        if self._state is None:
            self._state = self._reset(None)
        td = self._state
        rewards = []
        for _ in range(self.horizon):
            td["action"] = self.policy(td["observation"])
            td = self.env.step(td)["next"]
            rewards.append(td["reward"].mean())
        objective = (torch.stack(rewards) * self._weights).sum()
        self.optimizer.zero_grad(set_to_none=True)
        (-objective).backward()
        grad_norm = nn.utils.clip_grad_norm_(self.policy.parameters(), self.grad_clip)
        self.optimizer.step()
        self.updates += 1
        td = td.detach()
        position = td["position_error"].squeeze(-1)
        rotation = td["rotation_error"].squeeze(-1)
        success = float(td["terminated"].float().mean())
        self._state = td
        truncated = td["truncated"].squeeze(-1)
        if bool(truncated.any()):
            self._state = self._reset(truncated)
        _, share = self.curriculum()
        return {
            "transitions": self.horizon * self.env.batch_size[0],
            "reward": float(objective.detach()),
            "success_rate": success,
            "position_error": float(position.median()),
            "rotation_error": float(rotation.median()),
            "grad_norm": float(grad_norm),
            "lr": self.learning_rate(),
            "curriculum_share": share,
        }

    # ------------------------------------------------------------------ resuming

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "updates": self.updates,
            "progress": self.progress,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.updates = int(state["updates"])
        self.set_progress(float(state["progress"]))
