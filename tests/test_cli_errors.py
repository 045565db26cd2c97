"""User errors through the real console script (issue 10 items 7 and 16): one `error:` line saying
what is wrong and how to fix it, a non-zero exit, no traceback, and nothing started or written."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sweeps.processes import descendants

EXE = str(Path(sys.executable).with_name("mutransfer"))
SPEC = {"name": "clierr", "parametrizations": ["mupc"], "widths": [8], "depths": [2], "weight_lrs": [0.1],
        "activity_lrs": [0.5], "dataset": {"name": "digits", "train_examples": 320},
        "training": {"epochs": 1, "batch_size": 32}}


def run(*args, timeout=120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout, **kw)


def one_error_line(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode != 0, proc
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for w in words:
        assert w in errors[0], (w, errors[0])
    return errors[0]


def main(capsys, *args) -> subprocess.CompletedProcess:
    """The console script's entry point in this process (same code; no interpreter start-up per call)."""
    from service.cli import main as entry

    capsys.readouterr()
    try:
        code = entry(list(args))
    except SystemExit as e:  # argparse's exit
        code = e.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["mutransfer", *args], code, out, err)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetch_offline_names_the_url_and_the_fix(tmp_path, capsys):
    url = f"http://127.0.0.1:{closed_port()}/mirror/"
    p = main(capsys, "data", "fetch", "mnist", "--cache-dir", str(tmp_path), "--base-url", url)
    one_error_line(p, "cannot download", url, "--base-url")
    assert p.returncode == 2


@pytest.mark.parametrize("args,words", [
    (["data", "fetch", "imagenet"], ["invalid choice: 'imagenet'", "fashion_mnist", "--help"]),
    (["report", "some-id", "--metric", "accuracy"], ["invalid choice: 'accuracy'", "min_train_loss"]),
    (["run"], ["the following arguments are required: spec"]),
    (["frobnicate"], ["invalid choice: 'frobnicate'"]),
])
def test_usage_errors_are_one_line(capsys, args, words):
    one_error_line(main(capsys, *args), *words)


def test_results_that_is_a_file_or_unwritable(tmp_path, capsys, monkeypatch):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    afile = tmp_path / "afile"
    afile.write_text("x")
    import ray

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray was started before the results root was checked"))
    one_error_line(main(capsys, "run", str(spec), "--results", str(afile)), str(afile), "is a file")
    one_error_line(main(capsys, "run", str(spec), "--results", str(afile / "sub")), "is a file")
    one_error_line(main(capsys, "run", str(spec), "--results", "/proc/mutransfer-test/results"),
                   "cannot write there")
    one_error_line(main(capsys, "report", "x-1", "--results", str(afile)), "is a file")
    one_error_line(main(capsys, "serve", "--results", str(afile), "--port", str(closed_port())), "is a file")
    # (it took ~17 s, started Ray, and ended in a traceback before)


def test_missing_dataset_is_refused_before_ray_starts(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "dataset": {"name": "mnist", "data_dir": str(tmp_path / "none")}}))
    proc = subprocess.Popen([EXE, "run", str(spec), "--results", str(tmp_path / "r")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    started_ray = False
    while proc.poll() is None:
        started_ray |= any(n in ("gcs_server", "raylet") for n, _ in descendants(proc.pid).values())
        time.sleep(0.05)
    out, err = proc.communicate()
    one_error_line(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), "mutransfer data fetch mnist")
    assert not started_ray and not (tmp_path / "r" / "runs").exists()


def test_report_json_into_a_closed_pipe_is_quiet(tmp_path):
    from serving import write_finished_sweep

    root = tmp_path / "results"
    sid = write_finished_sweep(root, {**SPEC, "name": "pipe", "widths": [8, 16, 32]})
    # `mutransfer report ID --json | head -c 1`: the reader goes away before the report is written.
    proc = subprocess.Popen([EXE, "report", sid, "--results", str(root), "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert proc.returncode == 141 and "Traceback" not in err and "Exception ignored" not in err, err
    shell = subprocess.run(f"{EXE} report {sid} --results {root} --json | head -c 20", shell=True,
                           capture_output=True, text=True, timeout=120)
    assert shell.stdout.startswith("{") and "Traceback" not in shell.stderr, shell.stderr


def test_serve_refuses_a_bad_or_busy_port_in_one_line_before_serving(tmp_path, capsys):
    """`serve --port 99999` is a usage error line; a port another process holds fails before
    "serving" is printed (nothing is served)."""
    p = main(capsys, "serve", "--results", str(tmp_path), "--port", "99999")
    one_error_line(p, "--port", "99999", "1-65535")
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        p = main(capsys, "serve", "--results", str(tmp_path), "--port", str(port))
        one_error_line(p, f"--port {port}", "another --port")
        assert "serving" not in p.stderr


def test_every_command_says_which_results_root_it_reads(tmp_path, capsys, monkeypatch):
    """One rule: --results, else $MUTRANSFER_RESULTS, else ./results — printed by the command."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MUTRANSFER_RESULTS", raising=False)
    p = main(capsys, "list")  # ./results does not exist yet: an error naming it, not "no sweeps"
    assert f"results: {tmp_path / 'results'} (default ./results)" in p.stderr
    one_error_line(p, str(tmp_path / "results"), "no such directory")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.setenv("MUTRANSFER_RESULTS", str(tmp_path / "elsewhere"))
    p = main(capsys, "list")
    assert p.returncode == 0 and p.stdout.strip() == "no sweeps"
    assert f"results: {tmp_path / 'elsewhere'} ($MUTRANSFER_RESULTS)" in p.stderr
