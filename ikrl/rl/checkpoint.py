"""Checkpoints: a trained policy with everything needed to trust and reuse it.

A run folder holds ``checkpoint.pt``, a dict written with :func:`torch.save` that holds only
plain data (tensors, numbers, strings, lists, dicts), so it loads with ``weights_only=True``:

============================  ===============================================================
key                           what
============================  ===============================================================
``format``                    :data:`FORMAT`, bumped when the layout changes
``algorithm``                 the training algorithm (``apg``, ``sac``...)
``spec``                      the resolved spec string the policy was trained on
``fingerprint``               :func:`kinematics_fingerprint` of the robot's chain
``robot``                     the robot's name, base and tip links and joint names (for messages)
``env``                       environment options: max_steps, max_delta, tolerances, dtype
``policy``                    ``{"kind": "mlp" | "goal", "config": policy.config(), "state": state_dict}``
``train_config``              the training configuration (a dict)
``progress``                  steps, updates and seconds trained so far
``optimizer``                 optimizer/scheduler state for resuming (may be None)
``versions``                  ikrl, torch, torchrl, tensordict, python
============================  ===============================================================

Loading for another robot, or for a URDF whose kinematics changed since training, raises
:class:`~ikrl.errors.CheckpointMismatchError`.
"""

from __future__ import annotations

import importlib.metadata
import math
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ikrl.errors import CheckpointError, CheckpointMismatchError, IkrlError
from ikrl.kinematics.protocol import KinematicChain
from ikrl.rl.goal.policy import GoalPolicy
from ikrl.rl.policy import Policy
from ikrl.util.checks import is_finite_number
from ikrl.util.files import atomic_write

__all__ = ["CHECKPOINT_FILE", "FORMAT", "MAX_EPISODE_STEPS", "MAX_POLICY_PARAMETERS", "POLICY_KINDS", "Checkpoint", "kinematics_fingerprint", "load_checkpoint", "versions"]

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = 1
#: Bounds a checkpoint's numbers must keep before anything is built from them: a crafted
#: file must not allocate gigabytes (``hidden=[200000, 200000]``) or run for days (``max_steps=1e9``).
MAX_POLICY_PARAMETERS = 50_000_000
MAX_EPISODE_STEPS = 10_000

#: The policy classes a checkpoint can hold, by the ``kind`` it stores (a checkpoint without
#: one holds an MLP, as checkpoints did before the goal policy).
POLICY_KINDS: dict[str, type[Policy] | type[GoalPolicy]] = {"mlp": Policy, "goal": GoalPolicy}


def kinematics_fingerprint(chain: KinematicChain) -> str:
    """The chain's own :meth:`~ikrl.kinematics.protocol.KinematicChain.fingerprint`, checked to
    be a non-empty string (a plugin's chain may get it wrong)."""
    found = chain.fingerprint()
    if not isinstance(found, str) or not found:
        raise CheckpointError(f"chain {chain.name!r}.fingerprint() must return a non-empty string; got {found!r}")
    return found


def versions() -> dict[str, str]:
    """Versions of what a checkpoint depends on, for the record."""
    found = {"python": platform.python_version()}
    for dist in ("ikrl", "torch", "torchrl", "tensordict"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def robot_record(chain: KinematicChain) -> dict[str, Any]:
    """The robot's name and joints, for messages (the fingerprint decides what fits)."""
    return {"name": chain.name, "joints": list(chain.joint_names)}


@dataclass
class Checkpoint:
    """A loaded (or about to be saved) checkpoint; see the module docstring for the fields."""

    algorithm: str
    spec: str
    fingerprint: str
    robot: dict[str, Any]
    env: dict[str, Any]
    policy_config: dict[str, Any]
    policy_state: dict[str, torch.Tensor]
    train_config: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=versions)
    path: Path | None = None
    policy_kind: str = "mlp"
    _built: dict[tuple[str, int], Any] = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ using it

    def policy(self, device: torch.device | str = "cpu", chain: KinematicChain | None = None) -> Policy | GoalPolicy:
        """The trained policy, in eval mode. A goal policy acts through ``chain`` (checked
        against the fingerprint; by default the spec's robot, on ``device``). An MLP policy is
        built in the dtype of the checkpoint's environment (``env.dtype``), the dtype of the
        observations it gets."""
        where = self._where()
        kind = POLICY_KINDS.get(self.policy_kind)
        if kind is None:
            raise CheckpointError(
                f"{where} holds a policy of kind {self.policy_kind!r}; this ikrl knows {', '.join(sorted(POLICY_KINDS))}"
            )
        if kind is Policy:
            self._check_mlp_config(where)
        try:
            count = kind.parameter_count(self.policy_config)
        except (TypeError, KeyError, ValueError, AttributeError) as error:
            raise CheckpointError(f"{where}: its {self.policy_kind} policy config is malformed ({type(error).__name__}: {error})") from None
        held = sum(t.numel() for t in self.policy_state.values())
        if count > MAX_POLICY_PARAMETERS or count > held:
            raise CheckpointError(
                f"{where}: its policy config describes {count:,} parameters but its state holds {held:,} numbers "
                f"(at most {MAX_POLICY_PARAMETERS:,} are read); the file is damaged or was not written by ikrl"
            )
        self._check_max_delta(where, chain)
        if chain is None and kind is GoalPolicy:
            chain = self.make_env(batch_size=1, device=device).chain
        elif chain is not None:
            self.check_chain(chain)
        try:
            policy = kind.from_config(self.policy_config, chain)
            _check_state_dtypes(where, self.policy_state, policy.state_dict())
            policy.load_state_dict(self.policy_state)
        except (TypeError, KeyError, ValueError, RuntimeError) as error:
            if isinstance(error, CheckpointError):
                raise
            message = " ".join(str(error).split())
            raise CheckpointError(f"{where}: its policy cannot be rebuilt from what it stores ({type(error).__name__}: {message[:400]})") from None
        if kind is Policy:  # the goal policy casts its inputs itself
            return policy.to(device=device, dtype=getattr(torch, self.env.get("dtype", "float32"))).eval()
        return policy.to(device).eval()

    def _where(self) -> str:
        return f"checkpoint {self.path}" if self.path else "checkpoint"

    def _check_mlp_config(self, where: str) -> None:
        """The MLP config's layer widths and anchor columns, named before they are counted."""
        config = self.policy_config
        hidden = config.get("hidden", [256])
        if not (isinstance(hidden, list | tuple) and hidden and all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden)):
            raise CheckpointError(f"{where}: its policy config's hidden must be a list of positive ints (layer widths); got {hidden!r:.120}")
        features = config.get("goal_features", [])
        if not (isinstance(features, list | tuple) and all(isinstance(i, int) and not isinstance(i, bool) for i in features)):
            raise CheckpointError(f"{where}: its policy config's goal_features must be a list of ints (observation columns); got {features!r:.120}")

    def _check_max_delta(self, where: str, chain: KinematicChain | None) -> None:
        """The policy's ``max_delta`` (config and state) is its environment's, joint for joint."""
        env = [float(x) for x in self.env["max_delta"]]
        if chain is not None and chain.dof != len(env):
            raise CheckpointError(
                f"{where}: its environment's max_delta has {len(env)} values, one per joint, but chain {chain.name!r} has {chain.dof} joints"
            )
        expected = torch.tensor(env, dtype=torch.float32)
        found: list[tuple[str, object]] = [("policy config's max_delta", self.policy_config.get("max_delta"))]
        found += [(f"policy state's {key}", value) for key, value in self.policy_state.items() if key == "max_delta" or key.endswith(".max_delta")]
        for name, value in found:
            try:
                values = torch.as_tensor(value, dtype=torch.float32).flatten()
            except (TypeError, ValueError, RuntimeError):
                raise CheckpointError(f"{where}: its {name} must be {len(env)} positive numbers, one per joint; got {value!r:.120}") from None
            if values.numel() != len(env):
                raise CheckpointError(
                    f"{where}: its policy acts on {values.numel()} joints ({name} has {values.numel()} values) but its "
                    f"environment's max_delta has {len(env)}, one per joint; the file is damaged or was not written by ikrl"
                )
            if not torch.allclose(values, expected, rtol=1e-6, atol=0.0):
                shown = [round(float(v), 6) for v in values]
                raise CheckpointError(
                    f"{where}: its {name} is {shown}, but its environment's max_delta is {[round(v, 6) for v in env]}: they must be equal "
                    "(the policy scales its actions by it); the file is damaged or was not written by ikrl"
                )

    def shared_policy(self, device: torch.device | str, chain: KinematicChain) -> Policy | GoalPolicy:
        """:meth:`policy`, built once per device and chain and reused (a solver's warm start
        calls it for every batch): do not train or change it; take :meth:`policy` for that."""
        key = (str(device), id(chain))
        built = self._built.get(key)
        if built is None or built[0] is not chain:
            built = self._built[key] = (chain, self.policy(device, chain))
        return built[1]

    def check_chain(self, chain: KinematicChain) -> None:
        """Raise :class:`CheckpointMismatchError` unless ``chain`` has the trained kinematics."""
        found = kinematics_fingerprint(chain)
        if found == self.fingerprint:
            return
        trained = self.robot
        where = f" ({self.path})" if self.path else ""
        if chain.name != trained.get("name") or tuple(chain.joint_names) != tuple(trained.get("joints", ())):
            problem = (
                f"it was trained for robot {trained.get('name')!r} (joints {', '.join(trained.get('joints', []))}), "
                f"not {chain.name!r} (joints {', '.join(chain.joint_names)})"
            )
        else:
            problem = (
                f"the kinematics of {chain.name!r} changed since training (fingerprint {found}, trained on "
                f"{self.fingerprint}): its URDF's joint origins, axes, limits or base/tip links differ"
            )
        raise CheckpointMismatchError(f"checkpoint{where} does not fit: {problem}; retrain for this robot")

    def make_env(
        self, *, batch_size: int = 64, seed: int | None = None, device: torch.device | str = "cpu", **overrides: Any
    ):
        """The environment the policy was trained on (spec and options), checked against the
        fingerprint. ``overrides`` go to :func:`ikrl.make_env` (e.g. another sampler's params)."""
        from ikrl.env.make import make_env

        options = {
            "max_steps": self.env["max_steps"],
            "max_delta": self.env["max_delta"],
            "position_tolerance": self.env["position_tolerance"],
            "rotation_tolerance": self.env["rotation_tolerance"],
            "dtype": getattr(torch, self.env.get("dtype", "float32")),
        }
        options.update(overrides)
        try:
            env = make_env(self.spec, batch_size=batch_size, seed=seed, device=device, **options)
        except CheckpointError:
            raise
        except IkrlError as error:
            message = " ".join(str(error).split())
            raise CheckpointError(
                f"{self._where()}: cannot build its environment (spec {self.spec[:200]!r}): {message[:600]}"
            ) from error
        self.check_chain(env.chain)
        size = self.policy_config.get("observation_size")
        width = env.observation_spec["observation"].shape[-1]
        if isinstance(size, int) and size != width:
            raise CheckpointError(
                f"{self._where()}: its policy reads observations of width {size}, but its spec {self.spec[:200]!r} gives "
                f"observations of width {width}; the spec or the policy was changed after training"
            )
        return env

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "algorithm": self.algorithm,
            "spec": self.spec,
            "fingerprint": self.fingerprint,
            "robot": self.robot,
            "env": self.env,
            "policy": {"kind": self.policy_kind, "config": self.policy_config, "state": self.policy_state},
            "train_config": self.train_config,
            "progress": self.progress,
            "optimizer": self.optimizer,
            "versions": self.versions,
        }

    def save(self, path: str | Path) -> Path:
        """Write to ``path`` (a file, or a run folder that gets :data:`CHECKPOINT_FILE`),
        atomically: a crash mid-write leaves the previous checkpoint intact."""
        path = Path(path)
        if path.is_dir() or not path.suffix:
            path = path / CHECKPOINT_FILE
        atomic_write(path, lambda partial: torch.save(self.to_dict(), partial))
        self.path = path
        return path


def env_record(env) -> dict[str, Any]:
    """The options of an :class:`~ikrl.env.IKEnv` a checkpoint needs to rebuild it."""
    return {
        "max_steps": env.max_steps,
        "max_delta": [float(x) for x in env.max_delta],
        "position_tolerance": float(env.position_tolerance),
        "rotation_tolerance": float(env.rotation_tolerance),
        "dtype": str(env.dtype).removeprefix("torch."),
    }


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint file, or the :data:`CHECKPOINT_FILE` of a run folder."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: give a run folder (holding {CHECKPOINT_FILE}) or the file itself")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        # torch's own message runs to many lines (why weights_only is on, how to turn it off); its first says what failed.
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
        if first.startswith("Weights only load failed"):
            first = "not a torch.save file of plain data (tensors, numbers, strings, lists, dicts)"
        raise CheckpointError(f"{path} is not a readable ikrl checkpoint: {first[:300]}") from error
    if not isinstance(data, dict) or "format" not in data:
        raise CheckpointError(f"{path} is not an ikrl checkpoint (no 'format' entry)")
    if data["format"] != FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {data['format']}; this ikrl reads format {FORMAT}")
    missing = {"algorithm", "spec", "fingerprint", "robot", "env", "policy"} - set(data)
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(sorted(missing))}")
    _check_fields(path, data)
    return Checkpoint(
        algorithm=data["algorithm"],
        spec=data["spec"],
        fingerprint=data["fingerprint"],
        robot=data["robot"],
        env=data["env"],
        policy_config=data["policy"]["config"],
        policy_state=data["policy"]["state"],
        policy_kind=data["policy"].get("kind", "mlp"),
        train_config=data.get("train_config", {}),
        progress=data.get("progress", {}),
        optimizer=data.get("optimizer"),
        versions=data.get("versions", {}),
        path=path,
    )


def _check_state_dtypes(where: str, stored: dict[str, torch.Tensor], built: dict[str, torch.Tensor]) -> None:
    """Refuse stored tensors whose kind differs from the policy's own: a float weight stored
    as a bool mask, or the reverse, would be cast without a word by ``load_state_dict``."""
    for key, tensor in stored.items():
        own = built.get(key)
        if own is not None and own.is_floating_point() != tensor.is_floating_point():
            raise CheckpointError(f"{where}: policy.state[{key!r}] is a {tensor.dtype} tensor; the policy's {key} is {own.dtype}")


def _check_fields(path: Path, data: dict[str, Any]) -> None:
    """Refuse a checkpoint whose fields have the wrong types or leave sane bounds, naming the field."""

    def fail(field: str, expected: str, value: object) -> CheckpointError:
        shown = repr(value)
        return CheckpointError(f"{path}: {field} must be {expected}; got {shown[:120]}{'...' if len(shown) > 120 else ''}")

    for key in ("algorithm", "spec", "fingerprint"):
        if not isinstance(data[key], str) or not data[key]:
            raise fail(key, "a non-empty string", data[key])
    if not isinstance(data["robot"], dict):
        raise fail("robot", "a dict (name, joints)", data["robot"])
    env = data["env"]
    if not isinstance(env, dict):
        raise fail("env", "a dict of environment options", env)
    steps = env.get("max_steps")
    if not (isinstance(steps, int) and not isinstance(steps, bool) and 1 <= steps <= MAX_EPISODE_STEPS):
        raise fail("env.max_steps", f"an int from 1 to {MAX_EPISODE_STEPS:,}", steps)
    delta = env.get("max_delta")
    if not (isinstance(delta, list) and delta and all(is_finite_number(x) and x > 0 for x in delta)):
        raise fail("env.max_delta", "a list of positive numbers, one per joint", delta)
    for key in ("position_tolerance", "rotation_tolerance"):
        if not (is_finite_number(env.get(key)) and env[key] > 0):
            raise fail(f"env.{key}", "a positive number", env.get(key))
    if env["rotation_tolerance"] > math.pi:
        raise fail("env.rotation_tolerance", "radians in (0, pi]", env["rotation_tolerance"])
    if env.get("dtype", "float32") not in ("float32", "float64"):
        raise fail("env.dtype", "'float32' or 'float64'", env.get("dtype"))
    policy = data["policy"]
    if not isinstance(policy, dict) or not isinstance(policy.get("config"), dict):
        raise fail("policy", "a dict with a 'config' dict and a 'state' dict", policy)
    state = policy.get("state")
    if not isinstance(state, dict) or not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise fail("policy.state", "a non-empty dict of names to tensors (a state dict)", type(state).__name__ if isinstance(state, dict) and state else state)
    for key, tensor in state.items():
        if tensor.layout != torch.strided or tensor.is_complex() or not (tensor.is_floating_point() or tensor.dtype == torch.bool):
            kind = f"a {tensor.layout} tensor" if tensor.layout != torch.strided else f"a {tensor.dtype} tensor"
            raise fail(f"policy.state[{key!r}]", "a dense real floating-point tensor (weights) or a bool mask", kind)
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: policy.state[{key!r}] holds values that are not finite (NaN or inf): the weights are damaged")
    if not isinstance(policy.get("kind", "mlp"), str):
        raise fail("policy.kind", f"one of {', '.join(sorted(POLICY_KINDS))}", policy.get("kind"))
