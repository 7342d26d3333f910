import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The offline dataset folder, when present (CI sets RDVAE_DATA to it)."""
    root = Path(os.environ.get("RDVAE_DATA", SHARED_DATA))
    if not (root / "binarized_mnist" / "binarized_mnist_test.amat").exists():
        pytest.skip("binarized MNIST files not available (set RDVAE_DATA)")
    return root
