"""`rdvae export`: the model card parses with huggingface_hub's ModelCard, its figures are the run's, its
command trains the same config, and the exported folder reloads to the same evaluation figures."""

import json
import shlex

import pytest
from tests.helpers import need

from rdvae.cli import main
from rdvae.evaluate import evaluate_model
from rdvae.train import TrainConfig, load_run, train
from rdvae.train.export import _scalar, train_command

TINY = dict(dataset="digits", binarize="static", family="mlp", latent_dim=2, model={"hidden": [16]},
            batch_size=256, eval_batch_size=500, epochs=1, beta=0.5)


@pytest.mark.parametrize("value", [1e-05, 2.5, -3e20, 0.1, 123456789.0, 1e300])
def test_card_floats_read_back_as_the_same_number(value):
    yaml = need("yaml", "tracking-tests")
    assert yaml.safe_load(f"v: {_scalar(value)}")["v"] == value


def test_export_writes_a_card_that_huggingface_parses_and_a_folder_that_reloads(tmp_path):
    hub = need("huggingface_hub", "tracking-tests")
    summary = train(TrainConfig(**TINY), tmp_path / "run", progress=False)
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "pub"), "--json"]) == 0
    files = sorted(p.name for p in (tmp_path / "pub").iterdir())
    assert files == ["README.md", "config.json", "metrics.jsonl", "model.safetensors", "summary.json"]
    card = hub.ModelCard.load(tmp_path / "pub" / "README.md")
    (result,) = [r for r in card.data.eval_results if r.metric_type == "rate"]
    assert result.metric_value == summary["rate"] and result.dataset_name == "digits"
    figures = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert figures["distortion"] == summary["distortion"] and figures["elbo"] == summary["elbo"]
    meta = card.data.to_dict()["rdvae"]
    assert len(meta["dataset_sha256"]) == 64 and meta["beta"] == 0.5
    argv = shlex.split(meta["command"])
    assert argv[:2] == ["rdvae", "train"] and "beta=0.5" in argv and "model={\"hidden\":[16]}" in argv
    # the command's --set values are the config's fields
    sets = dict(a.split("=", 1) for a in argv[argv.index("train") + 1:-2] if a != "--set")
    rebuilt = TrainConfig.from_dict({k: json.loads(v) for k, v in sets.items()})
    assert train_command(rebuilt) == meta["command"]
    a, b = load_run(tmp_path / "run", device="cpu"), load_run(tmp_path / "pub", device="cpu")
    x = a.dataset.split("test")
    assert evaluate_model(b.model, x, seed=0) == evaluate_model(a.model, x, seed=0)
    assert evaluate_model(b.model, x, seed=0)["elbo"] == summary["elbo"]


def test_export_refuses_an_unfinished_run(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(TrainConfig(**TINY).to_dict()))
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "pub")]) == 2
    assert "is not a finished run" in capsys.readouterr().err


def test_export_never_overwrites_a_users_files_but_replaces_an_earlier_export(tmp_path, capsys):
    train(TrainConfig(**TINY), tmp_path / "run", progress=False)
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("my own notes")
    assert main(["export", str(tmp_path / "run"), str(project)]) == 2
    assert "is not an earlier export" in capsys.readouterr().err
    assert (project / "README.md").read_text() == "my own notes"
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "pub")]) == 0
    # an earlier export is replaced
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "pub")]) == 0
