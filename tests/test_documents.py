"""Reading hostile documents and absurd specs: bounded, JSON-like, refused with one line naming the
place, never a traceback (issue 10 items 1-4), and the spec's JSON Schema (issue 13 item 5)."""

import json
from pathlib import Path

import pytest
import yaml

from sweeps.documents import DEFAULT_LIMITS, DocumentError, load_json, load_yaml
from sweeps.plan import plan
from sweeps.spec import MAX_RUNS, SpecError, count_runs, json_schema, load_spec, loads_spec, parse_spec

BASE = {"name": "doc", "parametrizations": ["mupc"], "widths": [8], "depths": [2], "weight_lrs": [0.1],
        "activity_lrs": [0.5], "dataset": {"name": "digits"}}

BOMB = "a: &a [1,1,1,1,1,1,1,1,1]\n" + "".join(
    f"{k}: &{k} [{', '.join([f'*{p}'] * 9)}]\n" for p, k in zip("abcdefgh", "bcdefghi"))


@pytest.mark.parametrize("doc,words", [
    ("name: x\nwhen: !!timestamp 2024-05-01\n", "the tag !!timestamp is not allowed"),
    ("a: !!set {x, y}\n", "the tag !!set is not allowed"),
    ("a: !!binary aGVsbG8=\n", "the tag !!binary is not allowed"),
    ("a: !!omap [b: 1]\n", "the tag !!omap is not allowed"),
    ("a: !!python/object/apply:os.system ['true']\n", "!!python/object/apply:os.system is not allowed"),
    ("a: &a [*a]\n", "recursive"),
    ("a: &a {b: *a}\n", "recursive"),
    (BOMB, "more than 5000 values"),
    ("a: " + "[" * 1000 + "]" * 1000, "nest"),
    ("".join(" " * i + f"k{i}:\n" for i in range(100)), "nested deeper than 32 levels"),
    ("a: 1\na: 2\n", "duplicate key 'a'"),
    ("a: 1\n---\nb: 2\n", "more than one document"),
    ("[1]: 2\n", "keys must be plain strings"),
    ("a: *nowhere\n", "unknown alias"),
    ("name: [unclosed", "not valid YAML"),
])
def test_hostile_yaml_is_refused_in_one_line(doc, words):
    # The bomb (9^9 values once expanded) is refused by the loader's value count while it is being
    # built — the message names the count — so it never expands; no wall-clock bound needed.
    with pytest.raises(DocumentError) as e:
        load_yaml(doc)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_yaml_is_json_like_and_yaml_12():
    got = load_yaml("d: 2024-05-01\nt: 2001-12-14t21:59:43.10-05:00\nlr: [1e-3, 5E2, 1.0e+1, .inf]\n"
                    "s: [yes, no, on, 017, 0x1f]\nq: '1e-3'\nbase: &b {x: 1, y: 2}\nm: {<<: *b, y: 3}\n")
    assert got["d"] == "2024-05-01" and isinstance(got["t"], str)
    assert got["lr"] == [0.001, 500.0, 10.0, float("inf")]
    assert got["s"] == ["yes", "no", "on", 17, 31] and got["q"] == "1e-3"
    assert got["m"] == {"x": 1, "y": 3}
    for f in sorted((Path(__file__).parent.parent / "sweeps" / "specs").glob("*.yaml")):  # unchanged meaning
        assert load_yaml(f.read_text()) == yaml.safe_load(f.read_text()), f


def test_size_limit_is_checked_before_parsing():
    big = "description: " + "x" * (DEFAULT_LIMITS.max_bytes + 1)
    with pytest.raises(DocumentError) as e:
        load_yaml(big)
    assert e.value.status == 413 and "MUTRANSFER_MAX_BODY_BYTES" in str(e.value)


@pytest.mark.parametrize("doc,words", [
    ('{"a": NaN}', "NaN is not JSON"), ('{"a": Infinity}', "Infinity is not JSON"),
    ('{"a": 1, "a": 2}', "duplicate key"), ("[" * 5000 + "]" * 5000, "nested deeper"),
    ('{"a": [' + "1," * 30000 + "1]}", "more than 5000 values"), ('{"a": ', "not valid JSON"),
])
def test_hostile_json_is_refused(doc, words):
    with pytest.raises(DocumentError, match=words):
        load_json(doc)


@pytest.mark.parametrize("change,field", [
    ({"training": {"batch_size": 10**20}}, "training.batch_size"),
    ({"training": {"inference_steps": 10**20}}, "training.inference_steps"),
    ({"training": {"max_steps": 10**20}}, "training.max_steps"),
    ({"training": {"divergence_factor": float("inf")}}, "training.divergence_factor"),
    ({"dataset": {"name": "digits", "train_examples": 10**20}}, "dataset.train_examples"),
    ({"logging": {"test_chunk": 10**20}}, "logging.test_chunk"),
    ({"logging": {"every": 10**20}}, "logging.every"),
    ({"architecture": {"kind": "cnn", "downsample_layers": 10**20}}, "architecture.downsample_layers"),
    ({"resources": {"cpus_per_trial": float("inf")}}, "resources.cpus_per_trial"),
    ({"resources": {"gpus_per_trial": float("inf")}}, "resources.gpus_per_trial"),
    ({"resources": {"memory_budget_gb": float("inf")}}, "resources.memory_budget_gb"),
    ({"widths": [True]}, "widths[0]"),
    ({"seeds": [True]}, "seeds[0]"),
    ({"training": {"epochs": True}}, "training.epochs"),
    ({"weight_lrs": [1e300]}, "weight_lrs[0]"),
    ({"widths": ["8"]}, "widths[0]"),
    ({"description": "x" * 5000}, "description"),
    ({"seeds": 3_000_000}, "seeds"),
    ({"analyses": [{"kind": "hessian_condition", "settings": {"widths": [10**20]}}]}, "analyses[0]"),
])
def test_absurd_numbers_and_coerced_types_are_refused(change, field):
    with pytest.raises(SpecError) as e:
        parse_spec({**BASE, **change})
    assert any(f == field or f.startswith(field) for f, _ in e.value.errors), e.value.errors


def test_run_count_is_arithmetic_and_big_sweeps_are_refused_at_once(monkeypatch):
    spec = parse_spec({**BASE, "algorithms": ["pc", "bp"], "parametrizations": ["mupc", "sp"], "widths": [8, 16],
                       "weight_lrs": [0.1, 0.01, 0.001], "activity_lrs": [0.5, 1.0], "seeds": 3})
    assert count_runs(spec) == sum(len(c.runs) for c in plan(spec)) == 2 * 2 * 3 * 3 * (2 + 1)
    huge = {**BASE, "widths": list(range(1, 65)), "depths": list(range(1, 65)),
            "weight_lrs": [10.0 ** -k for k in range(1, 101)], "activity_lrs": [10.0 ** -k for k in range(1, 101)],
            "seeds": 1000}
    import sweeps.plan

    def never(*a, **k):
        raise AssertionError("the runs of a refused spec were built")

    monkeypatch.setattr(sweeps.plan, "plan", never)
    monkeypatch.setattr(sweeps.plan, "Run", never)
    with pytest.raises(SpecError, match=f"more than {MAX_RUNS:,}"):
        parse_spec(huge)  # 4e10 runs: counted arithmetically, never built


def test_json_schema_has_enums_and_validates_every_shipped_spec():
    jsonschema = pytest.importorskip("jsonschema")
    from mutransfer.algorithms import ALGORITHMS
    from mutransfer.data import DATASETS
    from mutransfer.parametrization import PARAMETRIZATIONS
    from mutransfer.report import METRICS

    schema = json_schema()
    props, defs = schema["properties"], schema["$defs"]
    assert props["algorithms"]["items"]["enum"] == sorted(ALGORITHMS)
    assert props["parametrizations"]["items"]["enum"] == sorted(PARAMETRIZATIONS)
    assert props["metric"]["enum"] == sorted(METRICS)
    assert defs["DatasetSpec"]["properties"]["name"]["enum"] == sorted(DATASETS)
    assert defs["Training"]["properties"]["batch_size"]["maximum"] == 65536
    validator = jsonschema.Draft202012Validator(schema)
    files = sorted((Path(__file__).parent.parent / "sweeps" / "specs").glob("*.yaml"))
    for f in files:
        load_spec(f)
        errors = list(validator.iter_errors(load_yaml(f.read_text())))
        assert not errors, (f, errors[0].message)
    bad = {**BASE, "algorithms": ["pcc"], "widths": [True]}
    assert {tuple(e.absolute_path) for e in validator.iter_errors(bad)} >= {("algorithms", 0), ("widths", 0)}


def test_schema_command_prints_it(capsys):
    from sweeps.cli import main

    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "mutransfer sweep spec"


def test_spec_files_get_the_same_limits(tmp_path):
    f = tmp_path / "bomb.yaml"
    f.write_text(BOMB)
    with pytest.raises(SpecError, match="more than 5000 values"):
        load_spec(f)
    with pytest.raises(SpecError, match="line 1: the alias"):
        loads_spec("a: &a [*a]")


def test_readme_lists_every_limit_with_its_default():
    """Each limit is a row of a table in the README or the documentation (docs/**/*.md)."""
    from sweeps.limits import describe

    repo = Path(__file__).parent.parent
    text = "\n".join(p.read_text() for p in [repo / "README.md", *sorted((repo / "docs").rglob("*.md"))])
    for env, default, doc in describe():
        assert f"| `{env}` | {default} | {doc} |" in text, env
