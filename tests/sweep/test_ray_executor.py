"""The Ray executor on a local Ray instance with 2 CPUs (CI installs the `ray` extra)."""

import sys

import pytest
from tests.helpers import need, needs

from rdvae.sweep import ExecutorError, SweepSpec, comparable, run_sweep, sweep


@pytest.mark.slow  # starting Ray and its workers takes 15-60 s on 2 cores; CI runs -m slow
@needs("ray", "ray")
def test_ray_executor_gives_the_local_rows(tmp_path, tiny_base):
    spec = SweepSpec(base=tiny_base, points=sweep("beta", [0.5, 2.0]) + [{"beta": -1.0}])
    local = run_sweep(tmp_path / "local", spec, workers=1, progress=False)
    remote = run_sweep(tmp_path / "ray", spec, executor="ray", total_cpus=2, num_cpus=1, progress=False)
    assert sorted(remote.trained) == sorted(local.trained) and remote.failed == local.failed
    assert [r["status"] for r in remote.rows] == ["done", "done", "failed"]
    for a, b in zip(local.rows, remote.rows, strict=True):
        for key, value in comparable(a).items():
            if isinstance(value, float):
                assert b[key] == pytest.approx(value, rel=1e-5), key
            else:
                assert b[key] == value, key
    again = run_sweep(tmp_path / "ray", None, executor="ray", total_cpus=2, progress=False)
    assert len(again.skipped) == 2 and not again.trained  # nothing left to run: Ray is not even started


def test_missing_ray_says_how_to_install(tmp_path, tiny_base, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    spec = SweepSpec(base=tiny_base, points=[{"beta": 1.0}])
    with pytest.raises(ExecutorError, match=r"pip install 'rdvae\[ray\]'"):
        run_sweep(tmp_path, spec, executor="ray", progress=False)


@pytest.mark.slow  # Ray start-up, as above
@needs("ray", "ray")
def test_ray_workers_log_to_the_trackers_with_the_swept_fields(tmp_path, tiny_base):
    need("tensorboard", "tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    base = {**tiny_base, "log": ["tensorboard"], "log_figures_every": 0}
    spec = SweepSpec(base=base, points=sweep("beta", [0.5, 2.0]))
    report = run_sweep(tmp_path / "ray", spec, executor="ray", total_cpus=2, num_cpus=1, progress=False)
    assert [r["status"] for r in report.rows] == ["done", "done"]
    for row in report.rows:
        events = EventAccumulator(str(tmp_path / "ray" / row["run_dir"] / "tensorboard"))
        events.Reload()
        assert events.Scalars("final/rate")[0].value == pytest.approx(row["rate"], rel=1e-5)
        assert "valid/rate" in events.Tags()["scalars"]
