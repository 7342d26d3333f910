"""Executors are registered: the built-in ones and a user's, from a plugin file, through one decorator;
the sweep runner knows none by name, and an executor's options are checked like a builder's."""

import csv
import json

import pytest

from rdvae.cli import main
from rdvae.errors import ConfigError
from rdvae.sweep import EXECUTORS, SweepSpec, run_sweep

TINY = ["--dataset", "digits", "--binarize", "static", "--latent-dim", "2", "--set", "model.hidden=[16]",
        "--batch-size", "256", "--set", "eval_batch_size=500", "--set", "epochs=1"]

# a user's executor in its own file: runs the tasks in reverse order in this process, and says so
EXECUTOR = '''
import json
from pathlib import Path

from rdvae import register_executor
from rdvae.sweep.task import execute


@register_executor("backwards")
def backwards(tasks, on_result, log: str = "order.json"):
    """Runs the grid's points last to first, in this process."""
    order = []
    for task in reversed(list(tasks)):
        order.append(task.name)
        on_result(task, execute(task))
    Path(log).write_text(json.dumps(order))
'''


def test_the_built_in_executors_are_registered_with_their_options():
    assert {"local", "ray"} <= set(EXECUTORS.names())
    assert set(EXECUTORS.options("ray")) == {"address", "num_cpus", "num_gpus", "total_cpus"}


def test_a_users_executor_from_a_plugin_file_runs_a_sweep(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_executor.py").write_text(EXECUTOR)
    assert main(["list", "executors", "--plugin", "my_executor.py"]) == 0
    listed = capsys.readouterr().out
    assert "backwards" in listed and "Runs the grid's points last to first" in listed
    assert "log='order.json'" in listed
    argv = ["sweep", *TINY, "--grid", "beta=0.5,2", "--plugin", "my_executor.py", "--executor", "backwards",
            "--executor-option", 'log="ran.json"', "--out", "s", "--no-progress"]
    assert main(argv) == 0
    rows = list(csv.DictReader(open(tmp_path / "s" / "results.csv")))
    assert [(r["beta"], r["status"]) for r in rows] == [("0.5", "done"), ("2", "done")]
    assert json.loads((tmp_path / "ran.json").read_text()) == ["001-beta=2", "000-beta=0.5"]
    capsys.readouterr()
    assert main([*argv[:-3], "--executor-option", "log=3", "--out", "t", "--no-progress"]) == 2
    assert "option log=3 must be a string" in capsys.readouterr().err
    EXECUTORS._entries.pop("backwards", None)


@pytest.mark.parametrize("executor,options,message", [
    ("nope", {}, "unknown executor 'nope'; registered: local, ray"),
    ("local", {"adress": "auto"}, "unknown executor option(s) of 'local': 'adress'"),
    ("ray", {"workers": 2}, "unknown executor option(s) of 'ray': 'workers'"),
    ("local", {"workers": "two"}, "option workers='two' must be an integer"),
    ("local", {"threads": 2}, "the sweep's own"),
])
def test_an_unknown_executor_or_option_is_refused_before_anything_is_written(executor, options, message,
                                                                                tmp_path):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_sweep(tmp_path / "s", SweepSpec(base={"epochs": 1}), executor=executor, executor_options=options,
                  progress=False)
    assert not (tmp_path / "s").exists()


def test_rays_resources_take_fractions_as_the_cli_gives_them():
    """--cpus-per-run 1 arrives as 1.0 and --gpus-per-run 0.5 as a fraction: both are numbers to Ray."""
    from rdvae.sweep.runner import executor_call

    assert callable(executor_call("ray", {"num_cpus": 1.0, "num_gpus": 0.5, "total_cpus": 2}))
    with pytest.raises(ConfigError, match="num_cpus='two' must be a number"):
        executor_call("ray", {"num_cpus": "two"})
