"""The study registry: rdvae's studies arrive through the entry-point group like a plugin's, a user's study
in a plugin file is listed and run by `rdvae repro`, and the core imports no study."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from rdvae import register_study
from rdvae.cli import main
from rdvae.errors import ConfigError
from rdvae.plugins import ENTRY_POINT_GROUP
from rdvae.registry import STUDIES, STUDY_SCALES, Study

SRC = Path(__file__).resolve().parents[2] / "src" / "rdvae"
OWN = ("broken-elbo", "elbo-surgery", "expfam-toy", "gan-decoder", "multi-rate", "semantic-hashing",
       "sigma-vae")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "MPLBACKEND": "Agg"}

# a user's own study: registered with rdvae.register_study in a file passed with --plugin
PLUGIN_STUDY = '''\
import json
from pathlib import Path

from rdvae import register_study


@register_study("coin-flips", description="a study of one's own: counts heads", scales=("tiny", "large"))
def run(scale, out, progress=True):
    flips = {"tiny": 10, "large": 1000}[scale]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text("| flips |\\n|---|\\n| %d |\\n" % flips)
    return {"scale": scale, "flips": flips}
'''


def test_rdvaes_studies_are_a_plugin_of_the_entry_point_group():
    assert "rdvae.studies" in [ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)]
    assert set(OWN) <= set(STUDIES.names())
    for name in OWN:
        study = STUDIES[name]
        assert study.name == name and study.scales == STUDY_SCALES and study.description
        assert study.run.__module__ == f"rdvae.studies.{name.replace('-', '_')}.study"


def test_register_study_as_a_call_and_as_a_decorator(monkeypatch):
    monkeypatch.setattr(STUDIES, "_entries", dict(STUDIES._entries))   # left as it was after the test

    def run(scale, out, progress=True):
        return {}

    study = register_study("my-study", run, description="mine", scales=("one",))
    assert study == Study("my-study", run, "mine", ("one",)) and STUDIES["my-study"] is study
    assert study.check_scale("one") == "one"
    with pytest.raises(ConfigError, match="scale must be one of one, got 'cpu'"):
        study.check_scale("cpu")

    @register_study("decorated", description="decorated")
    def decorated(scale, out, progress=True):
        return {}

    assert STUDIES["decorated"].run is decorated and STUDIES["decorated"].scales == STUDY_SCALES
    with pytest.raises(ConfigError, match="one-line description"):
        register_study("undescribed", run, description="")
    with pytest.raises(ConfigError, match="already registered"):
        register_study("my-study", decorated, description="another")


def test_repro_help_lists_every_study_and_a_usage_error_none(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["repro", "--help"])
    assert exit_.value.code == 0
    shown = capsys.readouterr().out
    assert all(f"  {name} " in shown for name in OWN)
    with pytest.raises(SystemExit):
        main(["repro", "--workers", "none"])
    assert "broken-elbo" not in capsys.readouterr().err


def _rdvae(*args: str, cwd: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "rdvae", *args, "--json"], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_users_study_in_a_plugin_file_is_listed_and_runs(tmp_path):
    (tmp_path / "coins.py").write_text(PLUGIN_STUDY)
    listed = _rdvae("repro", "--plugin", "coins.py", cwd=tmp_path)["reproductions"]
    assert "coin-flips" in listed and set(OWN) <= set(listed)
    result = _rdvae("repro", "coin-flips", "--plugin", "coins.py", "--scale", "tiny", "--out", "flips",
                    "--no-progress", cwd=tmp_path)
    assert result == {"scale": "tiny", "flips": 10}
    assert "| 10 |" in (tmp_path / "flips" / "table.md").read_text()


def test_a_scale_the_study_lacks_is_one_clear_error(tmp_path, capsys):
    assert main(["repro", "expfam-toy", "--scale", "huge", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "scale must be one of smoke, cpu, paper, got 'huge'" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def _imported_modules(path: Path) -> list[str]:
    """The absolute names of the modules a file of src/rdvae imports (relative imports resolved)."""
    package = ["rdvae", *path.relative_to(SRC).parent.parts]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found += [module] if node.module else [f"{module}.{alias.name}" for alias in node.names]
    return found


def test_the_core_imports_no_study_and_a_study_no_other_study():
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).parts
        imported = _imported_modules(path)
        if parts[0] != "studies":
            assert not [m for m in imported if m.startswith("rdvae.studies")], path
        elif len(parts) > 2:   # a module of a study's folder: rdvae's core, its own folder, studies.common
            allowed = (f"rdvae.studies.{parts[1]}", "rdvae.studies.common")
            studies = [m for m in imported if m.startswith("rdvae.studies")]
            assert all(m.startswith(allowed) for m in studies), (path, studies)


def test_importing_the_studies_stays_cheap():
    """The registries import rdvae.studies on their first lookup (e.g. for `rdvae train`): no matplotlib,
    scipy or scikit-learn."""
    code = ("import sys, rdvae.studies; "
            "print([m for m in ('matplotlib', 'scipy', 'sklearn') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
