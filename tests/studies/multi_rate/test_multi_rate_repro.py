import csv
import math

import pytest
import torch
from tests.helpers import Interrupt, stop_at

from rdvae.cli import main
from rdvae.components.multi_rate import beta_gates
from rdvae.plots.multi_rate import plot_multi_rate_run
from rdvae.registry import STUDIES
from rdvae.rundir import RunDir, load_tensors, read_json
from rdvae.studies.multi_rate import study as multi_rate
from rdvae.train import ConfigError, TrainConfig, load_run, train

SMALL = dict(dataset="digits", binarize="dynamic", family="mr-mlp", multi_rate=True, latent_dim=4,
             model={"hidden": [32]}, batch_size=256, eval_batch_size=500)




def test_multi_rate_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("RDVAE_CACHE", str(tmp_path / "cache"))
    assert STUDIES["multi-rate"].run is multi_rate.run
    result = multi_rate.run("smoke", tmp_path / "out", progress=False)
    gaps = result["comparison"]["per_beta"]
    assert [g["beta"] for g in gaps] == [0.1, 1.0, 10.0]
    for g in gaps:
        assert math.isfinite(g["objective_gap"]) and math.isfinite(g["neg_elbo_gap"])
    assert result["wall_clock"]["separate_runs"] == 3 and result["wall_clock"]["ratio_to_one_run"] > 0
    assert result["multi_rate_params"] > result["separate_params"]
    rows = list(csv.DictReader(open(tmp_path / "out" / "multi-rate" / "results.csv")))
    assert [r["run_dir"] for r in rows] == [".#beta=0.1", ".#beta=1", ".#beta=10"]
    assert all(r["status"] == "done" and r["family"] == "mr-mlp" for r in rows)
    assert (tmp_path / "out" / "figures" / "multi_rate_overlay.png").exists()
    assert read_json(tmp_path / "out" / "comparison.json")["betas"] == [0.1, 1.0, 10.0]
    # the overlay from the two results tables alone (what `rdvae plot` would call)
    out = tmp_path / "out"
    drawn = plot_multi_rate_run(out / "multi-rate", out / "separate", tmp_path / "f")
    assert (tmp_path / "f" / "multi_rate_overlay.png").exists()
    assert drawn["comparison"]["per_beta"] == gaps


def test_multi_rate_training_resumes_exactly(tmp_path):
    """The per-example betas come from the checkpointed RNG, so a cut run resumes exactly."""
    config = TrainConfig(**SMALL, epochs=2, checkpoint_minutes=0.0)
    full = train(config, tmp_path / "full", progress=False)
    with pytest.raises(Interrupt):
        train(config, tmp_path / "cut", progress=False, on_step=stop_at(9))
    resumed = train(None, tmp_path / "cut", resume=True, progress=False)
    a, _ = load_tensors(RunDir(tmp_path / "full") / "model.safetensors")
    b, _ = load_tensors(RunDir(tmp_path / "cut") / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["elbo"] == full["elbo"] and full["beta"] == 1.0
    # the gates learned something: their slopes moved away from 0
    model = load_run(tmp_path / "full").model
    assert any(g.weight.abs().max() > 0 for g in beta_gates(model))


def test_multi_rate_config_is_checked():
    with pytest.raises(ConfigError, match="needs a BetaConditioned model"):
        TrainConfig(**{**SMALL, "family": "mlp"}).validated()
    with pytest.raises(ConfigError, match="does not use target_rate"):
        TrainConfig(**SMALL, target_rate=3.0).validated()
    with pytest.raises(ConfigError, match="beta range"):
        TrainConfig(**SMALL, beta_min=1.0, beta_max=0.5).validated()
    TrainConfig(**{**SMALL, "multi_rate": False}, beta=0.5).validated()  # a gated family at one beta


def test_cli_train_multi_rate_then_eval_betas_then_plot(tmp_path, capsys):
    run = tmp_path / "mr"
    assert main(["train", "--dataset", "digits", "--binarize", "dynamic", "--family", "mr-mlp",
                 "--multi-rate", "--epochs", "1", "--latent-dim", "4", "--set", "model.hidden=[32]",
                 "--out", str(run), "--no-progress"]) == 0
    assert read_json(run / "config.json")["multi_rate"] is True
    assert main(["eval", str(run), "--betas", "0.1", "1", "10", "--examples", "100", "--no-progress",
                 "--json"]) == 0
    rows = list(csv.DictReader(open(run / "results.csv")))
    assert [float(r["beta"]) for r in rows] == [0.1, 1.0, 10.0]
    assert len({r["rate"] for r in rows}) == 3          # conditioned on each beta
    assert main(["plot", str(run), "--no-grids", "--no-progress"]) == 0
    assert (run / "figures" / "rd_plane.png").exists()
    capsys.readouterr()
    plain = tmp_path / "plain"
    assert main(["train", "--dataset", "digits", "--binarize", "dynamic", "--family", "mlp", "--epochs",
                 "1", "--latent-dim", "4", "--set", "model.hidden=[32]", "--out", str(plain),
                 "--no-progress"]) == 0
    assert main(["eval", str(plain), "--betas", "1"]) == 2
    assert "not a multi-rate run" in capsys.readouterr().err
