"""The command line: the demo runs end to end and draws a picture; errors are one line."""

from __future__ import annotations

from PIL import Image
from typer.testing import CliRunner

from ikrl.cli.app import app

runner = CliRunner()


def test_demo_prints_a_table_and_writes_a_picture(tmp_path):
    out = tmp_path / "arm.png"
    result = runner.invoke(app, ["demo", "--robot", "panda", "--batch", "512", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].strip() == "panda"  # the table title: the robot's name
    assert "512 poses" in result.output
    assert "Jacobian vs finite differences" in result.output
    with Image.open(out) as image:
        assert image.size == (800, 800)


def test_demo_with_an_unknown_robot_is_a_one_line_error(tmp_path):
    result = runner.invoke(app, ["demo", "--robot", "pandaa", "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 1
    assert "unknown robot 'pandaa'. Did you mean 'panda'?" in result.output
    assert "Traceback" not in result.output


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "demo" in result.output


def test_list_shows_every_component_with_its_distribution():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    for name in ("dobot_cr5", "weighted_pose", "near_target", "sincos"):
        assert name in result.output
    assert "ikrl" in result.output


def test_list_json_is_machine_readable():
    import json

    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    by_name = {row["name"]: row for row in rows}
    assert by_name["near_target"] == {
        "kind": "sampler", "name": "near_target", "parameters": {"noise": 0.3},
        "plugin": "ikrl:samplers", "distribution": "ikrl",
    }  # fmt: skip
    assert by_name["fixed"]["parameters"]["file"] is None  # required
    assert {row["kind"] for row in rows} == {"robot", "reward", "sampler", "transform", "algorithm"}


def test_list_names_the_installed_plugins_it_did_not_load_and_why(monkeypatch):
    import json

    from ikrl.extend.registry import reset_default_registry

    for variable, value, why in (
        ("IKRL_DISABLE_PLUGINS", "ikrl-zoo", "IKRL_DISABLE_PLUGINS names it"),
        ("IKRL_DISABLE_PLUGIN_AUTOLOAD", "1", "IKRL_DISABLE_PLUGIN_AUTOLOAD is set"),
    ):
        with monkeypatch.context() as patch:
            patch.setenv(variable, value)
            reset_default_registry()
            try:
                table = runner.invoke(app, ["list"])
                machine = runner.invoke(app, ["list", "--json"])
            finally:
                reset_default_registry()
        assert table.exit_code == machine.exit_code == 0, table.output
        assert f"not loaded: plugin ikrl-zoo:zoo ({why})" in table.stderr
        assert "ur5" not in {row["name"] for row in json.loads(machine.stdout)}  # the zoo's arms are gone
        assert f"not loaded: plugin ikrl-zoo:zoo ({why})" in machine.stderr
    assert "not loaded" not in runner.invoke(app, ["list"]).output  # everything loads again


def test_check_builds_checks_and_rolls_out():
    result = runner.invoke(app, ["check", "panda+geodesic+near_target(noise=0.1)+sincos", "--steps", "5"])
    assert result.exit_code == 0, result.output
    assert "ok panda+geodesic+near_target(noise=0.1)+target+error+sincos" in result.output
    assert "observation" in result.output and "(8, 29)" in result.output  # 9 target + 6 error + 14 sincos
    assert "random rollout of 5 steps" in result.output


def test_check_fails_with_one_line():
    result = runner.invoke(app, ["check", "dobot_cr5+near_target(nosie=1)"])
    assert result.exit_code == 1
    assert result.output.strip() == "error: sampler 'near_target' has no parameter 'nosie'; it accepts: noise=0.3"
    result = runner.invoke(app, ["check", "dobot_cr5+"])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "expected a name" in result.output


def test_check_says_whether_the_reward_has_a_gradient():
    result = runner.invoke(app, ["check", "panda+sparse", "--steps", "2"])
    assert result.exit_code == 0, result.output
    assert "gradients: the reward sparse(bonus=1.0) has none; algorithms that back-propagate through it (apg, goal) refuse it: train with --algorithm sac" in result.output
    result = runner.invoke(app, ["check", "panda+progress", "--steps", "2"])
    assert "gradients: the reward has a gradient in the action, so every algorithm can train on it" in result.output
    assert "one seed gives the same rollout twice" in result.output


def _with_plugin(monkeypatch, **hooks):
    import ikrl
    from ikrl.extend import registry as registry_module
    from ikrl.extend.plugins import load_plugins

    plugin = type("Lab", (), {name: staticmethod(ikrl.hookimpl(lambda f=f: f)) for name, f in hooks.items()})
    monkeypatch.setattr(registry_module, "_default", registry_module.Registry.from_plugins(load_plugins(autoload=False, extra=[(plugin, "lab")])))


def test_check_finds_a_reward_that_does_not_repeat(monkeypatch):
    import numpy as np

    class Noisy:
        def __call__(self, before, after, success):
            return -after.position + float(np.random.default_rng().random())

    _with_plugin(monkeypatch, ikrl_rewards={"noisy": Noisy})
    result = runner.invoke(app, ["check", "panda+noisy", "--steps", "2"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: panda+noisy+uniform+raw+target+error: two environments seeded with 0 gave different rollouts: "
        "a component draws random numbers outside the generator the environment passes its sampler"
    )


def test_check_names_the_plugin_and_its_line_when_it_raises(monkeypatch):
    class Typo:
        def __call__(self, before, after, success):
            return -after.positon

    _with_plugin(monkeypatch, ikrl_rewards={"typo": Typo})
    result = runner.invoke(app, ["check", "panda+typo"])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    line = Typo.__call__.__code__.co_firstlineno + 1
    assert result.output.startswith("error: reward 'typo' (<registered in code>) raised AttributeError: 'PoseError' object has no attribute 'positon'")
    assert result.output.strip().endswith(f"test_cli.py:{line}, in __call__)")


def test_demo_checks_its_destination_first_and_never_overwrites(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    picture = tmp_path / "arm.png"
    picture.write_text("precious")
    result = runner.invoke(app, ["demo", "--robot", "panda", "--batch", "64", "--out", str(picture)])
    assert result.exit_code == 1 and f"--out {picture} exists: ikrl never overwrites a result" in result.output
    assert picture.read_text() == "precious"
    result = runner.invoke(app, ["demo", "--robot", "panda", "--batch", "64", "--out", "/proc/x.png"])
    assert result.exit_code == 1 and "cannot write in /proc" in result.output
    for expected in ("ikrl-demo.png", "ikrl-demo-2.png"):
        assert runner.invoke(app, ["demo", "--robot", "panda", "--batch", "64"]).exit_code == 0
        assert (tmp_path / expected).is_file()
    result = runner.invoke(app, ["demo", "--robot", "panda", "--batch", "64", "--seed", "-3"])
    assert result.exit_code == 1 and "demo: seed must be an int from 0 to 4294967295; got -3" in result.output
