"""The composed policy: straight to the goal network's best head, then the corrector.

Each step, from the tensordict's ``q``, ``target``, ``error`` and ``observation``:

1. **Goal.** The heads of the goal network for this target, each polished by
   ``refine_steps`` damped least squares steps on the chain model (the environment's rules:
   at most ``max_delta`` per joint, inside the limits), and the one whose forward kinematics
   is nearest the target (:func:`~ikrl.rl.goal.heads.pose_score`). A function of the target
   only, computed once per batch of targets and cached. A joint with more than 2 pi of range
   aims at the 2 pi-equivalent of the head's value nearest its current value, if that lies
   inside the limits.
2. **Approach.** While some joint is more than ``switch`` from the goal, and the tip is not
   already within ``gate`` of the target: ``clamp(goal - q, +-max_delta)``. The joint box is
   convex, so the straight path never leaves it.
3. **Correct.** Otherwise the corrector's ``A e``: exactly zero at zero error.

The policy reads the joint values from the tensordict, not only from the observation: with
a ``sincos`` observation a joint with more than 2 pi of range is known only modulo 2 pi, and
both the approach and the damped least squares need the value itself. The corrector's
learned part sees the spec's observation (less its error columns).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ikrl.errors import BadParameterError
from ikrl.kinematics.protocol import into_limits
from ikrl.kinematics.se3 import error_twist
from ikrl.rl.goal.corrector import Corrector, damped_least_squares
from ikrl.rl.goal.heads import GoalNet, pose_score, wide_joints
from ikrl.util.checks import check_int

__all__ = ["GoalPolicy"]


class GoalPolicy(nn.Module):
    """Goal network + straight approach + corrector (see the module docstring).

    ``forward(q [N, dof], target [N, 4, 4], error [N, 6], observation [N, O]) -> action [N, dof]``,
    the tensordict keys in :attr:`in_keys`; actions lie within ``max_delta``.

    Args:
        goal: the goal network.
        corrector: the local corrector.
        chain: the arm (forward kinematics and Jacobians for the heads and the corrector).
        feature_columns: the observation columns the corrector sees.
        observation_size: width of the environment's observation.
        switch: radians; approach while some joint is further than this from the goal.
        gate: ``(metres, radians)``; with the tip within both, never approach.
        refine_steps: damped least squares steps that polish each head before ranking.
    """

    kind = "goal"
    in_keys = ("q", "target", "error", "observation")
    _columns: Tensor
    _wide: Tensor

    def __init__(
        self,
        goal: GoalNet,
        corrector: Corrector,
        chain,
        feature_columns: Sequence[int],
        observation_size: int,
        *,
        switch: float = 0.05,
        gate: tuple[float, float] = (0.02, math.radians(5.0)),
        refine_steps: int = 0,
    ) -> None:
        super().__init__()
        columns = tuple(int(c) for c in feature_columns)
        if len(columns) != corrector.feature_size or any(not 0 <= c < observation_size for c in columns):
            raise BadParameterError(
                f"goal policy: feature_columns must be {corrector.feature_size} column indices below {observation_size}; got {columns}"
            )
        if goal.dof != corrector.dof or goal.dof != chain.dof:
            raise BadParameterError(f"goal policy: goal net ({goal.dof}), corrector ({corrector.dof}) and chain ({chain.dof}) joints differ")
        if not (switch > 0 and gate[0] >= 0 and gate[1] >= 0):
            raise BadParameterError(f"goal policy: need switch > 0 and gate >= 0; got switch={switch}, gate={gate}")
        check_int("goal policy", "refine_steps", refine_steps, low=0)
        self.goal, self.corrector, self.chain = goal, corrector, chain
        self.feature_columns, self.observation_size = columns, observation_size
        self.switch, self.gate, self.refine_steps = float(switch), (float(gate[0]), float(gate[1])), refine_steps
        self.register_buffer("_columns", torch.tensor(columns, dtype=torch.long), persistent=False)
        self.register_buffer("_wide", wide_joints(goal.lower, goal.upper), persistent=False)
        self._cache: tuple[Tensor, Tensor] | None = None

    # ------------------------------------------------------------------ parts

    @property
    def max_delta(self) -> Tensor:
        return self.corrector.max_delta

    def features(self, observation: Tensor) -> Tensor:
        """The corrector's input: the observation's :attr:`feature_columns`."""
        return observation.index_select(-1, self._columns)

    @torch.no_grad()
    def heads(self, target: Tensor) -> Tensor:
        """``[N, K, dof]`` the goal network's heads for targets ``[N, 4, 4]``, polished by
        :attr:`refine_steps` damped least squares steps, in the chain's dtype."""
        chain = self.chain
        q = self.goal(target).to(chain.dtype)
        n, k, dof = q.shape
        if self.refine_steps:
            q = q.reshape(n * k, dof)
            goal = target.to(chain.dtype).unsqueeze(1).expand(n, k, 4, 4).reshape(n * k, 4, 4)
            max_delta = self.max_delta.to(chain.dtype)
            damping = self.corrector.damping or 0.05
            for _ in range(self.refine_steps):
                error = error_twist(chain.forward_kinematics(q), goal)
                dq = (damped_least_squares(chain, q, damping) @ error.unsqueeze(-1)).squeeze(-1)
                q = into_limits(chain, q + torch.maximum(torch.minimum(dq, max_delta), -max_delta))
            q = q.view(n, k, dof)
        return q

    @torch.no_grad()
    def best_head(self, target: Tensor) -> Tensor:
        """``[N, dof]`` the polished head whose forward kinematics is nearest each target;
        cached for the last batch of targets (compared by value)."""
        cached = self._cache
        if cached is not None and cached[0].shape == target.shape and torch.equal(cached[0], target):
            return cached[1]
        chosen = self.ranked_heads(target)[:, 0]
        self._cache = (target.clone(), chosen)
        return chosen

    @torch.no_grad()
    def ranked_heads(self, target: Tensor) -> Tensor:
        """``[N, K, dof]`` the polished heads of each target, nearest first (by
        :func:`~ikrl.rl.goal.heads.pose_score` of their forward kinematics): the solver's seeds."""
        q = self.heads(target)
        n, k, dof = q.shape
        tip = self.chain.forward_kinematics(q.reshape(n * k, dof)).view(n, k, 4, 4)
        order = pose_score(tip, target.to(tip.dtype).unsqueeze(1)).argsort(-1)
        return q.gather(1, order.unsqueeze(-1).expand(n, k, dof))

    def goal_for(self, q: Tensor, target: Tensor) -> Tensor:
        """The best head, a joint with more than 2 pi of range moved to the 2 pi-equivalent
        nearest its current value when that lies inside the limits."""
        goal = self.best_head(target).to(q.dtype)
        if not bool(self._wide.any()):
            return goal
        shifted = goal + 2 * math.pi * torch.round((q - goal) / (2 * math.pi))
        lower, upper = self.goal.lower.to(q.dtype), self.goal.upper.to(q.dtype)
        inside = (shifted >= lower) & (shifted <= upper)
        return torch.where(self._wide & inside, shifted, goal)

    # ------------------------------------------------------------------ acting

    def forward(self, q: Tensor, target: Tensor, error: Tensor, observation: Tensor) -> Tensor:
        max_delta = self.max_delta.to(q.dtype)
        difference = self.goal_for(q, target) - q
        far = difference.abs().amax(-1) > self.switch
        near = (error[..., :3].norm(dim=-1) < self.gate[0]) & (error[..., 3:].norm(dim=-1) < self.gate[1])
        approach = torch.maximum(torch.minimum(difference, max_delta), -max_delta)
        correct = self.corrector(q, self.features(observation), error, self.chain)
        return torch.where((far & ~near).unsqueeze(-1), approach, correct)

    def train(self, mode: bool = True) -> GoalPolicy:
        self._cache = None  # weights may change while training: never reuse old heads
        return super().train(mode)

    # ------------------------------------------------------------------ records

    def config(self) -> dict[str, Any]:
        """What rebuilds this policy, with a chain: :meth:`from_config`."""
        return {
            "goal": self.goal.config(),
            "corrector": self.corrector.config(),
            "max_delta": [float(x) for x in self.max_delta.tolist()],
            "feature_columns": list(self.feature_columns),
            "observation_size": self.observation_size,
            "switch": self.switch,
            "gate": list(self.gate),
            "refine_steps": self.refine_steps,
        }

    @staticmethod
    def parameter_count(config: dict[str, Any]) -> int:
        """The parameters the policy ``config`` describes, counted without building it."""
        return GoalNet.parameter_count(config["goal"]) + Corrector.parameter_count(config["corrector"], len(config["max_delta"]))

    @classmethod
    def from_config(cls, config: dict[str, Any], chain) -> GoalPolicy:
        """The policy :meth:`config` describes, untrained (load its state dict next)."""
        goal = GoalNet(**config["goal"])
        corrector = Corrector(max_delta=config["max_delta"], **config["corrector"])
        return cls(
            goal,
            corrector,
            chain,
            config["feature_columns"],
            config["observation_size"],
            switch=config["switch"],
            gate=tuple(config["gate"]),
            refine_steps=config["refine_steps"],
        )

    def extra_repr(self) -> str:
        return f"switch={self.switch}, gate={self.gate}, refine_steps={self.refine_steps}"
