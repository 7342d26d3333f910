"""`rdvae eval --ais/--bdmc` and `rdvae rd-curve`: the JSON and file contracts, and clean errors."""

import csv
import json

import pytest

from rdvae.cli import main
from rdvae.cli.evaluate import AIS_LEAPFROG
from rdvae.evaluate.ais import LEAPFROG, gradient_evaluations

TINY = ["--dataset", "digits", "--latent-dim", "2", "--set", "model.hidden=[8]", "--epochs", "1",
        "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, extra in (("bernoulli", ["--binarize", "static"]),
                        ("gaussian", ["--family", "mlp-gauss", "--set", "binarize=null"])):
        assert main(["train", *TINY, *extra, "--out", str(root / name)]) == 0
    return root


def last_json(capsys):
    out = capsys.readouterr().out
    return json.loads(out.strip().splitlines()[-1]), out


def test_eval_reports_ais_beside_iw_and_bdmc_bounds(runs, capsys):
    assert main(["eval", str(runs / "bernoulli"), "--ais", "20", "--ais-chains", "4", "--iw-samples", "20",
                 "--bdmc", "--bdmc-examples", "3", "--no-progress", "--json"]) == 0
    result, out = last_json(capsys)
    assert "a random subset of 100 of" in out and result["examples"] == 100     # the CPU default
    assert "AIS NLL, 20 steps" in out and "BDMC on simulated data" in out
    assert result["ais_steps"] == 20 and result["ais_chains"] == 4 and result["ais_leapfrog"] == LEAPFROG
    assert result["ais_gradient_evaluations"] == gradient_evaluations(20, LEAPFROG, 5) * 4 * 100
    assert result["ais_minus_iw"] == pytest.approx(result["ais_nll"] - result["iw_nll"], abs=1e-3)
    assert result["bdmc_lower"] <= result["bdmc_upper"] + 1.0 and result["bdmc_examples"] == 3
    assert result["bdmc_gap"] == pytest.approx(result["bdmc_upper"] - result["bdmc_lower"])
    assert AIS_LEAPFROG == LEAPFROG           # the CLI's help states the library's default


def test_rd_curve_writes_csv_json_and_figure(runs, tmp_path, capsys):
    out = tmp_path / "curves"
    bernoulli, gaussian = str(runs / "bernoulli"), str(runs / "gaussian")
    assert main(["rd-curve", bernoulli, gaussian, "--steps", "30", "--chains", "4", "--examples", "6",
                 "--points", "4", "--out", str(out), "--no-progress", "--json"]) == 0
    result, _ = last_json(capsys)
    assert {p.name for p in out.iterdir()} >= {"rd_curve.csv", "encoder_points.csv", "rd_curve.json",
                                               "rd_curve.png", "rd_curve.svg"}
    with open(out / "rd_curve.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and {r["run_dir"] for r in rows} == {bernoulli, gaussian}
    for row in rows:       # beta is the rate weight of D + beta R, the annealing's 1 / beta
        assert float(row["beta"]) * float(row["ais_beta"]) == pytest.approx(1.0)
        assert float(row["log_normalizer"]) == pytest.approx(
            -float(row["ais_beta"]) * float(row["distortion"]) - float(row["rate"]), abs=1e-6)
    betas = sorted(float(r["beta"]) for r in rows if r["run_dir"] == bernoulli)
    assert betas == pytest.approx([0.1, 10 ** -(1 / 3), 10 ** (1 / 3), 10.0])
    points = result["runs"]
    assert [p["examples"] for p in points] == [6, 6] and all(p["ais_nll"] is not None for p in points)
    assert json.loads((out / "rd_curve.json").read_text())["settings"]["steps"] == 30


def test_rd_curve_states_the_observation_noise_of_a_gaussian_decoder(runs, tmp_path, capsys):
    common = ["--steps", "10", "--chains", "2", "--examples", "4", "--points", "3", "--no-progress", "--json"]
    distortions = {}
    for sigma in ("0.5", "0.05"):
        assert main(["rd-curve", str(runs / "gaussian"), "--sigma", sigma, "--out", str(tmp_path / sigma),
                     *common]) == 0
        point = last_json(capsys)[0]["runs"][0]
        assert point["sigma"] == float(sigma)
        distortions[sigma] = point["distortion"]
    assert distortions["0.05"] > distortions["0.5"]       # the same means, a sharper density


@pytest.mark.parametrize("argv,message", [
    (["eval", "{run}/bernoulli", "--bdmc"], "--bdmc needs --ais STEPS"),
    (["eval", "{run}/bernoulli", "--ais", "5", "--betas", "1"], "--ais measures the model as trained"),
    (["rd-curve", "{run}/bernoulli", "{run}/gaussian"], "--out is needed with several runs"),
    (["rd-curve", "{run}/bernoulli", "--sigma", "0.1", "--steps", "2"], "is over discrete data"),
    (["rd-curve", "{run}/bernoulli", "--beta-min", "3", "--beta-max", "2"], "--beta-min 3 is above"),
    (["rd-curve", "{run}/bernoulli", "--format", "xyz"], "not a figure format"),
])
def test_bad_ais_requests_are_one_clean_line(argv, message, runs, capsys):
    assert main([a.replace("{run}", str(runs)) for a in argv] + ["--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.strip().count("\n") == 0, err
