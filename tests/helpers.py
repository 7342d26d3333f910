"""Small models with closed forms, shared by the tests; and the skips for tests that need an extra."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch
from torch import nn

from rdvae.components import GaussianDecoder, StandardNormal, diagonal_normal
from rdvae.model import VAE
from rdvae.objectives import BetaObjective


class LinearGaussianEncoder(nn.Module):
    """e(z|x) = N(A x + b, diag(s^2)) on flat x."""

    def __init__(self, data_dim: int, latent_dim: int):
        super().__init__()
        self.linear = nn.Linear(data_dim, latent_dim)
        self.log_scale = nn.Parameter(torch.zeros(latent_dim))

    def forward(self, x):
        loc = self.linear(x)
        return diagonal_normal(loc, self.log_scale.exp().expand_as(loc))


def ppca_vae(data_dim=4, latent_dim=2, sigma=0.5, seed=0) -> tuple[VAE, torch.Tensor, torch.Tensor]:
    """A linear-Gaussian VAE (probabilistic PCA): x = W z + mu + sigma eps, z ~ N(0, I).
    Returns the model, W and mu; log p(x) = log N(x; mu, W W^T + sigma^2 I) in closed form."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(data_dim, latent_dim, generator=g)
    mu = torch.randn(data_dim, generator=g)
    decoder_trunk = nn.Linear(latent_dim, data_dim)
    with torch.no_grad():
        decoder_trunk.weight.copy_(W)
        decoder_trunk.bias.copy_(mu)
    encoder = LinearGaussianEncoder(data_dim, latent_dim)
    model = VAE(encoder, GaussianDecoder(decoder_trunk, (data_dim,), sigma), StandardNormal(latent_dim))
    return model, W, mu


def ppca_log_likelihood(x, W, mu, sigma):
    cov = W @ W.T + sigma**2 * torch.eye(len(mu))
    return torch.distributions.MultivariateNormal(mu, cov).log_prob(x)


def set_exact_posterior(model: VAE, W, sigma):
    """Encoder = the exact posterior N(M^-1 W^T (x - mu) / sigma^2 ... ) of probabilistic PCA."""
    d = W.shape[1]
    M = W.T @ W + sigma**2 * torch.eye(d)
    # posterior: mean = M^-1 W^T (x - mu), cov = sigma^2 M^-1 (diagonal only if M is)
    A = torch.linalg.solve(M, W.T)
    mu = model.decoder.trunk.bias
    with torch.no_grad():
        model.encoder.linear.weight.copy_(A)
        model.encoder.linear.bias.copy_(-A @ mu)
    return sigma**2 * torch.linalg.inv(M)


class Interrupt(Exception):
    """Raised by `stop_at` to cut a training run short, as a crash would."""


def stop_at(step: int):
    """An on_step hook for rdvae.train.train that interrupts the run at `step`."""
    def hook(counters):
        if counters["step"] == step:
            raise Interrupt
    return hook


def kill_at(monkeypatch, step: int) -> None:
    """Make the one loop (rdvae.engine.Loop) raise Interrupt when it is about to take step `step` (a
    kill mid-epoch for any plan; with checkpoint_minutes 0 the last step's checkpoint is on disk)."""
    from rdvae.engine import Loop

    original = Loop.step

    def step_or_die(self, batch, *args, **kwargs):
        if self.counters["step"] == step:
            monkeypatch.setattr(Loop, "step", original)   # the resumed run steps on
            raise Interrupt
        return original(self, batch, *args, **kwargs)

    monkeypatch.setattr(Loop, "step", step_or_die)


class NanAt(BetaObjective):
    """D + R with a NaN loss at the steps `nan_steps(step)` says (to exercise the update guard)."""

    def __init__(self, nan_steps):
        super().__init__(1.0)
        object.__setattr__(self, "nan_steps", nan_steps)

    def loss(self, rate, distortion, step=0):
        loss = super().loss(rate, distortion, step)
        return loss * math.nan if self.nan_steps(step) else loss


# -- optional extras -----------------------------------------------------------------------------------
# `pip install -e '.[dev]' && python -m pytest` (the README) must pass without any other extra: a test
# that needs one skips, naming it. Tests of the error shown when an extra is missing run without it.

def installed(module: str) -> bool:
    """Whether `module` can be imported (found without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):   # its parent package is missing; it is None in sys.modules
        return False


def _reason(module: str, extra: str) -> str:
    return f"needs {module}, from the [{extra}] extra: pip install 'rdvae[{extra}]'"


def needs(module: str, extra: str) -> pytest.MarkDecorator:
    """A mark (for a test, or a case's `pytest.param(..., marks=...)`) that skips it unless `module`,
    which rdvae's extra `extra` installs, is there."""
    return pytest.mark.skipif(not installed(module), reason=_reason(module, extra))


def need(module: str, extra: str):
    """Inside a test or fixture: `module` imported, or the test skipped naming the extra that has it."""
    __tracebackhide__ = True   # the skip is reported at the caller's line
    return pytest.importorskip(module, reason=_reason(module, extra))
