import pytest

# a run that trains in well under a second: 8x8 digits, 2 latent dims, one hidden layer of 16
TINY = {"dataset": "digits", "binarize": "static", "family": "mlp", "latent_dim": 2,
        "model.hidden": [16], "epochs": 1, "batch_size": 256,
        "eval_batch_size": 500}


@pytest.fixture
def tiny_base() -> dict:
    return dict(TINY)
