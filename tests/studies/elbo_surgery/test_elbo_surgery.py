import json
import math

from rdvae.cli import main
from rdvae.registry import STUDIES
from rdvae.studies.elbo_surgery.study import PUBLISHED, run_config


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_elbo_surgery_smoke_end_to_end(tmp_path, capsys):
    assert "elbo-surgery" in STUDIES
    out = tmp_path / "repro"
    assert main(["repro", "elbo-surgery", "--scale", "smoke", "--out", str(out), "--json",
                 "--no-progress"]) == 0
    result = _last_json(capsys)
    rows = result["rows"]
    assert {(r["marginal"], r["latent_dim"]) for r in rows} == {
        (m, d) for m in ("gaussian", "vamp") for d in (2, 4)}
    for r in rows:
        assert r["examples"] == 1297 and abs(r["mi_limit"] - math.log(1297)) < 1e-9
        assert r["mi_within_limit"] and r["index_code_mi"] <= r["mi_limit"]
        assert r["marginal_kl"] > -3 * r["marginal_kl_se"]
        tolerance = 4 * (r["index_code_mi_se"] + r["marginal_kl_se"]) if r["marginal"] == "gaussian" else 1e-4
        assert abs(r["avg_kl"] - r["index_code_mi"] - r["marginal_kl"]) < tolerance
        split = r["total_correlation"] + r["dimension_kl"] + r["marginal_dependence"]
        assert abs(split - r["marginal_kl"]) < 0.05 + 4 * r["marginal_kl_se"]
        assert r["elbo"] < 0 and r["avg_kl_method"] == ("analytic" if r["marginal"] == "gaussian"
                                                        else "monte carlo")
    assert (out / "table.md").read_text().count("\n") == 1 + 1 + len(rows)  # smoke: no published rows
    assert all((out / f"surgery.{ext}").stat().st_size > 0 for ext in ("png", "svg"))
    # equal training: smoke trains N(0, I) at 2 latents again for the VampPrior's epochs, which here
    # equal its own, and training is deterministic per seed: the same figures to the last digit
    matched = result["matched_rows"]
    assert [(r["marginal"], r["latent_dim"]) for r in matched] == [("gaussian", 2), ("vamp", 2)]
    own = next(r for r in rows if (r["marginal"], r["latent_dim"]) == ("gaussian", 2))
    assert matched[0]["run_dir"] != own["run_dir"] and matched[0]["elbo"] == own["elbo"]
    assert matched[0]["index_code_mi"] == own["index_code_mi"]
    assert (out / "table-matched.md").read_text().count("\n") == 2 + 2
    # a second call reuses the finished runs (resume) and measures the same figures
    assert main(["repro", "elbo-surgery", "--scale", "smoke", "--out", str(out), "--json",
                 "--no-progress"]) == 0
    again = _last_json(capsys)["rows"]
    assert [r["index_code_mi"] for r in again] == [r["index_code_mi"] for r in rows]


def test_cpu_scale_is_the_published_setup():
    assert sorted(PUBLISHED) == [2, 10, 20]
    config = run_config("cpu", "gaussian", 10)
    assert (config.dataset, config.family, config.latent_dim) == ("binarized-mnist", "mlp", 10)
    assert run_config("cpu", "vamp", 20).family == "mlp-v"


def test_eval_surgery_stores_the_terms(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--binarize", "static", "--family", "mlp",
                 "--latent-dim", "3", "--set", "model.hidden=[32]", "--epochs", "1", "--no-progress",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", str(out), "--surgery", "--surgery-split-points", "50", "--json",
                 "--no-progress"]) == 0
    captured = capsys.readouterr().out
    evaluated = json.loads(captured.strip().splitlines()[-1])
    assert "index-code MI" in captured and "ELBO surgery" in captured
    summary = json.loads((out / "summary.json").read_text())
    for key in ("surgery_avg_kl", "surgery_index_code_mi", "surgery_marginal_kl",
                "surgery_total_correlation", "surgery_dimension_kl", "surgery_index_code_mi_se"):
        assert summary[key] == evaluated[key] and summary[key] is not None
    assert summary["surgery_dimension_points"] == 50 and summary["surgery_mi_within_limit"]
    assert abs(summary["surgery_avg_kl"] - summary["rate"]) < 1e-4  # both analytic, same examples
