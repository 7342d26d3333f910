import math

import pytest

from rdvae.train import ConfigError, TrainConfig
from rdvae.train.schedules import lr_factor


def test_unknown_field_gets_a_suggestion():
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        TrainConfig.from_dict({"epoch": 3})


@pytest.mark.parametrize("field,value", [("epochs", 0), ("lr", -1.0), ("beta", 0.0),
                                         ("family", "zz"), ("precision", "fp8"),
                                         ("lr_schedule", "linear"), ("target_rate", -2.0)])
def test_invalid_values_are_named(field, value):
    with pytest.raises(ConfigError, match=field.split("_")[0]):
        TrainConfig.from_dict({field: value})


def test_paper_schedule_is_constant_then_linear_to_zero():
    assert [lr_factor("paper", s, 200) for s in (0, 99, 100, 150, 200)] == [1, 1, 1, 0.5, 0]
    assert lr_factor("constant", 10, 20) == 1


def test_cosine_schedule_warms_up_then_follows_half_a_cosine_to_zero():
    total = 1000   # 50 warm-up steps
    warm = [lr_factor("cosine", s, total) for s in range(50)]
    assert warm == sorted(warm) and warm[0] < 0.05 and warm[-1] < 1
    assert lr_factor("cosine", 50, total) == pytest.approx(1.0)
    assert lr_factor("cosine", 525, total) == pytest.approx(0.5)        # halfway through the decay
    quarter = 0.5 + 0.5 * math.cos(math.pi / 4)
    assert lr_factor("cosine", 50 + 950 // 4, total) == pytest.approx(quarter, abs=1e-3)
    assert lr_factor("cosine", total, total) == pytest.approx(0.0, abs=1e-12)
