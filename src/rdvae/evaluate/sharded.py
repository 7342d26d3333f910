"""Evaluation sharded over the ranks of a torch.distributed group (torchrun), equal to the same evaluation
in one process.

evaluate_model draws every Monte Carlo sample from one random stream, so its draws depend on the order of
the examples and no split of the examples over processes can reproduce them. The sharded evaluation
therefore draws per BLOCK: the examples are cut into fixed blocks of `block` consecutive examples
(independent of the world size), and the draws of block k for measure m come from a stream seeded with
block_seed(seed, m, k). Rank r of W evaluates the contiguous blocks [K r / W, K (r + 1) / W) of the K
blocks, computing per-example values; these are gathered to every rank (torch.distributed.all_gather on
tensors, nothing pickled), put back in example order, and the means and standard errors are computed from
the whole tensors by the code of the single-process measures (rdvae.evaluate.builtin_measures). Every
per-example value is computed from the same block with the same seed, batch by batch as in one process,
so a world of W ranks returns the figures of one process (world size 1, `rdvae eval RUN --sharded`), on
the same kind of device bit for bit in our tests, in general up to the order of float reductions.

What each measure shards (its per-example values; the seeded draws are the block's):

    rate-distortion   R and D of each example (one z ~ e(z|x))
    mutual-info       log e(z_n|x_n) - log q(z_n), one z_n per example, with the aggregate posterior
                      q(z) = (1/N) sum_n e(z|x_n) summed over ALL N examples on every rank
    active-units      the posterior means E[z|x_n] (no draws)
    iw-nll            the k-sample IW log p(x) of each example
    ais               the AIS log p(x) of each example (its chains; the step sizes tuned per block)
    surgery           the per-draw terms of the ELBO surgery (index-code MI, marginal KL and its split),
                      q(z) and q(z_j) summed over all N on every rank; the examples of the outer
                      expectation (`points`) and the draws of the split (`split_points`) are chosen with
                      generators seeded from the seed, the same on every rank

The aggregate posterior needs every example's posterior, which is why every rank holds the whole x and
the same weights: the weights and the examples of rank 0 are broadcast to the others before anything is
measured (the encoder's parameters are shared, not its samples). Other measures (bdmc, retrieval, fid, a
plugin's) run after the sharded ones on rank 0 only, in registry order from one stream seeded with
`seed` as evaluate_model runs them, seeing the sharded measures' results (and their per-example shares)
as `earlier`; the other ranks return the sharded keys only.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from tqdm.auto import tqdm

from ..device import seeded
from ..engine import distributed
from ..engine.distributed import RankLost
from ..errors import ConfigError, EvaluationError
from ..objectives.total_correlation import FactorizationError
from .active_units import THRESHOLD, count_active, mean_variance, posterior_means
from .ais import anneal, check_options, sigmoid_schedule
from .batching import model_device
from .likelihood import iw_log_likelihood
from .measures import _check_settings, check_data, check_needs, plan_measures, run_in_order
from .mutual_information import MutualInformation, aggregate_log_density, posterior_samples
from .rate_distortion import rate_distortion
from .report import model_measures
from .surgery import _average_analytic_kl, _tabulate, marginal_kl_terms, rate_terms, surgery_of

DEFAULT_BLOCK = 500   # examples per block: enough for batched arithmetic, small enough to balance ranks
SHARDED = ("rate-distortion", "mutual-info", "active-units", "iw-nll", "ais", "surgery")
STREAMS = "per-block"
RATE_TERMS = ("index_code_mi", "marginal_kl", "monte_carlo_kl")              # per draw, of surgery.rate_terms
SPLIT_TERMS = ("total_correlation", "dimension_kl", "marginal_dependence")   # of surgery.marginal_kl_terms


def block_seed(seed: int, stream: str, block: int) -> int:
    """The seed of the draws of block `block` for `stream` (a measure's name): the first 63 bits of
    SHA-256 of "rdvae-eval/SEED/STREAM/BLOCK". Independent of the world size and of the other blocks."""
    digest = hashlib.sha256(f"rdvae-eval/{seed}/{stream}/{block}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def check_block(block) -> int:
    """`block` if it is an integer >= 1, else a ConfigError naming it."""
    if not (isinstance(block, int) and not isinstance(block, bool) and block >= 1):
        raise ConfigError(f"the sharded evaluation's block must be an integer >= 1 (examples per block of "
                          f"draws), got {block!r}")
    return block


@dataclass(frozen=True)
class Shards:
    """`count` items cut into blocks of `block` consecutive items, the blocks dealt to `world_size` ranks
    in contiguous runs: rank r has blocks [K r / W, K (r + 1) / W) of the K blocks."""

    count: int
    block: int
    world_size: int = 1
    rank: int = 0

    @property
    def blocks(self) -> int:
        return -(-self.count // self.block)

    def blocks_of(self, rank: int) -> range:
        k, w = self.blocks, self.world_size
        return range(k * rank // w, k * (rank + 1) // w)

    def span(self, k: int) -> tuple[int, int]:
        """The items [start, stop) of block k."""
        return k * self.block, min(self.count, (k + 1) * self.block)

    def items_of(self, rank: int) -> int:
        blocks = self.blocks_of(rank)
        return 0 if not blocks else self.span(blocks[-1])[1] - self.span(blocks[0])[0]

    @property
    def mine(self) -> range:
        return self.blocks_of(self.rank)

    def sizes(self, per_item: int = 1) -> list[int]:
        """Items (times `per_item`) of every rank, in rank order."""
        return [self.items_of(r) * per_item for r in range(self.world_size)]


def _builtin():
    """rdvae.evaluate.builtin_measures, whose code turns per-example values into a measure's keys
    (imported when used: importing it registers the measures, which loads the plugins)."""
    from . import builtin_measures

    return builtin_measures


# -- collectives -----------------------------------------------------------------------------------------
@contextlib.contextmanager
def _collective(what: str):
    """A backend error when a peer has gone, as RankLost naming this rank and `what`."""
    try:
        yield
    except (RuntimeError, dist.DistError) as err:
        if isinstance(err, RankLost):
            raise
        group = distributed.current()
        who = f"rank {group.rank} of {group.world_size}" if group else "this rank"
        raise RankLost(f"{who}: another rank stopped during {what} of the sharded evaluation "
                       f"({' '.join(str(err).split())[:300]}); nothing was written") from None


@contextlib.contextmanager
def all_ranks(what: str):
    """Run a block on every rank and go on only where it succeeded on all: a rank that fails tells the
    others, which raise RankLost naming `what`, before it raises its own error (no rank waits for a
    peer that has failed). Without a group: the block as it is."""
    with distributed.together(what, "nothing was written"):
        yield


def _comm_device() -> torch.device:
    group = distributed.current()
    return group.device if group is not None and group.backend == "nccl" else torch.device("cpu")


def gather(local: Tensor, sizes: list[int], what: str = "gathering the per-example values") -> Tensor:
    """The rows [sizes[r], ...] of every rank r, concatenated in rank order on the CPU (every rank gets
    all of them). Without a group: `local` on the CPU."""
    local = local.detach().cpu()
    if distributed.current() is None:
        return local
    device, width = _comm_device(), max(sizes)
    padded = torch.zeros((width, *local.shape[1:]), dtype=local.dtype, device=device)
    padded[:len(local)] = local.to(device)
    out = [torch.empty_like(padded) for _ in sizes]
    with _collective(what):
        dist.all_gather(out, padded)
    return torch.cat([o[:n].cpu() for o, n in zip(out, sizes, strict=True)])


def share(model: torch.nn.Module, x: Tensor) -> Tensor:
    """Rank 0's examples and weights on every rank: x's shape and dtype must agree (a ConfigError on every
    rank otherwise); rank 0's x is returned (the caller's tensor is not changed) and every tensor of the
    model's state_dict (parameters and buffers) is overwritten with rank 0's."""
    group = distributed.current()
    if group is None:
        return x
    device = _comm_device()
    with _collective("sharing the examples and the weights"):
        mine = [list(x.shape), str(x.dtype)]
        theirs = distributed.broadcast_json(mine)
        if not distributed.vote(mine == theirs):
            here = "another rank other ones" if group.main else f"rank {group.rank} {mine[0]}, {mine[1]}"
            raise ConfigError(f"the ranks hold different examples (rank 0 shape {theirs[0]}, {theirs[1]}; "
                              f"{here}); every rank must evaluate the same split")
        data = x.detach().to(device, copy=True).contiguous()
        dist.broadcast(data, 0)
        with torch.no_grad():
            for tensor in model.state_dict().values():
                if not isinstance(tensor, Tensor):
                    continue
                buffer = tensor.detach().to(device, copy=True).contiguous()
                dist.broadcast(buffer, 0)
                if not group.main:
                    tensor.copy_(buffer.to(tensor.device))
    return data.to(x.device)


# -- the sharded measures ----------------------------------------------------------------------------------
def _rows(parts: list[Tensor], empty: Tensor) -> Tensor:
    """The blocks' rows concatenated (`empty`, of the right trailing shape and dtype, for no block)."""
    return torch.cat([p.cpu() for p in parts]) if parts else empty


class _Sharded:
    """One sharded evaluation: the shards of x on this rank and what measuring them needs."""

    def __init__(self, model, x: Tensor, seed: int, batch_size: int, precision: str, block: int,
                 progress: bool):
        group = distributed.current()
        self.model, self.x, self.seed, self.batch_size, self.precision = model, x, seed, batch_size, precision
        self.device = model_device(model)
        self.shards = Shards(len(x), block, group.world_size if group else 1, group.rank if group else 0)
        self.progress = progress and distributed.is_main()
        self._table = None

    def table(self):
        """e(z|x_n) of all N examples for the sums over them (surgery._tabulate: rows of a diagonal
        Gaussian, or the encoder and x)."""
        if self._table is None:
            self._table = _tabulate(self.model.encoder, self.x, self.batch_size)
        return self._table

    def blocks(self, name: str, shards: Shards | None = None):
        """(k, start, stop) of this rank's blocks, with a progress bar on rank 0."""
        shards = shards or self.shards
        for k in tqdm(shards.mine, desc=f"{name} (blocks)", unit="block", disable=not self.progress,
                      leave=False):
            yield (k, *shards.span(k))

    def seeded(self, name: str, k: int):
        return seeded(block_seed(self.seed, name, k), self.device)

    # each returns the measure's keys (and shares) from the gathered per-example values
    def rate_distortion(self, earlier) -> dict:
        parts = []
        with all_ranks("to measure rate-distortion"):
            for k, start, stop in self.blocks("rate-distortion"):
                with self.seeded("rate-distortion", k):
                    rate, distortion = rate_distortion(self.model, self.x[start:stop], self.batch_size,
                                                       precision=self.precision)
                parts.append(torch.stack([rate, distortion], dim=1))
        both = gather(_rows(parts, torch.empty(0, 2)), self.shards.sizes())
        return _builtin().rate_distortion_figures(both[:, 0].contiguous(), both[:, 1].contiguous())

    def mutual_info(self, earlier) -> dict:
        encoder = self.model.encoder
        parts = []
        with all_ranks("to measure mutual-info"):
            table_encoder, table = self.table()
            for k, start, stop in self.blocks("mutual-info"):
                with self.seeded("mutual-info", k):
                    z, log_e = posterior_samples(encoder, self.x[start:stop], self.batch_size)
                parts.append(log_e - aggregate_log_density(table_encoder, table, z, self.batch_size))
        terms = gather(_rows(parts, torch.empty(0)), self.shards.sizes())
        return _builtin().mutual_info_figures(MutualInformation.from_terms(terms))

    def active_units(self, earlier, threshold: float = THRESHOLD) -> dict:
        with all_ranks("to measure active-units"):
            parts = [posterior_means(self.model.encoder, self.x[start:stop], self.batch_size)
                     for _, start, stop in self.blocks("active-units")]
            dims = posterior_means(self.model.encoder, self.x[:1], self.batch_size).shape[1:]
        means = gather(_rows(parts, torch.empty(0, *dims, dtype=torch.float64)), self.shards.sizes())
        return {"active_units": count_active(mean_variance(means), threshold)}

    def iw_nll(self, earlier, samples: int, rows: int | None = None) -> dict:
        parts = []
        with all_ranks("to measure iw-nll"):
            for k, start, stop in self.blocks("iw-nll"):
                with self.seeded("iw-nll", k):
                    parts.append(iw_log_likelihood(self.model, self.x[start:stop], samples, rows=rows,
                                                   precision=self.precision))
        log_px = gather(_rows(parts, torch.empty(0)), self.shards.sizes())
        return _builtin().iw_figures(log_px, samples, earlier.get("distortion"))

    def ais(self, earlier, steps: int, chains: int = 16, **options) -> dict:
        from .ais import LEAPFROG, ais_figures

        parts, costs = [], []
        with all_ranks("to measure ais"):
            for k, start, stop in self.blocks("ais"):
                run = anneal(self.model, self.x[start:stop], sigmoid_schedule(steps), chains=chains,
                             seed=block_seed(self.seed, "ais", k), **options)
                parts.append(run.log_likelihood())
                costs.append([run.acceptance * (stop - start),
                              run.gradient_evaluations * chains * (stop - start), run.seconds])
        log_px = gather(_rows(parts, torch.empty(0, dtype=torch.float64)), self.shards.sizes())
        cost = torch.tensor(costs, dtype=torch.float64).reshape(-1, 3)
        cost = gather(cost, [len(self.shards.blocks_of(r)) for r in range(self.shards.world_size)])
        acceptance, evaluations, seconds = cost.sum(0).tolist()
        found = ais_figures(log_px, steps, chains, options.get("leapfrog", LEAPFROG),
                            acceptance / len(log_px), round(evaluations), seconds)
        result = {**found, "ais_log_px": found.pop("log_px")}
        if earlier.get("iw_log_px") is not None:
            difference = _builtin().paired_difference(earlier["iw_log_px"], result["ais_log_px"])
            result["ais_minus_iw"], result["ais_minus_iw_se"] = difference
        return result

    def surgery(self, earlier, points: int | None = None, samples_per_example: int = 1,
                split_points: int = 5000) -> dict:
        model, x, n, each = self.model, self.x, len(self.x), samples_per_example
        index = torch.arange(n)
        if points is not None and points < n:     # the examples of the outer expectation
            picker = torch.Generator().manual_seed(block_seed(self.seed, "surgery-points", 0))
            index = torch.randperm(n, generator=picker)[:points].sort().values
        shards = Shards(len(index), self.shards.block, self.shards.world_size, self.shards.rank)
        draws = len(index) * each
        chosen = torch.zeros(draws, dtype=torch.bool)      # the draws of the TC / dimension-wise split
        if split_points:
            if split_points < draws:
                picker = torch.Generator().manual_seed(block_seed(self.seed, "surgery-split", 0))
                chosen[torch.randperm(draws, generator=picker)[:split_points]] = True
            else:
                chosen[:] = True
        note = "" if split_points else "not computed (dimensions=False)"
        parts, kls = [], []
        with all_ranks("to measure surgery"):
            with seeded(self.seed, self.device):
                marginal = model.marginal_distribution()
            encoder, (table_encoder, table) = model.encoder, self.table()
            # whether the KL is analytic and the split possible: decided alike on every rank
            with seeded(block_seed(self.seed, "surgery-probe", 0), self.device):
                z, log_e = posterior_samples(encoder, x[:1], self.batch_size)
            analytic = _average_analytic_kl(encoder, marginal, x[:1], self.batch_size) is not None
            if not note:
                try:
                    marginal_kl_terms(table_encoder, marginal, table, z, log_e, log_e, self.batch_size)
                except (FactorizationError, TypeError) as err:
                    note = str(err)
            for k, start, stop in self.blocks("surgery", shards):
                examples = x[index[start:stop]]
                with self.seeded("surgery", k):
                    z, log_e = posterior_samples(encoder, examples.repeat_interleave(each, dim=0),
                                                 self.batch_size)
                terms = rate_terms(table_encoder, marginal, table, z, log_e.float(), self.batch_size)
                row = torch.full((len(z), 6), math.nan)
                for j, name in enumerate(RATE_TERMS):
                    row[:, j] = terms[name].cpu()
                pick = chosen[start * each:stop * each]
                if not note and bool(pick.any()):
                    on = pick.to(z.device)
                    split = marginal_kl_terms(table_encoder, marginal, table, z[on], terms["log_q"][on],
                                              terms["log_m"][on], self.batch_size)
                    for j, name in enumerate(SPLIT_TERMS, len(RATE_TERMS)):
                        row[pick, j] = split[name].cpu()
                parts.append(row)
                if analytic:
                    kls.append(_average_analytic_kl(encoder, marginal, examples, self.batch_size))
        rows = gather(_rows(parts, torch.empty(0, 6)), shards.sizes(each))
        per_example = gather(_rows(kls, torch.empty(0)), shards.sizes()) if analytic else None
        terms = {name: rows[:, j].contiguous() for j, name in enumerate(RATE_TERMS)}   # as one tensor each
        split = {} if note else {name: rows[chosen, j] for j, name in enumerate(SPLIT_TERMS, len(RATE_TERMS))}
        return surgery_of(terms, per_example, split, note, n).as_dict()


METHODS = {"rate-distortion": _Sharded.rate_distortion, "mutual-info": _Sharded.mutual_info,
           "active-units": _Sharded.active_units, "iw-nll": _Sharded.iw_nll, "ais": _Sharded.ais,
           "surgery": _Sharded.surgery}


def _check_options(name: str, options: dict) -> None:
    """What the measure's own function refuses of its options, refused before anything is measured
    (a ConfigError naming the measure, as run_measures does)."""
    builtin = _builtin()
    try:
        if name == "active-units":
            builtin.check_threshold(options.get("threshold", THRESHOLD))
        elif name == "iw-nll":
            builtin._integer("samples", options.get("samples"), 1)
            if options.get("rows") is not None:
                builtin._integer("rows", options["rows"], 1)
        elif name == "ais":
            check_options(**options)
        elif name == "surgery":
            if options.get("points") is not None:
                builtin._integer("points", options["points"], 1)
            builtin._integer("samples_per_example", options.get("samples_per_example", 1), 1)
            builtin._integer("split_points", options.get("split_points", 5000), 0)
    except (ValueError, TypeError) as err:
        given = ", ".join(f"{k}={v!r}" for k, v in options.items())
        raise ConfigError(f"measure {name!r}{f' ({given})' if given else ''}: {err}") from None


def run_sharded(model, x: Tensor, measures: Mapping[str, Mapping | None] | Iterable[str], *, seed: int = 0,
                batch_size: int = 1000, precision: str = "fp32", progress: bool = False,
                block: int = DEFAULT_BLOCK, inputs: Mapping[str, Any] | None = None) -> dict:
    """run_measures with per-block streams, sharded over the ranks of the group this process joined
    (rdvae.engine.distributed.init; without one, every block in this process): the measures of SHARDED
    (rate-distortion, mutual-info, active-units, iw-nll, ais, surgery) on every rank, the others after
    them on rank 0 only (see the module's docstring). Returns their keys and `streams` ("per-block"),
    `world_size` and `block`; every rank returns the sharded measures' keys, rank 0 all of them."""
    planned = plan_measures(measures)
    _check_settings(seed, batch_size, precision)
    check_block(block)
    for step in planned:
        if step.measure.name in SHARDED:
            _check_options(step.measure.name, step.options)
    inputs = dict(inputs or {})
    check_needs(planned, inputs)
    x = share(model, x)
    if len(x) < 1:
        raise ConfigError("the sharded evaluation needs at least one example, got none")
    check_data(x)
    model.eval()
    evaluation = _Sharded(model, x, seed, batch_size, precision, block, progress)
    stored: dict = {}
    earlier: dict = {}
    for step in planned:
        measure = step.measure
        if measure.name not in SHARDED:
            continue
        try:
            returned = METHODS[measure.name](evaluation, earlier, **step.options)
        except (EvaluationError, ConfigError, RankLost):
            raise
        except (ValueError, TypeError) as err:   # as run_measures reports them (measures.call_measure)
            given = ", ".join(f"{k}={v!r}" for k, v in step.options.items())
            raise ConfigError(f"measure {measure.name!r}{f' ({given})' if given else ''}: {err}") from err
        earlier.update(returned)
        stored.update({k: v for k, v in returned.items() if k in measure.keys})
    rest = [step for step in planned if step.measure.name not in SHARDED]
    if rest and distributed.is_main():
        context = {"seed": seed, "batch_size": batch_size, "precision": precision, "progress": progress}
        with seeded(seed, model_device(model)):
            run_in_order(model, x, rest, context, inputs, earlier, stored)
    return {**stored, "streams": STREAMS, "world_size": evaluation.shards.world_size, "block": block}


def evaluate_sharded(model, x: Tensor, *, iw_samples: int = 0, diagnostics: bool = True, ais_steps: int = 0,
                     ais_chains: int = 16, ais_options: dict | None = None,
                     surgery: bool | Mapping | None = None, seed: int = 0, batch_size: int = 1000,
                     precision: str = "fp32", block: int = DEFAULT_BLOCK, progress: bool = False) -> dict:
    """evaluate_model's figures (the same keys and arguments) with per-block streams, sharded over the
    ranks of the group this process joined (rdvae.engine.distributed.init, under torchrun), or every block
    in this process without one: the figures every world size returns. `surgery`: also the ELBO surgery
    (True, or the surgery measure's options: points, samples_per_example, split_points). `block`: examples
    per block of draws (a different block size draws differently). Adds `streams` ("per-block"),
    `world_size` and `block`. Every rank returns the result."""
    for name, value, low in (("iw_samples", iw_samples, 0), ("ais_steps", ais_steps, 0),
                             ("ais_chains", ais_chains, 1)):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
            raise ConfigError(f"evaluate_sharded: {name} must be an integer >= {low}, got {value!r}")
    if ais_options is not None and not isinstance(ais_options, Mapping):
        raise ConfigError(f"evaluate_sharded: ais_options must be a mapping of anneal's options, got "
                          f"{ais_options!r}")
    measures = model_measures(iw_samples, diagnostics, ais_steps, ais_chains, dict(ais_options or {}))
    if surgery:
        if not (surgery is True or isinstance(surgery, Mapping)):
            raise ConfigError(f"evaluate_sharded: surgery must be True or a mapping of the surgery measure's "
                              f"options (points, samples_per_example, split_points), got {surgery!r}")
        measures["surgery"] = {} if surgery is True else dict(surgery)
    return run_sharded(model, x, measures, seed=seed, batch_size=batch_size, precision=precision,
                       progress=progress, block=block)


__all__ = ["DEFAULT_BLOCK", "SHARDED", "STREAMS", "Shards", "all_ranks", "block_seed", "check_block",
           "evaluate_sharded", "gather", "run_sharded", "share"]
