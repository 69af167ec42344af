"""The command line: the demo runs end to end and draws a picture; errors are one line."""

from __future__ import annotations

from PIL import Image
from typer.testing import CliRunner

from ikrl.cli import app

runner = CliRunner()


def test_demo_prints_a_table_and_writes_a_picture(tmp_path):
    out = tmp_path / "arm.png"
    result = runner.invoke(app, ["demo", "--robot", "panda", "--batch", "512", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Franka Emika Panda" in result.output
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
