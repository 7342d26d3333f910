"""The scripts in examples/ run end to end (small settings) and produce what they promise."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(args, cwd, timeout=120):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}   # RDVAE_DATA passes through when set
    result = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env, text=True,
                            capture_output=True, timeout=timeout)
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _finite_summary(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "done"
    assert math.isfinite(summary["rate"]) and math.isfinite(summary["distortion"])
    return summary


def _table_row(stdout: str, name: str) -> list[str]:
    rows = [line.split() for line in stdout.splitlines() if line.split()[:1] == [name]]
    assert len(rows) == 1, f"no table row for {name!r} in:\n{stdout}"
    return rows[0]


def test_own_model_trains_measures_and_plots_both_models(tmp_path):
    out = tmp_path / "own-model"
    stdout = _run([EXAMPLES / "own_model.py", "--out", out, "--epochs", "2", "--iw-samples", "10"], tmp_path)
    for name in ("own-mlp", "mlp"):
        row = _table_row(stdout, name)
        assert len(row) == 12 and all(math.isfinite(float(v)) for v in row[1:]), row  # params + 10 columns
    assert (out / "rd_plane.png").stat().st_size > 10_000
    own, mlp = _finite_summary(out / "own"), _finite_summary(out / "mlp")
    assert (own["family"], mlp["family"]) == ("own-mlp", "mlp")
    assert f"rdvae eval {out / 'own'} --plugin {EXAMPLES / 'own_model.py'} --iw-samples 1000" in stdout
    # the run recorded the script as its plugin (relative to the run folder, or absolute where the two share
    # no folder but the root: either way it names this file), and the printed next step names it again
    config = json.loads((out / "own" / "config.json").read_text())
    (recorded,) = config["plugins"]
    assert (out / "own" / recorded).resolve() == (EXAMPLES / "own_model.py").resolve()
    evaluated = _run(["-m", "rdvae", "eval", out / "own", "--plugin", EXAMPLES / "own_model.py",
                      "--iw-samples", "5", "--no-progress", "--json"], tmp_path)
    assert math.isfinite(json.loads(evaluated.strip().splitlines()[-1])["iw_nll"])


def test_own_data_trains_on_an_npz_an_image_folder_and_a_table(tmp_path):
    out = tmp_path / "own-data"
    stdout = _run([EXAMPLES / "own_data.py", "--out", out, "--epochs", "1", "--iw-samples", "5"], tmp_path)
    assert (out / "digits-binary.npz").is_file() and (out / "table.npy").is_file()
    assert sorted(p.name for p in (out / "digits-png").iterdir()) == [str(k) for k in range(10)]
    assert "exit 2: rdvae train: error:" in stdout   # grey PNGs under a Bernoulli decoder: refused
    for data, run, family in (("digits-binary.npz", "npz", "mlp"), ("digits-png", "png", "mlp"),
                              ("table.npy", "table", "mlp-gauss")):
        assert _table_row(stdout, data)[1] == family
        summary = _finite_summary(out / "runs" / run)
        assert summary["family"] == family and math.isfinite(summary["iw_nll"])   # written by rdvae eval
        config = json.loads((out / "runs" / run / "config.json").read_text())
        assert config["dataset"] == str((out / data).resolve()) and len(config["dataset_sha256"]) == 64
