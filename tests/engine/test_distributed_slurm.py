"""Data-parallel `rdvae train` inside one Slurm job (slow: Debian's slurm-wlm and munge, root; the
single-node test cluster of tests/sweep/slurm_cluster.py). One sbatch job of two tasks on the 2-CPU node
trains two runs, one per job step:

- A: `srun --ntasks=1` starts torchrun, which starts the 2 ranks (the one-node job script of the docs);
- B: `srun --ntasks=2 rdvae train` starts the 2 ranks itself, no torchrun and no variables set by hand:
  rdvae takes torch.distributed's from Slurm's (rdvae.engine.distributed.slurm_step_environment).

Each ends done, trained by a world of 2, with one metrics row per epoch, and the two runs (same seed,
same world size) hold the same weights."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import pytest
import torch

from rdvae.rundir import WEIGHTS, RunDir, load_tensors

EPOCHS = 2
# the offline data folder, as tests/conftest.py finds it where RDVAE_DATA is not set
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
JOB_LIMIT_S = 480


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from tests.sweep.slurm_cluster import SlurmCluster, missing

    why = missing()
    if why:
        pytest.skip(why)
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs a node of 2 CPUs for a job of two tasks")
    with SlurmCluster(tmp_path_factory.mktemp("slurm-cluster"), cpus=2) as running:
        yield running


def _train(out: Path) -> str:
    return shlex.join(["-m", "rdvae", "train", "--dataset", "digits", "--epochs", str(EPOCHS), "--seed", "3",
                       "--no-progress", "--out", str(out)])


def job_script(folder: Path) -> str:
    python = shlex.quote(sys.executable)
    exports = {"RDVAE_DATA": os.environ.get("RDVAE_DATA", str(SHARED_DATA)), "OMP_NUM_THREADS": "1",
               "OMP_WAIT_POLICY": "PASSIVE"}
    if os.environ.get("RDVAE_CACHE"):
        exports["RDVAE_CACHE"] = os.environ["RDVAE_CACHE"]
    return "\n".join([
        "#!/bin/bash",
        *(f"export {name}={shlex.quote(value)}" for name, value in exports.items()),
        "echo \"job $SLURM_JOB_ID: $SLURM_NTASKS tasks on $SLURM_JOB_NODELIST\"",
        f"srun --ntasks=1 --cpus-per-task=2 {python} -m torch.distributed.run --standalone "
        f"--nproc-per-node=2 {_train(folder / 'run_a')}",
        "echo \"step A: exit status $?\"",
        f"srun --ntasks=2 --cpus-per-task=1 {python} {_train(folder / 'run_b')}",   # ranks: Slurm's
        "echo \"step B: exit status $?\"",
        "",
    ])


def _check(run: Path, log: str) -> None:
    assert (run / "summary.json").exists(), f"{run.name}: no summary.json; the job's log:\n{log[-6000:]}"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "done" and summary["world_size"] == 2, (summary, log[-3000:])
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == list(range(1, EPOCHS + 1))


@pytest.mark.slow  # a Slurm cluster, and a job of two steps that each start 2 processes importing torch
def test_one_job_trains_data_parallel_under_torchrun_and_under_slurms_tasks(cluster, tmp_path):
    script = tmp_path / "ddp.sh"
    script.write_text(job_script(tmp_path))
    log = tmp_path / "job.out"
    # --wait: sbatch returns when the job has ended, with the job's exit status
    submitted = cluster.run("sbatch", "--wait", "--nodes=1", "--ntasks=2", "--cpus-per-task=1", "--time=10",
                            "--job-name=rdvae-ddp", "--export=ALL", f"--chdir={tmp_path}", f"--output={log}",
                            str(script), check=False, timeout=JOB_LIMIT_S)
    text = log.read_text() if log.exists() else "(no log)"
    assert "Submitted batch job" in submitted, cluster.logs()
    assert "job " in text and ": 2 tasks on localhost" in text, text
    assert "step A: exit status 0" in text, text[-6000:]
    _check(tmp_path / "run_a", text)
    assert "step B: exit status 0" in text, text[-6000:]
    _check(tmp_path / "run_b", text)
    reports = [line for line in text.splitlines() if line.startswith("run: ")]
    assert len(reports) == 2, text[-6000:]   # rank 0 alone reports, in each step
    # the same ranks with the same seed, however started: the same weights, bit for bit on the CPU
    a, b = (load_tensors(RunDir(tmp_path / name) / WEIGHTS)[0] for name in ("run_a", "run_b"))
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
