"""Data parallelism over torch.distributed: one process per rank, started by torchrun (one node or
several, c10d rendezvous), gloo on the CPU and NCCL on CUDA.

What the one loop (rdvae.engine.loop) does with a group:

- Every rank draws the same global batch (the plan's `epoch_batches`, from the same checkpointed
  generator) and trains on its share, `plan.shard(batch, rank, world_size)` (torch.tensor_split along
  the first dimension): the union of the shares is exactly the batch a single process would take at
  that step, so the data order does not depend on the world size, and a run resumed under another
  world size continues with the batches it would have had.
- After each backward pass the gradients are averaged, each rank's weighted by its share of the batch,
  in one flattened all-reduce that also carries the step's figures, a flag for a non-finite loss and
  rank 0's vote for a mid-epoch checkpoint. This is what DistributedDataParallel's reducer computes;
  rdvae does it after the backward pass (without DDP's overlap of communication and backward)
  because its objectives call a model's parts (encoder, decoder, marginal) directly, which DDP's
  forward hook would not see. Every rank then holds the same gradient, norm, update decision and
  figures, so the divergence rules (callbacks.SkipLimits) fire on every rank at the same step.
- Validation, the trackers, checkpoints and summary.json are rank 0's; what the other ranks need of
  their outcome (the callbacks' and the plan's state, the stop reason, the summary, an error) is sent
  to them as JSON (`from_main`), never pickled.
- Each rank has its own stream of Monte Carlo draws (rank 0 keeps the single-process one); a
  checkpoint holds every rank's generator state, so a resume under the same world size is exact.

Failure: a collective whose peer has gone raises RankLost on the ranks that remain, naming the run
folder and the resume command; `init` sets the group's timeout (RDVAE_DIST_TIMEOUT_S, default 1800 s),
after which a rank that waits on a hung peer gives up.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import ConfigError

DEFAULT_TIMEOUT_S = 1800.0
ENVIRONMENT = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class RankLost(RuntimeError):
    """Another rank of the group stopped (killed, failed or timed out): this one stops too."""


@dataclass(frozen=True)
class Group:
    """This process's place in the group: its rank, the world size, its rank on the node and device."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


_group: Group | None = None


def current() -> Group | None:
    """The group this process trains in (None: a single process)."""
    return _group


def is_main() -> bool:
    """Whether this process writes the run folder: rank 0, or the only process."""
    return _group is None or _group.main


def launched() -> bool:
    """Whether torchrun (or `srun --ntasks N`: `adopt_slurm_step`) started this process as one of several."""
    adopt_slurm_step()
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


# -- Slurm's tasks as ranks ------------------------------------------------------------------------
SLURM_PORTS = (10000, 20000)   # MASTER_PORT from the job and step ids: 10000 + (job * 32 + step) % 20000


def _slurm_int(environ, name: str) -> int:
    value = environ.get(name)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"the Slurm environment variable {name} must be an integer, got {value!r} (rdvae "
                          "reads it in a job step that srun started with several tasks)") from None


def tasks_per_node(text: str) -> list[int]:
    """Slurm's compressed count of tasks on each node of a step, e.g. '2(x3),1' -> [2, 2, 2, 1]."""
    counts = []
    for part in text.split(","):
        count, repeated, times = part.partition("(x")
        try:
            if repeated and not times.endswith(")"):
                raise ValueError(part)
            counts += [int(count)] * (int(times[:-1]) if repeated else 1)
        except ValueError:
            raise ConfigError(f"SLURM_STEP_TASKS_PER_NODE={text!r} is not a Slurm task count such as "
                              "'2(x3),1'") from None
    return counts


def first_host(nodelist: str) -> str:
    """The first host of Slurm's compressed node list, where rank 0 runs (tasks are placed in node
    order): 'gpu[07-09,12],cpu1' -> 'gpu07'; every bracket contributes its first value, padding kept."""
    host, i = [], 0
    while i < len(nodelist):   # a bracket is consumed whole, so a comma seen here ends the first host
        char = nodelist[i]
        if char == ",":
            break
        if char == "[":
            end = nodelist.find("]", i)
            if end < 0:
                raise ConfigError(f"SLURM_STEP_NODELIST={nodelist!r} has an unclosed '['")
            host.append(nodelist[i + 1:end].split(",")[0].split("-")[0])
            i = end + 1
            continue
        host.append(char)
        i += 1
    if not "".join(host):
        raise ConfigError(f"SLURM_STEP_NODELIST={nodelist!r} names no host")
    return "".join(host)


def slurm_step_environment(environ=os.environ) -> dict[str, str]:
    """torch.distributed's variables for a process that srun started as one task of a job step of several
    (`srun --ntasks N rdvae train ...`, no torchrun), from Slurm's own: RANK = SLURM_PROCID, WORLD_SIZE =
    SLURM_STEP_NUM_TASKS, LOCAL_RANK = SLURM_LOCALID, LOCAL_WORLD_SIZE = this node's task count,
    MASTER_ADDR = the step's first node and MASTER_PORT from the job and step ids (those two only where
    not set: set MASTER_PORT yourself to run two such steps of one job at once on a node).

    Nothing where RANK is set (torchrun, or the user, decides), outside a job step (a batch script, an
    salloc shell: their SLURM_NTASKS counts the allocation, not this process's peers) or in a step of
    one task (`srun rdvae train`, and the slurm executor's jobs)."""
    if "RANK" in environ or "SLURM_STEP_NUM_TASKS" not in environ:
        return {}
    world = _slurm_int(environ, "SLURM_STEP_NUM_TASKS")
    if world <= 1:
        return {}
    node = _slurm_int(environ, "SLURM_NODEID")
    counts = tasks_per_node(environ.get("SLURM_STEP_TASKS_PER_NODE", str(world)))
    if not 0 <= node < len(counts):
        raise ConfigError(f"SLURM_NODEID={node} is not a node of SLURM_STEP_TASKS_PER_NODE="
                          f"{environ.get('SLURM_STEP_TASKS_PER_NODE')!r}")
    found = {"RANK": str(_slurm_int(environ, "SLURM_PROCID")), "WORLD_SIZE": str(world),
             "LOCAL_RANK": str(_slurm_int(environ, "SLURM_LOCALID")), "LOCAL_WORLD_SIZE": str(counts[node])}
    if "MASTER_ADDR" not in environ:
        found["MASTER_ADDR"] = first_host(environ.get("SLURM_STEP_NODELIST", ""))
    if "MASTER_PORT" not in environ:
        job, step = _slurm_int(environ, "SLURM_JOB_ID"), _slurm_int({"SLURM_STEP_ID": "0", **environ},
                                                                     "SLURM_STEP_ID")
        found["MASTER_PORT"] = str(SLURM_PORTS[0] + (job * 32 + step) % SLURM_PORTS[1])
    return found


def local_processes() -> int:
    """How many processes torchrun or srun started on this node (the cores are shared among them)."""
    value = os.environ.get("LOCAL_WORLD_SIZE") or slurm_step_environment().get("LOCAL_WORLD_SIZE") or "1"
    try:
        return max(1, int(value))
    except ValueError:
        raise ConfigError(f"the distributed environment variable LOCAL_WORLD_SIZE must be an integer, got "
                          f"{value!r}") from None


def adopt_slurm_step() -> dict[str, str]:
    """Set torch.distributed's variables from Slurm's in a job step of several tasks (see
    `slurm_step_environment`): `srun --ntasks N rdvae train` trains data-parallel as torchrun would."""
    found = slurm_step_environment()
    os.environ.update(found)
    return found


def restarted() -> bool:
    """Whether torchrun restarted this process after a failure (--max-restarts): it resumes by itself."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0


def _env_int(name: str) -> int:
    value = os.environ.get(name)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"the distributed environment variable {name} must be an integer, got {value!r} "
                          f"(start rdvae with torchrun, which sets {', '.join(ENVIRONMENT)})") from None


def timeout_seconds() -> float:
    value = os.environ.get("RDVAE_DIST_TIMEOUT_S", str(DEFAULT_TIMEOUT_S))
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ConfigError(f"RDVAE_DIST_TIMEOUT_S must be a number of seconds > 0, got {value!r}")
    return seconds


def rank_device(device: str, local_rank: int) -> torch.device:
    """The device of a rank: 'auto' and 'cuda' take cuda:LOCAL_RANK where CUDA is present; 'cpu' the CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' requested but CUDA is not available; use 'auto' or 'cpu'")
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"rank {local_rank} of this node has no GPU: the node has "
                              f"{torch.cuda.device_count()}; start at most that many processes per node")
        return torch.device("cuda", local_rank)
    raise ConfigError(f"device {device!r} cannot be used under torchrun: each rank takes cuda:LOCAL_RANK; "
                      "set device to auto, cuda or cpu")


def init(device: str = "auto") -> Group | None:
    """Join the group torchrun started this process in (None when it was not started as one of
    several). The backend follows the device: NCCL for CUDA, gloo for the CPU."""
    global _group
    if _group is not None:
        return _group
    if not launched():
        return None
    rank, world, local = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    where = rank_device(device, local)
    backend = "nccl" if where.type == "cuda" else "gloo"
    if where.type == "cuda":
        torch.cuda.set_device(where)
    if not dist.is_initialized():
        timeout = datetime.timedelta(seconds=timeout_seconds())
        options = {"device_id": where} if where.type == "cuda" else {}
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
        if attempt is not None and "MASTER_ADDR" in os.environ:
            # torchrun's store, with keys of this attempt only: after a restart (--max-restarts) gloo would
            # otherwise find the previous attempt's addresses there and fail to connect (torch 2.13)
            store = dist.TCPStore(os.environ["MASTER_ADDR"], _env_int("MASTER_PORT"), world, is_master=False,
                                  timeout=timeout)
            options.update(store=dist.PrefixStore(f"rdvae/attempt_{attempt}", store), rank=rank,
                           world_size=world)
        dist.init_process_group(backend, timeout=timeout, **options)
    _group = Group(rank, world, local, backend, where)
    _stop_on_sigterm()
    return _group


def _stop_on_sigterm() -> None:
    """torchrun stops every rank with SIGTERM when one of them fails: say so, and leave through the
    usual path (the interrupted run keeps its last checkpoint)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def stop(signum, frame):
        group = _group
        who = f"rank {group.rank} of {group.world_size}" if group else "this process"
        raise RankLost(f"{who}: stopped by SIGTERM (torchrun stops every rank when one of them fails or is "
                       "killed); the last checkpoint is kept: continue with `rdvae train --resume --out RUN`")

    signal.signal(signal.SIGTERM, stop)


def shutdown(completed: bool = False) -> None:
    """Leave the group (at the end of a command). `completed` (the command ended well on this rank):
    wait at a barrier first, so that no rank tears its backend down while another still has work in
    flight with it (a rank ending early could abort in gloo's threads at exit)."""
    global _group
    if dist.is_initialized():
        if completed:
            with contextlib.suppress(Exception):   # a peer that has gone: leave all the same
                dist.barrier()
        with contextlib.suppress(Exception):
            dist.destroy_process_group()
    _group = None


@contextlib.contextmanager
def collective(what: str, where: str = ""):
    """Turn the backend's error when a peer has gone into RankLost naming this rank and what to do."""
    try:
        yield
    except (RuntimeError, dist.DistError) as err:
        if isinstance(err, RankLost):
            raise
        group = _group
        who = f"rank {group.rank} of {group.world_size}" if group else "this rank"
        kept = f"the last checkpoint in {where} is kept; " if where else ""
        raise RankLost(f"{who}: another rank stopped during {what} ({' '.join(str(err).split())[:300]}); "
                       f"{kept}continue with `rdvae train --resume --out RUN` (under torchrun, "
                       "--max-restarts N resumes by itself)") from None


def _comm_device() -> torch.device:
    return _group.device if _group is not None and _group.backend == "nccl" else torch.device("cpu")


def vote(ok: bool) -> bool:
    """Whether every rank says ok (an all-reduce of the minimum)."""
    flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=_comm_device())
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


@contextlib.contextmanager
def together(what: str, outcome: str = "nothing was trained"):
    """Run a block on every rank and go on only if it succeeded on all: a rank that fails tells the
    others (who then raise RankLost naming `what` and the `outcome`) before it raises its own error, so
    that no rank waits for a peer that has failed. Without a group: the block as it is."""
    if _group is None:
        yield
        return
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            vote(False)
        raise
    with collective(what):
        ok = vote(True)
    if not ok:
        raise RankLost(f"rank {_group.rank} of {_group.world_size}: another rank failed {what} (its "
                       f"message says why); {outcome}")


def broadcast_json(value, src: int = 0):
    """`value` of rank `src` on every rank, sent as JSON (never pickled)."""
    device = _comm_device()
    if _group.rank == src:
        data = torch.tensor(list(json.dumps(value).encode()), dtype=torch.uint8, device=device)
        size = torch.tensor([data.numel()], dtype=torch.int64, device=device)
    else:
        size = torch.zeros(1, dtype=torch.int64, device=device)
    dist.broadcast(size, src)
    if _group.rank != src:
        data = torch.empty(int(size.item()), dtype=torch.uint8, device=device)
    dist.broadcast(data, src)
    return json.loads(bytes(data.cpu().tolist()).decode()) if _group.rank != src else value


def from_main(compute, errors: tuple[type[BaseException], ...] = ()):
    """compute() on rank 0, its (JSON) value on every rank. An error of rank 0 is raised there and, as
    the same type where it is one of `errors` (else RankLost), on the other ranks."""
    if _group is None:
        return compute()
    if _group.main:
        try:
            value = compute()
        except BaseException as err:
            kind = type(err).__name__ if isinstance(err, errors) else ""
            with contextlib.suppress(Exception):
                broadcast_json({"error": f"{type(err).__name__}: {err}" if not kind else str(err),
                                "kind": kind})
            raise
        broadcast_json({"value": value})
        return value
    shared = broadcast_json(None)
    if "error" in shared:
        by_name = {e.__name__: e for e in errors}
        raise by_name.get(shared["kind"], RankLost)(
            shared["error"] if shared["kind"] else f"rank 0 stopped: {shared['error']}")
    return shared["value"]


def reduce_step(params: list[torch.Tensor], loss: torch.Tensor, figures: dict[str, torch.Tensor],
                weight: float, checkpoint_vote: bool
                ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """One all-reduce per dtype of the gradients: each rank's gradients and figures times its share of
    the batch (`weight`), summed over the ranks into every rank's `.grad`; returns the step's figures
    (the whole batch's means), whether any rank's loss was not finite, and the checkpoint votes."""
    grads = [p.grad for p in params if p.grad is not None]
    names = list(figures)
    device = grads[0].device if grads else loss.device
    extras = torch.stack([*(figures[name].detach().float().mean().to(device) * weight for name in names),
                          (~torch.isfinite(loss.detach())).float().to(device),
                          torch.tensor(float(checkpoint_vote), device=device)])
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for grad in grads:
        by_dtype.setdefault(grad.dtype, []).append(grad)
    carrier = next((d for d in by_dtype if d in (torch.float32, torch.float64)), None)
    for dtype, group in by_dtype.items():   # usually one: float32
        pieces = [g.reshape(-1) for g in group]
        if dtype == carrier:
            pieces.append(extras.to(dtype))
        flat = torch.cat(pieces)   # one copy of the gradients, weighted in place
        flat[:sum(g.numel() for g in group)].mul_(weight)
        dist.all_reduce(flat)
        offset = 0
        for g in group:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()
        if dtype == carrier:
            extras = flat[offset:].float()
    if carrier is None:   # no float32 or float64 gradient to carry them
        dist.all_reduce(extras)
    shared = dict(zip(names, extras[:len(names)], strict=True))
    return shared, extras[len(names)] > 0, extras[len(names) + 1] > 0


def gather_states(state: torch.Tensor) -> torch.Tensor:
    """Every rank's generator state (a uint8 tensor of one size), stacked in rank order."""
    device = _comm_device()
    mine = state.to(device)
    out = [torch.empty_like(mine) for _ in range(_group.world_size)]
    dist.all_gather(out, mine)
    return torch.stack([o.cpu() for o in out])


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Rank 0's floating-point buffers (e.g. batch-norm statistics) on every rank, as DDP keeps them."""
    for buffer in module.buffers():
        if buffer.is_floating_point():
            dist.broadcast(buffer.data, 0)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank `rank`'s Monte Carlo draws (rank 0 keeps the run's own stream)."""
    return (seed * 1_000_003 + 7919 * rank) % (2**63 - 1)


def note(message: str) -> None:
    """One line on stderr, from rank 0 only."""
    if is_main():
        print(f"rdvae: {message}", file=sys.stderr)


__all__ = ["Group", "RankLost", "broadcast_buffers", "broadcast_json", "collective", "current", "from_main",
           "gather_states", "init", "is_main", "launched", "rank_seed", "reduce_step", "restarted",
           "shutdown", "together", "vote"]
