"""Tests for mutransfer.data: loaders, IDX parsing, fetch(), batching.

Nothing here touches the network: fetch() is exercised against file:// URLs
and a local http.server on 127.0.0.1 with a test-provided checksum table.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import pickle
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from mutransfer import data
from mutransfer.data import (
    DATASETS,
    ChecksumError,
    Dataset,
    DatasetNotFoundError,
    batch_indices,
    default_data_dir,
    fetch,
    load_dataset,
    read_idx,
)

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist not installed",
)


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory, monkeypatch):
    """Never read or write the user's real data dir from tests."""
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path_factory.mktemp("mutransfer_data")))


# --------------------------------------------------------------------------
# helpers: writing tiny IDX / CIFAR fixtures
# --------------------------------------------------------------------------


def idx_bytes(arr: np.ndarray) -> bytes:
    """Serialise a uint8 array in IDX format (type 0x08, big-endian dims)."""
    arr = np.asarray(arr, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.tobytes()


def write_idx(path: Path, arr: np.ndarray, *, gz: bool) -> Path:
    payload = idx_bytes(arr)
    if gz:
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return path


def make_fake_idx_dataset(d: Path, *, gz: bool, dotted: bool = False, n_train=30, n_test=10, seed=0):
    """Four tiny 28x28 IDX files in ``d``; returns the raw arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        ("train-images", "idx3"): rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        ("train-labels", "idx1"): rng.integers(0, 10, n_train, dtype=np.uint8),
        ("t10k-images", "idx3"): rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        ("t10k-labels", "idx1"): rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    d.mkdir(parents=True, exist_ok=True)
    for (stem, kind), arr in arrays.items():
        sep = "." if dotted else "-"
        name = f"{stem}{sep}{kind}-ubyte" + (".gz" if gz else "")
        write_idx(d / name, arr, gz=gz)
    return arrays


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_fake_cifar_tarball(path: Path, per_batch: int = 4, seed: int = 0) -> dict[str, dict]:
    """A tiny cifar-10-python.tar.gz with the real layout and pickle format."""
    rng = np.random.default_rng(seed)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = {
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
            b"batch_label": name.encode(),
        }
    with tarfile.open(path, "w:gz") as tar:
        for name, content in batches.items():
            blob = pickle.dumps(content, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return batches


# --------------------------------------------------------------------------
# Fashion-MNIST from the Debian package
# --------------------------------------------------------------------------


@needs_fashion
def test_fashion_mnist_full_from_debian_path():
    ds = load_dataset("fashion_mnist")
    assert isinstance(ds, Dataset)
    assert ds.name == "fashion_mnist"
    assert ds.x_train.shape == (60000, 784) and ds.x_train.dtype == np.float32
    assert ds.x_test.shape == (10000, 784) and ds.x_test.dtype == np.float32
    assert ds.y_train.shape == (60000,) and ds.y_train.dtype == np.int32
    assert ds.y_test.shape == (10000,) and ds.y_test.dtype == np.int32
    assert ds.num_classes == 10 and ds.input_dim == 784
    assert ds.input_dim == DATASETS["fashion_mnist"].input_dim
    for y in (ds.y_train, ds.y_test):
        assert y.min() == 0 and y.max() == 9
    # Global standardisation with full-training-set statistics.
    assert abs(float(ds.x_train.mean(dtype=np.float64))) < 1e-4
    assert abs(float(ds.x_train.std(dtype=np.float64)) - 1.0) < 1e-4
    # Documented raw statistic: blank pixel (0) maps to -mean/std.
    assert float(ds.x_train.min()) == pytest.approx(-0.28604 / 0.35302, abs=1e-3)


@needs_fashion
def test_fashion_mnist_subsets_deterministic_and_seeded():
    a = load_dataset("fashion_mnist", train_examples=500, test_examples=100, subset_seed=0)
    b = load_dataset("fashion_mnist", train_examples=500, test_examples=100, subset_seed=0)
    c = load_dataset("fashion_mnist", train_examples=500, test_examples=100, subset_seed=1)
    assert a.x_train.shape == (500, 784) and a.x_test.shape == (100, 784)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_train, c.x_train)
    assert not np.array_equal(a.x_test, c.x_test)
    # No duplicates: subsets are drawn without replacement.
    assert len({row.tobytes() for row in a.x_train}) == 500
    # Subsetting must not change the normalisation (full-train statistics):
    # the blank-pixel value is the same as for the full dataset.
    assert float(a.x_train.min()) == pytest.approx(-0.28604 / 0.35302, abs=1e-3)


# --------------------------------------------------------------------------
# IDX parsing and the generic IDX loader
# --------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_roundtrip(tmp_path, gz):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = write_idx(tmp_path / ("x.idx" + (".gz" if gz else "")), arr, gz=gz)
    out = read_idx(p)
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, arr)


def test_read_idx_non_ubyte_big_endian(tmp_path):
    arr = np.array([[1, -2, 70000]], dtype=">i4")
    payload = struct.pack(">BBBB", 0, 0, 0x0C, 2) + struct.pack(">2I", 1, 3) + arr.tobytes()
    (tmp_path / "a.idx").write_bytes(payload)
    out = read_idx(tmp_path / "a.idx")
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, [[1, -2, 70000]])


def test_read_idx_rejects_bad_magic_and_truncation(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")
    good = idx_bytes(np.zeros((4, 2), np.uint8))
    (tmp_path / "trunc").write_bytes(good[:-1])
    with pytest.raises(ValueError, match="bytes"):
        read_idx(tmp_path / "trunc")


@pytest.mark.parametrize("gz,dotted", [(True, False), (False, False), (False, True), (True, True)])
def test_idx_dataset_loads_from_data_dir(tmp_path, gz, dotted):
    raw = make_fake_idx_dataset(tmp_path, gz=gz, dotted=dotted)
    ds = load_dataset("mnist", data_dir=tmp_path)
    assert ds.x_train.shape == (30, 784) and ds.x_test.shape == (10, 784)
    np.testing.assert_array_equal(ds.y_train, raw[("train-labels", "idx1")])
    # Standardised with the train split's global scalar mean/std.
    x = raw[("train-images", "idx3")].reshape(30, -1) / 255.0
    expected = (x - x.mean()) / x.std()
    np.testing.assert_allclose(ds.x_train, expected, rtol=1e-5, atol=1e-5)
    xt = raw[("t10k-images", "idx3")].reshape(10, -1) / 255.0
    np.testing.assert_allclose(ds.x_test, (xt - x.mean()) / x.std(), rtol=1e-5, atol=1e-5)


def test_idx_dataset_via_env_var(tmp_path, monkeypatch):
    make_fake_idx_dataset(tmp_path / "mnist", gz=True)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert default_data_dir() == tmp_path
    assert load_dataset("mnist").x_train.shape == (30, 784)


def test_subset_is_nested_and_split_independent(tmp_path):
    make_fake_idx_dataset(tmp_path, gz=False, n_train=50)
    small = load_dataset("mnist", data_dir=tmp_path, train_examples=10, subset_seed=3)
    big = load_dataset("mnist", data_dir=tmp_path, train_examples=20, subset_seed=3, test_examples=5)
    rows_big = {r.tobytes() for r in big.x_train}
    assert all(r.tobytes() in rows_big for r in small.x_train)
    # Asking for a test subset must not change the train subset.
    again = load_dataset("mnist", data_dir=tmp_path, train_examples=10, subset_seed=3, test_examples=5)
    np.testing.assert_array_equal(small.x_train, again.x_train)


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist", "cifar10"])
def test_not_found_error_has_how_to(tmp_path, name):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError) as exc:
        load_dataset(name, data_dir=empty)
    msg = str(exc.value)
    assert isinstance(exc.value, FileNotFoundError)
    assert str(empty) in msg
    if name == "fashion_mnist":
        assert "apt-get install dataset-fashion-mnist" in msg
        assert "data_dir" in msg and "MUTRANSFER_DATA_DIR" in msg
    else:
        assert f"mutransfer data fetch {name}" in msg


# --------------------------------------------------------------------------
# fetch()
# --------------------------------------------------------------------------


@pytest.fixture
def mirror(tmp_path):
    """A directory of fake 'MNIST' files plus their checksum table."""
    src = tmp_path / "mirror"
    src.mkdir()
    make_fake_idx_dataset(src, gz=True)
    table = {p.name: sha256(p) for p in sorted(src.iterdir())}
    assert set(table) == set(data.MNIST_SHA256)  # same names as the real mirror
    return src, table


@pytest.fixture
def http_mirror(mirror):
    """Serve the mirror dir over HTTP on 127.0.0.1 (threaded, ephemeral port)."""
    src, table = mirror

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

    handler = functools.partial(QuietHandler, directory=str(src))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", table
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def no_proxy(monkeypatch):
    # urllib honours *_proxy env vars; a local server must be reached directly.
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def test_fetch_file_url_then_load(tmp_path, mirror):
    src, table = mirror
    cache = tmp_path / "cache"
    out = fetch("mnist", cache_dir=cache, base_url=src.as_uri() + "/", checksums=table)
    assert out == cache / "mnist"
    for fname, digest in table.items():
        assert sha256(out / fname) == digest
    # No temp files left next to the results.
    assert sorted(p.name for p in out.iterdir()) == sorted(table)
    ds = load_dataset("mnist", data_dir=out)
    assert ds.x_train.shape == (30, 784)


def test_fetch_http_server(tmp_path, http_mirror, no_proxy):
    url, table = http_mirror
    out = fetch("mnist", cache_dir=tmp_path / "cache", base_url=url, checksums=table)
    assert {p.name for p in out.iterdir()} == set(table)
    for fname, digest in table.items():
        assert sha256(out / fname) == digest
    # Default cache location is default_data_dir()/name.
    out2 = fetch("mnist", base_url=url, checksums=table)
    assert out2 == default_data_dir() / "mnist"


def test_fetch_checksum_mismatch_leaves_no_file(tmp_path, mirror):
    src, table = mirror
    bad = dict(table)
    victim = "train-labels-idx1-ubyte.gz"
    bad[victim] = "0" * 64
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError, match=victim):
        fetch("mnist", cache_dir=cache, base_url=src.as_uri(), checksums=bad)
    leftovers = [p.name for p in (cache / "mnist").iterdir()]
    assert victim not in leftovers
    assert not any(name.endswith(".part") for name in leftovers)


def test_fetch_skips_verified_and_replaces_corrupt(tmp_path, mirror):
    src, table = mirror
    cache = tmp_path / "cache"
    out = fetch("mnist", cache_dir=cache, base_url=src.as_uri(), checksums=table)
    stamps = {f: (out / f).stat().st_mtime_ns for f in table}
    # A mirror that does not exist: any download attempt would fail.
    nowhere = (tmp_path / "does-not-exist").as_uri()
    fetch("mnist", cache_dir=cache, base_url=nowhere, checksums=table)
    assert {f: (out / f).stat().st_mtime_ns for f in table} == stamps
    # A corrupted local file is detected and re-downloaded.
    victim = out / "t10k-labels-idx1-ubyte.gz"
    victim.write_bytes(b"garbage")
    with pytest.raises(OSError):
        fetch("mnist", cache_dir=cache, base_url=nowhere, checksums=table)
    fetch("mnist", cache_dir=cache, base_url=src.as_uri(), checksums=table)
    assert sha256(victim) == table[victim.name]


def test_fetch_local_only_datasets(tmp_path):
    assert fetch("digits").is_dir()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        fetch("fashion_mnist", cache_dir=empty)
    make_fake_idx_dataset(tmp_path / "fm", gz=True)
    assert fetch("fashion_mnist", cache_dir=tmp_path / "fm") == tmp_path / "fm"


def test_pinned_tables_look_sane():
    for info in DATASETS.values():
        for fname, digest in info.checksums.items():
            assert len(digest) == 64 and int(digest, 16) >= 0, fname
        if info.checksums:
            assert info.base_url and info.base_url.startswith("https://")
    assert set(DATASETS["mnist"].checksums) == {
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    }
    assert set(DATASETS["cifar10"].checksums) == {"cifar-10-python.tar.gz"}


# --------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------


def _expected_cifar(batches):
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    x = np.concatenate([b[b"data"] for b in train]) / 255.0
    y = np.concatenate([b[b"labels"] for b in train])
    xt = batches["test_batch"][b"data"] / 255.0
    return (x - x.mean()) / x.std(), y, (xt - x.mean()) / x.std()


def test_cifar10_from_tarball_and_extracted_dir(tmp_path):
    tar_dir = tmp_path / "tar"
    tar_dir.mkdir()
    batches = make_fake_cifar_tarball(tar_dir / "cifar-10-python.tar.gz")
    x, y, xt = _expected_cifar(batches)

    ds = load_dataset("cifar10", data_dir=tar_dir)  # read straight from tarball
    assert ds.x_train.shape == (20, 3072) and ds.x_test.shape == (4, 3072)
    assert ds.input_dim == 3072 and ds.num_classes == 10
    np.testing.assert_allclose(ds.x_train, x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ds.x_test, xt, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ds.y_train, y)

    with tarfile.open(tar_dir / "cifar-10-python.tar.gz") as tar:
        tar.extractall(tmp_path / "ext", filter="data")
    ds2 = load_dataset("cifar10", data_dir=tmp_path / "ext")  # cifar-10-batches-py/ subdir
    np.testing.assert_array_equal(ds.x_train, ds2.x_train)
    ds3 = load_dataset("cifar10", data_dir=tmp_path / "ext" / "cifar-10-batches-py")
    np.testing.assert_array_equal(ds.x_test, ds3.x_test)


def test_cifar10_fetch_extracts(tmp_path):
    src = tmp_path / "mirror"
    src.mkdir()
    tarball = src / "cifar-10-python.tar.gz"
    make_fake_cifar_tarball(tarball)
    out = fetch("cifar10", cache_dir=tmp_path / "cache", base_url=src.as_uri(),
                checksums={tarball.name: sha256(tarball)})
    assert (out / "cifar-10-batches-py" / "test_batch").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp leftovers
    ds = load_dataset("cifar10", data_dir=out, train_examples=7)
    assert ds.x_train.shape == (7, 3072)


@pytest.mark.parametrize("modern_tarfile", [True, False])
def test_extraction_refuses_escaping_members(tmp_path, monkeypatch, modern_tarfile):
    if not modern_tarfile:  # exercise the pre-3.11.4 fallback check too
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    dest = tmp_path / "dest"
    dest.mkdir()
    with tarfile.open(evil) as tar, pytest.raises(Exception):
        data._safe_extractall(tar, dest)
    assert not (tmp_path / "escaped").exists()
    # ... while the real layout extracts fine.
    good = tmp_path / "good.tar.gz"
    make_fake_cifar_tarball(good)
    with tarfile.open(good) as tar:
        data._safe_extractall(tar, dest)
    assert (dest / "cifar-10-batches-py" / "data_batch_5").is_file()


# --------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------


def test_digits_loads():
    ds = load_dataset("digits")
    assert ds.input_dim == 64 and ds.num_classes == 10
    assert ds.x_train.shape == (1500, 64) and ds.x_test.shape == (297, 64)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert abs(float(ds.x_train.mean())) < 1e-5
    assert float(ds.x_train.std()) == pytest.approx(1.0, abs=1e-5)
    assert set(np.unique(ds.y_train)) == set(range(10))


def test_digits_are_sklearns_read_without_importing_it():
    import subprocess
    import sys

    # A fresh process: loading digits reads sklearn's bundled file and imports none of scikit-learn.
    code = ("import sys; from mutransfer.data import load_dataset; load_dataset('digits'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    # The same examples, labels and split as sklearn.datasets.load_digits.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    raw = data._load_digits(None, [])
    np.testing.assert_array_equal(np.concatenate([raw.x_train, raw.x_test]), bunch.data.astype(np.uint8))
    np.testing.assert_array_equal(np.concatenate([raw.y_train, raw.y_test]), bunch.target)
    assert len(raw.x_test) == data.DIGITS_TEST_SIZE


# --------------------------------------------------------------------------
# batch_indices
# --------------------------------------------------------------------------


def test_batch_indices_properties():
    b = batch_indices(103, 10, seed=7, epoch=0)
    assert b.shape == (10, 10) and b.dtype == np.int32
    flat = b.ravel()
    assert len(np.unique(flat)) == flat.size  # each index at most once
    assert flat.min() >= 0 and flat.max() < 103
    np.testing.assert_array_equal(b, batch_indices(103, 10, seed=7, epoch=0))
    assert not np.array_equal(b, batch_indices(103, 10, seed=7, epoch=1))
    assert not np.array_equal(b, batch_indices(103, 10, seed=8, epoch=0))
    assert batch_indices(5, 10, seed=0, epoch=0).shape == (0, 10)
    # Exact multiple: every index used exactly once.
    full = batch_indices(40, 8, seed=1, epoch=3)
    assert sorted(full.ravel().tolist()) == list(range(40))


def test_batch_indices_rejects_bad_args():
    with pytest.raises(ValueError, match="batch_size"):
        batch_indices(10, 0, seed=0, epoch=0)
    with pytest.raises(ValueError, match="epoch"):
        batch_indices(10, 2, seed=0, epoch=-1)


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------


def test_unknown_name_lists_allowed():
    with pytest.raises(ValueError) as exc:
        load_dataset("imagenet")
    for name in ("fashion_mnist", "mnist", "cifar10", "digits"):
        assert name in str(exc.value)
    with pytest.raises(ValueError, match="allowed"):
        fetch("imagenet")


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"train_examples": 1501}, "train_examples"),
        ({"train_examples": 0}, "train_examples"),
        ({"train_examples": -3}, "train_examples"),
        ({"test_examples": 298}, "test_examples"),
        ({"test_examples": 0}, "test_examples"),
        ({"subset_seed": -1}, "subset_seed"),
    ],
)
def test_bad_subset_arguments(kwargs, field):
    with pytest.raises(ValueError, match=field):
        load_dataset("digits", **kwargs)


def test_too_large_mentions_available_count():
    with pytest.raises(ValueError, match="1500"):
        load_dataset("digits", train_examples=10**6)


def test_module_does_not_import_jax():
    src = Path(data.__file__).read_text()
    assert "import jax" not in src
