"""A killed sweep leaves no worker alive: the pool's spawned workers (each ~0.5 GB, training on) end
with the sweep process, whether it is SIGKILLed (parent-death signal, and a watchdog thread polling the
parent pid) or SIGTERMed (the sweep stops its workers itself and says how to continue).

The processes are found through /proc, so these tests run on Linux only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rdvae.cli import main
from rdvae.sweep import executors
from rdvae.sweep.task import RUN_LOCK, Task

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes in /proc")

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "MKL_NUM_THREADS": "1"}
# runs that would train for hours: the workers are surely busy when the sweep is killed
SWEEP = [sys.executable, "-m", "rdvae", "sweep", "--dataset", "digits", "--set", "binarize=static",
         "--set", "latent_dim=2", "--set", "model.hidden=[16]", "--set", "epochs=100000",
         "--set", "batch_size=256", "--grid", "beta=0.5,1,2,4", "--workers", "2", "--no-progress"]
START_LIMIT_S = 120   # spawning two workers that import torch, on two loaded cores
GONE_LIMIT_S = 5


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in "ZX"   # a zombie is dead, only not yet reaped


def _workers(parent: int) -> list[int]:
    """The multiprocessing workers (not the resource tracker) whose parent is `parent`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if stat and stat[1] == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def _wait_for(condition, limit: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def _running(out: Path) -> int:
    """Runs a worker has started on (it has run its initializer then)."""
    return sum(1 for path in out.glob(f"runs/*/{RUN_LOCK}"))


# SIGTERM costs another ~15 s and is covered in-process below (the handler, the stopping of the workers)
@pytest.mark.parametrize("sig", [signal.SIGKILL, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)],
                         ids=["SIGKILL", "SIGTERM"])
def test_killing_the_sweep_ends_its_workers(sig, tmp_path):
    out, log = tmp_path / "sweep", tmp_path / "stderr.txt"
    with open(log, "w") as err:   # a file, not a pipe: a worker left alive would hold a pipe open
        sweep = subprocess.Popen([*SWEEP, "--out", str(out)], env=ENV, stdout=subprocess.DEVNULL, stderr=err,
                                 cwd=tmp_path)
    workers: list[int] = []
    try:
        started = _wait_for(lambda: _running(out) >= 2 or sweep.poll() is not None, START_LIMIT_S, 0.2)
        assert started and sweep.poll() is None, log.read_text()[-2000:]
        workers = _workers(sweep.pid)
        assert len(workers) == 2, workers
        sweep.send_signal(sig)
        sweep.wait(timeout=30)
        gone = _wait_for(lambda: not any(_alive(pid) for pid in workers), GONE_LIMIT_S)
        assert gone, f"workers still alive {GONE_LIMIT_S} s after the sweep got {sig.name}: " \
                     f"{[pid for pid in workers if _alive(pid)]}"
        if sig == signal.SIGTERM:   # stopped as Ctrl-C stops it: the note on how to continue
            assert sweep.returncode == 130 and f"rdvae sweep --out {out}" in log.read_text(), log.read_text()
        assert (out / "sweep.json").exists()
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
        for pid in workers:   # a failed test leaves no worker training on
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


WATCHED = """
import os, sys, time
from rdvae.sweep import executors
executors._set_parent_death_signal = lambda: False   # the portable path alone: the watchdog
executors._die_with_parent(int(sys.argv[1]), interval=0.1)
print(os.getpid(), flush=True)
time.sleep(120)
"""
# a go-between that starts the watched process and waits: killing it orphans the watched process
MIDDLE = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid())], stdout=subprocess.PIPE)
print(child.stdout.readline().decode().strip(), flush=True)
time.sleep(120)
"""


def test_the_watchdog_ends_an_orphaned_worker_without_the_death_signal():
    middle = subprocess.Popen([sys.executable, "-c", MIDDLE, WATCHED], env=ENV, stdout=subprocess.PIPE)
    watched = None
    try:
        line = middle.stdout.readline().decode().strip()
        assert line.isdigit(), line
        watched = int(line)
        assert _alive(watched)
        middle.kill()
        middle.wait()
        assert _wait_for(lambda: not _alive(watched), GONE_LIMIT_S), "the orphan is still running"
    finally:
        if middle.poll() is None:
            middle.kill()
            middle.wait()
        if watched is not None and _alive(watched):
            os.kill(watched, signal.SIGKILL)


def test_a_worker_whose_parent_is_already_gone_exits_at_start():
    """The race PDEATHSIG leaves: the sweep died before the worker set it (ppid is no longer the sweep)."""
    code = ("import os; from rdvae.sweep.executors import _init_worker; "
            "_init_worker(1, os.getppid() + 1); print('ran')")
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, timeout=120)
    assert done.returncode == 1 and b"ran" not in done.stdout and b"Traceback" not in done.stderr


class _PoolOfSleepers:
    """A process pool whose workers sleep (a busy run) and whose tasks never finish."""

    def __init__(self, workers, mp_context, initializer, initargs):
        self.initargs = initargs
        processes = [mp_context.Process(target=time.sleep, args=(60,)) for _ in range(workers)]
        for process in processes:
            process.start()
        self._processes = {process.pid: process for process in processes}
        self.cancelled = None

    def submit(self, fn, *args):
        from concurrent.futures import Future

        return Future()

    def shutdown(self, wait=True, cancel_futures=False):
        self.cancelled = cancel_futures


def test_an_interrupted_pool_stops_its_running_workers(monkeypatch):
    pools = []

    def make_pool(*args, **kwargs):
        pools.append(_PoolOfSleepers(*args, **kwargs))
        return pools[-1]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt   # Ctrl-C (or SIGTERM, see below) while the runs train

    monkeypatch.setattr(executors, "ProcessPoolExecutor", make_pool)
    monkeypatch.setattr(executors, "wait", interrupted)
    tasks = [Task(index=i, name=f"r{i}", run_dir=f"/nonexistent/r{i}", config={}) for i in range(3)]
    try:
        with pytest.raises(KeyboardInterrupt):
            executors.run_local(tasks, lambda task, outcome: None, workers=2, threads=2)
        pool = pools[0]
        assert pool.cancelled is True and pool.initargs == (1, os.getpid())   # workers learn their parent
        processes = list(pool._processes.values())
        assert len(processes) == 2 and not any(p.is_alive() for p in processes)
        assert all(p.exitcode == -signal.SIGTERM for p in processes)
    finally:
        for pool in pools:
            for process in pool._processes.values():
                if process.is_alive():
                    process.kill()
                    process.join()


def test_sigterm_stops_the_sweep_as_ctrl_c_does(tmp_path, monkeypatch, capsys):
    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)   # the handler raises in this thread at once
        raise AssertionError("SIGTERM did not interrupt the sweep")

    def outside(signum, frame):   # SIGTERM that the sweep did not catch (not the end of pytest)
        pass

    monkeypatch.setattr("rdvae.sweep.run_sweep", killed)
    before = signal.signal(signal.SIGTERM, outside)
    try:
        out = tmp_path / "s"
        assert main(["sweep", "--grid", "beta=1", "--out", str(out), "--no-progress"]) == 130
        err = capsys.readouterr().err
        assert f"`rdvae sweep --out {out}` continues the sweep" in err and "interrupted" in err
        assert signal.getsignal(signal.SIGTERM) is outside   # the handler is the sweep's only
    finally:
        signal.signal(signal.SIGTERM, before)
