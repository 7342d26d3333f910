"""The claims of "Fixing a Broken ELBO", section 4 (MNIST), checked on a grid's rows, and the
measure behind "a semantic encoder keeps the class": how often a reconstruction is classified
as the same digit as its input.

Each claim speaks about a region of the grid (runs at the lowest rates, autoregressive decoders at
beta = 1 with or without KL annealing, the autoencoding corner, ...). Its rule takes the finished
runs (dicts with code, beta, rate, distortion, mutual_info, regime, annealed, class_kappa,
on_frontier, converged) and returns a Finding: what the runs show, whether the claim holds there,
and the runs the verdict rests on. A rule says "cannot tell" (holds None), naming the missing
region, when the grid has no run where the claim could fail, so that a verdict is never read off
runs that could not have contradicted it; `tally` counts only the claims that could have failed.
rdvae.studies.common.claims_table writes the "claim | paper | here | holds?" table, and
`claims_basis_table` the same with the runs each verdict rests on. The rules and their thresholds
are stated in each function's docstring.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from rdvae.device import seeded

from ..common import claim, markdown_table, verdict
from .families import PAPER_CODES
from .paper import TRACKING_RATE
from .regimes import AUTODECODER_INFORMATION, AUTOENCODER_DISTORTION, REGIMES, SEMANTIC_RATE

CLASS_EXAMPLES = 200          # test images behind each run's class agreement (standard error <= 3.6%)
SEMANTIC_INFORMATION = 2.0    # nats of I_q a semantic encoder must carry (log 10 = 2.30 names a digit)
KEEPS_CLASS = 0.6             # Cohen's kappa of input and reconstruction classes: "keeps the class"
ENCODES_RATE = 50.0           # nats: "forced to encode" at beta = 0.1
FAR_BELOW = 0.75              # x H_hat: "D far below H_hat"
SIMPLE_GAP = 5.0              # nats above H_hat: a simple decoder "fails" at its lowest rate
LOWEST_RATE = 5.0             # nats: "the lowest rates", where autoregressive decoders are best
LOW_RATE = TRACKING_RATE      # nats: the low rates where simple decoders fail (the paper's 22)
CORNER_BETA = 0.1             # the paper's lowest beta: runs at it or below approach the autoencoding corner
BETA_TOLERANCE = 1e-6         # relative: betas read back from CSV or JSON compare equal within it
DECODERS = {"+": "autoregressive", "-": "simple"}


@torch.no_grad()
def class_agreement(model, x: torch.Tensor, classifier: torch.nn.Module, seed: int = 0,
                    batch_size: int = 100) -> tuple[float, float]:
    """(agreement, chance): the fraction of inputs x whose reconstruction x_hat ~ d(x | z),
    z ~ e(z | x) (one draw each) the classifier assigns to the same class as x itself, and the
    agreement expected if the two were independent, sum_c p_x(c) p_xhat(c) over the classes'
    frequencies among inputs and reconstructions (0.1 for ten balanced classes; higher when the
    reconstructions fall into few classes, as an autodecoder's may)."""
    model.eval()
    classifier.eval()
    inputs, recons = [], []
    with seeded(seed):
        for start in range(0, len(x), batch_size):
            batch = x[start:start + batch_size]
            z = model.encoder(batch).sample()
            recon = model.decoder(z).sample().reshape(batch.shape).float()
            inputs.append(classifier(batch.float()).argmax(1))
            recons.append(classifier(recon).argmax(1))
    a, b = torch.cat(inputs), torch.cat(recons)
    classes = int(max(a.max(), b.max())) + 1
    chance = float((torch.bincount(a, minlength=classes).double() / len(a)
                    * torch.bincount(b, minlength=classes).double() / len(b)).sum())
    return float((a == b).double().mean()), chance


def kappa(agreement: float | None, chance: float | None) -> float | None:
    """Cohen's kappa: how far the agreement is above chance, as a fraction of the way to 1."""
    if agreement is None or chance is None:
        return None
    return (agreement - chance) / (1.0 - chance) if chance < 1.0 else 0.0


def mark_frontier(rows: Sequence[dict]) -> None:
    """Set row["on_frontier"]: the run is a point of the stepwise Pareto frontier of (R, D)."""
    from rdvae.plots.frontier import pareto_frontier

    rate = np.array([r["rate"] for r in rows], dtype=float)
    distortion = np.array([r["distortion"] for r in rows], dtype=float)
    front = set(pareto_frontier(rate, distortion)) if rows else set()
    for i, row in enumerate(rows):
        row["on_frontier"] = i in front


# --- the rules ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    """What a claim's rule finds on a grid: what the runs show (`here`), whether the claim holds there
    (None: the grid has no run in the region the claim is about, and `here` names that region), and
    the runs the verdict rests on."""

    here: str
    holds: bool | None
    runs: tuple[dict, ...] = field(default=())


@dataclass(frozen=True)
class Claim:
    """A claim of the paper (`key`: a short name), what the paper shows for it, and the rule that
    checks it on a grid's rows: (rows, H_hat) -> Finding."""

    key: str
    text: str
    paper: str
    check: Callable[[Sequence[dict], float], Finding]


def _neg_elbo(row: dict) -> float:
    return row["rate"] + row["distortion"]


def _is_beta(row: dict, beta: float) -> bool:
    return math.isclose(row["beta"], beta, rel_tol=BETA_TOLERANCE, abs_tol=1e-12)


def _at(rows, beta: float, decoder: str | None = None, annealed: bool | None = None) -> list[dict]:
    """The runs at `beta`, of that decoder ("+", "-") and annealing where given."""
    return [r for r in rows if _is_beta(r, beta) and (decoder is None or r["code"][1] == decoder)
            and (annealed is None or r["annealed"] is annealed)]


def _best(rows) -> dict | None:
    """The run of lowest -ELBO (None for no runs)."""
    return min(rows, key=_neg_elbo, default=None)


def run_label(row: dict) -> str:
    """A run as the tables name it: family code and beta, "(annealed)" when it was KL-annealed."""
    return f"`{row['code']}` β={row['beta']:g}" + (" (annealed)" if row.get("annealed") else "")


def _fmt(row: dict) -> str:
    """A run with its rate and distortion: "`-+v` β=1 (annealed; R 4.2, D 80.5)"."""
    facts = ["annealed"] * bool(row.get("annealed")) + [f"R {row['rate']:.1f}, D {row['distortion']:.1f}"]
    return f"`{row['code']}` β={row['beta']:g} ({'; '.join(facts)})"


def autoregressive_best_at_low_rate(rows, h_hat) -> Finding:
    """At the lowest rates, R < 5 nats, the best (lowest) -ELBO of an autoregressive-decoder run is
    below the best of a simple-decoder run. The region needs runs of both decoders at R < 5: where
    either has none there the grid cannot tell (the comparison could not fail)."""
    low = [r for r in rows if r["rate"] < LOWEST_RATE]
    best = {d: _best(r for r in low if r["code"][1] == d) for d in "+-"}
    missing = [d for d in "+-" if best[d] is None]
    if missing:
        lines = []
        for d in missing:
            lowest = min((r for r in rows if r["code"][1] == d), key=lambda r: r["rate"], default=None)
            where = f"the lowest: {_fmt(lowest)}" if lowest else "none at all"
            lines.append(f"no {DECODERS[d]}-decoder run at R < {LOWEST_RATE:g} ({where})")
        found = [f"best {DECODERS[d]} -ELBO there {_neg_elbo(best[d]):.2f} ({_fmt(best[d])})"
                 for d in "+-" if best[d] is not None]
        return Finding("; ".join(lines + found), None, tuple(r for r in best.values() if r is not None))
    holds = _neg_elbo(best["+"]) < _neg_elbo(best["-"])
    return Finding(f"best -ELBO at R < {LOWEST_RATE:g}: autoregressive {_neg_elbo(best['+']):.2f} "
                   f"({_fmt(best['+'])}), simple {_neg_elbo(best['-']):.2f} ({_fmt(best['-'])})", holds,
                   (best["+"], best["-"]))


def _stopped(runs) -> str:
    """How the runs stopped: by the plateau rule (converged) or at their epoch cap."""
    known = [r for r in runs if r.get("converged") is not None]
    if not known:
        return ""
    plateau = sum(bool(r["converged"]) for r in known)
    return f"; {plateau} of {len(known)} stopped on a plateau, {len(known) - plateau} at their epoch cap"


def powerful_decoders_ignore_the_code(annealed: bool) -> Callable[[Sequence[dict], float], Finding]:
    """The rule for "powerful decoders ignore the code at beta = 1" on the runs trained with
    (`annealed` True) or without KL annealing: every autoregressive-decoder run at beta = 1 of that
    kind is an autodecoder (I_q < 1 nat), except at most those with a VampPrior marginal. The region:
    autoregressive-decoder runs at beta = 1 of that annealing outside the VampPrior family (which the
    claim excepts, so that runs of it alone could not fail it)."""
    kind = "with" if annealed else "without"

    def rule(rows, h_hat) -> Finding:
        runs = _at(rows, 1.0, "+", annealed)
        if not runs:
            return Finding(f"no autoregressive-decoder run at β = 1 {kind} KL annealing", None)
        tested = [r for r in runs if r["code"][2] != "v"]
        if not tested:
            listed = ", ".join(run_label(r) for r in runs)
            return Finding(f"only VampPrior-family runs at β = 1 {kind} KL annealing ({listed}), which the "
                           "claim excepts", None, tuple(runs))
        encoding = [r for r in runs if r["regime"] != "autodecoder"]
        holds = all(r["code"][2] == "v" for r in encoding)
        listed = ", ".join(f"`{r['code']}` I_q={_information(r):.2f}" for r in encoding) or "none"
        return Finding(f"{len(runs) - len(encoding)} of {len(runs)} are autodecoders; encoding: {listed}"
                       f"{_stopped(runs)}", holds, tuple(runs))

    rule.__name__ = f"powerful_decoders_ignore_the_code_{'annealed' if annealed else 'unannealed'}"
    rule.__doc__ = powerful_decoders_ignore_the_code.__doc__
    return rule


def _information(row: dict) -> float:
    """I_q(x; z), or R (its upper bound) where it was not measured."""
    return row["rate"] if row.get("mutual_info") is None else row["mutual_info"]


def low_beta_forces_encoding(rows, h_hat) -> Finding:
    """Every autoregressive-decoder run at beta = 0.1 has R > 50 nats and D < 0.75 H_hat. The region:
    autoregressive-decoder runs at beta = 0.1."""
    runs = _at(rows, CORNER_BETA, "+")
    if not runs:
        return Finding(f"no autoregressive-decoder run at β = {CORNER_BETA:g}", None)
    rates = ", ".join(f"{r['rate']:.0f}" for r in runs)
    dists = ", ".join(f"{r['distortion']:.0f}" for r in runs)
    holds = all(r["rate"] > ENCODES_RATE and r["distortion"] < FAR_BELOW * h_hat for r in runs)
    return Finding(f"R = {rates}; D = {dists} (0.75 Ĥ = {FAR_BELOW * h_hat:.1f})", holds, tuple(runs))


def semantic_encoder_on_the_frontier(rows, h_hat) -> Finding:
    """Some run on the Pareto frontier is a semantic encoder with I_q > 2 nats whose reconstructions
    keep the input's class (Cohen's kappa of input and reconstruction classes >= 0.6). The region: the
    semantic band (regime "semantic encoder": I_q >= 1 nat, D >= 0.075 H_hat, R < 0.25 H_hat); where
    no run lies in it, or the class agreement of the frontier's semantic encoders was not measured
    and none of those measured keeps the class, the grid cannot tell."""
    band = [r for r in rows if r["regime"] == "semantic encoder"]
    if not band:
        return Finding(f"no run in the semantic band (I_q >= {AUTODECODER_INFORMATION:g} nat, "
                       f"D >= {AUTOENCODER_DISTORTION * h_hat:.1f}, R < {SEMANTIC_RATE * h_hat:.1f} nats)",
                       None)
    candidates = [r for r in band if r.get("on_frontier") and _information(r) > SEMANTIC_INFORMATION]
    found = [r for r in candidates if r.get("class_kappa") is not None and r["class_kappa"] >= KEEPS_CLASS]
    if found:   # lowest rate first: the paper's example is a code of a few nats
        found.sort(key=lambda r: r["rate"])
        return Finding("; ".join(f"{_fmt(r)}, I_q {_information(r):.2f}, class kept "
                                 f"{r['class_agreement']:.0%} (κ {r['class_kappa']:.2f})" for r in found),
                       True, tuple(found))
    unmeasured = [r for r in candidates if r.get("class_kappa") is None]
    if unmeasured:
        return Finding("class agreement not measured for the frontier's semantic encoder(s) "
                       + ", ".join(_fmt(r) for r in unmeasured), None, tuple(unmeasured))
    listed = "; ".join(f"{_fmt(r)} frontier={'yes' if r.get('on_frontier') else 'no'} "
                       f"I_q={_information(r):.2f} κ={_kappa_text(r)}" for r in band[:4])
    return Finding(listed, False, tuple(band))


def _kappa_text(row: dict) -> str:
    return "n/a" if row.get("class_kappa") is None else f"{row['class_kappa']:.2f}"


def simple_decoders_fail_at_low_rate(rows, h_hat) -> Finding:
    """The simple-decoder run of lowest rate lies more than 5 nats above the H_hat line (its -ELBO
    exceeds H_hat by more than 5). The region: simple-decoder runs at low rate, R < 22 nats (above it
    the paper finds the simple and autoregressive frontiers tracking one another)."""
    simple = [r for r in rows if r["code"][1] == "-"]
    if not simple:
        return Finding("no simple-decoder run", None)
    lowest = min(simple, key=lambda r: r["rate"])
    if lowest["rate"] >= LOW_RATE:
        return Finding(f"no simple-decoder run at R < {LOW_RATE:g} (the lowest: {_fmt(lowest)})", None,
                       (lowest,))
    best = _best(rows)
    gap = _neg_elbo(lowest) - h_hat
    return Finding(f"lowest rate {_fmt(lowest)}: -ELBO - Ĥ = {gap:.1f}", gap > SIMPLE_GAP,
                   (lowest,) if best is lowest else (lowest, best))


def families_degrade_toward_autoencoding(rows, h_hat) -> Finding:
    """Every family's best run at beta <= 0.1 (toward the autoencoding corner) lies further above the
    H_hat line (larger -ELBO) than its best run at beta = 1. The region: for each family, runs at
    beta <= 0.1 and at beta = 1. One family that does not degrade refutes the claim; it holds when
    every family of the grid was tested, and the grid cannot tell while some family has no run there."""
    tested, untested, exceptions = [], [], []
    for code in sorted({r["code"] for r in rows}):
        own = [r for r in rows if r["code"] == code]
        corner = _best(r for r in own if r["beta"] <= CORNER_BETA * (1 + BETA_TOLERANCE))
        one = _best(_at(own, 1.0))
        if corner is None or one is None:
            untested.append(f"`{code}`")
            continue
        tested += [corner, one]
        if not _neg_elbo(corner) > _neg_elbo(one):
            exceptions.append(f"`{code}` ({_neg_elbo(corner):.2f} at β={corner['beta']:g} against "
                              f"{_neg_elbo(one):.2f} at β=1)")
    families = len(tested) // 2
    missing = f"no run at β <= {CORNER_BETA:g} and β = 1 for {', '.join(untested)}"
    if not families:
        return Finding(missing, None)
    counted = f"{families - len(exceptions)} of {families} families with runs at β <= {CORNER_BETA:g} degrade"
    if exceptions:
        return Finding(f"{counted}; exceptions: {', '.join(exceptions)}"
                       + (f"; {missing}" if untested else ""), False, tuple(tested))
    if untested:
        return Finding(f"{counted}; {missing}", None, tuple(tested))
    return Finding(counted, True, tuple(tested))


CLAIMS = (
    Claim("low-rate", "autoregressive decoders are best at low rate (R < 5)",
          "Fig. 3a(iii): 'systematic failure of simple decoder models at the lowest rates'",
          autoregressive_best_at_low_rate),
    Claim("ignore-annealed", "powerful decoders ignore the code at β = 1, in all but (at most) the VampPrior "
          "family: runs with KL annealing",
          "Fig. 4c / 5: autodecoders; -+v keeps R = 6.2", powerful_decoders_ignore_the_code(annealed=True)),
    Claim("ignore-unannealed", "powerful decoders ignore the code at β = 1, in all but (at most) the "
          "VampPrior family: runs without KL annealing",
          "Fig. 4c / 5 (runs 'both with and without KL annealing')",
          powerful_decoders_ignore_the_code(annealed=False)),
    Claim("encode-below-1", "β < 1 forces them to encode: R > 50 at β = 0.1 with D far below Ĥ (< 0.75 Ĥ)",
          "-+v at β = 0.1: R = 156, D = 4.8", low_beta_forces_encoding),
    Claim("semantic-frontier", "a semantic encoder (a few nats, I_q > 2, reconstructions keep the class) "
          "exists on the frontier", "-+v at β = 1: R = 6.2, D = 74.1", semantic_encoder_on_the_frontier),
    Claim("simple-fail", "simple decoders fail at low rate (lowest-rate run, R < 22, > 5 nats above the Ĥ "
          "line)",
          "Fig. 3a(iii)", simple_decoders_fail_at_low_rate),
    Claim("corner", "all families degrade toward the autoencoding corner "
          "(higher -ELBO at β <= 0.1 than at β = 1)",
          "Fig. 3: 'perform much worse in the auto-encoding limit'", families_degrade_toward_autoencoding),
)


def check_rows(rows: Sequence[dict]) -> None:
    """ValueError naming the row and field where a row cannot be judged: every row needs code (a
    family code of the paper), beta, rate, distortion (finite numbers), regime (one of REGIMES) and
    annealed (True or False)."""
    for i, row in enumerate(rows):
        if row.get("code") not in PAPER_CODES:
            raise ValueError(f"claims: row {i} has code={row.get('code')!r}; the code must be one of "
                             f"{', '.join(PAPER_CODES)}")
        for key in ("beta", "rate", "distortion"):
            value = row.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"claims: row {i} (`{row['code']}`) has {key}={value!r}; {key} must be a "
                                 "finite number")
        if row.get("regime") not in REGIMES:
            raise ValueError(f"claims: row {i} (`{row['code']}`) has regime={row.get('regime')!r}; the "
                             f"regime must be one of {', '.join(REGIMES)}")
        if not isinstance(row.get("annealed"), bool):
            raise ValueError(f"claims: row {i} (`{row['code']}` β={row['beta']:g}) has "
                             f"annealed={row.get('annealed')!r}; annealed must be True or False (whether the "
                             "run's rate weight was ramped up by KL annealing)")


def check_claims(rows: Sequence[dict], h_hat: float) -> list[dict]:
    """Each claim (rdvae.studies.common.claim) with its key and the labels of the runs its verdict
    rests on ("runs"); holds None: the grid cannot tell (no run in the region the claim is about)."""
    check_rows(rows)
    results = []
    for rule in CLAIMS:
        found = rule.check(rows, h_hat)
        results.append({**claim(rule.text, rule.paper, found.here, found.holds), "key": rule.key,
                        "runs": [run_label(r) for r in found.runs]})
    return results


def tally(checked: Sequence[dict]) -> dict:
    """How many claims hold, do not hold, and cannot be told; `tested`: those that could have failed
    (held or did not), the only ones a count of claims that hold is out of."""
    holds = sum(c["holds"] is True for c in checked)
    fails = sum(c["holds"] is False for c in checked)
    return {"holds": holds, "does_not_hold": fails, "cannot_tell": len(checked) - holds - fails,
            "tested": holds + fails}


def tally_text(checked: Sequence[dict]) -> str:
    """'3 of 4 claims that the grid tests hold (1 does not; 3 it cannot tell)'."""
    t = tally(checked)
    return (f"{t['holds']} of {t['tested']} claims that the grid tests hold ({t['does_not_hold']} "
            f"{'does' if t['does_not_hold'] == 1 else 'do'} not; {t['cannot_tell']} it cannot tell)")


def claims_basis_table(checked: Sequence[dict]) -> str:
    """The claims table with the runs each verdict rests on: claim | paper | here | holds? | runs."""
    return markdown_table(["claim", "paper", "here", "holds?", "runs it rests on"],
                          [[c["claim"], c["paper"], c["here"], verdict(c["holds"]),
                            ", ".join(c.get("runs") or []) or "none"] for c in checked])
