import math

import pytest
import torch

from rdvae.errors import ConfigError
from rdvae.objectives import (
    BetaObjective,
    BetaTCObjective,
    FreeBitsObjective,
    KLAnnealing,
    ObjectiveError,
    TargetRateObjective,
)
from rdvae.train import TrainConfig


def make_objective(**fields):
    """The objective a run config with these fields trains with."""
    return TrainConfig(**fields).objective_instance()

R = torch.tensor([1.0, 3.0])
D = torch.tensor([10.0, 20.0])


def test_beta_objective_and_annealing():
    assert BetaObjective(1.0).loss(R, D).item() == 17.0
    assert BetaObjective(0.5).loss(R, D).item() == 16.0
    annealed = BetaObjective(2.0, KLAnnealing(100))
    assert annealed.loss(R, D, step=0).item() == 15.0
    assert annealed.loss(R, D, step=50).item() == 17.0
    assert annealed.loss(R, D, step=500).item() == 19.0


def test_target_rate_and_free_bits():
    assert TargetRateObjective(5.0).loss(R, D).item() == 18.0
    assert TargetRateObjective(0.0).loss(R, D).item() == 17.0
    rate = torch.tensor([0.5, 0.5], requires_grad=True)
    FreeBitsObjective(1.0).loss(rate, D).backward()
    assert rate.grad.abs().sum() == 0  # below the free bits: no pressure on the rate
    assert FreeBitsObjective(1.0).loss(R, D).item() == 17.0


@pytest.mark.parametrize("kwargs", [dict(beta=0), dict(beta=-1), dict(beta=math.nan),
                                    dict(beta=math.inf), dict(target_rate=-0.1),
                                    dict(target_rate=math.nan), dict(free_bits=-1),
                                    dict(kl_anneal_steps=-5), dict(target_rate=1.0, free_bits=1.0)])
def test_invalid_settings_are_rejected(kwargs):
    with pytest.raises(ObjectiveError):
        make_objective(**kwargs)


def test_make_objective_picks_the_asked_objective():
    assert isinstance(make_objective(beta=2), BetaObjective)
    assert isinstance(make_objective(target_rate=3), TargetRateObjective)
    assert isinstance(make_objective(free_bits=2), FreeBitsObjective)
    assert isinstance(make_objective(objective="rate-distortion"), BetaObjective)
    assert isinstance(make_objective(objective="beta-tc", beta=6.0), BetaTCObjective)


@pytest.mark.parametrize("value", ["abc", "1", None, True, [1.0]])
def test_non_numbers_are_a_clean_error_naming_the_field(value):
    with pytest.raises(ConfigError, match=r"beta\W.*must be a (positive )?number"):
        make_objective(beta=value)


def test_unknown_objective_options_are_rejected_with_suggestions():
    with pytest.raises(ConfigError, match=r"'alpah' \(did you mean 'alpha'\?\)"):
        make_objective(objective="beta-tc", objective_options={"alpah": 2.0})
    with pytest.raises(ConfigError, match="unknown objective 'beta-cv'"):
        make_objective(objective="beta-cv")
