"""PC step against the μPC authors' library (shared/fixtures/pc_step_reference.npz beside the
repository, or the file named by $MUTRANSFER_PC_FIXTURE — benchmarks/device_check.py sends a copy
to machines that only get the repository)."""

import os
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
