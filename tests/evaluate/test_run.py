"""evaluate_run and evaluate_sweep (rdvae.evaluate.run): the whole final split goes to summary.json and
anything else to eval-SPLIT.json, a measure's keys are replaced together, a subset takes its labels along,
and a sweep's runs are evaluated one by one, a failing one skipped, their rows of results.csv rewritten."""

import json

import pytest
import torch
from tests.evaluate.conftest import TINY

from rdvae.evaluate import evaluate_model, evaluate_run, evaluate_sweep
from rdvae.evaluate.measures import run_measures
from rdvae.evaluate.retrieval import binary_codes, precision_at_k
from rdvae.evaluate.run import random_subset
from rdvae.sweep import ResultsTable, SweepSpec, run_sweep, sweep
from rdvae.train import load_run


def _read(path):
    return json.loads(path.read_text())


def test_the_whole_final_split_goes_to_the_summary_and_anything_else_to_an_eval_file(run):
    trained = load_run(run, device="cpu")
    x = trained.dataset.split("test")
    evaluation = evaluate_run(run, {"rate-distortion": {}, "iw-nll": {"samples": 5}}, seed=1, batch_size=100)
    assert evaluation.stored == run / "summary.json" and evaluation.in_summary
    summary = _read(run / "summary.json")
    assert summary["iw_nll"] == evaluation.result["iw_nll"] == evaluate_model(
        trained.model, x, iw_samples=5, seed=1, batch_size=100, diagnostics=False)["iw_nll"]
    assert summary["status"] == "done" and "h_hat_minus_d" in summary
    alone = evaluate_run(run, {"iw-nll": {"samples": 5}}, seed=2)   # no D beside it: no H_hat - D
    summary = _read(run / "summary.json")
    assert summary["iw_nll"] == alone.result["iw_nll"] and "h_hat_minus_d" not in summary
    assert summary["rate"] == evaluation.result["rate"]          # other measures' keys are kept

    subset = evaluate_run(run, examples=30, seed=2)
    assert subset.stored == run / "eval-test.json" and _read(run / "summary.json") == summary
    index, phrase = random_subset(len(x), 30, 2)
    assert subset.result == {**run_measures(trained.model, x[index], ["rate-distortion", "mutual-info",
                                                                       "active-units"], seed=2),
                             "split": "test", "subset": phrase} == _read(run / "eval-test.json")
    valid = evaluate_run(run, {"rate-distortion": {}}, split="valid")
    assert valid.stored == run / "eval-valid.json" and valid.result["examples"] == len(trained.dataset.valid)


def test_a_subset_takes_its_labels_along(run):
    trained = load_run(run, device="cpu")
    evaluation = evaluate_run(trained, {"retrieval": {"k": 5, "threshold": 0.0}}, examples=40, seed=1,
                              write=False)
    index, _ = random_subset(len(trained.dataset.test), 40, 1)
    codes = binary_codes(trained.model.encoder, trained.dataset.test[index], 0.0)
    expected = precision_at_k(codes, trained.dataset.labels["test"][index],
                              binary_codes(trained.model.encoder, trained.dataset.train, 0.0),
                              trained.dataset.labels["train"], k=5, seed=1)
    assert evaluation.result["retrieval_precision"] == expected and evaluation.stored is None


def test_a_sweep_is_evaluated_run_by_run_and_a_failing_run_stops_no_other(tmp_path):
    spec = SweepSpec(base={k: v for k, v in TINY.items() if k != "model"} | {"model.hidden": [16]},
                     points=sweep("beta", [0.5, 2.0]))
    run_sweep(tmp_path / "sw", spec, workers=1, progress=False)
    first, second = sorted((tmp_path / "sw" / "runs").iterdir())
    (second / "model.safetensors").unlink()
    before = ResultsTable(tmp_path / "sw").by_run()
    seen = []
    report = evaluate_sweep(tmp_path / "sw", {"rate-distortion": {}, "ais": {"steps": 3, "chains": 2}},
                            examples=10, on_run=lambda key, evaluation, error: seen.append((key, error)))
    assert list(report.evaluated) == [f"runs/{first.name}"] and list(report.failed) == [f"runs/{second.name}"]
    assert "FileNotFoundError" in report.failed[f"runs/{second.name}"]
    assert [error is None for _, error in seen] == [True, False]
    rows = ResultsTable(tmp_path / "sw").by_run()
    row = rows[f"runs/{first.name}"]
    ais = report.evaluated[f"runs/{first.name}"].result
    assert row["ais_nll"] == pytest.approx(ais["ais_nll"]) and row["subset"] == ais["subset"]
    assert row["rate"] == before[f"runs/{first.name}"]["rate"]   # the summary's figures, not the subset's
    untouched = rows[f"runs/{second.name}"]
    assert {k: untouched[k] for k in before[f"runs/{second.name}"]} == before[f"runs/{second.name}"]
    assert untouched["ais_nll"] is None                           # a new column, empty for the failed run
    assert torch.isfinite(torch.tensor(row["ais_nll"]))
