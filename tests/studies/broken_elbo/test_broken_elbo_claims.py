"""The section-4 claims of "Fixing a Broken ELBO" as rules over a grid's rows, and the class
agreement behind "a semantic encoder keeps the class", against exact answers on hand-made cases."""

import pytest
import torch
from torch.distributions import Bernoulli, Independent

from rdvae.studies.broken_elbo import claims
from rdvae.studies.common import claims_table

H = 80.0


class _Copy(torch.nn.Module):
    """e(z|x) and d(x|z) that put all their mass on their input: the reconstruction is x itself."""

    def forward(self, v):
        return Independent(Bernoulli(probs=v.flatten(1)), 1)


class _Blank(torch.nn.Module):
    """A decoder that ignores z: every reconstruction is the empty image."""

    def forward(self, z):
        return Independent(Bernoulli(probs=torch.zeros(len(z), 9)), 1)


class _Model(torch.nn.Module):
    def __init__(self, decoder):
        super().__init__()
        self.encoder, self.decoder = _Copy(), decoder


class _Count(torch.nn.Module):
    """The 'class' of an image: its number of on pixels, mod 3."""

    def forward(self, x):
        counts = x.flatten(1).sum(1).long() % 3
        return torch.nn.functional.one_hot(counts, 3).float()


def test_class_agreement_is_one_for_a_copy_and_chance_for_a_blank_decoder():
    x = torch.bernoulli(torch.full((300, 1, 3, 3), 0.5))
    classes = x.flatten(1).sum(1).long() % 3
    frequencies = torch.bincount(classes, minlength=3).double() / len(x)
    agreement, chance = claims.class_agreement(_Model(_Copy()), x, _Count(), batch_size=64)
    assert agreement == 1.0
    assert chance == pytest.approx(float((frequencies ** 2).sum()))
    assert claims.kappa(agreement, chance) == pytest.approx(1.0)
    agreement, chance = claims.class_agreement(_Model(_Blank()), x, _Count())
    assert agreement == pytest.approx(float(frequencies[0]))          # the blank image has class 0
    assert chance == pytest.approx(float(frequencies[0]))             # all reconstructions in class 0
    assert claims.kappa(agreement, chance) == pytest.approx(0.0)


def _row(code, beta, rate, distortion, mutual_info=None, regime="semantic encoder", **extra):
    return {"code": code, "beta": beta, "rate": rate, "distortion": distortion,
            "elbo": -(rate + distortion), "mutual_info": rate if mutual_info is None else mutual_info,
            "regime": regime, **extra}


def _verdicts(rows):
    claims.mark_frontier(rows)
    return [c["holds"] for c in claims.check_claims(rows, H)]


def test_a_grid_shaped_like_the_papers_satisfies_every_claim():
    rows = [
        _row("-+v", 0.1, 120.0, 10.0, 9.2, "syntactic encoder"),
        _row("-+v", 1.0, 6.0, 74.5, 4.0, "semantic encoder", class_agreement=0.9, class_kappa=0.85),
        _row("-+-", 0.1, 90.0, 30.0, 9.2, "syntactic encoder"),
        _row("-+-", 1.0, 0.01, 80.0, 0.01, "autodecoder"),
        _row("---", 0.5, 40.0, 65.0, 9.0, "syntactic encoder"),
        _row("---", 1.0, 20.0, 80.0, 8.0, "semantic encoder"),
        _row("---", 2.0, 9.0, 100.0, 6.0, "semantic encoder"),
    ]
    assert _verdicts(rows) == [True] * 6


def test_each_claim_fails_when_the_runs_contradict_it():
    base = [
        _row("-+v", 0.1, 120.0, 10.0, 9.2, "syntactic encoder"),
        _row("-+v", 1.0, 6.0, 74.5, 4.0, "semantic encoder", class_agreement=0.9, class_kappa=0.85),
        _row("---", 1.0, 20.0, 80.0, 8.0, "semantic encoder"),
        _row("---", 2.0, 9.0, 100.0, 6.0, "semantic encoder"),
        _row("---", 0.5, 40.0, 65.0, 9.0, "syntactic encoder"),
    ]
    # a simple decoder beats the autoregressive ones at low rate
    assert _verdicts(base + [_row("-+-", 1.0, 0.01, 80.0, 0.01, "autodecoder"),
                             _row("--v", 4.0, 3.0, 70.0)])[0] is False
    # a powerful decoder without a VampPrior encodes at beta = 1
    assert _verdicts(base + [_row("-+-", 1.0, 8.0, 74.0, 5.0, "semantic encoder")])[1] is False
    # beta = 0.1 leaves an autoregressive decoder at a low rate
    assert _verdicts(base + [_row("++-", 0.1, 30.0, 55.0, 9.0)])[2] is False
    # the only semantic encoder does not keep the class (kappa below 0.6)
    weak = [dict(r, class_kappa=0.2) if r["beta"] == 1.0 and r["code"] == "-+v" else r for r in base]
    assert _verdicts(weak)[3] is False
    # a simple decoder at low rate sits on the H line
    assert _verdicts(base + [_row("+--", 2.0, 2.0, 79.0)])[4] is False
    # a family whose lowest beta is better than its beta = 1 run
    assert _verdicts(base + [_row("--+", 1.0, 20.0, 90.0), _row("--+", 0.5, 30.0, 70.0)])[5] is False


def test_claims_that_the_grid_cannot_decide_say_so():
    rows = [_row("---", 1.0, 20.0, 80.0)]
    verdicts = _verdicts(rows)
    assert verdicts[0] is None and verdicts[1] is None and verdicts[2] is None
    table = claims_table(claims.check_claims(rows, H))
    assert table.count("cannot tell") == sum(v is None for v in verdicts)


def test_the_frontier_marks_only_undominated_runs():
    rows = [_row("a", 1, 1.0, 10.0), _row("b", 1, 2.0, 8.0), _row("c", 1, 3.0, 9.0)]
    claims.mark_frontier(rows)
    assert [r["on_frontier"] for r in rows] == [True, True, False]
