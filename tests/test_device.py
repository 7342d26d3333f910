import pytest
import torch

from rdvae import device
from rdvae.device import autocast, native_bf16, resolve_precision, set_threads


def test_auto_precision_follows_native_bf16_support():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if native_bf16(cpu) else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp8", cpu)


def test_bf16_autocast_runs_matmuls_in_bf16_and_fp32_does_not():
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast("bf16", torch.device("cpu")):
        assert torch.nn.functional.linear(a, b).dtype == torch.bfloat16
    with autocast("fp32", torch.device("cpu")):
        assert torch.nn.functional.linear(a, b).dtype == torch.float32


@pytest.fixture
def two_cores(monkeypatch):
    """A machine of two cores; torch's thread count is restored afterwards."""
    before = torch.get_num_threads()
    monkeypatch.setattr(device, "available_cores", lambda: 2)
    yield
    torch.set_num_threads(before)


def test_threads_beyond_the_cores_are_lowered_to_the_cores_with_one_line(two_cores, capsys):
    assert set_threads(1000) == 2 and torch.get_num_threads() == 2
    err = capsys.readouterr().err
    assert err == "rdvae: --threads 1000 is more than the 2 cores; using 2\n"
    assert set_threads(1) == 1 and torch.get_num_threads() == 1
    assert set_threads(2) == 2 and capsys.readouterr().err == ""   # within the cores: said nothing


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "4"])
def test_threads_below_one_or_not_integers_are_refused(two_cores, bad):
    with pytest.raises(ValueError, match=f"threads must be an integer >= 1, got {bad!r}"):
        set_threads(bad)
