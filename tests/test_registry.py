"""Open registries: one way in for built-ins and users, options from signatures, clear errors."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

from rdvae import VAE, register_encoder, register_family
from rdvae.components import Marginal
from rdvae.data import DataError, check_dataset_options
from rdvae.errors import ConfigError
from rdvae.evaluate import elbo_surgery, evaluate_model
from rdvae.presets import build_model
from rdvae.registry import DECODERS, ENCODERS, FAMILIES, MARGINALS, MODELS, OBJECTIVES, Registry
from rdvae.train import TrainConfig, build_for_config

SHAPE = (1, 8, 8)


def test_builtins_register_through_the_public_registries():
    assert {"-", "+", "mlp", "bow-counts"} <= set(ENCODERS.names())
    assert {"-", "+", "mlp", "mlp-gauss", "bow"} <= set(DECODERS.names())
    assert {"-", "+", "v", "mog", "bernoulli"} <= set(MARGINALS.names())
    assert {"vae", "multi-rate", "discrete"} <= set(MODELS.names())
    assert {"beta", "target-rate", "free-bits", "multi-rate", "beta-tc"} <= set(OBJECTIVES.names())
    assert len([n for n in FAMILIES.names() if len(n) == 3 and set(n) <= set("-+v")]) == 12
    assert ENCODERS.options("mlp") == {"hidden": (512, 256), "activation": "glu"}


@pytest.mark.parametrize("family,option,suggestion", [
    ("mlp", "hiddn", "hidden"),               # encoder and decoder option
    ("--v", "pseudo_input", "pseudo_inputs"),  # marginal option
    ("-+-", "pixelcnn_channel", "pixelcnn_channels"),  # decoder option
    ("mlp-mog", "mixture_component", "mixture_components"),  # marginal option
    ("hash-e1", "estimatr", "estimator"),      # model class option
    ("mr-mlp", "gate_slope", "gate_slope_scale"),  # multi-rate model option
])
def test_unknown_model_options_are_rejected_with_suggestions(family, option, suggestion):
    with pytest.raises(ConfigError, match=rf"'{option}' \(did you mean '{suggestion}'\?\); valid: "):
        build_model(family, SHAPE, **{option: 1})
    with pytest.raises(ConfigError, match=f"did you mean '{suggestion}'"):
        TrainConfig(family=family, model={option: 1}).validated()


def test_unknown_names_of_every_kind_are_rejected_with_suggestions(tmp_path):
    with pytest.raises(ConfigError, match="unknown family 'mpl'"):
        TrainConfig(family="mpl").validated()
    with pytest.raises(ConfigError, match="did you mean 'digits'"):
        TrainConfig(dataset="digit").validated()
    with pytest.raises(ConfigError, match="unknown objective 'betta'.*did you mean 'beta'"):
        TrainConfig(objective="betta").validated()
    with pytest.raises(ConfigError, match=r"'gama' \(did you mean 'gamma'\?\)"):
        TrainConfig(objective="beta-tc", objective_options={"gama": 1.0}).validated()
    with pytest.raises(DataError, match=r"'binarise' \(did you mean 'binarize'\?\)"):
        check_dataset_options("digits", {"binarise": "static"})
    with pytest.raises(DataError, match=r"'valid_fractio' \(did you mean 'valid_fraction'\?\)"):
        np.save(tmp_path / "x.npy", np.zeros((4, 3)))
        check_dataset_options(str(tmp_path / "x.npy"), {"valid_fractio": 0.1})
    with pytest.raises(ConfigError, match="unknown config field.*did you mean 'epochs'"):
        TrainConfig.from_dict({"epoch": 3})


def test_registration_conflicts_replacements_and_reimports():
    registry = Registry("widget")

    def make(event_shape, latent_dim, size=3):
        return size

    registry.register("w", make)
    registry.register("w", make)      # the same definition again (a plugin imported twice): fine
    with pytest.raises(ConfigError, match="already registered"):
        registry.register("w", lambda event_shape, latent_dim: 0)
    registry.register("w", lambda event_shape, latent_dim, size=4: size, replace=True)
    assert registry["w"](None, None) == 4
    registry.leading = 2
    assert registry.options("w") == {"size": 4}
    with pytest.raises(ConfigError, match=r"unknown widget option\(s\) of 'w': 'sise' \(did you mean 'size'"):
        registry.build("w", None, None, sise=1)
    with pytest.raises(ConfigError, match="unknown widget 'x'"):
        registry["x"]


def test_builder_errors_become_config_errors_naming_the_part():
    with pytest.raises(ConfigError,
                       match=r"decoder 'mlp-gauss' \(the decoder of family 'mlp-gauss'\).*variance"):
        build_model("mlp-gauss", SHAPE, variance="bogus")


def test_analytic_rate_reaches_the_model_and_the_monte_carlo_rate_agrees_in_expectation():
    config = TrainConfig(family="mlp", latent_dim=3, model={"hidden": [16]}, analytic_rate=False).validated()
    torch.manual_seed(0)
    mc = build_for_config(config, SHAPE)
    torch.manual_seed(0)
    analytic = build_for_config(TrainConfig(family="mlp", latent_dim=3, model={"hidden": [16]}), SHAPE)
    assert mc.analytic_rate is False and analytic.analytic_rate is True
    x = torch.rand(5, *SHAPE).bernoulli()
    with torch.no_grad():
        exact = analytic(x).rate
        torch.manual_seed(1)
        one = mc(x).rate
        torch.manual_seed(1)
        many = mc(x, samples=20000).rate
    assert not torch.allclose(one, exact, atol=1e-3)   # one draw: a noisy estimate
    # the mean of 20000 draws: within 5 standard errors of the analytic KL
    torch.manual_seed(2)
    draws = torch.stack([mc(x).rate for _ in range(200)])
    stderr = draws.std(0) / math.sqrt(20000)
    assert ((many - exact).abs() <= 5 * stderr + 1e-4).all()


# ---- a user's own model, written from scratch, against the identical built-in preset --------------------
class UserEncoder(nn.Module):
    def __init__(self, inputs, hidden, latent):
        super().__init__()
        self.hidden = nn.Linear(inputs, hidden)
        self.loc = nn.Linear(hidden, latent)
        self.raw_variance = nn.Linear(hidden, latent)

    def forward(self, x):
        h = torch.tanh(self.hidden(2 * x.flatten(1) - 1))
        variance = nn.functional.softplus(self.raw_variance(h)) + 1e-7
        return Independent(Normal(self.loc(h), variance.sqrt()), 1)


class UserDecoder(nn.Module):
    def __init__(self, latent, hidden, shape):
        super().__init__()
        self.shape = shape
        self.hidden = nn.Linear(latent, hidden)
        self.out = nn.Linear(hidden, math.prod(shape))

    def forward(self, z):
        logits = self.out(torch.tanh(self.hidden(z))).reshape(*z.shape[:-1], *self.shape)
        return Independent(Bernoulli(logits=logits), len(self.shape))


class UserMarginal(Marginal):
    def __init__(self, latent):
        super().__init__()
        self.latent_dim = latent

    def forward(self, encoder=None):
        return Independent(Normal(torch.zeros(self.latent_dim), torch.ones(self.latent_dim)), 1)


def test_a_user_model_measures_exactly_like_the_identical_builtin_preset():
    torch.manual_seed(0)
    builtin = build_model("mlp", SHAPE, latent_dim=3, hidden=[16], activation="tanh")
    user = VAE(UserEncoder(64, 16, 3), UserDecoder(3, 16, SHAPE), UserMarginal(3))
    with torch.no_grad():
        for mine, theirs in zip(user.parameters(), builtin.parameters(), strict=True):
            mine.copy_(theirs)
    x = torch.rand(40, *SHAPE).bernoulli()
    a = evaluate_model(user, x, iw_samples=64, seed=3)
    b = evaluate_model(builtin, x, iw_samples=64, seed=3)
    for key in ("rate", "distortion", "elbo", "iw_nll", "mutual_info", "active_units"):
        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-5), key
    s_user = elbo_surgery(user, x, seed=3).as_dict()
    s_builtin = elbo_surgery(builtin, x, seed=3).as_dict()
    assert s_user.keys() == s_builtin.keys()
    for key, value in s_builtin.items():
        if isinstance(value, float):
            assert s_user[key] == pytest.approx(value, rel=1e-5, abs=1e-5), key


def test_a_registered_family_of_the_users_builders_is_built_with_its_options():
    @register_encoder("test-user-encoder")
    def user_encoder(event_shape, latent_dim, hidden=(16,)):
        return UserEncoder(math.prod(event_shape), hidden[0], latent_dim)

    register_family("test-user", "test-user-encoder", "mlp", "-", latent_dim=3)
    try:
        model = build_model("test-user", SHAPE, hidden=[8])   # hidden goes to both builders
        assert model.encoder.hidden.out_features == 8 and isinstance(model, VAE)
        assert TrainConfig(family="test-user").validated().family == "test-user"
    finally:
        ENCODERS._entries.pop("test-user-encoder")
        FAMILIES._entries.pop("test-user")


def test_a_model_object_trains_and_reloads_with_the_same_object(tmp_path):
    from rdvae.train import load_run, train

    def fresh():
        return VAE(UserEncoder(64, 16, 3), UserDecoder(3, 16, SHAPE), UserMarginal(3))

    config = TrainConfig(dataset="digits", binarize="dynamic", epochs=1, batch_size=256, eval_batch_size=500)
    summary = train(config, tmp_path / "r", progress=False, model=fresh())
    assert summary["status"] == "done" and summary["params"] == fresh().num_parameters()
    with pytest.raises(ConfigError, match="do not fit the model"):   # the config's family is not this model
        load_run(tmp_path / "r")
    trained = load_run(tmp_path / "r", model=fresh())
    again = evaluate_model(trained.model, trained.dataset.test, seed=0, batch_size=500)
    assert again["elbo"] == pytest.approx(summary["elbo"], abs=1e-4)


def test_widths_must_be_positive_and_a_builders_runtime_error_names_it():
    """A list option whose default holds positive integers (widths) refuses 0 or -1 before anything is
    built; a RuntimeError torch raises inside a builder is one ConfigError naming the builder."""
    with pytest.raises(ConfigError, match=r"option hidden=\[4, -1\] must be a list of integers >= 1"):
        build_model("mlp", SHAPE, hidden=[4, -1])
    registry = Registry("widget", leading=0)

    @registry.register("negative")
    def negative(size=3):
        return torch.empty(size)

    with pytest.raises(ConfigError, match=r"widget 'negative': the builder raised RuntimeError .*size=-2"):
        registry.build("negative", size=-2)
