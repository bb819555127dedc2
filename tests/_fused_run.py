"""Run by tests/test_cpu.py in a fresh process: `fuse_cpu_loops()` must come before
JAX starts, so this cannot run inside the test process itself. Prints, as JSON, the
spikes and states of a reduced CUBA network and of a layer with a stepped current and
input spikes."""

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
# A layer with a stepped current (jumps of the whole population) and input spikes.
rng = np.random.default_rng(0)
times = np.sort(rng.uniform(0.0, 100.0, 300))
sources = rng.integers(0, 10, 300)
layer = ns.simulate(
    ns.LIF(tau_mem=10.0, t_ref=1.0),
    n=30,
    t1=100.0,
    current=ns.inputs.Step(20.0, 0.8, t_off=70.0),
    weights=jnp.asarray(rng.normal(0.0, 0.3, (30, 30)) * (rng.random((30, 30)) < 0.2)),
    input_spikes=(jnp.asarray(times), jnp.asarray(sources)),
    input_weights=jnp.asarray(rng.uniform(0.0, 0.6, (10, 30))),
    max_spikes=2000,
    gradients=False,
    record=jnp.linspace(0.0, 100.0, 21),
)
print(
    json.dumps(
        {
            "fused": loops_fused(),
            "num_spikes": int(sol.num_spikes),
            "times": np.asarray(sol.spike_times).tolist(),
            "neurons": np.asarray(sol.spike_neurons).tolist(),
            "v": np.asarray(sol.states["cuba"].v).tolist(),
            "layer_spikes": int(layer.num_spikes),
            "layer_times": np.asarray(layer.spike_times).tolist(),
            "layer_neurons": np.asarray(layer.spike_neurons).tolist(),
            "layer_v": np.asarray(layer.states.v).tolist(),
        }
    )
)
