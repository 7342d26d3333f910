"""Plugins end to end: every command runs in a fresh interpreter (`python -m rdvae ...`), so a plugin
that a run recorded in config.json must be imported again by eval, --resume, sweep workers (spawned
processes and Ray workers) and plot, and a plugin of the `rdvae.plugins` entry-point group must be
found in an "installed" package without any --plugin.

The data is a small binary .npy written by the tests (a fresh interpreter reads it far faster than it
imports scikit-learn for the bundled digits)."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

DATA = os.environ.get("RDVAE_DATA", str(Path(__file__).resolve().parents[2].parent / "shared" / "data"))
ENV = {**os.environ, "RDVAE_DATA": DATA, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
       "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg", "RAY_USAGE_STATS_ENABLED": "0"}
TIMEOUT = 180

# A plugin file (a copy of the documented example): an encoder, a decoder, a marginal and a family.
PLUGIN = '''\
import math

import torch
from torch import nn

from rdvae import register_decoder, register_encoder, register_family, register_marginal
from rdvae.components import BernoulliDecoder, GaussianEncoder, StandardNormal


class TinyTrunk(nn.Module):
    def __init__(self, shape, width):
        super().__init__()
        self.out_features = width
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), width), nn.Tanh())

    def forward(self, x):
        return self.net(x)


@register_encoder("tiny")
def tiny_encoder(event_shape, latent_dim, width=16):
    return GaussianEncoder(TinyTrunk(event_shape, width), latent_dim)


class TinyDec(nn.Module):
    def __init__(self, d, shape, width):
        super().__init__()
        self.shape = shape
        self.net = nn.Sequential(nn.Linear(d, width), nn.Tanh(), nn.Linear(width, math.prod(shape)))

    def forward(self, z):
        return self.net(z).reshape(*z.shape[:-1], *self.shape)


@register_decoder("tiny")
def tiny_decoder(event_shape, latent_dim, width=16):
    return BernoulliDecoder(TinyDec(latent_dim, tuple(event_shape), width), event_shape)


@register_marginal("tiny-normal")
def tiny_marginal(event_shape, latent_dim, scale=1.0):
    return StandardNormal(latent_dim)

'''
FAMILY = 'register_family("tiny", "tiny", "tiny", "tiny-normal", latent_dim=3, description="a family")\n'
TRAIN = ["train", "--family", "tiny", "--dataset", "binary.npy", "--epochs", "1", "--batch-size", "32",
         "--no-progress"]
SWEEP = ["sweep", "--dataset", "binary.npy", "--family", "tiny", "--grid", "beta=0.5,2", "--set", "epochs=1",
         "--set", "batch_size=32", "--no-progress"]
METRICS = ("rate", "distortion", "elbo")


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out.strip().splitlines()[-1])


def _start(args, cwd, env=None):
    return subprocess.Popen([sys.executable, "-m", "rdvae", *map(str, args)], cwd=cwd, env=env or ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc) -> Result:
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{proc.args} ran past {TIMEOUT} s; stderr: {err[-2000:]}")
    return Result(proc.returncode, out, err)


def rdvae(*args, cwd, env=None) -> Result:
    """`python -m rdvae ARGS` in a fresh interpreter."""
    return _finish(_start(args, cwd, env))


def rdvae_together(*calls, cwd, env=None) -> list[Result]:
    """Several independent commands at once (each a list of arguments), to save wall time."""
    procs = [_start(args, cwd, env) for args in calls]
    return [_finish(p) for p in procs]


def _ok(result: Result) -> Result:
    assert result.code == 0, f"exit {result.code}\nstdout: {result.out[-2000:]}\nstderr: {result.err[-4000:]}"
    assert "Traceback" not in result.err, result.err
    return result


def _one_line_error(result: Result, *needles):
    assert result.code == 2, f"exit {result.code}\nstdout: {result.out[-2000:]}\nstderr: {result.err[-4000:]}"
    assert "Traceback" not in result.err, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rdvae "), result.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _finite(result: dict, keys=METRICS):
    for key in keys:
        assert isinstance(result[key], float) and math.isfinite(result[key]), (key, result)
    assert result["rate"] >= 0 and result["distortion"] > 0
    assert result["elbo"] == pytest.approx(-(result["rate"] + result["distortion"]), rel=1e-4)


def _read(path: Path):
    return json.loads(path.read_text())


def _write_data(folder: Path) -> None:
    rng = np.random.default_rng(0)
    np.save(folder / "binary.npy", (rng.random((100, 6, 6)) < 0.3).astype(np.float32))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder with plug.py, binary.npy and `run`, trained with `--plugin plug.py` (a relative path)."""
    root = tmp_path_factory.mktemp("plugins")
    (root / "plug.py").write_text(PLUGIN + FAMILY)
    _write_data(root)
    trained = _ok(rdvae(*TRAIN, "--plugin", "plug.py", "--out", "run", "--json", cwd=root)).json()
    return {"root": root, "run": trained}


def test_train_with_a_plugin_file_records_its_path_from_the_run_folder_and_its_sha256(work):
    root, trained = work["root"], work["run"]
    assert trained["status"] == "done" and trained["family"] == "tiny"
    assert trained["latent_dim"] == 3  # the plugin family's default latent_dim
    _finite(trained)
    config = _read(root / "run" / "config.json")
    assert config["plugins"] == ["../plug.py"]   # relative to the run folder, not to where train ran
    assert config["plugin_fingerprints"] == {"plug": {"sha256": hashlib.sha256((PLUGIN + FAMILY).encode())
                                                      .hexdigest()}}
    assert config["family"] == "tiny"
    assert _read(root / "run" / "summary.json")["elbo"] == pytest.approx(trained["elbo"])


def test_eval_and_resume_import_the_recorded_plugin(work):
    root, trained = work["root"], work["run"]
    shutil.copytree(root / "run", root / "resumed")  # the other tests keep the one-epoch run
    # the recorded plugin is imported when named again (--plugin) or when the folder is trusted
    evaluated, resumed = rdvae_together(
        ["eval", "run", "--plugin", "plug.py", "--no-progress", "--json"],
        ["train", "--resume", "--out", "resumed", "--epochs", "2", "--trust-plugins", "--no-progress",
         "--json"], cwd=root)

    evaluated = _ok(evaluated).json()
    _finite(evaluated)
    assert evaluated["split"] == "test" and evaluated["examples"] == trained["examples"]
    for key in METRICS:
        assert evaluated[key] == pytest.approx(trained[key], rel=1e-4, abs=1e-4), key

    resumed = _ok(resumed).json()
    assert resumed["status"] == "done" and resumed["epochs"] == 2 and resumed["family"] == "tiny"
    _finite(resumed)
    records = [json.loads(line) for line in (root / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if "epoch" in r] == [1, 2]  # continued, not trained from scratch
    config = _read(root / "resumed" / "config.json")
    assert config["plugins"] == ["../plug.py"] and config["epochs"] == 2


def _check_sweep(out: Path, plugin: str):
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(float(r["beta"]), r["status"], r["error"]) for r in rows] == [(0.5, "done", ""),
                                                                         (2.0, "done", "")]
    for row in rows:
        assert row["family"] == "tiny" and row["latent_dim"] == "3"
        for key in METRICS:
            assert math.isfinite(float(row[key])), (key, row)
        assert _read(out / row["run_dir"] / "config.json")["plugins"] == [str(plugin)]
    assert float(rows[0]["rate"]) != float(rows[1]["rate"])  # each worker trained its own beta


def test_sweep_in_a_local_process_pool_then_plot(work):
    root = work["root"]
    result = _ok(rdvae(*SWEEP, "--executor", "local", "--workers", "2", "--plugin", "plug.py",
                       "--out", "sweep", "--json", cwd=root))
    assert len(result.json()["trained"]) == 2 and result.json()["failed"] == []
    _check_sweep(root / "sweep", "../../../plug.py")
    assert _read(root / "sweep" / "sweep.json")["base"]["plugins"] == ["../plug.py"]

    # plot loads the runs' models for the image grids: their config.json names the plugin, named again
    plotted = _ok(rdvae("plot", "sweep", "--format", "png", "--plugin", "plug.py", "--no-progress", cwd=root))
    files = [root / line for line in plotted.out.split()]
    names = sorted(f.name for f in files)
    assert names == ["elbo_rate.png", "rd_plane.png", "reconstructions.png", "samples.png"], plotted.out
    for f in files:
        assert f.parent == root / "sweep" / "figures" and f.stat().st_size > 1000, f


@pytest.mark.slow
def test_sweep_on_ray(work):
    pytest.importorskip("ray", reason="needs ray, from the [ray] extra: pip install 'rdvae[ray]'")
    root = work["root"]
    result = _ok(rdvae(*SWEEP, "--executor", "ray", "--ray-cpus", "2", "--cpus-per-run", "1", "--plugin",
                       "plug.py", "--out", "ray-sweep", "--json", cwd=root))
    assert len(result.json()["trained"]) == 2 and result.json()["failed"] == []
    _check_sweep(root / "ray-sweep", "../../../plug.py")


def test_a_plugin_missing_later_is_one_clear_error(work):
    root = work["root"]
    plugin = (root / "plug.py").resolve()
    assert _read(root / "run" / "config.json")["plugins"] == ["../plug.py"]
    plugin.rename(root / "renamed.py")  # moved after training; put back below for the other tests
    try:
        evaluated, resumed = rdvae_together(["eval", "run", "--no-progress"],
                                            ["train", "--resume", "--out", "run", "--epochs", "2",
                                             "--no-progress"], cwd=root)
    finally:
        (root / "renamed.py").rename(plugin)
    assert _one_line_error(evaluated, str(plugin)).startswith("rdvae eval: error: ")
    assert _one_line_error(resumed, str(plugin)).startswith("rdvae train: error: ")
    assert _read(root / "run" / "summary.json")["epochs"] == 1  # the refused resume trained nothing


def test_an_unknown_option_of_a_plugin_builder_suggests_the_right_one(work):
    root = work["root"]
    result = rdvae(*TRAIN, "--plugin", "plug.py", "--set", "model.widht=3", "--out", "typo", cwd=root)
    line = _one_line_error(result, "did you mean 'width'", "'widht'")
    assert line.startswith("rdvae train: error: ")
    assert not (root / "typo" / "summary.json").exists()


def _installed_package(site: Path) -> None:
    """mypkg as pip would install it: the package and its dist-info with two `rdvae.plugins` entry points,
    a module (importing it registers the components) and a module:function (called: registers the family)."""
    (site / "mypkg").mkdir(parents=True)
    (site / "mypkg" / "__init__.py").write_text(PLUGIN)
    (site / "mypkg" / "families.py").write_text(
        "from rdvae import register_family\n\n\ndef setup():\n    " + FAMILY)
    info = site / "mypkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mypkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[rdvae.plugins]\nmine = mypkg\nmine-family = mypkg.families:setup\n")


def test_an_entry_point_plugin_needs_no_flag(tmp_path):
    _installed_package(tmp_path / "site")
    _write_data(tmp_path)
    installed = {**ENV, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "site"),
                                                                     ENV.get("PYTHONPATH")]))}
    trained = _ok(rdvae(*TRAIN, "--out", "run", "--json", cwd=tmp_path, env=installed)).json()  # no --plugin
    assert trained["family"] == "tiny" and trained["latent_dim"] == 3
    _finite(trained)
    assert _read(tmp_path / "run" / "config.json")["plugins"] == []  # found through the group, not recorded

    # eval finds it again through the entry points
    evaluated = _ok(rdvae("eval", "run", "--no-progress", "--json", cwd=tmp_path, env=installed)).json()
    _finite(evaluated)
    for key in METRICS:
        assert evaluated[key] == pytest.approx(trained[key], rel=1e-4, abs=1e-4), key
