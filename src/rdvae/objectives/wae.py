"""WAE-MMD: the Wasserstein auto-encoder with the MMD penalty (Tolstikhin et al., "Wasserstein
Auto-Encoders", ICLR 2018, Algorithm 2):

    loss = mean_n D_n + lambda MMD^2_u({z_n}, {z~_n})

where z_n is example n's code (z_n ~ e(z|x_n) with encoder='gaussian'; the posterior mean with
encoder='deterministic', which the decoder then decodes), z~_1..z~_B are B draws from the model's
marginal m(z), and MMD^2_u is the unbiased U-statistic (Gretton et al. 2012, eq. 3):

    MMD^2_u = sum_{i != j} k(z_i, z_j) / (n (n-1)) + sum_{i != j} k(z~_i, z~_j) / (m (m-1))
              - 2 sum_{i, j} k(z_i, z~_j) / (n m)

Kernels, with L = 2 d s^2 (d the latent dimension, s = kernel_scale): L is E||z - z'||^2 for two
draws from N(0, s^2 I), the paper's C = 2 d sigma_z^2 for that marginal (s = 1: N(0, I)):

    imq   k(z, z') = L / (L + ||z - z'||^2)     inverse multiquadratic, the paper's kernel
    rbf   k(z, z') = exp(-||z - z'||^2 / L)     = exp(-||z - z'||^2 / (2 h^2)) with h^2 = d s^2

multiscale=True sums the kernel over the lengths c L, c in {0.1, 0.2, 0.5, 1, 2, 5, 10} (the sum
the authors' code uses for the IMQ kernel; a sum of characteristic kernels is one).

The distortion D is the model's -log d(x|z) in nats, where the paper has a cost c(x, G(z)) such as
the squared error: the paper's lambda = 10 (MNIST; 100 for CelebA) was set against that cost's scale,
so tune mmd_weight for yours. The marginal is only sampled: a learned marginal (mixture, VampPrior)
gets no gradient from this objective, as WAE's prior is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.distributions import Distribution

from ..registry import register_objective
from .base import Objective, ObjectiveError, StepResult, choice, number, training_head

KERNELS = ("imq", "rbf")
ENCODERS = ("gaussian", "deterministic")
MULTISCALE = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """||a_i - b_j||^2 for a [..., n, d] and b [..., m, d] -> [..., n, m] (one matrix product)."""
    cross = a @ b.transpose(-1, -2)
    return (a.square().sum(-1).unsqueeze(-1) + b.square().sum(-1).unsqueeze(-2) - 2.0 * cross).clamp_min(0.0)


@dataclass(frozen=True)
class MMDKernel:
    """k(z, z') of the MMD penalty (see the module docstring): `kernel` imq | rbf, its length set by
    kernel_scale s (L = 2 d s^2), summed over the seven lengths c L when multiscale."""

    kernel: str = "imq"
    kernel_scale: float = 1.0
    multiscale: bool = False

    def __post_init__(self):
        choice("kernel", self.kernel, KERNELS)
        number("kernel_scale", self.kernel_scale)
        if not isinstance(self.multiscale, bool):
            raise ObjectiveError(f"multiscale must be true or false, got {self.multiscale!r}")

    def lengths(self, latent_dim: int) -> tuple[float, ...]:
        """The squared lengths L (one, or seven when multiscale) for codes of `latent_dim` dimensions."""
        base = 2.0 * latent_dim * self.kernel_scale ** 2
        return tuple(c * base for c in (MULTISCALE if self.multiscale else (1.0,)))

    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        """k(a_i, b_j): a [..., n, d], b [..., m, d] -> [..., n, m]."""
        r2 = squared_distances(a, b)
        total = torch.zeros_like(r2)
        for length in self.lengths(a.shape[-1]):
            total = total + (length / (length + r2) if self.kernel == "imq" else torch.exp(-r2 / length))
        return total

    def describe(self) -> str:
        return f"{self.kernel}{' multiscale' if self.multiscale else ''}, s={self.kernel_scale:g}"


def mmd2_unbiased(x: Tensor, y: Tensor, kernel: MMDKernel) -> Tensor:
    """The unbiased U-statistic of MMD^2 between the samples x [..., n, d] and y [..., m, d]
    (n, m >= 2) -> [...]. Its expectation is MMD^2(P, Q) exactly; it can be negative."""
    n, m = x.shape[-2], y.shape[-2]
    if n < 2 or m < 2:
        raise ValueError(f"the unbiased MMD^2 needs at least 2 points in each sample, got {n} and {m}")

    def within(k: Tensor, size: int) -> Tensor:
        return (k.sum((-2, -1)) - k.diagonal(dim1=-2, dim2=-1).sum(-1)) / (size * (size - 1))

    return within(kernel(x, x), n) + within(kernel(y, y), m) - 2.0 * kernel(x, y).mean((-2, -1))


def _discrete(dist: Distribution) -> bool:
    try:
        return bool(dist.support.is_discrete)
    except NotImplementedError:   # a distribution that does not state its support: taken as continuous
        return False


@dataclass(frozen=True)
class WAEObjective(Objective):
    """mean(D) + mmd_weight * MMD^2_u(codes, draws of m(z)) (module docstring). No capability is
    required beyond the model contract (rdvae.protocols): e(z|x) from `model.encoder`, m(z) from
    `model.marginal_distribution()`, the distortion from `model(x)` or `model.distortion_of`.

    StepResult: the loss; `rate` = the per-example rate the model computes, its KL(e(z|x) || m(z))
    (analytic where torch has it): what the posterior would cost as a code, reported, not in the loss;
    `distortion` = the per-example D of the codes the loss used (at z ~ e(z|x), or at the posterior
    mean with encoder='deterministic'); terms['mmd'] = the batch's MMD^2_u (logged as train_mmd).

    encoder='gaussian' (z ~ e(z|x)) needs a reparameterized e(z|x) (rsample); 'deterministic' needs a
    posterior mean that carries the encoder's gradient (a Gaussian encoder's loc; not the Monte Carlo
    mean of an IAF posterior) and costs one more forward pass of the model, without gradients, for the
    reported rate. With 'deterministic' the encoder's variance gets no gradient, while the per-epoch
    evaluation (and eval) measure D at z ~ e(z|x) as for every model, so they differ from the training
    D. Both need continuous latents (prepare checks). A batch of one example has no MMD^2_u: its
    penalty is 0.
    """

    mmd_weight: float = 10.0
    kernel: MMDKernel = field(default_factory=MMDKernel)
    encoder: str = "gaussian"

    def __post_init__(self):
        number("mmd_weight", self.mmd_weight, strict=False)
        if not isinstance(self.kernel, MMDKernel):
            raise ObjectiveError(f"kernel must be an MMDKernel, got {self.kernel!r}")
        choice("encoder", self.encoder, ENCODERS)

    def prepare(self, model, train_x: Tensor) -> None:
        """Refuse encoders and marginals this objective cannot use, naming them."""
        what = f"the wae-mmd objective with encoder={self.encoder!r}"
        with torch.enable_grad():
            q = model.encoder(training_head(train_x))
            name = f"the encoder {type(model.encoder).__name__} (its e(z|x): {type(q).__name__})"
            marginal = model.marginal_distribution()
            if _discrete(q) or _discrete(marginal):
                raise ObjectiveError(
                    f"{what} needs continuous latents (MMD between codes and draws of m(z) in R^d); "
                    f"{name} with the marginal {type(model.marginal).__name__} (its m(z): "
                    f"{type(marginal).__name__}) has discrete ones; use a family with a continuous "
                    "encoder and marginal")
            if self.encoder == "gaussian" and not q.has_rsample:
                raise ObjectiveError(f"{what} needs a reparameterized posterior (rsample); {name} has none; "
                                     "use encoder='deterministic' or a Gaussian encoder")
            if self.encoder == "deterministic":
                try:
                    mean = q.mean
                except NotImplementedError:
                    raise ObjectiveError(f"{what} needs the posterior mean; {name} has none; use "
                                         "encoder='gaussian'") from None
                if not mean.requires_grad and any(p.requires_grad for p in model.encoder.parameters()):
                    raise ObjectiveError(
                        f"{what} needs a posterior mean that carries the encoder's gradient; {name} gives "
                        "one without (e.g. a Monte Carlo estimate); use encoder='gaussian'")

    def mmd(self, codes: Tensor, draws: Tensor) -> Tensor:
        """MMD^2_u of the batch's codes [B, d] against draws of m(z) [M, d], in float32 at least."""
        dtype = torch.promote_types(codes.dtype, torch.float32)
        return mmd2_unbiased(codes.to(dtype), draws.to(dtype), self.kernel)

    def __call__(self, model, x: Tensor, step: int = 0) -> StepResult:
        if self.encoder == "gaussian":
            out = model(x)
            codes, rate, distortion = out.z[0], out.rate, out.distortion
        else:
            codes = model.encoder(x).mean
            distortion = model.distortion_of(x, codes.unsqueeze(0))[0]
            with torch.no_grad():
                rate = model(x).rate
        draws = model.marginal_distribution().sample((len(x),))
        mmd = self.mmd(codes, draws) if len(x) >= 2 else distortion.new_zeros((), dtype=torch.float32)
        loss = distortion.float().mean() + self.mmd_weight * mmd
        return StepResult(loss, rate, distortion, {"mmd": mmd.detach()})

    def validation_loss(self, rate: float, distortion: float) -> float:
        """What a plateau criterion watches: the distortion. The MMD term is a statistic of a batch
        that the per-epoch evaluation does not compute, and the rate is not part of this objective
        (it may keep rising as the encoder's variances shrink), so R + D would read as a plateau
        or a regression while the WAE objective still improves."""
        return distortion

    def describe(self) -> str:
        return f"D + {self.mmd_weight:g} MMD^2[{self.kernel.describe()}] ({self.encoder} codes)"


@register_objective("wae-mmd", aliases=("wae",))
def wae_mmd_objective(mmd_weight: float = 10.0, kernel: str = "imq", kernel_scale: float = 1.0,
                      multiscale: bool = False, encoder: str = "gaussian") -> WAEObjective:
    """WAE-MMD (Tolstikhin et al. 2018): D + mmd_weight MMD^2_u(codes, m(z) draws), the unbiased
    U-statistic. kernel imq (C = 2 d kernel_scale^2, the paper's) or rbf (2 h^2 = the same C);
    multiscale sums it over C x {0.1 .. 10}; encoder gaussian (z ~ e(z|x)) or deterministic (the
    posterior mean, decoded). Reports the model's KL as the rate; plateaus watch the distortion."""
    return WAEObjective(mmd_weight, MMDKernel(kernel, kernel_scale, multiscale), encoder)
