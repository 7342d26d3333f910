"""Each case of the hardening issue: a clean one-line error (exit 2) or the correct behaviour."""

import csv
import json
import os
import sys

import pytest
import torch
from tests.helpers import needs

from rdvae.cli import build_parser, main
from rdvae.rundir import RunDir

TINY = ["--dataset", "digits", "--binarize", "dynamic", "--latent-dim", "2", "--set", "model.hidden=[8]",
        "--no-progress"]


def one_clean_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().count("\n") == 0, err
    return err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("grid,extra,code", [
    (["--grid", "beta=1,abc"], [], 0),
    (["--grid", "beta=-1,--"], [], 2),             # no run succeeded: the sweep exits non-zero
    (["--grid", "seed=0,1"], ["--set", 'beta="abc"'], 2),
])
def test_a_sweep_with_bad_points_records_them_and_runs_the_rest(grid, extra, code, tmp_path, capsys):
    out = str(tmp_path / "sg")
    argv = ["sweep", *TINY, *grid, *extra, "--set", "epochs=1", "--out", out, "--workers", "1"]
    assert main(argv) == code
    capsys.readouterr()
    rows = list(csv.DictReader(open(tmp_path / "sg" / "results.csv")))
    assert len(rows) == 2 and all(r["status"] == "failed" for r in rows if r["error"])
    assert any("must be" in r["error"] for r in rows)
    assert main(["sweep", "--out", out, "--no-progress"]) == code       # rerun: idempotent, no duplicates
    assert list(csv.DictReader(open(tmp_path / "sg" / "results.csv"))) == rows


def test_a_sweep_config_file_with_a_bad_base_value_records_the_failure(tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"base": {"beta": "notalist"}, "grid": {"seed": [0]}}))
    argv = ["sweep", "--config", str(spec), *TINY, "--set", "epochs=1", "--out", str(tmp_path / "s")]
    assert main(argv) == 2   # its only run failed
    rows = list(csv.DictReader(open(tmp_path / "s" / "results.csv")))
    assert rows[0]["status"] == "failed" and "beta" in rows[0]["error"]


@pytest.mark.parametrize("argv,message", [
    (["train", "--device", "{}"], "device must be"),
    (["train", "--set", "model.hidden=["], "not valid JSON"),
    (["train", "--family", "mlp-gauss", "--set", "model.variance=bogus"], "variance"),
    (["train", "--set", 'model.hidden="abc"'], "must be a list of integers"),
    (["train", "--set", "max_skipped_fraction=2"], "max_skipped_fraction"),
    (["eval", "RUN", "--batch-size", "0"], "integer >= 1"),
    (["eval", "RUN", "--batch-size", "-1"], "integer >= 1"),
    (["eval", "RUN", "--iw-samples", "-5"], "integer >= 0"),
    (["eval", "RUN", "--surgery-points", "-1"], "integer >= 1"),
    (["eval", "RUN", "--examples", "0"], "integer >= 1"),
    (["plot", "RUN", "--format", "nosuchfmt"], "nosuchfmt"),
    (["train", "--threads", "0"], "integer >= 1"),
])
def test_bad_inputs_are_one_clean_line(argv, message, trained, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [str(trained) if a == "RUN" else a for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit_:      # argparse's own errors: usage line + one error line, exit 2
        code = exit_.code
        err = capsys.readouterr().err
        assert "Traceback" not in err and message in err
    else:
        assert message in one_clean_line(capsys)
    assert code == 2


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["train", *TINY, "--out", str(tmp_path / "file")]) == 2
    assert "is a file, not a directory" in one_clean_line(capsys)


def test_examples_are_a_seeded_random_subset(trained, capsys):
    assert main(["eval", str(trained), "--examples", "50", "--seed", "3", "--json", "--no-progress"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert "a random subset of 50 of 250 examples (seed 3)" in out and result["examples"] == 50
    assert not (RunDir(trained) / "summary.json").read_text().count("subset")   # not in summary.json
    from rdvae.evaluate import evaluate_model
    from rdvae.train import load_run

    picked = torch.randperm(250, generator=torch.Generator().manual_seed(3))[:50].sort().values
    run = load_run(trained, device="cpu")
    x = run.dataset.split("test")
    on_subset = evaluate_model(run.model, x[picked], seed=3)
    assert result["elbo"] == pytest.approx(on_subset["elbo"], abs=1e-5)
    assert evaluate_model(run.model, x[:50], seed=3)["elbo"] != pytest.approx(result["elbo"], abs=1e-5)


def test_orphaned_temporary_files_are_removed_on_resume(tmp_path):
    out = tmp_path / "r"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    orphan = out / ".trainer_state.safetensors.abc123.tmp"
    orphan.write_bytes(b"\0" * 1000)
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2", "--no-progress"]) == 0
    assert not orphan.exists()


def test_the_default_run_uses_a_proper_likelihood(tmp_path, capsys):
    assert main(["train", "--epochs", "1", "--set", "model.hidden=[8]", "--out", str(tmp_path / "d"),
                 "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "Warning" not in err
    assert json.loads((tmp_path / "d" / "config.json").read_text())["binarize"] == "dynamic"


def test_passive_waiting_and_threads_are_set_by_the_cli(monkeypatch, capsys):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    before = torch.get_num_threads()
    try:
        assert main(["list", "objectives", "--threads", "1"]) == 0
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
        assert main(["list", "objectives"]) == 0
        assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"     # the user's choice is kept
    finally:
        torch.set_num_threads(before)


def test_every_option_of_every_command_has_help():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in commands.items():
        for action in sub._actions:
            if action.dest in ("help",):
                continue
            assert action.help and action.help.strip(), f"rdvae {name} {action.option_strings or action.dest}"
            shows_default = action.option_strings and action.nargs != 0 \
                and action.default not in (None, False, [], "==SUPPRESS==")
            if shows_default:
                assert "default" in action.help, f"rdvae {name} {action.option_strings}: no default shown"


@pytest.mark.parametrize("damage", ["config-garbage", "summary-list", "weights-garbage", "weights-misfit"])
def test_damaged_run_files_are_one_clean_line(damage, trained, tmp_path, capsys):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained, run)
    if damage == "config-garbage":
        (run / "config.json").write_text("{not json")
    elif damage == "summary-list":
        (run / "summary.json").write_text("[1, 2]")
    elif damage == "weights-garbage":
        (run / "model.safetensors").write_bytes(b"\x00\x01garbage")
    else:
        config = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**config, "latent_dim": 5}))
    assert main(["eval", str(run), "--no-progress"]) == 2
    assert str(run) in one_clean_line(capsys)


@pytest.mark.parametrize("argv,message", [
    (["sweep", "--grid", "beta=1", "--out", "FILE"], "is a file"),
    (["sweep", "--config", "DIR", "--out", "s"], "is a directory"),
    (["plot", "RUN", "--out", "FILE"], "is a file"),
    (["train", "--family", "hash-e1", "--out", "h"], "word-count vectors"),
    (["train", "--family=+--", "--objective", "beta-tc", "--set", "model.made_hidden=[4,4,4]",
      "--set", "model.conv_width=0.25", "--out", "tc"], "factorized"),
    (["train", "--seed", "99999999999999999999", "--out", "s"], "seed must be at most"),
    (["eval", "RUN", "--seed", "99999999999999999999"], "integer in [0, 4294967295]"),
    pytest.param(["sweep", "--grid", "beta=1", "--executor", "ray", "--address", "junk", "--out", "r"],
                 "cannot join", marks=needs("ray", "ray")),   # without Ray: the test below
])
def test_fuzz_findings_are_clean_errors(argv, message, trained, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "DIR").mkdir()
    argv = [str(trained) if a == "RUN" else a for a in argv]
    try:
        code = main([*argv, *TINY[:4], "--no-progress"] if argv[0] in ("train", "sweep") else argv)
    except SystemExit as exit_:
        code, err = exit_.code, capsys.readouterr().err
        assert "Traceback" not in err and message in err
    else:
        assert message in one_clean_line(capsys)
    assert code == 2


def test_the_ray_executor_without_ray_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)   # import ray -> ImportError, as when it is not installed
    argv = ["sweep", "--grid", "beta=1", "--executor", "ray", "--address", "junk", "--out", "r"]
    assert main([*argv, *TINY[:4], "--no-progress"]) == 2
    assert "pip install 'rdvae[ray]'" in one_clean_line(capsys)


def test_family_codes_starting_with_a_dash_are_values(tmp_path, capsys):
    argv = ["train", "--family", "-+v", "--set", "model.pseudo_inputs=3",
            "--set", "model.pixelcnn_channels=4",
            "--set", "model.conv_width=0.25", "--epochs", "1", "--batch-size", "512", "--latent-dim", "2",
            "--out", str(tmp_path / "r"), "--no-progress"]
    assert main(argv) == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["family"] == "-+v"
