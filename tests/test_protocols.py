"""The model contract checked at the door: a user's part that breaks rdvae.protocols is refused before
training with one line naming the rule and the part; every built-in model passes, untouched; a builder's
KeyError on an option value is one line naming the builder and the option."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Independent, Normal, Uniform

import rdvae.train.plan as vae_plan
from rdvae import VAE, MultiRateVAE, register_decoder, register_family
from rdvae.cli import main
from rdvae.components import Marginal, StandardNormal
from rdvae.components.discrete import (
    CategoricalEncoder,
    CategoricalMarginal,
    FactorizedBitsEncoder,
    IdentityTrunk,
)
from rdvae.components.gaussian_decoders import VARIANCES
from rdvae.errors import ConfigError
from rdvae.estimators import DiscreteVAE
from rdvae.model import RateDistortion
from rdvae.presets import build_model
from rdvae.protocols import CONTRACT_EXAMPLES, check_model_contract
from rdvae.registry import DECODERS, ENCODERS, FAMILIES, MARGINALS, Registry
from rdvae.rundir import RunDir, load_tensors
from rdvae.train import TrainConfig, train

SHAPE = (1, 8, 8)
D = 3
X = (torch.rand(CONTRACT_EXAMPLES, *SHAPE, generator=torch.Generator().manual_seed(0)) < 0.3).float()


# ------------------------------------------------------------------------ parts that break one rule each
class GoodEncoder(nn.Module):
    def __init__(self, shape=SHAPE, d=D):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), 2 * d))

    def params(self, x):
        return self.net(x).chunk(2, dim=-1)

    def forward(self, x):
        loc, log_scale = self.params(x)
        return Independent(Normal(loc, log_scale.exp()), 1)


class TensorEncoder(GoodEncoder):
    """Returns z itself, not e(z|x)."""

    def forward(self, x):
        loc, _ = self.params(x)
        return loc


class PlainNormalEncoder(GoodEncoder):
    """Normal over [B, d]: batch [B, d], event [] (no Independent)."""

    def forward(self, x):
        loc, log_scale = self.params(x)
        return Normal(loc, log_scale.exp())


class GoodDecoder(nn.Module):
    def __init__(self, d=D, shape=SHAPE):
        super().__init__()
        self.shape = shape
        self.net = nn.Linear(d, math.prod(shape))

    def forward(self, z):
        return Independent(Bernoulli(logits=self.net(z).view(-1, *self.shape)), len(self.shape))


class WideDecoder(nn.Module):
    """d(x|z) over 10 values whatever the data's shape."""

    def __init__(self, d=D):
        super().__init__()
        self.net = nn.Linear(d, 10)

    def forward(self, z):
        return Independent(Bernoulli(logits=self.net(z)), 1)


class PerPixelDecoder(GoodDecoder):
    """Independent over nothing: batch [B, 1, 8, 8], event []."""

    def forward(self, z):
        return Bernoulli(logits=self.net(z).view(-1, *self.shape))


class NoDimMarginal(Marginal):
    """N(0, I) without latent_dim."""

    def __init__(self, d=D):
        super().__init__()
        self.register_buffer("loc", torch.zeros(d))

    def forward(self, encoder):
        return Independent(Normal(self.loc, torch.ones_like(self.loc)), 1)


class UnitCube(Marginal):
    """Uniform on [0, 1]^d: zero density at most Gaussian draws."""

    def __init__(self, d=D):
        super().__init__()
        self.latent_dim = d

    def forward(self, encoder):
        return Independent(Uniform(torch.zeros(self.latent_dim), torch.ones(self.latent_dim),
                                   validate_args=False), 1)


class MeanRateVAE(VAE):
    """Returns the batch means, not one figure per example."""

    def forward(self, x, samples=1):
        out = super().forward(x, samples)
        return RateDistortion(out.rate.mean(), out.distortion.mean(), out.z)


def _model(encoder=None, decoder=None, marginal=None, cls=VAE):
    return cls(encoder or GoodEncoder(), decoder or GoodDecoder(), marginal or StandardNormal(D))


def _refused(model, event_shape=SHAPE, family=None) -> str:
    with pytest.raises(ConfigError) as caught:
        check_model_contract(model, X, event_shape, family=family)
    message = str(caught.value)
    assert "\n" not in message, message
    assert message.endswith(f"(the model contract of rdvae.protocols, checked on {CONTRACT_EXAMPLES} "
                            "examples of the data)"), message
    return message


@pytest.mark.parametrize("parts,needles", [
    ({"decoder": WideDecoder()},
     ["decoder WideDecoder: d(x|z) has event shape (10,) but the data's examples have shape (1, 8, 8)"]),
    ({"decoder": PerPixelDecoder()},
     ["decoder PerPixelDecoder: d(x|z) has event shape () but the data's examples have shape (1, 8, 8); "
      "wrap it in Independent(..., 3)"]),
    ({"encoder": TensorEncoder()},
     ["encoder TensorEncoder: e(z|x) = encoder(x)", "must return a torch Distribution",
      "got a tensor of shape (4, 3)"]),
    ({"encoder": PlainNormalEncoder()},
     ["encoder PlainNormalEncoder: e(z|x) has event shape () and batch shape (4, 3)",
      "wrap it in Independent(..., 1) for batch (4,) and event (3,)"]),
    ({"marginal": NoDimMarginal()},
     ["marginal NoDimMarginal: needs an integer latent_dim >= 1", "got none"]),
    ({"marginal": StandardNormal(5)},
     ["marginal StandardNormal: latent_dim is 5 but e(z|x) of the encoder GoodEncoder has event shape (3,)",
      "marginal StandardNormal: m(z) has event shape (5,), but z has shape (3,)"]),
    ({"marginal": UnitCube()},
     ["marginal UnitCube: log m(z) is not finite for z drawn from e(z|x) of the encoder GoodEncoder"]),
    ({"cls": MeanRateVAE},
     ["model MeanRateVAE: model(x).rate must be a tensor of shape (4,)", "got ()"]),
])
def test_each_broken_rule_is_one_line_naming_the_rule_and_the_part(parts, needles):
    message = _refused(_model(**parts))
    for needle in needles:
        assert needle in message, (needle, message)


def test_every_broken_rule_is_reported_at_once():
    class MeanOnly(UnitCube):   # the mean of m(z), not m(z)
        def forward(self, encoder):
            return torch.zeros(self.latent_dim)

    message = _refused(_model(encoder=TensorEncoder(), decoder=WideDecoder(), marginal=MeanOnly()))
    assert message.count("; ") == 2
    for part in ("encoder TensorEncoder: e(z|x)", "marginal MeanOnly: m(z) = marginal(encoder) must return a "
                 "torch Distribution", "decoder WideDecoder: d(x|z) has event shape (10,)"):
        assert part in message, (part, message)
    # without a latent dimension from the encoder or the marginal, the decoder cannot be called
    message = _refused(_model(encoder=TensorEncoder(), decoder=WideDecoder(), marginal=NoDimMarginal()))
    assert "encoder TensorEncoder: " in message and "marginal NoDimMarginal: " in message


def test_a_part_that_raises_is_named_with_its_error():
    class Crashing(GoodDecoder):
        def forward(self, z):
            raise RuntimeError("mat1 and mat2 shapes\ncannot be multiplied")

    message = _refused(_model(decoder=Crashing()))
    assert "decoder Crashing: d(x|z) = decoder(z) on z of shape (4, 3) failed: RuntimeError: mat1 and mat2 " \
           "shapes cannot be multiplied" in message


def test_data_outside_a_validating_decoder_support_is_named_as_such():
    class Validating(GoodDecoder):   # torch's default: log_prob checks its argument
        def forward(self, z):
            logits = self.net(z).view(-1, *self.shape)
            return Independent(Bernoulli(logits=logits, validate_args=True), 3, validate_args=True)

    with pytest.raises(ConfigError) as caught:
        check_model_contract(_model(decoder=Validating()), X * 0.5, SHAPE)
    assert "decoder Validating: d(x|z).log_prob(x) failed on x of shape (4, 1, 8, 8): ValueError: " in \
        str(caught.value)
    assert "the data lie outside the support of d(x|z): binarize them" in str(caught.value)
    check_model_contract(_model(decoder=Validating()), X, SHAPE)   # binary data: fine


def test_a_model_without_the_parts_is_refused():
    message = _refused(nn.Linear(2, 2))
    assert "model Linear: a model needs encoder, decoder and marginal modules" in message


def test_a_family_names_its_registered_parts():
    register_decoder("contract-wide", lambda event_shape, latent_dim: WideDecoder(latent_dim))
    register_family("contract-wide", "mlp", "contract-wide", "-", latent_dim=D)
    model = build_model("contract-wide", SHAPE, hidden=[8])
    message = _refused(model, family="contract-wide")
    assert message.startswith("decoder 'contract-wide' (WideDecoder): d(x|z) has event shape (10,)"), message


# ------------------------------------------------------------------------ built-in models pass, untouched
def _data(event_shape):
    g = torch.Generator().manual_seed(1)
    if len(event_shape) == 1:   # word counts
        return torch.randint(0, 3, (CONTRACT_EXAMPLES, *event_shape), generator=g).float()
    return (torch.rand(CONTRACT_EXAMPLES, *event_shape, generator=g) < 0.3).float()


BOW = (30,)   # word counts over 30 words


def _family_shape(name):
    return BOW if name.startswith("hash-") else (1, 16, 16) if name == "dcgan" else SHAPE


def _passes_untouched(model, event_shape, family=None):
    """The check passes and leaves weights, buffers, modes and torch's random state as they were."""
    model.train()
    state = {k: v.clone() for k, v in model.state_dict(keep_vars=False).items()}
    rng = torch.get_rng_state()
    check_model_contract(model, _data(event_shape), event_shape, family=family)
    assert torch.equal(torch.get_rng_state(), rng)
    after = model.state_dict()
    assert after.keys() == state.keys()
    for key, value in state.items():   # bit for bit (NaN where it was NaN: e.g. an unset switch point)
        torch.testing.assert_close(after[key], value, rtol=0, atol=0, equal_nan=True, msg=key)
    assert all(m.training for m in model.modules())


@pytest.mark.parametrize("family", FAMILIES.names())
def test_every_registered_family_meets_the_contract(family):
    shape = _family_shape(family)
    _passes_untouched(build_model(family, shape, latent_dim=D), shape, family)


def _vae(encoder, decoder, marginal="-", shape=SHAPE):
    parts = [registry.build(name, shape, D) for registry, name in
             ((ENCODERS, encoder), (DECODERS, decoder), (MARGINALS, marginal))]
    return VAE(*parts), shape


@pytest.mark.parametrize("make", [
    pytest.param(lambda: _vae("mlp", "made"), id="made-decoder"),
    pytest.param(lambda: _vae("mlp-iaf", "+", "mog"), id="iaf-pixelcnn-mixture"),
    pytest.param(lambda: _vae("dcgan", "dcgan", "v", (1, 16, 16)), id="dcgan-vamp"),
    *[pytest.param(lambda v=v: (build_model("mlp-gauss", SHAPE, latent_dim=D, variance=v), SHAPE),
                   id=f"gauss-{v}") for v in VARIANCES],
    *[pytest.param(lambda e=e: (build_model("hash-e2", BOW, latent_dim=D, estimator=e), BOW), id=f"hash-{e}")
      for e in ("exact", "gumbel", "reinforce")],
    pytest.param(lambda: (DiscreteVAE(CategoricalEncoder(IdentityTrunk(64), 5), GoodDecoder(5),
                                      CategoricalMarginal(5, learned=True), estimator="exact"), SHAPE),
                 id="categorical"),
    pytest.param(lambda: (DiscreteVAE(FactorizedBitsEncoder(IdentityTrunk(64), 2), GoodDecoder(4),
                                      CategoricalMarginal(4)), SHAPE), id="factorized-bits"),
    pytest.param(lambda: (MultiRateVAE(GoodEncoder(), GoodDecoder(), StandardNormal(D), latent_gate=False),
                          SHAPE),
                 id="multi-rate-own-parts"),
])
def test_other_built_in_parts_meet_the_contract(make):
    model, shape = make()
    _passes_untouched(model, shape)


def test_a_multi_rate_model_meets_it_at_any_beta():
    model = build_model("mr-conv", SHAPE, latent_dim=D)
    for beta in (0.01, 10.0):
        with model.conditioned_on(beta):
            _passes_untouched(model, SHAPE)


# ------------------------------------------------------------------------ training is the same with it
SMALL = dict(dataset="digits", binarize="dynamic", latent_dim=4, model={"hidden": [32]}, batch_size=256,
             eval_batch_size=500, epochs=1, iw_samples=10)


def _weights(path):
    tensors, _ = load_tensors(RunDir(path) / "model.safetensors")
    return tensors


@pytest.mark.parametrize("family,options", [
    ("mlp", {}),
    ("mlp+-v", {"pseudo_inputs": 20, "made_hidden": [16], "flow_steps": 1}),   # IAF flow caches, VampPrior
])
def test_the_check_leaves_training_bit_identical(tmp_path, monkeypatch, family, options):
    config = dict(SMALL, family=family, model={**SMALL["model"], **options})
    checked = train(TrainConfig(**config), tmp_path / "checked", progress=False)
    monkeypatch.setattr(vae_plan, "check_model_contract", lambda *args, **kwargs: None)
    unchecked = train(TrainConfig(**config), tmp_path / "unchecked", progress=False)
    a, b = _weights(tmp_path / "checked"), _weights(tmp_path / "unchecked")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert checked["elbo"] == unchecked["elbo"]


def test_train_refuses_a_broken_model_before_it_writes_anything(tmp_path):
    model = _model(decoder=WideDecoder(), cls=VAE)
    with pytest.raises(ConfigError, match=r"^decoder WideDecoder: d\(x\|z\) has event shape \(10,\)"):
        train(TrainConfig(**SMALL), tmp_path / "run", progress=False, model=model)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    assert not (tmp_path / "run" / "config.json").exists()


# ------------------------------------------------------------------------ builders' bad option values
def _lookup_builder(event_shape, latent_dim, width=4, nonlinearity="tanh", table="main"):
    tables = {"main": {"tanh": nn.Tanh}}
    return nn.Sequential(nn.Linear(width, width), tables[table][nonlinearity]())


def _asserting_builder(event_shape, latent_dim, width=4):
    assert width % 2 == 0, "width must be even"
    return nn.Linear(width, width)


def _indexing_builder(event_shape, latent_dim, layer=0):
    return [nn.Tanh()][layer]


def _buggy_builder(event_shape, latent_dim, width=4):
    return nn.Linear(width, {"width": width}["depth"])


def _registry():
    registry = Registry("encoder", leading=2)
    for name, builder in (("lookup", _lookup_builder), ("asserting", _asserting_builder),
                          ("indexing", _indexing_builder), ("buggy", _buggy_builder)):
        registry.register(name, builder)
    return registry


def test_a_key_error_on_an_option_value_names_the_builder_and_the_option():
    with pytest.raises(ConfigError) as caught:
        _registry().build("lookup", SHAPE, D, where=" (the encoder of family 'mine')", nonlinearity="relu")
    assert str(caught.value) == ("encoder 'lookup' (the encoder of family 'mine'): option value not "
                                 "accepted: nonlinearity='relu' (the builder raised KeyError 'relu')")
    assert isinstance(caught.value.__cause__, KeyError)


def test_a_key_error_for_another_reason_is_still_one_line_naming_the_builder():
    with pytest.raises(ConfigError) as caught:
        _registry().build("lookup", SHAPE, D, table="other", width=3)   # the option is named where it can be
    assert str(caught.value) == ("encoder 'lookup': option value not accepted: table='other' (the builder "
                                 "raised KeyError 'other')")
    with pytest.raises(ConfigError) as caught:
        _registry().build("buggy", SHAPE, D, width=3)
    assert str(caught.value) == ("encoder 'buggy': the builder raised KeyError 'depth' (options given: "
                                 "width=3)")
    with pytest.raises(ConfigError) as caught:
        _registry().build("buggy", SHAPE, D)
    assert str(caught.value) == "encoder 'buggy': the builder raised KeyError 'depth'"
    with pytest.raises(ConfigError, match=r"^encoder 'indexing': the builder raised IndexError list index "
                                          r"out of range \(options given: layer=3\)$"):
        _registry().build("indexing", SHAPE, D, layer=3)
    assert _registry().build("indexing", SHAPE, D).__class__ is nn.Tanh


def test_an_assertion_in_a_builder_stays_a_bug_with_its_traceback():
    with pytest.raises(AssertionError, match="width must be even"):
        _registry().build("asserting", SHAPE, D, width=3)


# ------------------------------------------------------------------------ the command line
PLUGIN = '''\
import math

from torch import nn
from torch.distributions import Bernoulli, Independent, Normal

from rdvae import register_decoder, register_encoder, register_family

NONLINEARITIES = {"tanh": nn.Tanh, "softplus": nn.Softplus}


class DoorEncoder(nn.Module):
    def __init__(self, shape, d, nonlinearity):
        super().__init__()
        activation = NONLINEARITIES[nonlinearity]()   # KeyError for a name not in the table
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), 16), activation,
                                 nn.Linear(16, 2 * d))

    def forward(self, x):
        loc, log_scale = self.net(x).chunk(2, dim=-1)
        return Independent(Normal(loc, log_scale.exp()), 1)


class TenPixelDecoder(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.net = nn.Linear(d, 10)

    def forward(self, z):
        return Independent(Bernoulli(logits=self.net(z)), 1)


@register_encoder("door")
def door_encoder(event_shape, latent_dim, nonlinearity="tanh"):
    return DoorEncoder(event_shape, latent_dim, nonlinearity)


@register_decoder("ten-pixels")
def ten_pixels(event_shape, latent_dim):
    return TenPixelDecoder(latent_dim)


register_family("door-broken", "door", "ten-pixels", "-", latent_dim=3)
register_family("door", "door", "mlp", "-", latent_dim=3)
'''


@pytest.fixture(scope="module")
def door(tmp_path_factory):
    root = tmp_path_factory.mktemp("door")
    (root / "door_plugin.py").write_text(PLUGIN)
    rng = np.random.default_rng(0)
    np.save(root / "binary.npy", (rng.random((60, 6, 6)) < 0.3).astype(np.float32))
    return root


def _train_cli(root, out, *extra):
    return main(["train", "--plugin", str(root / "door_plugin.py"), "--dataset", str(root / "binary.npy"),
                 "--epochs", "1", "--batch-size", "16", "--no-progress", "--out", str(root / out), *extra])


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("rdvae train: error: "), err
    return lines[0]


def _nothing_trained(run):
    metrics = run / "metrics.jsonl"
    assert not metrics.exists() or not metrics.read_text().strip()
    assert not (run / "summary.json").exists()


def test_rdvae_train_refuses_a_plugin_that_breaks_the_contract_before_any_epoch(door, capsys):
    assert _train_cli(door, "broken", "--family", "door-broken") == 2
    line = _one_line(capsys)
    assert "decoder 'ten-pixels' (TenPixelDecoder): d(x|z) has event shape (10,) but the data's examples " \
           "have shape" in line, line
    _nothing_trained(door / "broken")


def test_rdvae_train_names_the_option_a_builder_looked_up_in_vain(door, capsys):
    assert _train_cli(door, "relu", "--family", "door", "--set", "model.nonlinearity=relu") == 2
    line = _one_line(capsys)
    assert "encoder 'door' (the encoder of family 'door'): option value not accepted: nonlinearity='relu' " \
           "(the builder raised KeyError 'relu')" in line, line
    _nothing_trained(door / "relu")
    assert _train_cli(door, "good", "--family", "door", "--set", "model.nonlinearity=softplus") == 0
    assert RunDir(door / "good").read_summary()["status"] == "done"
