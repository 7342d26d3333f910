"""MLflow (pip install 'rdvae[mlflow]'): params from config.json (the run's tags on top), the same
metrics as TensorBoard, the epoch figures, and at the end config.json, summary.json, metrics.jsonl and
model.safetensors as artifacts.

The store is `mlflow_uri` (--mlflow-uri: a server http://HOST:5000, sqlite:///FILE, ...), else
$MLFLOW_TRACKING_URI, else a local file store in RUN_DIR/mlruns (a sweep: SWEEP_DIR/mlruns, so that its
runs sit in one experiment). MLflow 3 keeps the file store in maintenance mode behind
MLFLOW_ALLOW_FILE_STORE; rdvae sets it for that default store only.

A resumed run logs into the same MLflow run (its id is kept in RUN_DIR/trackers.json); the epochs
logged past the checkpoint by the interrupted process are logged again, so a metric's history may
hold two values at those steps (MLflow keeps both; the latest is the run's value). A finish done again
(`--resume` of a done run whose finish a kill cut short) reopens the run, logs only the final metrics it
lacks, logs the artifacts again (replacing them) and sets it FINISHED."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..registry import register_logger
from ..rundir import CONFIG, METRICS, SUMMARY, WEIGHTS
from .extras import require
from .ids import record_tracker_id, tracker_id
from .scalars import final_metrics, flat_params, tracker_scalars

MLFLOW_FOLDER = "mlruns"
PARAM_CHARS = 6000   # MLflow's limit on a param's value


def default_uri(run_dir: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or (Path(run_dir).resolve() / MLFLOW_FOLDER).as_uri()


class MlflowLogger:
    every_step = True

    def __init__(self, run_dir: Path, mlflow_uri: str | None = None, mlflow_experiment: str = "rdvae"):
        self.run_dir = Path(run_dir)
        self.mlflow = require("mlflow", "mlflow", "mlflow")
        self.uri = mlflow_uri or default_uri(run_dir)
        self.experiment = mlflow_experiment
        self.client = None
        self.run_id = None
        self.start_step = 0

    def start(self, config: dict, step: int = 0) -> None:
        from mlflow.entities import Param

        if self.uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = self.mlflow.MlflowClient(tracking_uri=self.uri)
        experiment = self.client.get_experiment_by_name(self.experiment)
        experiment_id = (experiment.experiment_id if experiment is not None
                         else self.client.create_experiment(self.experiment))
        self.start_step = step
        known = tracker_id(self.run_dir, "mlflow")
        logged: dict = {}
        if known is not None:
            try:
                logged = self.client.get_run(known).data.params
                self.run_id = known
                self.client.update_run(known, status="RUNNING")
            except self.mlflow.exceptions.MlflowException:
                known = None
        if known is None:
            tags = {k: str(v) for k, v in (config.get("log_tags") or {}).items()}
            run = self.client.create_run(experiment_id, run_name=self.run_dir.name,
                                         tags={**tags, "rdvae.run_dir": str(self.run_dir.resolve())})
            self.run_id = run.info.run_id
            record_tracker_id(self.run_dir, "mlflow", self.run_id)
        # params are immutable in MLflow: a resumed run keeps the values it started with
        params = [Param(k, str(v)[:PARAM_CHARS]) for k, v in flat_params(config).items() if k not in logged]
        for i in range(0, len(params), 100):   # MLflow's batch limit on params
            self.client.log_batch(self.run_id, params=params[i:i + 100])
        if step:
            self.client.set_tag(self.run_id, "rdvae.resumed_at_step", str(step))

    def _metrics(self, step: int, scalars: dict) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(tag, value, now, step) for tag, value in scalars.items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def log(self, step: int, scalars: dict) -> None:
        self._metrics(step, tracker_scalars(scalars))

    def log_figure(self, step: int, name: str, image) -> None:
        self.client.log_image(self.run_id, image, artifact_file=f"figures/{name}/step-{step:08d}.png")

    def finish(self, summary: dict) -> None:
        step = int(summary.get("step") or 0)
        metrics = final_metrics(summary)
        if step and step == self.start_step:   # started at the last step: a finish done again
            metrics = {tag: value for tag, value in metrics.items()
                       if all(m.step != step for m in self.client.get_metric_history(self.run_id, tag))}
        self._metrics(step, metrics)
        for name in (CONFIG, SUMMARY, METRICS, WEIGHTS):
            if (self.run_dir / name).exists():
                self.client.log_artifact(self.run_id, str(self.run_dir / name))
        status = "FINISHED" if summary.get("status") == "done" else "FAILED"
        self.client.set_terminated(self.run_id, status=status)


@register_logger("mlflow")
def mlflow(run_dir, mlflow_uri: str | None = None, mlflow_experiment: str = "rdvae") -> MlflowLogger:
    """MLflow (mlflow_uri: the tracking server or store; mlflow_experiment: the experiment's name)."""
    return MlflowLogger(run_dir, mlflow_uri, mlflow_experiment)
