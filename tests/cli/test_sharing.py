"""A run folder people send each other: opening one runs none of its code unasked, one process writes
it at a time, its reading belongs to the code and data it was made from, and nothing is written outside
the target a command was given. Each command runs in a fresh interpreter (`python -m rdvae ...`)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from tests.cli.test_plugins import FAMILY, PLUGIN, TRAIN, _ok, _one_line_error, _read, _start, _write_data
from tests.cli.test_plugins import _finish as finish
from tests.cli.test_plugins import rdvae as rdvae_cli

# a plugin that leaves a mark when it is imported
EVIL = 'from pathlib import Path\nPath(__file__).with_name("IMPORTED").write_text("ran")\n' + PLUGIN + FAMILY


def _tree(root: Path) -> dict[str, str]:
    """Every file under root (links as their target) -> its SHA-256, to show what a command changed."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(root))] = "-> " + os.readlink(path)
        elif path.is_file():
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A run trained with `--plugin plug.py`, and a copy of it ('shared_run') that carries its own plugin
    file inside (evil.py) and names it in config.json, as a folder sent by someone else could."""
    root = tmp_path_factory.mktemp("sharing")
    (root / "plug.py").write_text(PLUGIN + FAMILY)
    _write_data(root)
    _ok(rdvae_cli(*TRAIN, "--plugin", "plug.py", "--out", "run", cwd=root))
    shared_run = root / "shared_run"
    shutil.copytree(root / "run", shared_run)
    (shared_run / "evil.py").write_text(EVIL)
    config = _read(shared_run / "config.json")
    config["plugins"], config["plugin_fingerprints"] = ["evil.py"], {}
    (shared_run / "config.json").write_text(json.dumps(config))
    return root


@pytest.mark.parametrize("command", [
    ["eval", "shared_run"], ["export", "shared_run", "pub"], ["train", "--resume", "--out", "shared_run"],
    pytest.param(["report", "shared_run"], marks=pytest.mark.skipif(
        importlib.util.find_spec("plotly") is None, reason="rdvae report needs the [report] extra"))])
def test_a_folder_carrying_its_own_plugin_runs_nothing_and_says_so_in_one_line(shared, command):
    before = _tree(shared / "shared_run")
    result = rdvae_cli(*command, "--no-progress", cwd=shared)
    line = _one_line_error(result, "wants to import plugin code", "evil.py", "--plugin", "--trust-plugins")
    assert "nothing was imported" in line
    assert not (shared / "shared_run" / "IMPORTED").exists()
    assert not (shared / "pub").exists()
    changed = {k for k in set(before) | set(_tree(shared / "shared_run")) if k != ".rdvae.lock"
               and before.get(k) != _tree(shared / "shared_run").get(k)}
    assert not changed


def test_a_relative_plugin_path_resolves_in_the_run_folder_never_the_current_directory(shared, tmp_path):
    """config.json names "evil.py": a file of that name in the current directory is not what it means."""
    (tmp_path / "evil.py").write_text(EVIL)
    result = rdvae_cli("eval", str(shared / "shared_run"), "--no-progress", cwd=tmp_path)
    _one_line_error(result, str(shared / "shared_run" / "evil.py"))
    assert not (tmp_path / "IMPORTED").exists() and not (shared / "shared_run" / "IMPORTED").exists()


def test_a_plugin_named_again_replaces_the_recorded_one_of_the_same_module_name(shared):
    """A moved plugin: --plugin NEW_PATH stands for the recorded path (same module name, same code)."""
    (shared / "elsewhere").mkdir(exist_ok=True)
    shutil.copy(shared / "plug.py", shared / "elsewhere" / "plug.py")
    shutil.copytree(shared / "run", shared / "moved" / "run")
    result = _ok(rdvae_cli("eval", "moved/run", "--plugin", "elsewhere/plug.py", "--no-progress", "--json",
                           cwd=shared))
    assert result.json()["split"] == "test"


def test_an_edited_plugin_is_refused_until_the_change_is_accepted(shared):
    shutil.copytree(shared / "run", shared / "edited" / "run")
    (shared / "edited" / "plug.py").write_text((PLUGIN + FAMILY).replace("nn.Tanh()", "nn.ReLU()"))
    summary = _read(shared / "edited" / "run" / "summary.json")
    config = _read(shared / "edited" / "run" / "config.json")
    refused = rdvae_cli("eval", "edited/run", "--plugin", "edited/plug.py", "--no-progress", cwd=shared)
    line = _one_line_error(refused, "is not the code", "sha256 recorded", "--accept-plugin-changes")
    assert config["plugin_fingerprints"]["plug"]["sha256"][:12] in line
    assert _read(shared / "edited" / "run" / "summary.json") == summary   # no reading of the other model
    resumed = rdvae_cli("train", "--resume", "--out", "edited/run", "--epochs", "2", "--plugin",
                        "edited/plug.py", "--no-progress", cwd=shared)
    _one_line_error(resumed, "is not the code")
    accepted = _ok(rdvae_cli("eval", "edited/run", "--plugin", "edited/plug.py", "--accept-plugin-changes",
                             "--no-progress", "--json", cwd=shared)).json()
    assert accepted["elbo"] != summary["elbo"]   # a different model: relu, not tanh
    recorded = _read(shared / "edited" / "run" / "config.json")["plugin_fingerprints"]["plug"]["sha256"]
    assert recorded == hashlib.sha256((shared / "edited" / "plug.py").read_bytes()).hexdigest()


def _wait_for(predicate, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


SLOW = ["--epochs", "400", "--batch-size", "4"]   # long enough to still be training when the other starts


def test_two_trainings_into_one_folder_one_wins_and_its_config_matches_its_weights(shared):
    procs = [_start([*TRAIN, "--plugin", "plug.py", "--out", "twice", "--seed", str(seed), "--beta",
                     str(beta), "--json"], shared) for seed, beta in ((1, 0.5), (2, 2.0))]
    results = [finish(p) for p in procs]
    codes = sorted(r.code for r in results)
    assert codes == [0, 2], [(r.code, r.err[-500:]) for r in results]
    winner = next(r for r in results if r.code == 0).json()
    loser = next(r for r in results if r.code == 2)
    _one_line_error(loser)
    assert "being written by process" in loser.err or "already holds a run" in loser.err
    config, summary = _read(shared / "twice" / "config.json"), _read(shared / "twice" / "summary.json")
    assert (config["seed"], config["beta"]) == (winner["seed"], winner["beta"]) == (summary["seed"],
                                                                                    summary["beta"])
    # the weights are the winner's: the model config.json builds, with them, gives the winner's reading
    again = _ok(rdvae_cli("eval", "twice", "--plugin", "plug.py", "--seed", str(winner["seed"]),
                          "--no-progress", "--json", cwd=shared)).json()
    assert again["elbo"] == pytest.approx(winner["elbo"], abs=1e-5)


def test_a_second_writer_is_refused_with_the_holders_pid(shared):
    """A resume while another process trains the folder: refused at once, metrics.jsonl untouched."""
    first = _start([*TRAIN, *SLOW, "--plugin", "plug.py", "--out", "trainer"], shared)
    try:
        lock = shared / "trainer" / ".rdvae.lock"
        _wait_for(lambda: lock.exists() and lock.read_text().startswith(str(first.pid)))
        _wait_for(lambda: (shared / "trainer" / "config.json").exists())
        for command in (["train", "--resume", "--out", "trainer", "--plugin", "plug.py"],
                        ["eval", "trainer", "--plugin", "plug.py"]):
            refused = rdvae_cli(*command, "--no-progress", cwd=shared)
            line = _one_line_error(refused, "being written by process", str(first.pid))
            assert "trainer" in line
        assert first.poll() is None, "the first training ended before the check; make SLOW slower"
    finally:
        first.send_signal(signal.SIGINT)
        finish(first)
    records = [json.loads(line) for line in (shared / "trainer" / "metrics.jsonl").read_text().splitlines()]
    epochs = [r["epoch"] for r in records]
    assert epochs == sorted(set(epochs))   # no epoch written twice


def test_train_refuses_a_folder_of_someone_elses_files(shared):
    folder = shared / "mine"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text("my own log\n")
    (folder / "model.safetensors").write_bytes(b"my own weights")
    before = _tree(folder)
    line = _one_line_error(rdvae_cli(*TRAIN, "--plugin", "plug.py", "--out", "mine", cwd=shared),
                           "not an rdvae run's", "metrics.jsonl")
    assert "nothing was changed" in line and _tree(folder) == before


def test_a_refused_new_run_leaves_no_folder_behind(shared):
    _one_line_error(rdvae_cli(*TRAIN, "--plugin", "plug.py", "--set", "model.widht=3", "--out", "nothing",
                              cwd=shared), "widht")
    assert not (shared / "nothing").exists()


# -- exports -----------------------------------------------------------------------------------------


def test_an_export_carries_no_path_of_the_machine_and_loads_elsewhere_with_its_plugin_copy(shared, tmp_path):
    _ok(rdvae_cli("export", "run", "pub", "--plugin", "plug.py", cwd=shared))
    exported = shared / "pub"
    for path in exported.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            assert str(shared).encode() not in text and b"/tmp/" not in text, path
    assert sorted(p.name for p in exported.iterdir()) == ["README.md", "config.json", "metrics.jsonl",
                                                          "model.safetensors", "plugins", "summary.json"]
    assert (exported / "plugins" / "plug.py").read_text() == PLUGIN + FAMILY
    config = _read(exported / "config.json")
    assert config["plugins"] == ["plugins/plug.py"] and config["dataset"] == "binary.npy"
    card = (exported / "README.md").read_text()
    assert "rdvae train --plugin pub/plugins/plug.py" in card and config["dataset_sha256"] in card
    assert "datasets:" not in card   # a data file is not a hub dataset id

    # "another machine": the export and the data file in a new folder, nothing else
    elsewhere = tmp_path / "other"
    shutil.copytree(exported, elsewhere / "pub")
    shutil.copy(shared / "binary.npy", elsewhere / "binary.npy")
    _one_line_error(rdvae_cli("eval", "pub", "--no-progress", cwd=elsewhere), "wants to import plugin code")
    mine = _ok(rdvae_cli("eval", "pub", "--plugin", "pub/plugins/plug.py", "--no-progress", "--json",
                         cwd=elsewhere)).json()
    trusted = _ok(rdvae_cli("eval", "pub", "--trust-plugins", "--no-progress", "--json",
                            cwd=elsewhere)).json()
    assert mine["elbo"] == trusted["elbo"] == pytest.approx(_read(shared / "run" / "summary.json")["elbo"],
                                                            rel=1e-5)


def test_an_export_never_writes_through_a_symlink_and_can_be_run_again(shared, tmp_path):
    """A model hub's snapshot folder is made of links into its blob cache: export replaces the links."""
    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshot"
    blobs.mkdir()
    snapshot.mkdir()
    config = _read(shared / "run" / "config.json")
    (blobs / "a").write_text(json.dumps(config))
    (blobs / "b").write_text("weights blob")
    (snapshot / "config.json").symlink_to(blobs / "a")
    (snapshot / "model.safetensors").symlink_to(blobs / "b")
    before = _tree(blobs)
    _ok(rdvae_cli("export", "run", str(snapshot), "--plugin", "plug.py", cwd=shared))
    assert _tree(blobs) == before
    assert not (snapshot / "config.json").is_symlink() and not (snapshot / "model.safetensors").is_symlink()

    # interrupted (killed after config.json and the weights): running it again finishes it
    for name in ("README.md", "summary.json", "metrics.jsonl"):
        (snapshot / name).unlink()
    (snapshot / ".model.safetensors.abc.tmp").write_bytes(b"half")
    _ok(rdvae_cli("export", "run", str(snapshot), "--plugin", "plug.py", cwd=shared))
    assert (snapshot / "README.md").exists() and (snapshot / "summary.json").exists()

    # a link as the folder itself, or as its plugins/, is refused
    (tmp_path / "link").symlink_to(blobs, target_is_directory=True)
    _one_line_error(rdvae_cli("export", "run", str(tmp_path / "link"), "--plugin", "plug.py", cwd=shared),
                    "symbolic link")
    assert _tree(blobs) == before


# -- sweeps ------------------------------------------------------------------------------------------


def test_sweep_run_names_cannot_leave_the_sweep_folder(shared):
    sweep = shared / "hostile-sweep"
    sweep.mkdir()
    victim = shared / "victim"
    victim.mkdir()
    (victim / "metrics.jsonl").write_text("someone's log\n")
    before = _tree(shared)
    for names in (["../../victim"], ["/tmp/abs"], [".."], ["a/b"]):
        (sweep / "sweep.json").write_text(json.dumps({"base": {"dataset": "binary.npy", "epochs": 1},
                                                      "points": [{"beta": 1.0}], "names": names}))
        line = _one_line_error(rdvae_cli("sweep", "--out", "hostile-sweep", "--no-progress", cwd=shared),
                               "run name")
        assert repr(names[0]) in line
    after = _tree(shared)
    assert {k: v for k, v in after.items() if not k.startswith("hostile-sweep/")} == \
        {k: v for k, v in before.items() if not k.startswith("hostile-sweep/")}


def test_a_continued_sweep_imports_the_plugins_of_sweep_json_only_when_allowed(shared):
    sweep = shared / "plugin-sweep"
    sweep.mkdir()
    (sweep / "evil.py").write_text(EVIL)
    (sweep / "sweep.json").write_text(json.dumps({"base": {"dataset": "binary.npy", "epochs": 1,
                                                           "family": "tiny", "plugins": ["evil.py"]},
                                                  "points": [{"beta": 1.0}], "names": ["000-beta=1"]}))
    _one_line_error(rdvae_cli("sweep", "--out", "plugin-sweep", "--no-progress", cwd=shared),
                    "wants to import plugin code", str(sweep / "evil.py"))
    assert not (sweep / "IMPORTED").exists() and not (sweep / "runs").exists()


def test_one_sweep_process_at_a_time_and_its_runs_folder_is_no_link(shared, tmp_path):
    from rdvae.rundir import folder_lock

    sweep = shared / "busy-sweep"
    with folder_lock(sweep, "a test holding it"):
        line = _one_line_error(rdvae_cli("sweep", "--dataset", "binary.npy", "--grid", "beta=1", "--set",
                                         "epochs=1", "--out", "busy-sweep", "--no-progress", cwd=shared),
                               "being written by process", str(os.getpid()), "a test holding it")
        assert "busy-sweep" in line
    assert not (sweep / "sweep.json").exists()

    canary = tmp_path / "canary"
    canary.mkdir()
    (shared / "linked-sweep").mkdir()
    (shared / "linked-sweep" / "runs").symlink_to(canary, target_is_directory=True)
    _one_line_error(rdvae_cli("sweep", "--dataset", "binary.npy", "--grid", "beta=1", "--set", "epochs=1",
                              "--out", "linked-sweep", "--no-progress", cwd=shared), "symbolic link")
    assert list(canary.iterdir()) == []


def test_a_sweeps_worker_processes_allow_what_its_command_line_allowed(shared):
    """--plugin and --accept-plugin-changes reach the pool's spawned workers: two runs interrupted
    before their summary, their plugin edited since, are resumed by two workers once the change is
    accepted."""
    sweep = shared / "consent-sweep"
    sweep.mkdir()
    plugin = sweep / "plug.py"
    plugin.write_text(PLUGIN + FAMILY)
    base = ["sweep", "--dataset", "binary.npy", "--family", "tiny", "--grid", "beta=0.5,2", "--set",
            "epochs=1", "--set", "batch_size=32", "--no-progress", "--out", "consent-sweep"]
    _ok(rdvae_cli(*base, "--plugin", "consent-sweep/plug.py", "--workers", "1", cwd=shared))
    for run in (sweep / "runs").iterdir():
        (run / "summary.json").unlink()   # as if killed before the summary was written
    plugin.write_text(PLUGIN + FAMILY + "# edited\n")
    refused = rdvae_cli(*base, "--plugin", "consent-sweep/plug.py", "--workers", "2", cwd=shared)
    assert refused.code == 2 and "is not the code" in _read_rows(sweep)[0]["error"]
    _ok(rdvae_cli(*base, "--plugin", "consent-sweep/plug.py", "--accept-plugin-changes", "--workers", "2",
                  cwd=shared))
    assert [r["status"] for r in _read_rows(sweep)] == ["done", "done"]


def _read_rows(sweep: Path) -> list[dict]:
    import csv

    with open(sweep / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))
