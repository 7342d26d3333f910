"""Parsers: corrupt files are named and explained; 20news is read safely and correctly."""

import gzip
import tarfile

import numpy as np
import pytest
import torch

from rdvae.data import DataError, formats, load_dataset


def _load(tiny):
    return load_dataset(tiny.name, root=tiny.root, download=False)


def _corrupt_error(tiny, name):
    with pytest.raises(DataError) as err:
        _load(tiny)
    message = str(err.value)
    assert str((tiny.folder / name).resolve()) in message and "delete it" in message
    return message


def test_idx_loads_and_splits(tiny_mnist):
    ds = _load(tiny_mnist)
    images = tiny_mnist.arrays["train-images-idx3-ubyte.gz"]
    labels = tiny_mnist.arrays["train-labels-idx1-ubyte.gz"]
    assert ds.train.shape == (7, 1, 4, 4) and ds.valid.shape == (3, 1, 4, 4)
    assert ds.test.shape == (3, 1, 4, 4) and ds.event_shape == (1, 4, 4)
    assert torch.allclose(ds.valid[:, 0], torch.tensor(images[7:] / 255, dtype=torch.float32))
    assert ds.labels["train"].tolist() == labels[:7].tolist()
    assert ds.labels["valid"].dtype == torch.int64
    assert torch.equal(_load(tiny_mnist).train, ds.train)  # from the cache, identical


def test_md5_mismatch_names_the_file(tiny_mnist):
    name = "t10k-images-idx3-ubyte.gz"
    data = bytearray(tiny_mnist.files[name])
    data[-12] ^= 0xFF
    (tiny_mnist.folder / name).write_bytes(bytes(data))
    assert "md5" in _corrupt_error(tiny_mnist, name)


@pytest.fixture
def no_md5(tiny_mnist, monkeypatch):
    """tiny_mnist without published checksums, so the parser meets the damage itself."""
    import dataclasses

    from rdvae.data import sources

    files = tuple(dataclasses.replace(f, md5=None) for f in tiny_mnist.spec.files)
    tiny_mnist.spec = dataclasses.replace(tiny_mnist.spec, files=files)
    monkeypatch.setitem(sources.REGISTRY, "mnist", tiny_mnist.spec)
    return tiny_mnist


def test_truncated_gzip_names_the_file(no_md5):
    name = "train-images-idx3-ubyte.gz"
    (no_md5.folder / name).write_bytes(no_md5.files[name][:-30])
    assert "gzip" in _corrupt_error(no_md5, name)


def test_bad_idx_magic_and_size(no_md5, synth):
    name = "train-labels-idx1-ubyte.gz"
    (no_md5.folder / name).write_bytes(gzip.compress(b"\x00\x00\x0d\x01" + bytes(14)))
    assert "magic" in _corrupt_error(no_md5, name)
    wrong = synth.idx_bytes(np.zeros(9, np.uint8))
    (no_md5.folder / name).write_bytes(gzip.compress(wrong))
    assert "(9,)" in _corrupt_error(no_md5, name)
    (no_md5.folder / name).write_bytes(gzip.compress(synth.idx_bytes(np.zeros(10))[:-1]))
    assert "bytes" in _corrupt_error(no_md5, name)


def test_amat_loads(tiny_amat):
    ds = _load(tiny_amat)
    assert ds.binary and ds.labels == {"train": None, "valid": None, "test": None}
    assert ds.train.shape == (5, 1, 2, 3) and ds.event_shape == (1, 2, 3)
    expected = tiny_amat.arrays["binarized_mnist_test.amat"]
    assert torch.equal(ds.test[:, 0], torch.tensor(expected, dtype=torch.float32))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"0 1 0 1 1 2\n", "row 2 holds b'2'"),
        (b"0 1 0 1 1\n", "row 2 has 5 values, expected 6"),
        (b"0 1 0 1 1 1 0\n", "row 2 has 7 values"),
        (b"0 1 0 1 1 10\n", "other than 0 or 1"),
        (b"", "1 rows, expected 2"),
    ],
)
def test_amat_bad_content_names_file(tiny_amat, text, problem):
    name = "binarized_mnist_valid.amat"
    (tiny_amat.folder / name).write_bytes(b"0 0 0 0 0 0\n" + text)
    assert problem in _corrupt_error(tiny_amat, name)


def test_amat_irregular_but_valid_layout(tmp_path):
    path = tmp_path / "x.amat"
    path.write_bytes(b"0 1  1 \r\n1 0 0\r\n\r\n0 0 1")
    assert formats.read_amat(path, 3, 3).tolist() == [[0, 1, 1], [1, 0, 0], [0, 0, 1]]


def test_news_loads_with_top_words_by_document_frequency(tiny_news):
    ds = _load(tiny_news)
    train, test = tiny_news.arrays["train"], tiny_news.arrays["test"]
    # Brute force: rank words by (number of training documents containing them, then id).
    frequency = [(-(train[:, w] > 0).sum(), w) for w in range(8)]
    kept = [w for _, w in sorted(frequency)[:5]]
    assert ds.vocabulary == [f"w{w}" for w in kept]
    assert torch.equal(ds.train, torch.tensor(train[:, kept], dtype=torch.float32))
    assert torch.equal(ds.test, torch.tensor(test[:, kept], dtype=torch.float32))
    assert ds.valid.shape == (0, 5) and ds.event_shape == (5,) and not ds.binary
    assert ds.labels["train"].tolist() == (tiny_news.arrays["y_train"] - 1).tolist()
    assert ds.labels["test"].dtype == torch.int64
    assert "valid is empty" in ds.describe()


def test_top_words_brute_force_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        docs, vocab = rng.integers(1, 9), rng.integers(2, 12)
        counts = rng.integers(0, 3, (docs, vocab)) * (rng.random((docs, vocab)) < 0.4)
        d, w = np.nonzero(counts)
        triples = np.stack([d, w, counts[d, w]], axis=1)
        triples = np.concatenate([triples, triples[:2]])  # a repeated pair counts once
        for k in range(1, vocab + 1):
            frequency = (counts > 0).sum(axis=0)
            brute = sorted(range(vocab), key=lambda i: (-frequency[i], i))[:k]
            assert formats.top_words(triples, vocab, k).tolist() == brute


def _write_news(tiny, synth, extra):
    members = {}
    with tarfile.open(tiny.folder / "20news-bydate-matlab.tgz") as tar:
        for m in tar:
            members[m.name] = tar.extractfile(m).read()
    (tiny.folder / "20news-bydate-matlab.tgz").write_bytes(synth.tgz_bytes(members, extra))


def _member(name, kind=tarfile.REGTYPE, size=4, target=""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size if kind == tarfile.REGTYPE else 0, target
    return info


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        (_member("../evil"), "unsafe path"),
        (_member("20news-bydate/../../evil"), "unsafe path"),
        (_member("/etc/evil"), "unsafe path"),
        (_member("20news-bydate/matlab/train.data", tarfile.SYMTYPE, target="/etc/passwd"), "link"),
        (_member("20news-bydate/x", tarfile.LNKTYPE, target="20news-bydate/y"), "link"),
        (_member("20news-bydate/fifo", tarfile.FIFOTYPE), "not a regular file"),
    ],
)
def test_news_archive_refuses_unsafe_members(tiny_news, synth, tmp_path, member, problem):
    _write_news(tiny_news, synth, [member])
    message = _corrupt_error(tiny_news, "20news-bydate-matlab.tgz")
    assert problem in message and repr(member.name) in message
    assert not (tmp_path / "evil").exists() and not (tiny_news.root / "evil").exists()


@pytest.mark.parametrize(
    ("member", "data", "problem"),
    [
        ("train.data", b"1 1 2\n1 9 1\n", "word ids outside 1..8"),
        ("train.data", b"7 1 2\n", "document ids outside 1..6"),
        ("test.data", b"1 1\n", "lines have 2 numbers"),
        ("test.data", b"1 1 x\n", "malformed"),
        ("test.label", b"1\n2\n", "2 labels, expected 4"),
        ("train.label", b"1\n2\n3\n4\n5\n21\n", "labels outside 1..20"),
    ],
)
def test_news_malformed_members(tiny_news, synth, member, data, problem):
    with tarfile.open(tiny_news.folder / "20news-bydate-matlab.tgz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}
    members[synth.NEWS + member] = data
    (tiny_news.folder / "20news-bydate-matlab.tgz").write_bytes(synth.tgz_bytes(members))
    message = _corrupt_error(tiny_news, "20news-bydate-matlab.tgz")
    assert problem in message and member in message


def test_news_vocabulary_size_checked(tiny_news):
    (tiny_news.folder / "vocabulary.txt").write_text("a\nb\n")
    assert "2 words, expected 8" in _corrupt_error(tiny_news, "vocabulary.txt")


def test_dense_counts_adds_repeats():
    triples = np.array([[0, 1, 2], [0, 1, 3], [1, 0, 1]])
    expected = np.zeros((2, 2), np.float32)
    for d, w, c in triples:
        expected[d, w] += c
    assert np.array_equal(formats.dense_counts(triples, 2, 2), expected)
    kept_word_1 = formats.restrict(triples, np.array([1]), 2)
    assert kept_word_1.tolist() == [[0, 0, 2], [0, 0, 3]]  # word 1 is now column 0
