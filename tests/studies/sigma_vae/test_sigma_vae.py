import math

import pytest

from rdvae.registry import STUDIES
from rdvae.rundir import read_json
from rdvae.studies.sigma_vae import study as sigma_vae


def test_sigma_vae_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("RDVAE_CACHE", str(tmp_path / "cache"))
    assert STUDIES["sigma-vae"].run is sigma_vae.run
    result = sigma_vae.run("smoke", tmp_path / "out", progress=False)
    rows = {row["model"]: row for row in result["datasets"]["digits"]["rows"]}
    assert set(rows) == {"gauss-sigma1", "beta-vae-0.1", "dip-vae-i", "dip-vae-ii", "wae", "learned-sigma",
                         "optimal-sigma", "per-pixel-warmup", "per-pixel", "bernoulli"}
    for name, row in rows.items():
        assert row["status"] == "done", row
        for key in ("rate", "distortion", "elbo", "fid_prior", "fid_aggregate"):
            assert math.isfinite(row[key]), (name, key)
        assert row["elbo"] == pytest.approx(-(row["rate"] + row["distortion"]), rel=1e-5)
    # sigma = 1 and beta: the hidden beta is 2 beta sigma^2
    assert rows["gauss-sigma1"]["effective_beta"] == pytest.approx(2.0)
    assert rows["beta-vae-0.1"]["effective_beta"] == pytest.approx(0.2)
    assert rows["optimal-sigma"]["effective_beta"] == pytest.approx(2 * rows["optimal-sigma"]["sigma"] ** 2)
    assert rows["bernoulli"]["effective_beta"] is None
    summary = read_json(tmp_path / "out" / "digits" / "runs" / "learned-sigma" / "summary.json")
    assert summary["effective_beta"] == pytest.approx(rows["learned-sigma"]["effective_beta"])
    assert (tmp_path / "out" / "digits" / "samples.png").exists()
    assert (tmp_path / "out" / "results.json").exists()
    assert 0 < result["datasets"]["digits"]["classifier"]["test_accuracy"] <= 1
    # the model's optimal sigma is its reconstruction RMSE; a global sigma is compared with it
    for name in ("optimal-sigma", "learned-sigma", "gauss-sigma1"):
        assert rows[name]["sigma_ratio"] == pytest.approx(rows[name]["sigma"] / rows[name]["optimal_sigma"])
    assert rows["gauss-sigma1"]["calibrated"] is False        # sigma = 1 is far from any image RMSE
    claims = result["datasets"]["digits"]["claims"]
    assert len(claims) == 13 and {c["holds"] for c in claims} <= {True, False}
    table = (tmp_path / "out" / "digits" / "results.md").read_text()
    assert "| claim | paper | here | holds? |" in table and "dip-vae-ii" in table
