"""Bounded resources (issue 27): array headers and image folders are sized before anything is allocated."""

import io
import tracemalloc
import zipfile

import numpy as np
import pytest
from PIL import Image

from rdvae.cli import main
from rdvae.data import DataError, files, limits
from rdvae.data.files import load_file_dataset

HUGE_SHAPE = (10**12, 784)
HUGE_BYTES = 10**12 * 784 * 4


def npy_bytes(shape, descr="<f4", data=b"\0" * 64) -> bytes:
    """A .npy file whose header declares `shape`, followed by `data` (however little)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + data


@pytest.fixture
def no_numpy_load(monkeypatch):
    """np.load must not be reached: the header alone decides."""
    def refuse(*args, **kwargs):
        raise AssertionError("np.load was called: the array was not refused from its header")

    monkeypatch.setattr(files.np, "load", refuse)


def test_memory_budget_is_the_machine_memory_and_bytes_read_well():
    budget = limits.memory_budget()
    assert budget is not None and 2**26 < budget < 2**60   # some real amount of memory
    assert limits.format_bytes(512) == "512 bytes" and limits.format_bytes(3 * 2**30) == "3.0 GiB"
    assert limits.format_bytes(HUGE_BYTES) == "2.8 PiB"


def test_a_npy_header_declaring_more_than_the_file_holds_is_refused_unallocated(tmp_path, no_numpy_load):
    path = tmp_path / "huge.npy"
    path.write_bytes(npy_bytes(HUGE_SHAPE))
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as err:
            load_file_dataset(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**24   # nothing near the declared size was allocated
    assert str(err.value) == (
        f"{path}: the header of the array of shape (1000000000000, 784) and dtype float32 declares "
        f"{HUGE_BYTES} bytes (2.8 PiB), but the file holds only 64 bytes after the header: it is truncated "
        "or its header is damaged; save the array again with numpy.save")


def test_a_truncated_npy_is_refused_from_its_header(tmp_path, no_numpy_load):
    whole = npy_bytes((10, 4), data=np.ones((10, 4), np.float32).tobytes())
    (tmp_path / "cut.npy").write_bytes(whole[:-1])
    with pytest.raises(DataError, match=r"shape \(10, 4\) and dtype float32 declares 160 bytes .* only 159 "):
        load_file_dataset(tmp_path / "cut.npy")


def test_a_npy_larger_than_the_memory_budget_is_refused(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", np.zeros((100, 10), np.uint8))   # 1000 bytes, 4000 more as float32
    monkeypatch.setattr(limits, "memory_budget", lambda: 4999)
    with pytest.raises(DataError) as err:
        load_file_dataset(tmp_path / "x.npy")
    assert str(err.value) == (
        f"{tmp_path / 'x.npy'}: the array of shape (100, 10) and dtype uint8, read as float32, needs 5000 "
        "bytes (4.9 KiB), more than this machine's memory (4.9 KiB); save a smaller array or a subset")
    monkeypatch.setattr(limits, "memory_budget", lambda: 5000)
    assert load_file_dataset(tmp_path / "x.npy").train.shape[1:] == (10,)


def _npz_with(tmp_path, members: dict[str, bytes]):
    path = tmp_path / "a.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.fixture
def no_member_load(monkeypatch):
    """No .npz member may be read into an array: the member headers alone decide."""
    def refuse(*args, **kwargs):
        raise AssertionError("an .npz member was loaded: the archive was not refused from its headers")

    monkeypatch.setattr(files, "_member", refuse)


def test_a_npz_member_declaring_more_than_it_holds_is_refused_unallocated(tmp_path, no_member_load):
    ok = npy_bytes((4, 3), data=np.zeros((4, 3), np.float32).tobytes())
    path = _npz_with(tmp_path, {"x_train.npy": ok, "x_test.npy": npy_bytes(HUGE_SHAPE)})
    with pytest.raises(DataError) as err:
        load_file_dataset(path)
    assert str(err.value) == (
        f"{path}: the header of key 'x_test' of shape (1000000000000, 784) and dtype float32 declares "
        f"{HUGE_BYTES} bytes (2.8 PiB), but the zip member holds only 64 bytes after the header: it is "
        "truncated or its header is damaged; save the array again with numpy.savez")


def test_npz_members_together_beyond_the_memory_budget_are_refused(tmp_path, monkeypatch, no_member_load):
    path = tmp_path / "s.npz"
    np.savez(path, x_train=np.zeros((10, 5), np.float32), x_test=np.zeros((10, 5), np.float32))
    monkeypatch.setattr(limits, "memory_budget", lambda: 300)   # each member fits (200 bytes), not both
    with pytest.raises(DataError) as err:
        load_file_dataset(path)
    assert str(err.value) == (
        f"{path}: reading keys ['x_train', 'x_test'] as float32 needs 400 bytes (400 bytes), more than "
        "this machine's memory (300 bytes); save smaller arrays or a subset")


def test_a_npz_member_that_is_not_an_array_is_refused(tmp_path):
    ok = npy_bytes((4, 3), data=np.zeros((4, 3), np.float32).tobytes())
    path = _npz_with(tmp_path, {"x_train.npy": ok, "x_test.npy": b"just some text, not an array"})
    with pytest.raises(DataError, match=r"key 'x_test' is not a numpy array \(its member 'x_test.npy' has"):
        load_file_dataset(path)


def save_png(path, size, mode="L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size).save(path)


def test_an_absurd_resize_is_refused_before_any_image_is_read(tmp_path, monkeypatch):
    save_png(tmp_path / "imgs" / "a.png", (4, 4))
    monkeypatch.setattr(files, "_probe", lambda f: pytest.fail("an image was read"))
    with pytest.raises(DataError) as err:
        load_file_dataset(tmp_path / "imgs", resize=[100000, 100000])
    assert str(err.value) == (
        f"{tmp_path / 'imgs'}: resize=[100000, 100000] is 100000 x 100000 = 10000000000 pixels an image; at "
        "most 67108864 (2**26, e.g. 8192 x 8192) are allowed: resize to a smaller size")


def test_a_folder_beyond_the_memory_budget_is_refused_before_decoding(tmp_path, monkeypatch):
    for name in "abc":
        save_png(tmp_path / "imgs" / f"{name}.png", (7, 5), "RGB")
    real_decode = files._decode
    monkeypatch.setattr(files, "_decode", lambda *a: pytest.fail("images were decoded"))
    monkeypatch.setattr(limits, "memory_budget", lambda: 3 * 3 * 20 * 30 * 4 - 1)
    with pytest.raises(DataError) as err:
        load_file_dataset(tmp_path / "imgs", resize=(20, 30))
    assert str(err.value) == (
        f"{tmp_path / 'imgs'}: reading 3 images of 3 x 20 x 30 values as float32 needs 21600 bytes "
        "(21.1 KiB), more than this machine's memory (21.1 KiB); pass a smaller resize=(H, W), or use fewer "
        "images")
    with pytest.raises(DataError, match=r"reading 3 images of 3 x 5 x 7 values as float32 needs 1260 bytes"):
        monkeypatch.setattr(limits, "memory_budget", lambda: 1259)
        load_file_dataset(tmp_path / "imgs")   # no resize: the images' own size (W 7, H 5)
    monkeypatch.setattr(files, "_decode", real_decode)
    monkeypatch.setattr(limits, "memory_budget", lambda: 3 * 3 * 20 * 30 * 4)
    loaded = load_file_dataset(tmp_path / "imgs", resize=(20, 30), test_fraction=0.34)
    assert loaded.event_shape == (3, 20, 30)


def test_an_image_of_too_many_pixels_is_refused_without_resize(tmp_path, monkeypatch):
    save_png(tmp_path / "imgs" / "a.png", (12, 10))
    monkeypatch.setattr(files, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(DataError, match=r"imgs: image .*a.png is 10 x 12 = 120 pixels an image; at most 100"):
        load_file_dataset(tmp_path / "imgs")


def test_cli_resize_too_large_is_one_line(tmp_path, capsys):
    save_png(tmp_path / "imgs" / "a.png", (4, 4))
    code = main(["train", "--dataset", str(tmp_path / "imgs"), "--set", "data.resize=[100000,100000]",
                 "--out", str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1
    assert "resize=[100000, 100000] is 100000 x 100000 = 10000000000 pixels an image; at most 67108864" in err
