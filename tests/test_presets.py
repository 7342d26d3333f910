import pytest
import torch

from rdvae.presets import UnknownFamilyError, build_model, family_names, options_for, resolve_family


@pytest.mark.parametrize("family", ["mlp", "mlp-v", "mlp-mog", "---", "--v", "simple-simple-vamp"])
def test_families_build_and_report_rate_and_distortion(family):
    options = options_for(family, dict(pseudo_inputs=5, hidden=(16,)))
    model = build_model(family, (1, 8, 8), latent_dim=4, **options)
    out = model(torch.rand(3, 1, 8, 8).bernoulli())
    assert out.rate.shape == (3,) and torch.isfinite(out.distortion).all()


def test_paper_model_defaults():
    preset = resolve_family("--v")
    assert (preset.encoder, preset.decoder, preset.marginal, preset.latent_dim) == ("-", "-", "v", 64)
    model = build_model("--v", (1, 28, 28))
    assert model.latent_dim == 64 and model.marginal.pseudo_input_logits.shape == (500, 1, 28, 28)
    assert resolve_family("simple-simple-vamp") == preset


def test_unknown_families_say_what_exists():
    with pytest.raises(UnknownFamilyError, match="paper code"):
        resolve_family("xyz")
    assert "--v" in family_names() and "mlp" in family_names()
