"""`rdvae repro broken-elbo --scale smoke` end to end, and the regime rule."""

import csv
import json
import re

import pytest

from rdvae.registry import STUDIES
from rdvae.studies.broken_elbo import study
from rdvae.studies.broken_elbo.study import FAMILIES, PAPER_FIG4, PAPER_H_HAT, mnist_spec, regime
from rdvae.studies.broken_elbo.toy import TOY_SETTINGS, train_toy
from rdvae.studies.broken_elbo.two_cluster import two_cluster_data


def test_regime_rule_labels_the_papers_four_models_as_the_paper_does():
    for rate, distortion, _, label in PAPER_FIG4.values():
        assert regime(rate, distortion, None, PAPER_H_HAT) == label          # I_q unknown: bounded by R
        assert regime(rate, distortion, min(rate, 9.21), PAPER_H_HAT) == label


def test_a_rate_without_information_is_an_autodecoder():
    """R = 12 nats spent on a marginal mismatch, I_q = 0.05: not an encoder of anything."""
    assert regime(12.0, 80.0, 0.05, PAPER_H_HAT) == "autodecoder"
    assert regime(12.0, 80.0, 3.0, PAPER_H_HAT) == "semantic encoder"


def test_all_twelve_families_build_train_and_measure():
    import torch

    from rdvae.presets import build_model, options_for

    x = torch.bernoulli(torch.full((3, 1, 8, 8), 0.4))
    small = dict(made_hidden=(8, 8, 8), pixelcnn_channels=4, pixelcnn_levels=2, pixelcnn_resnet_layers=1,
                 pseudo_inputs=3)
    for code in FAMILIES:
        model = build_model(code, (1, 8, 8), latent_dim=4, **options_for(code, small))
        out = model(x)
        assert out.rate.shape == (3,) and torch.isfinite(out.elbo).all(), code
        (out.distortion + out.rate).mean().backward()
        with torch.no_grad():
            assert model.sample(2).sample().shape == (2, 1, 8, 8), code


def test_cpu_grid_covers_all_twelve_families_with_the_fig4_betas():
    spec = mnist_spec("cpu")
    families = {p["family"] for p in spec.points}
    assert families == {"mlp" + code for code in FAMILIES}
    assert {p["beta"] for p in spec.points if p["family"] == "mlp-+v"} == {0.1, 0.15, 0.5, 1.0, 1.1, 2.0}
    assert len(spec.points) == 5 * 2 + 6 + 6 * 3     # autoregressive decoders at 0.1, 1; simple at 0.5, 1, 2
    for index, point in enumerate(spec.points):
        config = spec.config(index)               # every point is a valid run config
        autoregressive = point["family"][4] == "+"
        assert config.kl_anneal_steps == (391 if autoregressive else 0)   # one epoch of 50 000 at batch 128
        assert config.lr_schedule == "plateau" and config.epochs == (10 if autoregressive else 60)
    assert spec.names[0].startswith("000-family=+++")   # the costliest first, named by the paper's code


@pytest.mark.slow
def test_smoke_scale_writes_the_results_figures_and_tables(tmp_path):
    module = study
    assert STUDIES["broken-elbo"].run is study.run
    result = module.run("smoke", tmp_path, progress=False)
    toy = result["toy"]
    assert abs(toy["data"]["mutual_information"] - 0.5) < 1e-9
    assert abs(toy["optimal"]["rate"] - 0.5) < 1e-9
    for form in ("mixed", "table", "scalar"):
        for key in ("elbo", "target_rate"):
            assert toy[form][key]["rate"] >= -1e-9 and len(toy[form][key]["cluster_masses"]) == 2
        assert (tmp_path / f"toy_fig2_{form}.png").exists()
    with open(tmp_path / "mnist" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 7 and all(r["status"] == "done" for r in rows)
    assert result["h_hat"] == min(-r["elbo"] for r in result["runs"])
    assert {r["regime"] for r in result["runs"]} <= {"autoencoder", "syntactic encoder", "semantic encoder",
                                                     "autodecoder"}
    for name in ("rd_plane", "elbo_rate", "fig4_reconstructions", "fig4_samples", "fig4c_reconstructions",
                 "fig5_samples", "fig4d_reconstructions", "fig6_samples"):
        assert (tmp_path / "mnist" / "figures" / f"{name}.png").exists(), name
    with open(tmp_path / "mnist" / "broken_elbo_results.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 7 and {"family", "beta", "rate", "distortion", "elbo", "mutual_info", "active_units",
                                "regime", "epochs", "converged"} <= set(table[0])
    assert all(0.0 <= float(r["class_agreement"]) <= 1.0 for r in table)
    # measured on inputs spread through the test split (binarized MNIST's is sorted by class)
    summary = json.loads((tmp_path / "mnist" / table[0]["run_dir"] / "summary.json").read_text())
    assert summary["class_inputs"] == module.CLASS_INPUTS
    assert all(int(r["epochs_trained"]) <= 3 for r in table)
    assert {r["annealed"] for r in table} == {"True"}        # the smoke grid anneals every run
    table = result["claims_table"]
    assert table.count("\n") == 1 + 7 and "| claim | paper | here | holds? |" in table
    assert result["claims_tally"]["tested"] + result["claims_tally"]["cannot_tell"] == 7
    assert "| 0.1 |" in result["fig4_table"] and "| 1.1 |" in result["fig4_table"]
    assert (tmp_path / "result.json").exists()
    # the panel again from chosen runs (as for longer-trained ones), regimes against a given H
    chosen = [tmp_path / "mnist" / r["run_dir"] for r in result["runs"] if r["family"] == "-+v"]
    again = module.fig4_from_runs(chosen, tmp_path / "again", h_hat=1e6)
    assert (tmp_path / "again" / "figures" / "fig4_samples.png").exists()
    labels = {module.regime(r["rate"], r["distortion"], r["mutual_info"], 1e6) for r in result["runs"]
              if r["family"] == "-+v"}
    assert labels <= {"autodecoder", "autoencoder"}   # D < 0.075 H for any D, with so large an H
    assert all(label in again["table"] for label in labels)
    # a further stage in the same folder: its runs are rows of their own, the toy is not trained again
    toy_written = (tmp_path / "toy.json").stat().st_mtime_ns
    grown = module.run("smoke", tmp_path, progress=False, stage="unannealed")
    assert (tmp_path / "toy.json").stat().st_mtime_ns == toy_written and "toy_table" in grown
    with open(tmp_path / "mnist" / "broken_elbo_results.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 7 + 3 and grown["stages"] == ["grid", "unannealed"]
    twins = [r for r in table if r["code"] == "-+v" and r["beta"] == "1.0"]
    assert sorted((r["annealed"], r["stage"]) for r in twins) == [("False", "unannealed"), ("True", "grid")]
    verdicts = {c["key"]: c["holds"] for c in grown["claims"]}
    assert verdicts["ignore-unannealed"] is not None      # +++ at beta 1 without annealing: testable now


@pytest.mark.parametrize("form", ["table", "mixed"])
def test_toy_elbo_training_reaches_minus_h_and_ignores_the_latent(form):
    data = two_cluster_data(0.5)
    model = train_toy(data, None, 300, form=form, **TOY_SETTINGS[form])
    rate, distortion = model.rate_distortion(data.p_x)
    assert abs((rate + distortion).item() - data.entropy) < 2e-3  # the global optimum, -ELBO = H
    assert rate.item() < 0.01


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_toy_target_rate_recovers_the_two_clusters_at_half_a_nat(seed):
    """Appendix E's claim in the mixed reading: D + |0.5 - R| ends at R = 0.5 on the frontier
    (-ELBO = H) with two clusters of about 70% / 30% that follow the true classes."""
    data = two_cluster_data(0.5)
    model = train_toy(data, 0.5, 4000, seed, form="mixed", **TOY_SETTINGS["mixed"])
    summary = model.summary(data)
    assert abs(summary["rate"] - 0.5) < 0.02
    assert abs(-summary["elbo"] - data.entropy) < 1e-3
    assert abs(summary["cluster_masses"][0] - 0.7) < 0.05
    assert summary["class_agreement"] > 0.85   # a code drawn from p*(z*|x) itself: 0.936


@pytest.mark.slow
def test_smoke_toy_alone(tmp_path):
    result = STUDIES["broken-elbo"].run("smoke", tmp_path, progress=False, mnist=False)
    assert set(result["toy"]) == {"optimal", "mixed", "table", "scalar", "data", "seeds"}
    assert [row["seed"] for row in result["toy"]["seeds"]] == [0, 1]
    assert result["toy"]["seeds"][0]["elbo"]["rate"] == result["toy"]["mixed"]["elbo"]["rate"]
    assert "target rate 0.5" in result["toy_table"] and "| 1 |" in result["toy_seeds_table"]


def test_a_finished_run_is_evaluated_again_not_retrained_when_the_evaluation_split_grows(tmp_path):
    from rdvae.rundir import RunDir
    from rdvae.studies.broken_elbo.study import run_mnist

    small = dict(train_examples=64, eval_examples=40, epochs=2)
    run_mnist("smoke", tmp_path, families=["--v"], betas=[1.1], progress=False, overrides=small, shard=(0, 1))
    run_dir = next((tmp_path / "runs").iterdir())
    before = RunDir(run_dir).read_summary()
    weights = (run_dir / "model.safetensors").read_bytes()
    assert before["examples"] == 40
    run_mnist("smoke", tmp_path, families=["--v"], betas=[1.1], progress=False,
              overrides={**small, "eval_examples": None}, shard=(0, 1))
    after = RunDir(run_dir).read_summary()
    assert after["examples"] > 40 and after["train_seconds"] == before["train_seconds"]
    assert (run_dir / "model.safetensors").read_bytes() == weights


# --- the named stages of the grid ------------------------------------------------------------------

def test_cpu_corner_stage_trains_the_simple_decoders_toward_both_corners():
    from rdvae.studies.broken_elbo.study import stage_spec

    spec = stage_spec("cpu", "corner")
    simple = {"mlp" + code for code in FAMILIES if code[1] == "-"}
    assert len(spec.points) == 18 and {p["family"] for p in spec.points} == simple
    assert {(p["family"], p["beta"]) for p in spec.points} == {(f, b) for f in simple
                                                               for b in (0.1, 5.0, 10.0)}
    for index in range(len(spec.points)):
        config = spec.config(index)
        assert config.kl_anneal_steps == 0 and config.epochs == 60 and config.plateau_epochs == 5
        assert config.lr_schedule == "plateau"
    assert spec.names[0] == "corner-family=---_beta=0.1"


def test_cpu_unannealed_stage_trains_the_pixelcnn_families_at_beta_one_without_annealing():
    from rdvae.studies.broken_elbo.study import stage_spec

    spec = stage_spec("cpu", "unannealed")
    pixelcnn = {"mlp" + code for code in FAMILIES if code[1] == "+"}
    wanted = {(f, 1.0) for f in pixelcnn} | {("mlp-+v", 1.1)}
    assert {(p["family"], p["beta"]) for p in spec.points} == wanted
    for index in range(len(spec.points)):
        config = spec.config(index)
        assert config.kl_anneal_steps == 0 and config.epochs >= 20
        assert config.lr_schedule == "plateau" and config.plateau_epochs == 2 and config.decay_epochs == 2
    # rows of their own: no name of the grid's (whose runs at these points are KL-annealed)
    grid = mnist_spec("cpu")
    assert not set(spec.names) & set(grid.names) and "unannealed-family=-+v_beta=1" in spec.names
    annealed = {(p["family"], p["beta"]): p["kl_anneal_steps"] for p in grid.points}
    assert all(annealed[(p["family"], p["beta"])] == 391 for p in spec.points)


def test_the_grid_stage_is_the_grid_and_unknown_stages_are_refused_naming_the_stages():
    from rdvae.errors import ConfigError
    from rdvae.studies.broken_elbo.study import stage_spec

    grid, default = stage_spec("cpu", "grid"), mnist_spec("cpu")
    assert grid.names == default.names and grid.points == default.points and grid.base == default.base
    with pytest.raises(ConfigError, match="stage must be one of grid, corner, unannealed at the cpu scale, "
                                          "got 'corners'"):
        stage_spec("cpu", "corners")
    with pytest.raises(ConfigError, match="stage must be one of grid at the paper scale"):
        stage_spec("paper", "corner")
    with pytest.raises(ConfigError, match="betas and pairs restrict the grid stage"):
        study.run("smoke", "unused", stage="corner", betas=[5.0], toy=False)


def test_stage_of_a_run_folder():
    from rdvae.studies.broken_elbo.stages import stage_of

    assert stage_of("runs/000-family=+++_beta=0.1") == "grid"
    assert stage_of("runs/unannealed-family=-+v_beta=1") == "unannealed"
    assert stage_of("corner-family=---_beta=10") == "corner"


def test_a_stage_grows_the_folders_sweep_and_keeps_its_runs(tmp_path):
    from rdvae.studies.broken_elbo.stages import grow_sweep
    from rdvae.studies.broken_elbo.study import stage_spec
    from rdvae.sweep import SweepError, SweepSpec, load_spec
    from rdvae.sweep.spec import save_spec

    grid = mnist_spec("smoke")
    assert grow_sweep(tmp_path, grid) is grid and load_spec(tmp_path) is None  # new folder: the runner saves
    save_spec(tmp_path, grid)
    unannealed = stage_spec("smoke", "unannealed")
    grown = grow_sweep(tmp_path, unannealed)
    assert grown.names == grid.names + unannealed.names
    assert load_spec(tmp_path).names == grown.names
    for index, name in enumerate(grown.names):       # every run keeps (or gets) its own settings
        own = grid if name in grid.names else unannealed
        assert grown.config(index) == own.config(own.names.index(name))
    assert grown.config(grown.names.index("unannealed-family=-+v_beta=1")).kl_anneal_steps == 0
    assert grown.config(grown.names.index("000-family=-+v_beta=0.1")).kl_anneal_steps == 11
    # again, and the grid again: nothing to add
    assert grow_sweep(tmp_path, unannealed).names == grown.names
    assert grow_sweep(tmp_path, grid).names == grown.names
    # a run of the same name with other settings is refused, naming it
    changed = SweepSpec(base=unannealed.base, points=[{**unannealed.points[0], "epochs": 9}],
                        names=unannealed.names[:1])
    message = re.escape(f"run {unannealed.names[0]} in sweep.json has other settings")
    with pytest.raises(SweepError, match=message):
        grow_sweep(tmp_path, changed)
    # a stage whose shared settings differ carries the difference in its own runs only
    other = stage_spec("smoke", "corner", overrides={"lr": 5e-4})
    grown = grow_sweep(tmp_path, other)
    assert grown.config(grown.names.index(other.names[0])).lr == 5e-4
    assert grown.config(0).lr == 1e-3 and grown.base["lr"] == 1e-3
