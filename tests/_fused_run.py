"""Run by tests/test_simulate.py in a fresh process: `fuse_cpu_loops()` must come
before JAX starts, so this cannot run inside the test process itself. Prints the spikes
of a reduced CUBA network, with records, as JSON."""

import json
import sys

import neurosim as ns

if sys.argv[1] == "fused":
    ns.fuse_cpu_loops()

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from neurosim._cpu import loops_fused  # noqa: E402

n = 400
net, y0 = ns.networks.vogels_abbott_cuba(2, n=n, we=1.62 * 4000 / n, wi=-9.0 * 4000 / n)
sol = ns.simulate(
    net,
    t1=100.0,
    y0=y0,
    max_spikes=5000,
    gradients=False,
    record=jnp.linspace(0.0, 100.0, 11),
)
print(
    json.dumps(
        {
            "fused": loops_fused(),
            "num_spikes": int(sol.num_spikes),
            "times": np.asarray(sol.spike_times).tolist(),
            "neurons": np.asarray(sol.spike_neurons).tolist(),
            "v": np.asarray(sol.states["cuba"].v).tolist(),
        }
    )
)
