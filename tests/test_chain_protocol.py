"""A robot plugin whose chain is a plain class (no ikrl.Chain, no URDF) works everywhere a chain is taken."""

from __future__ import annotations

import hashlib
import math
import re

import pytest
import torch
from torchrl.envs.utils import check_env_specs

import ikrl
from ikrl.env.make import make_env
from ikrl.errors import BadParameterError, IkrlError
from ikrl.extend import registry as registry_module
from ikrl.extend.plugins import load_plugins
from ikrl.extend.registry import Registry
from ikrl.kinematics.protocol import KinematicChain, random_joints
from ikrl.kinematics.se3 import pose_errors
from ikrl.rl.checkpoint import load_checkpoint
from ikrl.rl.evaluate import evaluate
from ikrl.rl.training.run import TrainConfig, train


class SphericalWrist:
    """An analytic 3-joint arm: yaw about z, pitch about y, then a 0.3 m link along z and a roll
    about that link. Position and orientation come from closed forms, not from ikrl."""

    name = "spherical_wrist"
    joint_names = ("yaw", "pitch", "roll")
    dof = 3

    def __init__(self, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> None:
        self.dtype, self.device = dtype, torch.device(device)
        self.lower = torch.tensor([-math.pi, -1.5, -math.pi], dtype=dtype, device=self.device)
        self.upper = torch.tensor([math.pi, 1.5, math.pi], dtype=dtype, device=self.device)
        self.continuous = torch.tensor([True, False, True], device=self.device)

    def to(self, device=None, dtype=None) -> SphericalWrist:
        return SphericalWrist(dtype or self.dtype, device or self.device)

    def fingerprint(self) -> str:
        return hashlib.sha256(b"spherical_wrist 0.3 m").hexdigest()[:16]

    @staticmethod
    def _rot(axis: int, angle: torch.Tensor) -> torch.Tensor:
        c, s = torch.cos(angle), torch.sin(angle)
        one, zero = torch.ones_like(c), torch.zeros_like(c)
        rows = {
            1: [[c, zero, s], [zero, one, zero], [-s, zero, c]],
            2: [[c, -s, zero], [s, c, zero], [zero, zero, one]],
        }[axis]
        return torch.stack([torch.stack(r, -1) for r in rows], -2)

    def forward_kinematics(self, q: torch.Tensor) -> torch.Tensor:
        rotation = self._rot(2, q[..., 0]) @ self._rot(1, q[..., 1]) @ self._rot(2, q[..., 2])
        position = 0.3 * rotation[..., :, 2]
        top = torch.cat([rotation, position.unsqueeze(-1)], -1)
        bottom = torch.zeros_like(top[..., :1, :])
        bottom[..., 0, 3] = 1.0
        return torch.cat([top, bottom], -2)

    def jacobian(self, q: torch.Tensor) -> torch.Tensor:
        return self.forward_kinematics_and_jacobian(q)[1]

    def forward_kinematics_and_jacobian(self, q: torch.Tensor):
        # Every axis passes through the base origin, so joint i moves the tip at w_i x p.
        pose = self.forward_kinematics(q)
        z = torch.zeros_like(q[..., 0])
        one = torch.ones_like(z)
        yaw = torch.stack([z, z, one], -1)
        pitch = (self._rot(2, q[..., 0]) @ torch.stack([z, one, z], -1).unsqueeze(-1)).squeeze(-1)
        roll = pose[..., :3, 2]
        axes = torch.stack([yaw, pitch, roll], -1)  # [..., 3, 3], a column per joint
        tip = pose[..., :3, 3].unsqueeze(-1).expand_as(axes)
        linear = torch.linalg.cross(axes, tip, dim=-2)
        return pose, torch.cat([linear, axes], -2)


class _Plugin:
    @staticmethod
    @ikrl.hookimpl
    def ikrl_robots():
        return {"spherical_wrist": SphericalWrist}


@pytest.fixture
def wrist_registry(monkeypatch):
    """The default registry plus the plain-class robot, as an installed plugin would give it."""
    registry = Registry.from_plugins(load_plugins(autoload=False, extra=[(_Plugin, "wrist")]))
    monkeypatch.setattr(registry_module, "_default", registry)
    return registry


def test_a_plain_class_satisfies_the_protocol_without_subclassing():
    chain = SphericalWrist()
    assert isinstance(chain, KinematicChain) and not isinstance(chain, ikrl.Chain)
    q = random_joints(chain, 5, torch.Generator().manual_seed(0))
    # Its Jacobian's linear rows against central differences of its own forward kinematics.
    step = 1e-6
    jac = chain.forward_kinematics_and_jacobian(q)[1]
    for i in range(3):
        dq = torch.zeros_like(q)
        dq[:, i] = step
        fd = (chain.forward_kinematics(q + dq)[:, :3, 3] - chain.forward_kinematics(q - dq)[:, :3, 3]) / (2 * step)
        torch.testing.assert_close(jac[:, :3, i], fd, atol=1e-7, rtol=0)


def test_make_env_check_env_specs_and_solve(wrist_registry):
    env = make_env("spherical_wrist+geodesic+normalize", batch_size=[8], seed=0)
    assert env.batch_size == torch.Size([8]) and env.chain.dof == 3
    check_env_specs(env, seed=0)
    chain = SphericalWrist()
    q = random_joints(chain, 50, torch.Generator().manual_seed(1))
    targets = chain.forward_kinematics(q)
    result = ikrl.solve(chain, targets, seeds=256)
    assert result.success.all()
    position, rotation = pose_errors(chain.forward_kinematics(result.q), targets)
    assert (position < 1e-3).all() and (rotation < math.radians(1)).all()


def test_training_evaluation_and_checkpoint_round_trip(wrist_registry, tmp_path):
    config = TrainConfig(steps=600, batch_size=16, eval_targets=20, hidden=(16,), max_steps=10)
    result = train("spherical_wrist+geodesic+normalize", config, tmp_path / "run", progress=False, logger="none")
    checkpoint = load_checkpoint(result.checkpoint)
    assert checkpoint.fingerprint == SphericalWrist().fingerprint()
    assert checkpoint.robot == {"name": "spherical_wrist", "joints": ["yaw", "pitch", "roll"]}
    again = evaluate(checkpoint, targets=20)
    assert again.metrics()["targets"] == 20
    assert again.metrics()["success_5mm_2deg"] == pytest.approx(result.evaluation["success_5mm_2deg"])


def test_sincos_of_a_plain_chain_computes_its_own_sines(wrist_registry):
    # Only an ikrl Chain's pass hands out sin q and cos q; for any other chain sincos takes them.
    env = make_env("spherical_wrist+sincos", batch_size=4, seed=0)
    assert not env._shares_trig
    td = env.reset()
    out = env.step(td.set("action", torch.full((4, 3), 0.05, dtype=td["q"].dtype)))["next"]
    for data in (td, out):
        q = data["q"]
        assert torch.equal(data["observation"][:, -6:], torch.cat([torch.sin(q), torch.cos(q)], -1))


def test_a_chain_without_a_skeleton_says_it_cannot_be_drawn(wrist_registry):
    env = make_env("spherical_wrist", batch_size=1, seed=0)
    env.reset()
    with pytest.raises(IkrlError, match=re.escape("chain 'spherical_wrist' (SphericalWrist) has no skeleton(q)")):
        env.render()


def test_batch_size_as_torchrl_writes_it():
    assert make_env("ur5e", batch_size=torch.Size([3])).batch_size == torch.Size([3])
    assert make_env("ur5e", batch_size=[2]).batch_size == torch.Size([2])
    with pytest.raises(BadParameterError, match=re.escape("batch_size must be a positive int N, [N] or torch.Size([N])")):
        make_env("ur5e", batch_size=[2, 3])
