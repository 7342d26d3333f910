"""Each tracker read back with its own reader: TensorBoard's event files (EventAccumulator), MLflow's
store (MlflowClient), an offline W&B run's transaction log (W&B's protobuf records). Skipped when the
tracker's extra is not installed (CI installs them all)."""

import json
from pathlib import Path

import pytest
from tests.helpers import need

from rdvae.rundir import RunDir
from rdvae.sweep import SweepSpec, product, run_sweep, sweep
from rdvae.train import TrainConfig, train

EPOCH_TAGS = {"valid/rate", "valid/distortion", "valid/elbo", "valid/objective", "valid/mutual_info",
              "valid/active_units", "train_epoch/loss", "train_epoch/rate", "train_epoch/distortion", "lr",
              "skipped_updates", "epoch", "train_seconds"}
STEP_TAGS = {"train/loss", "train/rate", "train/distortion"}
FINAL_TAGS = {"final/rate", "final/distortion", "final/elbo", "final/mutual_info", "final/active_units"}


def _events(log_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    events.Reload()
    return events


def _hparams(log_dir: Path) -> dict:
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = _events(log_dir)
    for content in events.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.WhichOneof("data") == "session_start_info":
            return {k: v.string_value or v.number_value or v.bool_value
                    for k, v in data.session_start_info.hparams.items()}
    return {}


def test_tensorboard_holds_the_scalars_images_and_hparams(tmp_path, tiny):
    need("tensorboard", "tensorboard")
    summary = train(TrainConfig(**tiny, log=["tensorboard"]), tmp_path / "r", progress=False)
    events = _events(tmp_path / "r" / "tensorboard")
    tags = events.Tags()
    assert EPOCH_TAGS | STEP_TAGS | FINAL_TAGS <= set(tags["scalars"])
    assert set(tags["images"]) == {"reconstructions", "samples"}
    metrics = RunDir(tmp_path / "r").read_metrics()
    rate = events.Scalars("valid/rate")
    assert [(e.step, e.value) for e in rate] == [(m["step"], pytest.approx(m["rate"])) for m in metrics]
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6, 8, 10, 12]
    assert events.Scalars("final/elbo")[0].value == pytest.approx(summary["elbo"])
    image = events.Images("samples")[-1]
    assert image.step == 12 and image.width > 50 and image.height > 50
    hparams = _hparams(tmp_path / "r" / "tensorboard")
    assert hparams["family"] == "mlp" and hparams["latent_dim"] == 2 and hparams["model.hidden"] == "[16]"


@pytest.mark.parametrize("stop", [11, 5])
def test_a_resumed_run_does_not_repeat_tensorboard_steps(tmp_path, tiny, stop):
    need("tensorboard", "tensorboard")
    from tests.helpers import Interrupt, stop_at

    config = TrainConfig(**{**tiny, "epochs": 3, "log_figures_every": 0}, log=["tensorboard"])
    # 11: epoch 2 logged 8 and 10 past epoch 1's checkpoint (step 6); 5: steps 2 and 4 before any checkpoint
    with pytest.raises(Interrupt):
        train(config, tmp_path / "r", progress=False, on_step=stop_at(stop))
    train(None, tmp_path / "r", resume=True, progress=False)
    events = _events(tmp_path / "r" / "tensorboard")
    assert len(list((tmp_path / "r" / "tensorboard").glob("events.out.tfevents.*"))) == 2
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert [e.step for e in events.Scalars("valid/rate")] == [6, 12, 18]


def test_mlflow_holds_params_metrics_figures_and_weights(tmp_path, tiny):
    mlflow = need("mlflow", "mlflow")
    summary = train(TrainConfig(**tiny, log=["mlflow"], log_tags={"sweep_point": "a"}), tmp_path / "r",
                    progress=False)
    client = mlflow.MlflowClient(tracking_uri=(tmp_path / "r" / "mlruns").as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("rdvae").experiment_id])
    assert run.info.run_id == json.loads((tmp_path / "r" / "trackers.json").read_text())["mlflow"]
    assert run.info.status == "FINISHED" and run.data.tags["sweep_point"] == "a"
    params = run.data.params
    assert params["family"] == "mlp" and params["beta"] == "1.0" and params["model.hidden"] == "[16]"
    assert EPOCH_TAGS | STEP_TAGS | FINAL_TAGS <= set(run.data.metrics)
    history = client.get_metric_history(run.info.run_id, "valid/rate")
    metrics = RunDir(tmp_path / "r").read_metrics()
    assert [(h.step, h.value) for h in history] == [(m["step"], pytest.approx(m["rate"])) for m in metrics]
    assert run.data.metrics["final/elbo"] == pytest.approx(summary["elbo"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.safetensors", "config.json", "summary.json", "metrics.jsonl", "figures"} <= artifacts
    figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures/samples")}
    assert figures == {"figures/samples/step-00000006.png", "figures/samples/step-00000012.png"}
    weights = Path(client.download_artifacts(run.info.run_id, "model.safetensors", str(tmp_path / "dl")))
    assert weights.read_bytes() == (tmp_path / "r" / "model.safetensors").read_bytes()


def test_an_offline_wandb_run_holds_the_history(tmp_path, tiny, monkeypatch):
    wandb = need("wandb", "wandb")
    from tests.tracking.wandb_reader import config, history, records

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    train(TrainConfig(**tiny, log=["wandb"]), tmp_path / "r", progress=False)
    # W&B's service writes the log behind run.finish(); teardown waits for it to close the file
    wandb.teardown()
    run_id = json.loads((tmp_path / "r" / "trackers.json").read_text())["wandb"]
    (log,) = (tmp_path / "r" / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
    rows = history(log)
    metrics = RunDir(tmp_path / "r").read_metrics()
    epochs = [r for r in rows if "valid/rate" in r]
    assert [(r["_step"], r["valid/rate"]) for r in epochs] == [(m["step"], pytest.approx(m["rate"]))
                                                              for m in metrics], \
        f"{log.stat().st_size} bytes, records {[r.WhichOneof('record_type') for r in records(log)]}"
    assert [r["_step"] for r in rows if "train/loss" in r] == [2, 4, 6, 8, 10, 12]
    images = [r for r in rows if r.get("samples/_type") == "image-file"]
    assert [r["_step"] for r in images] == [6, 12]
    assert all((log.parent / "files" / r["samples/path"]).exists() for r in images)
    assert config(log)["family"] == "mlp"


def test_a_sweep_tags_each_run_with_its_swept_fields(tmp_path, tiny):
    need("tensorboard", "tensorboard")
    mlflow = need("mlflow", "mlflow")
    base = {**{k: v for k, v in tiny.items() if k != "model"}, "model.hidden": [16], "epochs": 1,
            "log": ["tensorboard", "mlflow"], "log_figures_every": 0}
    spec = SweepSpec(base=base, points=product(sweep("beta", [0.5, 2.0])))
    report = run_sweep(tmp_path / "sw", spec, workers=1, progress=False)
    assert [r["status"] for r in report.rows] == ["done", "done"]
    for row, beta in zip(report.rows, (0.5, 2.0), strict=True):
        hparams = _hparams(tmp_path / "sw" / row["run_dir"] / "tensorboard")
        assert hparams["beta"] == beta and hparams["sweep"] == "sw"
    client = mlflow.MlflowClient(tracking_uri=(tmp_path / "sw" / "mlruns").as_uri())
    runs = client.search_runs([client.get_experiment_by_name("sw").experiment_id])
    assert sorted(r.data.tags["beta"] for r in runs) == ["0.5", "2.0"]
    assert sorted(r.data.metrics["final/rate"] for r in runs) == pytest.approx(
        sorted(r["rate"] for r in report.rows))
