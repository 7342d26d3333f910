"""Datasets from the user's own files: .npy, .npz and folders of images, all written in tmp_path."""

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from rdvae.data import DataError
from rdvae.data.files import is_data_path, load_file_dataset, source_sha256


def rows(x) -> set[bytes]:
    """The examples of an array or tensor as a set, to compare splits regardless of order."""
    x = np.asarray(x, dtype=np.float32)
    return {r.tobytes() for r in x.reshape(len(x), -1)}


def save_png(path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def test_is_data_path(tmp_path):
    (tmp_path / "imgs").mkdir()
    assert is_data_path("faces.npy") and is_data_path("FACES.NPZ") and is_data_path(str(tmp_path / "imgs"))
    assert not is_data_path("digits") and not is_data_path("binarized-mnist")
    assert not is_data_path(str(tmp_path / "missing")) and not is_data_path("x.csv")


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_npy_grey_images_seeded_split(tmp_path, dtype):
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, (50, 4, 5)).astype(np.uint8)
    stored = source if dtype == np.uint8 else source / np.float32(255)
    np.save(tmp_path / "g.npy", stored.astype(dtype))
    ds = load_file_dataset(tmp_path / "g.npy", valid_fraction=0.2, test_fraction=0.1, split_seed=3)
    assert ds.event_shape == (1, 4, 5) and ds.train.shape == (35, 1, 4, 5) and ds.train.dtype == torch.float32
    assert [len(ds.valid), len(ds.test)] == [10, 5]
    order = np.random.default_rng(3).permutation(50)
    expected = (source.astype(np.float32) / np.float32(255))[:, None]
    for split, index in (("test", order[:5]), ("valid", order[5:15]), ("train", order[15:])):
        assert np.array_equal(ds.split(split).numpy(), expected[index])
    assert not ds.binary and ds.labels == {"train": None, "valid": None, "test": None}
    assert ds.name == str(tmp_path / "g.npy") and "seeded (seed 3, valid 0.2, test 0.1)" in ds.note
    assert ds.fingerprint == hashlib.sha256((tmp_path / "g.npy").read_bytes()).hexdigest()
    again = load_file_dataset(tmp_path / "g.npy", valid_fraction=0.2, test_fraction=0.1, split_seed=3)
    other = load_file_dataset(tmp_path / "g.npy", valid_fraction=0.2, test_fraction=0.1, split_seed=4)
    assert torch.equal(ds.test, again.test) and not torch.equal(ds.test, other.test)
    assert rows(torch.cat([other.train, other.valid, other.test])) == rows(expected)


def test_npy_channel_layouts(tmp_path):
    x = np.random.default_rng(1).random((6, 5, 4, 3), dtype=np.float32)
    np.save(tmp_path / "nhwc.npy", x)
    np.save(tmp_path / "nchw.npy", x.transpose(0, 3, 1, 2))
    a = load_file_dataset(tmp_path / "nhwc.npy", test_fraction=0.5, valid_fraction=0)
    b = load_file_dataset(tmp_path / "nchw.npy", test_fraction=0.5, valid_fraction=0)
    assert a.event_shape == b.event_shape == (3, 5, 4) and torch.equal(a.test, b.test)
    np.save(tmp_path / "bad.npy", np.zeros((6, 5, 4, 2)))
    with pytest.raises(DataError, match=r"bad.npy.*\(6, 5, 4, 2\).*C \(channels\) 1 or 3"):
        load_file_dataset(tmp_path / "bad.npy")


def test_npz_explicit_splits_and_labels(tmp_path):
    rng = np.random.default_rng(2)
    x = {s: rng.random((n, 3, 2, 2), dtype=np.float32) for s, n in (("train", 7), ("valid", 2), ("test", 3))}
    y = {s: rng.integers(0, 4, len(v)) for s, v in x.items()}
    np.savez(tmp_path / "a.npz", **{f"x_{s}": v for s, v in x.items()}, **{f"y_{s}": v for s, v in y.items()})
    ds = load_file_dataset(tmp_path / "a.npz", split_seed=9, test_fraction=0.5)  # fractions ignored
    for s in ("train", "valid", "test"):
        assert np.array_equal(ds.split(s).numpy(), x[s]) and np.array_equal(ds.labels[s].numpy(), y[s])
    assert ds.event_shape == (3, 2, 2) and ds.note == "splits: from the file"
    # bare split names, no valid split, labels under another name
    np.savez(tmp_path / "b.npz", train=x["train"], test=x["test"], c_train=y["train"], c_test=y["test"])
    ds = load_file_dataset(tmp_path / "b.npz", labels_key="c")
    assert ds.valid.shape == (0, 3, 2, 2) and len(ds.labels["valid"]) == 0
    assert np.array_equal(ds.labels["test"].numpy(), y["test"])


def test_npz_x_and_y_are_split_together(tmp_path):
    x = np.arange(40, dtype=np.float32).reshape(20, 2) / 40
    np.savez(tmp_path / "xy.npz", x=x, y=np.arange(20))
    ds = load_file_dataset(tmp_path / "xy.npz", valid_fraction=0.25, test_fraction=0.25)
    assert [len(ds.split(s)) for s in ("train", "valid", "test")] == [10, 5, 5]
    for s in ("train", "valid", "test"):  # each row's label is its index in the file
        assert np.array_equal(ds.split(s).numpy(), x[ds.labels[s].numpy()])


def test_tabular_real_values_and_binary_data(tmp_path):
    x = np.random.default_rng(3).normal(size=(30, 6)) * 10
    np.save(tmp_path / "t.npy", x)
    ds = load_file_dataset(tmp_path / "t.npy")
    assert ds.event_shape == (6,) and not ds.binary and ds.train.min() < 0 and "real values" in ds.note
    assert rows(torch.cat([ds.train, ds.valid, ds.test])) == rows(x)
    with pytest.raises(DataError, match=r"binarize='static' needs values in \[0, 1\]"):
        load_file_dataset(tmp_path / "t.npy", binarize="static")
    for dtype in (np.uint8, np.int64, bool):
        np.save(tmp_path / "b.npy", (x > 0).astype(dtype))
        ds = load_file_dataset(tmp_path / "b.npy")
        assert ds.binary and set(ds.train.unique().tolist()) == {0.0, 1.0}
    with pytest.raises(DataError, match="already binary, .*use binarize=None"):
        load_file_dataset(tmp_path / "b.npy", binarize="threshold")


def test_binarize_grey_array(tmp_path):
    np.save(tmp_path / "g.npy", np.random.default_rng(4).random((20, 3, 3)))
    ds = load_file_dataset(tmp_path / "g.npy", binarize="static", seed=1)
    assert ds.binary and ds.binarize == "static"
    assert set(torch.cat([ds.train, ds.test]).unique().tolist()) == {0.0, 1.0}
    dynamic = load_file_dataset(tmp_path / "g.npy", binarize="dynamic")
    assert dynamic.binary and not set(dynamic.train.unique().tolist()) <= {0.0, 1.0}


def test_image_folder_classes_grey_and_rgb(tmp_path):
    rng = np.random.default_rng(5)
    grey = {f"{c}/{i}.png": rng.integers(0, 256, (4, 6)) for c in ("cat", "dog") for i in range(5)}
    for name, a in grey.items():
        save_png(tmp_path / "grey" / name, a)
    ds = load_file_dataset(tmp_path / "grey", valid_fraction=0.2, test_fraction=0.2)
    assert ds.event_shape == (1, 4, 6) and ds.note.startswith("splits: seeded")
    every = torch.cat([ds.train, ds.valid, ds.test])
    assert rows(every) == rows(np.stack(list(grey.values()))[:, None] / 255)
    label_of = {rows(v[None] / 255).pop(): int(k.startswith("dog")) for k, v in grey.items()}  # cat 0, dog 1
    for s in ("train", "valid", "test"):
        assert [label_of[r.tobytes()] for r in ds.split(s).numpy()] == ds.labels[s].tolist()
    rgb = load_file_dataset(tmp_path / "grey", channels=3, resize=(2, 3))
    assert rgb.event_shape == (3, 2, 3) and torch.equal(rgb.train[:, 0], rgb.train[:, 2])
    save_png(tmp_path / "mixed" / "a.png", rng.integers(0, 256, (4, 6)))
    save_png(tmp_path / "mixed" / "b.PNG", rng.integers(0, 256, (4, 6, 3)))
    ds = load_file_dataset(tmp_path / "mixed", valid_fraction=0, test_fraction=0.5)
    assert ds.event_shape == (3, 4, 6) and ds.labels["train"] is None
    forced = load_file_dataset(tmp_path / "mixed", channels=1, valid_fraction=0, test_fraction=0.5)
    assert forced.event_shape == (1, 4, 6)


def test_image_folder_explicit_splits(tmp_path):
    rng = np.random.default_rng(6)
    names = [f"{s}/{c}/{i}.png" for s in ("train", "test") for c in "ab" for i in range(2)]
    images = {name: rng.integers(0, 256, (3, 3)) for name in names}
    for name, a in images.items():
        save_png(tmp_path / name, a)
    ds = load_file_dataset(tmp_path)
    assert ds.note == "splits: from the train/ valid/ test/ sub-folders" and len(ds.valid) == 0
    expected = np.stack([v for k, v in images.items() if k.startswith("test")])[:, None] / np.float32(255)
    assert np.array_equal(ds.test.numpy(), expected.astype(np.float32))
    assert ds.labels["test"].tolist() == [0, 0, 1, 1]
    save_png(tmp_path / "stray.png", np.zeros((3, 3)))
    with pytest.raises(DataError, match="stray.png is outside train/ valid/ test/"):
        load_file_dataset(tmp_path)


def test_source_sha256_tracks_content(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 2)))
    first = source_sha256(tmp_path / "a.npy")
    assert first == source_sha256(tmp_path / "a.npy")
    data = bytearray((tmp_path / "a.npy").read_bytes())
    data[-1] ^= 1
    (tmp_path / "a.npy").write_bytes(bytes(data))
    assert source_sha256(tmp_path / "a.npy") != first
    folder = tmp_path / "imgs"
    for i in range(3):
        save_png(folder / f"{i}.png", np.full((2, 2), i))
    first = source_sha256(folder)
    (folder / "notes.txt").write_text("ignored")
    assert source_sha256(folder) == first == load_file_dataset(folder, test_fraction=0.4).fingerprint
    save_png(folder / "1.png", np.full((2, 2), 9))
    changed = source_sha256(folder)
    (folder / "1.png").rename(folder / "9.png")
    assert len({first, changed, source_sha256(folder)}) == 3


def test_bad_arrays(tmp_path):
    with pytest.raises(DataError, match="missing.npy: no such file"):
        load_file_dataset(tmp_path / "missing.npy")
    np.save(tmp_path / "obj.npy", np.array([1, "a", None], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="obj.npy: .*pickled data or object arrays.*not accepted"):
        load_file_dataset(tmp_path / "obj.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    with pytest.raises(DataError, match="junk.npy: not a .npy / .npz file"):
        load_file_dataset(tmp_path / "junk.npy")
    np.savez(tmp_path / "obj.npz", x=np.array([{}, []], dtype=object))
    with pytest.raises(DataError, match="key 'x' holds pickled data or object arrays.* not accepted"):
        load_file_dataset(tmp_path / "obj.npz")
    np.savez(tmp_path / "keys.npz", images=np.zeros((4, 2)))
    with pytest.raises(DataError, match=r"unknown key layout .*keys found: \['images'\]. Accepted: 'x'"):
        load_file_dataset(tmp_path / "keys.npz")
    np.savez(tmp_path / "typo.npz", x_train=np.ones((4, 2)), x_test=np.ones((2, 2)), x_vaild=np.ones((1, 2)))
    with pytest.raises(DataError, match=r"unknown \['x_vaild'\]"):
        load_file_dataset(tmp_path / "typo.npz")
    np.savez(tmp_path / "nolabel.npz", x=np.zeros((4, 2)))
    with pytest.raises(DataError, match="labels_key='label' but no key"):
        load_file_dataset(tmp_path / "nolabel.npz", labels_key="label")
    cases = {
        "nan": (np.array([[0.5, np.nan], [np.inf, 0.0], [0.1, 0.2]]), "2 values are NaN or infinite"),
        "range": (np.full((3, 2, 2), 2.0), r"image values range over \[2, 2\]; they must lie in \[0, 1\]"),
        "empty": (np.zeros((0, 3)), r"the array is empty \(shape \(0, 3\)\)"),
        "flat": (np.zeros(5), r"the array has shape \(5,\); allowed: \[N, D\]"),
        "complex": (np.zeros((3, 2), complex), "the array has dtype complex128; allowed"),
    }
    for name, (array, message) in cases.items():
        np.save(tmp_path / f"{name}.npy", array)
        with pytest.raises(DataError, match=f"{name}.npy: {message}"):
            load_file_dataset(tmp_path / f"{name}.npy")


def test_bad_options(tmp_path):
    np.save(tmp_path / "g.npy", np.zeros((10, 3, 3)))
    bad = {
        "resize": ({"resize": (3, 3)}, "resize=.* is for folders"),
        "channels": ({"channels": 2}, "channels=2 is not allowed; use None, 1 .* or 3"),
        "fraction type": ({"valid_fraction": "0.1"}, "valid_fraction='0.1' must be a finite number"),
        "fraction nan": ({"test_fraction": float("nan")}, "test_fraction=nan must be a finite number"),
        "fraction sum": ({"valid_fraction": 0.5, "test_fraction": 0.5}, "= 1 must be < 1"),
        "no test": ({"test_fraction": 0}, "test_fraction=0 .* must be > 0"),
        "split_seed": ({"split_seed": -1}, "split_seed=-1 must be a non-negative integer"),
        "binarize": ({"binarize": "otsu"}, "unknown binarize='otsu'"),
    }
    for options, message in bad.values():
        with pytest.raises(DataError, match=message):
            load_file_dataset(tmp_path / "g.npy", **options)
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"imgs: no images found .*\.png, \.jpg, \.jpeg, \.bmp"):
        load_file_dataset(tmp_path / "imgs")
    for resize in ((0, 3), (2.5, 3), 4):
        with pytest.raises(DataError, match="must be None or two positive integers"):
            load_file_dataset(tmp_path / "imgs", resize=resize)
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(DataError, match="unsupported file type '.csv'"):
        load_file_dataset(tmp_path / "data.csv")


def test_bad_image_folders(tmp_path):
    save_png(tmp_path / "sizes" / "a.png", np.zeros((3, 3)))
    save_png(tmp_path / "sizes" / "b.png", np.zeros((3, 4)))
    with pytest.raises(DataError, match=r"differ in size: .*a.png is 3x3 .*b.png is 4x3; pass resize=\("):
        load_file_dataset(tmp_path / "sizes")
    assert load_file_dataset(tmp_path / "sizes", resize=(2, 2), test_fraction=0.5).event_shape == (1, 2, 2)
    save_png(tmp_path / "corrupt" / "a.png", np.zeros((3, 3)))
    (tmp_path / "corrupt" / "b.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataError, match=r"b.jpg: cannot read the image"):
        load_file_dataset(tmp_path / "corrupt")
    save_png(tmp_path / "half" / "train" / "a.png", np.zeros((3, 3)))
    with pytest.raises(DataError, match=r"\['train'\] but explicit splits need both train/ and test/"):
        load_file_dataset(tmp_path / "half")
