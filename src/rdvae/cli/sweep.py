"""`rdvae sweep`: train a grid of runs into one sweep directory with one results.csv.

    rdvae sweep --dataset binarized-mnist --grid "family=mlp,mlp-v" --grid "beta=0.1,0.3,1,3,10" \\
        --set epochs=3 --out runs/sweep
    rdvae sweep --out runs/sweep                     # continue it (skips done runs, resumes, retries)
    rdvae sweep --config sweep.toml --executor ray --cpus-per-run 1 --out runs/sweep

Exit status 2 when no run of the sweep succeeded (each failure is in results.csv's error column, its
traceback in the run's error.log); 0 otherwise, with a line on stderr naming the failed runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading

from .options import (
    add_common,
    add_tracking,
    parse_assignment,
    positive_float,
    positive_int,
    tracking_settings,
)
from .train import FLAGS, add_config_flags


def register(sub) -> None:
    p = sub.add_parser(
        "sweep", help="train a grid of runs (local processes or Ray) into one results.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train one run per grid point into --out/runs/ and write --out/results.csv (one row "
                    "per run). The spec is saved in --out/sweep.json: running again with only --out "
                    "skips finished runs, resumes interrupted ones and retries failed ones.",
        epilog="grid axes: KEY=V1,V2,... over any config field (values are JSON where valid, e.g. "
               "model.hidden=[64],[128,64]); several --grid multiply; 'beta=0.5,1;seed=0,1' zips.\n"
               "config file (JSON or TOML): tables base (fixed fields), grid (axes multiplied), "
               "zip (list of tables of zipped axes).")
    p.add_argument("--grid", action="append", default=[], metavar="AXIS",
                   help="a grid axis KEY=V1,V2,... (repeat to multiply; ';' zips axes)")
    p.add_argument("--config", dest="spec_file", metavar="FILE", help="a sweep spec, JSON or TOML")
    add_config_flags(p)
    p.add_argument("--set", dest="assignments", action="append", type=parse_assignment, default=[],
                   metavar="KEY=VALUE", help="fix a config field for every run (JSON value), e.g. "
                                             "--set epochs=3 --set model.hidden=[256]")
    add_tracking(p)
    p.add_argument("--executor", default="local", metavar="NAME",
                   help="who trains the runs: local (processes on this machine, the default), ray, slurm "
                        "(one job per run, through submitit), or an executor a plugin registers (`rdvae list "
                        "executors`)")
    p.add_argument("--executor-option", dest="executor_options", action="append", type=parse_assignment,
                   default=[], metavar="KEY=VALUE",
                   help="an option of the executor (JSON value; repeatable; `rdvae list executors` lists "
                        "each executor's options)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="local: parallel runs (1 = sequential in this process; default: sized to the cores)")
    p.add_argument("--address", default=None,
                   help="ray: join this cluster (e.g. auto, ray://host:10001); default: start a local Ray")
    p.add_argument("--cpus-per-run", type=positive_float, default=None,
                   help="ray: CPUs reserved per run (default: 1)")
    p.add_argument("--gpus-per-run", type=float, default=None, help="ray: GPUs reserved per run (default: 0)")
    p.add_argument("--ray-cpus", type=positive_int, default=None,
                   help="ray: CPUs of the local Ray instance (default: all cores)")
    add_common(p, out_help="the sweep directory (required): runs/, sweep.json, results.csv")
    p.set_defaults(handler=run)


def spec_from_args(args):
    """The sweep spec the arguments describe, or None when none is given (continue --out)."""
    from ..sweep import SweepSpec, parse_grid, product

    base = {name: getattr(args, name) for name in FLAGS if getattr(args, name) is not None}
    base.update(tracking_settings(args))
    base.update(dict(args.assignments))
    if not (args.spec_file or args.grid or base):
        return None   # continue the saved sweep (its runs' configs name their plugins)
    if args.plugins:
        base["plugins"] = list(args.plugins)
    spec = SweepSpec.from_file(args.spec_file) if args.spec_file else SweepSpec()
    points = product(spec.points, parse_grid(args.grid)) if args.grid else spec.points
    return SweepSpec(base={**spec.base, **base}, points=points)


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM (e.g. `kill`, a job scheduler) ends the sweep as Ctrl-C does: the pool's workers are
    stopped and the note on how to continue is printed. Only in the main thread (where signals land)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args) -> dict:
    from ..sweep import ExecutorError, GridError, SweepError, run_sweep
    from ..sweep.results import format_rows
    from . import UserError

    if not args.out:
        raise UserError("rdvae sweep needs --out SWEEP_DIR (where runs, sweep.json and results.csv go)")
    try:
        spec = spec_from_args(args)
        with _terminate_as_interrupt():
            report = run_sweep(args.out, spec, executor=args.executor, workers=args.workers,
                               address=args.address, num_cpus=args.cpus_per_run, num_gpus=args.gpus_per_run,
                               total_cpus=args.ray_cpus, progress=args.progress, threads=args.threads,
                               executor_options=dict(args.executor_options))
    except (GridError, SweepError, ExecutorError) as err:
        raise UserError(str(err)) from None
    except KeyboardInterrupt:
        print(f"rdvae sweep: finished runs are in {args.out}/results.csv; `rdvae sweep --out {args.out}` "
              "continues the sweep (interrupted runs resume from their last checkpoint)", file=sys.stderr)
        raise
    from ..sweep import load_spec
    from ..sweep.spec import RUNS_FOLDER
    from ..sweep.task import ERROR_LOG

    swept = load_spec(report.out).swept_fields
    print(format_rows(report.rows, swept or ["run_dir"]))
    done = sum(r["status"] == "done" for r in report.rows)
    print(f"\n{done}/{len(report.rows)} runs done ({len(report.trained)} trained now, "
          f"{len(report.skipped) + len(report.recorded)} already done, {len(report.failed)} failed); "
          f"table: {report.out / 'results.csv'}; plot it with `rdvae plot {report.out}`")
    result = {**report.to_dict(), "rows": report.rows}
    failed = [r for r in report.rows if r["status"] != "done"]
    where = f"see the error column of {report.out / 'results.csv'}"
    if any(ERROR_LOG in str(r.get("error") or "") for r in failed):   # not for config errors: no run folder
        where += f" and the traceback in a failed run's {RUNS_FOLDER}/NAME/{ERROR_LOG}"
    if failed and not done:
        if args.json:   # the report is still the last line of standard output
            print(json.dumps(result, sort_keys=True, default=str))
        first = " ".join(str(failed[0].get("error") or "").split())
        what = f"all {len(failed)} runs failed" if len(failed) > 1 else "its only run failed"
        raise UserError(f"{what} ({failed[0]['run_dir']}: {first}); {where}")
    if failed:
        print(f"rdvae sweep: {len(failed)} of {len(report.rows)} runs failed; {where}", file=sys.stderr)
    return result
