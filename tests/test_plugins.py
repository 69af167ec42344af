"""Plugins: entry-point discovery, errors that name the distribution, no silent overrides,
disabling auto-loading, the example third-party package, and hooks that are all tested
and documented."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ikrl
from ikrl.env.make import make_env
from ikrl.errors import BadParameterError, DuplicateNameError, PluginError
from ikrl.extend import hookspecs
from ikrl.extend.plugins import DISABLE_AUTOLOAD_ENV, load_plugins
from ikrl.extend.registry import KINDS, Registry, build_robot, default_registry, reset_default_registry
from ikrl.spec.grammar import Part

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "plugins" / "example_thirdparty"
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("ikrl_"))


def fake_distribution(root: Path, name: str, modules: dict[str, str], entry_points: dict[str, str]) -> None:
    """A minimal installed distribution (dist-info with entry points) under ``root``."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[ikrl]\n{lines}\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


def test_builtins_are_registered_through_entry_points():
    plugins = load_plugins(autoload=False)
    assert set(plugins.distributions.values()) == {"ikrl"}
    assert sorted(plugins.distributions) == ["ikrl:algorithms", "ikrl:rewards", "ikrl:robots", "ikrl:samplers", "ikrl:transforms"]
    registry = Registry.from_plugins(plugins)
    assert registry.names("robot") == ["dobot_cr5", "panda", "ur5e"]
    assert registry.names("reward") == ["geodesic", "position", "progress", "sparse", "weighted_pose"]
    assert registry.names("sampler") == ["fixed", "near_target", "uniform"]
    assert registry.names("transform") == ["error", "normalize", "raw", "sincos", "target"]
    assert {c.distribution for c in registry.components()} == {"ikrl"}


def test_a_plugin_that_fails_to_import_is_named(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "ikrl-broken", {"broken_plugin": "import does_not_exist\n"}, {"broken": "broken_plugin"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"entry point 'broken' \(broken_plugin\) of distribution 'ikrl-broken' failed to load: ModuleNotFoundError"):
        load_plugins()
    with pytest.raises(PluginError, match="IKRL_DISABLE_PLUGIN_AUTOLOAD=1"):
        make_env("dobot_cr5")


def test_disabling_autoload_skips_other_distributions(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "ikrl-broken", {"broken_plugin": "raise RuntimeError('boom')\n"}, {"broken": "broken_plugin"})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    assert set(load_plugins().distributions.values()) == {"ikrl"}
    assert make_env("dobot_cr5", batch_size=1).resolved_spec is not None


def test_two_plugins_with_one_name_is_an_error_naming_both(tmp_path, monkeypatch):
    source = """
        import ikrl
        @ikrl.hookimpl
        def ikrl_rewards():
            return {"weighted_pose": lambda: None}
    """
    fake_distribution(tmp_path, "ikrl-copycat", {"copycat": source}, {"copycat": "copycat"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        DuplicateNameError,
        match=r"reward 'weighted_pose' is provided twice: by 'ikrl:rewards' \(distribution 'ikrl', as a reward\) "
        r"and by 'ikrl-copycat:copycat' \(distribution 'ikrl-copycat'\)",
    ):
        default_registry()


def test_a_name_shared_by_two_kinds_is_a_duplicate_too(tmp_path, monkeypatch):
    source = """
        import ikrl
        @ikrl.hookimpl
        def ikrl_transforms():
            return {"geodesic": lambda: None}
    """
    fake_distribution(tmp_path, "ikrl-clash", {"clash": source}, {"clash": "clash"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DuplicateNameError, match=r"transform 'geodesic' is provided twice.*as a reward"):
        default_registry()


def test_a_misspelled_hook_fails_loudly(tmp_path, monkeypatch):
    source = """
        import ikrl
        @ikrl.hookimpl
        def ikrl_reward():
            return {}
    """
    fake_distribution(tmp_path, "ikrl-typo", {"typo": source}, {"typo": "typo"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"distribution 'ikrl-typo' cannot be registered: .*ikrl_reward.*ikrl's hooks are: ikrl_algorithms, ikrl_rewards, ikrl_robots"):
        load_plugins()


def test_a_hook_that_returns_the_wrong_thing_or_raises(tmp_path, monkeypatch):
    source = """
        import ikrl
        @ikrl.hookimpl
        def ikrl_samplers():
            return ["uniform"]
        @ikrl.hookimpl
        def ikrl_robots():
            raise RuntimeError("no URDF here")
    """
    fake_distribution(tmp_path, "ikrl-wrong", {"wrong": source}, {"wrong": "wrong"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"ikrl_robots\(\) of plugin 'ikrl-wrong:wrong' \(distribution 'ikrl-wrong'\) raised RuntimeError: no URDF here"):
        default_registry()


def test_a_component_that_is_not_what_it_claims(tmp_path, monkeypatch):
    source = """
        import ikrl
        @ikrl.hookimpl
        def ikrl_transforms():
            return {"half_baked": lambda: object()}
        @ikrl.hookimpl
        def ikrl_robots():
            return {"no_chain": lambda: "not a chain"}
    """
    fake_distribution(tmp_path, "ikrl-half", {"half": source}, {"half": "half"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"transform 'half_baked' from 'ikrl-half' built a object, which is not a ObservationTransform"):
        make_env("dobot_cr5+half_baked")
    with pytest.raises(PluginError, match=r"robot 'no_chain' from 'ikrl-half' returned str, which is not a kinematic chain \(ikrl.KinematicChain\): it lacks name, dof, joint_names, continuous"):
        make_env("no_chain")
    with pytest.raises(PluginError, match=r"robot 'no_chain' from 'ikrl-half' returned str, which is not a kinematic chain \(ikrl.KinematicChain\): it lacks name, dof, joint_names, continuous"):
        build_robot(Part("no_chain"))


def test_build_robot_checks_parameters_and_returns_the_chain():
    import ikrl_robots

    chain = build_robot(Part("panda"))
    assert isinstance(chain, ikrl.Chain) and chain.dof == 7 and chain.tip == ikrl_robots.load("panda").tip
    with pytest.raises(BadParameterError, match="robot 'panda' has no parameter 'wrist'; it accepts: none"):
        build_robot(Part.of("panda", {"wrist": 1}))


def test_plugins_registered_in_code_for_tests():
    class Extra:
        @ikrl.hookimpl
        def ikrl_rewards(self):
            return {"zero": lambda: (lambda before, after, success: after.position * 0)}

    registry = Registry.from_plugins(load_plugins(autoload=False, extra=[(Extra(), "extra")]))
    env = make_env("ur5e+zero", batch_size=2, registry=registry)
    td = env.reset()
    td["action"] = td["q"] * 0
    assert env.step(td)["next", "reward"].abs().sum() == 0


@pytest.fixture(scope="module")
def example_site(tmp_path_factory):
    """The example third-party package, really installed (into a folder put on sys.path)."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(site), str(EXAMPLE)],
        check=True,
    )
    return site


@pytest.mark.slow
def test_the_example_third_party_plugin_is_found_through_its_entry_point(example_site, monkeypatch):
    monkeypatch.syspath_prepend(str(example_site))
    for name in [m for m in sys.modules if m == "ikrl_example" or m.startswith("ikrl_example.")]:
        monkeypatch.delitem(sys.modules, name)
    reset_default_registry()
    registry = default_registry()
    robot, reward = registry.robot("toy_arm"), registry.part("log_distance")
    assert robot.distribution == reward.distribution == "ikrl-example"
    env = make_env("toy_arm+log_distance(scale=0.02)+sincos", batch_size=4, seed=0)
    from torchrl.envs.utils import check_env_specs

    check_env_specs(env)
    assert env.chain.dof == 4 and env.chain.joint_types[0] == "continuous"
    rollout = env.rollout(5)
    assert (rollout["next", "reward"] <= 0).all()


def test_every_hook_is_tested():
    # datasette's rule: a hook nobody tests is a hook that can silently break.
    tests = (Path(__file__).parent).glob("test_*.py")
    text = "\n".join(path.read_text() for path in tests)
    for hook in HOOKS:
        assert re.search(rf"def {hook}\(", text), f"{hook} has no test that implements it"


def test_every_hook_is_documented():
    guide = (REPO / "CONTRIBUTING.md").read_text()
    for hook in HOOKS:
        spec = getattr(hookspecs, hook)
        assert inspect.getdoc(spec), f"{hook} has no docstring"
        assert f"`{hook}" in guide, f"{hook} is not described in CONTRIBUTING.md"
    assert set(HOOKS) == set(KINDS.values())


def test_the_contributing_guide_shows_the_tested_example():
    guide = (REPO / "CONTRIBUTING.md").read_text()
    source = (EXAMPLE / "ikrl_example" / "__init__.py").read_text()
    assert source.strip() in guide, "CONTRIBUTING.md must show plugins/example_thirdparty/ikrl_example/__init__.py as it is"
    assert (EXAMPLE / "pyproject.toml").read_text().strip() in guide


class _StillAlgorithm:
    """A third party's algorithm: it never changes the policy, and counts what it is asked."""

    default_batch_size = 8

    def __init__(self, env, policy, *, seed, steps_per_update: int = 8):
        self.env, self.policy, self.seed, self.steps_per_update = env, policy, seed, steps_per_update
        self.progress = 0.0

    def update(self):
        return {"transitions": self.steps_per_update, "reward": 0.0}

    def set_progress(self, fraction):
        self.progress = fraction

    def state_dict(self):
        return {"progress": self.progress}

    def load_state_dict(self, state):
        self.progress = state["progress"]


class _AlgorithmPlugin:
    @staticmethod
    @ikrl.hookimpl
    def ikrl_algorithms():
        return {"still": _StillAlgorithm}


def test_a_third_party_algorithm_trains_through_the_registry(tmp_path, monkeypatch):
    from ikrl.extend import registry as registry_module
    from ikrl.rl.training.run import TrainConfig, train

    registry = Registry.from_plugins(load_plugins(autoload=False, extra=[(_AlgorithmPlugin, "still")]))
    monkeypatch.setattr(registry_module, "_default", registry)
    assert [c.name for c in registry.components("algorithm")] == ["apg", "goal", "sac", "still"]
    assert list(registry.algorithm("still").parameters()) == ["steps_per_update"]  # env, policy, seed are the trainer's
    config = TrainConfig(algorithm="still", steps=40, eval_targets=5, hidden=(8,), params={"steps_per_update": 10})
    assert config.arms == 8
    result = train("ur5e", config, tmp_path / "run", progress=False, logger="none")
    assert result.steps == 40
    with pytest.raises(BadParameterError, match=r"algorithm 'still' has no parameter 'lr'; it accepts: steps_per_update=8"):
        train("ur5e", config.replace(params={"lr": 1.0}), tmp_path / "other", progress=False, logger="none")
    monkeypatch.delattr(_StillAlgorithm, "default_batch_size")
    with pytest.raises(PluginError, match=r"algorithm 'still' from '<registered in code>' declares no default_batch_size"):
        _ = config.arms
