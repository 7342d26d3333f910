"""Marginals m(z) (what most code calls the prior).

Every marginal is a module whose `forward(encoder)` returns a torch Distribution over z with
event shape [latent_dim]. The encoder is passed because the VampPrior is built from it; the
other marginals ignore it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, MixtureSameFamily

from .distributions import DiagonalGaussianMixture, diagonal_normal, is_diagonal_normal


class Marginal(nn.Module):
    latent_dim: int

    def forward(self, encoder: nn.Module) -> Distribution:  # pragma: no cover - interface
        raise NotImplementedError

    def initialize_from_data(self, x: Tensor) -> None:
        """Optional data-dependent initialisation, called once before training starts."""


class StandardNormal(Marginal):
    """Fixed m(z) = N(0, I)."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.register_buffer("loc", torch.zeros(latent_dim), persistent=False)
        self.register_buffer("scale", torch.ones(latent_dim), persistent=False)

    def forward(self, encoder: nn.Module | None = None) -> Distribution:
        return diagonal_normal(self.loc, self.scale)


class GaussianMixtureMarginal(Marginal):
    """Learned m(z) = sum_k softmax(w)_k N(mu_k, diag(sigma_k^2))."""

    def __init__(self, latent_dim: int, components: int = 16):
        super().__init__()
        self.latent_dim = latent_dim
        self.logits = nn.Parameter(torch.zeros(components))
        self.loc = nn.Parameter(torch.randn(components, latent_dim))
        self.log_scale = nn.Parameter(torch.zeros(components, latent_dim))

    def forward(self, encoder: nn.Module | None = None) -> Distribution:
        return DiagonalGaussianMixture(self.logits, self.loc, self.log_scale.exp())


class VampPrior(Marginal):
    """m(z) = sum_i w_i e(z | phi_i), learned pseudo-inputs phi and softmax weights w
    (Tomczak & Welling 2018; the paper's (v) marginal, appendix F.3).

    Pseudo-inputs are kept in the data range [0, 1] through a sigmoid.
    """

    def __init__(self, latent_dim: int, event_shape: Sequence[int], pseudo_inputs: int = 500):
        super().__init__()
        self.latent_dim = latent_dim
        self.pseudo_input_logits = nn.Parameter(0.1 * torch.randn(pseudo_inputs, *event_shape))
        self.logits = nn.Parameter(torch.zeros(pseudo_inputs))

    @property
    def pseudo_inputs(self) -> Tensor:
        return torch.sigmoid(self.pseudo_input_logits)

    def initialize_from_data(self, x: Tensor) -> None:
        """Start the pseudo-inputs at random training examples (softened away from 0 and 1)."""
        k = self.pseudo_input_logits.shape[0]
        idx = torch.randint(len(x), (k,), device=x.device)
        with torch.no_grad():
            self.pseudo_input_logits.copy_(torch.logit(x[idx].float().clamp(0.05, 0.95)))

    def forward(self, encoder: nn.Module) -> Distribution:
        components = encoder(self.pseudo_inputs)
        if is_diagonal_normal(components):
            base = components.base_dist
            return DiagonalGaussianMixture(self.logits, base.loc, base.scale)
        return MixtureSameFamily(Categorical(logits=self.logits), components, validate_args=False)
