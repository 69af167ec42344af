"""Soft actor-critic (SAC) from TorchRL's own parts: a model-free baseline.

The differentiable-rollout trainer back-propagates through the environment; SAC treats the
same :class:`~ikrl.env.IKEnv` as a black box, to show that the environment works with
ordinary reinforcement learning and to compare against. Everything comes from TorchRL:

* the actor is a :class:`~torchrl.modules.ProbabilisticActor` putting a
  :class:`~torchrl.modules.TanhNormal` on ``policy.pre_tanh(observation)`` (the location)
  and a small state-dependent log-std head (the scale), squashed onto
  ``[-max_delta, max_delta]``. TanhNormal's deterministic sample is
  ``(high + low) / 2 + (high - low) / 2 * tanh(loc) = max_delta * tanh(loc)``, which is
  exactly ``policy(observation)``: the trained :class:`~ikrl.rl.policy.Policy` *is* the
  deterministic SAC actor, and is what checkpoints save and evaluations run (anchored
  policies included: the location is whatever ``pre_tanh`` returns);
* two Q networks (:class:`~torchrl.modules.ValueOperator`) on ``[observation, action /
  max_delta]``, with target copies kept by :class:`~torchrl.objectives.SoftUpdate`;
* :class:`~torchrl.objectives.SACLoss` (SAC v2: no separate state-value network) with a
  one-step TD target (:attr:`~torchrl.objectives.ValueEstimators.TD0`) and learned
  temperature ``alpha``;
* a :class:`~torchrl.collectors.Collector` over the batched environment: one collector
  batch is one step of all ``N`` arms by default; it resets finished arms through the
  environment's partial ``"_reset"`` masks;
* a :class:`~torchrl.data.TensorDictReplayBuffer` on a
  :class:`~torchrl.data.LazyTensorStorage` holding only what the loss reads.

Bootstrapping: SACLoss's TD0 target stops at ``terminated`` (an arm reached the target)
and bootstraps through ``truncated`` (the step limit), as it should: the step limit is not
part of the task, and the observation does not show the step count.

Reproducibility: the networks are initialised, and every random draw SAC makes (random
warm-up actions, exploration noise, replay sampling, the loss's reparametrised samples)
is taken, from SAC's own random stream, seeded by ``seed``, carried in
:meth:`SAC.state_dict` and kept apart from the global one (the global generator is saved
and restored around each call). The environment draws targets from its own generator,
seeded when it is made. So on a CPU (with the same number of threads), the same
environment seed and the same SAC seed give the same training, bit for bit. On a GPU the
CUDA generator is torch's global one and kernels may be nondeterministic. The replay buffer and the arms' current episodes are not
part of the state dict (they are data, not state: a million transitions), so a run
resumed from a state dict refills its buffer, with random actions first, and does not
repeat the uninterrupted run exactly.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule
from torch import Tensor, nn
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.data.replay_buffers.samplers import RandomSampler
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import SACLoss, SoftUpdate, ValueEstimators

from ikrl.errors import BadParameterError
from ikrl.rl.policy import Policy
from ikrl.util.checks import check_int

__all__ = ["LOG_STD_MAX", "LOG_STD_MIN", "SAC"]

#: Bounds of the actor's log standard deviation, in the pre-tanh space: ``exp(-5) = 0.0067``
#: (under 1 % of ``max_delta`` around a zero action) to ``exp(1) = 2.7`` (spread over the
#: whole box).
LOG_STD_MIN = -5.0
LOG_STD_MAX = 1.0

#: What the replay buffer keeps of each transition: all SACLoss reads.
_KEYS = (
    "observation",
    "action",
    ("next", "observation"),
    ("next", "reward"),
    ("next", "done"),
    ("next", "terminated"),
    ("next", "truncated"),
)


class _LocScale(nn.Module):
    """``(loc, scale)`` of the actor's TanhNormal: the policy's pre-tanh output and a
    bounded, state-dependent standard deviation from a small head of its own."""

    def __init__(self, policy: Policy, hidden: int = 64, log_std_init: float = 0.0) -> None:
        super().__init__()
        self.policy = policy
        last = nn.Linear(hidden, policy.dof)
        with torch.no_grad():  # start at log_std_init everywhere
            last.weight.mul_(0.01)
            last.bias.fill_(_unsquash(log_std_init))
        self.log_std = nn.Sequential(nn.Linear(policy.observation_size, hidden), nn.SiLU(), last)

    def forward(self, observation: Tensor) -> tuple[Tensor, Tensor]:
        loc = self.policy.pre_tanh(observation)
        raw = torch.tanh(self.log_std(observation))
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (raw + 1)
        return loc, log_std.exp()


def _unsquash(log_std: float) -> float:
    """The head output that :meth:`_LocScale.forward` maps to ``log_std``."""
    x = 2 * (log_std - LOG_STD_MIN) / (LOG_STD_MAX - LOG_STD_MIN) - 1
    return math.atanh(min(max(x, -0.999), 0.999))


class _QNet(nn.Module):
    """``Q(observation, action)``: an MLP on the observation and the action in units of
    ``max_delta`` (so both inputs are of order one)."""

    max_delta: Tensor

    def __init__(self, observation_size: int, max_delta: Tensor, hidden: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = observation_size + max_delta.numel()
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        self.register_buffer("max_delta", max_delta.clone())

    def forward(self, observation: Tensor, action: Tensor) -> Tensor:
        return self.net(torch.cat([observation, action / self.max_delta], -1))


class SAC:
    """Soft actor-critic on an :class:`~ikrl.env.IKEnv`; trains ``policy`` in place.

    Args:
        env: the batched environment (``N`` arms); SAC steps it through a collector.
        policy: the :class:`~ikrl.rl.policy.Policy` to train; its deterministic action is the
            mean of SAC's actor. It is moved to ``device``.
        seed: seeds the networks' initialisation and SAC's own random stream.
        lr: Adam learning rate of actor, critics and temperature.
        gamma: discount. The reward is a per-step penalty on the error, so a short horizon
            (``1 / (1 - gamma) = 10`` steps) is enough and keeps the critics' targets small.
        tau: rate of the critics' target networks (Polyak averaging, once per gradient step).
        batch_size: transitions per gradient step.
        buffer_size: replay capacity, in transitions.
        frames_per_batch: transitions collected per :meth:`update`, a multiple of ``N``;
            default ``N`` (one step of every arm).
        updates_per_batch: gradient steps per :meth:`update`.
        init_random_frames: transitions collected with uniformly random actions before
            the first gradient step, rounded up to whole collector batches (the first
            :meth:`update` collects them all, so every update returns finite losses).
        hidden: hidden widths of the two Q networks.
        alpha_init: initial temperature.
        target_entropy: the entropy the temperature steers the actor's towards, in nats;
            ``None`` means ``-dof + sum(log max_delta)``: SAC's usual ``-dof`` for actions
            in ``[-1, 1]``, moved to actions in ``[-max_delta, max_delta]`` (a TanhNormal's
            log-density grows by ``-log max_delta`` per joint when scaled; ``-dof`` itself
            would ask for more spread than the box allows and the temperature would grow
            without bound).
        log_std_init: initial log standard deviation of the actor's noise before the
            squash, within [:data:`LOG_STD_MIN`, :data:`LOG_STD_MAX`].
        device: where the networks and the replay buffer live; default the environment's.

    The defaults were chosen on ``dobot_cr5+weighted_pose+sincos`` with 256 arms, one CPU
    thread and a budget of a few minutes, where gradient steps (about 30 a second, 25 ms
    each) are the bottleneck and transitions are cheap (a collection of 256 takes ~5 ms):
    so one gradient step per collection, a learning rate of ``1e-3`` and targets that
    follow at ``tau = 0.01``. The temperature starts at ``0.01``: with ``0.1`` the entropy
    bonus (``alpha * -log p``, about 1 per step) was as large as the reward itself and the
    policy stayed near-random for the first minutes. Measured there (150 s, about 5000
    gradient steps on 1.3 million transitions): the deterministic policy's mean final
    position error on 256 held-out targets fell from 0.80 m to 0.55 m, rotation from
    2.2 rad to 1.1 rad, with no success within (5 mm, 2 degrees): SAC is a baseline here,
    not a solver. Other learning rates, discounts (0.5 to 0.95), batch sizes and gradient
    steps per collection all ended between 0.49 and 0.57 m.
    """

    name = "sac"
    default_batch_size = 256

    def __init__(
        self,
        env: Any,
        policy: Policy,
        *,
        seed: int = 0,
        lr: float = 1e-3,
        gamma: float = 0.9,
        tau: float = 0.01,
        batch_size: int = 256,
        buffer_size: int = 1_000_000,
        frames_per_batch: int | None = None,
        updates_per_batch: int = 1,
        init_random_frames: int = 5_000,
        hidden: Sequence[int] = (256, 256),
        alpha_init: float = 0.01,
        target_entropy: float | None = None,
        log_std_init: float = 0.0,
        device: torch.device | str | None = None,
    ) -> None:
        n = int(env.batch_size[0])
        frames_per_batch = n if frames_per_batch is None else frames_per_batch
        _check(n, policy, env, {
            "lr": lr, "gamma": gamma, "tau": tau, "batch_size": batch_size, "buffer_size": buffer_size,
            "frames_per_batch": frames_per_batch, "updates_per_batch": updates_per_batch,
            "init_random_frames": init_random_frames, "hidden": hidden, "alpha_init": alpha_init,
            "target_entropy": target_entropy, "log_std_init": log_std_init,
        })  # fmt: skip
        self.env = env
        self.policy = policy
        self.device = torch.device(device) if device is not None else env.device
        self.config = {
            "seed": int(seed), "lr": float(lr), "gamma": float(gamma), "tau": float(tau),
            "batch_size": int(batch_size), "buffer_size": int(buffer_size),
            "frames_per_batch": int(frames_per_batch), "updates_per_batch": int(updates_per_batch),
            # Whole collector batches: the collector would round up anyway, with a warning.
            "init_random_frames": -(-int(init_random_frames) // frames_per_batch) * frames_per_batch,
            "hidden": [int(h) for h in hidden],
            "alpha_init": float(alpha_init), "log_std_init": float(log_std_init),
        }  # fmt: skip
        max_delta = env.max_delta.to(device=self.device, dtype=torch.float32)
        if target_entropy is None:
            target_entropy = float(-policy.dof + torch.log(max_delta).sum())
        self.config["target_entropy"] = float(target_entropy)

        # SAC's own random stream: everything random below and in update() draws from it.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._build(policy, max_delta, hidden, alpha_init, target_entropy, log_std_init, gamma, tau, lr)
            self._rng_state = torch.get_rng_state()
        self.buffer = TensorDictReplayBuffer(
            storage=LazyTensorStorage(buffer_size, device=self.device),
            sampler=RandomSampler(),
            batch_size=batch_size,
        )
        self.collector: Collector | None = None  # made on the first update: it resets the env
        self._iterator: Iterator[TensorDictBase] | None = None
        self.frames = 0
        self.updates = 0
        self.progress = 0.0

    def _build(
        self, policy, max_delta, hidden, alpha_init, target_entropy, log_std_init, gamma, tau, lr
    ) -> None:
        policy.to(self.device)
        self.loc_scale = _LocScale(policy, log_std_init=log_std_init).to(self.device)
        self.actor = ProbabilisticActor(
            TensorDictModule(self.loc_scale, in_keys=["observation"], out_keys=["loc", "scale"]),
            in_keys=["loc", "scale"],
            spec=self.env.full_action_spec.to(self.device),
            distribution_class=TanhNormal,
            distribution_kwargs={"low": -max_delta, "high": max_delta, "tanh_loc": False},
            default_interaction_type=ExplorationType.RANDOM,
        )
        qnet = _QNet(policy.observation_size, max_delta, hidden).to(self.device)
        self.qvalue = ValueOperator(qnet, in_keys=["observation", "action"])
        self.loss = SACLoss(
            self.actor, self.qvalue, num_qvalue_nets=2, loss_function="l2",
            alpha_init=alpha_init, target_entropy=target_entropy, delay_qvalue=True,
        )  # fmt: skip
        self.loss.make_value_estimator(ValueEstimators.TD0, gamma=gamma)
        self.target_updater = SoftUpdate(self.loss, tau=tau)
        self.optimizers = {
            "actor": torch.optim.Adam(self.loss.actor_network_params.values(True, True), lr=lr),
            "qvalue": torch.optim.Adam(self.loss.qvalue_network_params.values(True, True), lr=lr),
            "alpha": torch.optim.Adam([_tensor(self.loss.log_alpha)], lr=lr),
        }

    # ------------------------------------------------------------------ training

    def _make_collector(self) -> None:
        self.collector = Collector(
            self.env,
            self.actor,
            frames_per_batch=self.config["frames_per_batch"],
            total_frames=-1,
            init_random_frames=self.config["init_random_frames"],
            exploration_type=ExplorationType.RANDOM,  # pyright: ignore[reportArgumentType]  (torchrl's stub says InteractionType; this is its enum)
            reset_when_done=True,
            policy_device=self.device,
            env_device=self.env.device,
            storing_device=self.device,
            auto_register_policy_transforms=False,
        )
        self._iterator = iter(self.collector)

    def _collect(self) -> TensorDictBase:
        if self._iterator is None:
            self._make_collector()
        assert self._iterator is not None  # _make_collector sets it
        batch = next(self._iterator).reshape(-1)
        self.buffer.extend(batch.select(*_KEYS))
        self.frames += batch.numel()
        return batch

    def update(self) -> dict[str, float]:
        """Collect ``frames_per_batch`` transitions (the first call also the
        ``init_random_frames`` of warm-up), store them, then take ``updates_per_batch``
        gradient steps on replayed batches.

        Returns ``transitions`` (collected by this call), the losses and ``alpha`` averaged
        over this call's gradient steps, and over the collected transitions the mean
        ``reward`` and ``success_rate`` (fraction that ended an episode in success).
        """
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self._rng_state)
            try:
                return self._update()
            finally:
                self._rng_state = torch.get_rng_state()

    def _update(self) -> dict[str, float]:
        if self.collector is None:
            self._make_collector()
        warmup = max(self.config["init_random_frames"], self.config["batch_size"])
        batches = [self._collect()]
        while len(self.buffer) < warmup:
            batches.append(self._collect())
        totals = {"loss_actor": 0.0, "loss_qvalue": 0.0, "loss_alpha": 0.0, "alpha": 0.0, "entropy": 0.0}
        steps = self.config["updates_per_batch"]
        for _ in range(steps):
            losses = self._gradient_step(self.buffer.sample())
            for key in totals:
                totals[key] += losses[key]
        reward = torch.cat([b["next", "reward"].reshape(-1) for b in batches])
        terminated = torch.cat([b["next", "terminated"].reshape(-1) for b in batches])
        stats = {key: value / steps if steps else math.nan for key, value in totals.items()}
        stats.update(
            transitions=float(reward.numel()),
            reward_mean=float(reward.mean()),
            success_rate=float(terminated.float().mean()),
        )
        return stats

    def _gradient_step(self, sample: TensorDictBase) -> dict[str, float]:
        """One step of all three optimizers on a replayed batch, then the targets' update."""
        losses = self.loss(sample)
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        # The actor loss reads the critics through detached weights and the temperature
        # loss reads detached log-probabilities: one backward pass serves all three.
        (losses["loss_actor"] + losses["loss_qvalue"] + losses["loss_alpha"]).backward()
        for optimizer in self.optimizers.values():
            optimizer.step()
        self.target_updater.step()
        self.updates += 1
        return {key: float(value.detach()) for key, value in losses.items()}

    def set_progress(self, fraction: float) -> None:
        """Recorded only: SAC keeps its learning rates and temperature target constant
        (the temperature adapts by itself)."""
        self.progress = float(fraction)

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Plain data (tensors, numbers, dicts) for :func:`torch.save` with ``weights_only``:
        the loss module's parameters and buffers (actor, that is the policy and the
        log-std head, both critics, their targets, ``log_alpha``), the three optimizers,
        SAC's random stream and counters. Not the replay buffer."""
        return {
            "loss": {k: v.detach().clone() for k, v in self.loss.state_dict().items()},
            # Copies: an optimizer's state_dict holds its live moment tensors, which a
            # load_state_dict elsewhere would otherwise share.
            "optimizers": {k: copy.deepcopy(opt.state_dict()) for k, opt in self.optimizers.items()},
            "rng": self._rng_state.clone(),
            "frames": self.frames,
            "updates": self.updates,
            "progress": self.progress,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (the policy's weights included)."""
        self.loss.load_state_dict(state["loss"])
        for key, optimizer in self.optimizers.items():
            optimizer.load_state_dict(copy.deepcopy(state["optimizers"][key]))
        self._rng_state = state["rng"].clone()
        self.frames = int(state["frames"])
        self.updates = int(state["updates"])
        self.progress = float(state["progress"])

    # ------------------------------------------------------------------ helpers

    def deterministic_action(self, observation: Tensor) -> Tensor:
        """The actor's deterministic action (TanhNormal's mode through the squash)."""
        td = TensorDict({"observation": observation}, batch_size=observation.shape[:-1])
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            return self.actor(td)["action"]


def _check(n, policy, env, options) -> None:
    if not isinstance(policy, Policy):
        raise BadParameterError(f"sac trains an ikrl.rl.policy.Policy; got {type(policy).__name__}")
    observation_size = env.observation_spec["observation"].shape[-1]
    if policy.observation_size != observation_size or policy.dof != env.action_spec.shape[-1]:
        raise BadParameterError(
            f"sac: the policy takes {policy.observation_size} observations and gives {policy.dof} actions; "
            f"the environment has {observation_size} and {env.action_spec.shape[-1]}"
        )

    def number(value) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

    def integer(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    for name in ("lr", "alpha_init"):
        if not (number(options[name]) and options[name] > 0):
            raise BadParameterError(f"sac: {name} must be a positive number; got {options[name]!r}")
    for name in ("gamma", "tau"):
        if not (number(options[name]) and 0 < options[name] <= 1):
            raise BadParameterError(f"sac: {name} must be in (0, 1]; got {options[name]!r}")
    for name in ("batch_size", "buffer_size"):
        if not (integer(options[name]) and options[name] > 0):
            raise BadParameterError(f"sac: {name} must be a positive int; got {options[name]!r}")
    for name in ("updates_per_batch", "init_random_frames"):
        check_int("sac", name, options[name], low=0)
    frames = options["frames_per_batch"]
    if not (integer(frames) and frames >= n and frames % n == 0):
        raise BadParameterError(
            f"sac: frames_per_batch must be a positive multiple of the environment's batch size {n} "
            f"(whole steps of all arms); got {frames!r}"
        )
    hidden = options["hidden"]
    if not (len(tuple(hidden)) > 0 and all(integer(h) and h > 0 for h in hidden)):
        raise BadParameterError(f"sac: hidden must be one or more positive layer widths; got {hidden!r}")
    if options["target_entropy"] is not None and not number(options["target_entropy"]):
        raise BadParameterError(
            f"sac: target_entropy must be a finite number or None; got {options['target_entropy']!r}"
        )
    if not (number(options["log_std_init"]) and LOG_STD_MIN < options["log_std_init"] < LOG_STD_MAX):
        raise BadParameterError(
            f"sac: log_std_init must lie strictly between {LOG_STD_MIN} and {LOG_STD_MAX}; got {options['log_std_init']!r}"
        )
    warmup = -(-options["init_random_frames"] // frames) * frames
    needed = max(options["batch_size"], frames, warmup)
    if options["buffer_size"] < needed:
        raise BadParameterError(
            f"sac: buffer_size ({options['buffer_size']}) must hold a batch ({options['batch_size']}), a collection "
            f"({frames}) and the random warm-up ({warmup}); give at least {needed}"
        )


def _tensor(value: object) -> Tensor:
    """``value`` checked to be a tensor (TorchRL's loss attributes are typed loosely)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"expected a tensor; got {type(value).__name__}")
    return value
