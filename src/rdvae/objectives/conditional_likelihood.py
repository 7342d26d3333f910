"""Fit an encoder to a fixed decoder by conditional likelihood on simulated pairs (the "sleep" phase
of wake-sleep; stage 1 of the GAN-as-decoder experiment, [Re] VAE approximation error, section 4):

    z ~ m(z),  x ~ d(x|z),   loss = -E log e(z|x)

Minimising it over the encoder minimises E_x KL(p(z|x) || e(z|x)) under the model's own data: the
encoder moves toward the decoder's exact posterior (for a linear Gaussian decoder and a Gaussian
encoder with enough capacity it reaches it: the posterior is Gaussian, with a mean linear in x).
Unlike the ELBO, nothing here can move the decoder, which `prepare` freezes together with the
marginal; the decoder is evaluated in eval mode (BatchNorm running statistics), so it stays one fixed
function for the whole run. A step draws as many pairs as the training batch holds examples; the
training data set only the batch size and the length of an epoch. The step reports the rate and
distortion of the simulated x under the encoder, and the conditional log-likelihood as a term.
"""

from __future__ import annotations

import torch

from ..registry import register_objective
from .base import Objective, ObjectiveError, StepResult


class ConditionalLikelihoodObjective(Objective):
    """-mean log e(z|x) over pairs (z, x) drawn from m(z) d(x|z); `noise=False` uses x = the decoder's
    mean (a GAN's g(z)) instead of a draw of d(x|z)."""

    def __init__(self, noise: bool = True):
        if not isinstance(noise, bool):
            raise ObjectiveError(f"noise must be true or false, got {noise!r}")
        self.noise = noise

    def prepare(self, model, train_x) -> None:
        for part in (model.decoder, model.marginal):
            for p in part.parameters():
                p.requires_grad_(False)
        if not any(p.requires_grad for p in model.encoder.parameters()):
            raise ObjectiveError("conditional-likelihood trains the encoder, but it has no trainable "
                                 "parameters")

    def simulate(self, model, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n pairs (z [n, d], x [n, ...]) from the model, the decoder in eval mode."""
        model.decoder.eval()
        with torch.no_grad():
            z = model.marginal_distribution().sample((n,))
            likelihood = model.decoder(z)
            x = likelihood.sample() if self.noise else likelihood.mean
        return z, x

    def __call__(self, model, x, step: int = 0) -> StepResult:
        z, simulated = self.simulate(model, len(x))
        log_q = model.encoder(simulated).log_prob(z)
        with torch.no_grad():
            out = model(simulated)
        return StepResult(-log_q.mean(), out.rate, out.distortion,
                          terms={"conditional_log_likelihood": log_q.detach()})

    def describe(self) -> str:
        return "-log e(z|x), (z, x) ~ m d" + ("" if self.noise else " (x = decoder mean)")


@register_objective("conditional-likelihood", aliases=("sleep",))
def conditional_likelihood_objective(noise: bool = True) -> ConditionalLikelihoodObjective:
    """Train the encoder alone on pairs z ~ m(z), x ~ d(x|z) by maximum conditional likelihood
    log e(z|x) (the decoder and marginal frozen); noise=false feeds the decoder mean instead of a draw."""
    return ConditionalLikelihoodObjective(noise)
