"""Parquet results store for sweeps.

On-disk layout (hive-partitioned by sweep id; learning rates are never keys)::

    ROOT/runs/sweep_id=<id>/<part>.parquet      one row per run
    ROOT/curves/sweep_id=<id>/<part>.parquet    one row per run per logged step

``<part>`` is e.g. ``cell-<cell_id>`` or ``cell-<cell_id>-chunk-<k>`` (see
:func:`part_name`).  ``ROOT`` is a local directory or any pyarrow filesystem
URI (``s3://bucket/prefix?endpoint_override=...``, ``file:///...``, ...).

Design notes
------------
* ``sweep_id`` is **not** stored inside the files; it lives only in the hive
  directory name.  pyarrow refuses to merge a dataset whose partition key is
  also a file column (``string`` vs ``dictionary<string>``), so this is the
  only layout for which ``pd.read_parquet(ROOT / "runs")`` works.  (There the
  column comes back as a categorical, and all-numeric ids may be inferred as
  integers; :func:`load` / :class:`ResultsStore` always return ``sweep_id`` as
  a plain string column taken verbatim from the directory name.)
* Each file is written atomically: on filesystems with atomic rename (local)
  to ``.<name>.<random>.tmp`` in the same directory, fsync'ed, then renamed; on
  object stores the final key is written once (a single put of an in-memory
  buffer).  Dot-prefixed files are ignored by pyarrow's dataset discovery and
  by this module.
* ``write_part`` writes curves first and the runs file last: the runs file is
  the commit marker, a part is complete iff its runs file exists.  Readers of
  this module only return curves of complete parts.
* Readers go file by file; an unreadable file (e.g. truncated) is skipped with
  a :class:`ResultsReadWarning` naming it.
* A part counts as done only once verified (:meth:`ResultsStore.verify_parts`):
  its files read in full and its runs file has the expected row count. A bad
  part is moved aside (:meth:`ResultsStore.quarantine`) to
  ``ROOT/_quarantine/<table>/sweep_id=<id>/<part>.<stamp>.parquet`` (outside
  the tables, so no reader sees it) and is recomputed by the next driver.
* Floats keep NaN/inf as-is (no NaN->null conversion); nulls in float columns
  become NaN, nulls in int/string columns are rejected on write.
"""

from __future__ import annotations

import os
import re
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from mutransfer.budgets import BUDGET_COLUMN_NAMES

__all__ = [
    "RUNS_SCHEMA",
    "CURVES_SCHEMA",
    "RUN_STATUSES",
    "TABLES",
    "SCHEMA_VERSION",
    "ResultsStore",
    "ResultsReadWarning",
    "PartsCheck",
    "UnknownSweepError",
    "ResultsRootError",
    "load",
    "default_results_root",
    "with_settings",
    "empty_frame",
    "part_name",
    "validate_name",
    "file_schema",
]

RUN_STATUSES = ("ok", "diverged", "failed")
DIVERGE_REASONS = ("", "loss", "inference")  # "" while ok (mutransfer.inference_health.REASONS)
SCHEMA_VERSION = "3"  # 2: runs gained min_train_loss_25pct/_50pct (older parts read them as NaN);
# 3: runs gained diverge_reason/diverge_step (older parts read them as "" / -1)
PARTITION_KEY = "sweep_id"
ANALYSES_DIR = "analyses"  # diagnostics tables: ROOT/analyses/sweep_id=<id>/<name>.parquet
QUARANTINE_DIR = "_quarantine"  # parts that failed verification, moved out of the tables

_NAN = float("nan")
_REQUIRED = object()  # sentinel: column has no default


# --------------------------------------------------------------------------
# Schemas: the one table-driven place.
# (name, arrow type, default) -- default _REQUIRED means the column must be
# supplied on write; a callable default is evaluated lazily.
# --------------------------------------------------------------------------


def _mutransfer_version() -> str:
    try:
        from importlib.metadata import version

        return version("mutransfer")
    except Exception:
        try:
            import mutransfer

            return str(getattr(mutransfer, "__version__", "unknown"))
        except Exception:  # pragma: no cover
            return "unknown"


def _jax_version() -> str:
    # Never import jax here: just read the installed distribution metadata.
    try:
        from importlib.metadata import version

        return version("jax")
    except Exception:
        return ""


_COLUMNS: dict[str, tuple[tuple[str, pa.DataType, Any], ...]] = {
    "runs": (
        ("sweep_id", pa.string(), _REQUIRED),  # partition key, not in files
        ("run_id", pa.string(), _REQUIRED),
        ("cell_id", pa.string(), _REQUIRED),
        ("algorithm", pa.string(), _REQUIRED),
        ("parametrization", pa.string(), _REQUIRED),
        ("width", pa.int32(), _REQUIRED),
        ("depth", pa.int32(), _REQUIRED),
        ("activation", pa.string(), _REQUIRED),
        ("dataset", pa.string(), _REQUIRED),
        ("weight_lr", pa.float64(), _REQUIRED),
        ("activity_lr", pa.float64(), _NAN),
        ("seed", pa.int32(), _REQUIRED),
        ("status", pa.string(), _REQUIRED),
        ("min_train_loss", pa.float64(), _NAN),
        # running minimum over the first ⌈f·S⌉ of S steps (mutransfer.budgets.BUDGET_FRACTIONS);
        # NaN in parts written before these columns existed.
        *((column, pa.float64(), _NAN) for column in BUDGET_COLUMN_NAMES),
        ("final_train_loss", pa.float64(), _NAN),
        ("best_test_acc", pa.float64(), _NAN),
        ("final_test_acc", pa.float64(), _NAN),
        ("steps", pa.int64(), _REQUIRED),
        ("wall_s", pa.float64(), _NAN),
        ("diverged_step", pa.int64(), -1),  # the step the trainer froze the run (loss diverged)
        # why the run's status is "diverged" ("loss" | "inference", "" when ok) and the step it began
        # (mutransfer.inference_health); parts written before these columns read as "" / -1.
        ("diverge_reason", pa.string(), ""),
        ("diverge_step", pa.int64(), -1),
        ("mutransfer_version", pa.string(), _mutransfer_version),
        ("jax_version", pa.string(), _jax_version),
        ("spec_hash", pa.string(), _REQUIRED),
    ),
    "curves": (
        ("sweep_id", pa.string(), _REQUIRED),  # partition key, not in files
        ("run_id", pa.string(), _REQUIRED),
        ("step", pa.int64(), _REQUIRED),
        ("epoch", pa.int32(), -1),
        ("train_loss", pa.float64(), _NAN),
        ("energy_start", pa.float64(), _NAN),
        ("energy_end", pa.float64(), _NAN),
        ("test_loss", pa.float64(), _NAN),
        ("test_acc", pa.float64(), _NAN),
    ),
}

TABLES: tuple[str, ...] = tuple(_COLUMNS)


def _make_schema(table: str) -> pa.Schema:
    fields = [pa.field(name, typ, nullable=False) for name, typ, _ in _COLUMNS[table]]
    return pa.schema(
        fields,
        metadata={b"mutransfer.table": table.encode(), b"mutransfer.schema_version": SCHEMA_VERSION.encode()},
    )


RUNS_SCHEMA: pa.Schema = _make_schema("runs")
CURVES_SCHEMA: pa.Schema = _make_schema("curves")
_SCHEMAS = {"runs": RUNS_SCHEMA, "curves": CURVES_SCHEMA}
_DEFAULTS = {t: {name: d for name, _, d in cols} for t, cols in _COLUMNS.items()}


def _table_name(table: str) -> str:
    if table not in _SCHEMAS:
        raise ValueError(f"unknown table {table!r}; expected one of {TABLES}")
    return table


def file_schema(table: str) -> pa.Schema:
    """Schema of the parquet files of ``table`` (the full schema minus ``sweep_id``)."""
    schema = _SCHEMAS[_table_name(table)]
    return schema.remove(schema.get_field_index(PARTITION_KEY))


def empty_frame(table: str | pa.Schema = "runs") -> pd.DataFrame:
    """Empty DataFrame with the columns and dtypes of a table schema."""
    schema = table if isinstance(table, pa.Schema) else _SCHEMAS[_table_name(table)]
    return schema.empty_table().to_pandas()


class ResultsReadWarning(UserWarning):
    """An unreadable / incompatible parquet file was skipped while reading."""


class ResultsRootError(OSError):
    """A results root that cannot be used (a file, or not writable); the message says which."""


class UnknownSweepError(KeyError):
    """Sweep id not found in a results root."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------

_NAME_RE = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9._\-]{0,199}$")


def validate_name(name: str, what: str = "name") -> str:
    """Validate a sweep id / part name: ``[A-Za-z0-9._-]``, no leading dot, <=200 chars."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError(
            f"invalid {what} {name!r}: must be 1-200 characters from [A-Za-z0-9._-] "
            "without a leading dot (no path separators)"
        )
    return name


def part_name(cell_id: str, chunk: int | None = None) -> str:
    """Canonical part name: ``cell-<cell_id>`` or ``cell-<cell_id>-chunk-<k>``."""
    name = f"cell-{cell_id}" if chunk is None else f"cell-{cell_id}-chunk-{int(chunk)}"
    return validate_name(name, "part")


# --------------------------------------------------------------------------
# Conforming data to a schema
# --------------------------------------------------------------------------


def _is_float(t: pa.DataType) -> bool:
    return pa.types.is_floating(t)


def _to_arrow_column(values: Any, field: pa.Field, n: int) -> pa.Array | pa.ChunkedArray:
    name, typ = field.name, field.type
    try:
        if isinstance(values, (pa.Array, pa.ChunkedArray)):
            arr = values
        elif _is_float(typ):
            # keep NaN/inf as values (no NaN -> null conversion)
            arr = pa.array(pd.Series(values).to_numpy(dtype="float64", na_value=np.nan), type=pa.float64())
        else:
            series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
            arr = pa.array(series, from_pandas=True)
        if arr.type != typ:
            if _is_float(typ) and pa.types.is_dictionary(arr.type):
                arr = arr.cast(arr.type.value_type)
            arr = arr.cast(typ, safe=True)
    except (pa.ArrowException, ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"column {name!r}: cannot convert to {typ}: {e}") from e
    if arr.null_count:
        if _is_float(typ):
            arr = pc.fill_null(arr, pa.scalar(_NAN, typ))
        else:
            raise ValueError(f"column {name!r} ({typ}) contains {arr.null_count} null value(s)")
    return arr


def _default_array(table: str, field: pa.Field, n: int) -> pa.Array:
    default = _DEFAULTS[table][field.name]
    if callable(default):
        default = default()
    return pa.array([default] * n, type=field.type)


def _conform(data: pd.DataFrame | pa.Table, table: str, *, strict: bool = True) -> pa.Table:
    """Cast ``data`` to the file schema of ``table`` (without ``sweep_id``).

    strict=True (writing): extra columns -> ValueError.  strict=False (reading):
    extra columns are dropped.  Missing required columns -> ValueError naming
    them; missing optional columns are filled with their default.
    """
    schema = file_schema(table)
    if isinstance(data, pa.Table):
        cols = {name: data.column(name) for name in data.column_names}
        n = data.num_rows
    elif isinstance(data, pd.DataFrame):
        if data.columns.duplicated().any():
            dup = sorted(set(data.columns[data.columns.duplicated()]))
            raise ValueError(f"{table}: duplicate column(s) {dup}")
        cols = {str(c): data[c] for c in data.columns}
        n = len(data)
    else:
        raise TypeError(f"{table}: expected a pandas DataFrame or pyarrow Table, got {type(data).__name__}")
    cols.pop(PARTITION_KEY, None)
    extra = sorted(set(cols) - set(schema.names))
    if extra and strict:
        raise ValueError(f"{table}: unexpected column(s) {extra}; schema columns are {schema.names}")
    missing = [
        f.name for f in schema if f.name not in cols and _DEFAULTS[table][f.name] is _REQUIRED
    ]
    if missing:
        raise ValueError(f"{table}: missing required column(s) {missing}")
    arrays = []
    for field in schema:
        if field.name in cols:
            arrays.append(_to_arrow_column(cols[field.name], field, n))
        else:
            arrays.append(_default_array(table, field, n))
    return pa.Table.from_arrays(arrays, schema=schema)


def _check_sweep_column(data: pd.DataFrame | pa.Table, sweep_id: str, table: str) -> None:
    if isinstance(data, pa.Table):
        if PARTITION_KEY not in data.column_names:
            return
        values = set(data.column(PARTITION_KEY).to_pylist())
    else:
        if PARTITION_KEY not in data.columns:
            return
        values = set(data[PARTITION_KEY].tolist())
    bad = {v for v in values if v != sweep_id}
    if bad:
        raise ValueError(f"{table}: column 'sweep_id' has values {sorted(map(str, bad))} != {sweep_id!r}")


def _validate_runs(t: pa.Table) -> None:
    status = set(t.column("status").to_pylist())
    bad = status - set(RUN_STATUSES)
    if bad:
        raise ValueError(f"runs: column 'status' has invalid value(s) {sorted(bad)}; allowed {RUN_STATUSES}")
    bad = set(t.column("diverge_reason").to_pylist()) - set(DIVERGE_REASONS)
    if bad:
        raise ValueError(f"runs: column 'diverge_reason' has invalid value(s) {sorted(bad)}; "
                         f"allowed {DIVERGE_REASONS}")
    ids = t.column("run_id").to_pylist()
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"runs: duplicate run_id(s) {dup[:10]}")


# --------------------------------------------------------------------------
# Filesystem helpers
# --------------------------------------------------------------------------


def _resolve(root: str | os.PathLike) -> tuple[pafs.FileSystem, str, bool]:
    """Return (filesystem, base path, is_local)."""
    if isinstance(root, str) and "://" in root:
        fs, path = pafs.FileSystem.from_uri(root)
        local = isinstance(fs, pafs.LocalFileSystem)
        if local:
            path = str(Path(path))
        return fs, path.rstrip("/") or "/", local
    path = Path(os.fspath(root)).expanduser().absolute()
    return pafs.LocalFileSystem(), path.as_posix(), True


def _join(*parts: str) -> str:
    out = parts[0].rstrip("/")
    for p in parts[1:]:
        out = f"{out}/{p}" if out else p
    return out


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _dirname(path: str) -> str:
    p = path.rstrip("/")
    return p.rsplit("/", 1)[0] if "/" in p else ""


def _list(fs: pafs.FileSystem, path: str) -> list[pafs.FileInfo]:
    try:
        return fs.get_file_info(pafs.FileSelector(path, recursive=False, allow_not_found=True))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _is_data_file(info: pafs.FileInfo) -> bool:
    return (
        info.type == pafs.FileType.File
        and info.base_name.endswith(".parquet")
        and not info.base_name.startswith((".", "_"))
    )


def _serialize(table: pa.Table, sink: Any) -> None:
    pq.write_table(table, sink, compression="zstd")


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _read_file(fs: pafs.FileSystem, path: str, table: str) -> pa.Table | None:
    """Read one parquet file and conform it to the file schema; None (+warning) if unreadable."""
    try:
        with fs.open_input_file(path) as f:
            raw = pq.read_table(f)
        return _conform(raw, table, strict=False)
    except Exception as e:  # corrupt/truncated/foreign file: skip, never break a load
        warnings.warn(f"skipping unreadable results file {path}: {type(e).__name__}: {e}", ResultsReadWarning, stacklevel=3)
        return None


def _sweep_from_dirname(name: str) -> str | None:
    prefix = PARTITION_KEY + "="
    return name[len(prefix):] if name.startswith(prefix) else None


def _apply_filters(t: pa.Table, table: str, filters: Mapping[str, Any]) -> pa.Table:
    schema = _SCHEMAS[table]
    for key, value in filters.items():
        if key not in schema.names:
            raise ValueError(f"unknown filter column {key!r} for table {table!r}; columns are {schema.names}")
        if t.num_rows == 0:
            continue
        typ = schema.field(key).type
        col = t.column(key)
        if isinstance(value, (list, tuple, set, frozenset, np.ndarray, pd.Series, pd.Index)):
            vals = pa.array(list(value)).cast(typ) if len(value) else pa.array([], type=typ)
            mask = pc.is_in(col, value_set=vals)
        else:
            mask = pc.equal(col, pa.scalar(value).cast(typ))
        t = t.filter(pc.fill_null(mask, False))
    return t


def _with_sweep(t: pa.Table, sweep_id: str | None, table: str) -> pa.Table:
    val = "" if sweep_id is None else sweep_id
    col = pa.array([val] * t.num_rows, type=pa.string())
    return t.add_column(0, pa.field(PARTITION_KEY, pa.string(), nullable=False), col).cast(_SCHEMAS[table])


def _to_frame(tables: list[pa.Table], table: str) -> pd.DataFrame:
    schema = _SCHEMAS[table]
    if not tables:
        return empty_frame(schema)
    t = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    return t.to_pandas().reset_index(drop=True)


# --------------------------------------------------------------------------
# Store
# --------------------------------------------------------------------------


class PartsCheck(NamedTuple):
    """Verified parts of a sweep: ``done`` (readable, expected rows), ``bad`` (part -> why not)."""

    done: frozenset
    bad: dict


class ResultsStore:
    """A results root: a local path or any pyarrow filesystem URI."""

    def __init__(self, root: str | os.PathLike):
        self.root = root
        self._fs, self._base, self._local = _resolve(root)
        self._checked: dict[tuple, tuple[int | None, str | None]] = {}  # file version -> (rows, error)

    @classmethod
    def _from_fs(cls, fs: pafs.FileSystem, base: str, root: Any = None) -> "ResultsStore":
        self = cls.__new__(cls)
        self.root = root if root is not None else base
        self._fs, self._base = fs, base
        self._local = isinstance(fs, pafs.LocalFileSystem)
        self._checked = {}
        return self

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.root)!r})"

    def check_writable(self) -> None:
        """Raise :class:`ResultsRootError` (one line naming the root and the fix) unless this root is,
        or can be created as, a directory this process can write in. Checked before anything starts;
        creates nothing (a probe file is written and removed in the nearest existing directory)."""
        if not self._local:
            return  # object stores: their credentials and buckets are checked by the first write
        path = Path(self._base)
        existing = next(p for p in (path, *path.parents) if p.exists())
        if not existing.is_dir():
            raise ResultsRootError(f"--results {self.root}: {existing} is a file, not a directory; pass a directory")
        try:
            probe = existing / f".mutransfer-write-test-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise ResultsRootError(f"--results {self.root}: cannot write there ({e.strerror or e}); pass a "
                                   "directory you can write to") from None

    def check_readable(self) -> None:
        """Raise :class:`ResultsRootError` if this local root exists but is not a directory."""
        if self._local and Path(self._base).exists() and not Path(self._base).is_dir():
            raise ResultsRootError(f"--results {self.root}: is a file, not a results directory")

    @property
    def filesystem(self) -> pafs.FileSystem:
        return self._fs

    @property
    def base_path(self) -> str:
        return self._base

    # -- paths --------------------------------------------------------------
    def partition_dir(self, table: str, sweep_id: str) -> str:
        _table_name(table)
        validate_name(sweep_id, "sweep id")
        return _join(self._base, table, f"{PARTITION_KEY}={sweep_id}")

    def part_path(self, table: str, sweep_id: str, part: str) -> str:
        validate_name(part, "part")
        return _join(self.partition_dir(table, sweep_id), f"{part}.parquet")

    # -- writing ------------------------------------------------------------
    def _write_atomic(self, table: pa.Table, path: str) -> None:
        directory = _dirname(path)
        self._fs.create_dir(directory, recursive=True)
        if self._local:
            tmp = _join(directory, f".{_basename(path)}.{uuid.uuid4().hex}.tmp")
            try:
                with open(tmp, "wb") as f:
                    _serialize(table, f)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            _fsync_dir(directory)
        else:
            # Object store: no atomic rename. Serialize fully in memory, then
            # write the final key exactly once (object appears on close).
            buf = pa.BufferOutputStream()
            _serialize(table, buf)
            data = buf.getvalue()
            with self._fs.open_output_stream(path) as out:
                out.write(data)

    def _delete(self, path: str) -> bool:
        try:
            self._fs.delete_file(path)
            return True
        except (FileNotFoundError, OSError):
            return False

    def write_part(
        self,
        sweep_id: str,
        part: str,
        runs: pd.DataFrame | pa.Table,
        curves: pd.DataFrame | pa.Table | None,
    ) -> None:
        """Validate, then write curves (if any) and finally the runs file (commit marker)."""
        validate_name(sweep_id, "sweep id")
        validate_name(part, "part")
        if runs is None:
            raise ValueError("runs table is required")
        _check_sweep_column(runs, sweep_id, "runs")
        runs_t = _conform(runs, "runs")
        _validate_runs(runs_t)
        curves_t = None
        if curves is not None:
            _check_sweep_column(curves, sweep_id, "curves")
            curves_t = _conform(curves, "curves")
            unknown = set(curves_t.column("run_id").to_pylist()) - set(runs_t.column("run_id").to_pylist())
            if unknown:
                raise ValueError(f"curves: run_id(s) {sorted(unknown)[:10]} not present in runs")
        runs_path = self.part_path("runs", sweep_id, part)
        curves_path = self.part_path("curves", sweep_id, part)
        if curves_t is not None:
            self._write_atomic(curves_t, curves_path)
        else:
            self._delete(curves_path)  # stale curves of a previous attempt
        self._write_atomic(runs_t, runs_path)

    # -- diagnostics tables (one file per analysis; columns depend on the kind) ---------------
    def _analysis_dir(self, sweep_id: str) -> str:
        validate_name(sweep_id, "sweep id")
        return _join(self._base, ANALYSES_DIR, f"{PARTITION_KEY}={sweep_id}")

    def write_analysis(self, sweep_id: str, name: str, df: pd.DataFrame) -> None:
        """Write one analysis result (``ROOT/analyses/sweep_id=<id>/<name>.parquet``) atomically."""
        validate_name(name, "analysis name")
        table = pa.Table.from_pandas(df, preserve_index=False)
        self._write_atomic(table, _join(self._analysis_dir(sweep_id), f"{name}.parquet"))

    def analyses(self, sweep_id: str) -> list[str]:
        """Names of the finished analyses of a sweep."""
        infos = _list(self._fs, self._analysis_dir(sweep_id))
        return sorted(_basename(i.path)[: -len(".parquet")] for i in infos
                      if _is_data_file(i) and i.path.endswith(".parquet"))

    def load_analysis(self, sweep_id: str, name: str) -> pd.DataFrame:
        validate_name(name, "analysis name")
        path = _join(self._analysis_dir(sweep_id), f"{name}.parquet")
        with self._fs.open_input_file(path) as f:
            return pq.read_table(f).to_pandas()

    # -- listing ------------------------------------------------------------
    def sweeps(self) -> list[str]:
        """Sweep ids present under this root (runs or curves)."""
        out: set[str] = set()
        for table in TABLES:
            for info in _list(self._fs, _join(self._base, table)):
                if info.type != pafs.FileType.Directory:
                    continue
                sid = _sweep_from_dirname(info.base_name)
                if sid is not None and _NAME_RE.fullmatch(sid):
                    out.add(sid)
        return sorted(out)

    def _data_infos(self, table: str, sweep_id: str) -> dict[str, pafs.FileInfo]:
        """part name -> file info for the visible parquet files of one partition."""
        infos = {}
        for info in _list(self._fs, self.partition_dir(table, sweep_id)):
            if _is_data_file(info):
                infos[info.base_name[: -len(".parquet")]] = info
        return dict(sorted(infos.items()))

    def _data_files(self, table: str, sweep_id: str) -> dict[str, str]:
        """part name -> path for the visible parquet files of one partition."""
        return {part: info.path for part, info in self._data_infos(table, sweep_id).items()}

    def completed_parts(self, sweep_id: str) -> set[str]:
        """Parts whose runs file exists (ignores temp/dot files). Unverified: deciding what is done
        (and so never recomputed) goes through :meth:`verify_parts`."""
        return set(self._data_files("runs", sweep_id))

    # -- verification ---------------------------------------------------------
    def _check_file(self, info: pafs.FileInfo, table: str) -> tuple[int | None, str | None]:
        """(rows, None) when the whole file reads and conforms to the table's schema, else
        (None, why). Cached per file version (path, size, mtime), so a part is read once."""
        key = (info.path, info.size, info.mtime_ns)
        hit = self._checked.get(key)
        if hit is not None:
            return hit
        try:
            with self._fs.open_input_file(info.path) as f:
                t = _conform(pq.read_table(f), table, strict=False)
            if table == "runs":
                _validate_runs(t)
            result = (t.num_rows, None)
        except Exception as e:  # truncated, corrupt, foreign: all mean "not done"
            result = (None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300])
        if len(self._checked) > 100_000:
            self._checked.clear()
        self._checked[key] = result
        return result

    def verify_parts(self, sweep_id: str, expected_rows: Mapping[str, int] | None = None) -> PartsCheck:
        """Which parts of a sweep are really done: the runs file reads in full with the expected
        number of rows (``expected_rows[part]``, from the plan, when given) and the curves file, if
        any, reads in full. Everything else is listed in ``bad`` with the reason."""
        curves = self._data_infos("curves", sweep_id)
        done, bad = set(), {}
        for part, info in self._data_infos("runs", sweep_id).items():
            rows, err = self._check_file(info, "runs")
            want = None if expected_rows is None else expected_rows.get(part)
            if err is not None:
                bad[part] = f"runs file unreadable ({err})"
            elif want is not None and rows != want:
                bad[part] = f"runs file has {rows} rows, expected {want}"
            elif part in curves and (cerr := self._check_file(curves[part], "curves")[1]) is not None:
                bad[part] = f"curves file unreadable ({cerr})"
            else:
                done.add(part)
        return PartsCheck(frozenset(done), bad)

    def quarantine(self, sweep_id: str, part: str, reason: str) -> str:
        """Move a bad part's files out of the tables (so it is recomputed and no reader sees it);
        returns the directory they went to. The reason is kept beside them."""
        validate_name(part, "part")
        stamp = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"
        target = _join(self._base, QUARANTINE_DIR, f"{PARTITION_KEY}={sweep_id}")
        self._fs.create_dir(target, recursive=True)
        for table in ("runs", "curves"):  # runs first: it is the commit marker
            src = self.part_path(table, sweep_id, part)
            if self._fs.get_file_info(src).type == pafs.FileType.File:
                self._fs.move(src, _join(target, f"{table}-{part}.{stamp}.parquet"))
        with self._fs.open_output_stream(_join(target, f"{part}.{stamp}.reason.txt")) as out:
            out.write(reason.encode())
        return target

    # -- reading ------------------------------------------------------------
    def _sweep_list(self, sweep_id: str | None) -> list[str]:
        if sweep_id is None:
            return self.sweeps()
        return [validate_name(sweep_id, "sweep id")]

    def _load(self, table: str, sweep_id: str | None, filters: Mapping[str, Any]) -> pd.DataFrame:
        tables = []
        for sid in self._sweep_list(sweep_id):
            files = self._data_files(table, sid)
            if table == "curves":
                done = self.completed_parts(sid)
                files = {k: v for k, v in files.items() if k in done}
            for path in files.values():
                t = _read_file(self._fs, path, table)
                if t is None:
                    continue
                t = _apply_filters(_with_sweep(t, sid, table), table, filters)
                if t.num_rows:
                    tables.append(t)
        if not tables:
            # still validate filter names
            _apply_filters(_SCHEMAS[table].empty_table(), table, filters)
        return _to_frame(tables, table)

    def load_runs(self, sweep_id: str | None = None, **filters: Any) -> pd.DataFrame:
        """Runs of one sweep (or all sweeps); filters: ``column=value`` or ``column=[values]``."""
        return self._load("runs", sweep_id, filters)

    def load_curves(
        self, sweep_id: str | None = None, run_ids: Iterable[str] | str | None = None, **filters: Any
    ) -> pd.DataFrame:
        """Curves of complete parts of one sweep (or all sweeps), optionally for given run ids."""
        if run_ids is not None:
            if "run_id" in filters:
                raise ValueError("pass either run_ids or run_id, not both")
            filters["run_id"] = [run_ids] if isinstance(run_ids, str) else list(run_ids)
        return self._load("curves", sweep_id, filters)

    def load_table(self, table: str = "runs", sweep_id: str | None = None, **filters: Any) -> pd.DataFrame:
        return self._load(_table_name(table), sweep_id, filters)

    # -- maintenance ----------------------------------------------------------
    def remove_stray_temp_files(self, sweep_id: str, *, min_age_s: float = 0.0) -> int:
        """Delete leftover dot-prefixed temp files of a sweep; returns how many.

        Only call when no writer is active for the sweep, or pass ``min_age_s``
        to only remove temp files older than that (by mtime).
        """
        import time

        now = time.time()
        removed = 0
        for table in TABLES:
            for info in _list(self._fs, self.partition_dir(table, sweep_id)):
                if info.type != pafs.FileType.File or not info.base_name.startswith("."):
                    continue
                if min_age_s > 0 and info.mtime is not None:
                    if now - info.mtime.timestamp() < min_age_s:
                        continue
                if self._delete(info.path):
                    removed += 1
        return removed


# --------------------------------------------------------------------------
# Module-level loading
# --------------------------------------------------------------------------


RESULTS_ENV = "MUTRANSFER_RESULTS"
RESULTS_DEFAULT = "results"  # relative to the working directory, as the README's commands assume


def default_results_root() -> Path:
    """The one results-root rule (CLI, service, :func:`load`): ``$MUTRANSFER_RESULTS`` when set,
    else ``./results`` in the working directory (absolute).

    A URI value of ``$MUTRANSFER_RESULTS`` (containing ``://``) is returned
    unchanged as a string, since ``Path`` would mangle it.
    """
    env = os.environ.get(RESULTS_ENV)
    if env:
        if "://" in env:
            return env  # type: ignore[return-value]
        return Path(env).expanduser().absolute()
    return Path.cwd() / RESULTS_DEFAULT


# The settings of a run that the curves table carries too (so a user groups curves without a join).
CURVE_SETTINGS: tuple[str, ...] = ("algorithm", "parametrization", "activation", "dataset", "width", "depth",
                                   "weight_lr", "activity_lr", "seed", "status")


def with_settings(curves: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """``curves`` with each run's settings (:data:`CURVE_SETTINGS`) from ``runs``, joined on
    ``run_id``, placed after ``run_id``; columns the curves already have are kept as they are."""
    if "run_id" not in curves.columns or "run_id" not in runs.columns:
        return curves
    cols = [c for c in CURVE_SETTINGS if c in runs.columns and c not in curves.columns]
    if not cols:
        return curves
    settings = runs[["run_id", *cols]].drop_duplicates("run_id")
    out = curves.merge(settings, on="run_id", how="left", sort=False)
    head = [c for c in curves.columns if c in ("sweep_id", "run_id")]
    return out[head + cols + [c for c in curves.columns if c not in head]]


def _load_http(url: str) -> pd.DataFrame:
    """A table from this project's HTTP API (``http://HOST/sweeps/ID/runs`` or ``.../curves``,
    filters as query parameters): Parquet, or a ``ValueError`` carrying the server's one-line
    message for a refused request (e.g. 422 naming the bad parameter)."""
    import io
    import json as _json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, headers={"Accept": "application/vnd.apache.parquet, application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            body = resp.read()
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            msg = _json.loads(raw).get("message") or raw.decode(errors="replace")[:300]
        except (ValueError, AttributeError):
            msg = raw.decode(errors="replace")[:300]
        raise ValueError(f"{url}: HTTP {e.code}: {msg}") from None
    except urllib.error.URLError as e:
        raise ConnectionError(f"{url}: cannot reach the server ({e.reason}); is `mutransfer serve` running?") from None
    return pd.read_parquet(io.BytesIO(body))


def _read_raw_files(fs: pafs.FileSystem, paths: list[str], table: str, sweep_id: str | None) -> pd.DataFrame:
    tables = []
    for p in paths:
        t = _read_file(fs, p, table)
        if t is not None:
            tables.append(_with_sweep(t, sweep_id, table))
    return _to_frame(tables, table)


def _load_path(fs: pafs.FileSystem, path: str, info: pafs.FileInfo, table: str, original: Any) -> pd.DataFrame:
    name = _basename(path)
    if info.type == pafs.FileType.File:
        parent = _dirname(path)
        sid = _sweep_from_dirname(_basename(parent))
        tname = _basename(_dirname(parent)) if sid is not None else ""
        if tname in TABLES:
            table = tname
        return _read_raw_files(fs, [path], table, sid)
    sid = _sweep_from_dirname(name)
    if sid is not None:  # partition dir
        parent = _dirname(path)
        tname = _basename(parent)
        if tname in TABLES and _NAME_RE.fullmatch(sid):
            store = ResultsStore._from_fs(fs, _dirname(parent))
            return store.load_table(tname, sid)
        files = sorted(i.path for i in _list(fs, path) if _is_data_file(i))
        return _read_raw_files(fs, files, table, sid)
    if name in TABLES:  # table dir
        return ResultsStore._from_fs(fs, _dirname(path)).load_table(name)
    children = {i.base_name for i in _list(fs, path) if i.type == pafs.FileType.Directory}
    if children & set(TABLES):  # results root
        return ResultsStore._from_fs(fs, path, original).load_table(table)
    files = sorted(i.path for i in _list(fs, path) if _is_data_file(i))
    if files:  # a plain directory of parquet files
        return _read_raw_files(fs, files, table, None)
    raise FileNotFoundError(f"{original!s} is not a results root, table dir, partition dir or parquet file")


def load(
    sweep_id_or_path: str | os.PathLike,
    *,
    table: str = "runs",
    root: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Load a results table.

    An ``http(s)://`` URL of the service's tables (``.../sweeps/ID/runs``, ``.../curves``, with
    filters) is fetched; a refused request raises ``ValueError`` with the server's one-line message
    (pandas' own ``read_parquet(url)`` only says "HTTP Error 422").

    If ``sweep_id_or_path`` is an existing path or a filesystem URI (a results
    root, a table dir, a ``sweep_id=...`` partition dir or a single parquet
    file) it is read directly (the table is inferred from the layout where
    possible, else ``table``).  Otherwise it is a sweep id under ``root``
    (default :func:`default_results_root`).  ``sweep_id`` is always returned as
    a plain string column.
    """
    _table_name(table)
    target = sweep_id_or_path
    if isinstance(target, str) and target.startswith(("http://", "https://")):
        return _load_http(target)
    if isinstance(target, str) and "://" in target:
        fs, path, _ = _resolve(target)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"no such results path: {target}")
        return _load_path(fs, path, info, table, target)
    p = Path(os.fspath(target)).expanduser()
    if p.exists():
        fs = pafs.LocalFileSystem()
        path = p.absolute().as_posix()
        return _load_path(fs, path, fs.get_file_info(path), table, target)
    if not isinstance(target, str) or not _NAME_RE.fullmatch(target):
        raise FileNotFoundError(f"{target!s} is neither an existing results path nor a valid sweep id")
    store = ResultsStore(root if root is not None else default_results_root())
    known = store.sweeps()
    if target not in known:
        listing = ", ".join(known) if known else "(none)"
        raise UnknownSweepError(f"unknown sweep {target!r} in results root {store.root!s}; known sweeps: {listing}")
    df = store.load_table(table, target)
    if table == "curves":  # with each run's settings, as the HTTP API serves it
        df = with_settings(df, store.load_table("runs", target))
    return df
