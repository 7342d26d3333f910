"""Data-parallel training under torchrun (rdvae.engine.distributed): the ranks' union of shares is the
single process's batch, so a deterministic plan gets the single process's weights up to float rounding;
a resume under the same world size is exact, under another it continues; the divergence rules stop
every rank; `rdvae train` under torchrun and with --nproc."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rdvae.engine import Plan
from rdvae.rundir import WEIGHTS, RunDir, load_tensors

WORKER = str(Path(__file__).with_name("ddp_worker.py"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def torchrun(n: int, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc-per-node={n}", *args], env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def alone(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=ENV, capture_output=True, text=True, timeout=timeout)


def weights(run: Path) -> torch.Tensor:
    return load_tensors(RunDir(run) / WEIGHTS)[0]["weight"]


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr[-3000:]
    return result


# -- the shares of a batch ---------------------------------------------------------------------------
def test_a_batch_is_shared_out_whole_and_in_order():
    plan = Plan()
    x = torch.arange(10)
    shares = [plan.shard(x, r, 3) for r in range(3)]
    assert [s.tolist() for s in shares] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    pair = plan.shard((x, x * 2), 1, 3)
    assert isinstance(pair, tuple) and pair[1].tolist() == [8, 10, 12]
    assert plan.shard({"x": x}, 2, 3)["x"].tolist() == [7, 8, 9]
    assert plan.shard(None, 0, 2) is None
    assert [len(plan.shard(torch.arange(1), r, 2)) for r in range(2)] == [1, 0]
    with pytest.raises(TypeError, match="override shard"):
        plan.shard("text", 0, 2)


# -- training ----------------------------------------------------------------------------------------
def test_two_ranks_train_the_single_process_weights(tmp_path):
    # 33 examples in batches of 8: shares of 4 and 4, and a last batch of 1, smaller than the world:
    # one rank's share of it is empty and must count for nothing
    args = ["--epochs", "3", "--examples", "33", "--batch", "8"]
    ok(alone(WORKER, str(tmp_path / "one"), *args))
    result = ok(torchrun(2, WORKER, str(tmp_path / "two"), *args))
    assert json.loads(result.stdout.splitlines()[-1])["world_size"] == 2
    torch.testing.assert_close(weights(tmp_path / "two"), weights(tmp_path / "one"), rtol=0, atol=1e-6)
    # the epoch's figures are the whole batches' means, as one process measures them
    for a, b in zip(metrics(tmp_path / "one"), metrics(tmp_path / "two"), strict=True):
        assert math.isclose(a["train_loss"], b["train_loss"], rel_tol=1e-5)
        assert math.isclose(a["train_abs_error"], b["train_abs_error"], rel_tol=1e-5)


@pytest.mark.slow
def test_a_resume_under_the_same_world_size_is_exact(tmp_path):
    # each rank's own Monte Carlo draws are checkpointed: the interrupted run replays them bit for bit
    ok(torchrun(2, WORKER, str(tmp_path / "straight"), "--epochs", "3", "--noisy"))
    ok(torchrun(2, WORKER, str(tmp_path / "parts"), "--epochs", "1", "--noisy"))
    ok(torchrun(2, WORKER, str(tmp_path / "parts"), "--epochs", "3", "--noisy", "--resume"))
    assert torch.equal(weights(tmp_path / "parts"), weights(tmp_path / "straight"))
    assert not torch.equal(weights(tmp_path / "straight"), torch.zeros(1, 3))


@pytest.mark.slow
def test_a_resume_under_another_world_size_continues_the_same_batches(tmp_path):
    ok(alone(WORKER, str(tmp_path / "one"), "--epochs", "3"))
    ok(torchrun(2, WORKER, str(tmp_path / "moved"), "--epochs", "1"))
    result = ok(alone(WORKER, str(tmp_path / "moved"), "--epochs", "3", "--resume"))
    assert "checkpointed by 2 process(es) and continues under 1" in result.stderr
    torch.testing.assert_close(weights(tmp_path / "moved"), weights(tmp_path / "one"), rtol=0, atol=1e-6)


@pytest.mark.slow
def test_the_divergence_rules_stop_every_rank_at_once(tmp_path):
    # rank 1's loss turns NaN: its gradient poisons the average, every rank skips the update and the
    # rule (no skipped update allowed) stops both at the same step
    result = torchrun(2, WORKER, str(tmp_path / "run"), "--epochs", "3", "--nan-rank", "1")
    assert result.returncode != 0
    for rank in (0, 1):
        assert f"diverged on rank {rank}: 1 consecutive updates skipped at step 3" in result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "diverged"


# -- rdvae train ---------------------------------------------------------------------------------------
def test_rdvae_train_under_torchrun_matches_one_process_within_monte_carlo_error(tmp_path):
    common = ["train", "--dataset", "digits", "--epochs", "2", "--no-progress", "--seed", "3"]
    ok(alone("-m", "rdvae", *common, "--out", str(tmp_path / "one"), "--threads", "1"))
    ok(torchrun(2, "-m", "rdvae", *common, "--out", str(tmp_path / "two")))
    one = json.loads((tmp_path / "one" / "summary.json").read_text())
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert two["status"] == "done" and two["world_size"] == 2 and "world_size" not in one
    assert [m["epoch"] for m in metrics(tmp_path / "two")] == [1, 2]
    for key in ("elbo", "distortion"):   # two trainings with other draws: Monte Carlo error apart
        se = math.hypot(one[f"{key}_se"], two[f"{key}_se"])
        assert abs(one[key] - two[key]) < 4 * se, (key, one[key], two[key], se)


@pytest.mark.slow
def test_rdvae_train_nproc_starts_torchrun(tmp_path):
    result = alone("-m", "rdvae", "train", "--dataset", "digits", "--epochs", "1", "--no-progress",
                   "--nproc", "2", "--out", str(tmp_path / "run"))
    ok(result)
    assert result.stdout.count("run: ") == 1   # rank 0 alone reports
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["world_size"] == 2


@pytest.mark.slow
def test_a_global_batch_smaller_than_the_world_is_refused_on_every_rank(tmp_path):
    result = torchrun(2, "-m", "rdvae", "train", "--dataset", "digits", "--epochs", "1", "--no-progress",
                      "--batch-size", "1", "--out", str(tmp_path / "run"))
    assert result.returncode != 0
    assert result.stderr.count("batch_size 1 is smaller than the world size 2") == 2
    assert not (tmp_path / "run" / "config.json").exists()


# -- failures and several nodes (slow: real torchrun jobs of tens of seconds) ------------------------------
def _children(pid: int) -> dict[int, int]:
    """rank -> pid of the worker processes torchrun (pid) started."""
    ranks = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat[1]) == pid:
            rank = next((int(e[5:]) for e in environ if e.startswith(b"RANK=")), None)
            if rank is not None:
                ranks[rank] = int(proc.name)
    return ranks


def _start(tmp_path: Path, *extra: str, epochs: int = 40) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc-per-node=2", *extra, "-m", "rdvae", "train", "--dataset", "digits",
                             "--epochs", str(epochs), "--no-progress", "--out", str(tmp_path / "run")],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_rank_one_after(job: subprocess.Popen, run: Path, epochs: int, timeout: float = 240) -> None:
    import signal
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run / "metrics.jsonl").exists() and len(metrics(run)) >= epochs:
            workers = _children(job.pid)
            if 1 in workers:
                os.kill(workers[1], signal.SIGKILL)
                return
        time.sleep(0.2)
    job.kill()
    raise AssertionError("the run never reached the epoch to kill it at")


@pytest.mark.slow
def test_a_killed_rank_stops_the_job_and_resume_finishes_it(tmp_path):
    job = _start(tmp_path)
    _kill_rank_one_after(job, tmp_path / "run", 2)
    _, stderr = job.communicate(timeout=240)
    assert job.returncode != 0
    assert "rank 0 of 2" in stderr and ("another rank stopped" in stderr or "stopped by SIGTERM" in stderr)
    summary = tmp_path / "run" / "summary.json"
    assert not summary.exists() or json.loads(summary.read_text()).get("status") != "done"
    ok(torchrun(2, "-m", "rdvae", "train", "--resume", "--out", str(tmp_path / "run"), "--no-progress"))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "done" and summary["epochs_trained"] == 40
    assert [m["epoch"] for m in metrics(tmp_path / "run")] == list(range(1, 41))


@pytest.mark.slow
def test_torchrun_max_restarts_resumes_by_itself(tmp_path):
    job = _start(tmp_path, "--max-restarts=1")
    _kill_rank_one_after(job, tmp_path / "run", 2)
    _, stderr = job.communicate(timeout=300)
    assert job.returncode == 0, stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "done" and summary["epochs_trained"] == 40
    assert [m["epoch"] for m in metrics(tmp_path / "run")] == list(range(1, 41))


@pytest.mark.slow
def test_two_torchrun_agents_on_one_host_train_one_model(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
               "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=rdvae-test",
               "-m", "rdvae", "train", "--dataset", "digits", "--epochs", "2", "--no-progress",
               "--out", str(tmp_path / "run")]
    agents = [subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    for agent in agents:
        _, stderr = agent.communicate(timeout=300)
        assert agent.returncode == 0, stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "done" and summary["world_size"] == 2


# -- `srun --ntasks N rdvae train`: Slurm's tasks as the ranks -----------------------------------------------
STEP = {"SLURM_STEP_NUM_TASKS": "6", "SLURM_PROCID": "4", "SLURM_LOCALID": "1", "SLURM_NODEID": "2",
        "SLURM_STEP_TASKS_PER_NODE": "2(x2),1,1", "SLURM_STEP_NODELIST": "gpu[007-008,12],cpu1",
        "SLURM_JOB_ID": "4711", "SLURM_STEP_ID": "3"}


def test_a_slurm_step_of_several_tasks_gives_torch_distributed_its_variables():
    from rdvae.engine.distributed import slurm_step_environment

    assert slurm_step_environment(STEP) == {
        "RANK": "4", "WORLD_SIZE": "6", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "1",   # node 2 of 2,2,1,1
        "MASTER_ADDR": "gpu007", "MASTER_PORT": str(10000 + (4711 * 32 + 3) % 20000)}
    # the user's own address and port are kept
    assert "MASTER_ADDR" not in slurm_step_environment({**STEP, "MASTER_ADDR": "10.0.0.1"})
    assert "MASTER_PORT" not in slurm_step_environment({**STEP, "MASTER_PORT": "1234"})


@pytest.mark.parametrize("environ", [
    {**STEP, "RANK": "0"},                                              # torchrun (or the user) decides
    {k: v for k, v in STEP.items() if k != "SLURM_STEP_NUM_TASKS"},     # a batch script or salloc shell
    {**STEP, "SLURM_STEP_NUM_TASKS": "1"},                              # `srun rdvae train`, the executor
    {},
])
def test_outside_a_step_of_several_tasks_nothing_is_set(environ):
    from rdvae.engine.distributed import slurm_step_environment

    assert slurm_step_environment(environ) == {}


@pytest.mark.parametrize(("text", "counts"), [("4", [4]), ("2(x3),1", [2, 2, 2, 1]), ("1,3(x2)", [1, 3, 3])])
def test_slurms_tasks_per_node_are_expanded(text, counts):
    from rdvae.engine.distributed import tasks_per_node

    assert tasks_per_node(text) == counts


@pytest.mark.parametrize(("nodelist", "host"), [("localhost", "localhost"), ("n[01-04]", "n01"),
                                                ("n[3,1-2]", "n3"), ("a1,b[1-2]", "a1"),
                                                ("rack[2-3]-n[09-10]", "rack2-n09")])
def test_the_first_host_of_a_node_list_is_rank_0s(nodelist, host):
    from rdvae.engine.distributed import first_host

    assert first_host(nodelist) == host


@pytest.mark.parametrize(("change", "message"), [
    ({"SLURM_PROCID": "x"}, r"SLURM_PROCID must be an integer, got 'x'"),
    ({"SLURM_STEP_TASKS_PER_NODE": "2(x"}, r"SLURM_STEP_TASKS_PER_NODE='2\(x' is not a Slurm task count"),
    ({"SLURM_NODEID": "7"}, r"SLURM_NODEID=7 is not a node of SLURM_STEP_TASKS_PER_NODE"),
    ({"SLURM_STEP_NODELIST": "n[01-02"}, r"SLURM_STEP_NODELIST='n\[01-02' has an unclosed"),
])
def test_a_malformed_slurm_variable_is_named(change, message):
    from rdvae.engine.distributed import slurm_step_environment
    from rdvae.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        slurm_step_environment({**STEP, **change})


def test_the_threads_are_shared_by_the_steps_tasks_on_the_node(monkeypatch):
    from rdvae import device

    for name in ("RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**STEP, "SLURM_NODEID": "0"}.items():   # 2 tasks on this node
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(device, "free_cores", lambda: 8)
    previous = torch.get_num_threads()
    try:
        assert device.set_threads() == min(4, device.available_cores())
    finally:
        torch.set_num_threads(previous)
