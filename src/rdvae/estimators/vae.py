"""DiscreteVAE: a VAE over discrete latents whose distortion carries a gradient estimator.

The trainer minimises an objective of (rate, distortion). With discrete z the rate is the analytic
KL (exact gradient), and the forward pass returns

    distortion = D(b) + (s - s.detach())

where D(b) is the distortion at the drawn codes (decoder gradients as usual) and s is the
estimator's surrogate, so the encoder receives the estimator's estimate of grad E[D]. The value
is unchanged, so every objective linear in the distortion, the trainer, the evaluators and
the results tables work as they are.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..components.marginals import Marginal
from ..model import VAE, RateDistortion, analytic_kl
from .antithetic import arm, disarm
from .enumeration import exact_expectation, exact_log_likelihood, exact_posterior
from .estimate import Estimate
from .relaxation import TemperatureSchedule, gumbel_straight_through
from .score_function import reinforce_loo

ESTIMATORS = {"exact": exact_expectation, "reinforce": reinforce_loo, "arm": arm, "disarm": disarm,
               "gumbel": gumbel_straight_through}


class DiscreteVAE(VAE):
    """VAE(encoder, decoder, marginal) over discrete z, trained with a chosen estimator.

    estimator: exact | reinforce | arm | disarm | gumbel. passes: independent estimates
    averaged per step; after `refine_after_steps` training steps, `refine_passes` are used
    instead (the [Re] protocol: 1000 epochs with one pass, then 500 with ten). temperature,
    min_temperature, anneal_rate: the Gumbel-softmax schedule. Training steps are counted in
    a buffer saved with the weights, so schedules resume exactly.

    Evaluation (no gradient) draws `samples` codes per example, or enumerates all states
    with the exact estimator, so the reported distortion is exact there.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, marginal: Marginal,
                 estimator: str = "disarm", passes: int = 1, refine_passes: int | None = None,
                 refine_after_steps: int | None = None, temperature: float = 1.0,
                 min_temperature: float = 0.1, anneal_rate: float = 1e-4, analytic_rate: bool = True):
        if not analytic_rate:
            raise ValueError("discrete latents are trained with the analytic rate (their gradient "
                             "estimators act on the distortion); analytic_rate must be true")
        super().__init__(encoder, decoder, marginal, analytic_rate=True)
        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
        for name, value in (("passes", passes), ("refine_passes", refine_passes),
                            ("refine_after_steps", refine_after_steps)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.estimator_name = estimator
        self.passes, self.refine_passes, self.refine_after_steps = passes, refine_passes, refine_after_steps
        self.temperature = TemperatureSchedule(temperature, min_temperature, anneal_rate)
        self.register_buffer("training_steps", torch.zeros((), dtype=torch.long))

    def current_passes(self) -> int:
        step = int(self.training_steps)
        if self.refine_passes is not None and self.refine_after_steps is not None \
                and step >= self.refine_after_steps:
            return self.refine_passes
        return self.passes

    def current_temperature(self) -> float:
        return self.temperature(int(self.training_steps))

    def expected_distortion(self, x: Tensor, q, samples: int = 1) -> Estimate:
        """E_q[D(x, z)] per example: exact, estimated with gradients (training), or a plain
        Monte Carlo average over `samples` draws (evaluation)."""
        def f(z):
            return self.distortion_of(x, z)

        if self.estimator_name == "exact":
            return exact_expectation(q, f)
        if torch.is_grad_enabled() and self.training:
            estimate = ESTIMATORS[self.estimator_name](
                q, f, passes=self.current_passes(), temperature=self.current_temperature())
            self.training_steps += 1
            return estimate
        z = q.sample((samples,))
        return Estimate(f(z).mean(0), z)

    def forward(self, x: Tensor, samples: int = 1) -> RateDistortion:
        q = self.encoder(x)
        p = self.marginal_distribution()
        rate = analytic_kl(q, p)
        if rate is None:
            raise TypeError(
                f"the rate of discrete latents needs an analytic KL({type(q).__name__} || "
                f"{type(p).__name__}); register one with torch.distributions.kl.register_kl")
        estimate = self.expected_distortion(x, q, samples)
        return RateDistortion(rate=rate, distortion=estimate.value, z=estimate.z)

    @torch.no_grad()
    def exact_log_likelihood(self, x: Tensor) -> Tensor:
        """log p(x) = log sum_z m(z) d(x|z) by enumerating every state: [B]."""
        return exact_log_likelihood(self.marginal_distribution(), lambda z: self.distortion_of(x, z), len(x))

    @torch.no_grad()
    def exact_posterior(self, x: Tensor) -> Tensor:
        """p(z|x) for every state (rows) and example (columns): [S, B]."""
        return exact_posterior(self.marginal_distribution(), lambda z: self.distortion_of(x, z), len(x))
