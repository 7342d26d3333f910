"""WAE-MMD: the kernels, the unbiased MMD^2 U-statistic against exact values, the objective through the
model contract, the registry and the config, and its term logged by the trainer."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from tests.helpers import Interrupt, LinearGaussianEncoder, ppca_vae, stop_at
from torch import nn

from rdvae.cli import build_parser
from rdvae.cli.train import overrides_from
from rdvae.components import GaussianDecoder, IAFEncoder, StandardNormal
from rdvae.components.discrete import BernoulliEncoder, BernoulliMarginal, IdentityTrunk
from rdvae.errors import ConfigError
from rdvae.model import VAE
from rdvae.objectives import MMDKernel, ObjectiveError, WAEObjective
from rdvae.objectives.wae import MULTISCALE, mmd2_unbiased
from rdvae.registry import OBJECTIVES
from rdvae.rundir import RunDir
from rdvae.train import TrainConfig, train

SMALL = dict(dataset="digits", binarize="dynamic", family="mlp", latent_dim=4,
             model={"hidden": [32]}, batch_size=256, eval_batch_size=500)


def objective(**options):
    """The objective a run config naming wae-mmd with these objective_options trains with."""
    return TrainConfig(objective="wae-mmd", objective_options=options).objective_instance()


def mmd2_biased(x, y, kernel):
    """The V-statistic (diagonal terms kept): biased upward; the tests show they can tell."""
    return kernel(x, x).mean((-2, -1)) + kernel(y, y).mean((-2, -1)) - 2 * kernel(x, y).mean((-2, -1))


# ------------------------------------------------------------------------------------------ kernels
def test_kernels_are_the_papers_formulas():
    a, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    d, s = 4, 0.7
    r2 = torch.tensor([[float(((a[i] - b[j]) ** 2).sum()) for j in range(5)] for i in range(3)],
                      dtype=torch.float64)
    c = 2 * d * s**2                                  # imq: C = 2 d s^2
    torch.testing.assert_close(MMDKernel("imq", s)(a, b), c / (c + r2))
    h2 = d * s**2                                     # rbf: exp(-r^2 / (2 h^2)), 2 h^2 = C
    torch.testing.assert_close(MMDKernel("rbf", s)(a, b), torch.exp(-r2 / (2 * h2)))
    scales = (0.1, 0.2, 0.5, 1, 2, 5, 10)
    torch.testing.assert_close(MMDKernel("imq", s, multiscale=True)(a, b),
                               sum(k * c / (k * c + r2) for k in scales))
    torch.testing.assert_close(MMDKernel("rbf", s, multiscale=True)(a, b),
                               sum(torch.exp(-r2 / (2 * k * h2)) for k in scales))
    assert MULTISCALE == (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def test_unbiased_mmd_is_the_u_statistic_written_out():
    x, y = torch.randn(5, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64) + 0.5
    k = MMDKernel("imq")

    def kv(u, v):
        return float(k(u[None], v[None])[0, 0])

    xx = sum(kv(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / (5 * 4)
    yy = sum(kv(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / (4 * 3)
    xy = sum(kv(x[i], y[j]) for i in range(5) for j in range(4)) / (5 * 4)
    assert math.isclose(float(mmd2_unbiased(x, y, k)), xx + yy - 2 * xy, rel_tol=1e-12)
    with pytest.raises(ValueError, match="at least 2 points"):
        mmd2_unbiased(x[:1], y, k)


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_u_statistic_is_unbiased_by_exact_enumeration(kernel):
    """P on 3 points, Q on 2 points (unequal weights), n = 3 and m = 2 draws with replacement: the
    probability-weighted average of the estimator over all 3^3 * 2^2 samples is MMD^2(P, Q)."""
    k = MMDKernel(kernel, 0.8)
    a = torch.tensor([[0.0, 0.0], [1.0, 0.5], [-0.5, 2.0]], dtype=torch.float64)
    b = torch.tensor([[0.3, -1.0], [2.0, 1.0]], dtype=torch.float64)
    p, q = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), torch.tensor([0.6, 0.4], dtype=torch.float64)
    exact = p @ k(a, a) @ p + q @ k(b, b) @ q - 2 * p @ k(a, b) @ q
    expected_u = expected_v = 0.0
    for i in itertools.product(range(3), repeat=3):
        for j in itertools.product(range(2), repeat=2):
            weight = float(p[list(i)].prod() * q[list(j)].prod())
            expected_u += weight * float(mmd2_unbiased(a[list(i)], b[list(j)], k))
            expected_v += weight * float(mmd2_biased(a[list(i)], b[list(j)], k))
    assert math.isclose(expected_u, float(exact), rel_tol=1e-10, abs_tol=1e-12)
    assert abs(expected_v - float(exact)) > 0.05   # the V-statistic is not: the enumeration can tell


# ---------------------------------------------------------------------- against Gaussian closed forms
REPEATS, N, D = 500, 64, 2


def estimates(m1, s1, m2, s2, kernel, generator):
    """REPEATS independent estimates, each from N draws of N(m1, s1^2 I) and of N(m2, s2^2 I)."""
    x = m1 + s1 * torch.randn(REPEATS, N, D, dtype=torch.float64, generator=generator)
    y = m2 + s2 * torch.randn(REPEATS, N, D, dtype=torch.float64, generator=generator)
    return mmd2_unbiased(x, y, kernel), mmd2_biased(x, y, kernel)


def mean_and_standard_error(values):
    return float(values.mean()), float(values.std() / math.sqrt(len(values)))


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_same_distribution_gives_zero_within_its_standard_error(kernel):
    g = torch.Generator().manual_seed(11)
    m = torch.tensor([0.5, -1.0], dtype=torch.float64)
    u, v = estimates(m, 1.5, m, 1.5, MMDKernel(kernel), g)
    mean, se = mean_and_standard_error(u)
    assert abs(mean) < 4 * se, (mean, se)
    v_mean, v_se = mean_and_standard_error(v)
    assert v_mean > 10 * v_se   # the biased statistic is visibly off at this sample size


def expected_rbf(dm, cov, h2):
    """E exp(-||u||^2 / (2 h^2)) for u ~ N(dm, cov):
    det(I + cov/h^2)^(-1/2) exp(-dm' (cov + h^2 I)^-1 dm / 2)."""
    eye = np.eye(len(dm))
    return np.linalg.det(eye + cov / h2) ** -0.5 * np.exp(-0.5 * dm @ np.linalg.solve(cov + h2 * eye, dm))


def expected_imq(dm, var, c):
    """E C / (C + ||u||^2) for u ~ N(dm, var I_d): ||u||^2 / var is noncentral chi^2 (df d, nc |dm|^2/var)."""
    nc = float(dm @ dm) / var
    dist = stats.ncx2(len(dm), nc) if nc > 0 else stats.chi2(len(dm))
    value, _ = integrate.quad(lambda t: c / (c + var * t) * dist.pdf(t), 0, np.inf)
    return value


def analytic_mmd2(kernel, m1, s1, m2, s2, scale, multiscale=False):
    m1, m2 = np.asarray(m1, dtype=float), np.asarray(m2, dtype=float)
    d, zero, total = len(m1), np.zeros(len(m1)), 0.0
    for c in (MULTISCALE if multiscale else (1.0,)):
        length = c * 2 * d * scale**2
        def e(dm, var, length=length):
            if kernel == "rbf":
                return expected_rbf(dm, var * np.eye(d), length / 2)
            return expected_imq(dm, var, length)

        total += e(zero, 2 * s1**2) + e(zero, 2 * s2**2) - 2 * e(m1 - m2, s1**2 + s2**2)
    return total


@pytest.mark.parametrize("kernel,scale,multiscale", [("imq", 1.0, False), ("rbf", 1.0, False),
                                                    ("imq", 0.6, True), ("rbf", 0.8, True)])
def test_mmd_between_gaussians_matches_the_closed_form(kernel, scale, multiscale):
    m1, s1, m2, s2 = [0.0, 0.0], 1.0, [1.0, -0.5], 0.7
    exact = analytic_mmd2(kernel, m1, s1, m2, s2, scale, multiscale)
    u, _ = estimates(torch.tensor(m1, dtype=torch.float64), s1, torch.tensor(m2, dtype=torch.float64), s2,
                     MMDKernel(kernel, scale, multiscale), torch.Generator().manual_seed(5))
    mean, se = mean_and_standard_error(u)
    assert exact > 20 * se              # a clearly non-zero discrepancy
    assert abs(mean - exact) < 4 * se, (mean, exact, se)
    if not multiscale:   # the tolerance tells the kernel's length 2 d s^2 from 4 d s^2 (and, imq, d s^2)
        assert abs(mean - analytic_mmd2(kernel, m1, s1, m2, s2, scale * math.sqrt(2))) > 8 * se
        if kernel == "imq":
            assert abs(mean - analytic_mmd2(kernel, m1, s1, m2, s2, scale / math.sqrt(2))) > 4 * se


# ---------------------------------------------------------------------------------- the objective
def test_loss_is_mean_distortion_plus_weighted_mmd_and_reports_the_models_kl():
    model, _, _ = ppca_vae(data_dim=4, latent_dim=2)
    x = torch.randn(16, 4)
    obj = objective(mmd_weight=3.0, kernel="rbf")
    torch.manual_seed(1)
    result = obj(model, x)
    torch.manual_seed(1)
    out = model(x)
    draws = model.marginal_distribution().sample((16,))
    mmd = mmd2_unbiased(out.z[0], draws, MMDKernel("rbf"))
    torch.testing.assert_close(result.loss, out.distortion.mean() + 3.0 * mmd)
    torch.testing.assert_close(result.terms["mmd"], mmd)
    torch.testing.assert_close(result.rate, out.rate)          # the analytic KL(e(z|x) || N(0, I))
    kl = torch.distributions.kl_divergence(model.encoder(x), model.marginal_distribution())
    torch.testing.assert_close(result.rate, kl)
    assert result.rate.shape == result.distortion.shape == (16,)
    assert obj.validation_loss(5.0, 80.0) == 80.0                # plateaus watch D


def test_deterministic_codes_are_the_posterior_mean_and_the_mmd_trains_the_encoder():
    model, _, _ = ppca_vae(data_dim=4, latent_dim=2)
    x = torch.randn(16, 4)
    obj = objective(encoder="deterministic", mmd_weight=1.0)
    obj.prepare(model, x)
    result = obj(model, x)
    mean = model.encoder(x).mean
    torch.testing.assert_close(result.distortion, model.distortion_of(x, mean.unsqueeze(0))[0])
    torch.testing.assert_close(result.rate, model(x).rate)
    result.loss.backward()
    assert model.encoder.log_scale.grad is None                 # the variance is not used
    model.zero_grad()
    obj.mmd(model.encoder(x).mean, model.marginal_distribution().sample((16,))).backward()
    assert model.encoder.linear.weight.grad.abs().sum() > 0     # the penalty reaches the encoder


def test_a_batch_of_one_has_no_penalty():
    model, _, _ = ppca_vae(data_dim=4, latent_dim=2)
    result = objective()(model, torch.randn(1, 4))
    assert float(result.terms["mmd"]) == 0.0 and torch.isfinite(result.loss)


def test_prepare_refuses_discrete_latents_and_a_mean_without_gradient_naming_them():
    decoder = GaussianDecoder(nn.Linear(2, 4), (4,), 0.5)
    discrete = VAE(BernoulliEncoder(IdentityTrunk(4), 2), decoder, BernoulliMarginal(2))
    with pytest.raises(ObjectiveError, match=r"continuous latents.*BernoulliEncoder.*BernoulliMarginal"):
        objective().prepare(discrete, torch.rand(4, 4))
    iaf = VAE(IAFEncoder(LinearGaussianEncoder(4, 2), 2, steps=1, hidden=(8,)), decoder, StandardNormal(2))
    with pytest.raises(ObjectiveError, match=r"gradient; the encoder IAFEncoder .*IAFPosterior.*'gaussian'"):
        objective(encoder="deterministic").prepare(iaf, torch.randn(4, 4))
    objective().prepare(iaf, torch.randn(4, 4))                  # z ~ e(z|x) is fine for an IAF


@pytest.mark.parametrize("options,message", [
    ({"mmd_weight": -1.0}, r"mmd_weight must be a number >= 0 \(finite\), got -1\.0"),
    ({"mmd_weight": math.inf}, r"mmd_weight must be a number >= 0 \(finite\), got inf"),
    ({"mmd_weight": "10"}, r"mmd_weight='10' must be a number"),
    ({"kernel": "laplace"}, r"kernel must be one of 'imq', 'rbf', got 'laplace'"),
    ({"kernel_scale": 0.0}, r"kernel_scale must be a positive number \(finite\), got 0\.0"),
    ({"encoder": "stochastic"}, r"encoder must be one of 'gaussian', 'deterministic', got 'stochastic'"),
    ({"multiscale": "yes"}, r"multiscale='yes' must be true or false"),
    ({"mmd_wieght": 1.0}, r"'mmd_wieght' \(did you mean 'mmd_weight'\?\)"),
])
def test_bad_options_are_named_with_what_is_allowed(options, message):
    with pytest.raises(ConfigError, match=message):
        objective(**options)


def test_direct_construction_validates_too():
    with pytest.raises(ObjectiveError, match="multiscale must be true or false, got 1"):
        MMDKernel("imq", 1.0, 1)
    with pytest.raises(ObjectiveError, match="mmd_weight must be"):
        WAEObjective(mmd_weight=None)
    with pytest.raises(ConfigError, match=r"does not use beta=2\.0"):
        TrainConfig(objective="wae-mmd", beta=2.0).objective_instance()


def test_a_config_and_the_command_line_build_it_with_its_options():
    args = build_parser().parse_args(["train", "--objective", "wae", "--set", "objective_options.kernel=rbf",
                                      "--set", "objective_options.mmd_weight=2.5",
                                      "--set", "objective_options.multiscale=true"])
    built = TrainConfig(**overrides_from(args)).objective_instance()
    assert built == WAEObjective(2.5, MMDKernel("rbf", 1.0, True), "gaussian")
    config = TrainConfig.from_dict({**SMALL, "objective": "wae-mmd",
                                    "objective_options": {"encoder": "deterministic", "kernel_scale": 2}})
    assert config.objective_instance() == WAEObjective(10.0, MMDKernel("imq", 2.0), "deterministic")
    assert OBJECTIVES.canonical("wae") == "wae-mmd"


@pytest.mark.parametrize("encoder", ["gaussian", "deterministic"])
def test_trains_a_tiny_model_by_name(encoder):
    torch.manual_seed(0)
    model, _, _ = ppca_vae(data_dim=4, latent_dim=2, sigma=0.3)
    with torch.no_grad():   # start away from the data: something to learn
        model.decoder.trunk.weight.mul_(0.1)
    x = torch.randn(64, 2) @ torch.randn(2, 4) * 2 + 1
    obj = OBJECTIVES.build("wae-mmd", mmd_weight=10.0, encoder=encoder)
    obj.prepare(model, x)
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    losses = []
    for step in range(60):
        result = obj(model, x, step)
        opt.zero_grad()
        result.loss.backward()
        opt.step()
        losses.append(float(result.loss.detach()))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5]), losses[::10]


def test_the_trainer_logs_the_mmd_and_resumes_its_epoch_sum_exactly(tmp_path):
    config = TrainConfig(**SMALL, epochs=2, checkpoint_minutes=0.0, objective="wae-mmd",
                         objective_options={"mmd_weight": 5.0})
    train(config, tmp_path / "full", progress=False)
    with pytest.raises(Interrupt):   # mid-epoch (6 steps an epoch): the partial sums come from the checkpoint
        train(config, tmp_path / "cut", progress=False, on_step=stop_at(8))
    train(None, tmp_path / "cut", resume=True, progress=False)
    full, cut = RunDir(tmp_path / "full").read_metrics(), RunDir(tmp_path / "cut").read_metrics()
    for m in full:   # loss = D + 5 MMD^2 at every step, so also for the epoch's example-weighted means
        assert m["train_loss"] == pytest.approx(m["train_distortion"] + 5.0 * m["train_mmd"], rel=1e-6)
        assert m["train_mmd"] > 0 and m["objective"] == m["distortion"]
    assert [m["train_mmd"] for m in cut] == [m["train_mmd"] for m in full]
    assert [m["train_loss"] for m in cut] == [m["train_loss"] for m in full]
