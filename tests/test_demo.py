"""The README's main command: `make demo` runs `python -m neurosim demo`, tested here
as a user runs it (a fresh process, float32, concrete weights: the synapse-list path
of the exact loop), and at XLA's default optimisation level, as `make demo` compiles
it (`default_compile`: `make test` runs it after the rest of the suite)."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from neurosim._demo import T1, N


@pytest.mark.default_compile
def test_demo_finishes_and_writes_its_outputs(tmp_path):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    result = subprocess.run(
        [sys.executable, "-m", "neurosim", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "output spikes" in result.stdout
    with open(out / "spikes.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["time_ms", "neuron"]
    times = np.array([float(r[0]) for r in rows[1:]])
    neurons = np.array([int(r[1]) for r in rows[1:]])
    # A recurrent network at tens of Hz: thousands of spikes over the whole second,
    # in time order, from neurons that exist.
    assert len(times) > 5000
    assert np.all(np.diff(times) >= 0) and times[0] >= 0.0 and times[-1] <= T1
    assert times[-1] > 0.9 * T1
    assert neurons.min() >= 0 and neurons.max() < N
    raster = out / "raster.png"
    assert raster.stat().st_size > 10_000
    with open(raster, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
