"""Tests for mutransfer.results (real Parquet files under tmp_path)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from mutransfer import results
from mutransfer.results import (
    CURVES_SCHEMA,
    RUN_STATUSES,
    RUNS_SCHEMA,
    ResultsReadWarning,
    ResultsStore,
    empty_frame,
    load,
    part_name,
)


def make_runs(n: int = 2, *, cell: str = "c0", width: int = 64, prefix: str = "r") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": [f"{prefix}{cell}-{i}" for i in range(n)],
            "cell_id": [cell] * n,
            "algorithm": ["pc"] * n,
            "parametrization": ["mupc"] * n,
            "width": [width] * n,
            "depth": [4] * n,
            "activation": ["relu"] * n,
            "dataset": ["mnist"] * n,
            "weight_lr": [10.0 ** -(i + 1) for i in range(n)],
            "activity_lr": [np.nan] + [0.5] * (n - 1),
            "seed": list(range(n)),
            "status": ["ok"] + ["diverged"] * (n - 1),
            "min_train_loss": [0.1] + [np.inf] * (n - 1),
            "min_train_loss_25pct": [0.3] + [np.inf] * (n - 1),
            "min_train_loss_50pct": [0.2] + [np.inf] * (n - 1),
            "final_train_loss": [0.2] + [np.nan] * (n - 1),
            "best_test_acc": [0.9] * n,
            "final_test_acc": [0.85] * n,
            "steps": [100] * n,
            "wall_s": [1.5] * n,
            "diverged_step": [-1] + [7] * (n - 1),
            "diverge_reason": [""] + ["loss"] * (n - 1),
            "diverge_step": [-1] + [7] * (n - 1),
            "mutransfer_version": ["0.1.0"] * n,
            "jax_version": ["0.4.30"] * n,
            "spec_hash": ["abc123"] * n,
        }
    )


def make_curves(runs: pd.DataFrame, steps: int = 3) -> pd.DataFrame:
    rows = []
    for rid in runs["run_id"]:
        for s in range(steps):
            rows.append(
                {
                    "run_id": rid,
                    "step": s * 10,
                    "epoch": s,
                    "train_loss": 1.0 / (s + 1),
                    "energy_start": np.nan,
                    "energy_end": np.inf if s == 2 else 0.5,
                    "test_loss": np.nan if s == 0 else 0.3,
                    "test_acc": np.nan if s == 0 else 0.8,
                }
            )
    return pd.DataFrame(rows)


def visible_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]


# ----------------------------------------------------------------------------


def test_schemas_pinned():
    assert RUNS_SCHEMA.field("width").type == pa.int32()
    assert RUNS_SCHEMA.field("depth").type == pa.int32()
    assert RUNS_SCHEMA.field("seed").type == pa.int32()
    assert RUNS_SCHEMA.field("steps").type == pa.int64()
    assert RUNS_SCHEMA.field("diverged_step").type == pa.int64()
    assert RUNS_SCHEMA.field("activity_lr").type == pa.float64()
    assert RUNS_SCHEMA.field("sweep_id").type == pa.string()
    assert CURVES_SCHEMA.field("step").type == pa.int64()
    assert CURVES_SCHEMA.field("epoch").type == pa.int32()
    assert RUNS_SCHEMA.names[0] == CURVES_SCHEMA.names[0] == "sweep_id"
    assert RUN_STATUSES == ("ok", "diverged", "failed")
    # sweep_id is never stored inside the files
    assert "sweep_id" not in results.file_schema("runs").names
    assert "sweep_id" not in results.file_schema("curves").names


def test_empty_frame_and_missing_store(tmp_path):
    ef = empty_frame("runs")
    assert list(ef.columns) == RUNS_SCHEMA.names and len(ef) == 0
    assert ef["width"].dtype == np.int32
    store = ResultsStore(tmp_path / "nothing")
    assert store.sweeps() == []
    assert store.completed_parts("s") == set()
    df = store.load_runs()
    assert list(df.columns) == RUNS_SCHEMA.names and len(df) == 0
    assert df["width"].dtype == np.int32
    c = store.load_curves("nope")
    assert list(c.columns) == CURVES_SCHEMA.names and len(c) == 0


def test_round_trip_types_nan_inf(tmp_path):
    store = ResultsStore(tmp_path)
    runs = make_runs(3)
    curves = make_curves(runs)
    store.write_part("sweep-a", "cell-c0", runs, curves)

    assert (tmp_path / "runs" / "sweep_id=sweep-a" / "cell-c0.parquet").is_file()
    assert (tmp_path / "curves" / "sweep_id=sweep-a" / "cell-c0.parquet").is_file()

    got = store.load_runs("sweep-a")
    assert list(got.columns) == RUNS_SCHEMA.names
    assert len(got) == 3
    assert got["width"].dtype == np.int32
    assert got["depth"].dtype == np.int32
    assert got["seed"].dtype == np.int32
    assert got["steps"].dtype == np.int64
    assert got["diverged_step"].dtype == np.int64
    assert got["weight_lr"].dtype == np.float64
    assert pd.api.types.is_string_dtype(got["sweep_id"])
    assert not isinstance(got["sweep_id"].dtype, pd.CategoricalDtype)
    assert (got["sweep_id"] == "sweep-a").all()
    got = got.sort_values("run_id").reset_index(drop=True)
    assert math.isnan(got.loc[0, "activity_lr"])
    assert got.loc[1, "activity_lr"] == 0.5
    assert np.isinf(got.loc[1, "min_train_loss"])
    assert math.isnan(got.loc[1, "final_train_loss"])
    pd.testing.assert_frame_equal(
        got.drop(columns="sweep_id"),
        runs.sort_values("run_id").reset_index(drop=True).astype({"width": "int32", "depth": "int32", "seed": "int32"}),
        check_dtype=False,
    )

    # NaN is stored as a NaN value, not as a null, in the file itself
    raw = pq.read_table(tmp_path / "runs" / "sweep_id=sweep-a" / "cell-c0.parquet")
    assert raw.schema.field("width").type == pa.int32()
    assert raw.column("activity_lr").null_count == 0
    assert "sweep_id" not in raw.column_names

    gc = store.load_curves("sweep-a")
    assert list(gc.columns) == CURVES_SCHEMA.names
    assert len(gc) == 9
    assert gc["step"].dtype == np.int64 and gc["epoch"].dtype == np.int32
    assert gc["energy_start"].isna().all()
    assert np.isinf(gc["energy_end"]).sum() == 3
    assert gc["test_acc"].isna().sum() == 3
    assert (gc["sweep_id"] == "sweep-a").all()

    one = store.load_curves("sweep-a", run_ids=[runs.run_id[0]])
    assert set(one["run_id"]) == {runs.run_id[0]} and len(one) == 3
    assert len(store.load_curves("sweep-a", run_ids=runs.run_id[1])) == 3


def test_arrow_table_input_and_defaults(tmp_path):
    store = ResultsStore(tmp_path)
    runs = make_runs(2).drop(columns=["activity_lr", "diverged_step", "mutransfer_version", "jax_version", "wall_s"])
    store.write_part("s", "p", pa.Table.from_pandas(runs, preserve_index=False), None)
    got = store.load_runs("s")
    assert got["activity_lr"].isna().all()
    assert (got["diverged_step"] == -1).all()
    assert got["mutransfer_version"].notna().all()
    assert len(store.load_curves("s")) == 0


def test_pd_read_parquet_whole_dataset_has_sweep_id(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_part("sweep-a", "cell-c0", make_runs(2), make_curves(make_runs(2)))
    store.write_part("sweep-b", "cell-c0", make_runs(3), None)
    # a crashed writer's temp file must be ignored by pyarrow's discovery
    (tmp_path / "runs" / "sweep_id=sweep-a" / ".cell-c1.parquet.deadbeef.tmp").write_bytes(b"garbage")
    (tmp_path / "runs" / "sweep_id=sweep-a" / ".cell-c2.parquet").write_bytes(b"garbage")

    df = pd.read_parquet(str(tmp_path / "runs"))
    assert "sweep_id" in df.columns
    assert sorted(df["sweep_id"].astype(str).unique()) == ["sweep-a", "sweep-b"]
    assert len(df) == 5
    assert df["width"].dtype == np.int32

    # one partition directory read directly also works (no key conflict)
    part = pd.read_parquet(str(tmp_path / "runs" / "sweep_id=sweep-a"))
    assert len(part) == 2
    curves = pd.read_parquet(str(tmp_path / "curves"))
    assert "sweep_id" in curves.columns and len(curves) == 6

    # load() on a partition directory yields sweep_id as a plain string column
    lp = load(tmp_path / "runs" / "sweep_id=sweep-a")
    assert list(lp.columns) == RUNS_SCHEMA.names
    assert (lp["sweep_id"] == "sweep-a").all() and len(lp) == 2


def test_two_sweeps_filtering(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_part("s1", part_name("w64"), make_runs(2, cell="w64", width=64), None)
    store.write_part("s1", part_name("w128"), make_runs(2, cell="w128", width=128), None)
    store.write_part("s2", part_name("w64", 0), make_runs(3, cell="w64", width=64, prefix="x"), None)
    store.write_part("s2", part_name("w64", 1), make_runs(1, cell="w256", width=256, prefix="y"), None)

    assert store.sweeps() == ["s1", "s2"]
    assert len(store.load_runs()) == 8
    assert len(store.load_runs("s1")) == 4
    assert set(store.load_runs("s2")["sweep_id"]) == {"s2"}
    assert len(store.load_runs("s1", width=64)) == 2
    assert len(store.load_runs(width=64)) == 5
    assert len(store.load_runs(width=[128, 256])) == 3
    assert len(store.load_runs("s2", width=[128])) == 0
    assert len(store.load_runs(status="ok", width=64)) == 2
    assert len(store.load_runs(weight_lr=0.1)) == 4
    with pytest.raises(ValueError, match="nope"):
        store.load_runs(nope=1)


def test_completed_parts_and_overwrite(tmp_path):
    store = ResultsStore(tmp_path)
    assert store.completed_parts("s") == set()
    store.write_part("s", "cell-a", make_runs(1, cell="a"), None)
    store.write_part("s", "cell-b-chunk-0", make_runs(1, cell="b"), None)
    pdir = tmp_path / "runs" / "sweep_id=s"
    (pdir / ".cell-c.parquet.123.tmp").write_bytes(b"partial")
    (pdir / "notes.txt").write_text("stray")
    assert store.completed_parts("s") == {"cell-a", "cell-b-chunk-0"}
    # re-writing a part replaces it
    store.write_part("s", "cell-a", make_runs(3, cell="a"), None)
    assert len(store.load_runs("s", cell_id="a")) == 3
    assert store.remove_stray_temp_files("s") == 1
    assert not (pdir / ".cell-c.parquet.123.tmp").exists()
    assert store.completed_parts("s") == {"cell-a", "cell-b-chunk-0"}


def test_curves_of_incomplete_parts_ignored(tmp_path):
    store = ResultsStore(tmp_path)
    runs = make_runs(2)
    store.write_part("s", "cell-c0", runs, make_curves(runs))
    # a crash after the curves file was written but before the runs commit marker
    other = make_runs(1, cell="c1")
    store._write_atomic(results._conform(make_curves(other), "curves"), store.part_path("curves", "s", "cell-c1"))
    assert store.completed_parts("s") == {"cell-c0"}
    assert set(store.load_curves("s")["run_id"]) == set(runs["run_id"])
    # re-writing a part without curves drops its stale curves file
    store.write_part("s", "cell-c0", runs, None)
    assert not (tmp_path / "curves" / "sweep_id=s" / "cell-c0.parquet").exists()
    assert len(store.load_curves("s")) == 0


def test_temp_and_truncated_files_skipped(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_part("s", "cell-good", make_runs(2), None)
    pdir = tmp_path / "runs" / "sweep_id=s"
    good = (pdir / "cell-good.parquet").read_bytes()
    (pdir / "cell-trunc.parquet").write_bytes(good[: len(good) // 2])  # truncated, no dot prefix
    (pdir / ".cell-tmp.parquet").write_bytes(good[:10])
    (pdir / "_SUCCESS").write_bytes(b"")
    (pdir / "README.txt").write_text("stray")

    with pytest.warns(ResultsReadWarning, match="cell-trunc.parquet"):
        df = store.load_runs("s")
    assert len(df) == 2
    with pytest.warns(ResultsReadWarning, match="cell-trunc.parquet"):
        df2 = load("s", root=tmp_path)
    assert len(df2) == 2
    with pytest.warns(ResultsReadWarning):
        assert len(load(tmp_path)) == 2


def test_foreign_parquet_file_skipped(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_part("s", "cell-good", make_runs(1), None)
    pq.write_table(pa.table({"x": [1]}), tmp_path / "runs" / "sweep_id=s" / "foreign.parquet")
    with pytest.warns(ResultsReadWarning, match="foreign.parquet"):
        assert len(store.load_runs("s")) == 1


def test_write_is_atomic_on_failure(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)
    store.write_part("s", "cell-a", make_runs(1, cell="a"), None)
    before = sorted(visible_files(tmp_path))

    created = []

    def failing_write_table(table, where, **kwargs):
        # simulate a crash mid-write: some bytes reach the temp file, then fail
        created.append(getattr(where, "name", where))
        where.write(b"PAR1 partial garbage")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(results.pq, "write_table", failing_write_table)
    with pytest.raises(OSError, match="simulated"):
        store.write_part("s", "cell-b", make_runs(1, cell="b"), make_curves(make_runs(1, cell="b")))
    monkeypatch.undo()

    assert created and all(Path(str(c)).name.startswith(".") for c in created)
    assert sorted(visible_files(tmp_path)) == before
    assert not any(p.name.startswith(".") for p in tmp_path.rglob("*") if p.is_file())
    assert store.completed_parts("s") == {"cell-a"}
    assert len(store.load_runs("s")) == 1


def test_runs_failure_after_curves_leaves_part_incomplete(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)
    real = results._serialize
    calls = []

    def flaky(table, sink):
        calls.append(table)
        if len(calls) == 2:  # second file (runs, the commit marker) fails
            raise RuntimeError("crash before commit")
        real(table, sink)

    monkeypatch.setattr(results, "_serialize", flaky)
    runs = make_runs(1)
    with pytest.raises(RuntimeError):
        store.write_part("s", "cell-c0", runs, make_curves(runs))
    assert store.completed_parts("s") == set()
    assert len(store.load_curves("s")) == 0
    assert len(store.load_runs("s")) == 0


@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden", "", "a\\b", "x y", "..", "/abs", "a:b", "é"])
def test_bad_names_rejected(tmp_path, bad):
    store = ResultsStore(tmp_path)
    with pytest.raises(ValueError):
        store.write_part(bad, "cell-a", make_runs(1), None)
    with pytest.raises(ValueError):
        store.write_part("ok", bad, make_runs(1), None)
    with pytest.raises(ValueError):
        store.completed_parts(bad)
    assert visible_files(tmp_path) == []


def test_validation_errors(tmp_path):
    store = ResultsStore(tmp_path)
    with pytest.raises(ValueError, match="spec_hash"):
        store.write_part("s", "p", make_runs(1).drop(columns="spec_hash"), None)
    with pytest.raises(ValueError, match="width"):
        store.write_part("s", "p", make_runs(1).drop(columns="width"), None)
    with pytest.raises(ValueError, match="bogus"):
        store.write_part("s", "p", make_runs(1).assign(bogus=1), None)
    with pytest.raises(ValueError, match="status"):
        store.write_part("s", "p", make_runs(1).assign(status="weird"), None)
    with pytest.raises(ValueError, match="width"):
        store.write_part("s", "p", make_runs(2).assign(width=[64.0, np.nan]), None)
    with pytest.raises(ValueError, match="width"):
        store.write_part("s", "p", make_runs(1).assign(width=64.5), None)
    with pytest.raises(ValueError, match="run_id"):
        store.write_part("s", "p", pd.concat([make_runs(1), make_runs(1)]), None)
    with pytest.raises(ValueError, match="sweep_id"):
        store.write_part("s", "p", make_runs(1).assign(sweep_id="other"), None)
    runs = make_runs(1)
    with pytest.raises(ValueError, match="step"):
        store.write_part("s", "p", runs, make_curves(runs).drop(columns="step"))
    with pytest.raises(ValueError, match="not present in runs"):
        store.write_part("s", "p", runs, make_curves(make_runs(1, cell="zz")))
    assert visible_files(tmp_path) == []
    # a matching sweep_id column is accepted (and not stored in the file)
    store.write_part("s", "p", runs.assign(sweep_id="s"), make_curves(runs).assign(sweep_id="s"))
    assert store.completed_parts("s") == {"p"}


def test_load_by_path_and_id(tmp_path, monkeypatch):
    root = tmp_path / "res"
    store = ResultsStore(root)
    runs = make_runs(2)
    store.write_part("s1", "cell-c0", runs, make_curves(runs))
    store.write_part("s2", "cell-c0", make_runs(1), None)

    assert len(load(root)) == 3  # results root
    assert len(load(str(root), table="curves")) == 6
    assert len(load(root / "runs")) == 3  # table dir
    assert len(load(root / "curves")) == 6  # table inferred from the dir
    assert len(load(root / "runs" / "sweep_id=s1")) == 2  # partition dir
    single = load(root / "curves" / "sweep_id=s1" / "cell-c0.parquet")  # single file
    assert len(single) == 6 and list(single.columns) == CURVES_SCHEMA.names
    assert (single["sweep_id"] == "s1").all()

    # by id
    assert len(load("s1", root=root)) == 2
    assert len(load("s1", root=root, table="curves")) == 6
    monkeypatch.setenv("MUTRANSFER_RESULTS", str(root))
    assert results.default_results_root() == root
    assert len(load("s2")) == 1
    with pytest.raises(KeyError) as ei:
        load("s3")
    assert "s1" in str(ei.value) and "s2" in str(ei.value) and "s3" in str(ei.value)
    with pytest.raises((KeyError, FileNotFoundError)):
        load("no/such/dir/anywhere")


def test_default_results_root(monkeypatch, tmp_path):
    """One rule for CLI, service and loader: $MUTRANSFER_RESULTS, else ./results (absolute)."""
    monkeypatch.delenv("MUTRANSFER_RESULTS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert results.default_results_root() == tmp_path / "results"
    monkeypatch.setenv("MUTRANSFER_RESULTS", "elsewhere")
    assert results.default_results_root() == tmp_path / "elsewhere"


def test_numeric_like_sweep_id_stays_string(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_part("001", "cell-a", make_runs(1), None)
    df = store.load_runs()
    assert df["sweep_id"].tolist() == ["001"]
    assert load(tmp_path / "runs")["sweep_id"].tolist() == ["001"]


def test_file_uri_root(tmp_path):
    uri = (tmp_path / "r").as_uri()
    fs, _ = pafs.FileSystem.from_uri(uri)
    assert isinstance(fs, pafs.LocalFileSystem)
    store = ResultsStore(uri)
    runs = make_runs(2)
    store.write_part("s", "cell-c0", runs, make_curves(runs))
    assert (tmp_path / "r" / "runs" / "sweep_id=s" / "cell-c0.parquet").is_file()
    assert store.completed_parts("s") == {"cell-c0"}
    assert len(store.load_curves("s")) == 6
    # readable through a plain-path store and through load(uri)
    assert len(ResultsStore(tmp_path / "r").load_runs("s")) == 2
    assert len(load(uri)) == 2
    assert len(load("s", root=uri)) == 2


def test_object_store_single_put(monkeypatch):
    # mock:// is an in-memory pyarrow filesystem without the local fast path:
    # exercises the "write final key once" branch.
    store = ResultsStore("mock:///bucket/prefix")
    assert not store._local
    opened = []
    moved = []

    class Spy:  # pyarrow filesystem types are immutable: wrap the instance
        def __init__(self, inner):
            self._inner = inner

        def open_output_stream(self, path, *a, **k):
            opened.append(path)
            return self._inner.open_output_stream(path, *a, **k)

        def move(self, src, dst):
            moved.append((src, dst))
            return self._inner.move(src, dst)

        def __getattr__(self, name):
            return getattr(self._inner, name)

    store._fs = Spy(store._fs)
    runs = make_runs(2)
    store.write_part("s", "cell-c0", runs, make_curves(runs))
    assert opened == [
        "bucket/prefix/curves/sweep_id=s/cell-c0.parquet",
        "bucket/prefix/runs/sweep_id=s/cell-c0.parquet",
    ]
    assert moved == []  # no temp object + rename on object stores
    assert store.sweeps() == ["s"]
    assert store.completed_parts("s") == {"cell-c0"}
    got = store.load_runs("s")
    assert len(got) == 2 and got["width"].dtype == np.int32
    assert len(store.load_curves("s", run_ids=[runs.run_id[0]])) == 3

    # failure while serializing: nothing is written to the object store
    def boom(table, sink):
        raise RuntimeError("boom")

    monkeypatch.setattr(results, "_serialize", boom)
    with pytest.raises(RuntimeError):
        store.write_part("s", "cell-c1", make_runs(1, cell="c1"), None)
    assert store.completed_parts("s") == {"cell-c0"}


def test_no_heavy_imports():
    import subprocess
    import sys

    code = (
        "import sys, mutransfer.results; "
        "bad=[m for m in ('jax','ray','fastapi') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_parts_written_before_the_budget_columns_read_them_as_nan(tmp_path):
    """Schema 2 added min_train_loss_25pct/_50pct; a part written without them still loads."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    old = make_runs(2).drop(columns=["min_train_loss_25pct", "min_train_loss_50pct"])
    part = tmp_path / "runs" / "sweep_id=old" / "cell-c0.parquet"
    part.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(old, preserve_index=False), part)
    store = ResultsStore(tmp_path)
    got = store.load_runs("old")
    assert list(got.columns) == RUNS_SCHEMA.names and len(got) == 2
    assert got["min_train_loss_25pct"].isna().all() and got["min_train_loss_50pct"].isna().all()
    assert store.verify_parts("old", {"cell-c0": 2}).done == {"cell-c0"}
    new = make_runs(2, prefix="n")
    store.write_part("new", "cell-c0", new, None)
    both = store.load_runs()
    assert both.groupby("sweep_id")["min_train_loss_50pct"].apply(lambda s: s.isna().all()).to_dict() == \
        {"new": False, "old": True}
