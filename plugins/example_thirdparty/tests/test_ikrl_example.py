"""The example plugin's own tests: what a plugin author checks before publishing.

Run with the plugin installed (``pip install -e ".[test]"``, then ``pytest``): the first test
finds the components through the entry point, as ikrl will on a user's machine.
"""

from __future__ import annotations

import math

import pytest
import torch
from ikrl_example.rewards import LogDistance
from ikrl_example.robots import URDF, toy_arm, toy_arm_py
from ikrl_example.samplers import NearHome
from torchrl.envs.utils import check_env_specs

import ikrl
from ikrl.errors import BadParameterError
from ikrl.extend.components import PoseError
from ikrl.extend.registry import default_registry
from ikrl.kinematics.protocol import bounds
from ikrl.kinematics.se3 import error_and_distances

SPEC = "toy_arm+log_distance(scale=0.02)+near_home(spread=0.4)+tip_offset"


def test_every_component_is_found_through_the_entry_point():
    registry = default_registry()
    found = {c.name: c.distribution for c in registry.components() if c.distribution == "ikrl-example"}
    assert found == dict.fromkeys(["toy_arm", "toy_arm_py", "log_distance", "near_home", "tip_offset"], "ikrl-example")


def test_the_environment_passes_torchrl_s_checks_and_rolls_out():
    env = ikrl.make_env(SPEC, batch_size=4, seed=0)
    check_env_specs(env, seed=0)  # TorchRL's own check: specs and what reset and step return agree
    # Random actions come from torch's global generator (seeded at random by torch itself): an
    # arm that reaches its target by chance is reset and the rollout goes on.
    rollout = env.rollout(5, break_when_any_done=False)
    assert rollout["next", "reward"].shape == (4, 5, 1)
    assert (rollout["next", "reward"] <= 0).all()
    # tip_offset shows nothing, so ikrl adds raw (the 4 joint values), target (9) and error (6).
    assert [name for name, _ in env.transforms] == ["raw", "target", "error", "tip_offset"]
    assert env.observation_spec["observation"].shape[-1] == 4 + 9 + 6 + 4


def test_the_reward_has_a_gradient_that_matches_finite_differences():
    env = ikrl.make_env(SPEC, batch_size=2, seed=0)
    assert env.reward_differentiable  # what apg and goal need; `ikrl check` reports it too
    chain = toy_arm().to(dtype=torch.float64)
    reward = LogDistance(scale=0.02)
    target = chain.forward_kinematics(torch.tensor([0.3, 0.5, -0.4, 0.2], dtype=torch.float64))

    def value(q):
        twist, position, rotation = error_and_distances(chain.forward_kinematics(q), target)
        error = PoseError(twist, position, rotation)
        return reward(error, error, torch.zeros((), dtype=torch.bool))

    q = torch.tensor([0.1, 0.2, -0.1, 0.4], dtype=torch.float64, requires_grad=True)
    (gradient,) = torch.autograd.grad(value(q), q)
    step = 1e-6
    numeric = torch.stack([(value(q.detach() + step * e) - value(q.detach() - step * e)) / (2 * step) for e in torch.eye(4, dtype=torch.float64)])
    torch.testing.assert_close(gradient, numeric, atol=1e-6, rtol=1e-6)


def test_the_python_built_arm_is_the_urdf_arm():
    # The reference is ikrl's URDF loader on the plugin's own URDF.
    urdf = ikrl.load_chain(URDF, base="base", tip="tool", dtype=torch.float64)
    built = toy_arm_py().to(dtype=torch.float64)
    q = torch.rand(64, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 4 - 2
    torch.testing.assert_close(built.forward_kinematics(q), urdf.forward_kinematics(q), atol=1e-12, rtol=0)
    assert built.joint_names == urdf.joint_names and torch.equal(built.lower, urdf.lower)
    longer = ikrl.make_env("toy_arm_py(link=0.5)", batch_size=1).chain.forward_kinematics(torch.zeros(4))
    assert math.isclose(float(longer[2, 3]), 0.1 + 0.5 + 0.5 + 0.1, abs_tol=1e-6)  # straight up at q = 0


def test_the_arm_s_declared_defaults_are_used_unless_the_user_gives_values():
    env = ikrl.make_env("toy_arm", batch_size=1)
    assert env.position_tolerance == 0.01 and env.rotation_tolerance == math.radians(5)
    assert env.max_delta.tolist() == pytest.approx([0.2] * 4)
    env = ikrl.make_env("toy_arm", batch_size=1, position_tolerance=0.001, max_delta=0.05)
    assert env.position_tolerance == 0.001 and env.max_delta.tolist() == pytest.approx([0.05] * 4)


def test_near_home_starts_at_home_and_repeats_with_a_seed():
    chain = toy_arm()
    sampler = NearHome(spread=0.4)
    start, target = sampler(chain, 100, torch.Generator().manual_seed(1))
    low, high = bounds(chain)
    home = (low + high) / 2
    assert torch.equal(start, home.expand(100, 4))
    assert ((target - home).abs() <= 0.4 + 1e-6).all() and ((target >= low) & (target <= high)).all()
    again = sampler(chain, 100, torch.Generator().manual_seed(1))
    assert torch.equal(target, again[1])


def test_bad_parameters_are_named():
    with pytest.raises(BadParameterError, match=r"near_home: spread must be a finite number >= 0 \(radians or metres\); got -1"):
        ikrl.make_env("toy_arm+near_home(spread=-1)")
    with pytest.raises(BadParameterError, match=r"tip_offset: scale must be a positive distance in metres; got 0"):
        ikrl.make_env("toy_arm+tip_offset(scale=0)")
    with pytest.raises(BadParameterError, match=r"toy_arm_py: link must be a positive length in metres; got -0.3"):
        ikrl.make_env("toy_arm_py(link=-0.3)")
