"""Measures (rdvae.evaluate.measures): each built-in is its estimator on the same seed, the IW-NLL
measure reaches the closed-form log-likelihood of probabilistic PCA, a user's measure of a closed form
composes with the built-ins (and reads what they measured before it), evaluate_model is the composition
of the registered measures, and what cannot be measured is refused with a message naming it."""

import math
from types import SimpleNamespace

import pytest
import torch
from tests.helpers import ppca_log_likelihood, ppca_vae, set_exact_posterior

from rdvae import register_measure
from rdvae.device import seeded
from rdvae.errors import ConfigError
from rdvae.evaluate import (
    ELBOSurgery,
    elbo_surgery,
    evaluate_model,
    format_report,
    iw_log_likelihood,
    mutual_information,
    rate_distortion,
)
from rdvae.evaluate.ais import ais_log_likelihood
from rdvae.evaluate.measures import MEASURES, key_label, measure_keys, measure_options, run_measures
from rdvae.evaluate.retrieval import binary_codes, precision_at_k
from rdvae.presets import build_model

DEFAULT = ["rate-distortion", "mutual-info", "active-units"]


def model_and_data(n=60):
    torch.manual_seed(0)
    return build_model("mlp", (1, 4, 4), latent_dim=2, hidden=[8]), torch.rand(n, 1, 4, 4).round()


def loose_ppca(sigma=0.3, n=200):
    """Probabilistic PCA with a diagonal, too wide encoder (a real ELBO gap) and data from the model."""
    model, W, mu = ppca_vae(data_dim=4, latent_dim=2, sigma=sigma)
    cov = set_exact_posterior(model, W, sigma)
    with torch.no_grad():
        model.encoder.log_scale.copy_(torch.log(2.0 * cov.diagonal().sqrt()))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 2, generator=g) @ W.T + mu + sigma * torch.randn(n, 4, generator=g)
    return model, x, W, mu, sigma


@pytest.fixture
def registered():
    """Register measures as a user's plugin does (from rdvae import register_measure); gone afterwards."""
    names = []

    def register(name, function, **declared):
        names.append(name)
        return register_measure(name, function, **declared)

    yield register
    for name in names:
        MEASURES._entries.pop(name, None)


def test_each_builtin_measure_is_its_estimator_on_the_same_seed():
    model, x = model_and_data()
    with seeded(3):
        rate, distortion = rate_distortion(model, x, 25)
    got = MEASURES["rate-distortion"](model, x, seed=3, batch_size=25)
    assert got["rate"] == rate.mean().item() and got["distortion"] == distortion.mean().item()
    assert got["elbo"] == -(rate + distortion).mean().item() and got["mi_upper"] == got["rate"]
    assert got["examples"] == 60
    with seeded(3):
        mi = mutual_information(model, x, 25)
    got = MEASURES["mutual-info"](model, x, seed=3, batch_size=25)
    assert (got["mutual_info"], got["mutual_info_se"], got["mutual_info_limit"]) == (mi.value, mi.stderr,
                                                                                     math.log(60))
    with seeded(3):
        log_px = iw_log_likelihood(model, x, 20)
    got = MEASURES["iw-nll"](model, x, seed=3, samples=20)
    assert got["iw_nll"] == -log_px.mean().item() and torch.equal(got["iw_log_px"], log_px)
    assert got["h_hat"] == got["iw_nll"] and "h_hat_minus_d" not in got   # no D measured beside it
    ais = ais_log_likelihood(model, x, 5, 3, seed=3, leapfrog=2)
    got = MEASURES["ais"](model, x, seed=3, steps=5, chains=3, leapfrog=2)
    assert got["ais_nll"] == ais["ais_nll"] and torch.equal(got["ais_log_px"], ais["log_px"])
    assert MEASURES["surgery"](model, x, seed=3, split_points=0) == elbo_surgery(
        model, x, dimensions=False, seed=3).as_dict()


def test_a_measure_alone_seeds_itself_and_an_evaluation_draws_from_one_stream_in_registry_order():
    model, x = model_and_data()
    alone = MEASURES["mutual-info"](model, x, seed=4)
    torch.manual_seed(99)   # whatever the caller's stream holds
    assert MEASURES["mutual-info"](model, x, seed=4) == alone
    state = torch.get_rng_state()
    assert run_measures(model, x, ["mutual-info"], seed=4) == alone
    assert torch.equal(torch.get_rng_state(), state)          # the caller's stream is left as it was
    after = run_measures(model, x, ["rate-distortion", "mutual-info"], seed=4)
    assert after["mutual_info"] != alone["mutual_info"]        # drawn after R and D's draws
    assert run_measures(model, x, ["mutual-info", "rate-distortion"], seed=4) == after   # registry order
    assert evaluate_model(model, x, seed=4) == run_measures(model, x, DEFAULT, seed=4)
    both = evaluate_model(model, x, seed=4, iw_samples=7, ais_steps=3, ais_chains=2,
                          ais_options={"leapfrog": 2})
    again = run_measures(model, x, {**dict.fromkeys(DEFAULT, {}), "iw-nll": {"samples": 7},
                                    "ais": {"steps": 3, "chains": 2, "leapfrog": 2}}, seed=4)
    assert {k: v for k, v in both.items() if k != "ais_seconds"} == {
        k: v for k, v in again.items() if k != "ais_seconds"}


def test_the_iw_nll_measure_reaches_the_closed_form_likelihood_of_probabilistic_pca():
    model, x, W, mu, sigma = loose_ppca()
    exact = -ppca_log_likelihood(x, W, mu, sigma).mean().item()
    result = run_measures(model, x, {"rate-distortion": {}, "iw-nll": {"samples": 2000}}, seed=0)
    assert -result["elbo"] - exact > 1.0                      # the ELBO is loose with this encoder
    assert abs(result["iw_nll"] - exact) < 0.01               # k = 2000 samples close the gap
    assert result["h_hat_minus_d"] == result["iw_nll"] - result["distortion"]
    paired = run_measures(model, x[:20], {"iw-nll": {"samples": 50}, "ais": {"steps": 20, "chains": 4}},
                          seed=0)
    assert paired["ais_minus_iw"] == pytest.approx(paired["ais_nll"] - paired["iw_nll"], abs=1e-6)


def test_a_users_measure_of_a_closed_form_composes_with_the_builtins(registered):
    model, x, W, mu, sigma = loose_ppca()

    def ppca_nll(model, x, *, seed, earlier=None, scale: float = 1.0):
        """-log p(x) of probabilistic PCA in closed form."""
        out = {"ppca_nll": -scale * ppca_log_likelihood(x, W, mu, sigma).mean().item()}
        if earlier and "iw_nll" in earlier:
            out["ppca_iw_gap"] = earlier["iw_nll"] - out["ppca_nll"]
        return out

    registered("ppca-nll", ppca_nll, keys={"ppca_nll": "exact NLL of probabilistic PCA",
                                           "ppca_iw_gap": "IW-NLL - exact NLL"}, units="nats")
    assert measure_options("ppca-nll") == {"scale": 1.0}
    assert measure_keys()[-2:] == ["ppca_nll", "ppca_iw_gap"]      # after rdvae's own, in registry order
    result = run_measures(model, x, {"ppca-nll": {}, "iw-nll": {"samples": 2000}}, seed=0)
    assert result["ppca_nll"] == -ppca_log_likelihood(x, W, mu, sigma).mean().item()
    assert abs(result["ppca_iw_gap"]) < 0.01                  # iw-nll ran before it, and is tight
    assert run_measures(model, x, {"ppca-nll": {"scale": 2.0}})["ppca_nll"] == 2 * result["ppca_nll"]
    assert key_label("ppca_nll") == "exact NLL of probabilistic PCA (nats)"
    assert "exact NLL of probabilistic PCA (nats)" in format_report(result)
    assert "IW-NLL, k=2000 (nats)" in format_report(result)    # the built-in's own line


def test_retrieval_is_precision_at_k_of_the_binary_codes_and_needs_labels():
    model, x = model_and_data()
    train = torch.rand(80, 1, 4, 4).round()
    dataset = SimpleNamespace(name="toy", train=train, labels={"train": torch.arange(80) % 3})
    labels = torch.arange(60) % 3
    got = MEASURES["retrieval"](model, x, seed=2, labels=labels, dataset=dataset, k=10, threshold=0.0)
    expected = precision_at_k(binary_codes(model.encoder, x, 0.0), labels,
                              binary_codes(model.encoder, train, 0.0), dataset.labels["train"], k=10, seed=2)
    assert got == {"retrieval_precision": expected, "retrieval_k": 10, "retrieval_database": 80}
    with pytest.raises(ConfigError, match="measure 'retrieval' needs labels"):
        run_measures(model, x, ["retrieval"], inputs={"dataset": dataset})


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_fid_compares_features_of_model_samples_with_the_examples(tmp_path):
    from rdvae.fid import TorchScriptFeatures, frechet_distance_of_images
    from rdvae.fid.score import model_images

    class Features(torch.nn.Module):
        def forward(self, x, return_features: bool = True):
            return torch.cat([x.mean((2, 3)), x.flatten(1)[:, :6]], 1)

    torch.jit.script(Features()).save(str(tmp_path / "features.pt"))
    model, x = model_and_data()
    options = {"features": str(tmp_path / "features.pt"), "samples": 40}
    got = MEASURES["fid"](model, x, seed=5, config=None, **options)
    with seeded(5):
        generated = model_images(model, 40)
    net = TorchScriptFeatures(tmp_path / "features.pt")
    assert got["fid"] == frechet_distance_of_images(net, generated, x) and got["fid_samples"] == 40
    assert generated.unique().tolist() == [0.0, 1.0]   # a Bernoulli decoder's images are draws, as x is
    with pytest.raises(ConfigError, match="fid compares images"):
        run_measures(build_model("mlp", (16,), 2, hidden=[8]), x.flatten(1), {"fid": options},
                     inputs={"config": object()})


def test_the_surgery_keys_read_back_into_the_decomposition():
    model, x = model_and_data()
    stored = MEASURES["surgery"](model, x, seed=0)
    assert ELBOSurgery.from_dict(stored).as_dict() == stored
    assert "ELBO surgery (nats):" in format_report(stored) and "index-code MI" in format_report(stored)


@pytest.mark.parametrize("measures,message", [
    ({"iw-nl": {}}, "unknown measure 'iw-nl' (did you mean 'iw-nll'?); registered: rate-distortion"),
    ({"iw-nll": {"sample": 3}}, "unknown measure option(s) of 'iw-nll': 'sample' (did you mean 'samples'?)"),
    ({"iw-nll": {}}, "measure 'iw-nll' needs option(s) samples"),
    ({"iw-nll": {"samples": 0}}, "measure 'iw-nll' (samples=0): samples must be an integer >= 1, got 0"),
    ({"active-units": {"threshold": "high"}}, "option threshold='high' must be a number"),
    ({"rate-distortion": {"seed": 1}}, "seed are set by the evaluation"),
    ({"ais": {"steps": 2, "chains": 0}}, "measure 'ais' (steps=2, chains=0): chains must be an integer >= 1"),
    ({"fid": {}}, "measure 'fid' needs config"),
    ("rate-distortion", "measures must be a mapping name -> options"),
])
def test_what_cannot_be_measured_is_refused_naming_it(measures, message):
    model, x = model_and_data()
    with pytest.raises(ConfigError) as err:
        run_measures(model, x, measures)
    assert message in str(err.value)


def test_a_measure_must_keep_to_what_it_declares(registered):
    model, x = model_and_data()
    registered("sloppy", lambda model, x, *, seed: {"declared": 1.0, "other": 2.0}, keys={"declared": "d"})
    with pytest.raises(ConfigError, match=r"returned \['other'\], which it does not declare"):
        run_measures(model, x, ["sloppy"])
    registered("tensor", lambda model, x, *, seed: {"tensor_value": torch.ones(())},
               keys={"tensor_value": "t"})
    with pytest.raises(ConfigError, match=r"a key holds a number, a string, a boolean or None"):
        run_measures(model, x, ["tensor"])
    with pytest.raises(ConfigError, match="declares key\\(s\\) rate, which measure 'rate-distortion' stores"):
        register_measure("again", lambda model, x, *, seed: {}, keys={"rate": "a second rate"})
    with pytest.raises(ConfigError, match="does not take seed"):
        register_measure("unseeded", lambda model, x: {}, keys={"unseeded_value": "u"})
    with pytest.raises(ConfigError, match="a measure may need labels, dataset, config"):
        register_measure("hungry", lambda model, x, *, seed, weights: {}, keys={"h": "h"}, needs=("weights",))
    assert "again" not in MEASURES and "unseeded" not in MEASURES and "hungry" not in MEASURES
