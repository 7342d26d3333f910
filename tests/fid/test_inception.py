import pytest
import torch
from torch import nn

from rdvae.fid import TorchScriptFeatures


class Probe(nn.Module):
    """Stands in for a TorchScript Inception: records what it receives through its outputs."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        if not return_features:
            return torch.zeros(x.shape[0], 1)
        return torch.stack([x.amax((1, 2, 3)), torch.tensor(float(x.shape[1])).expand(x.shape[0]),
                            torch.tensor(float(x.shape[2])).expand(x.shape[0])], 1)


def test_torchscript_network_gets_rgb_resized_images_in_its_range(tmp_path):
    path = tmp_path / "probe.pt"
    torch.jit.save(torch.jit.script(Probe()), str(path))
    net = TorchScriptFeatures(path, size=16)
    x = torch.zeros(2, 1, 8, 8)
    x[0, 0, 0, 0] = 1.0
    x[1] = 0.5
    features = net.features(x)
    assert features[:, 1].tolist() == [3.0, 3.0] and features[:, 2].tolist() == [16.0, 16.0]
    assert features[1, 0].item() == pytest.approx(127.5)
    assert 0 < features[0, 0].item() <= 255.0


def test_missing_weights_say_where_to_put_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not download"):
        TorchScriptFeatures(tmp_path / "inception-2015-12-05.pt")
