"""The slurm executor. Fast tests (only the [dev] extra): its options, its messages, how it reads Slurm's
states and what it does with them, against a stand-in for submitit and Slurm's commands. Slow tests
(-m slow; the [slurm] extra, Debian's slurm-wlm and munge, root): a real single-node Slurm started
for the module (tests/sweep/slurm_cluster.py), a sweep through it, and a scancel mid-run that a
second run of the sweep resumes."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import re
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest
from tests.helpers import need

from rdvae.errors import ConfigError
from rdvae.sweep import EXECUTORS, ExecutorError, SweepSpec, run_sweep, sweep
from rdvae.sweep import slurm as slurm_executor
from rdvae.sweep.slurm import SlurmRun, job_error, parse_states, run_slurm, slurm_parameters
from rdvae.sweep.task import RUN_LOCK, Task


def _nothing(task, outcome):
    raise AssertionError("no run should finish")


# -- registration and options -------------------------------------------------------------------------
def test_rdvae_list_executors_shows_slurm_without_submitit():
    code = ("import sys; sys.modules['submitit'] = None\n"   # import submitit -> ImportError
            "from rdvae.cli import main\n"
            "main(['list', 'executors'])")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    slurm = next(i for i, line in enumerate(lines) if line.split()[:1] == ["slurm"])
    assert "pip install 'rdvae[slurm]'" in lines[slurm]
    assert "partition=None" in lines[slurm + 1] and "cpus_per_task=1" in lines[slurm + 1]
    assert EXECUTORS["slurm"] is run_slurm


@pytest.mark.parametrize(("options", "match"), [
    ({"time": 0}, r"time=0 is not allowed: it must be minutes"),
    ({"time": "soon"}, r"time='soon' is not allowed: .*D-HH:MM:SS"),
    ({"time": "0:00"}, r"time='0:00'"),
    ({"cpus_per_task": 0}, r"cpus_per_task=0 is not allowed: it must be an integer >= 1"),
    ({"gpus_per_task": -1}, r"gpus_per_task=-1 is not allowed: it must be an integer >= 0"),
    ({"mem_gb": 0}, r"mem_gb=0 is not allowed: it must be a number of GB > 0"),
    ({"mem_gb": "4G"}, r"mem_gb='4G'"),
    ({"partition": "gpu a100"}, r"partition='gpu a100' is not allowed: .*without spaces"),
    ({"account": ""}, r"account=''"),
    ({"qos": 3}, r"qos=3"),
    ({"job_name": "a\nb"}, r"job_name="),
    ({"setup": "module load cuda"}, r"setup='module load cuda' is not allowed: it must be a list"),
    ({"sbatch": ["constraint=a100"]}, r"sbatch=\['constraint=a100'\] is not allowed: it must be a mapping"),
    ({"sbatch": {"time": "1:00:00"}}, r"'time' is set by the slurm executor; use the time option"),
    ({"sbatch": {"output": "x.log"}}, r"'output' is set by the slurm executor; use the executor's log files"),
    ({"sbatch": {"mem_per_cpu": "2G", "array": "0-3"}}, r"'array' is set by the slurm executor"),
    ({"sbatch": {"ntasks": 4}}, r"'ntasks' is set by the slurm executor; use one task on one node per run"),
    ({"sbatch": {"--constraint": "a100"}}, r"'--constraint' is not an sbatch option name"),
    ({"sbatch": {"constraint": ["a100"]}}, r"the value of 'constraint' must be a one-line string"),
    ({"sbatch": {"exclusive": False}}, r"the value of 'exclusive'"),
    ({"array_parallelism": -2}, r"array_parallelism=-2 is not allowed: it must be an integer >= 0"),
    ({"poll_seconds": 0}, r"poll_seconds=0 is not allowed: it must be a number of seconds > 0"),
    ({"requeue": "yes"}, r"requeue='yes' is not allowed: it must be true or false"),
])
def test_a_bad_option_is_refused_naming_it(options, match):
    with pytest.raises(ExecutorError, match=match) as caught:
        run_slurm([], _nothing, **options)
    assert str(caught.value).startswith("slurm executor: option ")


@pytest.mark.parametrize(("value", "minutes"), [
    (None, 60), (90, 90), (2.5, 3), ("45", 45), ("1:30", 2), ("1:30:00", 90), ("2-00:00:00", 2880),
    ("1-2", 1560), ("1-2:30", 1590), (" 0:30 ", 1)])
def test_time_is_minutes_or_a_slurm_time_string(value, minutes):
    assert slurm_parameters(time=value)["time"] == minutes


def test_options_become_submitit_parameters():
    parameters = slurm_parameters(partition="gpu,cpu", time="4:00:00", cpus_per_task=8, gpus_per_task=1,
                                  mem_gb=1.5, account="lab", qos="high", job_name="beta sweep",
                                  setup=["module load cuda"],
                                  sbatch={"constraint": "a100", "mail_type": "END", "exclusive": True})
    assert parameters == {"time": 240, "cpus_per_task": 8, "partition": "gpu,cpu", "account": "lab",
                          "qos": "high", "job_name": "beta sweep", "wckey": None, "gpus_per_task": 1,
                          "mem": "1536M", "setup": ["module load cuda"], "additional_parameters": {
                              "constraint": "a100", "mail-type": "END", "exclusive": True}}
    assert "gpus_per_task" not in slurm_parameters() and "mem" not in slurm_parameters()


def test_the_registry_checks_the_kind_and_name_of_options(tmp_path, tiny_base):
    spec = SweepSpec(base=tiny_base, points=[{"beta": 1.0}])
    with pytest.raises(ConfigError, match=r"cpus_per_task='2' must be an integer"):
        run_sweep(tmp_path / "a", spec, executor="slurm", executor_options={"cpus_per_task": "2"},
                  progress=False)
    with pytest.raises(ConfigError, match=r"partitions?.*partition"):
        run_sweep(tmp_path / "b", spec, executor="slurm", executor_options={"partitions": "gpu"},
                  progress=False)


def test_missing_submitit_says_how_to_install(tmp_path, tiny_base, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    spec = SweepSpec(base=tiny_base, points=[{"beta": 1.0}])
    with pytest.raises(ExecutorError, match=r"needs submitit, which is not installed: pip install "
                                            r"'rdvae\[slurm\]'"):
        run_sweep(tmp_path, spec, executor="slurm", progress=False)


def test_missing_sbatch_says_where_to_run(tmp_path, tiny_base, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", types.ModuleType("submitit"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    spec = SweepSpec(base=tiny_base, points=[{"beta": 1.0}])
    with pytest.raises(ExecutorError, match=r"sbatch, squeue, scancel, srun are not on PATH: run `rdvae "
                                            r"sweep` on a machine that submits to the cluster"):
        run_sweep(tmp_path, spec, executor="slurm", progress=False)


# -- Slurm's states, and the outcomes they give ------------------------------------------------------------
def test_squeue_and_sacct_states_are_read_per_job():
    text = ("12_[2-5%2]|PENDING\n12_0|RUNNING\n13|CANCELLED by 0\n13.batch|CANCELLED\n"
            "14_[1,3-4]|PENDING\n15_[0-6:3]|PENDING\n16|FAILED+\n")
    assert parse_states(text) == {
        "12_2": "PENDING", "12_3": "PENDING", "12_4": "PENDING", "12_5": "PENDING", "12_0": "RUNNING",
        "13": "CANCELLED", "14_1": "PENDING", "14_3": "PENDING", "14_4": "PENDING", "15_0": "PENDING",
        "15_3": "PENDING", "15_6": "PENDING", "16": "FAILED"}


def test_a_job_failure_is_one_line():
    failed = RuntimeError("Job (task=0) failed during processing with trace:\n----------------------\n"
                          "Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                          "ImportError: no rdvae\n"
                          "----------------------\nYou can check full logs with 'job.stderr(0)'")
    assert job_error(failed) == "ImportError: no rdvae"
    assert job_error(RuntimeError("Job 3 (task: 0) with path /x\nhas not produced any output (state: "
                                  "FAILED)\nError stream produced:")) == \
        "Job 3 (task: 0) with path /x has not produced any output (state: FAILED)"


class FakeJob:
    """What the executor reads of a submitit job: its id, its files and its result."""

    def __init__(self, folder: Path, job_id: str, result=None):
        self.job_id = job_id
        self.outcome = result
        self.paths = types.SimpleNamespace(result_pickle=folder / f"{job_id}_0_result.pkl",
                                           stdout=folder / f"{job_id}_0_log.out",
                                           stderr=folder / f"{job_id}_0_log.err")

    def finish(self, outcome: dict) -> None:
        self.outcome = outcome
        self.paths.result_pickle.write_text("done")

    def result(self):
        return self.outcome


def _task(tmp_path: Path, index: int) -> Task:
    name = f"{index}-beta={index}"
    return Task(index=index, name=name, run_dir=str(tmp_path / "runs" / name), config={})


def _polls(monkeypatch, *polls):
    """slurm_states answering each poll in turn (the last one from then on)."""
    answers = list(polls)
    monkeypatch.setattr(slurm_executor, "slurm_states",
                        lambda ids: answers.pop(0) if len(answers) > 1 else answers[0])


def test_a_result_file_a_cancel_and_a_requeue_give_one_outcome_each(tmp_path, monkeypatch):
    done, cancelled, requeued = (FakeJob(tmp_path, f"5_{i}") for i in range(3))
    tasks = [_task(tmp_path, i) for i in range(3)]
    pending = {job.job_id: (task, job) for task, job in zip(tasks, (done, cancelled, requeued), strict=True)}
    done.finish({"status": "done", "summary": {"rate": 1.0}, "error": None, "trained": True})
    seen = []

    def on_result(task, outcome):
        seen.append((task.name, outcome))
        if len(seen) == 2:   # the requeued job comes back and finishes
            requeued.finish({"status": "done", "summary": {"rate": 2.0}, "error": None, "trained": True})

    _polls(monkeypatch, {"5_0": "COMPLETED", "5_1": "RUNNING", "5_2": "PREEMPTED"},
           {"5_1": "CANCELLED", "5_2": "PENDING"},   # a preempted job that Slurm requeued: not ended
           {"5_1": "CANCELLED", "5_2": "RUNNING"},
           {"5_2": "RUNNING"})
    slurm_executor._wait(pending, on_result, tmp_path / "slurm", 0)
    assert not pending
    assert [name for name, _ in seen] == ["0-beta=0", "1-beta=1", "2-beta=2"]
    assert seen[0][1] == {"status": "done", "summary": {"rate": 1.0}, "error": None, "trained": True,
                          "slurm_job": "5_0"}
    failed = seen[1][1]
    assert failed["status"] == "failed" and failed["summary"] is None and not failed["trained"]
    assert failed["error"] == ("Slurm job 5_1 ended CANCELLED before the run finished; the run keeps its "
                               "last checkpoint and running the sweep again resumes it (log: "
                               "slurm/1-beta=1.err)")
    assert seen[2][1]["status"] == "done" and seen[2][1]["summary"] == {"rate": 2.0}


def test_a_preempted_job_is_given_time_to_be_requeued(tmp_path, monkeypatch):
    job = FakeJob(tmp_path, "6")
    pending = {"6": (_task(tmp_path, 0), job)}
    polls = [{"6": "PREEMPTED"}] * 4

    def states(ids):
        if not polls:   # Slurm requeued it (after GraceTime), and it ran to the end
            job.finish({"status": "done", "summary": {}, "error": None, "trained": True})
        return polls.pop() if polls else {"6": "RUNNING"}

    monkeypatch.setattr(slurm_executor, "slurm_states", states)
    seen = []
    slurm_executor._wait(pending, lambda task, outcome: seen.append(outcome["status"]), tmp_path, 0)
    assert seen == ["done"]


@pytest.mark.parametrize(("state", "said"), [
    ("PREEMPTED", "ended PREEMPTED before the run finished"),
    ("COMPLETED", "ended COMPLETED without a result file (its Python ended early) before the run finished")])
def test_a_state_that_stays_ended_past_its_grace_is_reported(tmp_path, monkeypatch, state, said):
    monkeypatch.setitem(slurm_executor.ENDED_GRACE_S, state, 0.0)
    pending = {"6": (_task(tmp_path, 0), FakeJob(tmp_path, "6"))}
    _polls(monkeypatch, {"6": state})
    seen = []
    slurm_executor._wait(pending, lambda task, outcome: seen.append(outcome["error"]), tmp_path, 0)
    assert len(seen) == 1 and seen[0].startswith(f"Slurm job 6 {said}; the run keeps its last checkpoint")


def test_a_job_slurm_forgot_is_reported_with_sacct_state_or_unknown(tmp_path, monkeypatch):
    jobs = [FakeJob(tmp_path, "8"), FakeJob(tmp_path, "9")]
    pending = {job.job_id: (_task(tmp_path, i), job) for i, job in enumerate(jobs)}
    _polls(monkeypatch, {})   # squeue knows neither (past MinJobAge)
    monkeypatch.setattr(slurm_executor, "accounted_state",
                        lambda job_id: "TIMEOUT" if job_id == "8" else None)
    seen = {}
    slurm_executor._wait(pending, lambda task, outcome: seen.update({task.index: outcome["error"]}),
                         tmp_path / "slurm", 0)
    assert seen[0].startswith("Slurm job 8 ended TIMEOUT before the run finished")
    assert seen[1].startswith("Slurm job 9 ended in an unknown state (squeue no longer shows it and sacct "
                              "has no record) before the run finished")


def test_an_unreachable_controller_reports_nothing(tmp_path, monkeypatch):
    job = FakeJob(tmp_path, "4")
    pending = {"4": (_task(tmp_path, 0), job)}
    polls = [None, None, None]

    def states(ids):
        if not polls:
            job.finish({"status": "done", "summary": {}, "error": None, "trained": True})
            return None
        return polls.pop()

    monkeypatch.setattr(slurm_executor, "slurm_states", states)
    seen = []
    slurm_executor._wait(pending, lambda task, outcome: seen.append(outcome["status"]), tmp_path, 0)
    assert seen == ["done"]


class FakeExecutor:
    """submitit.SlurmExecutor as the slurm executor uses it; jobs 7_0, 7_1, ... (7 when alone)."""

    made: list = []

    def __init__(self, folder, max_num_timeout):
        self.folder = Path(folder)
        self.parameters: dict = {}
        self.jobs: list[FakeJob] = []
        self.batched = False
        FakeExecutor.made.append(self)

    def update_parameters(self, **parameters):
        self.parameters.update(parameters)

    @contextlib.contextmanager
    def batch(self):
        self.batched = True
        yield

    def submit(self, function, task, threads):
        assert isinstance(function, SlurmRun) and threads == self.parameters["cpus_per_task"]
        self.jobs.append(FakeJob(self.folder, f"7_{len(self.jobs)}"))
        return self.jobs[-1]


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """A stand-in for submitit, and Slurm's commands on PATH: squeue says every job is RUNNING, scancel
    writes its arguments to scancel.txt."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {"sbatch": "exit 0", "srun": "exit 0",
               "squeue": "printf '7_0|RUNNING\\n7_1|RUNNING\\n7_2|RUNNING\\n'",
               "scancel": f"echo \"$@\" >> {tmp_path / 'scancel.txt'}"}
    for name, body in scripts.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    module = types.ModuleType("submitit")
    module.SlurmExecutor = FakeExecutor
    monkeypatch.setitem(sys.modules, "submitit", module)
    FakeExecutor.made = []
    return tmp_path


@pytest.mark.parametrize("leave", [False, True])
def test_an_interrupted_sweep_cancels_its_jobs_unless_told_to_leave_them(fake_slurm, capsys, monkeypatch,
                                                                          leave):
    tasks = [_task(fake_slurm / "sweep", i) for i in range(3)]
    seen = []

    def on_result(task, outcome):
        seen.append(task.name)
        raise KeyboardInterrupt   # Ctrl-C while the first result is recorded

    def finish_first(seconds):
        FakeExecutor.made[0].jobs[0].finish({"status": "done", "summary": {}, "error": None})

    monkeypatch.setattr(slurm_executor, "clock", types.SimpleNamespace(sleep=finish_first,
                                                                     monotonic=time.monotonic))
    with pytest.raises(KeyboardInterrupt):
        run_slurm(tasks, on_result, partition="debug", cpus_per_task=2, cancel_on_interrupt=not leave,
                  poll_seconds=0.01)
    executor = FakeExecutor.made[0]
    assert executor.batched and executor.folder == fake_slurm / "sweep" / "slurm"
    assert executor.parameters["job_name"] == "rdvae-sweep" and executor.parameters["array_parallelism"] == 3
    assert seen == ["0-beta=0"]
    err = capsys.readouterr().err
    assert "3 run(s) submitted to Slurm (job array 7)" in err
    if leave:
        assert not (fake_slurm / "scancel.txt").exists()
        assert "the Slurm jobs of 2 unfinished run(s) go on (7_1, 7_2)" in err
    else:
        assert (fake_slurm / "scancel.txt").read_text().split() == ["7_1", "7_2"]
        assert "cancelled the Slurm jobs of the 2 unfinished run(s)" in err
    links = executor.folder / "1-beta=1.out"
    assert links.is_symlink() and str(links.readlink()) == "7_1_0_log.out"


def test_jobs_submitted_one_by_one_without_array(fake_slurm, monkeypatch):
    tasks = [_task(fake_slurm / "sweep", i) for i in range(2)]

    def submit_done(self, function, task, threads):
        job = FakeJob(self.folder, str(40 + len(self.jobs)))
        job.finish({"status": "done", "summary": {"n": task.index}, "error": None, "trained": True})
        self.jobs.append(job)
        return job

    outcomes = {}
    monkeypatch.setattr(FakeExecutor, "submit", submit_done)
    run_slurm(tasks, lambda task, outcome: outcomes.update({task.index: outcome}), array=False,
              poll_seconds=0.01)
    assert not FakeExecutor.made[0].batched
    assert outcomes == {i: {"status": "done", "summary": {"n": i}, "error": None, "trained": True,
                            "slurm_job": str(40 + i)} for i in range(2)}


# -- a real Slurm (slow) -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from tests.sweep.slurm_cluster import SlurmCluster, missing

    need("submitit", "slurm")
    why = missing()
    if why:
        pytest.skip(why)
    with SlurmCluster(tmp_path_factory.mktemp("slurm-cluster")) as running:
        yield running


def _rows(out: Path) -> list[dict]:
    with (out / "results.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _log_of(out: Path, name: str, suffix: str = ".out") -> Path:
    link = out / "slurm" / f"{name}{suffix}"
    assert link.is_symlink(), f"no log link {link}"
    return link


@pytest.mark.slow  # a Slurm cluster, and jobs that start Python and import torch: ~15 s each way
@pytest.mark.parametrize("array", [True, False])
def test_a_sweep_runs_through_slurm(cluster, tmp_path, tiny_base, array):
    spec = SweepSpec(base=tiny_base, points=sweep("beta", [0.5, 2.0]))
    out = tmp_path / "sweep"
    report = run_sweep(out, spec, executor="slurm", progress=False,
                       executor_options={"poll_seconds": 0.5, "array": array, "time": "0:10:00"})
    assert sorted(report.trained) == [f"runs/{name}" for name in spec.names] and not report.failed
    rows = _rows(out)
    assert [r["run_dir"] for r in rows] == [f"runs/{name}" for name in spec.names]   # one row per run
    assert all(r["status"] == "done" and r["rate"] for r in rows)
    for name in spec.names:
        log = _log_of(out, name).resolve()
        assert log.parent == out / "slurm" and f"rdvae: run {name} (" in log.read_text()
        assert "Job completed successfully" in log.read_text()   # submitit's own lines
        assert _log_of(out, name, ".err").resolve().is_file()
    again = run_sweep(out, None, executor="slurm", progress=False)   # nothing left: nothing submitted
    assert sorted(again.skipped) == sorted(report.trained) and not again.trained
    assert len(_rows(out)) == 2


def _counters(run_dir: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(run_dir / "trainer_state.safetensors"), "pt") as f:
        return json.loads(f.metadata()["counters"])


def _wait_unlocked(path: Path, limit_s: float = 60) -> None:
    """Until no process holds the run's lock (the cancelled job's Python is gone)."""
    deadline = time.monotonic() + limit_s
    with path.open("a") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(f, fcntl.LOCK_UN)
                return
            except BlockingIOError:
                assert time.monotonic() < deadline, f"{path} still locked after {limit_s} s"
                time.sleep(0.2)


class Background:
    """run_sweep in a thread, and the wait for its long run to be mid-way (checkpointed, 3 epochs in)."""

    def __init__(self, out: Path, spec, options: dict, long_run: Path):
        self.long_run = long_run
        self.result: dict = {}
        self.thread = threading.Thread(target=self._run, args=(out, spec, options))
        self.thread.start()

    def _run(self, out, spec, options):
        try:
            self.result["report"] = run_sweep(out, spec, executor="slurm", progress=False,
                                              executor_options=options)
        except BaseException as err:  # noqa: BLE001 - re-raised by the test
            self.result["error"] = err

    def mid_run(self, cluster, limit_s: float = 180) -> None:
        deadline = time.monotonic() + limit_s
        metrics = self.long_run / "metrics.jsonl"
        while not ((self.long_run / "trainer_state.safetensors").exists() and metrics.exists()
                   and len(metrics.read_text().splitlines()) >= 3):
            assert self.thread.is_alive() and time.monotonic() < deadline, self.result or cluster.logs()
            time.sleep(0.2)

    def report(self, limit_s: float = 180):
        self.thread.join(limit_s)
        assert not self.thread.is_alive() and "error" not in self.result, self.result
        return self.result["report"]


# ~45 s of training here (180 steps an epoch): long beside the ~6 s from seeing it mid-way to the SIGKILL
# of a scancel (its round trip, then srun waits KillWait + 2 s), ~20 epochs here, so that a machine
# several times faster still cannot finish it in between
LONG = {"beta": 2.0, "epochs": 150, "batch_size": 8}


@pytest.mark.slow  # as above, and a run of 250 short epochs trained in two jobs
def test_a_scancelled_run_is_resumed_by_running_the_sweep_again(cluster, tmp_path, tiny_base):
    spec = SweepSpec(base=tiny_base, points=[{"beta": 0.5}, LONG])
    out = tmp_path / "sweep"
    options = {"poll_seconds": 0.5, "time": 10}
    long_run = out / "runs" / spec.names[1]
    background = Background(out, spec, options, long_run)
    background.mid_run(cluster)
    job_id = "_".join(_log_of(out, spec.names[1]).readlink().name.split("_")[:2])   # 1_1_0_log.out -> 1_1
    cluster.run("scancel", job_id)
    report = background.report()
    assert report.trained == [f"runs/{spec.names[0]}"] and report.failed == [f"runs/{spec.names[1]}"]
    rows = _rows(out)
    assert [r["status"] for r in rows] == ["done", "failed"]
    assert rows[1]["error"].startswith(f"Slurm job {job_id} ended CANCELLED before the run finished")

    _wait_unlocked(long_run / RUN_LOCK)   # SIGKILL after KillWait: the job's last checkpoint stays
    assert not (long_run / "summary.json").exists() or json.loads(
        (long_run / "summary.json").read_text()).get("status") != "done"
    saved = _counters(long_run)
    assert 1 <= saved["epoch"] < LONG["epochs"] and saved["step"] > 0
    before = [json.loads(line) for line in (long_run / "metrics.jsonl").read_text().splitlines()]
    before = [m for m in before if m["epoch"] <= saved["epoch"]]

    report = run_sweep(out, None, executor="slurm", progress=False, executor_options=options)
    assert report.skipped == [f"runs/{spec.names[0]}"] and report.trained == [f"runs/{spec.names[1]}"]
    rows = _rows(out)
    assert [r["run_dir"] for r in rows] == [f"runs/{name}" for name in spec.names]   # exactly one row each
    assert [r["status"] for r in rows] == ["done", "done"] and not rows[1]["error"]
    after = [json.loads(line) for line in (long_run / "metrics.jsonl").read_text().splitlines()]
    # resumed, not restarted: the epochs trained before the scancel are kept as they were (their
    # timings too), and the epochs go on from the checkpoint's to the end, each once
    assert after[:len(before)] == before
    assert [m["epoch"] for m in after] == list(range(1, LONG["epochs"] + 1))
    log = _log_of(out, spec.names[1])
    assert not log.readlink().name.startswith(f"{job_id}_")   # the run's log link names the new job
    assert (f"resumes from its checkpoint at epoch {saved['epoch']}, step {saved['step']}"
            in log.resolve().read_text())


@pytest.mark.slow  # as above
def test_a_preempted_job_is_requeued_and_its_run_resumes(cluster, tmp_path, tiny_base):
    """The signal Slurm sends before a job's time limit (--signal USR2@90, or a cluster's preemption
    signal): submitit checkpoints the call, requeues the job, and the run resumes in the same job id."""
    spec = SweepSpec(base=tiny_base, points=[LONG])
    out = tmp_path / "sweep"
    long_run = out / "runs" / spec.names[0]
    background = Background(out, spec, {"poll_seconds": 0.5, "time": 30}, long_run)
    background.mid_run(cluster)
    log = _log_of(out, spec.names[0])
    job_id = log.readlink().name.split("_")[0]   # one run: a job, not an array: 9_0_log.out -> 9
    cluster.run("scancel", "--signal=USR2", job_id)
    deadline = time.monotonic() + 60
    while background.thread.is_alive() and log.resolve().read_text().count(f"rdvae: run {spec.names[0]}") < 2:
        # Slurm holds a requeued job for a while (BeginTime, ~2 minutes) before it may start again
        assert time.monotonic() < deadline, cluster.logs()
        if f"Requeued job {job_id}" in log.resolve().read_text():
            cluster.run("scontrol", "update", f"JobId={job_id}", "StartTime=now", check=False)
        time.sleep(0.5)
    report = background.report()
    assert report.trained == [f"runs/{spec.names[0]}"] and not report.failed
    assert [r["status"] for r in _rows(out)] == ["done"]
    text = log.resolve().read_text()
    assert f"Requeued job {job_id}" in text
    starts = [line for line in text.splitlines() if line.startswith(f"rdvae: run {spec.names[0]} (")]
    assert len(starts) == 2 and starts[0].endswith(": starts")
    resumed = re.search(r"resumes from its checkpoint at epoch (\d+), step (\d+)$", starts[1])
    assert resumed and int(resumed.group(2)) > 0
    metrics = [json.loads(line) for line in (long_run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == list(range(1, LONG["epochs"] + 1))


@pytest.mark.slow  # as above
def test_sigterm_on_rdvae_sweep_cancels_its_jobs(cluster, tmp_path):
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "rdvae", "sweep", "--dataset", "digits", "--set", "binarize=static",
               "--set", "family=mlp", "--set", "latent_dim=2", "--set", "model.hidden=[16]",
               "--set", "epochs=100000", "--set", "batch_size=256", "--grid", "beta=0.5,2",   # never ends
               "--executor", "slurm", "--executor-option", "time=0:30:00", "--executor-option",
               "poll_seconds=0.5", "--no-progress", "--out", str(out)]
    sweep_process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while len(list(out.glob("runs/*/trainer_state.safetensors"))) < 2:   # both runs mid-way
            assert sweep_process.poll() is None and time.monotonic() < deadline, sweep_process.communicate()
            time.sleep(0.2)
        sweep_process.terminate()
        _, err = sweep_process.communicate(timeout=60)
    finally:
        if sweep_process.poll() is None:
            sweep_process.kill()
    assert sweep_process.returncode != 0
    assert "cancelled the Slurm jobs of the 2 unfinished run(s)" in err
    assert f"`rdvae sweep --out {out}` continues the sweep" in err
    for run in out.glob("runs/*"):
        _wait_unlocked(run / RUN_LOCK)   # the jobs' processes end (SIGKILL after KillWait)
        assert (run / "trainer_state.safetensors").exists() and not (run / "summary.json").exists()
    array = re.search(r"submitted to Slurm \(job array (\d+)\)", err).group(1)
    deadline = time.monotonic() + 30
    while "COMPLETING" in (states := cluster.run("squeue", "-h", "--states=all", "-o", "%i|%T", "-j", array)):
        assert time.monotonic() < deadline, states
        time.sleep(0.5)
    assert parse_states(states) == {f"{array}_0": "CANCELLED", f"{array}_1": "CANCELLED"}
    assert not (out / "results.csv").exists() or len(_rows(out)) == 0


@pytest.mark.slow  # the cluster
def test_sbatch_refusing_the_jobs_stops_the_sweep_with_its_message(cluster, tmp_path, tiny_base):
    spec = SweepSpec(base=tiny_base, points=sweep("beta", [0.5, 2.0]))
    queued = set(cluster.run("squeue", "-h", "-o", "%i").split())   # an earlier test's jobs may be completing
    for array in (True, False):
        out = tmp_path / f"array-{array}"
        with pytest.raises(ExecutorError, match=r"slurm executor: the job\(s\) could not be submitted: "
                                                r".*[Ii]nvalid partition.*; check the partition, time"):
            run_sweep(out, spec, executor="slurm", progress=False,
                      executor_options={"partition": "nowhere", "array": array})
        assert not (out / "results.csv").exists() and not list(out.glob("runs/*"))
    assert set(cluster.run("squeue", "-h", "-o", "%i").split()) <= queued   # nothing was queued
