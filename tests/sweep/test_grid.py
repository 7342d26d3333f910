import pytest

from rdvae.sweep.grid import (
    GridError,
    chainit,
    describe_point,
    fixed,
    parse_grid,
    parse_value,
    product,
    split_top_level,
    sweep,
    zipit,
)


def test_product_is_every_combination_last_axis_fastest():
    grid = product(sweep("family", ["mlp", "mlp-v"]), sweep("beta", [0.1, 1, 10]))
    assert grid == [{"family": f, "beta": b} for f in ("mlp", "mlp-v") for b in (0.1, 1, 10)]
    assert product() == [{}]
    assert product(fixed("epochs", 3), sweep("seed", [0, 1])) == [{"epochs": 3, "seed": 0},
                                                                   {"epochs": 3, "seed": 1}]


def test_zipit_pairs_and_checks_lengths():
    assert zipit(sweep("beta", [0.5, 1]), sweep("seed", [0, 1])) == [{"beta": 0.5, "seed": 0},
                                                                      {"beta": 1, "seed": 1}]
    with pytest.raises(GridError, match="same number of values"):
        zipit(sweep("beta", [0.5, 1]), sweep("seed", [0]))


def test_chainit_and_clashes():
    assert chainit(sweep("beta", [1]), sweep("target_rate", [5])) == [{"beta": 1}, {"target_rate": 5}]
    with pytest.raises(GridError, match="more than one axis"):
        product(sweep("beta", [1]), sweep("beta", [2]))
    with pytest.raises(GridError, match="no values"):
        sweep("beta", [])


def test_parse_values_and_brackets():
    assert parse_value("0.3") == 0.3 and parse_value("mlp-v") == "mlp-v"
    assert parse_value("[64,64]") == [64, 64]
    assert parse_value("3") == 3 and parse_value("null") is None and parse_value("--v") == "--v"
    assert split_top_level("[1,2],[3],'a,b'", ",") == ["[1,2]", "[3]", "'a,b'"]


def test_parse_grid_products_axes_and_zips_semicolons():
    grid = parse_grid(["family=mlp,mlp-v", "beta=0.5,1;seed=0,1", "model.hidden=[32,16],[8]"])
    assert len(grid) == 2 * 2 * 2
    assert grid[0] == {"family": "mlp", "beta": 0.5, "seed": 0, "model.hidden": [32, 16]}
    assert grid[-1] == {"family": "mlp-v", "beta": 1, "seed": 1, "model.hidden": [8]}
    assert describe_point(grid[0]) == "family=mlp beta=0.5 seed=0 model.hidden=[32,16]"
    for bad, message in [("beta", "expected KEY="), ("=1,2", "no field name"), ("beta=", "no values")]:
        with pytest.raises(GridError, match=message):
            parse_grid([bad])
