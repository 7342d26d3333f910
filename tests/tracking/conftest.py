import pytest

# a run that trains in about a second: 8x8 digits, 2 latent dims, one hidden layer of 16, 6 steps an epoch
TINY = dict(dataset="digits", binarize="static", family="mlp", latent_dim=2, model={"hidden": [16]},
            batch_size=256, eval_batch_size=500, epochs=2, log_every_steps=2, log_figures_every=1)


@pytest.fixture
def tiny() -> dict:
    return {**TINY, "model": dict(TINY["model"])}
