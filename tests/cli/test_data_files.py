"""The CLI on the user's own data files: .npy, .npz with explicit splits, a folder of PNGs, a tabular array.

Runs `rdvae.cli.main` in-process (tiny models, one epoch); each test writes its data into tmp_path.
"""

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rdvae.cli import main

TINY = ["--epochs", "1", "--latent-dim", "2", "--set", "model.hidden=[16]", "--batch-size", "32",
        "--no-progress"]
METRICS = ("rate", "distortion", "elbo")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RDVAE_DATA", "/work/shared/data")


def _run(capsys, argv):
    """main(argv) -> (exit status, last JSON line of stdout or None, stderr)."""
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    result = json.loads(lines[-1]) if code == 0 and "--json" in argv else None
    return code, result, captured.err


def _train_and_eval(capsys, dataset, out, *extra, discrete=True):
    """Train then evaluate a run; both must succeed with finite R, D, ELBO that agree.
    discrete: D is then a -log-probability, so > 0 (a Gaussian density's D can be negative)."""
    argv = ["train", "--dataset", str(dataset), *TINY, *extra, "--out", out, "--json"]
    code, trained, err = _run(capsys, argv)
    assert code == 0, err
    assert trained["status"] == "done" and trained["epochs"] == 1
    for key in METRICS:
        assert math.isfinite(trained[key]), (key, trained)
    assert trained["rate"] >= 0 and (trained["distortion"] > 0 or not discrete)
    assert trained["elbo"] == pytest.approx(-(trained["rate"] + trained["distortion"]), rel=1e-4)

    code, evaluated, err = _run(capsys, ["eval", out, "--no-progress", "--json"])
    assert code == 0, err
    assert evaluated["examples"] == trained["examples"] and evaluated["split"] == "test"
    for key in METRICS:
        assert evaluated[key] == pytest.approx(trained[key], rel=1e-4, abs=1e-4), key
    summary = json.loads((Path(out) / "summary.json").read_text())
    assert summary["status"] == "done" and summary["elbo"] == pytest.approx(trained["elbo"])
    return trained, evaluated


def _config(out):
    return json.loads((Path(out) / "config.json").read_text())


def _records(out, data):
    """config.json names the data by its absolute path and holds the SHA-256 of its bytes."""
    config = _config(out)
    assert config["dataset"] == str(data.resolve())
    assert re.fullmatch(r"[0-9a-f]{64}", config["dataset_sha256"] or ""), config["dataset_sha256"]
    return config


def _binary_images(n, h=8, w=8, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, h, w)) < 0.3).astype(np.float32)


def _write_pngs(folder, n, size=8, grey=False, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir()
    for i in range(n):
        if grey:
            pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
        else:
            pixels = ((rng.random((size, size)) < 0.4) * 255).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"{i:03d}.png")


def test_npy_binary_images_train_eval_and_record_the_file(tmp_path, capsys):
    data = tmp_path / "binary.npy"
    np.save(data, _binary_images(60))
    trained, _ = _train_and_eval(capsys, data, "run", "--set", "data.valid_fraction=0.2",
                                 "--set", "data.test_fraction=0.25", "--set", "data.split_seed=3")
    assert trained["examples"] == 15  # round(60 * 0.25) test examples: the seeded split was applied
    assert trained["family"] == "mlp" and trained["latent_dim"] == 2

    config = _records("run", data)  # absolute, so the run works from any directory
    assert config["dataset_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert config["data"] == {"valid_fraction": 0.2, "test_fraction": 0.25, "split_seed": 3}


def test_npy_given_by_a_relative_path_is_recorded_absolute(tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "sub" / "x.npy", _binary_images(40))
    code, _, err = _run(capsys, ["train", "--dataset", "sub/x.npy", *TINY, "--out", "run"])
    assert code == 0, err
    _records("run", tmp_path / "sub" / "x.npy")


def test_npz_with_explicit_splits(tmp_path, capsys):
    rng = np.random.default_rng(1)
    data = tmp_path / "splits.npz"
    np.savez(data, x_train=(rng.random((50, 36)) < 0.4).astype(np.uint8),
             x_test=(rng.random((17, 36)) < 0.4).astype(np.uint8))
    trained, evaluated = _train_and_eval(capsys, data, "run")
    assert trained["examples"] == evaluated["examples"] == 17  # the file's own test split, not a fraction
    _records("run", data)


def test_png_folder_of_binary_images(tmp_path, capsys):
    folder = tmp_path / "pngs"
    _write_pngs(folder, 40)
    trained, _ = _train_and_eval(capsys, folder, "run")
    assert trained["examples"] == 4  # default test_fraction 0.1 of 40 images
    _records("run", folder)


def test_png_folder_of_grey_images_binarized_and_resized(tmp_path, capsys):
    folder = tmp_path / "grey"
    _write_pngs(folder, 40, size=10, grey=True)
    code, _, err = _run(capsys, ["train", "--dataset", str(folder), *TINY, "--set", "binarize=null",
                                 "--out", "refused"])
    assert code == 2 and "does not fit the data" in err and "Traceback" not in err
    # by default (binarize "auto") grey levels meeting a Bernoulli decoder are binarized dynamically
    code, _, err = _run(capsys, ["train", "--dataset", str(folder), *TINY, "--out", "auto"])
    assert code == 0 and _config("auto")["binarize"] == "dynamic", err

    resized, _ = _train_and_eval(capsys, folder, "run", "--binarize", "dynamic", "--set", "data.resize=[6,6]")
    assert _config("run")["data"]["resize"] == [6, 6]
    code, full, err = _run(capsys, ["train", "--dataset", str(folder), *TINY, "--binarize", "dynamic",
                                    "--out", "run10", "--json"])
    assert code == 0, err
    # the mlp's first and last layers scale with the pixels: 10x10 images need more weights than 6x6
    assert full["params"] > resized["params"]


def test_changed_file_is_detected_on_eval_and_resume(tmp_path, capsys):
    data = tmp_path / "binary.npy"
    images = _binary_images(40)
    np.save(data, images)
    code, _, err = _run(capsys, ["train", "--dataset", str(data), *TINY, "--out", "run"])
    assert code == 0, err
    original = data.read_bytes()

    changed = images.copy()
    changed[0, 0, 0] = 1 - changed[0, 0, 0]
    np.save(data, changed)
    for argv in (["eval", "run", "--no-progress"],
                 ["train", "--resume", "--out", "run", "--epochs", "2", "--no-progress"]):
        code, _, err = _run(capsys, argv)
        assert code == 2, argv
        assert "changed since the run was trained" in err and str(data.resolve()) in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["epochs"] == 1  # the refused resume trained nothing

    data.write_bytes(original)  # restored: both work again
    code, evaluated, err = _run(capsys, ["eval", "run", "--no-progress", "--json"])
    assert code == 0 and math.isfinite(evaluated["elbo"]), err
    code, resumed, err = _run(capsys, ["train", "--resume", "--out", "run", "--epochs", "2", "--no-progress",
                                       "--json"])
    assert code == 0 and resumed["epochs"] == 2 and math.isfinite(resumed["elbo"]), err


def test_changed_png_folder_is_detected_on_eval(tmp_path, capsys):
    folder = tmp_path / "pngs"
    _write_pngs(folder, 40)
    code, _, err = _run(capsys, ["train", "--dataset", str(folder), *TINY, "--out", "run"])
    assert code == 0, err
    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(folder / "000.png")
    code, _, err = _run(capsys, ["eval", "run", "--no-progress"])
    assert code == 2 and "changed since the run was trained" in err and "Traceback" not in err


def test_real_valued_table_needs_a_gaussian_decoder(tmp_path, capsys):
    data = tmp_path / "table.npy"
    np.save(data, np.random.default_rng(2).normal(size=(80, 5)).astype(np.float32))
    code, _, err = _run(capsys, ["train", "--dataset", str(data), *TINY, "--family", "mlp", "--out", "bern"])
    assert code == 2
    assert "does not fit the data" in err and "allow_improper_likelihood" in err and "Traceback" not in err
    assert not (tmp_path / "bern" / "summary.json").exists()

    trained, _ = _train_and_eval(capsys, data, "gauss", "--family", "mlp-gauss", discrete=False)
    assert trained["family"] == "mlp-gauss" and trained["examples"] == 8
    _records("gauss", data)
