import pytest
import torch

from rdvae.device import autocast, native_bf16, resolve_precision


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
