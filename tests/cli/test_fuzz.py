"""Property-based fuzzing of the command line: `rdvae.cli.main(argv)` exits 0 or 2, never with a traceback.

The contract (rdvae.cli.main): 0 on success; 2 on a user error, reported as one line on standard error
that starts `rdvae COMMAND: error:` (argparse's own errors: usage and one such line, SystemExit(2));
130 only on Ctrl-C. Any other exception escaping main, any other status, a "Traceback" in the output,
or a call that runs past its time limit is a bug, and hypothesis shrinks the argv that shows it.

Strategies draw argv lists for train, eval, sweep, plot, repro, list and the top level, mixing valid
and invalid values of every option. Paths are written as @TOKEN@ placeholders (readable, stable
falsifying examples) and resolved per example to a fresh directory, a copy of a tiny trained run, a
copy of a tiny sweep (both made once per module), a corrupted copy, small data / plugin / sweep-spec
files, or a path that does not exist. Nothing downloads (RDVAE_OFFLINE=1; datasets are digits, junk
names and the small files) and nothing trains for long: before each call the argv is parsed with
the real parser and settings that would cost time (epochs, batch size, latent size, importance
samples, model widths) are pinned small by --set assignments appended last (a later --set of a key
wins); a real reproduction or quickstart is never started (those examples are rejected).

The default suite runs 60 generated commands (well under a minute); `-m slow` runs 880 more (a few
minutes: most examples stop at a user error, a valid train takes about 0.1 s in-process, a plot about 1 s).
A failure is shrunk to a minimal argv, so a failing run takes longer than a passing one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import shutil
import signal
import tempfile
import zlib
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, note, reject, seed, settings
from hypothesis import strategies as st

from rdvae import registry
from rdvae.cli import UserError, build_parser, main
from rdvae.cli.catalogue import KINDS
from rdvae.cli.train import overrides_from
from rdvae.data import DataError
from rdvae.errors import ConfigError, EvaluationError
from rdvae.experiments import SCALES, reproductions
from rdvae.presets import resolve_family
from rdvae.sweep.spec import SweepSpec
from rdvae.train import TrainConfig, TrainingDiverged
from rdvae.train.config import OPTION_FIELDS, nest_model_options

CALL_LIMIT_S = 120          # one main() call running longer than this is reported as a hang
FAST = {"train": 16, "eval": 14, "sweep": 10, "plot": 8, "misc": 12}         # 60 commands
SLOW = {"train": 300, "eval": 250, "sweep": 150, "plot": 80, "misc": 100}    # 880 commands

# -- what the library knows ---------------------------------------------------------------------------

FAMILIES = list(registry.FAMILIES.names())
OBJECTIVES = list(registry.OBJECTIVES.names())
REPROS = list(reproductions())
CONFIG_FIELDS = [f.name for f in fields(TrainConfig)]
MODEL_OPTIONS = sorted({name for family in FAMILIES for name in resolve_family(family).options()})
DATA_OPTIONS = ["root", "download", "seed", "valid_fraction", "test_fraction", "split_seed", "resize",
                "channels", "labels_key", "binarize"]
# families a sweep may train: the conv families cost seconds to tens of seconds even for one epoch
SWEEP_FAMILIES = [f for f in FAMILIES if "mlp" in f or f.startswith("hash")]

# -- tokens ---------------------------------------------------------------------------------------------

TOKEN = re.compile(r"@([A-Z_]+)(?::([a-z_]+))?@")
RUN_VARIANTS = ("config_garbage", "config_list", "config_unknown", "config_bad_latent",
                "config_latent_changed", "config_family_changed", "config_dataset_missing",
                "config_plugin_missing", "no_config", "no_model", "model_garbage", "model_empty",
                "summary_garbage", "summary_list", "no_summary", "metrics_garbage", "trainer_state_garbage")
SWEEP_VARIANTS = ("results_garbage", "results_empty", "results_header_only", "results_nan",
                  "results_missing_column", "no_results", "no_runs", "sweep_json_garbage", "sweep_json_list",
                  "run_model_garbage")

# -- value strategies -------------------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8)


def mix(valid, invalid) -> st.SearchStrategy:
    """Values that pass (three draws in four) or fail the checks; lists are sampled from."""
    valid = st.sampled_from(valid) if isinstance(valid, list) else valid
    invalid = st.sampled_from(invalid) if isinstance(invalid, list) else invalid
    # (not one_of(valid, valid, valid, invalid): one_of merges equal branches)
    return st.integers(0, 3).flatmap(lambda i: invalid if i == 3 else valid)


JUNK = st.one_of(st.sampled_from(["", " ", "junk", "-", "nan", "NaN", "inf", "Infinity", "1e309", "0x10",
                                  "None", "null", "true", "[", "{", "\\", "a=b", "=", "é", "💥", "1,2"]),
                 TEXT.filter(lambda s: not s.startswith("-")))
BAD_INT = st.one_of(st.sampled_from(["0", "-1", "-3", "99999999999999999999", "1.5", "1e3", "abc", "", " 3",
                                     "+3", "0b1", "٣", "NaN"]), JUNK)
BAD_FLOAT = st.one_of(st.sampled_from(["0", "-1", "-0.0", "1e-300", "1e309", "nan", "NaN", "inf", "-inf",
                                       "Infinity", "abc", "", "1,5", "0x1p3", "1_0"]),
                      st.floats(allow_nan=True, allow_infinity=True).map(repr), JUNK)
GOOD_FLOAT = st.one_of(st.sampled_from(["0.5", "1", "2", "1e-6", "1e6"]),
                       st.floats(0.01, 10).map(lambda x: f"{x:.3g}"))
INT_TEXT = mix(["0", "1", "2", "3", "7", "1000000000"], BAD_INT)
FLOAT_TEXT = mix(GOOD_FLOAT, BAD_FLOAT)
THREADS = mix(["1", "2"], ["0", "-1", "x", ""])
PLUGIN = mix(["json", "@PLUGIN_OK@", "rdvae"],
             ["no_such_rdvae_plugin", "no_such.pkg.mod", "@PLUGIN_RAISES@", "@PLUGIN_SYNTAX@",
              "@MISSING@/plugin.py", "", " ", "@EMPTY@"])
DATASET = mix(["digits", "@NPY@", "@IMG_NPY@", "@NPZ@"],
              ["Digits", " digits", "junk", "mnistt", "@NAN_NPY@", "@BAD_NPY@", "@ONED_NPY@", "@OBJ_NPY@",
               "@EMPTY_NPY@", "@BAD_NPZ@", "@EMPTY@", "@FILE@", "@MISSING@/x.npy", "@MISSING@/x.npz",
               "@MISSING@", "./nope", "", "~/no-such-rdvae-data.npy", "@RUN@"])
BINARIZE = mix(["static", "dynamic", "threshold", "auto"], ["none", "None", "", "junk", "STATIC"])
FAMILY = mix(FAMILIES, ["junk", "MLP", "", "mlp ", "+", "----"])
OBJECTIVE = mix(OBJECTIVES, ["junk", "", "BETA", "beta_tc"])
DEVICE = mix(["auto", "cpu"], ["cuda", "cuda:0", "cuda:7", "mps", "gpu", "cpu:0", "junk", ""])
PRECISION = mix(["fp32", "bf16", "auto"], ["fp16", "junk"])
LR_SCHEDULE = mix(["constant", "paper", "cosine"], ["junk", ""])
STRAY = st.sampled_from([["--help"], ["--nosuch"], ["-x"], ["extra"], ["--"], ["--set"], ["--json", "x"]])

JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), TEXT,
                      st.sampled_from([0, -1, 10**30, 2**63, -2**63 - 1, 1e308, -1e308, 5e-324, 0.5,
                                       float("nan"), float("inf"), float("-inf")]),
                      st.floats())
JSON_VALUE = st.recursive(JSON_LEAF, lambda kids: st.lists(kids, max_size=3)
                          | st.dictionaries(TEXT, kids, max_size=3), max_leaves=6)
MALFORMED_JSON = st.sampled_from(["[", '{"a":', '"unterminated', "[1,", "{", "]", "{'a': 1}", "tru", "01",
                                  "1.", ".5", "+1", "NaNx", "[NaN]", "-Infinity", " ", "", "relu", "mlp-v"])
JSON_TEXT = st.one_of(JSON_VALUE.map(json.dumps), MALFORMED_JSON)
SET_KEY = st.one_of(
    st.sampled_from([f for f in CONFIG_FIELDS if f not in ("plugins", "dataset")]),
    st.sampled_from([f"model.{name}" for name in MODEL_OPTIONS]),
    st.sampled_from([f"data.{name}" for name in DATA_OPTIONS]),
    st.sampled_from(["objective_options.alpha", "objective_options.gamma", "objective_options.beta",
                     "objective_options.junk", "data.junk", "model.junk"]),
    st.sampled_from(["epoch", "lattent_dim", "model", "data", "objective_options", "model.", ".hidden",
                     "model..hidden", "model.hidden.x", "hidden", " epochs", "EPOCHS", "", " "]),
    TEXT)
SET_KNOWN = st.sampled_from([
    "model.hidden=[8]", "model.hidden=[4,4]", "model.hidden=[]", "model.hidden=4", "model.activation=relu",
    "model.activation=tanh", "model.activation=junk", "model.pseudo_inputs=3", "model.pseudo_inputs=0",
    "model.mixture_components=1", "model.variance=learned", "model.variance=junk",
    "objective_options.alpha=0.5", "objective_options.alpha=-1", "data.valid_fraction=0.5",
    "data.valid_fraction=0", "data.valid_fraction=1", "data.test_fraction=0.99", "data.split_seed=3",
    "data.resize=[4,4]", "data.resize=[0,0]", "data.channels=3", 'data.labels_key="y"', "data.download=true",
    "data.root=@MISSING@", "data.root=@EMPTY@", "model={}", "model=[]", "data=5", "objective_options=null",
    'objective_options={"alpha": 2}', 'model={"hidden": [4], "activation": "relu"}', "epoch=3", "=3",
    "noequals", 'dataset="@NPY@"', "dataset=@NPY@", "dataset=digits", "dataset=junk", "dataset=null",
    "dataset=[]", "family=mlp-v", "family=mr-mlp", "multi_rate=true", 'plugins=["@PLUGIN_OK@"]',
    'plugins="json"', "plugins=[1]", 'plugins=["no_such_rdvae_plugin"]', 'dataset_sha256="abc"',
    "eval_split=test", "final_split=train", "final_split=nope", "analytic_rate=false",
    "max_consecutive_skips=0", "skip_grad_norm=1e-30", "checkpoint_minutes=0",
    "allow_improper_likelihood=true", "binarize=null",
    "latent_dim=1", "iw_samples=2", "kl_anneal_steps=1", "eval_batch_size=1"])
SET_VALUE = st.one_of(SET_KNOWN, st.tuples(SET_KEY, JSON_TEXT).map(lambda kv: f"{kv[0]}={kv[1]}"))


def opt(flag_: str, values) -> st.SearchStrategy:
    """`--flag VALUE` or `--flag=VALUE` (the only way to pass a value that starts with '-', e.g. a family
    code such as --v)."""
    return st.tuples(values, st.booleans()).map(lambda v: [f"{flag_}={v[0]}"] if v[1] else [flag_, v[0]])


def flag(name: str) -> st.SearchStrategy:
    return st.just([name])


def flatten(groups) -> list[str]:
    return [arg for group in groups for arg in group]


def common(out: bool) -> list[st.SearchStrategy]:
    found = [flag("--json"), flag("--no-progress"), opt("--threads", THREADS), opt("--plugin", PLUGIN)]
    if out:
        found.append(opt("--out", st.sampled_from(["@FRESH@", "@FILE@", "@EMPTY@"])))
    return found


def train_flags(family=FAMILY) -> list[st.SearchStrategy]:
    return [
        opt("--dataset", DATASET), opt("--binarize", BINARIZE), opt("--family", family),
        opt("--latent-dim", INT_TEXT), opt("--beta", FLOAT_TEXT), opt("--target-rate", FLOAT_TEXT),
        opt("--free-bits", FLOAT_TEXT), opt("--kl-anneal-steps", INT_TEXT),
        opt("--epochs", mix(["1", "2", "5"], ["0", "-1", "1.5", "x", ""])),
        opt("--batch-size", mix(["1", "7", "512", "1000000000"], ["0", "-1", "x", "1.5"])),
        opt("--lr", mix(["0.001", "0.01", "1e6"], st.one_of(st.sampled_from(["0", "-1"]), BAD_FLOAT))),
        opt("--lr-schedule", LR_SCHEDULE), opt("--seed", INT_TEXT), opt("--precision", PRECISION),
        opt("--device", DEVICE), opt("--iw-samples", mix(["0", "1", "3"], ["-1", "x"])),
        opt("--beta-min", FLOAT_TEXT), opt("--beta-max", FLOAT_TEXT), opt("--objective", OBJECTIVE),
        opt("--set", SET_VALUE), opt("--set", SET_VALUE),
    ]


# -- argv strategies ------------------------------------------------------------------------------------

def maybe(draw, strategy, flag_: str, quarters: int = 3) -> list[list[str]]:
    """[[flag_, value]] in `quarters` of four draws (shrinking towards leaving it out), else []."""
    return [draw(opt(flag_, strategy))] if draw(st.integers(0, 3)) >= 4 - quarters else []


@st.composite
def train_argv(draw) -> list[str]:
    # the options that pick what is built are drawn in most examples, a few others at random
    core = [*maybe(draw, FAMILY, "--family"), *maybe(draw, DATASET, "--dataset"),
            *maybe(draw, BINARIZE, "--binarize", 2), *maybe(draw, OBJECTIVE, "--objective", 2)]
    choices = [*train_flags(), flag("--normalized-gradients"), flag("--multi-rate"), flag("--resume"),
               *common(out=False), STRAY]
    groups = draw(st.permutations(core + draw(st.lists(st.one_of(choices), max_size=5))))
    argv = ["train", *flatten(groups)]
    out = draw(mix(["@FRESH@", "@FRESH@", "@FRESH@/a/b", "@RUN@"],
                   st.one_of(st.sampled_from(["@EMPTY@", "@FILE@", "@SWEEP@"]),
                             st.sampled_from([f"@RUN:{v}@" for v in RUN_VARIANTS]))))
    if draw(st.integers(0, 4)):   # without --out: the default runs/NAME under the working directory
        argv += ["--out", out]
    return [*argv, "--no-progress"]


RUN_TARGET = mix(["@RUN@", "@RUN@", "@MRRUN@"],
                 st.one_of(st.sampled_from(["@SWEEP@", "@SWEEP@/runs/000-beta=0.5", "@FRESH@", "@EMPTY@",
                                            "@FILE@", "@NPY@", "", "junk"]),
                           st.sampled_from([f"@RUN:{v}@" for v in RUN_VARIANTS])))


@st.composite
def eval_argv(draw) -> list[str]:
    choices = [
        opt("--iw-samples", mix(["0", "1", "3"], ["-5", "x", "2.5", ""])),
        opt("--split", mix(["train", "valid", "test"], ["junk", ""])),
        opt("--examples", mix(["1", "2", "3", "100000"], ["0", "-1", "x"])),
        opt("--batch-size", mix(["1", "7", "1000"], ["0", "-1", "x"])),
        opt("--seed", INT_TEXT), opt("--precision", PRECISION), opt("--device", DEVICE),
        st.lists(FLOAT_TEXT, min_size=1, max_size=3).map(lambda b: ["--betas", *b]),
        flag("--surgery"), flag("--surgery"),
        opt("--surgery-points", mix(["1", "5"], ["-1", "0", "x"])),
        opt("--surgery-split-points", mix(["0", "1", "5"], ["-1", "x"])),
        *common(out=False), STRAY]
    groups = draw(st.lists(st.one_of(choices), max_size=5))
    where = draw(st.integers(0, len(groups)))
    if where and groups[where - 1][0] == "--betas":   # keep the run dir out of --betas' list
        where = 0
    return ["eval", *flatten(groups[:where]), draw(RUN_TARGET), *flatten(groups[where:])]


SWEEP_DIR = mix(["@SWEEP@", "@SWEEP@", "@MRRUN@"],
                st.one_of(st.sampled_from(["@RUN@", "@FRESH@", "@EMPTY@", "@FILE@", "junk"]),
                          st.sampled_from([f"@SWEEP:{v}@" for v in SWEEP_VARIANTS])))
PLOT_FORMAT = mix(["png", "svg", "pdf", "jpg", "eps"], ["nosuchfmt", "", "PNG", ".png"])


@st.composite
def plot_argv(draw) -> list[str]:
    small = mix(["1", "2", "3"], ["-1", "0", "x", "1.5"])
    choices = [
        st.lists(st.sampled_from(["000-beta=0.5", "001-beta=2", "junk", "", "..", "runs/000-beta=0.5",
                                  "@RUN@"]), min_size=1, max_size=2).map(lambda r: ["--runs", *r]),
        opt("--max-runs", mix(["1", "2", "6"], ["-1", "0", "x"])), opt("--examples", small),
        opt("--z-draws", small), opt("--samples", small),
        st.lists(PLOT_FORMAT, min_size=1, max_size=2).map(lambda f: ["--format", *f]),
        opt("--over", st.sampled_from(["@SWEEP@", "@MRRUN@", "@RUN@", "@FRESH@", "junk"])),
        flag("--no-grids"), flag("--no-grids"), *common(out=True), STRAY]
    groups = draw(st.lists(st.one_of(choices), max_size=5))
    where = draw(st.integers(0, len(groups)))
    if where and groups[where - 1][0] in ("--runs", "--format"):   # keep SWEEP_DIR out of their lists
        where = 0
    return ["plot", *flatten(groups[:where]), draw(SWEEP_DIR), *flatten(groups[where:])]


GRID_VALUES = {
    "beta": ["0.5", "1", "2", "0", "-1", "abc", "NaN", "1e309", "null", "[1]"],
    "seed": ["0", "1", "-1", "1.5", '"a"'],
    "lr": ["0.001", "0", "-1", "1e6", "NaN"],
    "family": [*SWEEP_FAMILIES, "junk"],
    "model.hidden": ["[4]", "[8]", "[4,4]", "[]", "[0]", "[-1]", "4", '["a"]', "[1.5]", "null"],
    "model.activation": ["relu", "tanh", "glu", "junk", "1"],
    "epochs": ["1", "0", "-1", "2", '"1"'],
    "latent_dim": ["1", "2", "0", "-1", "3.5"],
    "batch_size": ["512", "0", "256", "-5"],
    "objective": [*OBJECTIVES, "junk"],
    "objective_options.alpha": ["0.5", "-1", '"x"'],
    "data.valid_fraction": ["0.1", "0", "1", "-0.5", "2"],
    "target_rate": ["1", "0", "-1"],
    "iw_samples": ["0", "2", "-1"],
    "plugins": ["[]", '["json"]', '["no_such_rdvae_plugin"]', '"json"'],
    "epoch": ["1"], "model": ["{}", "5", '{"hidden":[4]}'], "model.": ["1"], "data": ["{}", "[]"],
}
GRIDS_WRITTEN = st.sampled_from([
    "beta=1,abc", "beta=", "=1", "beta=1;seed=0,1", "beta=1;seed=0", "model.hidden=[4],[8]", "beta",
    "beta=[1,2", "beta=1,,2", ";", "beta=1;beta=2", "family=mlp,mlp-v", "beta=0.5,2", "seed=0,1",
    "model.hidden=[4,4],[8]", "beta=1,1", "beta=1;", "beta==1", " = ", "beta=[1,[2]", 'beta="1,2"',
    "beta=1)", "beta=(1,2)", "model.activation=relu,tanh"])


@st.composite
def grid_axis(draw) -> str:
    axes = []
    for _ in range(draw(st.integers(1, 2))):
        key = draw(st.sampled_from(sorted(GRID_VALUES)))
        values = draw(st.lists(st.sampled_from(GRID_VALUES[key]), min_size=1, max_size=2))
        axes.append(f"{key}={','.join(values)}")
    return ";".join(axes)


EXECUTOR = st.sampled_from([
    [], [], [], ["--executor", "local"], ["--executor", "junk"], ["--executor", "ray", "--address", "junk"],
    ["--executor", "ray", "--address", "auto"], ["--executor", "ray", "--address", "ray://127.0.0.1:1"],
    ["--executor", "ray", "--cpus-per-run", "0"], ["--executor", "ray", "--gpus-per-run", "-1"],
    ["--cpus-per-run", "x"], ["--ray-cpus", "x"], ["--gpus-per-run", "1"]])
SPEC_FILE = mix(["@SPEC_JSON@", "@SPEC_TOML@", "@SPEC_ZIP@", "@SPEC_POINTS@"],
                ["@SPEC_BAD_JSON@", "@SPEC_BAD_TOML@", "@SPEC_LIST@", "@SPEC_WEIRD@", "@SPEC_UNKNOWN@",
                 "@SPEC_EMPTY@", "@SPEC_TXT@", "@SPEC_GRID_EMPTY@", "@MISSING@/spec.json", "@EMPTY@"])


@st.composite
def sweep_argv(draw) -> list[str]:
    grid = st.one_of(grid_axis(), grid_axis(), GRIDS_WRITTEN)
    family = mix(SWEEP_FAMILIES, ["junk", "MLP", ""])
    core = [*maybe(draw, grid, "--grid"), *maybe(draw, grid, "--grid", 1),
            *maybe(draw, SPEC_FILE, "--config", 1), *maybe(draw, family, "--family", 2),
            *maybe(draw, DATASET, "--dataset", 2)]
    choices = [*train_flags(family=family), opt("--workers", mix(["1", "2"], ["0", "-1", "x", ""])),
               *common(out=False), STRAY]
    groups = draw(st.permutations(core + draw(st.lists(st.one_of(choices), max_size=4))))
    argv = ["sweep", *flatten(groups), *draw(EXECUTOR)]
    out = draw(mix(["@FRESH@", "@FRESH@", "@SWEEP@"],
                   st.one_of(st.sampled_from(["@EMPTY@", "@FILE@", "@RUN@"]),
                             st.sampled_from([f"@SWEEP:{v}@" for v in SWEEP_VARIANTS]))))
    if draw(st.integers(0, 5)):   # without --out: a user error
        argv += ["--out", out]
    return [*argv, "--no-progress"]


@st.composite
def misc_argv(draw) -> list[str]:
    kind = draw(st.sampled_from(["repro", "repro", "repro", "list", "list", "top"]))
    if kind == "repro":
        name = draw(st.one_of(st.none(), st.sampled_from(REPROS),
                              st.sampled_from(["junk", "", "broken_elbo", "BROKEN-ELBO", "-", "list"])))
        junk_scale = st.sampled_from(["junk", "", "SMOKE", "Smoke", "gpu", "smoke ", "0"])
        any_scale = st.one_of(st.none(), junk_scale, st.sampled_from(SCALES))
        scale = draw(junk_scale if name in REPROS else any_scale)   # never a real reproduction
        argv = ["repro", *([name] if name is not None else [])]
        argv += ["--scale", scale] if scale is not None else []
        return argv + flatten(draw(st.lists(st.one_of(common(out=True)), max_size=3)))
    if kind == "list":
        what = draw(st.one_of(st.none(), st.sampled_from(KINDS), st.sampled_from(["junk", "", "family"])))
        return ["list", *([what] if what is not None else [])] + flatten(
            draw(st.lists(st.one_of([*common(out=False), STRAY]), max_size=3)))
    return draw(st.sampled_from([[], ["--version"], ["--help"], ["junk"], ["train", "--help"], ["--json"],
                                 ["eval"], ["plot"], ["sweep"], ["repro", "--help"], ["list", "--help"],
                                 ["quickstart", "--workers", "x"], ["quickstart", "--help"], ["-x"], [""]]))


STRATEGIES = {"train": train_argv(), "eval": eval_argv(), "sweep": sweep_argv(), "plot": plot_argv(),
              "misc": misc_argv()}

# -- the module's world: a tiny run, a tiny multi-rate run, a tiny sweep, small files -----------------------

TINY = ["--dataset", "digits", "--binarize", "dynamic", "--latent-dim", "2", "--set", "model.hidden=[8]",
        "--epochs", "1", "--no-progress"]


def _write_files(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    files = {}

    def save(name: str, array) -> None:
        files[name] = root / f"{name.lower()}.npy"
        np.save(files[name], array)

    save("NPY", rng.random((40, 6)).astype(np.float32))
    save("IMG_NPY", rng.random((30, 4, 4)).astype(np.float32))
    nan = rng.random((20, 3))
    nan[3, 1] = np.nan
    save("NAN_NPY", nan)
    save("ONED_NPY", rng.random(10))
    save("EMPTY_NPY", np.zeros((0, 4), dtype=np.float32))
    files["OBJ_NPY"] = root / "obj.npy"
    np.save(files["OBJ_NPY"], np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    files["BAD_NPY"] = root / "bad.npy"
    files["BAD_NPY"].write_bytes(b"\x93NUMPY garbage")
    files["NPZ"] = root / "tiny.npz"
    np.savez(files["NPZ"], x=rng.random((30, 5)).astype(np.float32))
    files["BAD_NPZ"] = root / "bad.npz"
    np.savez(files["BAD_NPZ"], x_trian=rng.random((10, 5)))
    plugins = {"PLUGIN_OK": "X = 1\n", "PLUGIN_RAISES": "raise RuntimeError('plugin boom')\n",
               "PLUGIN_SYNTAX": "def (:\n"}
    for name, text in plugins.items():
        files[name] = root / f"{name.lower()}.py"
        files[name].write_text(text)
    base = {"dataset": "digits", "binarize": "dynamic", "epochs": 1, "latent_dim": 2, "model.hidden": [4],
            "batch_size": 512}
    specs = {
        "SPEC_JSON": ("json", json.dumps({"base": base, "grid": {"beta": [0.5, 2]}})),
        "SPEC_TOML": ("toml", 'base = { dataset = "digits", binarize = "dynamic", epochs = 1, '
                              'latent_dim = 2, "model.hidden" = [4], batch_size = 512 }\n'
                              '[grid]\nbeta = [1.0]\n'),
        "SPEC_ZIP": ("json", json.dumps({"base": base, "zip": [{"beta": [1, 2], "seed": [0, 1]}]})),
        "SPEC_POINTS": ("json", json.dumps({"base": base, "points": [{"beta": 1}, {"beta": "x"}]})),
        "SPEC_BAD_JSON": ("json", "{"),
        "SPEC_BAD_TOML": ("toml", "base = ["),
        "SPEC_LIST": ("json", "[1, 2]"),
        "SPEC_WEIRD": ("json", json.dumps({"base": 5, "grid": "x"})),
        "SPEC_UNKNOWN": ("json", json.dumps({"bsae": {}})),
        "SPEC_EMPTY": ("json", ""),
        "SPEC_TXT": ("txt", "beta=1"),
        "SPEC_GRID_EMPTY": ("json", json.dumps({"base": base, "grid": {"beta": []}})),
    }
    for name, (suffix, text) in specs.items():
        files[name] = root / f"{name.lower()}.{suffix}"
        files[name].write_text(text)
    return files


class World:
    """The module's fixtures on disk and the per-example resolution of @TOKEN@ placeholders."""

    def __init__(self, root: Path, run: Path, mr_run: Path, sweep: Path, files: dict[str, Path]):
        self.root, self.run, self.mr_run, self.sweep, self.files = root, run, mr_run, sweep, files

    def resolve(self, argv: list[str], where: Path) -> list[str]:
        made: dict[str, str] = {}

        def path_of(match: re.Match) -> str:
            key = match.group(0)
            if key not in made:
                made[key] = str(self._make(match.group(1), match.group(2), where, len(made)))
            return made[key]

        return [TOKEN.sub(path_of, arg) for arg in argv]

    def _make(self, name: str, variant: str | None, where: Path, index: int) -> Path:
        if name in self.files:
            return self.files[name]
        target = where / f"{name.lower()}{'-' + variant if variant else ''}{index}"
        if name == "FRESH":
            return target
        if name == "MISSING":
            return where / "missing" / "nothing"
        if name == "EMPTY":
            target.mkdir()
            return target
        if name == "FILE":
            target.write_text("not a run\n")
            return target
        source = {"RUN": self.run, "MRRUN": self.mr_run, "SWEEP": self.sweep}[name]
        shutil.copytree(source, target)
        if variant is not None:
            (corrupt_run if name == "RUN" else corrupt_sweep)(target, variant)
        return target


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def corrupt_run(run: Path, variant: str) -> None:
    edits = {
        "config_unknown": lambda c: c.update(epochz=1),
        "config_bad_latent": lambda c: c.update(latent_dim="two"),
        "config_latent_changed": lambda c: c.update(latent_dim=3),
        "config_family_changed": lambda c: c.update(family="mlp-v"),
        "config_dataset_missing": lambda c: c.update(dataset=str(run / "gone.npy")),
        "config_plugin_missing": lambda c: c.update(plugins=["no_such_rdvae_plugin"]),
    }
    texts = {"config_garbage": ("config.json", "{"), "config_list": ("config.json", "[1, 2]"),
             "model_garbage": ("model.safetensors", "garbage"), "model_empty": ("model.safetensors", ""),
             "summary_garbage": ("summary.json", "{"), "summary_list": ("summary.json", "[]"),
             "metrics_garbage": ("metrics.jsonl", "x\n{\n"),
             "trainer_state_garbage": ("trainer_state.safetensors", "garbage")}
    removals = {"no_config": "config.json", "no_model": "model.safetensors", "no_summary": "summary.json"}
    if variant in edits:
        _edit_json(run / "config.json", edits[variant])
    elif variant in texts:
        (run / texts[variant][0]).write_text(texts[variant][1])
    else:
        (run / removals[variant]).unlink()


def corrupt_sweep(sweep: Path, variant: str) -> None:
    results = sweep / "results.csv"
    if variant in ("results_nan", "results_missing_column"):
        with results.open(newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            if variant == "results_nan":
                row.update(rate="nan", distortion="inf")
            else:
                row.pop("rate")
        with results.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif variant == "results_garbage":
        results.write_text('garbage,,\n"unclosed\n1,2,3,4,5\n')
    elif variant == "results_empty":
        results.write_text("")
    elif variant == "results_header_only":
        results.write_text(results.read_text().splitlines()[0] + "\n")
    elif variant == "no_results":
        results.unlink()
    elif variant == "no_runs":
        shutil.rmtree(sweep / "runs")
    elif variant == "sweep_json_garbage":
        (sweep / "sweep.json").write_text("{")
    elif variant == "sweep_json_list":
        (sweep / "sweep.json").write_text("[]")
    else:  # run_model_garbage
        next((sweep / "runs").iterdir()).joinpath("model.safetensors").write_text("garbage")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RDVAE_OFFLINE", "1")
        mp.setenv("RDVAE_CACHE", str(root / "cache"))
        mp.chdir(root)
        threads = torch.get_num_threads()
        run, mr_run, sweep = root / "run", root / "mr-run", root / "sweep"
        assert main(["train", *TINY, "--family", "mlp", "--out", str(run)]) == 0
        assert main(["train", *TINY, "--family", "mr-mlp", "--out", str(mr_run)]) == 0
        assert main(["eval", str(mr_run), "--betas", "0.5", "1", "2", "--no-progress"]) == 0
        assert main(["sweep", *TINY, "--family", "mlp", "--grid", "beta=0.5,2", "--workers", "1",
                     "--out", str(sweep)]) == 0
        torch.set_num_threads(threads)
        yield World(root, run, mr_run, sweep, _write_files(root))


# -- keeping every example small ------------------------------------------------------------------------

HUGE = 2**62   # sizes above this overflow torch's int64 at once: cheap errors, left to the code
# model options that set a size: what an example may use at most, and what it is pinned to beyond
MODEL_CAPS = {"hidden": 64, "encoder_hidden": 64, "decoder_hidden": 64, "made_hidden": 16,
              "pixelcnn_channels": 8, "pixelcnn_levels": 1, "pixelcnn_resnet_layers": 1, "flow_steps": 2,
              "conv_width": 0.25, "pseudo_inputs": 64, "mixture_components": 16, "passes": 2,
              "refine_passes": 2}
SAFE_MODEL = {"hidden": [4], "encoder_hidden": [4], "decoder_hidden": [], "made_hidden": [8],
              "pixelcnn_channels": 4, "pixelcnn_levels": 1, "pixelcnn_resnet_layers": 1, "flow_steps": 1,
              "conv_width": 0.1, "pseudo_inputs": 8, "mixture_components": 2, "passes": 1,
              "refine_passes": None}
MISSING = object()


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _size_over(value, cap) -> bool:
    """A size (or list of sizes) the code would honour by allocating or looping for long."""
    if isinstance(value, list | tuple):
        return len(value) > 8 or any(_size_over(v, cap) for v in value)
    return (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            and cap < value <= HUGE)


def costly_settings(config: dict, defaults: bool) -> tuple[dict, dict, dict]:
    """(top-level fields, model options, data options) to pin so that `config` (a nested TrainConfig
    dict) trains in about a second; `defaults`: also pin options left at a costly default."""
    top, model, data = {}, {}, {}
    epochs = config.get("epochs", 10 if defaults else MISSING)
    if _integer(epochs) and epochs > 2:
        top["epochs"] = 1
    batch = config.get("batch_size")
    if _integer(batch) and 1 <= batch < 128:
        top["batch_size"] = 512
    latent = config.get("latent_dim")
    if _integer(latent) and 16 < latent <= HUGE:
        top["latent_dim"] = 2
    iw = config.get("iw_samples")
    if _integer(iw) and iw > 8:
        top["iw_samples"] = 2
    given = config.get("model")
    given = given if isinstance(given, dict) else {}
    family = config.get("family", "mlp")
    try:
        options = resolve_family(family).options() if isinstance(family, str) else {}
    except Exception:  # noqa: BLE001 - an unknown family fails validation: nothing will train
        options = {}
    for name, cap in MODEL_CAPS.items():
        if name in given:
            value = given[name]
        elif defaults and name in options:
            value = options[name]
        else:
            continue
        if _size_over(value, cap):
            model[name] = SAFE_MODEL[name]
    given_data = config.get("data")
    if isinstance(given_data, dict):
        if _size_over(given_data.get("resize"), 16):
            data["resize"] = [4, 4]
        if _size_over(given_data.get("channels"), 4):
            data["channels"] = 3
    return top, model, data


def pinning(assignments: list, config: dict, defaults: bool) -> list[str]:
    """--set arguments that pin the costly settings of `config`; written so that they win whatever order
    the generated --set assignments had (a whole-mapping `model={...}` is rewritten too)."""
    top, model, data = costly_settings(config, defaults)
    keys = {key for key, _ in assignments}
    argv = []
    for name, value in top.items():
        argv += ["--set", f"{name}={json.dumps(value)}"]
    for head, pinned in (("model", model), ("data", data)):
        if not pinned:
            continue
        if head in keys and isinstance(config.get(head), dict):
            argv += ["--set", f"{head}={json.dumps({**config[head], **pinned})}"]
        for name, value in pinned.items():
            argv += ["--set", f"{head}.{name}={json.dumps(value)}"]
    return argv


def _parse(argv: list[str]):
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return build_parser().parse_args(argv)
        except SystemExit:
            return None


def _train_config(args) -> dict | None:
    try:
        given = overrides_from(args)
    except Exception:  # noqa: BLE001 - the same error stops main before anything trains
        return None
    if args.resume and args.out:   # what the resumed run will train with: the saved config, updated
        try:
            saved = json.loads((Path(args.out) / "config.json").read_text())
        except (OSError, ValueError):
            return given
        if isinstance(saved, dict):
            for name in OPTION_FIELDS:
                if isinstance(saved.get(name), dict) and isinstance(given.get(name), dict):
                    given[name] = {**saved[name], **given[name]}
            given = {**saved, **given}
    return given


def _sweep_spec(args):
    from rdvae.cli.sweep import spec_from_args

    try:
        return spec_from_args(args)
    except Exception:  # noqa: BLE001 - the same error stops main before anything trains
        return None


def _sweep_costly(spec) -> bool:
    for index in range(len(spec.points)):
        try:
            settings = nest_model_options(spec.settings(index))
        except Exception:  # noqa: BLE001 - the point fails validation: nothing trains
            continue
        family = settings.get("family", "mlp")
        # an MLP family's default widths train in a second or two; a conv family's do not
        if any(costly_settings(settings, defaults=family not in SWEEP_FAMILIES)):
            return True
    return False


def guard(argv: list[str]) -> list[str]:
    """The argv made cheap (pinning appended) or the example rejected (a real reproduction, a
    quickstart, a local Ray cluster): only ever what the generated argv asks, at a small size."""
    args = _parse(argv)
    if args is None:
        return argv   # argparse refuses it: main will too, before anything runs
    if args.command == "quickstart":
        reject()
    if args.command == "repro" and args.name in REPROS and args.scale in SCALES:
        reject()
    if args.command == "train":
        config = _train_config(args)
        if config is not None:
            argv = argv + pinning(args.assignments, config, defaults=True)
    if args.command == "sweep":
        if args.executor == "ray" and not args.address and args.cpus_per_run > 0 and args.gpus_per_run >= 0:
            reject()   # would start a local Ray instance (tens of seconds)
        if args.workers is None:
            argv = argv + ["--workers", "1"]   # a spawned pool costs seconds per worker; --workers 2 is drawn
        spec = _sweep_spec(args)
        if spec is not None:
            config = nest_model_options(spec.base) if _safe_nest(spec.base) else None
            if config is not None:
                argv = argv + pinning(args.assignments, config, defaults=True)
    args = _parse(argv)
    if args is not None and args.command == "train":
        config = _train_config(args)
        if config is not None and any(costly_settings(config, defaults=True)):
            reject()
    if args is not None and args.command == "sweep":
        spec = _sweep_spec(args)
        if spec is not None and isinstance(spec, SweepSpec) and _sweep_costly(spec):
            reject()
    return argv


def _safe_nest(settings: dict) -> bool:
    try:
        nest_model_options(settings)
        return True
    except Exception:  # noqa: BLE001
        return False


# -- the property ------------------------------------------------------------------------------------------

class Hang(BaseException):
    """Raised in the main thread when one call runs past CALL_LIMIT_S (a BaseException, so that no
    `except Exception` in the code under test can swallow it)."""


def _alarm(signum, frame):
    raise Hang(f"main() ran longer than {CALL_LIMIT_S} s")


def call_main(argv: list[str]) -> int:
    """main(argv)'s exit status (SystemExit's code included) under a time limit; its exceptions propagate."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CALL_LIMIT_S)
    try:
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
    except Hang as hang:
        raise AssertionError(f"hang: {hang}: {argv}") from None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return 0 if code is None else code


def _subclass_names(*bases) -> set[str]:
    names, todo = set(), list(bases)
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo += cls.__subclasses__()
    return names


ERROR_LINE = re.compile(r"rdvae(?: [a-z]+)?: error: ")


def check_sweep_rows(out: Path) -> None:
    """A sweep records a run's failure in results.csv instead of raising: a failure that is not a
    user error (what main would print as one line) is a crash the sweep swallowed."""
    expected = _subclass_names(UserError, ConfigError, DataError, EvaluationError, TrainingDiverged,
                               FileNotFoundError)
    results = out / "results.csv"
    if not results.is_file():
        return
    with results.open(newline="") as f:
        for row in csv.DictReader(f):
            error = row.get("error") or ""
            if row.get("status") == "failed" and error.split(":", 1)[0] not in expected:
                raise AssertionError(f"sweep run {row.get('run_dir')} failed with a crash: {error}")


def fuzz_one(world: World, capfd, argv: list[str]) -> None:
    where = Path(tempfile.mkdtemp(dir=world.root, prefix="ex-"))
    try:
        argv = guard(world.resolve(argv, where))
        note(f"resolved argv: {argv}")
        run_and_check(argv, capfd, where)
    finally:
        shutil.rmtree(where, ignore_errors=True)


def run_and_check(argv: list[str], capfd, where: Path) -> int:
    """Call main(argv) in `where` and check the contract; returns the exit status."""
    cwd, threads, code = os.getcwd(), torch.get_num_threads(), None
    capfd.readouterr()
    os.chdir(where)
    try:
        code = call_main(argv)
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
        out, err = capfd.readouterr()
        note(f"exit {code}; stderr tail: {err[-1500:]}")
    assert code in (0, 2), f"exit status {code!r} (0 or 2 expected)"
    assert "Traceback" not in err and "Traceback" not in out, "a traceback was printed"
    if code == 2:
        lines = err.strip().splitlines()
        assert lines and ERROR_LINE.match(lines[-1]), "exit 2 without a one-line `rdvae CMD: error:`"
    args = _parse(argv)
    if code == 0 and args is not None and args.command == "sweep" and args.out:
        check_sweep_rows(Path(args.out))
    return code


def _settings(examples: int):
    return settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.filter_too_much, HealthCheck.data_too_large],
                    print_blob=False)


def _fuzz(command: str, world, capfd, monkeypatch, examples: int, suite: str) -> None:
    monkeypatch.setenv("RDVAE_OFFLINE", "1")

    # a fixed seed per (command, suite) instead of derandomize: the same examples every run, and the slow
    # suite does not repeat the default suite's
    @seed(zlib.crc32(f"{command}/{suite}".encode()))
    @_settings(examples)
    @given(argv=STRATEGIES[command])
    def property_(argv):
        fuzz_one(world, capfd, argv)

    property_()


@pytest.mark.parametrize("command", list(FAST))
def test_cli_fuzz(command, world, capfd, monkeypatch):
    _fuzz(command, world, capfd, monkeypatch, FAST[command], "fast")


@pytest.mark.slow
@pytest.mark.parametrize("command", list(SLOW))
def test_cli_fuzz_slow(command, world, capfd, monkeypatch):
    _fuzz(command, world, capfd, monkeypatch, SLOW[command], "slow")
