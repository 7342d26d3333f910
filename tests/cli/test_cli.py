import json

import pytest

from rdvae.cli import main

TRAIN = ["train", "--dataset", "digits", "--binarize", "static", "--family", "mlp",
         "--latent-dim", "4", "--set", "model.hidden=[32]", "--epochs", "1", "--no-progress"]


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_train_then_eval_print_json_last(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out), "--json"]) == 0
    trained = _last_json(capsys)
    assert trained["family"] == "mlp" and trained["run_dir"] == str(out)
    assert main(["eval", str(out), "--iw-samples", "20", "--json", "--no-progress"]) == 0
    evaluated = _last_json(capsys)
    assert evaluated["iw_samples"] == 20 and evaluated["iw_nll"] <= -evaluated["elbo"] + 0.5
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iw_nll"] == evaluated["iw_nll"]  # eval on the final split updates the summary


def test_resume_with_only_out(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0
    assert main(["train", "--resume", "--out", str(out), "--json", "--no-progress"]) == 0
    assert _last_json(capsys)["status"] == "done"


@pytest.mark.parametrize("argv,message", [
    (["train", "--family", "q", "--out", "x"], "unknown family"),
    (["train", "--beta", "-1", "--out", "x"], "beta must be a positive"),
    (["train", "--set", "epoch=3", "--out", "x"], "did you mean 'epochs'"),
    (["eval", "/nonexistent/run"], "not a run directory"),
])
def test_errors_are_one_clear_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("kind,expected", [("families", "mr-mlp"), ("encoders", "bow-counts"),
                                           ("marginals", "v"), ("models", "multi-rate"),
                                           ("datasets", "binarized-mnist"), ("objectives", "beta-tc"),
                                           ("repros", "broken-elbo")])
def test_list_prints_what_is_registered_with_options(kind, expected, capsys):
    assert main(["list", kind, "--json"]) == 0
    out = capsys.readouterr().out
    listed = json.loads(out.strip().splitlines()[-1])[kind]
    assert expected in [r["name"] for r in listed] and all("options" in r for r in listed)
