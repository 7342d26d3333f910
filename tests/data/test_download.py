"""Missing files, offline errors and atomic, verified downloads (network faked)."""

import io
import urllib.error
import urllib.request

import pytest

from rdvae.data import DataError, load_dataset


def _assert_lists_every_file(message: str, tiny, missing):
    folder = tiny.folder.resolve()
    assert str(folder) in message and "RDVAE_DATA" in message
    for name in missing:
        assert str(folder / name) in message
        for url in tiny.spec.file(name).urls:
            assert url in message


def test_missing_files_without_download(tiny_mnist):
    missing = ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    for name in missing:
        (tiny_mnist.folder / name).unlink()
    with pytest.raises(DataError) as err:
        load_dataset("mnist", root=tiny_mnist.root, download=False)
    _assert_lists_every_file(str(err.value), tiny_mnist, missing)
    assert "train-labels" not in str(err.value)  # present files are not listed


def test_rdvae_data_env_and_offline_env(tiny_amat, monkeypatch):
    monkeypatch.setenv("RDVAE_DATA", str(tiny_amat.root))
    assert load_dataset("binarized-mnist").train.shape == (5, 1, 2, 3)
    (tiny_amat.folder / "binarized_mnist_test.amat").unlink()
    monkeypatch.setenv("RDVAE_OFFLINE", "1")
    calls = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: calls.append(a))
    with pytest.raises(DataError, match="not attempted") as err:
        load_dataset("binarized-mnist", download=True)
    assert calls == []
    _assert_lists_every_file(str(err.value), tiny_amat, ["binarized_mnist_test.amat"])


def test_offline_download_failure_names_files_and_leaves_nothing(tmp_path, tiny_news):
    root = tmp_path / "empty"
    with pytest.raises(DataError) as err:
        load_dataset("20newsgroups", root=root)  # urlopen raises URLError (conftest)
    message = str(err.value)
    assert "network disabled" in message and "Downloading failed" in message
    tiny_news.root = root
    _assert_lists_every_file(message, tiny_news, ["20news-bydate-matlab.tgz", "vocabulary.txt"])
    assert list((root / "20newsgroups").iterdir()) == []  # no partial or temporary file


class _Response(io.BytesIO):
    def __init__(self, data: bytes, fail_after: int | None = None):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}
        self.fail_after = fail_after

    def read(self, n=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise urllib.error.URLError("connection reset")
        return super().read(min(n, 7) if n and n > 0 else n)


def _serve(monkeypatch, files: dict[str, bytes], fail_after=None, seen=None):
    def urlopen(url, timeout):
        assert timeout > 0
        if seen is not None:
            seen.append(url)
        name = url.rsplit("/", 1)[1]
        if url.startswith("https://ossci"):  # first mirror is down
            raise urllib.error.HTTPError(url, 503, "unavailable", {}, None)
        return _Response(files[name], fail_after)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


def test_download_tries_mirrors_verifies_and_lands(tiny_mnist, tmp_path, monkeypatch):
    seen = []
    _serve(monkeypatch, tiny_mnist.files, seen=seen)
    root = tmp_path / "fresh"
    ds = load_dataset("mnist", root=root)
    assert ds.train.shape == (7, 1, 4, 4)
    assert sorted(p.name for p in (root / "mnist").iterdir() if not p.name.startswith(".")) == (
        sorted(tiny_mnist.files)
    )
    assert any(u.startswith("http://yann.lecun.com/") for u in seen)


def test_download_with_bad_md5_is_rejected(tiny_mnist, tmp_path, monkeypatch):
    bad = dict(tiny_mnist.files)
    bad["train-labels-idx1-ubyte.gz"] = tiny_mnist.files["t10k-labels-idx1-ubyte.gz"]
    _serve(monkeypatch, bad)
    root = tmp_path / "fresh"
    with pytest.raises(DataError, match="md5") as err:
        load_dataset("mnist", root=root)
    assert "train-labels-idx1-ubyte.gz" in str(err.value)
    names = sorted(p.name for p in (root / "mnist").iterdir())
    assert "train-labels-idx1-ubyte.gz" not in names and not any(".part" in n for n in names)


def test_interrupted_download_leaves_no_partial_file(tiny_amat, tmp_path, monkeypatch):
    _serve(monkeypatch, tiny_amat.files, fail_after=20)
    root = tmp_path / "fresh"
    with pytest.raises(DataError, match="connection reset"):
        load_dataset("binarized-mnist", root=root)
    assert list((root / "binarized_mnist").iterdir()) == []


def test_downloaded_content_is_verified(tiny_amat, tmp_path, monkeypatch):
    bad = dict(tiny_amat.files)
    bad["binarized_mnist_valid.amat"] = b"0 1 0 1 0\n1 1 1 1 1\n"  # 5 columns, not 6
    _serve(monkeypatch, bad)
    root = tmp_path / "fresh"
    with pytest.raises(DataError, match="row 1 has 5 values, expected 6"):
        load_dataset("binarized-mnist", root=root)
    assert not (root / "binarized_mnist" / "binarized_mnist_valid.amat").exists()
    assert (root / "binarized_mnist" / "binarized_mnist_train.amat").exists()
