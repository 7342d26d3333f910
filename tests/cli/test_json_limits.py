"""Bounded JSON nesting (issue 27) at the command line: --set, --grid and sweep spec files nested
deeper than rundir.MAX_JSON_DEPTH (or than json's parser can recurse) are one line, exit 2."""

import argparse
import json

import pytest

from rdvae.cli import main
from rdvae.cli.options import parse_assignment
from rdvae.rundir import json_depth, read_json
from rdvae.sweep import GridError, SweepError, SweepSpec, load_spec, parse_grid

HUGE = "[" * 100000 + "]" * 100000


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def one_line(err: str) -> str:
    """The error line (argparse's errors come after its usage lines), checked to be the only one."""
    assert "Traceback" not in err and "RecursionError" not in err, err[-2000:]
    lines = err.strip().splitlines()
    assert lines and len(lines[-1]) < 300, err[-2000:]
    assert all(line.startswith(("usage:", " ")) for line in lines[:-1]), err[-2000:]
    return lines[-1]


@pytest.mark.parametrize("raw,found", [(HUGE, "nested too deeply to parse"),
                                       (nested(40), "nested 40 levels deep")], ids=["100000", "40"])
def test_set_nested_too_deeply_is_an_argument_error_naming_the_option(raw, found):
    with pytest.raises(argparse.ArgumentTypeError) as err:
        parse_assignment("model.hidden=" + raw)
    assert str(err.value) == (f"model.hidden: the value is {found}; at most 32 levels of [ ] and "
                              "{ } are allowed")
    assert parse_assignment("model.hidden=" + nested(32)) == ("model.hidden", json.loads(nested(32)))


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_set_nested_too_deeply_exits_2_with_one_line(command, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--set", "model.hidden=" + HUGE, "--out", str(tmp_path / "r")])
    assert exit_.value.code == 2
    err = one_line(capsys.readouterr().err)
    assert err.startswith(f"rdvae {command}: error: argument --set: model.hidden: the value is nested too "
                          "deeply to parse; at most 32 levels")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("axis,found", [("model.hidden=[8]," + HUGE, "nested too deeply to parse"),
                                        ("beta=1;model.hidden=" + nested(40), "nested 40 levels deep")],
                         ids=["100000", "40-zipped"])
def test_grid_nested_too_deeply_exits_2_with_one_line(axis, found, capsys, tmp_path):
    with pytest.raises(GridError, match=rf"^--grid model.hidden: the value is {found}; at most 32 levels"):
        parse_grid(["seed=0,1", axis])
    assert main(["sweep", "--grid", axis, "--out", str(tmp_path / "s")]) == 2
    err = one_line(capsys.readouterr().err)
    assert f"rdvae sweep: error: --grid model.hidden: the value is {found}; at most 32 levels" in err
    assert not (tmp_path / "s" / "sweep.json").exists()


def test_grid_within_the_limit_is_the_grid():
    points = parse_grid(["seed=0,1", "model.hidden=[8]," + nested(32)])
    assert len(points) == 4 and json_depth(points[-1]["model.hidden"]) == 32


@pytest.mark.parametrize("suffix,text", [
    (".json", '{"base": {"model.hidden": ' + HUGE + "}}"),
    (".json", '{"base": {"model.hidden": ' + nested(40) + "}}"),
    (".toml", '[base]\n"model.hidden" = ' + HUGE + "\n"),
    (".toml", '[base]\n"model.hidden" = ' + nested(40) + "\n"),
], ids=["json-100000", "json-40", "toml-100000", "toml-40"])
def test_a_sweep_spec_nested_too_deeply_names_the_file(suffix, text, tmp_path, capsys):
    path = tmp_path / f"spec{suffix}"
    path.write_text(text)
    with pytest.raises(SweepError, match=rf"^sweep spec {path}: the value is nested .*; at most 32 levels"):
        SweepSpec.from_file(path)
    assert main(["sweep", "--config", str(path), "--out", str(tmp_path / "s")]) == 2
    assert f"sweep spec {path}: the value is nested" in one_line(capsys.readouterr().err)


def test_a_saved_sweep_json_nested_too_deeply_is_refused(tmp_path, capsys):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "sweep.json").write_text('{"base": {"model.hidden": ' + HUGE + '}, "points": [{}]}')
    with pytest.raises(SweepError, match="sweep.json: the value is nested too deeply to parse"):
        load_spec(tmp_path / "s")
    assert main(["sweep", "--out", str(tmp_path / "s")]) == 2
    assert "the value is nested too deeply to parse" in one_line(capsys.readouterr().err)


def test_a_config_json_nested_too_deeply_is_refused_on_resume(tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text('{"model": {"hidden": ' + nested(40) + "}}")
    with pytest.raises(ValueError, match="config.json: the value is nested 42 levels deep"):
        read_json(run / "config.json")
    assert main(["train", "--resume", "--out", str(run), "--no-progress"]) == 2
    assert "config.json: the value is nested 42 levels deep" in one_line(capsys.readouterr().err)
