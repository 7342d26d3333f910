import math

import pytest
import torch
from torch.distributions import Normal

from rdvae.components import (
    GaussianDecoder,
    effective_beta,
    mlp_gaussian_decoder,
    reconstruction_rmse,
    soft_clip,
)
from rdvae.device import seeded
from rdvae.presets import build_model

SHAPE = (1, 4, 4)


def gaussian_vae(variance, seed=0, **options):
    torch.manual_seed(seed)
    return build_model("mlp-gauss", SHAPE, latent_dim=3, hidden=[16], variance=variance, **options)


def data(n=32, seed=1):
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(seed))


def batch_mse(model, x, seed):
    """MSE of the decoder means for the z that model(x) draws under `seed`."""
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(seed)
        z = model.encoder(x).rsample((1,))
        return (model.decoder.trunk(z[0]) - x).square().mean()


def test_soft_clip_is_a_smooth_lower_bound():
    values = torch.tensor([-100.0, -6.0, 0.0, 3.0])
    clipped = soft_clip(values, -6.0)
    assert clipped[0] == pytest.approx(-6.0, abs=1e-6)
    assert clipped[1] == pytest.approx(-6.0 + math.log(2.0), abs=1e-6)
    assert clipped[3] == pytest.approx(3.0, abs=1e-3)
    assert torch.all(clipped[1:] > clipped[:-1])
    assert torch.equal(soft_clip(values, None), values)


@pytest.mark.parametrize("variance", ["fixed", "learned"])
def test_distortion_is_the_gaussian_negative_log_density(variance):
    model = gaussian_vae(variance, sigma=0.3, log_sigma_min=None)
    z = torch.randn(5, 3)
    dist = model.decoder(z)
    x = data(5)
    expected = Normal(dist.mean, torch.full_like(dist.mean, 0.3)).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(dist.log_prob(x), expected)


def test_per_dimension_log_density_and_its_normalisation():
    decoder = mlp_gaussian_decoder((1,), 2, hidden=(8,), variance="per-dimension", log_sigma_min=None)
    torch.nn.init.normal_(decoder.variance_trunk.net[-1].weight)  # a non-trivial sigma(z)
    decoder.switch_log_scale.fill_(-1.0)
    decoder.eval()
    decoder.steps.fill_(1)  # one step trained, warm-up 0: the network is in charge
    z = torch.randn(1, 2)
    dist = decoder(z)
    grid = torch.linspace(-30, 30, 200_001).reshape(-1, 1)
    density = dist.log_prob(grid.unsqueeze(1)).exp()
    assert torch.trapezoid(density.squeeze(), grid.squeeze()).item() == pytest.approx(1.0, abs=1e-4)
    expected = Normal(dist.mean, dist.stddev).log_prob(torch.tensor([[0.7]])).sum()
    torch.testing.assert_close(dist.log_prob(torch.tensor([[0.7]])), expected.reshape(1))


@pytest.mark.parametrize("log_sigma_min", [None, -6.0])
def test_gradient_of_negative_elbo_wrt_sigma_vanishes_at_sigma_squared_mse(log_sigma_min):
    model = gaussian_vae("learned", log_sigma_min=log_sigma_min)
    x = data()
    mse = batch_mse(model, x, seed=5)
    target = 0.5 * torch.log(mse)  # the clipped log sigma must equal this
    if log_sigma_min is not None:  # invert l_min + softplus(l - l_min)
        target = log_sigma_min + torch.log(torch.expm1(target - log_sigma_min))

    def gradient_at(raw):
        with torch.no_grad():
            model.decoder.raw_log_scale.fill_(raw)
        model.zero_grad()
        torch.manual_seed(5)
        out = model(x)
        (out.rate + out.distortion).mean().backward()
        return model.decoder.raw_log_scale.grad.item()

    assert gradient_at(target.item()) == pytest.approx(0.0, abs=1e-4)
    # away from the optimum it is not zero: d/dl of the mean D is d - SSE / sigma^2 per example
    d = math.prod(SHAPE)
    away = gradient_at(target.item() + 0.5)
    shift = (soft_clip(target + 0.5, log_sigma_min) - 0.5 * torch.log(mse)).item()
    slope = 1.0 if log_sigma_min is None else torch.sigmoid(target + 0.5 - log_sigma_min).item()
    assert away == pytest.approx(slope * d * (1 - math.exp(-2 * shift)), rel=1e-3)


@pytest.mark.parametrize("stop_gradient, log_sigma_min", [(True, None), (False, None), (True, -6.0)])
def test_optimal_sigma_training_equals_learned_sigma_pinned_to_batch_rmse(stop_gradient, log_sigma_min):
    optimal = gaussian_vae("optimal", stop_gradient=stop_gradient, log_sigma_min=log_sigma_min)
    learned = gaussian_vae("learned", log_sigma_min=log_sigma_min)
    learned.load_state_dict(optimal.state_dict(), strict=False)
    shared = [name for name, _ in optimal.named_parameters()]
    opt_a = torch.optim.SGD(optimal.parameters(), lr=0.05)
    opt_b = torch.optim.SGD([p for n, p in learned.named_parameters() if n in shared], lr=0.05)
    optimal.train()
    learned.train()
    for step in range(6):
        x = data(16, seed=10 + step)
        with torch.no_grad():
            learned.decoder.raw_log_scale.copy_(0.5 * torch.log(batch_mse(learned, x, seed=step)))
        losses = []
        for model, opt in ((optimal, opt_a), (learned, opt_b)):
            torch.manual_seed(step)
            out = model(x)
            loss = (out.rate + out.distortion).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    params_b = dict(learned.named_parameters())
    for name, p in optimal.named_parameters():
        torch.testing.assert_close(p, params_b[name], rtol=1e-4, atol=1e-5)
    moved = gaussian_vae("optimal")
    assert not torch.allclose(moved.decoder.trunk.net[-1].weight, optimal.decoder.trunk.net[-1].weight)


def test_optimal_sigma_evaluates_with_the_running_mse_of_the_training_batches():
    model = gaussian_vae("optimal", log_sigma_min=None)
    model.train()
    total, count = 0.0, 0
    for step in range(3):
        x = data(8, seed=step)
        torch.manual_seed(step)
        z = model.encoder(x).rsample()
        dist = model.decoder(z)
        dist.log_prob(x).sum().backward()
        total += (dist.mean.detach() - x).square().sum().item()
        count += x.numel()
    model.eval()
    assert model.decoder.running_variance.item() == pytest.approx(total / count, rel=1e-5)
    assert model.decoder.squared_error_count.item() == 0
    model.eval()  # a second switch with nothing new keeps the estimate
    assert model.decoder.running_variance.item() == pytest.approx(total / count, rel=1e-5)
    z = torch.randn(4, 3)
    dist = model.decoder(z)
    x = data(4)
    sigma = math.sqrt(total / count)
    expected = Normal(dist.mean, torch.full_like(dist.mean, sigma)).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(dist.log_prob(x), expected)
    # in training the scale is the batch optimum: exactly the minimiser of the summed -log density
    model.train()
    dist = model.decoder(z)
    mse = (dist.mean - x).square().mean().sqrt().item()
    for s in (0.9 * mse, 1.1 * mse):
        worse = Normal(dist.mean, torch.full_like(dist.mean, s)).log_prob(x).sum()
        assert dist.log_prob(x).sum().item() > worse.item()


def test_per_dimension_warm_up_switch_and_ramp():
    model = gaussian_vae("per-dimension", variance_warmup_steps=3, variance_ramp_steps=2)
    decoder = model.decoder
    assert isinstance(decoder, GaussianDecoder)
    weights, global_scales = [], []
    for step in range(6):
        x = data(8, seed=step)
        model.train()
        weights.append(decoder.network_weight())
        torch.manual_seed(step)
        out = model(x)
        out.distortion.mean().backward()
        if step == 2:
            expected_switch = 0.5 * math.log(decoder.squared_error_sum.item()
                                             / decoder.squared_error_count.item())
        if step < 3:
            assert decoder.variance_trunk.net[-1].weight.grad is None  # the network waits
        global_scales.append(decoder.switch_log_scale.item())
    assert weights == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]
    assert decoder.switch_log_scale.item() == pytest.approx(expected_switch, rel=1e-6)
    assert decoder.variance_trunk.net[-1].weight.grad is not None
    model.eval()
    assert decoder.network_weight() == 1.0
    # continuity at the switch: a zero-initialised head gives the global sigma everywhere
    fresh = gaussian_vae("per-dimension", variance_warmup_steps=1)
    fresh.train()
    torch.manual_seed(0)
    fresh(data(8)).distortion.mean().backward()  # step 0: global optimum
    dist = fresh.decoder(torch.randn(4, 3))  # step 1: the network takes over, h = 0
    expected = soft_clip(fresh.decoder.switch_log_scale, -6.0).exp()
    torch.testing.assert_close(dist.stddev, expected.expand_as(dist.stddev))


def test_effective_beta_is_two_sigma_squared_beta():
    x = data(20)
    fixed = gaussian_vae("fixed", sigma=1.0)
    assert effective_beta(fixed, x, beta=3.0) == pytest.approx(6.0)
    learned = gaussian_vae("learned", sigma=0.5, log_sigma_min=None)
    assert effective_beta(learned, x) == pytest.approx(2 * 0.25, rel=1e-6)
    per_dim = gaussian_vae("per-dimension", log_sigma_min=None)
    torch.nn.init.normal_(per_dim.decoder.variance_trunk.net[-1].bias)
    per_dim.decoder.switch_log_scale.fill_(0.0)
    per_dim.decoder.steps.fill_(1)
    per_dim.eval()
    torch.manual_seed(0)
    variance = per_dim.decoder(per_dim.encoder(x).sample()).variance
    harmonic = 1.0 / variance.reciprocal().mean().item()
    torch.manual_seed(0)
    assert effective_beta(per_dim, x) == pytest.approx(2 * harmonic, rel=1e-5)
    assert effective_beta(build_model("mlp", SHAPE, latent_dim=3, hidden=[16]), x) is None


def test_reconstruction_rmse_is_the_sigma_that_minimises_the_distortion():
    x = data(30)
    model = gaussian_vae("learned", sigma=0.5, log_sigma_min=None)
    rmse = reconstruction_rmse(model, x)
    model.eval()
    with seeded(0), torch.no_grad():   # the same z draws: one per example, seed 0
        z = model.encoder(x).sample()
        mean = model.decoder(z).mean
    assert rmse == pytest.approx((x - mean).square().mean().sqrt().item(), rel=1e-6)

    def mean_distortion(sigma):   # D = -log d(x|z) at that sigma, the same z
        with torch.no_grad():
            model.decoder.raw_log_scale.fill_(math.log(sigma))
            return -model.decoder(z).log_prob(x).mean().item()

    best = mean_distortion(rmse)
    assert best < mean_distortion(0.95 * rmse) and best < mean_distortion(1.05 * rmse)


def test_invalid_options_are_named():
    with pytest.raises(ValueError, match="variance"):
        gaussian_vae("per-pixel")
    with pytest.raises(ValueError, match="warmup_variance"):
        gaussian_vae("per-dimension", warmup_variance="fixed")
    with pytest.raises(ValueError, match="positive"):
        gaussian_vae("fixed", sigma=0.0)


class Interrupt(Exception):
    pass


def test_trainer_reports_effective_beta_and_resumes_the_variance_schedule_exactly(tmp_path):
    """Mid-epoch checkpoints carry the running squared errors and the step counter, so a run cut
    during the per-dimension warm-up resumes to the weights of an uninterrupted run."""
    from rdvae.rundir import RunDir, load_tensors
    from rdvae.train import TrainConfig, train

    config = TrainConfig(dataset="digits", family="mlp-gauss", latent_dim=2, batch_size=256,
                         model={"hidden": [16], "variance": "per-dimension", "variance_warmup_steps": 8},
                         epochs=2, checkpoint_minutes=0.0, eval_batch_size=500)
    full = train(config, tmp_path / "full", progress=False)

    def stop(counters):
        if counters["step"] == 4:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(config, tmp_path / "cut", progress=False, on_step=stop)
    resumed = train(None, tmp_path / "cut", resume=True, progress=False)
    a, _ = load_tensors(RunDir(tmp_path / "full") / "model.safetensors")
    b, _ = load_tensors(RunDir(tmp_path / "cut") / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert int(a["decoder.steps"]) == 12 and math.isfinite(a["decoder.switch_log_scale"].item())
    assert resumed["elbo"] == full["elbo"]
    assert 0 < full["effective_beta"] == resumed["effective_beta"]
