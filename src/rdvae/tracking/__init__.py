"""Experiment tracking: the trainer's loggers. metrics.jsonl is always written; `--log tensorboard`,
`--log mlflow`, `--log wandb` (repeatable; config `log`, options `log_options.*`) add trackers, each a
registered Logger (rdvae.tracking.protocol) running in its own thread, whose failures warn once and
never stop the run. Bring your own:

    from rdvae import register_logger

    class PrintLogger:
        every_step = False
        def start(self, config, step=0): print("start", config["family"])
        def log(self, step, scalars): print(step, scalars.get("rate"), scalars.get("distortion"))
        def log_figure(self, step, name, image): pass
        def finish(self, summary): print("done", summary["elbo"])

    @register_logger("print")
    def print_logger(run_dir, print_prefix: str = ""):    # options: config log_options.print_prefix
        return PrintLogger()
"""

from . import mlflow_logger, tensorboard_logger, wandb_logger  # noqa: F401 - they register the trackers
from .dispatch import TrackerWarning, Tracking
from .protocol import Logger
from .scalars import final_metrics, flat_params, tracker_scalars

__all__ = ["Logger", "TrackerWarning", "Tracking", "final_metrics", "flat_params", "tracker_scalars"]
