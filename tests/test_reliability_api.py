"""Hostile and odd input against a real `mutransfer serve` on loopback (issue 10 items 1-7 and 9,
issue 13 item 5): every answer is a 4xx naming the problem, quickly, never a 5xx, and the client's
keep-alive connection survives. Drivers are off here (MUTRANSFER_DRIVERS=none): nothing trains."""

import http.client
import json
import sqlite3
import threading

import httpx
import pytest
import yaml
from serving import Server, write_finished_sweep

from sweeps.spec import parse_spec

SPEC = {"name": "rel", "parametrizations": ["mupc"], "widths": [8, 16], "depths": [2], "weight_lrs": [0.01, 0.1],
        "activity_lrs": [0.5], "seeds": 1, "dataset": {"name": "digits"}}
YAML = {"Content-Type": "application/yaml"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("rel") / "results"
    s = Server(root, None, MUTRANSFER_DRIVERS="none", MUTRANSFER_MAX_CONCURRENT=100).start()
    yield s
    s.stop()


def post(server, body, headers=YAML, timeout=30):
    return httpx.post(server.url + "/sweeps", content=body, headers=headers, timeout=timeout)


def one_connection(server, requests):
    """Send requests on one keep-alive connection; returns (status, body) per request."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    out = []
    try:
        for method, path, body, headers in requests:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            out.append((resp.status, resp.read()))
    finally:
        conn.close()
    return out


BOMB = "name: x\na: &a [1,1,1,1,1,1,1,1,1]\n" + "".join(
    f"{k}: &{k} [{', '.join([f'*{p}'] * 9)}]\n" for p, k in zip("abcdefgh", "bcdefghi"))
HOSTILE_YAML = {
    "timestamp": yaml.safe_dump(SPEC) + "created: 2024-05-01 10:00:00\n",
    "date value": yaml.safe_dump({**SPEC, "name": "x"}).replace("name: x", "name: 2024-05-01"),
    "set": yaml.safe_dump(SPEC) + "tags: !!set {a, b}\n",
    "binary": yaml.safe_dump(SPEC) + "blob: !!binary aGVsbG8=\n",
    "self alias": "a: &a [*a]\n",
    "deep": "a: " + "[" * 1000 + "]" * 1000,
    "deep map": "".join(" " * i + f"k{i}:\n" for i in range(200)),
    "alias bomb": BOMB,
    "python tag": "!!python/object/apply:os.system ['true']",
}


def test_item1_odd_yaml_is_4xx_and_the_connection_survives(server):
    reqs = []
    for body in HOSTILE_YAML.values():
        reqs.append(("POST", "/sweeps", body.encode(), YAML))
        reqs.append(("GET", "/health", None, {}))
    got = one_connection(server, reqs)
    for (name, _), (code, body) in zip(HOSTILE_YAML.items(), got[0::2]):
        if name == "date value":  # a date is a string, as in JSON: a valid name, accepted
            assert code == 202 and json.loads(body)["id"].startswith("2024-05-01-"), body
            continue
        assert 400 <= code < 500, (name, code, body[:300])
        assert json.loads(body)["message"], name
    assert all(code == 200 for code, _ in got[1::2])  # the same connection answered every /health


def test_item2_size_limits_before_parsing_and_health_keeps_answering(server):
    """How fast these answers come (78 s for the 1-MB body and 3-6 s of /health latency before the
    fix) is measured by benchmarks/abuse.py (its class 2 and the /health p99), not asserted here."""
    huge_keys = "\n".join(f"k{i}: {i}" for i in range(80_000)).encode()  # ~1 MB, 80k keys
    r = post(server, huge_keys)
    assert r.status_code == 413 and "MUTRANSFER_MAX_BODY_BYTES" in r.json()["message"]
    desc = post(server, yaml.safe_dump({**SPEC, "description": "x" * 12_000_000}))
    assert desc.status_code == 413
    long_desc = post(server, yaml.safe_dump({**SPEC, "description": "x" * 5000}))
    assert long_desc.status_code == 422 and "description" in long_desc.json()["message"]

    # An alias bomb and a big document sent while /health is polled: /health keeps answering.
    stop, answers = threading.Event(), []

    def poll():
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                try:
                    answers.append(c.get(server.url + "/health").status_code)
                except httpx.HTTPError as e:  # recorded: an assertion in this thread would fail nothing
                    answers.append(repr(e))
                stop.wait(0.02)  # pacing only

    th = threading.Thread(target=poll)
    th.start()
    try:
        near_limit = ("name: x\n" + "\n".join(f"k{i}: [{i}, {i}]" for i in range(9000))).encode()
        for body in (BOMB.encode(), near_limit) * 3:
            assert post(server, body).status_code in (413, 422)
    finally:
        stop.set()
        th.join()
    assert answers and set(answers) == {200}, [a for a in answers if a != 200][:5]


def test_item3_millions_of_runs_refused_at_once(server):
    for change in ({"seeds": 3_000_000}, {"seeds": 1000, "weight_lrs": [10.0 ** -k for k in range(1, 201)],
                                          "activity_lrs": [10.0 ** -k for k in range(1, 201)]}):
        r = post(server, yaml.safe_dump({**SPEC, **change}))  # 15-75 s, > 1 GB before: benchmarks/abuse.py
        assert r.status_code == 422, r.text
    r = post(server, yaml.safe_dump({**SPEC, "seeds": 1000, "weight_lrs": [10.0 ** -k for k in range(1, 30)]}))
    assert r.status_code == 422 and "MUTRANSFER_MAX_RUNS" in r.json()["message"]


@pytest.mark.parametrize("change,field", [
    ("training: {batch_size: 100000000000000000000}", "training.batch_size"),
    ("training: {inference_steps: 100000000000000000000}", "training.inference_steps"),
    ("training: {max_steps: 100000000000000000000}", "training.max_steps"),
    ("dataset: {name: digits, train_examples: 100000000000000000000}", "dataset.train_examples"),
    ("logging: {test_chunk: 100000000000000000000, every: 1}", "logging.test_chunk"),
    ("logging: {every: 100000000000000000000}", "logging.every"),
    ("training: {divergence_factor: .inf}", "training.divergence_factor"),
    ("resources: {cpus_per_trial: .inf}", "resources.cpus_per_trial"),
    ("resources: {gpus_per_trial: .inf}", "resources.gpus_per_trial"),
    ("resources: {memory_budget_gb: .inf}", "resources.memory_budget_gb"),
    ("widths: [true]", "widths[0]"),
])
def test_item4_absurd_numbers_are_422_naming_the_field(server, change, field):
    base = {k: v for k, v in SPEC.items() if k.split(":")[0] != change.split(":")[0]}
    r = post(server, yaml.safe_dump(base) + change + "\n")
    assert r.status_code == 422, r.text
    assert field in {e["field"] for e in r.json()["detail"]}, r.json()


def test_item5_id_with_encoded_newline_is_404_everywhere(server):
    sid = parse_spec({**SPEC, "name": "rel-nl"}).default_sweep_id()
    assert post(server, yaml.safe_dump({**SPEC, "name": "rel-nl"})).status_code == 202
    assert server.get(f"/sweeps/{sid}").status_code == 200
    for suffix in ("%0A", "%0D%0A", "%20", "%00"):
        bad = sid + suffix
        for path in (f"/sweeps/{bad}", f"/sweeps/{bad}/runs", f"/sweeps/{bad}/curves", f"/sweeps/{bad}/report",
                     f"/sweeps/{bad}/analyses", f"/sweeps/{bad}/events", f"/sweeps/{bad}/contours",
                     f"/sweeps/{bad}/shift", f"/compare?a={bad}&b={sid}"):
            assert server.get(path).status_code == 404, path
        assert httpx.delete(f"{server.url}/sweeps/{bad}").status_code == 404


@pytest.mark.parametrize("ctype", ["text/plain", "", "application/x-www-form-urlencoded", "multipart/form-data",
                                   "text/html"])
def test_item6_writes_need_a_json_or_yaml_content_type(server, ctype):
    r = post(server, yaml.safe_dump({**SPEC, "name": "csrf"}), headers={"Content-Type": ctype} if ctype else {})
    assert r.status_code == 415 and "application/json or application/yaml" in r.json()["message"]
    assert all(i["name"] != "csrf" for i in server.get("/sweeps").json()["items"])


def test_item7_missing_dataset_is_refused_before_accepting(server, tmp_path):
    r = post(server, yaml.safe_dump({**SPEC, "name": "nodata",
                                     "dataset": {"name": "mnist", "data_dir": str(tmp_path / "none")}}))
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "dataset.name" and "mutransfer data fetch mnist" in r.json()["message"]
    assert all(i["name"] != "nodata" for i in server.get("/sweeps").json()["items"])


def test_issue13_unknown_filters_and_one_status_vocabulary(server):
    sid = parse_spec({**SPEC, "name": "rel-q"}).default_sweep_id()
    assert post(server, yaml.safe_dump({**SPEC, "name": "rel-q"})).status_code == 202
    r = server.get(f"/sweeps/{sid}/runs?widht=128")
    assert r.status_code == 422
    msg = r.json()["message"]
    assert "widht" in msg and "width" in msg and "parametrization" in msg
    r = server.get("/sweeps?status=done")
    assert r.status_code == 422 and all(s in r.json()["message"] for s in ("queued", "running", "finished"))
    assert server.get("/sweeps?stauts=queued").status_code == 422
    assert server.get("/health?x=1").status_code == 422
    assert server.get("/sweeps?status=queued").json()["total"] >= 1
    st = server.status(sid)
    assert st["status"] == "queued" and {c["status"] for c in st["cells"]} == {"queued"}
    schema = server.get("/openapi.json").json()
    assert schema["components"]["schemas"]["Status"]["enum"] == ["queued", "running", "finished", "failed",
                                                                 "cancelled"]
    spec_schema = schema["components"]["schemas"]["SweepSpec"]
    assert "pc" in spec_schema["properties"]["algorithms"]["items"]["enum"]
    assert set(schema["paths"]["/sweeps"]["post"]["requestBody"]["content"]) == {"application/json",
                                                                                 "application/yaml"}


def test_item9_corrupt_registry_is_rebuilt_and_reads_never_need_it(tmp_path):
    """A finished sweep's registry is overwritten with garbage, while the API runs and before it
    starts: every route answers from the results store, and the registry is rebuilt from it."""
    from mutransfer.results import ResultsStore

    root = tmp_path / "results"
    sid = write_finished_sweep(root, {**SPEC, "name": "rel-reg"})  # Parquet parts + saved spec
    s = Server(root, None, MUTRANSFER_DRIVERS="none").start()
    try:
        reg = root / "registry.sqlite"
        assert s.status(sid)["status"] == "finished"
        reg.write_bytes(b"this is not a database" * 100)  # corrupted under the running API
        for path in (f"/sweeps/{sid}/runs?format=json", f"/sweeps/{sid}/report", f"/sweeps/{sid}",
                     "/sweeps", f"/sweeps/{sid}/contours", "/", "/health"):
            r = s.get(path)
            assert r.status_code == 200, (path, r.text[:300])
        assert len(s.get(f"/sweeps/{sid}/runs?format=json").json()) == 4
        with sqlite3.connect(reg) as db:  # a working registry again, rebuilt from the store
            assert db.execute("SELECT status FROM sweeps WHERE sweep_id=?", (sid,)).fetchone() == ("finished",)
        assert list(root.glob("registry.sqlite.corrupt-*"))
        s.stop()
        reg.write_bytes(b"\x00garbage" * 1000)  # and corrupt before the API starts
        s.start()
        st = s.status(sid)
        assert st["status"] == "finished" and st["runs_done"] == 4 and "rebuilt" in st["note"]
        assert [i["id"] for i in s.get("/sweeps").json()["items"]] == [sid]
        assert s.get("/health").json()["registry"] is True
    finally:
        s.stop()
    assert len(ResultsStore(root).load_runs(sid)) == 4
