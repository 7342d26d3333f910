"""Estimators against the exact gradient from enumerating every state of a small problem.

Each estimator's mean over many independent draws must agree with the exact gradient within
Z_BOUND standard errors in every coordinate (a fixed seed makes the check deterministic);
DisARM must have the lowest variance of the unbiased ones and the Gumbel estimator's bias
must be plainly visible.
"""

import math

import pytest
import torch

from rdvae.components.discrete import bernoulli_code, one_hot_categorical
from rdvae.estimators import (
    UNBIASED,
    TemperatureSchedule,
    arm,
    disarm,
    exact_expectation,
    gumbel_straight_through,
    latent_states,
    reinforce_loo,
)

Z_BOUND = 4.5          # |mean - exact| / stderr, over 6 coordinates x 3 estimators
DRAWS = 20_000
LOGITS = torch.tensor([0.3, -1.2, 2.0, -0.4, 0.8, -2.5])
W = torch.tensor([1.0, -0.7, 0.5, 1.3, -1.1, 0.9])


def f_nonseparable(b):
    """Interactions between bits of every order: squared linear term, products, a sine."""
    s = b @ W
    return (s - 0.4) ** 2 + 2.0 * b[..., 0] * b[..., 3] - 1.5 * b[..., 1] * b[..., 2] * b[..., 4] \
        + torch.sin(3.0 * s)


def exact_gradient(logits, f):
    a = logits.clone().requires_grad_()
    value = exact_expectation(bernoulli_code(a), f).value
    (grad,) = torch.autograd.grad(value.sum(), a)
    return value.detach(), grad


def per_draw_gradients(estimator, logits, f, draws=DRAWS, seed=0, **options):
    """One independent estimate per row: logits repeated `draws` times as a leaf [draws, d]."""
    torch.manual_seed(seed)
    a = logits.detach().repeat(draws, 1).requires_grad_()
    estimate = estimator(bernoulli_code(a), f, **options)
    (grad,) = torch.autograd.grad(estimate.value.sum(), a)
    return estimate.value.detach(), grad


def z_scores(samples, exact):
    stderr = samples.std(0) / math.sqrt(len(samples))
    return (samples.mean(0) - exact) / stderr


ESTIMATORS = {"reinforce": reinforce_loo, "arm": arm, "disarm": disarm}


@pytest.fixture(scope="module")
def gradients():
    exact_value, exact_grad = exact_gradient(LOGITS, f_nonseparable)
    out = {name: per_draw_gradients(est, LOGITS, f_nonseparable) for name, est in ESTIMATORS.items()}
    out["gumbel"] = per_draw_gradients(gumbel_straight_through, LOGITS, f_nonseparable, temperature=1.0)
    return exact_value, exact_grad, out


def test_exact_gradient_matches_the_closed_form_for_a_separable_function():
    # E[sum_i c_i b_i] = sum_i c_i sigmoid(a_i): gradient c_i sigmoid'(a_i)
    c = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0, 0.25])
    value, grad = exact_gradient(LOGITS, lambda b: b @ c)
    p = torch.sigmoid(LOGITS)
    torch.testing.assert_close(value, (c * p).sum())
    torch.testing.assert_close(grad, c * p * (1 - p))
    assert latent_states(bernoulli_code(LOGITS)).shape == (64, 6)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_unbiased_estimators_agree_with_the_exact_gradient(gradients, name):
    exact_value, exact_grad, out = gradients
    values, grads = out[name]
    assert z_scores(grads, exact_grad).abs().max() < Z_BOUND
    assert z_scores(values.unsqueeze(-1), exact_value).abs().max() < Z_BOUND  # the value too


def test_disarm_has_the_lowest_variance_of_the_unbiased_estimators(gradients):
    _, _, out = gradients
    variance = {name: out[name][1].var(0).sum().item() for name in ESTIMATORS}
    assert variance["disarm"] < variance["arm"]
    assert variance["disarm"] < variance["reinforce"]
    assert set(ESTIMATORS) <= set(UNBIASED)


def test_gumbel_straight_through_bias_is_visible(gradients):
    _, exact_grad, out = gradients
    values, grads = out["gumbel"]
    assert z_scores(grads, exact_grad).abs().max() > 5 * Z_BOUND
    # its forward value is a true draw, so the value itself is unbiased
    assert z_scores(values.unsqueeze(-1), exact_gradient(LOGITS, f_nonseparable)[0]).abs().max() < Z_BOUND


def test_passes_average_independent_estimates():
    _, exact_grad = exact_gradient(LOGITS, f_nonseparable)
    _, one = per_draw_gradients(disarm, LOGITS, f_nonseparable, draws=4000, seed=1)
    _, ten = per_draw_gradients(disarm, LOGITS, f_nonseparable, draws=4000, seed=2, passes=10)
    ratio = one.var(0).sum() / ten.var(0).sum()
    assert 7 < ratio < 14  # ten independent passes: a tenth of the variance
    assert z_scores(ten, exact_grad).abs().max() < Z_BOUND


def test_reinforce_and_gumbel_on_categorical_latents():
    logits = torch.tensor([0.5, -1.0, 1.5, 0.0, -0.3])
    table = torch.tensor([2.0, -1.0, 0.5, 3.0, -2.0])

    def f(z):
        return (z @ table) ** 2

    a = logits.clone().requires_grad_()
    (exact_grad,) = torch.autograd.grad(exact_expectation(one_hot_categorical(a), f).value.sum(), a)
    torch.manual_seed(0)
    rows = logits.repeat(DRAWS, 1).requires_grad_()
    (grads,) = torch.autograd.grad(reinforce_loo(one_hot_categorical(rows), f).value.sum(), rows)
    assert z_scores(grads, exact_grad).abs().max() < Z_BOUND
    rows = logits.repeat(DRAWS, 1).requires_grad_()
    est = gumbel_straight_through(one_hot_categorical(rows), f, temperature=1.0)
    (grads,) = torch.autograd.grad(est.value.sum(), rows)
    assert z_scores(grads, exact_grad).abs().max() > 5 * Z_BOUND
    with pytest.raises(TypeError, match="factorized Bernoulli"):
        disarm(one_hot_categorical(logits), f)


def test_temperature_schedule_anneals_to_its_floor():
    schedule = TemperatureSchedule(initial=1.0, minimum=0.1, rate=1e-3)
    temps = [schedule(step) for step in (0, 500, 1000, 2000, 5000)]
    assert temps[0] == 1.0 and all(a > b for a, b in zip(temps[:3], temps[1:4], strict=True))
    assert temps[-1] == 0.1
    with pytest.raises(ValueError, match="temperature"):
        TemperatureSchedule(initial=0.0)


@pytest.mark.parametrize("categorical", [False, True])
def test_straight_through_draws_are_exactly_binary_in_the_forward_pass(categorical):
    """hard + (soft - soft.detach()) is exactly hard: a discontinuous decoder sees true codes."""
    from torch.distributions import Bernoulli, Independent, OneHotCategorical

    from rdvae.estimators.relaxation import relaxed_straight_through

    torch.manual_seed(0)
    logits = torch.randn(64, 16, requires_grad=True)
    q = OneHotCategorical(logits=logits) if categorical else Independent(Bernoulli(logits=logits), 1)
    z = relaxed_straight_through(q, temperature=0.37, samples=50)
    assert bool(((z == 0) | (z == 1)).all())
    z.sum().backward()
    assert logits.grad.abs().sum() > 0
