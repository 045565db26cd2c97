"""Dataset loading, fetching and mini-batching for mutransfer sweeps.

Everything here is plain numpy: the training code converts batches to JAX
arrays itself, so this module never imports jax (and stays cheap to import in
CLI / service processes that never train).

Supported datasets (see :data:`DATASETS`)
-----------------------------------------
``fashion_mnist``  28x28 greyscale, D=784, 10 classes, 60000/10000.
                   Debian: ``apt-get install dataset-fashion-mnist``.
``mnist``          28x28 greyscale, D=784, 10 classes, 60000/10000.
                   ``mutransfer data fetch mnist`` (calls :func:`fetch`).
``cifar10``        32x32x3 colour, D=3072, 10 classes, 50000/10000.
                   ``mutransfer data fetch cifar10`` (calls :func:`fetch`).
``digits``         8x8 greyscale bundled with scikit-learn, D=64,
                   10 classes, 1500/297 (the last 297 examples are the test
                   split); never needs a download.

Normalisation convention
------------------------
1. Pixels are scaled to [0, 1] (divide by 255; by 16 for ``digits``).
2. Every feature of both splits is then standardised with ONE scalar mean and
   ONE scalar std: the global statistics of the *full* training split,
   computed before any ``train_examples`` subsetting, so a subset run sees the
   same input scale as a full run. The values (of the [0, 1]-scaled pixels):

   ============== ======== ========
   dataset        mean     std
   ============== ======== ========
   fashion_mnist  0.28604  0.35302
   mnist          0.13066  0.30811
   cifar10        ~0.4734  ~0.2516
   digits         0.30511  0.37503
   ============== ======== ========

   They are recomputed exactly at load time (from a 256-bin histogram, so it
   is cheap); the table is documentation only.

Inputs are flattened to ``(n, D)`` float32 (CIFAR-10 keeps its native
channel-major ``R..., G..., B...`` order); labels are int32.

Search order for local files of dataset ``name``: ``data_dir`` (or
``data_dir/name``) if given; otherwise ``$MUTRANSFER_DATA_DIR/name``,
``default_data_dir()/name`` and, for ``fashion_mnist``, the Debian path
``/usr/share/datasets/fashion-mnist``.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = [
    "DATASETS",
    "ChecksumError",
    "DownloadError",
    "Dataset",
    "DatasetInfo",
    "DatasetNotFoundError",
    "batch_indices",
    "default_data_dir",
    "fetch",
    "load_dataset",
    "locate",
    "read_idx",
]

log = logging.getLogger(__name__)

DATA_DIR_ENV = "MUTRANSFER_DATA_DIR"
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


# --------------------------------------------------------------------------
# Public types
# --------------------------------------------------------------------------


class Dataset(NamedTuple):
    """A loaded, normalised dataset (see the module docstring for the scaling)."""

    name: str
    x_train: np.ndarray  # float32 (n_train, D)
    y_train: np.ndarray  # int32 (n_train,)
    x_test: np.ndarray  # float32 (n_test, D)
    y_test: np.ndarray  # int32 (n_test,)
    num_classes: int

    @property
    def input_dim(self) -> int:
        """Feature count D of the flattened inputs."""
        return int(self.x_train.shape[1])

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not on disk; the message says how to get them."""


class ChecksumError(OSError):
    """A downloaded file's SHA-256 does not match the pinned value."""


class DownloadError(OSError):
    """A file could not be downloaded; the message names the URL and the reason."""


class _RawSplits(NamedTuple):
    """Undecoded integer pixels straight from the files, before normalisation."""

    x_train: np.ndarray  # integer (n_train, D), values in [0, pixel_max]
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class DatasetInfo:
    """One registry row: how to load a dataset and how a user obtains it."""

    name: str
    input_dim: int
    num_classes: int
    image_shape: tuple[int, int, int]  # (C, H, W) of the flat, channel-major inputs (C·H·W = D)
    n_train: int
    n_test: int
    pixel_max: int  # raw pixel value that maps to 1.0
    how_to_get: str  # human hint, used in DatasetNotFoundError messages
    # loader(candidate_dirs) -> raw splits; raises DatasetNotFoundError.
    loader: Callable[[Sequence[Path]], _RawSplits] = field(repr=False)
    # Download description for fetch(); empty for datasets that need none.
    base_url: str | None = None
    checksums: Mapping[str, str] = field(default_factory=dict)
    system_dirs: tuple[Path, ...] = ()  # extra read-only places to look


# --------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------


def default_data_dir() -> Path:
    """``$MUTRANSFER_DATA_DIR`` or ``platformdirs.user_data_dir("mutransfer")/datasets``
    (``$XDG_DATA_HOME/mutransfer/datasets`` where platformdirs is not installed)."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    # Imported lazily: only needed when no explicit directory is configured. Without it (a bare
    # GPU machine with only the science package's dependencies) use the XDG default it would give
    # on Linux.
    try:
        import platformdirs
    except ImportError:
        xdg = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
        return Path(xdg) / "mutransfer" / "datasets"
    return Path(platformdirs.user_data_dir("mutransfer")) / "datasets"


def _candidate_dirs(info: DatasetInfo, data_dir: str | os.PathLike | None) -> list[Path]:
    """Directories to search, in priority order, without duplicates."""
    if data_dir is not None:
        # An explicit directory wins outright; also accept its <name>/ child so
        # the same root works for every dataset.
        root = Path(data_dir).expanduser()
        dirs = [root, root / info.name]
    else:
        dirs = []
        env = os.environ.get(DATA_DIR_ENV)
        if env:
            dirs.append(Path(env).expanduser() / info.name)
        dirs.append(default_data_dir() / info.name)
        dirs.extend(info.system_dirs)
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def _not_found(info: DatasetInfo, dirs: Sequence[Path], what: str) -> DatasetNotFoundError:
    searched = ", ".join(str(d) for d in dirs) or "(nowhere)"
    return DatasetNotFoundError(
        f"dataset {info.name!r}: could not find {what}; searched: {searched}. "
        f"To get it: {info.how_to_get}"
    )


# --------------------------------------------------------------------------
# IDX format (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------

# IDX type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/).
_IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_maybe_gzip(path: Path) -> bytes:
    """File bytes, gunzipped if the content (not the name) is gzip."""
    with open(path, "rb") as f:
        head = f.read(2)
    if head == _GZIP_MAGIC:
        with gzip.open(path, "rb") as f:
            return f.read()
    return path.read_bytes()


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse one IDX file (raw or gzipped) into a native-endian numpy array.

    Raises ValueError for a bad magic number or a size that does not match the
    header, so a truncated download fails loudly instead of yielding garbage.
    """
    path = Path(path)
    buf = _read_maybe_gzip(path)
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    type_code, ndim = buf[2], buf[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX element type 0x{type_code:02x}")
    header_end = 4 + 4 * ndim
    if len(buf) < header_end:
        raise ValueError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(buf, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(buf) - header_end != expected:
        raise ValueError(
            f"{path}: IDX payload is {len(buf) - header_end} bytes, header {dims} implies {expected}"
        )
    arr = np.frombuffer(buf, dtype, offset=header_end).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=False)


def _idx_candidates(stem: str, kind: str) -> list[str]:
    """File names under which the ``stem`` part (e.g. train-images) may appear.

    Covers the canonical ``train-images-idx3-ubyte(.gz)`` and the
    ``train-images.idx3-ubyte(.gz)`` naming used by some mirrors/unpackers.
    """
    names = [f"{stem}-{kind}-ubyte", f"{stem}.{kind}-ubyte"]
    return [n + ext for n in names for ext in (".gz", "")]


_IDX_PARTS = {
    "x_train": ("train-images", "idx3"),
    "y_train": ("train-labels", "idx1"),
    "x_test": ("t10k-images", "idx3"),
    "y_test": ("t10k-labels", "idx1"),
}


def _find_idx_dir(dirs: Sequence[Path]) -> tuple[Path, dict[str, Path]] | None:
    """First directory holding all four IDX files, with the resolved paths."""
    for d in dirs:
        found: dict[str, Path] = {}
        for key, (stem, kind) in _IDX_PARTS.items():
            for fname in _idx_candidates(stem, kind):
                if (d / fname).is_file():
                    found[key] = d / fname
                    break
        if len(found) == len(_IDX_PARTS):
            return d, found
    return None


def _load_idx_dataset(info: DatasetInfo, dirs: Sequence[Path]) -> _RawSplits:
    hit = _find_idx_dir(dirs)
    if hit is None:
        raise _not_found(info, dirs, "the four IDX files (train/t10k images/labels)")
    _, files = hit
    arrays = {k: read_idx(p) for k, p in files.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim < 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(
                f"dataset {info.name!r}: {split} images {x.shape} and labels {y.shape} do not match"
            )
        arrays[f"x_{split}"] = x.reshape(x.shape[0], -1)
    return _RawSplits(**arrays)


# --------------------------------------------------------------------------
# CIFAR-10 (python pickle batches)
# --------------------------------------------------------------------------

CIFAR10_TARBALL = "cifar-10-python.tar.gz"
CIFAR10_SUBDIR = "cifar-10-batches-py"
_CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR10_TEST = ("test_batch",)


def _unpickle_batch(blob: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    # pickle is the distribution format of CIFAR-10; the tarball fetch() writes
    # is SHA-256 verified, so this is trusted input.
    d = pickle.loads(blob, encoding="bytes")
    x = np.asarray(d[b"data"], dtype=np.uint8)
    y = np.asarray(d[b"labels"], dtype=np.int64)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"{where}: malformed CIFAR batch: data {x.shape}, labels {y.shape}")
    return x, y


def _cifar_from_dir(d: Path) -> _RawSplits:
    def read(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        parts = [_unpickle_batch((d / n).read_bytes(), str(d / n)) for n in names]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    return _RawSplits(*read(_CIFAR10_TRAIN), *read(_CIFAR10_TEST))


def _cifar_from_tarball(path: Path) -> _RawSplits:
    """Read the batches straight out of the tarball (no extraction needed)."""
    with tarfile.open(path, "r:gz") as tar:
        blobs: dict[str, bytes] = {}
        for member in tar.getmembers():
            base = Path(member.name).name
            if member.isfile() and base in _CIFAR10_TRAIN + _CIFAR10_TEST:
                f = tar.extractfile(member)
                assert f is not None  # isfile() guarantees a file object
                blobs[base] = f.read()
    missing = [n for n in _CIFAR10_TRAIN + _CIFAR10_TEST if n not in blobs]
    if missing:
        raise ValueError(f"{path}: tarball lacks CIFAR-10 batches {missing}")

    def read(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        parts = [_unpickle_batch(blobs[n], f"{path}:{n}") for n in names]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    return _RawSplits(*read(_CIFAR10_TRAIN), *read(_CIFAR10_TEST))


def _load_cifar10(info: DatasetInfo, dirs: Sequence[Path]) -> _RawSplits:
    needed = _CIFAR10_TRAIN + _CIFAR10_TEST
    for d in dirs:
        for batch_dir in (d, d / CIFAR10_SUBDIR):
            if all((batch_dir / n).is_file() for n in needed):
                return _cifar_from_dir(batch_dir)
        if (d / CIFAR10_TARBALL).is_file():
            return _cifar_from_tarball(d / CIFAR10_TARBALL)
    raise _not_found(info, dirs, f"{CIFAR10_SUBDIR}/ (data_batch_1..5, test_batch) or {CIFAR10_TARBALL}")


# --------------------------------------------------------------------------
# digits (bundled with scikit-learn)
# --------------------------------------------------------------------------

DIGITS_TEST_SIZE = 297  # last 297 of 1797 (~1/6); a fixed, order-based split


def digits_file() -> Path | None:
    """scikit-learn's bundled ``datasets/data/digits.csv.gz``, located without importing sklearn
    (None where scikit-learn is not installed or keeps the file elsewhere)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # finds the package; runs none of it
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    return None


def _load_digits(info: DatasetInfo, dirs: Sequence[Path]) -> _RawSplits:
    del info, dirs  # bundled with scikit-learn; nothing to search for
    path = digits_file()
    if path is not None:
        # What sklearn.datasets.load_digits reads (1797 rows: 64 pixels 0..16, then the label), read
        # here directly: importing scikit-learn cost every process that loads digits (each Ray trial,
        # CLI run and driver of a digits sweep) ~1.6 s; a fresh process loads them in 0.26 s instead
        # of 1.83 s (benchmarks/import_time.py).
        with gzip.open(path, "rt", encoding="utf-8") as f:
            data = np.loadtxt(f, delimiter=",")
        x, y = data[:, :-1], data[:, -1].astype(int)
    else:  # another scikit-learn layout: its own loader
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x, y = bunch.data, bunch.target
    x = x.astype(np.uint8)  # values are integers 0..16
    cut = x.shape[0] - DIGITS_TEST_SIZE
    return _RawSplits(x[:cut], y[:cut], x[cut:], y[cut:])


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------

# SHA-256 of the canonical MNIST gz files (identical on the LeCun site and
# the Google CVDF mirror).
MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaaf3f8a2f3a7a6f8c",
}
CIFAR10_SHA256: dict[str, str] = {
    CIFAR10_TARBALL: "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
}

DATASETS: dict[str, DatasetInfo] = {
    "fashion_mnist": DatasetInfo(
        name="fashion_mnist",
        input_dim=784,
        num_classes=10,
        image_shape=(1, 28, 28),
        n_train=60000,
        n_test=10000,
        pixel_max=255,
        how_to_get=(
            "apt-get install dataset-fashion-mnist (IDX files under "
            f"{DEBIAN_FASHION_MNIST_DIR}), or pass data_dir=DIR containing the four IDX "
            f"files, or set {DATA_DIR_ENV}=ROOT with the files in ROOT/fashion_mnist"
        ),
        loader=lambda dirs: _load_idx_dataset(DATASETS["fashion_mnist"], dirs),
        system_dirs=(DEBIAN_FASHION_MNIST_DIR,),
    ),
    "mnist": DatasetInfo(
        name="mnist",
        input_dim=784,
        num_classes=10,
        image_shape=(1, 28, 28),
        n_train=60000,
        n_test=10000,
        pixel_max=255,
        how_to_get=(
            "run `mutransfer data fetch mnist` (downloads into "
            f"{DATA_DIR_ENV} or the user data dir), or pass data_dir=DIR containing the "
            "four MNIST IDX files"
        ),
        loader=lambda dirs: _load_idx_dataset(DATASETS["mnist"], dirs),
        base_url="https://storage.googleapis.com/cvdf-datasets/mnist/",
        checksums=MNIST_SHA256,
    ),
    "cifar10": DatasetInfo(
        name="cifar10",
        input_dim=3072,
        num_classes=10,
        image_shape=(3, 32, 32),
        n_train=50000,
        n_test=10000,
        pixel_max=255,
        how_to_get=(
            "run `mutransfer data fetch cifar10` (downloads into "
            f"{DATA_DIR_ENV} or the user data dir), or pass data_dir=DIR containing "
            f"{CIFAR10_TARBALL} or the extracted {CIFAR10_SUBDIR}/"
        ),
        loader=lambda dirs: _load_cifar10(DATASETS["cifar10"], dirs),
        base_url="https://www.cs.toronto.edu/~kriz/",
        checksums=CIFAR10_SHA256,
    ),
    "digits": DatasetInfo(
        name="digits",
        input_dim=64,
        num_classes=10,
        image_shape=(1, 8, 8),
        n_train=1797 - DIGITS_TEST_SIZE,
        n_test=DIGITS_TEST_SIZE,
        pixel_max=16,
        how_to_get="nothing to do: bundled with scikit-learn (pip install scikit-learn)",
        loader=lambda dirs: _load_digits(DATASETS["digits"], dirs),
    ),
}


def _info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        allowed = ", ".join(sorted(DATASETS))
        raise ValueError(f"unknown dataset {name!r}; allowed names: {allowed}") from None


# --------------------------------------------------------------------------
# Normalisation and subsetting
# --------------------------------------------------------------------------


def _global_stats(x: np.ndarray, pixel_max: int) -> tuple[float, float]:
    """Exact global mean/std of ``x / pixel_max`` via a value histogram.

    A histogram of the small integer pixel values is exact in float64 and much
    cheaper than materialising a float copy of the whole training set.
    """
    if x.dtype != np.uint8:
        raise TypeError(f"expected uint8 pixels, got {x.dtype}")
    counts = np.bincount(x.ravel(), minlength=256).astype(np.float64)
    values = np.arange(counts.size, dtype=np.float64) / pixel_max
    n = counts.sum()
    mean = float((counts * values).sum() / n)
    std = float(np.sqrt((counts * (values - mean) ** 2).sum() / n))
    return mean, std


def _standardise(x: np.ndarray, pixel_max: int, mean: float, std: float) -> np.ndarray:
    """float32 ``(x / pixel_max - mean) / std`` as one fused scale-and-shift."""
    scale = np.float32(1.0 / (pixel_max * std))
    shift = np.float32(-mean / std)
    out = x.astype(np.float32)
    out *= scale
    out += shift
    return out


def _check_count(field_name: str, value: int | None, available: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{field_name} must be an int or None, got {value!r}")
    if value < 1:
        raise ValueError(f"{field_name} must be >= 1, got {value}")
    if value > available:
        raise ValueError(f"{field_name}={value} exceeds the {available} examples available")


def _subset(n: int, k: int | None, seed_seq: np.random.SeedSequence) -> np.ndarray | None:
    """Sorted indices of a uniform random k-subset of range(n) (None: keep all).

    Uses a permutation prefix, so for a fixed seed smaller subsets are nested
    inside larger ones; sorting keeps the file's original example order.
    """
    if k is None:
        return None
    perm = np.random.default_rng(seed_seq).permutation(n)
    return np.sort(perm[:k])


# --------------------------------------------------------------------------
# Public loading API
# --------------------------------------------------------------------------


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    train_examples: int | None = None,
    test_examples: int | None = None,
    subset_seed: int = 0,
) -> Dataset:
    """Load ``name`` from local files, normalised as in the module docstring.

    ``train_examples`` / ``test_examples`` select a deterministic random subset
    (without replacement) of that split; train and test use independent
    streams derived from ``subset_seed``, so changing one size never changes
    the other split's subset. Normalisation statistics always come from the
    full training split.

    Raises:
        ValueError: unknown name, bad subset sizes or a negative subset_seed.
        DatasetNotFoundError: files missing; the message says how to get them.
    """
    info = _info(name)
    if (
        isinstance(subset_seed, bool)
        or not isinstance(subset_seed, (int, np.integer))
        or subset_seed < 0
    ):
        raise ValueError(f"subset_seed must be a non-negative int, got {subset_seed!r}")

    raw = info.loader(_candidate_dirs(info, data_dir))
    _check_count("train_examples", train_examples, raw.x_train.shape[0])
    _check_count("test_examples", test_examples, raw.x_test.shape[0])
    if raw.x_train.shape[1] != info.input_dim:
        raise ValueError(
            f"dataset {name!r}: files have {raw.x_train.shape[1]} features, expected {info.input_dim}"
        )

    mean, std = _global_stats(raw.x_train, info.pixel_max)

    train_ss, test_ss = np.random.SeedSequence(int(subset_seed)).spawn(2)
    splits = {}
    for split, k, ss in (("train", train_examples, train_ss), ("test", test_examples, test_ss)):
        x, y = getattr(raw, f"x_{split}"), getattr(raw, f"y_{split}")
        idx = _subset(x.shape[0], k, ss)
        if idx is not None:  # subset before converting to float: cheaper
            x, y = x[idx], y[idx]
        splits[split] = (_standardise(x, info.pixel_max, mean, std), np.asarray(y, dtype=np.int32))

    for split, (_, y) in splits.items():
        if y.size and (y.min() < 0 or y.max() >= info.num_classes):
            raise ValueError(f"dataset {name!r}: {split} labels outside [0, {info.num_classes})")

    return Dataset(
        name=name,
        x_train=splits["train"][0],
        y_train=splits["train"][1],
        x_test=splits["test"][0],
        y_test=splits["test"][1],
        num_classes=info.num_classes,
    )


# --------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------

_CHUNK = 1 << 20


def locate(name: str, *, data_dir: str | os.PathLike | None = None) -> Path | None:
    """Where ``name``'s files are (None for a bundled dataset), found the way :func:`load_dataset`
    searches but without reading them: a cheap check before accepting a sweep.

    Raises:
        ValueError: unknown name.
        DatasetNotFoundError: files missing; the message says how to get them.
    """
    info = _info(name)
    dirs = _candidate_dirs(info, data_dir)
    if name == "digits":
        import importlib.util

        if importlib.util.find_spec("sklearn") is None:
            raise _not_found(info, dirs, "scikit-learn (which bundles it)")
        return None
    if name == "cifar10":
        needed = _CIFAR10_TRAIN + _CIFAR10_TEST
        for d in dirs:
            for batch_dir in (d, d / CIFAR10_SUBDIR):
                if all((batch_dir / n).is_file() for n in needed):
                    return batch_dir
            if (d / CIFAR10_TARBALL).is_file():
                return d
        raise _not_found(info, dirs, f"{CIFAR10_SUBDIR}/ (data_batch_1..5, test_batch) or {CIFAR10_TARBALL}")
    hit = _find_idx_dir(dirs)
    if hit is None:
        raise _not_found(info, dirs, "the four IDX files (train/t10k images/labels)")
    return hit[0]


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _join_url(base_url: str, fname: str) -> str:
    return base_url.rstrip("/") + "/" + urllib.parse.quote(fname)


def _download_verified(url: str, dest: Path, sha256: str, timeout: float) -> None:
    """Download ``url`` to ``dest`` atomically, only if its SHA-256 matches.

    The bytes go to a temp file in ``dest``'s directory (same filesystem, so
    os.replace is atomic): readers never see a partial or unverified file, and
    a failed or mismatching download leaves nothing behind.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                for chunk in iter(lambda: resp.read(_CHUNK), b""):
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except (urllib.error.URLError, OSError) as e:  # offline, refused, 404, timeout: name the URL
            reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
            raise DownloadError(f"cannot download {url}: {reason}") from e
        got = h.hexdigest()
        if got != sha256.lower():
            raise ChecksumError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {got}; "
                "the file was discarded (corrupt download or a changed mirror)"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _safe_extractall(tar: tarfile.TarFile, dest: Path) -> None:
    """Extract without letting member names escape ``dest``."""
    if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12
        tar.extractall(dest, filter="data")
        return
    # Older 3.11.x: allow only plain files/dirs with relative, non-escaping names.
    root = dest.resolve()
    for member in tar.getmembers():
        target = (dest / member.name).resolve()
        if not (member.isfile() or member.isdir()) or root not in (target, *target.parents):
            raise ValueError(f"refusing to extract unsafe tar member {member.name!r}")
    tar.extractall(dest)


def _extract_cifar10(tarball: Path, target_root: Path) -> None:
    """Extract the batches dir next to the tarball, atomically via a temp dir."""
    final = target_root / CIFAR10_SUBDIR
    if final.is_dir():
        return
    tmp_dir = Path(tempfile.mkdtemp(prefix=".cifar10-extract.", dir=target_root))
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            _safe_extractall(tar, tmp_dir)
        extracted = tmp_dir / CIFAR10_SUBDIR
        if not extracted.is_dir():
            raise ValueError(f"{tarball}: no {CIFAR10_SUBDIR}/ inside the tarball")
        os.replace(extracted, final)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def fetch(
    name: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    checksums: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Make dataset ``name`` available locally and return its directory.

    For ``mnist`` and ``cifar10``: download every file of the checksum table
    from ``base_url`` (default: the dataset's public mirror; ``http://``,
    ``https://`` and ``file://`` all work) into ``cache_dir/name`` (default
    ``default_data_dir()/name``), verifying SHA-256 and writing atomically.
    Files already present with the right hash are not downloaded again; a
    present file with a wrong hash is replaced. ``cifar10`` is also extracted.

    ``checksums`` (filename -> sha256) replaces the pinned table; it exists
    for tests and private mirrors and is never a way to skip verification.

    For ``fashion_mnist`` nothing is downloaded: returns the directory where
    the IDX files were found, or raises DatasetNotFoundError with the how-to.
    For ``digits`` (bundled with scikit-learn) returns sklearn's data dir.

    Raises:
        ValueError: unknown name.
        ChecksumError: a downloaded file does not match its pinned hash.
        DownloadError: the mirror cannot be reached (the message names the URL).
    """
    info = _info(name)
    if name == "digits":
        found = digits_file()
        if found is None:
            import sklearn.datasets

            found = Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"
        where = found.parent
        log.info("digits is bundled with scikit-learn (%s); nothing to fetch", where)
        return where
    if not info.checksums:
        # Local-only dataset (fashion_mnist): report where it is, or how to get it.
        dirs = _candidate_dirs(info, cache_dir)
        hit = _find_idx_dir(dirs)
        if hit is None:
            raise _not_found(info, dirs, "the four IDX files (this dataset is never downloaded)")
        log.info("%s found in %s; nothing to fetch", name, hit[0])
        return hit[0]

    table = dict(info.checksums if checksums is None else checksums)
    if not table:
        raise ValueError("checksums must name at least one file")
    url_base = base_url if base_url is not None else info.base_url
    assert url_base is not None  # every downloadable registry row has a mirror
    target = Path(cache_dir).expanduser() if cache_dir is not None else default_data_dir()
    target = target / name
    target.mkdir(parents=True, exist_ok=True)

    for fname, sha in table.items():
        if Path(fname).name != fname:
            raise ValueError(f"checksum table entry {fname!r} must be a bare file name")
        dest = target / fname
        if dest.is_file() and _sha256_file(dest) == sha.lower():
            log.info("%s: %s already present and verified", name, dest)
            continue
        url = _join_url(url_base, fname)
        log.info("%s: downloading %s", name, url)
        _download_verified(url, dest, sha, timeout)

    if name == "cifar10" and CIFAR10_TARBALL in table:
        _extract_cifar10(target / CIFAR10_TARBALL, target)
    return target


# --------------------------------------------------------------------------
# Mini-batching
# --------------------------------------------------------------------------


def batch_indices(n: int, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """Shuffled example indices for one epoch, shape ``(n // batch_size, batch_size)``.

    The permutation depends only on ``(seed, epoch)``, so any epoch can be
    replayed (e.g. after resuming) without iterating the earlier ones. The last
    partial batch is dropped so every step has a static shape (no JAX
    recompilation); each index appears at most once per epoch.
    """
    checks = (("n", n, 0), ("batch_size", batch_size, 1), ("seed", seed, 0), ("epoch", epoch, 0))
    for field_name, value, lo in checks:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise ValueError(f"{field_name} must be an int >= {lo}, got {value!r}")
    n_batches = n // batch_size
    # Seeding with the (seed, epoch) pair gives independent streams per epoch.
    rng = np.random.default_rng([int(seed), int(epoch)])
    perm = rng.permutation(n)[: n_batches * batch_size]
    return perm.astype(np.int32).reshape(n_batches, batch_size)
