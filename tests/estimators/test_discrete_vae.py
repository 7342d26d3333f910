"""The estimators wired through a DiscreteVAE's full loss (analytic rate + estimated
distortion), checked against the exact gradient by enumerating all 2^5 codes."""

import math

import pytest
import torch
from torch import nn

from rdvae.components import BernoulliDecoder
from rdvae.components.discrete import BernoulliEncoder, BernoulliMarginal, IdentityTrunk
from rdvae.estimators import DiscreteVAE

BITS, PIXELS = 5, 6
CHUNKS, REPLICAS = 30, 400
Z_BOUND = 5.0  # t-statistic over CHUNKS chunk means, for ~140 parameters


def tiny_model(estimator: str, **options) -> DiscreteVAE:
    torch.manual_seed(3)
    decoder = BernoulliDecoder(nn.Sequential(nn.Linear(BITS, 8), nn.Tanh(), nn.Linear(8, PIXELS)), (PIXELS,))
    return DiscreteVAE(BernoulliEncoder(IdentityTrunk(PIXELS), BITS), decoder,
                       BernoulliMarginal(BITS, learned=True), estimator=estimator, **options)


def loss_gradient(model: DiscreteVAE, x: torch.Tensor) -> torch.Tensor:
    model.zero_grad()
    out = model(x)
    (out.rate + out.distortion).mean().backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.fixture(scope="module")
def data():
    return torch.tensor([[1, 0, 1, 1, 0, 0], [0, 1, 1, 0, 1, 0], [1, 1, 0, 0, 0, 1.0]])


@pytest.fixture(scope="module")
def exact(data):
    return loss_gradient(tiny_model("exact"), data)


@pytest.mark.parametrize("estimator", ["reinforce", "arm", "disarm"])
def test_full_loss_gradient_is_unbiased(data, exact, estimator):
    model = tiny_model(estimator)
    torch.manual_seed(0)
    x = data.repeat(REPLICAS, 1)  # the mean loss over replicas: an average of independent estimates
    chunks = torch.stack([loss_gradient(model, x) for _ in range(CHUNKS)])
    stderr = chunks.std(0) / math.sqrt(CHUNKS)
    z = (chunks.mean(0) - exact) / stderr.clamp_min(1e-12)
    moving = stderr > 0  # parameters the loss depends on
    assert moving.sum() > 100
    assert z[moving].abs().max() < Z_BOUND
    # the marginal's logits get the exact rate gradient: no estimator noise at all
    n_marginal = BITS
    torch.testing.assert_close(chunks[:, -n_marginal:].std(0), torch.zeros(n_marginal), atol=1e-6, rtol=0)


def test_full_loss_gumbel_gradient_is_biased(data, exact):
    model = tiny_model("gumbel", temperature=1.0, anneal_rate=0.0)
    torch.manual_seed(0)
    x = data.repeat(REPLICAS, 1)
    chunks = torch.stack([loss_gradient(model, x) for _ in range(CHUNKS)])
    z = (chunks.mean(0) - exact) / (chunks.std(0) / math.sqrt(CHUNKS)).clamp_min(1e-12)
    assert z.abs().max() > 4 * Z_BOUND


def test_forward_value_is_the_elbo_and_evaluation_is_exact_with_enumeration(data):
    model = tiny_model("exact")
    with torch.no_grad():
        out = model(data)
        log_px = model.exact_log_likelihood(data)
        posterior = model.exact_posterior(data)
    assert (out.elbo <= log_px + 1e-5).all()
    torch.testing.assert_close(posterior.sum(0), torch.ones(3))
    # the gap is KL(e(z|x) || p(z|x)), by enumeration
    from rdvae.estimators import latent_states
    q = model.encoder(data)
    states = latent_states(q)
    log_q = q.log_prob(states.unsqueeze(1))
    kl = (log_q.exp() * (log_q - posterior.log())).sum(0)
    torch.testing.assert_close(log_px - out.elbo, kl, atol=1e-5, rtol=1e-5)


def test_gumbel_temperature_anneals_with_training_steps_and_passes_switch(data):
    model = tiny_model("gumbel", temperature=1.0, min_temperature=0.2, anneal_rate=0.5,
                       passes=1, refine_passes=4, refine_after_steps=3)
    temps, passes = [], []
    for _ in range(5):
        temps.append(model.current_temperature())
        passes.append(model.current_passes())
        model(data).distortion.sum().backward()
    assert temps[0] == 1.0 and temps[1] < temps[0] and temps[-1] == pytest.approx(max(0.2, math.exp(-2)))
    assert passes == [1, 1, 1, 4, 4]
    assert "training_steps" in model.state_dict()  # saved with the weights: schedules resume
    with torch.no_grad():
        model.eval()
        model(data)
    assert int(model.training_steps) == 5  # evaluation does not advance the schedule
    with pytest.raises(ValueError, match="unknown estimator"):
        tiny_model("rebar")
