"""Annealed importance sampling (Neal 2001) over the decoder's rate-distortion path, with Hamiltonian
Monte Carlo transitions: log-likelihoods (Wu, Burda, Salakhutdinov, Grosse 2017), bidirectional
Monte Carlo bounds (Grosse, Ghahramani, Adams 2015) and the decoder's rate-distortion curve (Huang,
Makhzani, Cao, Grosse 2020).

The intermediate densities of one example x are

    f_beta(z) = m(z) exp(-beta D(x, z)),   D(x, z) = -log d(x|z),   Z_beta = int f_beta(z) dz

so f_0 = m (Z_0 = 1) and Z_1 = p(x). From z ~ m(z), each step t adds (beta_t - beta_{t-1}) (-D(x, z))
to the chain's log weight and then moves z by an HMC transition that leaves f_{beta_t} invariant.
The mean of the weights is an unbiased estimate of Z_beta at every beta on the way, so
log mean w is a stochastic lower bound on log Z_beta. Run backwards from an exact sample of
p(z|x) (x simulated from the model), the same estimator bounds log p(x) from above (BDMC).

The normalised p_beta(z|x) = f_beta / Z_beta is the decoder's optimal encoder at slope dD/dR = -1/beta
(Huang et al.; the minimiser of D + (1/beta) R, so rdvae train's beta is 1/beta here): its distortion
D_beta = E_{p_beta} D(x, z) (the chains weighted by their importance weights) and rate
R_beta = KL(p_beta || m) = -beta D_beta - log Z_beta trace the best rate-distortion curve that this
decoder and marginal allow, whatever the encoder. With log Z_beta underestimated, R_beta is
overestimated: the curve is an upper bound.

HMC: momentum N(0, I), `leapfrog` steps of a step size drawn per transition uniformly from
eps (1 +- `jitter`) (a fixed trajectory length can be a multiple of a half-period of a near-Gaussian
posterior and then hardly moves D; the draw is independent of the state, so the kernel stays valid).
The step sizes eps are per chain and per beta, tuned in a *tuning phase*: a pilot annealing over
`tune_fraction` of the steps (the same schedule, thinned) whose chains adapt log eps by
ADAPT_RATE (a - target_acceptance) after each transition, a their Metropolis acceptance probability.
The pilot's chains and weights are then thrown away and the estimating run uses the pilot's step
sizes, frozen: chain c at beta_t takes the step size that pilot chain c had reached at the first
pilot beta >= beta_t. Adapting inside the estimating run instead would make each chain's kernel
depend on its own past (a chain that has just been rejected, typically in an awkward place, shrinks
its steps and lingers there), and the weights would no longer be unbiased: on probabilistic PCA a
first draft that did so gave log p(x) about 0.1-0.3 nats too low at 1000-3000 steps, whatever the
number of chains, where the pilot's frozen step sizes leave no bias (tests/evaluate/test_ais.py
checks the mean error over examples).

Everything is batched over chains x examples ([C, B, d] latents: the model's sample-major
contract), chunked over examples to bound memory, in the model's float32 with log weights
accumulated in float64. Any model with a differentiable decoder log_prob and a marginal with
log_prob over real latents works (VampPrior and flow marginals included); discrete latents are
refused.

Cost: every leapfrog step is one decoder (and marginal) gradient evaluation per chain and example;
`gradient_evaluations` counts them, pilot included: steps * leapfrog + tune_steps * leapfrog + 2.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..components.gaussian_decoders import GaussianLikelihood
from ..device import seeded
from ..protocols import LatentVariableModel
from .batching import mean_and_stderr, model_device

LEAPFROG = 5                     # leapfrog steps per HMC transition (the default; cli/evaluate.py too)
STEP_SIZE = 0.1                  # where the pilot's step sizes start
TARGET_ACCEPTANCE = 0.65         # the acceptance probability the pilot tunes the step sizes to
TUNE_FRACTION = 0.25             # the pilot's transitions, as a fraction of the steps
JITTER = 0.2                     # each transition's step size drawn from eps (1 +- jitter)
ADAPT_RATE = 0.2                 # log step size per unit of (acceptance - target), per pilot transition
STEP_SIZE_RANGE = (1e-4, 2.0)
# default chains x examples moved together: on the CPU a block whose decoder activations stay near
# the cache (cf. evaluate.likelihood), on an accelerator enough rows to fill it
CHAIN_EXAMPLES_PER_CHUNK = {"cpu": 4096, "other": 65536}


def sigmoid_schedule(steps: int, radius: float = 4.0) -> Tensor:
    """beta_0 = 0 < ... < beta_steps = 1 along a sigmoid (Grosse et al.): small steps at both ends."""
    _check_steps(steps)
    s = torch.sigmoid(torch.linspace(-radius, radius, steps + 1, dtype=torch.float64))
    return (s - s[0]) / (s[-1] - s[0])


def rate_distortion_schedule(steps: int, beta_max: float, beta_min: float = 1e-3,
                             through: Sequence[float] = (1.0,)) -> Tensor:
    """beta_0 = 0, then `steps` betas evenly spaced in log beta from beta_min to beta_max (the RD
    path: every decade of slope gets the same share of the work), with the betas of `through` that lie
    between them added (1 by default, so that log Z_1 = log p(x) is on the way)."""
    _check_steps(steps)
    if not 0 < beta_min < beta_max:
        raise ValueError(f"need 0 < beta_min < beta_max, got beta_min={beta_min}, beta_max={beta_max}")
    betas = torch.linspace(math.log(beta_min), math.log(beta_max), steps, dtype=torch.float64).exp()
    betas[0], betas[-1] = beta_min, beta_max          # exactly, not through exp(log(.))
    extra = torch.tensor([b for b in through if beta_min < b < beta_max], dtype=torch.float64)
    return torch.cat([torch.zeros(1, dtype=torch.float64), betas, extra]).unique()


def _check_steps(steps: int) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"annealing steps must be an integer >= 1, got {steps!r}")


@dataclass
class Annealing:
    """One AIS run over examples x (all per example [B] or per recorded beta and example [K, B]).

    log_normalizer[k] estimates log Z at recorded_betas[k] (for a reverse run, log Z_beta / Z_start);
    distortion[k] is D_beta, the chains' distortions weighted by their importance weights;
    rate = -beta D_beta - log Z_beta (meaningful for forward runs from beta = 0)."""

    betas: Tensor                  # the schedule [T + 1]
    recorded_betas: Tensor         # [K]
    log_normalizer: Tensor         # [K, B] float64
    distortion: Tensor             # [K, B] float64
    log_weights: Tensor            # [C, B] float64, the final chains' log weights
    z: Tensor                      # [C, B, d] the final states
    acceptance: float              # mean Metropolis acceptance probability of the estimating run
    gradient_evaluations: int      # decoder gradient evaluations per (chain, example), pilot included
    seconds: float
    step_size: Tensor = field(repr=False)   # [C, B] the chains' step sizes at the last beta

    @property
    def rate(self) -> Tensor:
        return -self.recorded_betas[:, None] * self.distortion - self.log_normalizer

    def log_likelihood(self) -> Tensor:
        """log Z at the last recorded beta: [B] (log p(x) when the schedule ends at beta = 1)."""
        return self.log_normalizer[-1]

    def effective_sample_size(self) -> Tensor:
        """(sum w)^2 / sum w^2 of the final weights, per example: [B]."""
        w = self.log_weights
        return (2 * torch.logsumexp(w, 0) - torch.logsumexp(2 * w, 0)).exp()


class _Target:
    """log m(z), D(x, z) and their gradients in z for one chunk of examples."""

    def __init__(self, model: LatentVariableModel, x: Tensor, marginal):
        self.model, self.x, self.marginal = model, x, marginal

    def __call__(self, z: Tensor) -> list[Tensor]:
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            log_m = self.marginal.log_prob(z)
            distortion = self.model.distortion_of(self.x, z)
            g_log_m, g_distortion = (torch.autograd.grad(term.sum(), z, retain_graph=True)[0]
                                     for term in (log_m, distortion))
        return [z.detach(), log_m.detach(), distortion.detach(), g_log_m, g_distortion]


def _energy(beta: float, log_m: Tensor, distortion: Tensor, momentum: Tensor) -> Tensor:
    """-log f_beta(z) + |p|^2 / 2 in float64."""
    return (beta * distortion.double() - log_m.double()) + 0.5 * momentum.double().pow(2).sum(-1)


def _hmc(target: _Target, beta: float, state: list[Tensor], step_size: Tensor, leapfrog: int,
         jitter: float) -> tuple[list[Tensor], Tensor]:
    """One HMC transition leaving f_beta invariant: the new state [z, log m, D, grad log m, grad D]
    and the Metropolis acceptance probabilities [C, B] (float64)."""
    z, log_m, distortion, g_log_m, g_distortion = state
    eps = step_size * (1 + jitter * (2 * torch.rand_like(step_size) - 1))
    eps = eps.unsqueeze(-1).to(z.dtype)
    momentum = torch.randn_like(z)
    energy0 = _energy(beta, log_m, distortion, momentum)
    p = momentum - 0.5 * eps * (beta * g_distortion - g_log_m)
    new = state
    for step in range(leapfrog):
        new = target(new[0] + eps * p)
        grad = beta * new[4] - new[3]
        p = p - (eps if step < leapfrog - 1 else 0.5 * eps) * grad
    energy1 = _energy(beta, new[1], new[2], p)
    log_accept = (energy0 - energy1).clamp(max=0.0)
    ok = torch.isfinite(energy1) & torch.isfinite(new[0]).all(-1)
    accept_prob = torch.where(ok, log_accept, torch.full_like(log_accept, -math.inf)).exp()
    take = torch.rand_like(accept_prob) < accept_prob
    chosen = [torch.where(take.view(*take.shape, *([1] * (n.dim() - take.dim()))), n, o)
              for n, o in zip(new, state, strict=True)]
    return chosen, accept_prob


@dataclass
class _Settings:
    chains: int
    leapfrog: int
    step_size: float
    target_acceptance: float
    tune_fraction: float
    jitter: float

    def tune_steps(self, steps: int) -> int:
        return round(self.tune_fraction * steps)


def anneal(model: LatentVariableModel, x: Tensor, betas: Tensor, chains: int = 16, leapfrog: int = LEAPFROG,
           step_size: float = STEP_SIZE, target_acceptance: float = TARGET_ACCEPTANCE,
           tune_fraction: float = TUNE_FRACTION, jitter: float = JITTER, record: Sequence[int] | None = None,
           initial_z: Tensor | None = None, examples_per_chunk: int | None = None, seed: int = 0,
           progress: bool = False) -> Annealing:
    """AIS along `betas` (increasing from 0 forwards; decreasing to 0 for the reverse chains of BDMC,
    which start from `initial_z` [C, B, d], exact draws of p_{betas[0]}(z|x)) for every example of x.

    `step_size`: where the pilot's chains start (and the step size throughout with tune_fraction=0).
    `record`: the steps t (1 <= t <= T) whose beta_t keeps its log Z and D_beta (default: the last).
    `examples_per_chunk`: examples per batch of chains
    (default: about CHAIN_EXAMPLES_PER_CHUNK chain-examples per chunk, 4096 on the CPU)."""
    betas = torch.as_tensor(betas, dtype=torch.float64).flatten()
    settings = _Settings(chains, leapfrog, step_size, target_acceptance, tune_fraction, jitter)
    _check_arguments(betas, settings, examples_per_chunk)
    device = model_device(model)
    marginal = model.marginal_distribution()
    if getattr(marginal.support, "is_discrete", False):
        raise ValueError("AIS moves z with Hamiltonian Monte Carlo, which needs real-valued latents; this "
                         f"model's marginal {type(marginal).__name__} is over discrete latents")
    if initial_z is not None and tuple(initial_z.shape[:2]) != (chains, len(x)):
        raise ValueError(f"initial_z must have shape [chains={chains}, examples={len(x)}, d], "
                         f"got {tuple(initial_z.shape)}")
    steps = len(betas) - 1
    keep = _recorded_steps(steps, record)
    rows = CHAIN_EXAMPLES_PER_CHUNK["cpu" if device.type == "cpu" else "other"]
    per_chunk = examples_per_chunk or max(1, rows // chains)
    started = time.perf_counter()
    parts, accepted = [], 0.0
    bar = tqdm(total=(steps + settings.tune_steps(steps)) * math.ceil(len(x) / per_chunk),
               desc=f"AIS {steps} steps", unit="step", disable=not progress, leave=False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.eval()
    for p in trainable:
        p.requires_grad_(False)
    try:
        with seeded(seed, device):
            for start in range(0, len(x), per_chunk):
                target = _Target(model, x[start:start + per_chunk].to(device), marginal)
                z0 = None if initial_z is None else initial_z[:, start:start + per_chunk].to(device)
                part, acc = _anneal_chunk(target, betas, settings, keep, z0, bar)
                parts.append(part)
                accepted += acc
    finally:
        for p in trainable:
            p.requires_grad_(True)
        model.train(was_training)
        bar.close()
    log_z, dist, log_w, z, eps = (torch.cat([p[i] for p in parts], dim=1) for i in range(5))
    return Annealing(betas=betas, recorded_betas=betas[keep], log_normalizer=log_z, distortion=dist,
                     log_weights=log_w, z=z, acceptance=accepted / (steps * len(x) * chains),
                     gradient_evaluations=gradient_evaluations(steps, leapfrog, settings.tune_steps(steps)),
                     seconds=time.perf_counter() - started, step_size=eps)


def gradient_evaluations(steps: int, leapfrog: int, tune_steps: int) -> int:
    """Decoder gradient evaluations per chain and example: a leapfrog step each, plus the start of the
    pilot and of the estimating run."""
    return (steps + tune_steps) * leapfrog + (2 if tune_steps else 1)


def _check_arguments(betas: Tensor, s: _Settings, examples_per_chunk) -> None:
    if len(betas) < 2 or not torch.isfinite(betas).all() or (betas < 0).any():
        raise ValueError(f"betas must be >= 2 finite values >= 0, got {betas.tolist()[:5]}...")
    diffs = betas.diff()
    if not ((diffs >= 0).all() or (diffs <= 0).all()):
        raise ValueError("betas must be monotone (increasing for forward AIS, decreasing for reverse)")
    for name, value in (("chains", s.chains), ("leapfrog", s.leapfrog),
                        ("examples_per_chunk", examples_per_chunk)):
        if (value is not None or name in ("chains", "leapfrog")) and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not s.step_size > 0:
        raise ValueError(f"step_size must be > 0, got {s.step_size!r}")
    if not 0 < s.target_acceptance < 1:
        raise ValueError(f"target_acceptance must be in (0, 1), got {s.target_acceptance!r}")
    if not 0 <= s.tune_fraction <= 1:
        raise ValueError(f"tune_fraction must be in [0, 1], got {s.tune_fraction!r}")
    if not 0 <= s.jitter < 1:
        raise ValueError(f"jitter must be in [0, 1), got {s.jitter!r}")


def _recorded_steps(steps: int, record: Sequence[int] | None) -> Tensor:
    if record is None:
        return torch.tensor([steps])
    keep = torch.as_tensor(list(record), dtype=torch.long).unique()
    if len(keep) == 0 or keep.min() < 1 or keep.max() > steps:
        raise ValueError(f"record must name steps in [1, {steps}], got {list(record)[:5]}")
    return keep


def _start(target: _Target, chains: int, initial_z: Tensor | None = None) -> list[Tensor]:
    z = target.marginal.sample((chains, len(target.x))) if initial_z is None else initial_z
    return target(z)


def _tuned_step_sizes(target: _Target, betas: Tensor, s: _Settings, bar) -> tuple[Tensor, Tensor]:
    """The tuning phase: a pilot annealing from m(z) over the schedule's betas in increasing order,
    thinned to tune_steps transitions, adapting each chain's step size. Returns the pilot betas [K]
    and the step sizes [K, C, B] reached there (K = 1 and the initial step size without a pilot)."""
    steps = len(betas) - 1
    eps = torch.full((s.chains, len(target.x)), float(s.step_size), device=target.x.device)
    tune_steps = s.tune_steps(steps)
    if tune_steps == 0:
        return betas.max().reshape(1), eps.unsqueeze(0)
    ascending = betas.sort().values
    pilot = ascending[torch.linspace(0, steps, tune_steps + 1, dtype=torch.float64).round().long()[1:]]
    state, tuned = _start(target, s.chains), []
    for beta in pilot.tolist():
        state, accept_prob = _hmc(target, beta, state, eps, s.leapfrog, s.jitter)
        log_eps = eps.log() + ADAPT_RATE * (accept_prob.float() - s.target_acceptance)
        eps = log_eps.exp().clamp(*STEP_SIZE_RANGE)
        tuned.append(eps)
        bar.update(1)
    return pilot, torch.stack(tuned)


def _anneal_chunk(target: _Target, betas: Tensor, s: _Settings, keep: Tensor, initial_z, bar):
    pilot_betas, pilot_eps = _tuned_step_sizes(target, betas, s, bar)
    state = _start(target, s.chains, initial_z)
    log_w = torch.zeros(s.chains, len(target.x), dtype=torch.float64, device=target.x.device)
    log_z, dist = [], []
    accepted = torch.zeros((), dtype=torch.float64, device=target.x.device)
    keep = set(keep.tolist())

    def snapshot():
        log_z.append(torch.logsumexp(log_w, 0) - math.log(s.chains))
        dist.append((torch.softmax(log_w, 0) * state[2].double()).sum(0))

    for t in range(1, len(betas)):
        beta, previous = betas[t].item(), betas[t - 1].item()
        log_w = log_w - (beta - previous) * state[2].double()
        k = min(int(torch.searchsorted(pilot_betas, betas[t])), len(pilot_betas) - 1)
        eps = pilot_eps[k]
        state, accept_prob = _hmc(target, beta, state, eps, s.leapfrog, s.jitter)
        accepted += accept_prob.sum()
        if t in keep:
            snapshot()
        bar.update(1)
    parts = (torch.stack(log_z), torch.stack(dist), log_w, state[0], eps)
    return tuple(p.cpu() for p in parts), accepted.item()


def ais_log_likelihood(model: LatentVariableModel, x: Tensor, steps: int, chains: int = 16,
                       **options) -> dict:
    """AIS estimate of log p(x) along a sigmoid schedule (keyword options go to `anneal`): per-example
    `log_px` [B], the NLL's mean over examples with its standard error (nats), the mean acceptance
    probability, decoder gradient evaluations (all chains and examples) and seconds."""
    run = anneal(model, x, sigmoid_schedule(steps), chains=chains, **options)
    return ais_figures(run.log_likelihood(), steps, chains, options.get("leapfrog", LEAPFROG), run.acceptance,
                       run.gradient_evaluations * chains * len(x), run.seconds)


def ais_figures(log_px: Tensor, steps: int, chains: int, leapfrog: int, acceptance: float,
                gradient_evaluations: int, seconds: float) -> dict:
    """What ais_log_likelihood returns, from the per-example log p(x) [B] (float64) of its runs and
    their cost (all chains and examples)."""
    mean, se = mean_and_stderr(log_px)
    return {"log_px": log_px.float(), "ais_nll": -mean, "ais_nll_se": se, "ais_steps": steps,
            "ais_chains": chains, "ais_leapfrog": leapfrog, "ais_acceptance": acceptance,
            "ais_gradient_evaluations": gradient_evaluations, "ais_seconds": seconds}


def check_options(steps: int, chains: int = 16, leapfrog: int = LEAPFROG, step_size: float = STEP_SIZE,
                  target_acceptance: float = TARGET_ACCEPTANCE, tune_fraction: float = TUNE_FRACTION,
                  jitter: float = JITTER, examples_per_chunk: int | None = None) -> None:
    """ValueError naming the first of ais_log_likelihood's settings that `anneal` would refuse."""
    settings = _Settings(chains, leapfrog, step_size, target_acceptance, tune_fraction, jitter)
    _check_arguments(sigmoid_schedule(steps), settings, examples_per_chunk)


def simulate(model: LatentVariableModel, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """n pairs (z ~ m(z), x ~ d(x|z)) from the model in eval mode: x [n, ...] and z [n, d], so that z
    is an exact draw of p(z|x)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), seeded(seed, model_device(model)):
            z = model.marginal_distribution().sample((n,))
            x = model.decoder(z).sample()
    finally:
        model.train(was_training)
    return x, z


def bdmc(model: LatentVariableModel, steps: int, examples: int = 10, chains: int = 16, seed: int = 0,
         **options) -> dict:
    """Bidirectional Monte Carlo on `examples` data simulated from the model: forward AIS gives a
    stochastic lower bound on log p(x), reverse AIS from the simulating z (an exact draw of p(z|x),
    shared by the reverse chains) an upper bound; the mean gap (nats) bounds the error of either on
    such data. Both directions take the step sizes of one forward pilot of their own."""
    # the simulation has its own seed: sharing the forward run's would start a forward chain at the
    # simulating z, an exact posterior draw, and the lower bound would not be one
    x, z = simulate(model, examples, seed + 2)
    schedule = sigmoid_schedule(steps)
    forward = anneal(model, x, schedule, chains=chains, seed=seed, **options)
    initial = z.unsqueeze(0).expand(chains, *z.shape).contiguous()
    reverse = anneal(model, x, schedule.flip(0), chains=chains, initial_z=initial, seed=seed + 1, **options)
    lower = forward.log_likelihood()
    upper = -reverse.log_likelihood()        # the reverse run estimates Z_0 / Z_1 = 1 / p(x)
    gap, gap_se = mean_and_stderr(upper - lower)
    return {"lower": lower, "upper": upper, "lower_mean": lower.mean().item(),
            "upper_mean": upper.mean().item(), "gap": gap, "gap_se": gap_se, "steps": steps,
            "chains": chains, "examples": examples,
            "gradient_evaluations": (forward.gradient_evaluations + reverse.gradient_evaluations) * chains
            * examples, "seconds": forward.seconds + reverse.seconds}


def rate_distortion_curve(model: LatentVariableModel, x: Tensor, steps: int, beta_max: float = 10.0,
                          beta_min: float = 0.1, points: int = 25, start: float = 1e-3, chains: int = 16,
                          **options) -> dict:
    """The decoder's rate-distortion curve by AIS (Huang et al. 2020): one annealing from m(z) along
    rate_distortion_schedule(steps, beta_max, start) with beta = 1 and the recorded betas added,
    recording at `points` betas log-spaced from beta_min to beta_max (the annealing beta, the weight of
    D: the curve's slope there is dD/dR = -1 / beta) the rate R_beta and distortion D_beta of the
    decoder's optimal encoder p_beta(z|x), their standard errors over x, and log Z_beta (means over x,
    nats). R_beta is an upper bound (log Z_beta a lower one). With beta = 1 on the path, also the AIS
    NLL (ais_nll, ais_nll_se)."""
    if not (isinstance(points, int) and points >= 1):
        raise ValueError(f"points must be an integer >= 1, got {points!r}")
    if not 0 < start <= beta_min <= beta_max:
        raise ValueError(f"need 0 < start <= beta_min <= beta_max, got start={start}, beta_min={beta_min}, "
                         f"beta_max={beta_max}")
    targets = torch.logspace(math.log10(beta_min), math.log10(beta_max), points, dtype=torch.float64)
    targets[0], targets[-1] = beta_min, beta_max
    if start < beta_max:
        betas = rate_distortion_schedule(steps, beta_max, start, through=(1.0, *targets.tolist()))
    else:
        betas = torch.tensor([0.0, beta_max], dtype=torch.float64)
    record = torch.isin(betas, targets).nonzero().flatten().tolist()
    one = (betas == 1.0).nonzero().flatten().tolist()
    run = anneal(model, x, betas, chains=chains, record=record + one, **options)
    on_curve = torch.isin(run.recorded_betas, targets)
    rate, distortion = run.rate[on_curve], run.distortion[on_curve]
    result = {"beta": run.recorded_betas[on_curve].tolist(),
              "rate": rate.mean(1).tolist(), "distortion": distortion.mean(1).tolist(),
              "rate_se": [mean_and_stderr(r)[1] for r in rate],
              "distortion_se": [mean_and_stderr(d)[1] for d in distortion],
              "log_normalizer": run.log_normalizer[on_curve].mean(1).tolist(),
              "acceptance": run.acceptance,
              "gradient_evaluations": run.gradient_evaluations * chains * len(x), "seconds": run.seconds,
              "steps": len(betas) - 1, "chains": chains, "leapfrog": options.get("leapfrog", LEAPFROG),
              "examples": len(x)}
    if one:
        log_px = run.log_normalizer[run.recorded_betas == 1.0][0]
        result["log_px"] = log_px.float()
        mean, se = mean_and_stderr(log_px)
        result.update(ais_nll=-mean, ais_nll_se=se)
    return result


def distortion_above_curve(curve: dict, rate: float, distortion: float) -> float | None:
    """D - D_curve(R): how far (nats) the point (R, D) lies above a rate-distortion curve (a dict with
    lists `rate` and `distortion`, taken piecewise linear in R); None where R is outside the curve's
    rates. An encoder's point of the same decoder lies on or above the decoder's true curve."""
    pairs = sorted(zip(curve["rate"], curve["distortion"], strict=True))
    rates = [r for r, _ in pairs]
    if not rates or not rates[0] <= rate <= rates[-1]:
        return None
    k = max(1, next(i for i, r in enumerate(rates) if r >= rate))
    (r0, d0), (r1, d1) = pairs[k - 1], pairs[k]
    at = d0 if r1 == r0 else d0 + (d1 - d0) * (rate - r0) / (r1 - r0)
    return distortion - at


class _ObservationNoise(torch.nn.Module):
    """d(x|z) = N(x; mean of the wrapped decoder's d(x|z), sigma^2 I)."""

    def __init__(self, decoder: torch.nn.Module, sigma: float):
        super().__init__()
        self.decoder, self.sigma = decoder, sigma

    def forward(self, z: Tensor) -> GaussianLikelihood:
        dist = self.decoder(z)
        if getattr(dist.support, "is_discrete", False):
            raise ValueError(f"an observation noise sigma makes a Gaussian decoder of real-valued data; this "
                             f"decoder's {type(dist).__name__} is over discrete data")
        loc = dist.mean
        log_scale = torch.tensor(math.log(self.sigma), dtype=loc.dtype, device=loc.device)
        return GaussianLikelihood(loc, log_scale, event_dims=len(dist.event_shape), log_scale_min=None)


def with_observation_noise(model: LatentVariableModel, sigma: float) -> LatentVariableModel:
    """A copy of `model` (same class, encoder and marginal, shared weights) whose decoder is
    N(x; mean(z), sigma^2 I), mean(z) the model's decoder mean: states or overrides the observation
    noise of a Gaussian decoder (or of a GAN's generator used as one). The model itself is unchanged."""
    if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not (0 < sigma < math.inf):
        raise ValueError(f"the observation noise sigma must be a positive number, got {sigma!r}")
    noisy = copy.copy(model)
    noisy._modules = dict(model._modules)     # a module of its own, so that the decoder can be swapped
    noisy.decoder = _ObservationNoise(model.decoder, float(sigma))
    return noisy

