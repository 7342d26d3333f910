"""Bounded JSON (issue 27): nesting refused with one line naming what was read; a torn last line of
metrics.jsonl skipped, a damaged line before it refused."""

import json
import warnings

import pytest

from rdvae.errors import ConfigError
from rdvae.rundir import MAX_JSON_DEPTH, METRICS, RunDir, json_depth, loads_bounded, read_json

HUGE = "[" * 100000 + "]" * 100000   # beyond the recursion of json's parser


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def test_json_depth_counts_levels_without_recursion():
    assert json_depth(1) == 0 and json_depth([]) == 1 and json_depth({"a": [1, {"b": []}]}) == 4
    deep = 0
    for _ in range(50000):   # far beyond the recursion limit
        deep = [deep]
    assert json_depth(deep) == 50000


def test_loads_bounded_allows_the_limit_and_refuses_deeper():
    assert json_depth(loads_bounded(nested(MAX_JSON_DEPTH), "x")) == MAX_JSON_DEPTH == 32
    with pytest.raises(ConfigError) as err:
        loads_bounded(nested(40), "--set model.hidden")
    assert str(err.value) == ("--set model.hidden: the value is nested 40 levels deep; at most 32 levels "
                              "of [ ] and { } are allowed")
    with pytest.raises(ConfigError, match=r"^--set a: the value is nested too deeply to parse; at most 5 "):
        loads_bounded(HUGE, "--set a", max_depth=5)
    with pytest.raises(json.JSONDecodeError):   # the parser's own errors are the caller's to word
        loads_bounded("[1,", "x")


@pytest.mark.parametrize("text,found", [(HUGE, "nested too deeply to parse"),
                                        ('{"a": ' + nested(40) + "}", "nested 41 levels deep")],
                         ids=["100000-levels", "41-levels"])
def test_read_json_refuses_deep_nesting_naming_the_file(tmp_path, text, found):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        read_json(path)
    message = str(err.value)
    assert message.startswith(f"{path}: the value is {found}; at most 32 levels") and "\n" not in message
    path.write_text(json.dumps({"a": json.loads(nested(30))}))
    assert json_depth(read_json(path)) == 31


def _metrics(tmp_path, text: str) -> RunDir:
    run = RunDir(tmp_path)
    (tmp_path / METRICS).write_text(text)
    return run


def test_a_torn_last_metrics_line_is_skipped_with_a_warning(tmp_path):
    run = _metrics(tmp_path, '{"epoch": 1}\n{"epoch": 2}\n{"epoch": 3, "ra')
    with pytest.warns(UserWarning, match=r"metrics.jsonl: skipped its last line '\{\"epoch\": 3, \"ra'"):
        assert run.read_metrics() == [{"epoch": 1}, {"epoch": 2}]
    run = _metrics(tmp_path, '{"epoch": 1}\n{"epoch": 2}\n\n')   # whole lines: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run.read_metrics() == [{"epoch": 1}, {"epoch": 2}]


@pytest.mark.parametrize("bad", ['{"epoch": 2, "ra', "[1, 2]", nested(100000)], ids=["torn", "list", "deep"])
def test_a_damaged_metrics_line_before_the_last_names_the_file_and_line(tmp_path, bad):
    run = _metrics(tmp_path, '{"epoch": 1}\n\n' + bad + '\n{"epoch": 3}\n')
    with pytest.raises(ConfigError) as err:
        run.read_metrics()
    message = str(err.value)
    assert message.startswith(f"{tmp_path / METRICS} line 3 is not a JSON object (") and "\n" not in message

