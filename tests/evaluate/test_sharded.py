"""The sharded evaluation (rdvae.evaluate.sharded): per-block streams make the figures independent of the
world size. Real processes (gloo on the CPU, rendezvous through MASTER_ADDR/MASTER_PORT as torchrun sets
them) in worlds of 2 and 3, with blocks dealt unevenly, each return every figure of one process, rank 0's
weights and examples being the ones measured, and a rank that fails stops the others at once; the
per-block scheme is what its documentation says (a brute-force recomputation block by block);
`rdvae eval RUN --sharded` stores the keys; and (slow) the real CLI under torchrun equals `--sharded` in
one process."""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rdvae.cli import main
from rdvae.device import seeded
from rdvae.errors import ConfigError
from rdvae.evaluate import (
    active_units,
    aggregate_log_density,
    evaluate_sharded,
    iw_log_likelihood,
    posterior_samples,
    rate_distortion,
    run_sharded,
)
from rdvae.evaluate.ais import ais_log_likelihood
from rdvae.evaluate.sharded import Shards, block_seed
from rdvae.presets import build_model
from rdvae.train import load_run

N, BLOCK, SEED, BATCH = 230, 50, 3, 32      # 5 blocks, the last of 30: dealt 2/3 over 2 ranks, 1/2/2 over 3
MEASURES = {"rate-distortion": {}, "mutual-info": {}, "active-units": {}, "iw-nll": {"samples": 8},
            "ais": {"steps": 4, "chains": 2}, "bdmc": {"steps": 3, "examples": 2, "chains": 2},
            "surgery": {"samples_per_example": 2, "split_points": 100}}
SETTINGS = dict(seed=SEED, batch_size=BATCH, block=BLOCK)
TIMES = ("ais_seconds", "bdmc_seconds")    # wall-clock seconds: the only keys that may differ
START_LIMIT_S = 180                        # processes that import torch, on loaded cores


def tiny(rank: int = 0):
    """A small Gaussian MLP VAE and binary data; on a rank other than 0 both are perturbed (the sharded
    evaluation must measure rank 0's)."""
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), latent_dim=2, hidden=[8])
    x = torch.rand(N, 1, 8, 8).round()
    if rank:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * rank)
        x = 1 - x
    return model, x


def worker(out: str) -> None:
    """One rank (started by _launch): joins the group, measures, then measures again with rank 1's IW
    estimator failing; writes its result and what it raised the second time as JSON."""
    from rdvae.engine import distributed
    from rdvae.evaluate import sharded

    def broken(*args, **kwargs):
        raise ValueError("broken estimator")

    torch.set_num_threads(1)
    group = distributed.init("cpu")
    try:
        model, x = tiny(group.rank)
        result = run_sharded(model, x, MEASURES, **SETTINGS)
        if group.rank == 1:
            sharded.iw_log_likelihood = broken
        try:
            run_sharded(model, x, {"rate-distortion": {}, "iw-nll": {"samples": 2}}, **SETTINGS)
            failure = None
        except Exception as err:  # noqa: BLE001 - what each rank raised is the result
            failure = [type(err).__name__, str(err)]
    finally:
        distributed.shutdown()
    Path(out, f"rank{group.rank}.json").write_text(json.dumps({"result": result, "failure": failure}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(world: int, out: Path) -> list[dict]:
    """`world` processes running `worker`, as torchrun would start them; their results in rank order."""
    code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('sharded_worker', "
            "sys.argv[1]); module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
            "module.worker(sys.argv[2])")
    port = _free_port()
    processes = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
               "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "RDVAE_DIST_TIMEOUT_S": "120", "OMP_NUM_THREADS": "1"}
        processes.append(subprocess.Popen([sys.executable, "-c", code, __file__, str(out)], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for p in processes:
            outputs.append(p.communicate(timeout=START_LIMIT_S)[0])
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in processes), "\n".join(outputs)[-3000:]
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(world)]


@contextlib.contextmanager
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def single():
    """The evaluation in this process (world size 1): the figures every world must give."""
    model, x = tiny()
    with _one_thread():
        return run_sharded(model, x, MEASURES, **SETTINGS)


@pytest.mark.parametrize("world", [2, 3])
def test_every_world_size_gives_the_figures_of_one_process(world, single, tmp_path):
    launched = _launch(world, tmp_path)
    results = [r["result"] for r in launched]
    assert single["world_size"] == 1 and single["streams"] == "per-block" and single["block"] == BLOCK
    expected = {k: v for k, v in single.items() if k not in TIMES and k != "world_size"}
    for rank, result in enumerate(results):
        assert result["world_size"] == world
        got = {k: v for k, v in result.items() if k not in TIMES and k != "world_size"}
        if rank == 0:            # rank 0 also runs what is not sharded (bdmc), from the evaluation's seed
            assert got == expected
        else:                    # the others return the sharded measures' keys only
            assert got == {k: v for k, v in expected.items() if not k.startswith("bdmc_")}
    assert single["surgery_points"] == 2 * N and single["surgery_dimension_points"] == 100
    assert single["ais_gradient_evaluations"] == results[0]["ais_gradient_evaluations"]
    # a rank that fails stops the others at once (not at the group's timeout), each saying why
    assert launched[1]["failure"] == ["ConfigError", "measure 'iw-nll' (samples=2): broken estimator"]
    for rank in {0, world - 1} - {1}:
        name, message = launched[rank]["failure"]
        assert name == "RankLost"
        assert f"rank {rank} of {world}: another rank failed to measure iw-nll" in message


def test_blocks_are_dealt_in_contiguous_runs():
    shards = Shards(N, BLOCK, world_size=3)
    assert shards.blocks == 5 and [list(shards.blocks_of(r)) for r in range(3)] == [[0], [1, 2], [3, 4]]
    assert shards.sizes() == [50, 100, 80] and shards.span(4) == (200, 230)
    assert Shards(3, 1, world_size=5).sizes() == [0, 1, 0, 1, 1]     # more ranks than blocks
    assert block_seed(0, "ais", 1) != block_seed(0, "ais", 2) != block_seed(1, "ais", 2)
    assert 0 <= block_seed(2**32 - 1, "rate-distortion", 10**6) < 2**63


def test_the_figures_are_those_of_the_documented_per_block_draws():
    model, x = tiny()
    result = evaluate_sharded(model, x, iw_samples=8, ais_steps=4, ais_chains=2, **SETTINGS)
    spans = [(k, k * BLOCK, min(N, (k + 1) * BLOCK)) for k in range(5)]

    def per_block(name, compute):
        parts = []
        for k, start, stop in spans:
            with seeded(block_seed(SEED, name, k)):
                parts.append(compute(x[start:stop]))
        return parts

    rd = per_block("rate-distortion", lambda xb: torch.stack(rate_distortion(model, xb, BATCH)))
    rate, distortion = torch.cat(rd, dim=1)
    assert result["rate"] == rate.mean().item() and result["distortion"] == distortion.mean().item()
    assert result["elbo"] == -(rate + distortion).mean().item() and result["examples"] == N

    draws = per_block("mutual-info", lambda xb: posterior_samples(model.encoder, xb, BATCH))
    z, log_e = torch.cat([d[0] for d in draws]), torch.cat([d[1] for d in draws])
    terms = (log_e - aggregate_log_density(model.encoder, x, z)).double()   # q(z) over all N, one sum
    assert result["mutual_info"] == pytest.approx(terms.mean().item(), abs=1e-6)
    assert result["mutual_info_se"] == pytest.approx(terms.std().item() / N ** 0.5, rel=1e-4)
    assert result["active_units"] == active_units(model.encoder, x)

    log_px = torch.cat(per_block("iw-nll", lambda xb: iw_log_likelihood(model, xb, 8)))
    assert result["iw_nll"] == -log_px.mean().item()
    ais = torch.cat([ais_log_likelihood(model, x[start:stop], 4, 2, seed=block_seed(SEED, "ais", k))["log_px"]
                     for k, start, stop in spans])
    assert result["ais_nll"] == pytest.approx(-ais.double().mean().item(), rel=1e-7)
    assert result["ais_minus_iw"] == pytest.approx((log_px.double() - ais.double()).mean().item(), rel=1e-6)

    other = evaluate_sharded(model, x, seed=SEED, batch_size=BATCH, block=40)   # other blocks, other draws
    assert other["distortion"] != result["distortion"] and other["rate"] == result["rate"]   # R: analytic KL


def test_bad_settings_are_refused_naming_them():
    model, x = tiny()
    for settings, match in (({"block": 0}, "block must be an integer >= 1"),
                            ({"iw_samples": -1}, "iw_samples must be an integer >= 0"),
                            ({"ais_steps": 2, "ais_chains": 0}, "ais_chains must be an integer >= 1"),
                            ({"surgery": {"points": 0}}, "points must be an integer >= 1"),
                            ({"surgery": {"split": 3}}, "split"),
                            ({"ais_steps": 2, "ais_options": {"jitter": 1.5}}, "jitter must be in"),
                            ({"seed": -1}, "seed must be an integer")):
        with pytest.raises(ConfigError, match=match):
            evaluate_sharded(model, x, **settings)
    with pytest.raises(ConfigError, match="at least one example"):
        evaluate_sharded(model, x[:0])




def test_rdvae_eval_sharded_stores_the_keys(run, capsys):
    trained_with = json.loads((run / "summary.json").read_text()).get("world_size")
    assert main(["eval", str(run), "--sharded", "--block", "100", "--iw-samples", "5", "--json",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    shown = json.loads(out.strip().splitlines()[-1])
    summary = json.loads((run / "summary.json").read_text())
    assert "per-block streams, blocks of 100 examples, 1 process(es)" in out
    trained = load_run(run, device="cpu")
    expected = evaluate_sharded(trained.model, trained.dataset.test, iw_samples=5, block=100)
    for key in ("rate", "distortion", "elbo", "mutual_info", "active_units", "iw_nll", "h_hat_minus_d"):
        assert summary[key] == shown[key] == expected[key]
    assert [summary[f"eval_{key}"] for key in ("streams", "world_size", "block")] == ["per-block", 1, 100]
    assert summary["status"] == "done" and summary.get("world_size") == trained_with   # the training's
    assert "streams" not in summary and "block" not in summary

    assert main(["eval", str(run), "--no-progress"]) == 0          # one stream again: the markers go
    summary = json.loads((run / "summary.json").read_text())
    assert "eval_streams" not in summary and "eval_block" not in summary
    assert main(["eval", str(run), "--block", "100"]) == 2
    assert "--block 100 sets the blocks of a sharded evaluation" in capsys.readouterr().err


@pytest.mark.slow
def test_rdvae_eval_under_torchrun_equals_sharded_in_one_process(run, tmp_path):
    twin = tmp_path / "twin"
    shutil.copytree(run, twin)
    options = ["--block", "100", "--iw-samples", "5", "--surgery", "--surgery-split-points", "60",
               "--no-progress"]
    assert main(["eval", str(run), "--sharded", *options]) == 0
    env = {**os.environ, "RDVAE_DIST_TIMEOUT_S": "120"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                           "2", "-m", "rdvae", "eval", str(twin), *options], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("written to") == 1          # rank 0 alone reports
    one, two = (json.loads((path / "summary.json").read_text()) for path in (run, twin))
    assert one.pop("eval_world_size") == 1 and two.pop("eval_world_size") == 2
    assert one == two
