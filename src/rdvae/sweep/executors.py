"""Executors: who trains a sweep's runs. Each takes tasks and calls `on_result(task, outcome)`
in the sweep's own process as results arrive, so results.csv has a single writer.

- local: sequential in this process (workers=1), or a process pool of `workers` processes,
  each with max(1, threads // workers) torch threads (threads: the free cores by default).
- ray: one Ray task per run with its own num_cpus / num_gpus; a local Ray instance by default,
  `address` joins an existing cluster (run directories must then be on a shared filesystem).

Local pool workers die with the sweep process, however it ends (SIGKILL included): see _init_worker.

Executors are registered (`EXECUTORS`), the built-in ones through the same `register_executor` a user's
plugin calls; the sweep runner knows none by name:

    from rdvae import register_executor
    from rdvae.sweep.task import execute

    @register_executor("inline")
    def inline(tasks, on_result, label: str = ""):   # options: --executor-option label="..."
        for task in tasks:
            on_result(task, execute(task))

An executor is called as `executor(tasks, on_result, **options)`; it may also take the sweep's
`on_step(task, counters)` (progress) and `threads` (the torch threads it may use), passed where its
signature names them (CONTEXT).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import torch

from ..device import available_cores, free_cores
from ..registry import Registry
from .task import Task, execute

OnResult = Callable[[Task, dict], None]
# executor(tasks, on_result, **options): who trains a sweep's runs (`rdvae list executors`)
EXECUTORS = Registry("executor", (), leading=2)
CONTEXT = ("on_step", "threads")   # what the runner passes to an executor whose signature names it


def register_executor(name: str, executor: Callable | None = None, *, replace: bool = False, aliases=()):
    """Register an executor(tasks, on_result, **options) that runs each task (rdvae.sweep.task.execute
    trains one) and calls on_result(task, outcome) in the sweep's process as outcomes arrive; options
    are its keyword parameters (`rdvae sweep --executor NAME --executor-option KEY=VALUE`)."""
    return EXECUTORS.register(name, executor, replace=replace, aliases=aliases)


class ExecutorError(RuntimeError):
    """An executor that cannot start, with what to do."""


def default_workers(tasks: int) -> int:
    """A pool sized to the cores (at most 4: small runs gain little from more on one host)."""
    return max(1, min(tasks, available_cores(), 4))


PR_SET_PDEATHSIG = 1            # <linux/prctl.h>
PARENT_POLL_S = 0.5             # how often a pool worker checks that the sweep process is still there


def _set_parent_death_signal() -> bool:
    """Linux: have the kernel SIGKILL this process when its parent (thread) exits. False where prctl
    is missing (macOS, Windows) or refused."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int, interval: float) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent:
            os._exit(1)


def _die_with_parent(parent: int, interval: float = PARENT_POLL_S) -> None:
    """End this worker as soon as the process `parent` is gone, so a killed sweep leaves no worker
    training on. PDEATHSIG (Linux) is immediate but tied to the thread that spawned us and set only
    now (the parent may already be gone); the start-up check covers that race and the watchdog
    thread, polling os.getppid(), covers every platform."""
    _set_parent_death_signal()
    if os.getppid() != parent:   # orphaned before the death signal was set: reparented already
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent, interval), name="rdvae-parent-watchdog",
                     daemon=True).start()


def _init_worker(threads: int, parent: int | None = None) -> None:
    if parent is not None:
        _die_with_parent(parent)
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def _stop_workers(processes: list, timeout: float = 5.0) -> None:
    """Terminate (then kill) pool worker processes that are still running a task."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(1.0)


@register_executor("local")
def run_local(tasks: Sequence[Task], on_result: OnResult, workers: int = 0,
              on_step: Callable[[Task, dict], None] | None = None, threads: int | None = None) -> None:
    """Runs in this process (workers=1) or in a pool of spawned worker processes (workers=0, the
    default: sized to the cores, at most 4).

    `threads` (default: the free cores) are split between the workers, at least one each, so that the
    pool never asks for more threads than there are cores; `on_step(task, counters)` sees every step in
    this process."""
    if workers == 0:
        workers = default_workers(len(tasks))
    if not (isinstance(workers, int) and not isinstance(workers, bool)) or workers < 1:
        raise ExecutorError(f"workers must be >= 1, got {workers}")
    total = threads or free_cores()
    if workers == 1 or len(tasks) <= 1:
        for task in tasks:
            step = (lambda counters, task=task: on_step(task, counters)) if on_step else None
            on_result(task, execute(task, threads=total, on_step=step))
        return
    threads = max(1, total // workers)
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(threads, os.getpid()))
    try:
        pending = {pool.submit(execute, task, threads): task for task in tasks}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                task = pending.pop(future)
                try:
                    outcome = future.result()
                except Exception as err:  # noqa: BLE001 - a worker died (e.g. out of memory)
                    outcome = {"status": "failed", "summary": None, "trained": False,
                               "error": f"worker process failed: {type(err).__name__}: {err}"}
                on_result(task, outcome)
    except BaseException:
        # interrupted: queued runs are dropped, runs in progress are stopped (they keep their last
        # checkpoint and resume from it when the sweep is continued)
        processes = list((pool._processes or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        _stop_workers(processes)
        raise
    pool.shutdown(wait=True)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ExecutorError(
            "the ray executor needs Ray, which is not installed: pip install 'rdvae[ray]' "
            "(or use --executor local)") from None
    return ray


@register_executor("ray")
def run_ray(tasks: Sequence[Task], on_result: OnResult, address: str | None = None,
            num_cpus: float = 1.0, num_gpus: float = 0.0, total_cpus: int | None = None) -> None:
    """One Ray task per run needing `num_cpus` CPUs and `num_gpus` GPUs (pip install 'rdvae[ray]').

    Without `address` a local Ray instance is started with `total_cpus` CPUs (default: all)
    and shut down at the end; with one (e.g. "auto" or "ray://host:10001") the existing
    cluster is joined. A Ray instance already initialised in this process is reused.
    """
    ray = _import_ray()
    if num_cpus <= 0 or num_gpus < 0:
        raise ExecutorError(f"per-run resources must be num_cpus > 0 and num_gpus >= 0, "
                            f"got {num_cpus} and {num_gpus}")
    started = False
    if not ray.is_initialized():
        options = {"include_dashboard": False, "log_to_driver": False}
        try:
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(num_cpus=total_cpus or available_cores(), **options)
        except Exception as err:  # noqa: BLE001 - Ray's own errors (bad address, no cluster, missing client)
            where = f"join the Ray cluster at {address!r}" if address else "start a local Ray instance"
            raise ExecutorError(f"cannot {where}: {type(err).__name__}: {' '.join(str(err).split())}; "
                                "check --address (e.g. auto with a running cluster, ray://HOST:10001 with "
                                "'ray[client]' installed), or use --executor local") from None
        started = True
    pending: dict = {}
    try:
        remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)(execute)
        threads = max(1, int(num_cpus))
        pending = {remote.remote(task, threads): task for task in tasks}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                task = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as err:  # noqa: BLE001 - the Ray worker died
                    outcome = {"status": "failed", "summary": None, "trained": False,
                               "error": f"ray task failed: {type(err).__name__}: {err}"}
                on_result(task, outcome)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()
