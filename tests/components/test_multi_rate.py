import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rdvae.components.encoders import UNIT_VARIANCE_SHIFT
from rdvae.components.layers import Gated
from rdvae.components.multi_rate import (
    ACTIVATIONS,
    GATE_INITS,
    BetaGate,
    BetaGated,
    PerExampleGating,
    beta_gates,
    conditioned_on,
    decoder_gate,
    gate_layers,
    is_multi_rate,
    multi_rate_decoder,
)
from rdvae.evaluate import evaluate_model
from rdvae.objectives import ObjectiveError
from rdvae.objectives.multi_rate import MultiRateObjective
from rdvae.presets import build_model
from rdvae.train import TrainConfig


def expected_gate(gate: BetaGate, beta: float, a: float = 0.01, b: float = 10.0) -> torch.Tensor:
    """The gate written out by hand: log beta standardized by Uniform[log a, log b]'s moments."""
    mean = (math.log(a) + math.log(b)) / 2
    std = (math.log(b) - math.log(a)) / math.sqrt(12)
    eta = (math.log(beta) - mean) / std
    pre = gate.slope_scale.double() * gate.weight.detach().double() * eta + gate.bias.detach().double()
    if gate.role == "encoder":
        return 1 / (1 + torch.exp(-pre))
    return torch.sqrt(torch.clamp(1 - torch.exp(pre), min=0))


def randomize_gates(module: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for gate in beta_gates(module):   # slopes k w ~ N(0, 1)
            gate.weight.copy_(torch.randn(gate.features, generator=g) / gate.slope_scale)
            # decoder gates: keep most units alive (pre < 0) at the betas tested
            shift = 0.0 if gate.role == "encoder" else -2.5
            gate.bias.copy_(torch.randn(gate.features, generator=g) * 0.5 + shift)


@pytest.mark.parametrize("role", ["encoder", "decoder"])
@pytest.mark.parametrize("beta", [0.01, 0.3, 1.0, 7.0])
def test_gated_linear_is_the_plain_layer_with_rescaled_units(role, beta):
    layer = nn.Linear(6, 5)
    gated = BetaGated(layer, role)
    randomize_gates(gated, seed=int(beta * 100))
    x = torch.randn(4, 6)
    g = expected_gate(gated.gate, beta).float()
    plain = F.linear(x, g[:, None] * layer.weight, g * layer.bias)
    with conditioned_on(gated, beta):
        torch.testing.assert_close(gated(x), plain, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("role", ["encoder", "decoder"])
def test_gated_convolutions_rescale_each_filter(role):
    beta = 0.2
    conv = nn.Conv2d(3, 4, 3, padding=1)
    gated = BetaGated(conv, role)
    randomize_gates(gated, seed=1)
    x = torch.randn(2, 3, 5, 5)
    g = expected_gate(gated.gate, beta).float()
    plain = F.conv2d(x, g[:, None, None, None] * conv.weight, g * conv.bias, padding=1)
    with conditioned_on(gated, beta):
        torch.testing.assert_close(gated(x), plain, rtol=1e-5, atol=1e-6)

    deconv = nn.ConvTranspose2d(3, 4, 3, stride=2)   # weight [in, out, k, k]: out units on dim 1
    gated = BetaGated(deconv, role)
    randomize_gates(gated, seed=2)
    g = expected_gate(gated.gate, beta).float()
    plain = F.conv_transpose2d(x, g[None, :, None, None] * deconv.weight, g * deconv.bias, stride=2)
    with conditioned_on(gated, beta):
        torch.testing.assert_close(gated(x), plain, rtol=1e-5, atol=1e-6)


def test_gated_family_at_fixed_beta_is_the_plain_family_with_scaled_weights():
    """mr-mlp at beta == mlp with every layer's rows and bias scaled by that layer's gates (for a
    gated linear unit a * sigmoid(b): the rows that make a)."""
    shape, beta = (1, 6, 6), 0.37
    torch.manual_seed(5)
    gated = build_model("mr-mlp", shape, latent_dim=3, hidden=[16, 8], latent_gate=False, gate_output=True)
    torch.manual_seed(5)
    plain = build_model("mlp", shape, latent_dim=3, hidden=[16, 8])
    randomize_gates(gated, seed=3)
    wrapped = [m for m in gated.modules() if isinstance(m, BetaGated)]
    linears = [m for m in plain.modules() if isinstance(m, nn.Linear)]
    assert len(wrapped) == len(linears) == 7   # 2 hidden + loc + variance; 2 hidden + output
    with torch.no_grad():
        for w, lin in zip(wrapped, linears, strict=True):
            base = w.layer.layer if isinstance(w.layer, Gated) else w.layer
            torch.testing.assert_close(base.weight, lin.weight)   # same base weights
            g = expected_gate(w.gate, beta).float()
            rows = len(g)   # a GLU layer has 2 * len(g) rows: [a; b]
            assert rows == lin.out_features // (2 if isinstance(w.layer, Gated) else 1)
            lin.weight[:rows].mul_(g[:, None])
            lin.bias[:rows].mul_(g)
        plain.encoder.raw_variance.bias.add_(UNIT_VARIANCE_SHIFT)   # the gated encoder's centring
    x = torch.rand(7, *shape).round()
    torch.manual_seed(0)
    ours = gated(x, samples=2, beta=beta)
    torch.manual_seed(0)
    theirs = plain(x, samples=2)
    torch.testing.assert_close(ours.rate, theirs.rate, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.distortion, theirs.distortion, rtol=1e-5, atol=1e-4)


def test_closed_encoder_output_gates_give_the_prior_and_zero_rate():
    """Gates that close the mean and variance outputs leave N(0, 1) in every dimension: the
    rate is 0 (to the variance floor), at any x; the shift is saved with the weights."""
    model = build_model("mr-mlp", (1, 6, 6), latent_dim=3, hidden=[16])
    with torch.no_grad():
        for head in (model.encoder.loc, model.encoder.raw_variance):
            head.gate.bias.fill_(-60.0)   # sigmoid(-60) ~ 1e-26
    x = torch.rand(5, 1, 6, 6).round()
    with conditioned_on(model, 3.0):
        q = model.encoder(x)
        out = model(x)
    torch.testing.assert_close(q.mean, torch.zeros(5, 3))
    torch.testing.assert_close(q.variance, torch.ones(5, 3))
    assert out.rate.abs().max() < 1e-5
    assert "encoder.variance_shift" in model.state_dict()
    assert "encoder.variance_shift" not in build_model("mlp", (1, 6, 6), hidden=[16]).state_dict()


def test_per_example_betas_match_each_example_at_its_own_beta():
    shape = (1, 6, 6)
    model = build_model("mr-mlp", shape, latent_dim=3, hidden=[16])
    randomize_gates(model, seed=4)
    x = torch.rand(5, *shape).round()
    betas = torch.tensor([0.01, 0.1, 1.0, 3.0, 10.0])
    z = torch.randn(3, 5, 3)   # S = 3 samples: the decoder's batch is S * B, sample-major
    with conditioned_on(model, betas):
        rate = model.encoder(x).stddev
        distortion = model.distortion_of(x, z)
    for i, beta in enumerate(betas.tolist()):
        with conditioned_on(model, beta):
            torch.testing.assert_close(rate[i], model.encoder(x[i:i + 1]).stddev[0])
            torch.testing.assert_close(distortion[:, i], model.distortion_of(x[i:i + 1], z[:, i:i + 1])[:, 0])


def test_gradients_reach_the_gate_parameters():
    model = build_model("mr-mlp", (1, 6, 6), latent_dim=3, hidden=[16])
    x = torch.rand(8, 1, 6, 6).round()
    beta = MultiRateObjective().sample_beta(8)
    out = model(x, beta=beta)
    MultiRateObjective().loss(out.rate, out.distortion, beta).backward()
    gates = beta_gates(model)
    assert {g.role for g in gates} == {"encoder", "decoder"}
    for gate in gates:
        assert gate.weight.grad is not None and gate.weight.grad.abs().sum() > 0
        assert gate.bias.grad.abs().sum() > 0


@pytest.mark.parametrize("role", ["encoder", "decoder"])
def test_gate_gradients_match_finite_differences(role):
    gate = BetaGate(4, role).double()
    with torch.no_grad():
        gate.weight.copy_(torch.tensor([0.5, -1.0, 0.2, 1.5]))
        gate.bias.copy_(torch.tensor([-2.0, -1.0, -0.5, -3.0]))   # decoder gates alive (pre < 0)
    betas = torch.tensor([0.05, 0.7, 4.0], dtype=torch.float64)

    def f(w, b):
        eta = gate.standardize(betas).unsqueeze(-1)
        return ACTIVATIONS[role](eta * w + b)

    assert torch.autograd.gradcheck(f, (gate.weight.detach().clone().requires_grad_(),
                                        gate.bias.detach().clone().requires_grad_()))


@pytest.mark.parametrize("role", ["encoder", "decoder"])
@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_per_example_gating_gradients_match_finite_differences(role, kind):
    """The fused per-example path (hand-written backward) against finite differences, with
    S = 2 samples per example laid out sample-major, and one decoder unit cut by the relu."""
    torch.manual_seed(0)
    batch, units = 3, 4
    eta = torch.randn(batch, dtype=torch.float64)
    weight = torch.tensor([0.5, -1.0, 0.2, 0.3], dtype=torch.float64, requires_grad=True)
    bias = torch.tensor([-2.0, -1.0, -0.7, 2.5], dtype=torch.float64, requires_grad=True)
    shape = (2 * batch, units) if kind == "linear" else (2 * batch, units, 2, 3)
    out = torch.randn(*shape, dtype=torch.float64, requires_grad=True)

    def f(out, weight, bias):
        eta_ones = torch.stack([eta, torch.ones_like(eta)])
        return PerExampleGating.apply(out, eta_ones, weight, bias, role == "decoder", kind == "linear")

    assert torch.autograd.gradcheck(f, (out, weight, bias))
    # and the same values as the plain gate times the layer output
    gate = ACTIVATIONS[role](eta[:, None] * weight + bias).repeat(2, 1)
    expected = out * (gate if kind == "linear" else gate[:, :, None, None])
    torch.testing.assert_close(f(out, weight, bias), expected)


def test_decoder_gate_is_zero_with_zero_gradient_where_relu_cuts():
    pre = torch.tensor([-1.0, 0.0, 0.5], requires_grad=True)
    g = decoder_gate(pre)
    torch.testing.assert_close(g, torch.tensor([math.sqrt(1 - math.exp(-1.0)), 0.0, 0.0]))
    g.sum().backward()
    assert torch.isfinite(pre.grad).all() and pre.grad[1:].eq(0).all() and pre.grad[0] < 0


def test_per_example_betas_are_standardized_once_and_scoped():
    """conditioned_on standardizes a tensor of betas once for every gate; the result equals
    each gate standardizing on its own, and the shared [eta; 1] is gone after the block."""
    torch.manual_seed(0)
    model = build_model("mr-mlp", (1, 6, 6), latent_dim=3, hidden=[16])
    x = torch.rand(5, 1, 6, 6).round()
    betas = torch.tensor([0.01, 0.3, 1.0, 4.0, 10.0])
    gates = beta_gates(model)
    with conditioned_on(model, betas):
        shared = {id(g.eta_ones) for g in gates}
        assert len(shared) == 1
        torch.testing.assert_close(gates[0].eta_ones[0], gates[0].standardize(betas) * 10.0)
        torch.manual_seed(1)
        cached = model(x).distortion
    assert all(g.eta_ones is None and g.beta is None for g in gates)
    for g in gates:   # set by hand: every layer standardizes for itself
        g.beta = betas
    torch.manual_seed(1)
    torch.testing.assert_close(model(x).distortion, cached)


def test_conditioning_is_scoped_and_checked():
    model = build_model("mr-mlp", (1, 6, 6), latent_dim=3, hidden=[16])
    assert is_multi_rate(model) and not is_multi_rate(build_model("mlp", (1, 6, 6), hidden=[16]))
    with conditioned_on(model, 0.5):
        assert all(g.beta == 0.5 for g in beta_gates(model))
        with conditioned_on(model, 2.0):
            assert all(g.beta == 2.0 for g in beta_gates(model))
        assert all(g.beta == 0.5 for g in beta_gates(model))
    assert all(g.beta is None for g in beta_gates(model))
    with pytest.raises(ValueError, match="no beta gates"):
        with conditioned_on(build_model("mlp", (1, 6, 6), hidden=[16]), 1.0):
            pass
    with pytest.raises(ValueError, match="positive"):
        with conditioned_on(model, -1.0):
            pass
    with pytest.raises(ValueError, match="rows reached a gated layer"):
        model(torch.rand(4, 1, 6, 6), beta=torch.ones(3))
    with pytest.raises(TypeError, match="can be gated"):
        BetaGated(nn.ReLU(), "encoder")
    # gating twice does not wrap again
    again = gate_layers(model.encoder, "encoder")
    assert len(beta_gates(again)) == len(beta_gates(model.encoder))


def test_unconditioned_model_is_at_beta_one_and_the_range_is_saved():
    model = build_model("mr-mlp", (1, 6, 6), latent_dim=3, hidden=[16])
    model.set_beta_range(0.1, 100.0)
    randomize_gates(model)
    x = torch.rand(4, 1, 6, 6).round()
    unconditioned = model.encoder(x).mean
    with conditioned_on(model, 1.0):
        torch.testing.assert_close(model.encoder(x).mean, unconditioned)
    with conditioned_on(model, 0.2):
        assert not torch.allclose(model.encoder(x).mean, unconditioned)
    state = model.state_dict()
    mean = (math.log(0.1) + math.log(100.0)) / 2
    assert any(k.endswith("log_beta_mean") for k in state)
    assert all(abs(v.item() - mean) < 1e-6 for k, v in state.items() if k.endswith("log_beta_mean"))


@pytest.mark.parametrize("init", GATE_INITS)
def test_gate_initializations(init):
    torch.manual_seed(0)
    model = build_model("mr-mlp", (1, 6, 6), latent_dim=3, hidden=[64], gate_init=init)
    for gate in beta_gates(model):
        w, b = gate.weight.detach(), gate.bias.detach()
        at_middle = ACTIVATIONS[gate.role](b)   # eta = 0: the middle of the log-beta range
        if init == "open":   # the same gate at every beta
            assert (w == 0).all() and torch.allclose(at_middle, torch.full_like(b, 0.9))
        else:                # slopes ~ U(-1, 1), as nn.Linear(1, C) draws them
            assert w.abs().max() <= 1 and (gate.features < 16 or w.std() > 0.3)
        if init == "random-slopes":
            assert torch.allclose(at_middle, torch.full_like(b, 0.9))
        if init == "paper":
            assert b.abs().max() <= 1 and (gate.features < 16 or b.std() > 0.3)
    with pytest.raises(ValueError, match="gate_init must be one of"):
        BetaGate(4, "encoder", gate_init="zeros")


@pytest.mark.parametrize("role", ["encoder", "decoder"])
def test_slope_scale_is_a_reparameterization_of_the_slopes(role):
    """A gate with slope scale k and weight w is the gate with scale 1 and weight k w, on the
    scalar and the per-example paths; d/dw is k times d/d(slope)."""
    torch.manual_seed(0)
    layer = nn.Linear(6, 5)
    scaled, plain = BetaGated(layer, role, gate_slope_scale=4.0), BetaGated(layer, role, gate_slope_scale=1.0)
    randomize_gates(scaled)
    with torch.no_grad():
        plain.gate.weight.copy_(4.0 * scaled.gate.weight)
        plain.gate.bias.copy_(scaled.gate.bias)
    x, betas = torch.randn(4, 6), torch.tensor([0.02, 0.5, 3.0, 9.0])
    for beta in (0.3, betas):
        with conditioned_on(scaled, beta), conditioned_on(plain, beta):
            y_scaled, y_plain = scaled(x), plain(x)
        torch.testing.assert_close(y_scaled, y_plain)
        y_scaled.sum().backward()
        y_plain.sum().backward()
        torch.testing.assert_close(scaled.gate.weight.grad, 4.0 * plain.gate.weight.grad)
        scaled.zero_grad(), plain.zero_grad()


def test_checkpoints_without_a_slope_scale_load_with_scale_one():
    """A multi-rate model saved before the slope scale existed was trained with k = 1; it loads
    with k = 1 into a model built with the default (10), and its gates are unchanged."""
    torch.manual_seed(0)
    old = build_model("mr-mlp", (1, 6, 6), latent_dim=3, hidden=[16], gate_slope_scale=1.0)
    randomize_gates(old)
    state = {k: v for k, v in old.state_dict().items() if not k.endswith("slope_scale")}
    new = build_model("mr-mlp", (1, 6, 6), latent_dim=3, hidden=[16])
    assert all(g.k == 10.0 for g in beta_gates(new))
    new.load_state_dict(state)
    assert all(g.k == 1.0 and float(g.slope_scale) == 1.0 for g in beta_gates(new))
    x, betas = torch.rand(3, 1, 6, 6).round(), torch.tensor([0.05, 1.0, 8.0])
    with conditioned_on(old, betas), conditioned_on(new, betas):
        torch.testing.assert_close(new.encoder(x).mean, old.encoder(x).mean)
    with pytest.raises(ValueError, match="gate_slope_scale must be a positive number"):
        BetaGate(4, "decoder", gate_slope_scale=0.0)


@pytest.mark.parametrize("family", ["mr-mlp", "mr-conv"])
def test_latent_gate_gates_each_latent_direction(family):
    """With latent_gate the decoder is trunk(g(beta) * (A z + c)), A = I and c = 0 at the start;
    a closed gate makes the decoder ignore that latent direction."""
    torch.manual_seed(0)
    shape = (1, 28, 28) if family == "mr-conv" else (1, 6, 6)
    options = {"conv_width": 0.25} if family == "mr-conv" else {"hidden": [16]}
    model = build_model(family, shape, latent_dim=3, latent_gate=True, **options)
    square, trunk = model.decoder.trunk[0], model.decoder.trunk[1]
    torch.testing.assert_close(square.layer.weight, torch.eye(3))
    randomize_gates(model)
    z = torch.randn(4, 3)
    with conditioned_on(model, 0.4):
        g = expected_gate(square.gate, 0.4).float()
        torch.testing.assert_close(model.decoder(z).base_dist.logits,
                                   trunk(g * square.layer(z)).float(), rtol=1e-5, atol=1e-5)
    with torch.no_grad():   # close direction 1 at every beta: pre >= 0 cuts the sqrt gate
        square.gate.weight[1], square.gate.bias[1] = 0.0, 1.0
    moved = z.clone()
    moved[:, 1] += 3.0
    with conditioned_on(model, 2.0):
        torch.testing.assert_close(model.decoder(moved).base_dist.logits, model.decoder(z).base_dist.logits)
    with pytest.raises(ValueError, match="latent_gate needs the latent dimension"):
        multi_rate_decoder(nn.Linear(3, 3), latent_gate=True)


@pytest.mark.parametrize("latent_gate", [False, True])
def test_gate_output_false_leaves_the_logit_layer_plain(latent_gate):
    """The default gate_output=False: every layer gated but the one that makes the logits."""
    torch.manual_seed(0)
    gated = build_model("mr-mlp", (1, 6, 6), latent_dim=3, hidden=[16], latent_gate=latent_gate,
                        gate_output=True)
    torch.manual_seed(0)
    model = build_model("mr-mlp", (1, 6, 6), latent_dim=3, hidden=[16], latent_gate=latent_gate)
    count = sum(isinstance(m, BetaGated) for m in model.modules())
    assert count == sum(isinstance(m, BetaGated) for m in gated.modules()) - 1
    net = [m for m in model.decoder.modules() if hasattr(m, "net")][0].net
    assert type(net[-1]) is nn.Linear   # the layer that makes the logits
    randomize_gates(model)
    z = torch.randn(4, 3)
    front = model.decoder.trunk[0] if latent_gate else nn.Identity()
    with conditioned_on(model, 3.0):
        logits = model.decoder(z).base_dist.logits.reshape(4, -1)
        torch.testing.assert_close(logits, net[-1](net[:-1](front(z))))


def test_evaluation_at_a_beta_is_deterministic_given_the_seed():
    model = build_model("mr-mlp", (1, 6, 6), latent_dim=3, hidden=[16])
    randomize_gates(model)
    x = torch.rand(40, 1, 6, 6).round()
    first = evaluate_model(model, x, seed=3, beta=0.5, iw_samples=4)
    second = evaluate_model(model, x, seed=3, beta=0.5, iw_samples=4)
    assert first == second and first["beta"] == 0.5
    other = evaluate_model(model, x, seed=3, beta=5.0)
    assert other["rate"] != first["rate"]
    assert all(g.beta is None for g in beta_gates(model))


def test_multi_rate_objective_draws_log_uniform_betas_and_weights_each_rate():
    objective = MultiRateObjective(0.01, 10.0)
    torch.manual_seed(0)
    beta = objective.sample_beta(200_000)
    assert beta.min() >= 0.01 and beta.max() <= 10.0
    log_beta = beta.log()
    lo, hi = math.log(0.01), math.log(10.0)
    assert abs(log_beta.mean().item() - (lo + hi) / 2) < 0.02
    assert abs(log_beta.std().item() - (hi - lo) / math.sqrt(12)) < 0.02
    # a quarter of the mass in each quarter of the log range
    counts = torch.histc(log_beta, bins=4, min=lo, max=hi) / len(beta)
    assert torch.allclose(counts, torch.full((4,), 0.25), atol=0.01)
    rate, distortion = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 20.0, 30.0])
    b = torch.tensor([0.1, 1.0, 10.0])
    assert objective.loss(rate, distortion, b).item() == pytest.approx((10.1 + 22 + 60) / 3)
    with pytest.raises(ObjectiveError, match="does not use target_rate"):
        TrainConfig(multi_rate=True, target_rate=5.0).objective_instance()
    with pytest.raises(ObjectiveError, match="beta range"):
        MultiRateObjective(1.0, 0.5)


def test_gated_conv_family_trains_with_per_example_betas():
    every = build_model("mr-conv", (1, 8, 8), latent_dim=3, latent_gate=False, gate_output=True)
    plain = build_model("---", (1, 8, 8), latent_dim=3)
    wrapped = [m for m in every.modules() if isinstance(m, BetaGated)]
    layers = [m for m in plain.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    assert len(wrapped) == len(layers)   # every layer of the paper's conv family can be gated
    model = build_model("mr-conv", (1, 8, 8), latent_dim=3)   # default: + latent gate, - logit layer
    assert isinstance(model.decoder.trunk[0], BetaGated) and type(model.decoder.trunk[1].net[-1]) is nn.Conv2d
    x = torch.rand(4, 1, 8, 8).round()
    beta = torch.tensor([0.02, 0.3, 2.0, 9.0])
    out = model(x, samples=2, beta=beta)
    MultiRateObjective().loss(out.rate, out.distortion, beta).backward()
    assert all(g.weight.grad.abs().sum() > 0 for g in beta_gates(model))
