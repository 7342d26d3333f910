"""Blocks of the importance-weighted evaluation and the decoder likelihood under them: the block size
changes the speed, never the estimate (same draws: brute force over all samples agrees), and the
no-copy distortion equals torch.distributions' Bernoulli on a copied x."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

from rdvae.components import BernoulliDecoder, StandardNormal
from rdvae.components.decoders import BernoulliLikelihood
from rdvae.evaluate import iw_log_likelihood
from rdvae.evaluate.likelihood import default_rows
from rdvae.model import VAE

EVENT = (1, 3, 3)
LATENT = 2


class ReplayedNormal(Independent):
    """A diagonal Gaussian whose successive `sample((s,))` calls return the next s rows of a fixed
    table of standard-normal draws (scaled and shifted per example): the k draws an example gets do
    not depend on how they are split into calls."""

    def __init__(self, loc, scale, table):
        super().__init__(Normal(loc, scale, validate_args=False), 1, validate_args=False)
        self.table, self.drawn = table, 0

    def sample(self, sample_shape=(1,)):
        (s,) = sample_shape
        eps = self.table[self.drawn:self.drawn + s]
        assert len(eps) == s, "more draws than the table holds"
        self.drawn += s
        return self.base_dist.loc + self.base_dist.scale * eps.unsqueeze(1)


class ReplayEncoder(nn.Module):
    def __init__(self, table):
        super().__init__()
        self.linear = nn.Linear(math.prod(EVENT), 2 * LATENT)
        self.register_buffer("table", table)

    def forward(self, x):
        loc, log_scale = self.linear(x.flatten(1)).chunk(2, dim=-1)
        return ReplayedNormal(loc, (0.5 * log_scale).exp(), self.table)


class TorchBernoulliDecoder(BernoulliDecoder):
    """The same decoder returning torch's own Independent(Bernoulli): the generic distortion path."""

    def forward(self, z):
        base = Bernoulli(logits=self.trunk(z).float(), validate_args=False)
        return Independent(base, len(self.event_shape), validate_args=False)


def _trunk():
    return nn.Sequential(nn.Linear(LATENT, 16), nn.Tanh(), nn.Linear(16, math.prod(EVENT)),
                         nn.Unflatten(1, EVENT))


def _model(samples, decoder=BernoulliDecoder, seed=0):
    torch.manual_seed(seed)
    table = torch.randn(samples, LATENT)
    return VAE(ReplayEncoder(table), decoder(_trunk(), EVENT), StandardNormal(LATENT)).eval()


def _data(n=11, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, *EVENT, generator=g) < 0.4).float()


@torch.no_grad()
def brute_force_log_likelihood(model, x, samples):
    """log (1/k) sum_i d(x|z_i) m(z_i) / e(z_i|x) for each example alone, all k draws at once, with
    torch.distributions' densities, in float64."""
    out = []
    p = Independent(Normal(torch.zeros(LATENT), torch.ones(LATENT)), 1)
    for xb in x:
        q = model.encoder(xb.unsqueeze(0))
        z = q.sample((samples,))[:, 0]                                     # [k, d]
        logits = model.decoder.trunk(z)
        log_d = Independent(Bernoulli(logits=logits), len(EVENT)).log_prob(xb.expand(samples, *EVENT))
        log_w = (log_d + p.log_prob(z) - q.log_prob(z.unsqueeze(1))[:, 0]).double()
        out.append(torch.logsumexp(log_w, 0) - math.log(samples))
    return torch.stack(out)


@pytest.mark.parametrize("samples", [1, 5, 64])
@pytest.mark.parametrize("rows", [None, 1, 3, 7, 64, 65, 200, 10**6])
def test_iw_estimate_does_not_depend_on_the_block_size(samples, rows):
    model, x = _model(samples), _data()
    exact = brute_force_log_likelihood(model, x, samples)
    torch.testing.assert_close(iw_log_likelihood(model, x, samples, rows=rows).double(), exact,
                               atol=1e-5, rtol=0)


def test_iw_estimate_of_the_generic_distortion_path_is_the_same():
    model, x = _model(40, TorchBernoulliDecoder), _data()
    torch.testing.assert_close(iw_log_likelihood(model, x, 40, rows=13).double(),
                               brute_force_log_likelihood(model, x, 40), atol=1e-5, rtol=0)


def test_default_rows_keep_a_block_of_decoder_output_in_cache_on_the_cpu_only():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert default_rows((1, 28, 28), cpu) == 2**20 // 784 == 1337
    assert default_rows((1, 3, 3), cpu) == 8192 == default_rows((1, 28, 28), cuda)
    assert default_rows((3, 1024, 1024), cpu) == 1
    with pytest.raises(ValueError, match="rows"):
        iw_log_likelihood(_model(4), _data(), 4, rows=0)


@pytest.mark.parametrize("samples", [1, 6])
def test_distortion_without_copying_x_equals_torch_bernoulli_on_the_copy(samples):
    fast, generic = _model(samples), _model(samples, TorchBernoulliDecoder)
    generic.load_state_dict(fast.state_dict())
    x = _data(5)
    z = torch.randn(samples, len(x), LATENT)
    a, b = fast.distortion_of(x, z), generic.distortion_of(x, z)
    assert a.shape == b.shape == (samples, len(x))
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    # gradients through the fast path are those of torch's Bernoulli
    ga = torch.autograd.grad(fast.distortion_of(x, z).sum(), list(fast.decoder.parameters()))
    gb = torch.autograd.grad(generic.distortion_of(x, z).sum(), list(generic.decoder.parameters()))
    for one, other in zip(ga, gb, strict=True):
        torch.testing.assert_close(one, other, atol=1e-6, rtol=1e-6)


def test_bernoulli_likelihood_is_torchs_independent_bernoulli():
    g = torch.Generator().manual_seed(0)
    logits = (6 * torch.randn(4, 2, 5, generator=g)).requires_grad_()
    x = torch.rand(3, 4, 2, 5, generator=g).requires_grad_()      # grey values, broadcast over a sample dim
    ours = BernoulliLikelihood(logits, 2)
    theirs = Independent(Bernoulli(logits=logits, validate_args=False), 2)
    torch.testing.assert_close(ours.log_prob(x), theirs.log_prob(x), atol=1e-6, rtol=1e-6)
    for one, other in zip(torch.autograd.grad(ours.log_prob(x).sum(), (logits, x)),
                          torch.autograd.grad(theirs.log_prob(x).sum(), (logits, x)), strict=True):
        torch.testing.assert_close(one, other, atol=1e-6, rtol=1e-6)
    assert ours.batch_shape == (4,) and ours.event_shape == (2, 5)
    assert torch.equal(ours.mean, theirs.mean) and torch.equal(ours.base_dist.probs, torch.sigmoid(logits))
    assert torch.equal(ours.logits, logits) and ours.sample((2,)).shape == (2, 4, 2, 5)
    # batch 4 = 2 draws x 2 examples, sample-major: row s * 2 + b against example b
    two = (x[0, :2].detach() > 0.5).float()
    torch.testing.assert_close(ours.log_prob_repeated(two, 2),
                               theirs.log_prob(two.repeat(2, 1, 1)).reshape(2, 2), atol=1e-6, rtol=1e-6)
