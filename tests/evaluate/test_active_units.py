import torch
from tests.helpers import LinearGaussianEncoder

from rdvae.evaluate import active_units, posterior_mean_variance


def test_active_units_count_dimensions_whose_mean_varies():
    enc = LinearGaussianEncoder(3, 3)
    with torch.no_grad():
        enc.linear.weight.copy_(torch.diag(torch.tensor([1.0, 0.05, 0.0])))
        enc.linear.bias.zero_()
    x = torch.randn(4000, 3)
    var = posterior_mean_variance(enc, x, batch_size=333)
    torch.testing.assert_close(var, torch.tensor([1.0, 0.0025, 0.0]) * x.var(0, unbiased=False),
                               rtol=1e-4, atol=1e-7)
    assert active_units(enc, x) == 1
    assert active_units(enc, x, threshold=0.001) == 2
