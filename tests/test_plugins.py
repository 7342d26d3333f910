"""rdvae.plugins: what a folder may import, how plugins are recorded and fingerprinted."""

import hashlib
import importlib
import sys
from pathlib import Path

import pytest

from rdvae import plugins
from rdvae.plugins import (
    PluginChangedError,
    PluginConsentError,
    PluginError,
    fingerprint,
    fingerprints,
    record_paths,
    recorded_plugins,
)


@pytest.fixture(autouse=True)
def fresh_consent(monkeypatch):
    monkeypatch.delenv(plugins.TRUST_ENV, raising=False)
    plugins.forget_consent()
    yield
    plugins.forget_consent()


def _plugin(folder: Path, name: str = "mark.py") -> Path:
    """A plugin file that counts its imports in a file beside it."""
    path = folder / name
    path.write_text("from pathlib import Path\n"
                    "p = Path(__file__).with_suffix('.count')\n"
                    "p.write_text(str(int(p.read_text()) + 1 if p.exists() else 1))\n")
    return path


def _imports(path: Path) -> int:
    count = path.with_suffix(".count")
    return int(count.read_text()) if count.exists() else 0


def test_record_paths_relative_to_the_folder_unless_only_the_root_is_shared(tmp_path):
    run = tmp_path / "runs" / "a"
    assert record_paths([str(tmp_path / "code" / "m.py"), "pkg.mod"], run) == ["../../code/m.py", "pkg.mod"]
    assert record_paths(["/opt/elsewhere/m.py"], run) == ["/opt/elsewhere/m.py"]


def test_a_recorded_plugin_is_imported_only_with_consent(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    plugin = _plugin(run)
    with pytest.raises(PluginConsentError, match="wants to import plugin code: .*mark.py .SHA-256"):
        recorded_plugins(["mark.py"], run)
    assert _imports(plugin) == 0
    plugins.trust_plugins()
    loaded, changed = recorded_plugins(["mark.py"], run)
    assert loaded == [str(plugin.resolve())] and changed == [] and _imports(plugin) == 1
    plugins.forget_consent()
    assert recorded_plugins(["mark.py"], run)[0] == loaded   # imported already: no second import
    assert _imports(plugin) == 1


def test_a_named_plugin_replaces_the_recorded_one_of_its_module_name(tmp_path):
    (tmp_path / "new").mkdir()
    moved = _plugin(tmp_path / "new")
    plugins.load_plugins([str(moved)], named=True)
    loaded, _ = recorded_plugins(["/gone/mark.py"], tmp_path,
                                 {"mark": {"sha256": hashlib.sha256(moved.read_bytes()).hexdigest()}})
    assert loaded == [str(moved.resolve())]


def test_changed_code_is_refused_before_it_is_imported_unless_accepted(tmp_path):
    plugin = _plugin(tmp_path, "changed.py")
    recorded = {"changed": {"sha256": "0" * 64}}
    plugins.trust_plugins()
    with pytest.raises(PluginChangedError, match=r"sha256 recorded 000000000000\.\.\., now "
                                                 + hashlib.sha256(plugin.read_bytes()).hexdigest()[:12]):
        recorded_plugins(["changed.py"], tmp_path, recorded)
    assert _imports(plugin) == 0
    assert recorded_plugins(["changed.py"], tmp_path, recorded, accept_changes=True)[1] == ["changed"]


def test_an_installed_module_is_fingerprinted_with_its_distribution(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "rdvae_fp_pkg").mkdir(parents=True)
    source = "VALUE = 1\n"
    (site / "rdvae_fp_pkg" / "__init__.py").write_text(source)
    info = site / "rdvae_fp_pkg-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rdvae-fp-pkg\nVersion: 0.3\n")
    (info / "top_level.txt").write_text("rdvae_fp_pkg\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    with pytest.raises(PluginConsentError):   # an unimported module named by a folder needs consent too
        recorded_plugins(["rdvae_fp_pkg"], tmp_path)
    assert "rdvae_fp_pkg" not in sys.modules
    plugins.load_plugins(["rdvae_fp_pkg"], named=True)
    try:
        found = fingerprint("rdvae_fp_pkg")
        assert found == {"sha256": hashlib.sha256(source.encode()).hexdigest(),
                         "distribution": "rdvae-fp-pkg==0.3"}
        older = {"rdvae_fp_pkg": {**found, "distribution": "rdvae-fp-pkg==0.2"}}
        with pytest.raises(PluginChangedError,
                           match="distribution recorded rdvae-fp-pkg==0.2, now rdvae-fp-pkg==0.3"):
            recorded_plugins(["rdvae_fp_pkg"], tmp_path, older)
    finally:
        sys.modules.pop("rdvae_fp_pkg", None)


def test_two_plugins_of_one_module_name_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(PluginError, match="share the module name 'mark'"):
        fingerprints([str(_plugin(tmp_path / "a")), str(_plugin(tmp_path / "b"))])
