"""TrainConfig's fields as declared (rdvae.settings): each one's bad values refused naming it, the
`rdvae train` flags equal to the declarations, the optimizer fields, old run folders still read."""

import json
import math
from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdvae.cli import build_parser, join_dash_values
from rdvae.cli.train import FLAGS, overrides_from
from rdvae.errors import ConfigError
from rdvae.rundir import RunDir
from rdvae.settings import ARGUMENT_TYPES, default_of, flag_help, flag_names, option_string, settings_of
from rdvae.sweep.spec import SweepSpec
from rdvae.train import TrainConfig
from rdvae.train.config import OPTION_FIELDS, config_field_rows, nest_model_options, read_run_config

DECLARED = settings_of(TrainConfig)
SMALL = {"dataset": "digits", "binarize": "static", "latent_dim": 2, "model": {"hidden": [8]}}
# train's options that are not config fields, each set its own way (--set, trackers, the common ones)
OTHER_TRAIN_OPTIONS = {"assignments", "log", "mlflow_uri", "wandb_project", "resume", "json", "plugins",
                       "trust_plugins", "accept_plugin_changes", "progress", "threads", "out", "nproc"}


def bad_values(setting) -> list:
    """Values of every wrong kind for a declared field, and values just outside its range."""
    kind = setting.kind
    values = {
        "integer": ["1", 1.5, True],
        "number": ["abc", True, math.nan, math.inf, [1.0]],
        "boolean": [1, "true", None],
        "string": [3, ["a"]],
        "choice": ["bogus", 3],
        "name": [3, "", "no-such-thing"],
        "mapping": [[], "x", 1],
        "list": [{}, "x"] + ([[3]] if setting.items == "string" else []),
    }[kind]
    if not setting.optional and kind != "boolean":
        values.append(None)
    if setting.low is not None:
        values.append(setting.low if setting.low_open else setting.low - 1)
    if setting.high is not None:
        values.append(setting.high if setting.high_open else setting.high + 1)
    if setting.accept is not None:
        values.append("")
    return values


CASES = [(name, value) for name, setting in DECLARED.items() for value in bad_values(setting)]


def test_every_field_is_declared():
    assert list(DECLARED) == [f.name for f in fields(TrainConfig)]
    assert all(setting.help.strip() for setting in DECLARED.values())


@pytest.mark.parametrize(("field", "value"), CASES, ids=[f"{n}={v!r}" for n, v in CASES])
def test_a_bad_value_of_any_field_is_refused_with_its_name(field, value):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict({**SMALL, field: value})
    message = str(err.value)
    assert message.startswith(f"{field} must be ") or message.startswith(f"unknown {field} "), message
    assert repr(value) in message


@pytest.mark.parametrize("field", [n for n, s in DECLARED.items() if s.optional])
def test_optional_fields_allow_null(field):
    assert getattr(TrainConfig.from_dict({**SMALL, field: None}), field) is None


@settings(max_examples=25, deadline=None)
@given(st.one_of(st.text(max_size=5), st.booleans(), st.lists(st.floats(), max_size=2)))
def test_an_optional_number_is_type_checked(value):
    with pytest.raises(ConfigError, match="^target_rate must be null or a number, got "):
        TrainConfig.from_dict({**SMALL, "target_rate": value})


def test_kept_messages():
    with pytest.raises(ConfigError, match="^epochs must be an integer >= 1, got 0$"):
        TrainConfig.from_dict({**SMALL, "epochs": 0})
    with pytest.raises(ConfigError, match="^seed must be at most 4294967295, got 4294967296$"):
        TrainConfig.from_dict({**SMALL, "seed": 2**32})
    with pytest.raises(ConfigError, match="^lr must be a positive number, got -1$"):
        TrainConfig.from_dict({**SMALL, "lr": -1})
    with pytest.raises(ConfigError, match="^device must be auto, cpu, cuda, cuda:N or mps, got 'gpu'$"):
        TrainConfig.from_dict({**SMALL, "device": "gpu"})


def _train_actions() -> dict:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    return {action.dest: action for action in commands["train"]._actions if action.option_strings}


def test_the_train_flags_are_the_declared_fields():
    actions = _train_actions()
    assert FLAGS == flag_names(TrainConfig)
    assert set(actions) - {"help"} == set(FLAGS) | OTHER_TRAIN_OPTIONS
    for name in FLAGS:
        setting, action, default = DECLARED[name], actions[name], default_of(TrainConfig, name)
        assert action.option_strings == [option_string(name, setting, default)]
        assert action.help == flag_help(setting, default).replace("%", "%%")
        assert action.default is None
        if setting.kind == "boolean":
            assert action.nargs == 0 and action.const is (not default)
        else:
            assert action.type is ARGUMENT_TYPES[setting.kind]
            assert tuple(action.choices or ()) == setting.choices


def test_the_train_flags_kept_their_names():
    before = ["dataset", "binarize", "family", "latent-dim", "beta", "target-rate", "free-bits",
              "kl-anneal-steps", "epochs", "batch-size", "lr", "lr-schedule", "seed", "precision", "device",
              "iw-samples", "beta-min", "beta-max", "objective", "plateau-epochs", "plateau-nats",
              "decay-epochs", "normalized-gradients", "multi-rate"]
    options = {s for action in _train_actions().values() for s in action.option_strings}
    assert {f"--{name}" for name in before} | {"--optimizer"} <= options


def _given(*argv: str) -> dict:
    parser = build_parser()
    return overrides_from(parser.parse_args(join_dash_values(["train", *argv], parser)))


def test_flags_and_set_give_config_fields():
    assert _given("--family", "-+v", "--beta", "-1e-3", "--normalized-gradients") == {
        "family": "-+v", "beta": -1e-3, "normalized_gradients": True}
    assert _given("--optimizer", "sgd", "--set", "optimizer_options.momentum=0.9", "--set",
                  "optimizer_options.betas=[0.5,0.999]") == {
        "optimizer": "sgd", "optimizer_options": {"momentum": 0.9, "betas": [0.5, 0.999]}}


def test_the_optimizer_is_a_registered_one_with_its_options():
    config = TrainConfig.from_dict({**SMALL, "optimizer": "adamw",
                                    "optimizer_options": {"betas": [0.5, 0.999], "weight_decay": 0.1}})
    assert config.optimizer == "adamw" and TrainConfig().optimizer == "adam"
    with pytest.raises(ConfigError, match=r"unknown optimizer 'adm' \(did you mean 'adam'\?\)"):
        TrainConfig.from_dict({**SMALL, "optimizer": "adm"})
    with pytest.raises(ConfigError, match=r"unknown optimizer option\(s\) of 'adam': 'bettas' \(did you mean "
                                          r"'betas'\?\)"):
        TrainConfig.from_dict({**SMALL, "optimizer_options": {"bettas": [0.5, 0.9]}})
    with pytest.raises(ConfigError, match="optimizer 'sgd': option momentum='high' must be a number"):
        TrainConfig.from_dict({**SMALL, "optimizer": "sgd", "optimizer_options": {"momentum": "high"}})
    with pytest.raises(ConfigError, match="optimizer 'adam': option betas=0.5 must be a list of numbers"):
        TrainConfig.from_dict({**SMALL, "optimizer_options": {"betas": 0.5}})


def test_optimizer_options_are_reached_by_dotted_names_in_a_sweep_grid():
    assert "optimizer_options" in OPTION_FIELDS
    assert nest_model_options({"optimizer_options.momentum": 0.9, "optimizer": "sgd"}) == {
        "optimizer": "sgd", "optimizer_options": {"momentum": 0.9}}
    spec = SweepSpec.from_dict({"base": {**SMALL, "optimizer": "sgd"},
                                "grid": {"optimizer_options.momentum": [0.0, 0.9]}})
    assert [spec.config(i).optimizer_options for i in range(2)] == [{"momentum": 0.0}, {"momentum": 0.9}]


def test_an_old_config_without_the_optimizer_fields_loads(tmp_path):
    record = TrainConfig.from_dict(SMALL).to_dict()
    del record["optimizer"], record["optimizer_options"]
    (tmp_path / "config.json").write_text(json.dumps(record))
    config, changed = read_run_config(RunDir(tmp_path))
    assert (config.optimizer, config.optimizer_options, changed) == ("adam", {}, [])


def test_config_field_rows_list_every_field_for_rdvae_list():
    rows = config_field_rows()
    assert [r["name"] for r in rows] == list(DECLARED)
    by_name = {r["name"]: r for r in rows}
    assert by_name["epochs"]["options"] == "an integer >= 1; default 10; --epochs"
    assert "adam, adamw, rmsprop, sgd" in by_name["optimizer"]["options"]
    assert all(set(r) == {"name", "description", "options"} and r["description"] for r in rows)
