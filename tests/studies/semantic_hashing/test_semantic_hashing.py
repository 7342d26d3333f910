"""Semantic hashing at smoke scale on a synthetic topic corpus (the real 20 Newsgroups run is
the reproduction itself), plus the published tables and the [Re] data conventions."""

import json

import pytest
import torch

from rdvae.components.bagofwords import saturated_distortion
from rdvae.data.dataset import Dataset
from rdvae.studies.semantic_hashing import study as sh


def topic_corpus(train=600, test=200, vocabulary=300, topics=4, seed=0) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    word_probs = torch.distributions.Dirichlet(torch.full((vocabulary,), 0.05)).sample((topics,))

    def documents(n):
        labels = torch.randint(0, topics, (n,), generator=g)
        words = [torch.multinomial(word_probs[t], 60, replacement=True, generator=g) for t in labels]
        counts = torch.stack([torch.bincount(w, minlength=vocabulary) for w in words]).float()
        return counts, labels

    (xtr, ytr), (xte, yte) = documents(train), documents(test)
    return Dataset(name="20newsgroups", train=xtr, valid=torch.zeros(0, vocabulary), test=xte,
                   labels={"train": ytr, "valid": torch.zeros(0, dtype=torch.long), "test": yte},
                   event_shape=(vocabulary,), binary=False, vocabulary=[f"w{i}" for i in range(vocabulary)])


def test_published_tables_are_transcribed_in_the_papers_layout():
    assert sh.PUBLISHED_TEST[("e1", 64, 0)] == 387 and sh.PUBLISHED_TEST[("e3", 8, 2)] == 431
    assert sh.PUBLISHED_TEST[("e2", 16, 1)] == 466 and sh.PUBLISHED_TRAIN[("e1", 32, 2)] == 118
    assert sh.PUBLISHED_TRAIN[("e3", 64, 0)] == 405 and sh.PUBLISHED_ORIGINAL_ARM[64] == 392
    assert len(sh.PUBLISHED_TEST) == len(sh.FULL_GRID) == 36
    assert min(sh.PUBLISHED_TEST, key=sh.PUBLISHED_TEST.get) == ("e1", 64, 0)


def test_smoothing_adds_one_pseudo_word_of_corpus_frequencies():
    ds = topic_corpus()
    smoothed = sh.smoothed_corpus(ds)
    torch.testing.assert_close(smoothed.train.sum(1), ds.train.sum(1) + 1)
    torch.testing.assert_close(smoothed.test.sum(1), ds.test.sum(1) + 1)
    assert (smoothed.train > 0).all()
    subset = sh.smoothed_corpus(ds, documents=(100, 50))
    assert len(subset.train) == 100 and len(subset.labels["test"]) == 50


def test_paper_config_switches_to_ten_passes_after_1000_epochs():
    config = sh.config_for("e2", 32, 1, epochs=1000, refine_epochs=500, refine_passes=10, train_size=11269)
    assert config.epochs == 1500 and config.batch_size == 256 and config.seed == 1 and config.lr == 1e-3
    assert config.model["refine_after_steps"] == 1000 * 45 and config.model["refine_passes"] == 10
    assert config.model["decoder_hidden"] == [512] and config.family == "hash-e2"


def test_smoke_run_writes_tables_beside_the_published_values(tmp_path):
    ds = topic_corpus()
    result = sh.run("smoke", tmp_path, progress=False, dataset=ds)
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [(r["encoder"], r["bits"], r["depth"]) for r in rows] == sh.SCALES["smoke"]["grid"]
    for row in rows:
        assert row["epochs"] == 3
        assert 0 <= row["test_neg_elbo_min"] < float("inf")  # relative distortion and rate are >= 0
        assert 0 <= row["precision_at_100"] <= 1
        # the trainer's evaluators work unchanged on Bernoulli codes
        assert -0.05 < row["mutual_info"] <= torch.log(torch.tensor(200.0)).item() + 1e-6  # MC noise
        assert 0 <= row["active_units"] <= row["bits"]
        assert row["published_test"] == sh.PUBLISHED_TEST[(row["encoder"], row["bits"], row["depth"])]
        metrics = [json.loads(line) for line in open(f"{row['run_dir']}/metrics.jsonl")]
        smoothed = sh.smoothed_corpus(ds, sh.SCALES["smoke"]["documents"])
        d_sat = saturated_distortion(smoothed.test).double().mean().item()
        assert row["test_neg_elbo_min"] == pytest.approx(min(-m["elbo"] for m in metrics) - d_sat)
    tables = (tmp_path / "tables.md").read_text()
    assert "/ 387" in tables and "Precision@100" in tables
    assert result["best"]["test_neg_elbo_min"] == min(r["test_neg_elbo_min"] for r in rows)


@pytest.mark.slow
def test_smoke_scale_on_the_real_corpus(tmp_path, shared_data):
    import os

    from rdvae.data import load_dataset

    if not (shared_data / "20newsgroups" / "20news-bydate-matlab.tgz").exists():
        pytest.skip("20 Newsgroups archive not available (set RDVAE_DATA)")
    os.environ.setdefault("RDVAE_DATA", str(shared_data))
    ds = load_dataset("20newsgroups")
    assert (len(ds.train), len(ds.test), ds.event_shape) == (11269, 7505, (10000,))
    result = sh.run("smoke", tmp_path, progress=False, dataset=ds)
    assert result["configurations"] == 2 and result["best"]["test_neg_elbo_min"] > 0
