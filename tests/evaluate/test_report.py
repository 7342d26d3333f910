"""evaluate_model: what it reports as bounds and estimates, and what it refuses to measure."""

import math

import pytest
import torch

from rdvae.errors import EvaluationError
from rdvae.evaluate import evaluate_model, format_report
from rdvae.presets import build_model


def model_and_data():
    torch.manual_seed(0)
    return build_model("mlp", (1, 4, 4), latent_dim=2, hidden=[8]), torch.rand(50, 1, 4, 4).round()


def test_bounds_and_estimates_are_named_for_what_they_are():
    model, x = model_and_data()
    result = evaluate_model(model, x, iw_samples=20)
    assert result["mi_upper"] == result["rate"]                     # I_q <= R: a bound
    assert result["mutual_info"] <= result["mi_upper"] + 3 * result["mutual_info_se"] + 1e-6
    assert result["h_hat"] == result["iw_nll"] and result["h_hat_source"] == "IW-NLL (k=20)"
    assert result["h_hat_minus_d"] == pytest.approx(result["iw_nll"] - result["distortion"])
    assert "mi_lower" not in result
    text = format_report(result)
    assert "an estimate" in text and "a bound" in text
    assert "h_hat_minus_d" not in evaluate_model(model, x)   # -ELBO as H_hat would give R back


def test_non_finite_data_and_non_finite_figures_are_refused():
    model, x = model_and_data()
    x[3, 0, 0, 0] = math.nan
    with pytest.raises(EvaluationError, match="1 non-finite"):
        evaluate_model(model, x)
    model, x = model_and_data()
    with torch.no_grad():
        model.encoder.loc.weight.fill_(math.inf)
    with pytest.raises(EvaluationError, match="not finite"):
        evaluate_model(model, x)


def test_mutual_information_above_log_n_is_refused(monkeypatch):
    from rdvae.evaluate import builtin_measures
    from rdvae.evaluate.mutual_information import MutualInformation

    model, x = model_and_data()
    monkeypatch.setattr(builtin_measures, "mutual_information",
                        lambda *a: MutualInformation(9.0, 0.1, math.log(50)))
    with pytest.raises(EvaluationError, match="exceeds log N"):
        evaluate_model(model, x)
