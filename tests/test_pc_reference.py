"""PC step against the μPC authors' library (shared/fixtures/pc_step_reference.npz beside the
repository, or the file named by $MUTRANSFER_PC_FIXTURE — benchmarks/device_check.py sends a copy
to machines that only get the repository)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mutransfer.pc import reference_step

FIXTURE_ENV = "MUTRANSFER_PC_FIXTURE"
FIXTURE = Path(os.environ.get(FIXTURE_ENV)
               or Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "pc_step_reference.npz")
CASES = [(p, a) for p in ("mupc", "sp") for a in ("linear", "tanh", "relu")]


@pytest.fixture(scope="module")
def ref():
    if not FIXTURE.exists():
        pytest.skip(f"fixture not found at {FIXTURE} (set {FIXTURE_ENV} to its path)")
    return np.load(FIXTURE)


def test_fixture_conventions_match_ours(ref):
    meta = str(ref["meta"])
    assert "H=4" in meta and "beta=0.5" in meta and "T=4" in meta and "residual" in meta


@pytest.mark.parametrize("param,act", CASES)
def test_matches_jpc_reference(ref, param, act):
    key = f"{param}_{act}"
    weights = [ref[f"{key}_W{i}"] for i in range(5)]
    out = reference_step(weights, ref["x"], ref["y"], parametrization=param, activation=act,
                         residual=True, beta=0.5, steps=4)
    assert out["energy_start"] == pytest.approx(float(ref[f"{key}_energy0"]), abs=1e-5)
    assert out["energy_end"] == pytest.approx(float(ref[f"{key}_energyT"]), abs=1e-5)
    # Inference must actually have moved the energy, or the comparison proves little.
    assert out["energy_end"] < out["energy_start"]
    assert len(out["activities"]) == 5
    for i, z in enumerate(out["activities"]):
        np.testing.assert_allclose(z, ref[f"{key}_zT{i}"], atol=1e-5, rtol=0)
    gmax = max(np.abs(ref[f"{key}_gradW{i}"]).max() for i in range(5))
    for i, g in enumerate(out["weight_grads"]):
        assert np.abs(g - ref[f"{key}_gradW{i}"]).max() <= 1e-5 * gmax


def test_matches_jpc_reference_at_the_default_optimisation_level():
    """The suite compiles XLA:CPU programs at LLVM -O0 (tests/conftest.py: it compiles ≈ 3× faster);
    users' programs compile at XLA's default level. This file's reference checks, rerun at the
    default level in a fresh process."""
    if not FIXTURE.exists():
        pytest.skip(f"fixture not found at {FIXTURE} (set {FIXTURE_ENV} to its path)")
    if "xla_backend_optimization_level=0" not in os.environ.get("XLA_FLAGS", ""):
        pytest.skip("this session compiles at XLA's default level already (not on CPU, or "
                    "MUTRANSFER_TESTS_XLA_OPT=default): test_matches_jpc_reference is the check")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split() if "xla_backend_optimization_level" not in f)
    env["MUTRANSFER_TESTS_XLA_OPT"] = "default"
    tests = Path(__file__).resolve().parent
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
                          f"{tests / 'test_pc_reference.py'}::test_matches_jpc_reference"],
                         cwd=tests.parent, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert f"{len(CASES)} passed" in out.stdout, out.stdout[-2000:]
