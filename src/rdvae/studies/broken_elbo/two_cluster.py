"""The two-cluster toy model of "Fixing a Broken ELBO" (section 4, appendix E), computed exactly.

Data p*(x): a class z* ~ Bernoulli(0.7) (class 0 with probability 0.7, class 1 with 0.3),
h | z* ~ N(mu_z*, sigma^2), x = h discretised into 30 equal bins on [0, 1] (mass outside the
range goes to the end bins). The paper fixes only I(x; z*) = 0.5 nats; here the centres are
0.3 and 0.7 of the range, the two classes share sigma, and sigma is solved for numerically.

Model: K = 30 latent states and the 30 bins, with

    e(z_i | x_j) proportional to exp(-(w_i . x_j - b_i)^2)    (softmax over i)
    d(x_j | z_i) proportional to exp(-(v_i . x_j - c_i)^2)    (softmax over j)
    m(z_i) = pi_i                                              (softmax of free logits)

Readings of w_i x_j (see DiscreteToyModel.form): one-hot x and a table W_ij (the decoder can
represent p*(x) alone: "very flexible nonparametric models" that can autodecode), x the bin's
position and scalar w_i (2K = 60 parameters, as the paper counts the encoder's), or the two
mixed: the encoder as counted, the decoder a table. Every expectation over x is the exact sum
over the 30 bins ("infinite data"):

    R = sum_j p*(x_j) KL(e(.|x_j) || m),   D = -sum_j p*(x_j) sum_i e(z_i|x_j) log d(x_j|z_i).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

BINS = 30
CLASS_PROBS = (0.7, 0.3)
CENTRES = (0.3, 0.7)


@dataclass(frozen=True)
class TwoClusterData:
    """p*(x, z*) over the bins: joint [2, BINS] (float64), with its parameters."""

    sigma: float
    centres: tuple[float, float]
    joint: Tensor

    @property
    def p_x(self) -> Tensor:
        return self.joint.sum(0)

    @property
    def entropy(self) -> float:
        """H(x) in nats."""
        p = self.p_x
        return float(-(p * p.clamp_min(1e-300).log()).sum())

    @property
    def mutual_information(self) -> float:
        """I(x; z*) in nats."""
        return class_information(self.joint)


def bin_edges(bins: int = BINS) -> Tensor:
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    edges[0], edges[-1] = -math.inf, math.inf  # the end bins take the tails
    return edges


def class_information(joint: Tensor) -> float:
    """I(x; z*) of a joint table [classes, bins] in nats."""
    p_x, p_c = joint.sum(0, keepdim=True), joint.sum(1, keepdim=True)
    ratio = joint / (p_c * p_x)
    return float((joint * ratio.clamp_min(1e-300).log()).where(joint > 0, torch.zeros(())).sum())


def two_cluster_joint(sigma: float, centres=CENTRES, class_probs=CLASS_PROBS, bins: int = BINS) -> Tensor:
    from scipy.stats import norm

    edges = bin_edges(bins).numpy()
    rows = [p * torch.from_numpy(norm.cdf(edges[1:], mu, sigma) - norm.cdf(edges[:-1], mu, sigma))
            for p, mu in zip(class_probs, centres, strict=True)]
    return torch.stack(rows)


def two_cluster_data(information: float = 0.5, centres=CENTRES, bins: int = BINS) -> TwoClusterData:
    """The data whose class carries `information` nats about x (sigma solved by bisection)."""
    from scipy.optimize import brentq

    ceiling = -sum(p * math.log(p) for p in CLASS_PROBS)
    if not 0 < information < ceiling:
        raise ValueError(f"I(x; z*) must lie in (0, H(z*) = {ceiling:.4f}) nats, got {information}")

    def gap(sigma: float) -> float:
        return class_information(two_cluster_joint(sigma, centres, bins=bins)) - information

    sigma = brentq(gap, 1e-3, 10.0, xtol=1e-12)
    return TwoClusterData(sigma, tuple(centres), two_cluster_joint(sigma, centres, bins=bins))


FORMS = ("table", "scalar", "mixed")
# which networks of each form read x as the bin's position (scalar w_i); the others as one-hot
SCALAR_NETWORKS = {"table": (), "scalar": ("encoder", "decoder"), "mixed": ("encoder",)}
POSITION_SCALE = 10.0  # scalar form: bin j sits at x_j = (j + 1/2) / BINS * POSITION_SCALE


class DiscreteToyModel(nn.Module):
    """The 30-state encoder, decoder and marginal of appendix E (float64).

    `form` reads w_i x_j in e(z_i|x_j) ~ exp(-(w_i x_j - b_i)^2) (and the decoder's) in one of
    the two ways the text allows:
      "table"  x_j one-hot, w_i a vector: w_i . x_j = W_ij, a free table per state. The decoder
               can represent p*(x) on its own (the paper's "can perfectly autodecode").
      "scalar" x_j the bin's position, w_i a number: 2K = 60 parameters per network, as the
               paper counts them. Each d(x|z_i) is a discretised Gaussian bump, the shape of
               the true class-conditionals, but no single bump can represent p*(x).
      "mixed"  the encoder "scalar" (its 2K = 60 parameters, as the paper states), the decoder
               "table" (so that p_e(x) = p*(x) is reachable while ignoring z, as it also
               states): the one reading under which every claim of appendix E holds. Each
               e(.|x) is then smooth in x's position, and the decoder can autodecode.
    """

    def __init__(self, states: int = BINS, bins: int = BINS, init_scale: float = 1.0,
                 generator: torch.Generator | None = None, form: str = "table"):
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {form!r}")
        self.form = form

        def table(*shape):
            return nn.Parameter(init_scale * torch.randn(*shape, generator=generator, dtype=torch.float64))

        self.scalar = {net: net in SCALAR_NETWORKS[form] for net in ("encoder", "decoder")}
        self.encoder_w = table(states, 1 if self.scalar["encoder"] else bins)
        self.encoder_b = table(states, 1)
        self.decoder_w = table(states, 1 if self.scalar["decoder"] else bins)
        self.decoder_b = table(states, 1)
        self.marginal_logits = table(states)
        with torch.no_grad():  # scalar networks: bump centres b/w spread over the range
            for net, b in (("encoder", self.encoder_b), ("decoder", self.decoder_b)):
                if self.scalar[net]:
                    b.copy_(init_scale * POSITION_SCALE * torch.rand(states, 1, generator=generator,
                                                                     dtype=torch.float64))
        positions = (torch.arange(bins, dtype=torch.float64) + 0.5) / bins * POSITION_SCALE
        self.register_buffer("positions", positions, persistent=False)

    def _energy(self, net: str, w: Tensor, b: Tensor) -> Tensor:
        """(w_i x_j - b_i)^2: [states, bins]; x_j the bin's position or one-hot (w_i . x_j = W_ij)."""
        return (w * self.positions - b) ** 2 if self.scalar[net] else (w - b) ** 2

    def encoder(self) -> Tensor:
        """log e(z_i | x_j): [states, bins], normalised over states."""
        return torch.log_softmax(-self._energy("encoder", self.encoder_w, self.encoder_b), dim=0)

    def decoder(self) -> Tensor:
        """log d(x_j | z_i): [states, bins], normalised over bins."""
        return torch.log_softmax(-self._energy("decoder", self.decoder_w, self.decoder_b), dim=1)

    def marginal(self) -> Tensor:
        """log m(z_i): [states]."""
        return torch.log_softmax(self.marginal_logits, dim=0)

    def rate_distortion(self, p_x: Tensor) -> tuple[Tensor, Tensor]:
        """Exact (R, D) in nats under p*(x)."""
        log_e, log_d, log_m = self.encoder(), self.decoder(), self.marginal()
        e = log_e.exp()
        rate = (p_x * (e * (log_e - log_m[:, None])).sum(0)).sum()
        distortion = -(p_x * (e * log_d).sum(0)).sum()
        return rate, distortion

    @torch.no_grad()
    def summary(self, data: TwoClusterData) -> dict:
        """R, D, the model's p(x) = sum_i m_i d(x|z_i), the aggregate posterior q(z) split by
        the true class, and the two clusters of states: the states where class 0 dominates
        (p*(z* = 0 | z_i) >= 1/2 under q) and the others, with their q-mass (largest first)
        and the fraction of the joint mass on which cluster and class agree."""
        rate, distortion = self.rate_distortion(data.p_x)
        e = self.encoder().exp()
        q_by_class = e @ data.joint.T  # [states, 2]: sum_j e(z_i|x_j) p*(x_j, class)
        q = q_by_class.sum(1)
        first = q_by_class[:, 0] >= q_by_class[:, 1]
        masses = sorted([float(q[first].sum()), float(q[~first].sum())], reverse=True)
        return {
            "rate": float(rate),
            "distortion": float(distortion),
            "elbo": float(-(rate + distortion)),
            "model_p_x": (self.marginal().exp() @ self.decoder().exp()).tolist(),
            "aggregate_posterior": q.tolist(),
            "aggregate_posterior_by_class": q_by_class.T.tolist(),
            "cluster_masses": masses,
            "class_agreement": float(q_by_class[first, 0].sum() + q_by_class[~first, 1].sum()),
        }


def optimal_model_summary(data: TwoClusterData) -> dict:
    """The hand-built model of fig. 2a: two states, e(z|x) = p*(z*|x), d(x|z) = p*(x|z*),
    m = p*(z*); then R = I(x; z*) and D = H(x|z*)."""
    joint = data.joint
    p_x, p_c = joint.sum(0), joint.sum(1)
    posterior = joint / p_x
    log_like = (joint / p_c[:, None]).clamp_min(1e-300).log()
    rate = float((joint * (posterior.clamp_min(1e-300).log() - p_c.log()[:, None])).sum())
    distortion = float(-(joint * log_like).sum())
    return {
        "rate": rate,
        "distortion": distortion,
        "elbo": -(rate + distortion),
        "model_p_x": p_x.tolist(),
        "aggregate_posterior": p_c.tolist(),
        "aggregate_posterior_by_class": torch.diag(p_c).tolist(),
        "cluster_masses": sorted(p_c.tolist(), reverse=True),
        "class_agreement": 1.0,
    }
