"""Every bundled dataset file has a pinned SHA-256, checked whenever the files are parsed."""

import dataclasses
import hashlib

import pytest

from rdvae.data import DataError, load_dataset, sources


def test_every_bundled_file_has_a_pinned_sha256():
    files = [f for spec in sources.REGISTRY.values() for f in spec.files]
    assert files and all(f.sha256 is not None and len(f.sha256) == 64 for f in files)


def test_a_single_flipped_bit_is_caught(tiny_amat, monkeypatch):
    pinned = tuple(dataclasses.replace(f, sha256=hashlib.sha256(tiny_amat.files[f.name]).hexdigest())
                   for f in tiny_amat.spec.files)
    spec = dataclasses.replace(tiny_amat.spec, files=pinned)
    monkeypatch.setitem(sources.REGISTRY, "binarized-mnist", spec)
    assert load_dataset("binarized-mnist", root=tiny_amat.root, download=False).train.shape[0] == 5
    name = pinned[0].name
    data = bytearray(tiny_amat.files[name])
    data[0] = ord("1") if data[0] == ord("0") else ord("0")   # flip one pixel, same size
    (tiny_amat.folder / name).write_bytes(bytes(data))
    with pytest.raises(DataError, match=f"{name}: SHA-256 is .* expected"):
        load_dataset("binarized-mnist", root=tiny_amat.root, download=False)
