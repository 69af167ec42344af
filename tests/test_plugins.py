"""Plugins: entry-point discovery, errors that name the distribution, no silent overrides,
disabling auto-loading and named plugins, hooks misspelled or missing, defaults a robot
declares, the example third-party package (its own tests included), and hooks and guide
examples that are all tested and documented."""

from __future__ import annotations

import inspect
import math
import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import ikrl
from ikrl.env.make import make_env
from ikrl.errors import BadParameterError, DuplicateNameError, PluginError
from ikrl.extend import hookspecs
from ikrl.extend.plugins import DISABLE_AUTOLOAD_ENV, DISABLE_PLUGINS_ENV, PluginWarning, load_plugins
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
    with pytest.raises(PluginError, match="set IKRL_DISABLE_PLUGINS=ikrl-broken to skip it, or IKRL_DISABLE_PLUGIN_AUTOLOAD=1"):
        make_env("dobot_cr5")


def test_disabling_autoload_skips_other_distributions(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "ikrl-broken", {"broken_plugin": "raise RuntimeError('boom')\n"}, {"broken": "broken_plugin"})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    plugins = load_plugins()
    assert set(plugins.distributions.values()) == {"ikrl"}
    assert "ikrl-broken:broken" in plugins.not_autoloaded and plugins.disabled == ()
    assert ("ikrl-broken:broken", "IKRL_DISABLE_PLUGIN_AUTOLOAD is set") in Registry.from_plugins(plugins).skipped
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
    with pytest.raises(
        PluginError,
        match=r"entry point 'typo' \(typo\) of distribution 'ikrl-typo' cannot be registered: it implements hook "
        r"'ikrl_reward', which ikrl does not have \(did you mean 'ikrl_rewards'\?\)\. ikrl's hooks are: "
        r"ikrl_algorithms, ikrl_rewards, ikrl_robots, ikrl_samplers, ikrl_transforms$",
    ):
        load_plugins()


def test_a_plugin_that_implements_no_hook_is_warned_about(tmp_path, monkeypatch):
    # Unmarked functions: one misspelled, one forgotten. A warning, not an error: the plugin
    # provides nothing, so it cannot change a result (ikrl.extend.plugins explains the choice).
    source = """
        def ikrl_sampler():
            return {}
        def helper():
            return 1
    """
    fake_distribution(tmp_path, "ikrl-empty", {"empty": source}, {"empty": "empty"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(
        PluginWarning,
        match=r"entry point 'empty' \(empty\) of distribution 'ikrl-empty' implements no ikrl hook, so it provides "
        r"nothing: a plugin has functions marked @ikrl.hookimpl named after ikrl's hooks \(ikrl_algorithms, .*\); "
        r"ikrl_sampler is not one \(did you mean 'ikrl_samplers'\?\)",
    ):
        plugins = load_plugins()
    assert "ikrl-empty:empty" in plugins.distributions  # registered all the same
    with pytest.warns(PluginWarning, match="implements no ikrl hook"):
        assert make_env("ur5e", batch_size=1).resolved_spec is not None


def test_a_hook_without_its_marker_is_warned_about(tmp_path, monkeypatch):
    source = """
        import ikrl
        @ikrl.hookimpl
        def ikrl_rewards():
            return {"zero_reward": lambda: (lambda before, after, success: after.position * 0)}
        def ikrl_samplers():  # forgot @ikrl.hookimpl
            return {}
    """
    fake_distribution(tmp_path, "ikrl-half-marked", {"half_marked": source}, {"half": "half_marked"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(PluginWarning, match=r"distribution 'ikrl-half-marked' defines ikrl_samplers without @ikrl.hookimpl, so ikrl does not call it"):
        registry = Registry.from_plugins(load_plugins())
    assert registry.part("zero_reward").distribution == "ikrl-half-marked"


def test_named_plugins_can_be_disabled(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "ikrl-broken", {"broken_plugin": "raise RuntimeError('boom')\n"}, {"broken": "broken_plugin"})
    monkeypatch.syspath_prepend(str(tmp_path))
    # Distribution names compare as pip compares them: case, '-', '_' and '.' do not matter.
    monkeypatch.setenv(DISABLE_PLUGINS_ENV, " IKRL_Broken ")
    plugins = load_plugins()
    assert plugins.disabled == ("ikrl-broken:broken",) and "ikrl-broken" not in plugins.distributions.values()
    assert plugins.skipped() == [("ikrl-broken:broken", "IKRL_DISABLE_PLUGINS names it")] and plugins.not_autoloaded == ()
    assert make_env("ur5e", batch_size=1).resolved_spec is not None
    # One entry point of a distribution, ikrl's own included: here its rewards.
    monkeypatch.setenv(DISABLE_PLUGINS_ENV, "ikrl-broken:broken,ikrl:rewards")
    plugins = load_plugins()
    assert plugins.disabled == ("ikrl:rewards", "ikrl-broken:broken")
    assert Registry.from_plugins(plugins).names("reward") == []


def test_a_disabled_name_that_matches_nothing_is_warned_about(monkeypatch):
    monkeypatch.setenv(DISABLE_PLUGINS_ENV, "ikrl:reward,nothing-like-it")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugins = load_plugins()
    messages = [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]
    assert messages == [
        "IKRL_DISABLE_PLUGINS names 'ikrl:reward', which is no installed distribution or entry point of the 'ikrl' "
        "group (did you mean 'ikrl:rewards'?); nothing was skipped for it",
        "IKRL_DISABLE_PLUGINS names 'nothing-like-it', which is no installed distribution or entry point of the 'ikrl' "
        "group; nothing was skipped for it",
    ]
    assert plugins.disabled == ()


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


#: A code block of CONTRIBUTING.md starts with one of these lines: the whole of a file, an
#: excerpt of one (lines in a row, as they are), or a sketch (code with ``...`` bodies).
_BLOCK_HEADER = re.compile(r"^# (?:(?P<kind>file|from): (?P<path>\S+)|(?P<sketch>sketch\b.*))$")


def _guide_blocks() -> list[tuple[str, str]]:
    """(header, body) of every fenced python or toml block of CONTRIBUTING.md."""
    guide = (REPO / "CONTRIBUTING.md").read_text()
    blocks = re.findall(r"^```(?:python|toml)\n(.*?)^```$", guide, flags=re.MULTILINE | re.DOTALL)
    return [(block.split("\n", 1)[0], block.split("\n", 1)[1] if "\n" in block else "") for block in blocks]


def test_the_contributing_guide_shows_the_tested_example():
    shown = set()
    for header, body in _guide_blocks():
        match = _BLOCK_HEADER.match(header)
        assert match, f"a code block of CONTRIBUTING.md starts with {header!r}; start it with '# file: PATH', '# from: PATH' or '# sketch ...'"
        if match["sketch"]:
            continue
        path = REPO / match["path"]
        assert path.is_file(), f"CONTRIBUTING.md shows {match['path']}, which does not exist"
        text = path.read_text()
        if match["kind"] == "file":
            assert body.strip() == text.strip(), f"CONTRIBUTING.md must show {match['path']} as it is"
            shown.add(match["path"])
        else:
            assert body.strip() and body.strip() in text, f"CONTRIBUTING.md shows lines that are not in {match['path']} as they are"
    example = {str(p.relative_to(REPO)) for p in (EXAMPLE / "ikrl_example").glob("*.py")} | {str((EXAMPLE / "pyproject.toml").relative_to(REPO))}
    assert example <= shown, f"CONTRIBUTING.md does not show {sorted(example - shown)} in full"


@pytest.mark.slow
def test_the_example_plugin_s_own_tests_pass(example_site, tmp_path):
    # What its author runs, against the installed package (its entry point found by ikrl).
    env = {k: v for k, v in os.environ.items() if not k.startswith("IKRL_DISABLE_PLUGIN")}
    env["PYTHONPATH"] = os.pathsep.join([str(example_site), *filter(None, [os.environ.get("PYTHONPATH")])])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning", str(EXAMPLE / "tests")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b7 passed\b", result.stdout), result.stdout


_DECLARING = """
    import math
    import ikrl
    import ikrl_robots as shipped  # the hook below is named ikrl_robots too

    class Wrapped:
        # Any chain object may declare env_defaults as a plain attribute (no subclassing).
        def __init__(self, chain, declared):
            self._chain, self.env_defaults = chain, declared
        def __getattr__(self, name):
            return getattr(self._chain, name)

    @ikrl.hookimpl
    def ikrl_robots():
        return {
            "careful_ur5e": lambda: shipped.load("ur5e").with_env_defaults(
                position_tolerance=0.001, rotation_tolerance=math.radians(0.5), max_delta=[0.05] * 6),
            "declares": lambda **declared: Wrapped(shipped.load("ur5e"), declared),
            "not_a_mapping": lambda: Wrapped(shipped.load("ur5e"), 0.001),
            "two_deltas": lambda: Wrapped(shipped.load("ur5e"), {"max_delta": [0.1, 0.1]}),
        }
"""


def test_a_robot_s_declared_defaults_are_used_and_the_user_s_values_win(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "ikrl-careful", {"careful": _DECLARING}, {"careful": "careful"})
    monkeypatch.syspath_prepend(str(tmp_path))
    env = make_env("careful_ur5e", batch_size=1)
    assert (env.position_tolerance, env.rotation_tolerance) == (0.001, math.radians(0.5))
    assert env.max_delta.tolist() == pytest.approx([0.05] * 6)
    env = make_env("careful_ur5e", batch_size=1, position_tolerance=0.01, max_delta=0.2)
    assert (env.position_tolerance, env.rotation_tolerance) == (0.01, math.radians(0.5))
    assert env.max_delta.tolist() == pytest.approx([0.2] * 6)
    assert make_env("declares(rotation_tolerance=0.1)", batch_size=1).rotation_tolerance == 0.1


def test_the_shipped_robots_declare_the_defaults_they_always_had():
    for robot in ("dobot_cr5", "panda", "ur5e"):
        env = make_env(robot, batch_size=1)
        assert (env.position_tolerance, env.rotation_tolerance) == (0.005, math.radians(2.0)), robot
        assert env.max_delta.tolist() == pytest.approx([0.1] * env.chain.dof)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("declares(rotation_tolerance=5)", r"declares env_defaults\['rotation_tolerance'\] = 5; a rotation tolerance is radians in \(0, pi\] \(math.radians\(5\) for 5 degrees\)"),
        ("declares(position_tolerance=0)", r"declares env_defaults\['position_tolerance'\] = 0; a position tolerance is a positive, finite distance in metres"),
        ("declares(position_tol=0.1)", r"declares env_defaults\['position_tol'\], which is no environment option \(did you mean 'position_tolerance'\?\); the options are max_delta, position_tolerance, rotation_tolerance"),
        ("two_deltas", r"declares env_defaults\['max_delta'\] = \[0.1, 0.1\]; max_delta is the largest joint change per step, one positive number or 6 \(one per joint of 'ur5e': shoulder_pan_joint, "),
        ("declares(max_delta=true)", r"declares env_defaults\['max_delta'\] = True; max_delta is"),
        ("not_a_mapping", r"declares env_defaults = 0.001; env_defaults is a mapping of option names \(max_delta, position_tolerance, rotation_tolerance\) to values"),
    ],
    ids=["degrees", "zero", "misspelled", "count", "bool", "not-a-mapping"],
)
def test_a_bad_declared_default_names_the_robot_and_its_distribution(tmp_path, monkeypatch, spec, message):
    fake_distribution(tmp_path, "ikrl-careful", {"careful": _DECLARING}, {"careful": "careful"})
    monkeypatch.syspath_prepend(str(tmp_path))
    robot = spec.partition("(")[0]
    with pytest.raises(PluginError, match=rf"^robot '{robot}' from 'ikrl-careful' " + message):
        make_env(spec, batch_size=1)
    if robot == "declares" and "max_delta" not in spec:  # the user's value does not rescue a bad declaration
        with pytest.raises(PluginError, match=message):
            make_env(spec, batch_size=1, position_tolerance=0.01, rotation_tolerance=0.01)


class _PluginArm:
    @staticmethod
    @ikrl.hookimpl
    def ikrl_robots():
        from ikrl import Chain, Joint

        joints = [
            Joint.from_xyz_rpy("spin", "continuous", "base", "a", axis=(0, 0, 1)),
            Joint.from_xyz_rpy("lift", "revolute", "a", "b", xyz=(0, 0, 0.2), axis=(0, 1, 0), lower=-2, upper=2),
            Joint.from_xyz_rpy("end", "fixed", "b", "tip", xyz=(0.3, 0, 0)),
        ]
        return {"spinner": lambda: Chain.from_joints(joints, tip="tip", name="spinner")}


def test_the_demo_draws_a_plugin_robot_with_a_continuous_joint(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from ikrl.cli.app import app
    from ikrl.extend import registry as registry_module

    registry = Registry.from_plugins(load_plugins(autoload=False, extra=[(_PluginArm, "arm")]))
    monkeypatch.setattr(registry_module, "_default", registry)
    out = tmp_path / "spinner.png"
    result = CliRunner().invoke(app, ["demo", "--robot", "spinner", "--batch", "64", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].strip() == "spinner" and "nan" not in result.output
    assert out.is_file()


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
