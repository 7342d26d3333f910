"""Sweeps: grids of ordinary training runs, run locally, on Ray or on Slurm, gathered in results.csv.

    from rdvae.sweep import SweepSpec, product, sweep, run_sweep

    spec = SweepSpec(base={"dataset": "digits", "binarize": "dynamic", "epochs": 5},
                     points=product(sweep("family", ["mlp", "mlp-v"]), sweep("beta", [0.1, 1, 10])))
    report = run_sweep("runs/sweep", spec)          # or executor="ray"
    report.rows                                      # one dict per run, as in results.csv
"""

from ..device import available_cores
from .executors import EXECUTORS, ExecutorError, register_executor, run_local, run_ray
from .grid import GridError, chainit, fixed, parse_grid, product, sweep, zipit
from .results import RESULTS_FILE, RUN_KEYS, ResultsTable, comparable
from .runner import SweepReport, run_sweep
from .slurm import run_slurm  # registers the slurm executor (submitit is imported only when it runs)
from .spec import RUNS_FOLDER, SPEC_FILE, SweepError, SweepSpec, load_spec
from .task import Task, execute

__all__ = ["EXECUTORS", "RESULTS_FILE", "RUNS_FOLDER", "RUN_KEYS", "SPEC_FILE", "ExecutorError",
           "GridError", "ResultsTable", "SweepError", "SweepReport", "SweepSpec", "Task",
           "available_cores", "chainit", "comparable", "execute", "fixed", "load_spec", "parse_grid",
           "product", "register_executor", "run_local", "run_ray", "run_slurm", "run_sweep", "sweep", "zipit"]
