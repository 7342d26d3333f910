"""A real single-node Slurm for the slow tests of the slurm executor: Debian's munged, slurmctld and
slurmd (apt-get install slurm-wlm munge; .ci/slurm.sh), run as root in a temporary folder with a
minimal slurm.conf (no cgroups: proctrack/linuxproc, task/none; no accounting) and a fresh munge key.

    with SlurmCluster(tmp) as cluster:     # SLURM_CONF is set for this process and its children
        cluster.run("sinfo")

Nothing of the machine's own Slurm or munge configuration is read or changed: every file (key,
sockets, state, spool, logs) is under the cluster's folder and the daemons are told where.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo", "srun")
START_LIMIT_S = 60


def missing() -> str | None:
    """Why a cluster cannot be started here (None: it can)."""
    absent = [name for name in BINARIES if shutil.which(name) is None]
    if absent:
        return (f"needs Slurm and munge ({', '.join(absent)} not found): apt-get install slurm-wlm munge, "
                "or .ci/slurm.sh")
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "starts slurmctld and slurmd as SlurmUser=root: run the slow tests as root"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    """munged + slurmctld + slurmd on localhost, one node with the machine's CPUs, partition debug."""

    def __init__(self, folder: str | os.PathLike, cpus: int | None = None):
        self.folder = Path(folder)
        self.cpus = cpus or os.cpu_count() or 1
        self.conf = self.folder / "slurm.conf"
        self.processes: list[subprocess.Popen] = []
        self._logs: list = []
        self._previous_conf: str | None = None

    # -- files -------------------------------------------------------------------------------------
    def _write_files(self) -> None:
        for name in ("munge", "state", "spool", "log"):
            (self.folder / name).mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder / "munge", 0o700)
        key = self.folder / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        ctld, slurmd = _free_port(), _free_port()
        lines = {
            "ClusterName": "rdvae-test",
            "SlurmctldHost": "localhost",
            "SlurmctldPort": ctld,
            "SlurmdPort": slurmd,
            "SlurmUser": "root",
            "SlurmdUser": "root",
            "AuthType": "auth/munge",
            "CredType": "cred/munge",
            "AuthInfo": f"socket={self.socket}",
            "StateSaveLocation": self.folder / "state",
            "SlurmdSpoolDir": self.folder / "spool",
            "SlurmctldPidFile": self.folder / "slurmctld.pid",
            "SlurmdPidFile": self.folder / "slurmd.pid",
            "SlurmctldLogFile": self.folder / "log" / "slurmctld.log",
            "SlurmdLogFile": self.folder / "log" / "slurmd.log",
            "ProctrackType": "proctrack/linuxproc",
            "TaskPlugin": "task/none",
            "JobAcctGatherType": "jobacct_gather/none",
            "AccountingStorageType": "accounting_storage/none",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_CPU",
            "MpiDefault": "none",
            "ReturnToService": 2,
            "KillWait": 2,               # scancel: SIGTERM, then SIGKILL this many seconds later
            "MinJobAge": 600,            # finished jobs stay visible to squeue (no accounting here)
            "SchedulerType": "sched/builtin",
            "SlurmctldTimeout": 30,
            "SlurmdTimeout": 30,
        }
        text = "\n".join(f"{k}={v}" for k, v in lines.items())
        text += (f"\nNodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} State=UNKNOWN\n"
                 "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n")
        self.conf.write_text(text)

    @property
    def socket(self) -> Path:
        return self.folder / "munge" / "munge.socket"

    # -- processes ---------------------------------------------------------------------------------
    def run(self, *command: str, check: bool = True, timeout: float = 30) -> str:
        """A Slurm command against this cluster; its stdout."""
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "SLURM_CONF": str(self.conf)})
        if check and done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def _start(self, *command: str) -> None:
        log = open(self.folder / "log" / f"{Path(command[0]).name}.out", "ab")   # noqa: SIM115 - closed by stop
        self._logs.append(log)
        self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                               env={**os.environ, "SLURM_CONF": str(self.conf)},
                                               start_new_session=True))

    def start(self) -> SlurmCluster:
        self._previous_conf = os.environ.get("SLURM_CONF", "")
        os.environ["SLURM_CONF"] = str(self.conf)
        self._write_files()
        munge = self.folder / "munge"
        # -F: in the foreground (a child of this process, stopped by it); --force: root is fine here
        self._start("munged", "-F", "--force", f"--key-file={munge / 'munge.key'}",
                    f"--socket={self.socket}", f"--pid-file={munge / 'munged.pid'}",
                    f"--log-file={munge / 'munged.log'}", f"--seed-file={munge / 'munged.seed'}")
        self._wait(lambda: self.socket.exists(), "munged's socket")
        self._start("slurmctld", "-D", "-i", "-f", str(self.conf))
        self._start("slurmd", "-D", "-N", "localhost", "-f", str(self.conf))
        self._wait(self._idle, "the node localhost to be idle in sinfo")
        return self

    def _idle(self) -> bool:
        try:
            states = self.run("sinfo", "-h", "-N", "-o", "%T", check=False, timeout=10).split()
        except subprocess.TimeoutExpired:
            return False
        return states == ["idle"]

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + START_LIMIT_S
        while not ready():
            dead = [p.args[0] for p in self.processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                self.stop()
                why = f"{', '.join(dead)} exited" if dead else f"not within {START_LIMIT_S} s"
                raise RuntimeError(f"Slurm test cluster: waiting for {what}: {why}; logs:\n{self.logs()}")
            time.sleep(0.5)

    def logs(self) -> str:
        parts = []
        for path in sorted((self.folder / "log").glob("*")) + [self.folder / "munge" / "munged.log"]:
            if path.is_file():
                parts.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace")
                                                              .splitlines()[-30:]))
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel every job, then stop the daemons (slurmd, slurmctld, munged: the reverse order)."""
        if any(p.poll() is None for p in self.processes):
            try:
                self.run("scancel", "--user", "root", check=False)
                deadline = time.monotonic() + 30   # KillWait, then the job's processes are gone
                while self.run("squeue", "-h", "-o", "%i", check=False).strip():
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
            except subprocess.TimeoutExpired:
                pass
        for process in reversed(self.processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        self.processes.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self._previous_conf is not None:   # as it was before start
            if self._previous_conf:
                os.environ["SLURM_CONF"] = self._previous_conf
            else:
                os.environ.pop("SLURM_CONF", None)
            self._previous_conf = None

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
