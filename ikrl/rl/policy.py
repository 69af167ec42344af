"""Policies: what acts in an environment, and the MLP that apg and sac train.

Every policy is an ``nn.Module`` with ``in_keys`` (the tensordict entries it reads, in the
order of its ``forward`` arguments), a ``kind`` (the name checkpoints store), ``config()``
and ``from_config(config, chain)``; its ``forward`` returns joint deltas within the
environment's ``max_delta``. :func:`act` runs one on a tensordict, and :func:`as_module`
wraps one as TorchRL's ``TensorDictModule`` writing ``"action"``.

A :class:`Policy` maps an environment's ``observation`` to an ``action`` (joint deltas):
an MLP whose output goes through ``tanh`` and is scaled by the environment's per-joint
``max_delta``, so its actions always lie inside the action spec's bounds. Its
:meth:`~Policy.config` is a plain dict that, with the state dict, rebuilds it
(:mod:`ikrl.rl.checkpoint` stores both).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ikrl.errors import BadParameterError
from ikrl.extend.components import zero_on_target

__all__ = ["ACTIVATIONS", "Policy", "act", "as_module", "goal_features", "mlp_parameters"]

#: Activation functions a policy may use, by name (the name is what checkpoints store).
ACTIVATIONS = {"silu": nn.SiLU, "tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


class Policy(nn.Module):
    """``action = max_delta * tanh(mlp(observation) - mlp(observation on target))``.

    When ``goal_features`` names the observation columns that are zero exactly when the arm is
    on its target (the error twist), the network's output is anchored: the same network
    evaluated with those columns zeroed is subtracted, so the policy does not move an arm that
    is on target, whatever its weights. A plain MLP only learns that approximately, and its
    residual output at zero error becomes a steady-state error of centimetres; anchored, the
    closed loop's fixed point is the target itself and precision comes from feedback.
    Without ``goal_features`` the policy is the plain ``max_delta * tanh(mlp(observation))``.

    Args:
        observation_size: width of the environment's ``observation``.
        max_delta: the largest joint change per step, one value per joint (``env.max_delta``).
        hidden: widths of the hidden layers.
        activation: one of :data:`ACTIVATIONS`.
        goal_features: observation columns that vanish on target (see above).
    """

    kind = "mlp"
    in_keys = ("observation",)
    max_delta: Tensor
    _on_target: Tensor

    def __init__(
        self,
        observation_size: int,
        max_delta: Tensor | Sequence[float],
        *,
        hidden: Sequence[int] = (256, 256, 256),
        activation: str = "silu",
        goal_features: Sequence[int] = (),
    ) -> None:
        super().__init__()
        max_delta = torch.as_tensor(max_delta, dtype=torch.float32).flatten().clone()
        hidden = tuple(hidden)
        if not isinstance(observation_size, int) or observation_size < 1:
            raise BadParameterError(f"observation_size must be a positive int; got {observation_size!r}")
        if max_delta.numel() < 1 or not bool((max_delta > 0).all()) or not bool(torch.isfinite(max_delta).all()):
            raise BadParameterError(f"max_delta must hold one positive finite number per joint; got {max_delta.tolist()}")
        if not hidden or not all(isinstance(h, int) and h > 0 for h in hidden):
            raise BadParameterError(f"hidden must be one or more positive layer widths; got {hidden!r}")
        if activation not in ACTIVATIONS:
            raise BadParameterError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
        goal_features = tuple(int(i) for i in goal_features)
        if any(not 0 <= i < observation_size for i in goal_features) or len(set(goal_features)) != len(goal_features):
            raise BadParameterError(
                f"goal_features must be distinct column indices below {observation_size}; got {goal_features!r}"
            )
        self.goal_features = goal_features
        self.observation_size = observation_size
        self.dof = max_delta.numel()
        self.hidden = hidden
        self.activation = activation
        layers: list[nn.Module] = []
        width = observation_size
        for h in hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            width = h
        last = nn.Linear(width, self.dof)
        # A small last layer: the untrained policy makes small moves, not saturated ones.
        with torch.no_grad():
            last.weight.mul_(0.1)
            last.bias.zero_()
        self.net = nn.Sequential(*layers, last)
        self.register_buffer("max_delta", max_delta)
        keep = torch.ones(observation_size)
        keep[list(goal_features)] = 0.0
        self.register_buffer("_on_target", keep, persistent=False)

    def pre_tanh(self, observation: Tensor) -> Tensor:
        """The MLP's output before squashing (model-free algorithms put a distribution on it)."""
        if observation.shape[-1] != self.observation_size:
            raise BadParameterError(
                f"the policy expects observations of width {self.observation_size}; got shape {tuple(observation.shape)}"
            )
        if not self.goal_features:
            return self.net(observation)
        # One pass over both halves: fewer, larger operations than two calls.
        both = self.net(torch.cat([observation, observation * self._on_target]))
        here, on_target = both.chunk(2)
        return here - on_target

    def forward(self, observation: Tensor) -> Tensor:
        return self.max_delta * torch.tanh(self.pre_tanh(observation))

    def config(self) -> dict:
        """What rebuilds this policy: ``Policy(**policy.config())``."""
        return {
            "observation_size": self.observation_size,
            "max_delta": [float(x) for x in self.get_buffer("max_delta").tolist()],
            "hidden": list(self.hidden),
            "activation": self.activation,
            "goal_features": list(self.goal_features),
        }

    @staticmethod
    def parameter_count(config: dict) -> int:
        """The parameters the policy ``config`` describes, counted without building it."""
        dof = len(config["max_delta"]) if isinstance(config["max_delta"], Sequence) else 1
        return mlp_parameters([config["observation_size"], *config.get("hidden", (256, 256, 256)), dof])

    @classmethod
    def from_config(cls, config: dict, chain: object = None) -> Policy:
        """The policy :meth:`config` describes, untrained (it needs no chain)."""
        return cls(**config)

    def extra_repr(self) -> str:
        return f"observation_size={self.observation_size}, dof={self.dof}, hidden={self.hidden}, activation={self.activation!r}, goal_features={len(self.goal_features)}"


def mlp_parameters(widths: Sequence[int]) -> int:
    """Weights and biases of a stack of ``nn.Linear`` layers through ``widths`` (input first),
    counted without building it (how a checkpoint's config is bounded before anything is allocated).

    >>> mlp_parameters([12, 256, 6])
    4870
    """
    widths = [int(w) for w in widths]
    if any(w < 1 for w in widths):
        raise ValueError(f"layer widths must be positive; got {widths}")
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))


def act(policy: nn.Module, tensordict) -> Tensor:
    """``policy``'s action for the states in ``tensordict``: its :attr:`in_keys` entries, in
    order, as arguments (a module without ``in_keys`` gets the ``"observation"``)."""
    keys = getattr(policy, "in_keys", ("observation",))
    return policy(*(tensordict[key] for key in keys))


def as_module(policy: nn.Module):
    """``policy`` as TorchRL's ``TensorDictModule``: reads its :attr:`in_keys`, writes ``"action"``.

    >>> import ikrl
    >>> from ikrl.rl.policy import Policy, as_module
    >>> env = ikrl.make_env("dobot_cr5+weighted_pose+sincos", batch_size=4, seed=0)
    >>> module = as_module(Policy(env.observation_spec["observation"].shape[-1], env.max_delta))
    >>> env.rollout(3, module).batch_size
    torch.Size([4, 3])
    """
    from tensordict.nn import TensorDictModule

    return TensorDictModule(policy, in_keys=list(getattr(policy, "in_keys", ("observation",))), out_keys=["action"])


def goal_features(env) -> tuple[int, ...]:
    """Observation columns of the transforms that declare ``zero_on_target`` (the error
    twist): what :class:`Policy` anchors on, and what the goal policy's corrector multiplies
    rather than sees."""
    columns, start = [], 0
    for _, transform in env.transforms:
        size = transform.size(env.chain)
        if zero_on_target(transform):
            columns.extend(range(start, start + size))
        start += size
    return tuple(columns)
