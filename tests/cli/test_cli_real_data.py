"""The issue's acceptance path on the real binarized MNIST (slow: minutes on 2 cores)."""

import json

import pytest

from rdvae.cli import main


@pytest.mark.slow
def test_train_and_eval_binarized_mnist(shared_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RDVAE_DATA", str(shared_data))
    out = tmp_path / "mlp"
    assert main(["train", "--dataset", "binarized-mnist", "--family", "mlp", "--beta", "1",
                 "--epochs", "2", "--out", str(out), "--no-progress", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 90 < -trained["elbo"] < 140 and trained["active_units"] > 5
    assert main(["eval", str(out), "--iw-samples", "1000", "--examples", "300", "--json",
                 "--no-progress"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["iw_nll"] < -evaluated["elbo"]
    assert evaluated["mutual_info"] <= evaluated["mutual_info_limit"]
