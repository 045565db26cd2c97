"""The CPU dot fast path (mutransfer/cpu_dots.py): when it sets XLA_FLAGS, and that XLA takes it."""

import subprocess
import sys

from mutransfer import cpu_dots


def test_flag_added_only_when_absent_and_not_opted_out(monkeypatch):
    monkeypatch.setattr(cpu_dots, "backend_started", lambda: False)
    monkeypatch.setattr(cpu_dots, "jaxlib_knows_flag", lambda: True)
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    assert cpu_dots.enable(env) and env["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=2",
                                                                  cpu_dots.FLAG]
    assert cpu_dots.enable(env) and env["XLA_FLAGS"].count(cpu_dots.FLAG_NAME) == 1  # idempotent
    mine = {"XLA_FLAGS": f"--{cpu_dots.FLAG_NAME}=-eltwise"}
    assert not cpu_dots.enable(mine) and mine["XLA_FLAGS"] == f"--{cpu_dots.FLAG_NAME}=-eltwise"  # the user's wins
    opted_out = {cpu_dots.ENV: "xla"}
    assert not cpu_dots.enable(opted_out) and "XLA_FLAGS" not in opted_out


def test_never_set_after_the_backend_started_or_for_a_jaxlib_without_the_flag(monkeypatch):
    monkeypatch.setattr(cpu_dots, "jaxlib_knows_flag", lambda: False)
    env = {}
    assert not cpu_dots.enable(env) and "XLA_FLAGS" not in env  # an unknown flag would abort XLA
    monkeypatch.setattr(cpu_dots, "jaxlib_knows_flag", lambda: True)
    monkeypatch.setattr(cpu_dots, "backend_started", lambda: True)
    assert not cpu_dots.enable(env) and "XLA_FLAGS" not in env


def test_a_fresh_process_gets_the_flag_and_xla_accepts_it():
    code = ("import os, mutransfer, jax, jax.numpy as jnp\n"
            "x = jnp.arange(64.0, dtype=jnp.float32).reshape(8, 8)\n"
            "print(os.environ.get('XLA_FLAGS', ''), float((x @ x.T).sum()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={"PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu", "PYTHONPATH": ":".join(sys.path)})
    assert out.returncode == 0, out.stderr[-2000:]
    flags, total = out.stdout.rsplit(" ", 1)
    assert float(total) == float(sum(sum(i * j for i, j in zip(a, b)) for a in
                                     [[8 * r + c for c in range(8)] for r in range(8)]
                                     for b in [[8 * r + c for c in range(8)] for r in range(8)]))
    assert cpu_dots.FLAG in flags.split() or not cpu_dots.jaxlib_knows_flag()
