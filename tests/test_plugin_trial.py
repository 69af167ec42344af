"""Plugin outputs are checked at build time (ikrl.extend.trial) and plugin exceptions name
the plugin, its distribution and the line (ikrl.extend.guard): one case per mistake."""

from __future__ import annotations

import re

import pytest
import torch

import ikrl
from ikrl.env.make import make_env
from ikrl.errors import PluginError
from ikrl.extend.guard import Guarded, guard, raised_at
from ikrl.extend.plugins import load_plugins
from ikrl.extend.registry import Registry
from ikrl.extend.trial import TRIAL_ARMS, check_shows
from ikrl.kinematics.protocol import random_joints


def _registry(**hooks):
    """A registry of ikrl's own plugins plus one registered in code with ``hooks``."""
    plugin = type("Lab", (), {name: staticmethod(ikrl.hookimpl(lambda f=f: f)) for name, f in hooks.items()})
    return Registry.from_plugins(load_plugins(autoload=False, extra=[(plugin, "lab")]))


def _reward(function):
    class Reward:
        def __call__(self, before, after, success):
            return function(before, after, success)

    return _registry(ikrl_rewards={"odd": Reward})


def _sampler(function):
    class Sampler:
        def __call__(self, chain, n, generator):
            return function(chain, n, generator)

    return _registry(ikrl_samplers={"odd": Sampler})


def _transform(shows=frozenset({"joints"}), size=None, features=None):
    class Transform:
        pass

    Transform.shows = shows  # type: ignore[attr-defined]
    Transform.size = lambda self, chain: (2 * chain.dof if size is None else size)  # type: ignore[attr-defined]
    Transform.__call__ = lambda self, state: (  # type: ignore[attr-defined]
        torch.cat([state.q, state.q], -1) if features is None else features(state)
    )
    return _registry(ikrl_transforms={"odd": Transform})


def _uniform(chain, n, generator):
    q = random_joints(chain, n, generator)
    return q, q.clone()


ORIGIN = "'odd' (<registered in code>)"


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (lambda b, a, s: -a.position.unsqueeze(-1), r"reward 'odd' .* returned rewards of shape \(3, 1\) for 3 arms; expected \[N\]"),
        (lambda b, a, s: -a.twist, r"returned rewards of shape \(3, 6\) for 3 arms; expected \[N\]"),
        (lambda b, a, s: -a.position.sum(), r"returned rewards of shape \(\) for 3 arms"),
        (lambda b, a, s: -a.position.double(), r"returned rewards in float64; the environment is float32: compute in the dtype"),
        (lambda b, a, s: a.position * float("nan"), r"returned rewards with a value that is not finite"),
        (lambda b, a, s: [0.0] * 3, r"returned list for its rewards; it returns a torch.Tensor \[N\]"),
    ],
)
def test_a_reward_that_breaks_the_protocol_is_refused_at_build_time(function, message):
    with pytest.raises(PluginError, match=message):
        make_env("ur5e+odd", batch_size=4, registry=_reward(function))


def test_the_trial_finds_out_whether_the_reward_has_a_gradient():
    assert make_env("ur5e+weighted_pose", batch_size=2).reward_differentiable
    assert make_env("ur5e+progress", batch_size=2).reward_differentiable
    assert not make_env("ur5e+sparse", batch_size=2).reward_differentiable
    detached = _reward(lambda b, a, s: -a.position.detach())
    assert not make_env("ur5e+odd", batch_size=2, registry=detached).reward_differentiable


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (lambda c, n, g: (random_joints(c, n, g) + 10, random_joints(c, n, g)),
         r"sampler 'odd' .* returned start joint values outside the limits: shoulder_pan_joint = .*; samplers return values within the limits"),
        (lambda c, n, g: tuple(q.double() for q in _uniform(c, n, g)), r"returned start joint values in float64; the environment is float32"),
        (lambda c, n, g: (torch.rand(n, c.dof) * 0.1, torch.rand(n, c.dof) * 0.1), r"drew from torch's global random generator; draw every random number from the generator argument"),
        (lambda c, n, g: _uniform(c, n, torch.Generator().manual_seed(int(torch.seed() % 1000))), r"drew from torch's global random generator"),
        (lambda c, n, g: _uniform(c, n, g)[0], r"returned Tensor; a sampler returns \(start, target\)"),
        (lambda c, n, g: (random_joints(c, n + 1, g), random_joints(c, n + 1, g)), r"returned start joint values of shape \(4, 6\) for 3 arms; expected \[n, dof\] = \[n, 6\]"),
        (lambda c, n, g: (random_joints(c, n, g).T.contiguous().T, random_joints(c, n, g)[:, :5]), r"returned target joint values of shape \(3, 5\)"),
    ],
)
def test_a_sampler_that_breaks_the_protocol_is_refused_at_build_time(function, message):
    with pytest.raises(PluginError, match=message):
        make_env("ur5e+odd", batch_size=4, registry=_sampler(function))


def test_a_sampler_drawing_from_another_source_of_randomness_is_refused():
    state = {"calls": 0}

    def counting(chain, n, generator):  # ignores the generator, yet leaves torch's global state alone
        state["calls"] += 1
        q = torch.full((n, chain.dof), 0.01 * state["calls"])
        return q, q

    before = torch.random.get_rng_state()
    with pytest.raises(PluginError, match=r"drew different joint values from two generators seeded alike"):
        make_env("ur5e+odd", batch_size=4, registry=_sampler(counting))
    assert torch.equal(before, torch.random.get_rng_state())


def test_the_global_random_state_is_left_as_it_was_after_a_refusal():
    before = torch.random.get_rng_state()
    with pytest.raises(PluginError, match="global random generator"):
        make_env("ur5e+odd", batch_size=4, registry=_sampler(lambda c, n, g: (torch.rand(n, c.dof) * 0.1,) * 2))
    assert torch.equal(before, torch.random.get_rng_state())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 13}, r"transform 'odd' .* returned features of shape \(3, 12\) for 3 arms; expected \[N, size\(chain\)\] = \[N, 13\]"),
        ({"size": "12"}, r"transform 'odd' .*\.size\(\) returned '12'; it returns the number of features, an int >= 0"),
        ({"shows": {"joint"}}, r"declares shows = \{'joint'\}: 'joint' is not one of 'joints', 'target' \(did you mean 'joints'\?\)"),
        ({"shows": "joints"}, r"declares shows = 'joints'; shows is a set of 'joints' and 'target'"),
        ({"features": lambda s: s.q.double().repeat(1, 2)}, r"returned features in float64"),
        ({"features": lambda s: torch.log(-s.q.abs() - 1).repeat(1, 2)}, r"returned features with a value that is not finite"),
        # Blocks: a tuple of [N, k] tensors whose widths add up to size(chain).
        ({"features": lambda s: (s.q, s.q[:, :5])}, r"returned blocks of widths \[6, 5\], 11 features in all; size\(chain\) says 12"),
        ({"features": lambda s: [s.q, s.q]}, r"returned a list; it returns features \[N, size\(chain\)\] = \[N, 12\] or a tuple of their blocks \[N, k\]"),
        ({"features": lambda s: ()}, r"returned an empty tuple; it returns features \[N, size\(chain\)\] = \[N, 12\] or a tuple of their blocks"),
        ({"features": lambda s: (s.q, s.q.tolist())}, r"returned a tuple whose block 1 is a list; each block is a tensor \[N, k\] \(3 arms here\)"),
        ({"features": lambda s: (s.q, s.q.flatten())}, r"returned a tuple whose block 1 is of shape \(18,\); each block is a tensor \[N, k\]"),
        ({"features": lambda s: (s.q, s.q.double())}, r"returned features block 1 in float64"),
        ({"features": lambda s: (s.q, s.q / 0)}, r"returned features block 1 with a value that is not finite"),
    ],
)
def test_a_transform_that_breaks_the_protocol_is_refused_at_build_time(kwargs, message):
    with pytest.raises(PluginError, match=message):
        make_env("ur5e+odd", batch_size=4, registry=_transform(**kwargs))


def test_a_transform_that_keeps_the_protocol_builds_and_its_width_is_the_spec():
    env = make_env("ur5e+odd", batch_size=4, registry=_transform())
    assert env.observation_spec["observation"].shape[-1] == 12 + 9 + 6  # odd, then target and error added
    assert env.reset()["observation"].shape == (4, 27)


def test_a_transform_may_hand_over_blocks_the_environment_concatenates_in_order():
    # The target and error blocks come first (added for a spec without them), then odd's.
    blocks = _transform(features=lambda s: (s.q, 2 * s.q))
    env = make_env("ur5e+odd", batch_size=4, registry=blocks, seed=0)
    td = env.reset()
    q = td["q"]
    torch.testing.assert_close(td["observation"][:, -12:], torch.cat([q, 2 * q], -1), rtol=0, atol=0)
    after = env.step(td.set("action", torch.full_like(q, 0.01)))["next"]
    torch.testing.assert_close(after["observation"][:, -12:], torch.cat([after["q"], 2 * after["q"]], -1), rtol=0, atol=0)


def test_check_shows_accepts_sets_of_the_two_names():
    assert check_shows(type("T", (), {"shows": {"joints", "target"}})(), "t") == {"joints", "target"}
    assert check_shows(type("T", (), {"shows": frozenset()})(), "t") == frozenset()


def test_an_exception_in_plugin_code_names_the_plugin_and_its_line():
    def typo(before, after, success):
        return -after.positon  # the mistake under test

    line = typo.__code__.co_firstlineno + 1
    with pytest.raises(PluginError) as caught:
        make_env("ur5e+odd", batch_size=4, registry=_reward(typo))
    message = str(caught.value)
    assert message.startswith(f"reward {ORIGIN} raised AttributeError: 'PoseError' object has no attribute 'positon'")
    assert message.endswith(f"test_plugin_trial.py:{line}, in typo)")


def test_an_exception_raised_later_in_a_step_is_named_the_same_way():
    calls = {"n": 0}

    def late(before, after, success):
        calls["n"] += 1
        if calls["n"] > 1:
            raise ZeroDivisionError("division by zero")
        return -after.position

    env = make_env("ur5e+odd", batch_size=4, registry=_reward(late))
    td = env.reset()
    td["action"] = torch.zeros(4, 6)
    with pytest.raises(PluginError, match=rf"reward {re.escape(ORIGIN)} raised ZeroDivisionError: division by zero \(.*test_plugin_trial.py:\d+, in late\)"):
        env.step(td)


def test_a_plugin_line_inside_a_library_call_is_the_plugin_line():
    def calls_torch(before, after, success):
        return torch.cat([after.position, after.twist])  # shapes that cannot be joined: torch raises

    line = calls_torch.__code__.co_firstlineno + 1
    with pytest.raises(PluginError, match=rf"raised RuntimeError: .*test_plugin_trial.py:{line}, in calls_torch\)"):
        make_env("ur5e+odd", batch_size=4, registry=_reward(calls_torch))


def test_a_factory_that_fails_names_its_line():
    def factory():
        raise KeyError("missing table")

    registry = _registry(ikrl_rewards={"odd": factory})
    line = factory.__code__.co_firstlineno + 1
    with pytest.raises(PluginError, match=rf"reward 'odd' from '<registered in code>' failed to build: KeyError: 'missing table' \(.*:{line}, in factory\)"):
        make_env("ur5e+odd", registry=registry)


def test_guarded_components_behave_as_the_component():
    env = make_env("ur5e+near_target(noise=0.2)+sincos", batch_size=2)
    assert isinstance(env.sampler, Guarded) and env.sampler.noise == 0.2
    assert repr(env.sampler) == "near_target(noise=0.2)"
    assert env.sampler.origin == "sampler 'near_target' (ikrl)"
    name, transform = env.transforms[-1]
    assert name == "sincos" and transform.shows == {"joints"} and transform.size(env.chain) == 12
    assert guard(env.sampler, "other") is env.sampler
    import pickle

    assert pickle.loads(pickle.dumps(env.sampler)).origin == env.sampler.origin


def test_ikrl_errors_raised_by_a_plugin_pass_through_unchanged():
    def named(before, after, success):
        raise ikrl.errors.BadParameterError("odd: weights must be positive")

    with pytest.raises(ikrl.errors.BadParameterError, match="^odd: weights must be positive$"):
        make_env("ur5e+odd", registry=_reward(named))


def test_raised_at_without_a_traceback_is_empty():
    assert raised_at(None) == ""


def test_every_builtin_component_passes_the_trial():
    from ikrl.extend.registry import default_registry

    registry = default_registry()
    for sampler in ("uniform", "near_target"):
        for reward in registry.names("reward"):
            for transform in registry.names("transform"):
                for dtype in (torch.float32, torch.float64):
                    env = make_env(f"panda+{reward}+{sampler}+{transform}", batch_size=TRIAL_ARMS, dtype=dtype)
                    assert env.reward_differentiable == (reward != "sparse")


def test_gradient_training_on_a_reward_without_a_gradient_is_refused_before_it_starts(tmp_path):
    from ikrl.rl.training.run import TrainConfig, train

    for algorithm in ("apg", "goal"):
        with pytest.raises(ikrl.errors.BadParameterError) as caught:
            train("panda+sparse(bonus=1)+sincos", TrainConfig(algorithm=algorithm, steps=1, batch_size=4), tmp_path / algorithm)
        assert str(caught.value) == (
            "the reward sparse(bonus=1.0) of 'panda+sparse(bonus=1)+uniform+target+error+sincos' gives no gradient "
            f"(its value does not change smoothly with the joints), and algorithm {algorithm!r} learns by "
            "back-propagating through the reward. Train with 'sac', or use a reward with a gradient "
            "(weighted_pose, geodesic, position, progress)"
        )
        assert not (tmp_path / algorithm / "checkpoint.pt").exists()


def test_the_gradient_algorithms_refuse_it_when_built_directly_too():
    from ikrl.rl.policy import Policy
    from ikrl.rl.training.apg import APG

    env = make_env("panda+sparse+sincos", batch_size=4)
    with pytest.raises(ikrl.errors.BadParameterError, match=r"algorithm 'apg' learns by back-propagating through the reward\. Train with one that does not"):
        APG(env, Policy(env.observation_spec["observation"].shape[-1], 7))
