"""The slurm executor: each run of a sweep is a Slurm job (an element of one job array by default),
submitted with submitit (pip install 'rdvae[slurm]') from the machine where `rdvae sweep` runs.

    rdvae sweep --config sweep.toml --out runs/sweep --executor slurm --executor-option partition=gpu \\
        --executor-option time=4:00:00 --executor-option gpus_per_task=1 --executor-option cpus_per_task=8

Each job runs rdvae.sweep.task.execute(task, cpus_per_task) (train, or resume from the run's last
checkpoint); its result comes back to the sweep's process, which writes the run's row of results.csv
(its only writer). The sweep process waits for its jobs, polling squeue every `poll_seconds`.

Files, in the sweep folder (shared with the compute nodes, as the sweep's Python must be):
    slurm/NAME.out, slurm/NAME.err   the log of run NAME's latest job (links to submitit's files)
    slurm/JOBID_*                    submitit's files of each job: the submission script, the pickled
                                     call and result, the logs

A job that ends without a result (scancel, preemption, time limit, node failure, out of memory)
gives the run a "failed" row naming the Slurm state; the run keeps its last checkpoint (every epoch
and every checkpoint_minutes) and running the sweep again (`rdvae sweep --out DIR`) resumes it. With
requeue (the default) a job that Slurm signals before its time limit, or before preemption when the
cluster sends the signal, is put back in the queue by submitit and its run resumes in the same job id.
Ctrl-C (or SIGTERM) on the sweep cancels its queued and running jobs (cancel_on_interrupt).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time as clock
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .executors import ExecutorError, register_executor
from .task import Task, execute

SLURM_FOLDER = "slurm"          # in the sweep folder: submitit's files and each run's log links
DEFAULT_MINUTES = 60            # a job's time limit when `time` is not given
MAX_TIMEOUT_REQUEUES = 10       # requeues of one job at its time limit (each resumes its run)
ENDED_CHECKS = 2                # polls that must see a job ended (and no result) before it is reported
# ... and for how long (s), where the state may yet change: a preempted job that Slurm requeues, a
# completed job whose result file a shared filesystem shows late
ENDED_GRACE_S = {"PREEMPTED": 120.0, "COMPLETED": 30.0}
COMMANDS = ("sbatch", "squeue", "scancel", "srun")
# Slurm job states after which a job runs no more (a requeued job goes back to PENDING instead)
ENDED = frozenset({"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
                   "PREEMPTED", "REVOKED", "TIMEOUT"})
# sbatch parameters the executor sets itself (the option to use instead) or that would break it
MANAGED = {"job-name": "the job_name option", "partition": "the partition option", "time": "the time option",
           "cpus-per-task": "the cpus_per_task option", "gpus-per-task": "the gpus_per_task option",
           "mem": "the mem_gb option", "account": "the account option", "qos": "the qos option",
           "array": "the array and array_parallelism options", "output": "the executor's log files",
           "error": "the executor's log files", "open-mode": "the executor's log files",
           "signal": "submitit's requeue signal", "wrap": "the executor's job script",
           "parsable": "the executor reading sbatch's output", "test-only": "the executor submitting jobs",
           "wait": "the executor waiting for the jobs",
           "nodes": "one task on one node per run", "ntasks": "one task on one node per run",
           "ntasks-per-node": "one task on one node per run"}
_SBATCH_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_WORD = re.compile(r"[^\s]+")


def _import_submitit():
    try:
        import submitit
    except ImportError:
        raise ExecutorError(
            "the slurm executor needs submitit, which is not installed: pip install 'rdvae[slurm]' "
            "(or use --executor local)") from None
    return submitit


def _refuse(option: str, value, allowed: str):
    raise ExecutorError(f"slurm executor: option {option}={value!r} is not allowed: {allowed}")


def _minutes(value) -> int:
    """A job time limit in whole minutes, from minutes (a number) or a Slurm time string (sbatch --time:
    MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS)."""
    allowed = ("it must be minutes (a number > 0) or a Slurm time string such as \"90\", \"1:30:00\" or "
               "\"2-00:00:00\" (D-HH:MM:SS)")
    if value is None:
        return DEFAULT_MINUTES
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or value <= 0:
            _refuse("time", value, allowed)
        return math.ceil(value)
    if not isinstance(value, str):
        _refuse("time", value, allowed)
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", value.strip())
    if not match:
        _refuse("time", value, allowed)
    days, *parts = match.groups()
    numbers = [int(part) for part in parts if part is not None]
    if days is not None:    # D-HH, D-HH:MM, D-HH:MM:SS
        numbers += [0] * (3 - len(numbers))
        total = int(days) * 86400 + numbers[0] * 3600 + numbers[1] * 60 + numbers[2]
    elif len(numbers) == 3:  # HH:MM:SS
        total = numbers[0] * 3600 + numbers[1] * 60 + numbers[2]
    else:                    # MM, MM:SS
        total = numbers[0] * 60 + (numbers[1] if len(numbers) == 2 else 0)
    if total <= 0:
        _refuse("time", value, allowed)
    return math.ceil(total / 60)


def _integer(option: str, value, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        _refuse(option, value, f"it must be an integer >= {low}")
    return value


def _word(option: str, value, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _WORD.fullmatch(value):
        _refuse(option, value, f"it must be {what}: a non-empty string without spaces")
    return value


def _sbatch(value) -> dict:
    """The additional sbatch parameters: {option: value}, option as sbatch's long option without its
    dashes ("mail-type" or "mail_type"), value a string, a number or true (a flag)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        _refuse("sbatch", value, "it must be a mapping of sbatch options to values, e.g. "
                                 "{\"constraint\": \"a100\", \"mail-type\": \"END\"}")
    checked = {}
    for key, item in value.items():
        if not isinstance(key, str) or not _SBATCH_KEY.fullmatch(key):
            _refuse("sbatch", dict(value), f"{key!r} is not an sbatch option name (a long option without "
                                           "its dashes, e.g. \"constraint\" or \"mail-type\")")
        name = key.replace("_", "-")
        if name in MANAGED:
            _refuse("sbatch", dict(value), f"{key!r} is set by the slurm executor; use {MANAGED[name]}")
        if not (item is True or (isinstance(item, int | float) and not isinstance(item, bool))
                or (isinstance(item, str) and item and "\n" not in item)):
            _refuse("sbatch", dict(value), f"the value of {key!r} must be a one-line string, a number or "
                                           f"true (a flag), got {item!r}")
        checked[name] = item
    return checked


def _setup(value) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple) or not all(isinstance(line, str) and "\n" not in line
                                                       for line in value):
        _refuse("setup", value, "it must be a list of one-line shell commands run before each job's Python, "
                                "e.g. [\"module load cuda\", \"source ~/venv/bin/activate\"]")
    return list(value)


def _flag(option: str, value) -> bool:
    if not isinstance(value, bool):
        _refuse(option, value, "it must be true or false")
    return value


def slurm_parameters(*, partition=None, time=None, cpus_per_task=1, gpus_per_task=0, mem_gb=None,
                     account=None, qos=None, job_name=None, setup=None, sbatch=None) -> dict:
    """The submitit SlurmExecutor parameters of the executor's options, each checked (ExecutorError
    naming the option, its value and what is allowed)."""
    if mem_gb is not None and (isinstance(mem_gb, bool) or not isinstance(mem_gb, int | float)
                               or not math.isfinite(mem_gb) or mem_gb <= 0):
        _refuse("mem_gb", mem_gb, "it must be a number of GB > 0 (the memory of each job), or null for "
                                  "the partition's default")
    if job_name is not None and (not isinstance(job_name, str) or not job_name.strip() or "\n" in job_name):
        _refuse("job_name", job_name, "it must be a non-empty one-line string")
    parameters = {
        "time": _minutes(time),
        "cpus_per_task": _integer("cpus_per_task", cpus_per_task, 1),
        "partition": _word("partition", partition, "a partition name (or several, comma-separated)"),
        "account": _word("account", account, "an account name"),
        "qos": _word("qos", qos, "a quality of service name"),
        "job_name": job_name,
        "wckey": None,        # submitit's default wckey is refused where wckeys are enforced
    }
    if _integer("gpus_per_task", gpus_per_task, 0):
        parameters["gpus_per_task"] = gpus_per_task
    if mem_gb is not None:
        parameters["mem"] = f"{math.ceil(mem_gb * 1024)}M"
    lines = _setup(setup)
    if lines:
        parameters["setup"] = lines
    extra = _sbatch(sbatch)
    if extra:
        parameters["additional_parameters"] = extra
    return parameters


def check_commands() -> None:
    """ExecutorError unless Slurm's client commands are on PATH."""
    absent = [name for name in COMMANDS if shutil.which(name) is None]
    if absent:
        raise ExecutorError(
            f"the slurm executor submits with Slurm's commands, and {', '.join(absent)} "
            f"{'is' if len(absent) == 1 else 'are'} not on PATH: run "
            "`rdvae sweep` on a machine that submits to the cluster (a login node), or use --executor local")


class SlurmRun:
    """What each job runs: the task's run, by execute (picklable by reference, so the job imports rdvae).
    `checkpoint` is what submitit calls when Slurm signals the job before its time limit or a preemption:
    it resubmits the same call (the run resumes from its own last checkpoint); None: no requeue."""

    def __init__(self, requeue: bool = True):
        self.requeue = requeue

    def __call__(self, task: Task, threads: int) -> dict:
        print(f"rdvae: run {task.name} ({task.run_dir}) on {socket.gethostname()} with {threads} thread(s): "
              f"{_starts(Path(task.run_dir))}", flush=True)
        return execute(task, threads)

    def checkpoint(self, task: Task, threads: int):
        if not self.requeue:
            return None
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, task, threads)


def _starts(run_dir: Path) -> str:
    """For the job's log: whether the run starts or resumes (from which epoch and step)."""
    from ..rundir import TRAINER_STATE

    state = run_dir / TRAINER_STATE
    if not state.exists():
        return "starts"
    try:   # the header only (the checkpoint itself is loaded by the trainer)
        from safetensors import safe_open

        with safe_open(str(state), "pt") as f:
            counters = json.loads(f.metadata()["counters"])
        return f"resumes from its checkpoint at epoch {counters['epoch']}, step {counters['step']}"
    except Exception:  # noqa: BLE001 - being written, or another format: the trainer will say
        return "resumes from its checkpoint"


# -- Slurm's view of the jobs ---------------------------------------------------------------------------
def _expand(job_id: str) -> list[str]:
    """squeue's %i of a job or array element: 12, 12_3, or pending elements 12_[0-4,7%2] (each listed)."""
    match = re.fullmatch(r"(\d+)_\[([^\]]*)\]", job_id)
    if not match:
        return [job_id]
    base, ranges = match.groups()
    ids = []
    for part in ranges.split("%")[0].split(","):
        span, _, step = part.partition(":")
        low, _, high = span.partition("-")
        if low.isdigit():
            ids += [f"{base}_{i}" for i in range(int(low), int(high or low) + 1, int(step or 1))]
    return ids


def parse_states(text: str) -> dict[str, str]:
    """{job id: state} of `squeue -h -o %i|%T` (or sacct -P -o JobID,State) output."""
    states = {}
    for line in text.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id and state and "." not in job_id:   # sacct's steps (12.batch) are not jobs
            for one in _expand(job_id):
                states[one] = state.split()[0].rstrip("+")   # sacct: "CANCELLED by 0", "FAILED+"
    return states


def _query(command: list[str]) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None


def slurm_states(job_ids: Sequence[str]) -> dict[str, str] | None:
    """The states squeue shows for the jobs (finished ones too, while slurmctld keeps them: MinJobAge);
    a job it does not know is left out; None when squeue fails (e.g. the controller is unreachable)."""
    bases = sorted({job_id.split("_")[0] for job_id in job_ids})
    done = _query(["squeue", "-h", "--states=all", "-o", "%i|%T", "-j", ",".join(bases)])
    if done is None:
        return None
    if done.returncode and "invalid job id" not in done.stderr.lower():
        return None
    return parse_states(done.stdout) if not done.returncode else {}


def accounted_state(job_id: str) -> str | None:
    """The state sacct recorded for a job squeue no longer shows (None without accounting)."""
    done = _query(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", job_id.split("_")[0]])
    if done is None or done.returncode:
        return None
    return parse_states(done.stdout).get(job_id)


def cancel(job_ids: Sequence[str]) -> None:
    if job_ids:
        _query(["scancel", *job_ids])


# -- outcomes -------------------------------------------------------------------------------------------
def _log_links(folder: Path, task: Task, job) -> None:
    """folder/NAME.out and NAME.err: links to the log files of the run's latest job."""
    for suffix, target in ((".out", job.paths.stdout), (".err", job.paths.stderr)):
        link = folder / f"{task.name}{suffix}"
        temporary = folder / f".{task.name}{suffix}.{os.getpid()}.tmp"
        try:
            temporary.unlink(missing_ok=True)
            temporary.symlink_to(Path(target).name)
            os.replace(temporary, link)
        except OSError:   # e.g. a filesystem without symbolic links: submitit's own names remain
            temporary.unlink(missing_ok=True)


def _where(folder: Path, task: Task) -> str:
    """The run's job log as results.csv names paths: relative to the sweep folder."""
    return f"{folder.name}/{task.name}.err"


def job_error(err: Exception) -> str:
    """One line of what submitit's exception says: the last line of the job's traceback (FailedJobError,
    whose trace is between lines of dashes), else its first two lines."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    fences = [i for i, line in enumerate(lines) if set(line) == {"-"}]
    if len(fences) >= 2 and fences[1] > fences[0] + 1:
        said = lines[fences[1] - 1]
    else:
        said = " ".join(lines[:2]) or type(err).__name__
    return said[:300]


def _from_result(job, task: Task, folder: Path) -> dict:
    """The outcome a job's result file holds: execute's, or the failure of the job's Python."""
    try:
        outcome = job.result()
    except Exception as err:  # noqa: BLE001 - the job's Python failed outside execute (import, pickling...)
        return {"status": "failed", "summary": None, "trained": False, "slurm_job": job.job_id,
                "error": f"Slurm job {job.job_id} failed: {job_error(err)} (log: {_where(folder, task)})"}
    if not isinstance(outcome, dict) or "status" not in outcome:
        return {"status": "failed", "summary": None, "trained": False,
                "error": f"Slurm job {job.job_id} returned {type(outcome).__name__}, not a run's outcome"}
    return {**outcome, "slurm_job": job.job_id}


def _ended(job, task: Task, folder: Path, state: str | None) -> dict:
    said = ("COMPLETED without a result file (its Python ended early)" if state == "COMPLETED" else
            state or "in an unknown state (squeue no longer shows it and sacct has no record)")
    return {"status": "failed", "summary": None, "trained": False, "slurm_job": job.job_id,
            "error": f"Slurm job {job.job_id} ended {said} before the run finished; the run keeps its last "
                     f"checkpoint and running the sweep again resumes it (log: {_where(folder, task)})"}


@register_executor("slurm")
def run_slurm(tasks: Sequence[Task], on_result: Callable[[Task, dict], None], partition: str | None = None,
              time: int | str | None = None, cpus_per_task: int = 1, gpus_per_task: int = 0,
              mem_gb: float | None = None, account: str | None = None, qos: str | None = None,
              array: bool = True, array_parallelism: int = 0, job_name: str | None = None,
              setup: list | None = None, sbatch: dict | None = None, requeue: bool = True,
              cancel_on_interrupt: bool = True, poll_seconds: float = 10.0) -> None:
    """One Slurm job per run, as one job array (array=false: separate jobs), through submitit
    (pip install 'rdvae[slurm]'); logs in the sweep's slurm/NAME.out and .err.

    Per job: `cpus_per_task` CPUs (and torch threads), `gpus_per_task` GPUs, `mem_gb` GB, at most
    `time` (minutes or "HH:MM:SS"; default 60 minutes) in `partition` (default: the cluster's) under
    `account` and `qos`; `sbatch`: other sbatch options ({"constraint": "a100"}); `setup`: shell lines run
    before the job's Python. `array_parallelism`: runs at once (0: no limit). `requeue`: requeue a job
    signalled before its time limit or a preemption (the run resumes). `cancel_on_interrupt`: Ctrl-C on
    the sweep cancels its jobs. `poll_seconds`: how often squeue is asked."""
    parameters = slurm_parameters(partition=partition, time=time, cpus_per_task=cpus_per_task,
                                  gpus_per_task=gpus_per_task, mem_gb=mem_gb, account=account, qos=qos,
                                  job_name=job_name, setup=setup, sbatch=sbatch)
    array, requeue = _flag("array", array), _flag("requeue", requeue)
    cancel_on_interrupt = _flag("cancel_on_interrupt", cancel_on_interrupt)
    _integer("array_parallelism", array_parallelism, 0)
    if isinstance(poll_seconds, bool) or not isinstance(poll_seconds, int | float) or not poll_seconds > 0:
        _refuse("poll_seconds", poll_seconds, "it must be a number of seconds > 0")
    submitit = _import_submitit()
    check_commands()
    if not tasks:
        return
    sweep = Path(tasks[0].run_dir).parent.parent
    folder = sweep / SLURM_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    parameters["job_name"] = parameters["job_name"] or f"rdvae-{sweep.name}"
    parameters["array_parallelism"] = array_parallelism or len(tasks)
    try:
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=MAX_TIMEOUT_REQUEUES)
        executor.update_parameters(**parameters)
    except (RuntimeError, ValueError) as err:
        raise ExecutorError(f"slurm executor: submitit refused the options: {' '.join(str(err).split())}") \
            from None
    function, threads = SlurmRun(requeue), parameters["cpus_per_task"]
    pending: dict[str, tuple[Task, object]] = {}
    try:
        jobs = _submit(executor, function, tasks, threads, array and len(tasks) > 1, pending)
        for task, job in zip(tasks, jobs, strict=True):
            _log_links(folder, task, job)
        ids = sorted({job.job_id.split("_")[0] for job in jobs}, key=int)
        what = "job array" if len(jobs) > 1 and array else "job" if len(ids) == 1 else "jobs"
        print(f"rdvae sweep: {len(jobs)} run(s) submitted to Slurm ({what} {', '.join(ids)}); logs: "
              f"{folder}/NAME.out and NAME.err", file=sys.stderr, flush=True)
        _wait(pending, on_result, folder, poll_seconds)
    except BaseException:
        if cancel_on_interrupt and pending:
            cancel(list(pending))
            print(f"rdvae sweep: cancelled the Slurm jobs of the {len(pending)} unfinished run(s)",
                  file=sys.stderr, flush=True)
        elif pending:
            print(f"rdvae sweep: the Slurm jobs of {len(pending)} unfinished run(s) go on "
                  f"({', '.join(sorted(pending))}); running the sweep again records their results",
                  file=sys.stderr, flush=True)
        raise


def _submit(executor, function, tasks: Sequence[Task], threads: int, as_array: bool,
            pending: dict) -> list:
    """Submit one job per task (one sbatch of an array, or one sbatch each); `pending` gets every job
    submitted, so that an interruption cancels them. ExecutorError when sbatch refuses."""
    try:
        if as_array:
            with executor.batch():   # the jobs are submitted, as one array, when the block ends
                jobs = [executor.submit(function, task, threads) for task in tasks]
        else:
            jobs = []
            for task in tasks:
                jobs.append(executor.submit(function, task, threads))
                pending[jobs[-1].job_id] = (task, jobs[-1])
    except Exception as err:  # noqa: BLE001 - submitit's errors carry sbatch's message
        if pending:
            cancel(list(pending))
            pending.clear()
        message = " ".join(str(err).split()) or type(err).__name__
        raise ExecutorError(f"slurm executor: the job(s) could not be submitted: {message[:800]}; check the "
                            "partition, time, account, qos and sbatch options (`sinfo` lists the "
                            "partitions and their time limits)") from None
    for task, job in zip(tasks, jobs, strict=True):
        pending[job.job_id] = (task, job)
    return jobs


def _wait(pending: dict, on_result: Callable[[Task, dict], None], folder: Path, poll_seconds: float) -> None:
    """Poll until every job has given its outcome: its result file, or an end without one, seen on
    ENDED_CHECKS polls in a row and for ENDED_GRACE_S of its state (so that a requeue, or a result
    file arriving late, is not mistaken for it)."""
    ended: dict[str, tuple[int, float]] = {}   # job id -> (polls that saw it ended, when first seen)
    while pending:
        states = slurm_states(list(pending))
        for job_id, (task, job) in list(pending.items()):
            if job.paths.result_pickle.exists():
                outcome = _from_result(job, task, folder)
            elif states is None:   # squeue failed: nothing is concluded from this poll
                continue
            else:
                state = states.get(job_id)
                if state is not None and state not in ENDED:
                    ended.pop(job_id, None)
                    continue
                seen, since = ended.get(job_id, (0, clock.monotonic()))
                ended[job_id] = (seen + 1, since)
                if seen + 1 < ENDED_CHECKS or clock.monotonic() - since < ENDED_GRACE_S.get(state, 0.0):
                    continue
                if job.paths.result_pickle.exists():
                    outcome = _from_result(job, task, folder)
                else:
                    outcome = _ended(job, task, folder, state or accounted_state(job_id))
            del pending[job_id]
            ended.pop(job_id, None)
            on_result(task, outcome)
        if pending:
            clock.sleep(poll_seconds)
