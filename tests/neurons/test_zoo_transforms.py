"""Every model of the zoo under `jax.vmap` (over a parameter) and `jax.jit`: batched
and compiled runs equal separate eager runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurosim as ns

CASES = {
    # name: (model from a parameter value, two values, simulate arguments)
    "adex": (lambda b: ns.AdEx(b=b), [0.5, 1.5], dict(t1=150.0, current=25.0)),
    "eif": (lambda tau: ns.EIF(tau_m=tau), [12.0, 18.0], dict(t1=100.0, current=20.0)),
    "fhn": (lambda tau: ns.FHNRS(tau_slow=tau), [40.0, 60.0], dict(t1=150.0, current=0.5)),
    "izhikevich": (
        lambda d: ns.Izhikevich(a=0.02, b=0.2, c=-65.0, d=d),
        [2.0, 8.0],
        dict(t1=100.0, current=10.0),
    ),
    "adaptive_lif": (
        lambda a: ns.SpikeAdaptiveThreshold(ns.LIF(tau_mem=10.0), 50.0, a),
        [0.1, 0.3],
        dict(t1=100.0, current=2.0),
    ),
    "boomerang": (
        lambda w: ns.Boomerang(weight_u=w),
        [1.0, -1.0],
        dict(t1=60.0, current=0.05),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_vmap_and_jit_equal_separate_eager_runs(name, x64):
    make, values, kwargs = CASES[name]

    def spike_times(value):
        return ns.simulate(
            make(value), n=1, max_spikes=32, rtol=1e-10, atol=1e-10, **kwargs
        ).spike_times

    separate = np.stack([np.asarray(spike_times(jnp.asarray(v))) for v in values])
    batched = np.asarray(jax.vmap(spike_times)(jnp.asarray(values)))
    compiled = np.asarray(jax.jit(spike_times)(jnp.asarray(values[0])))
    finite = np.isfinite(separate)
    assert finite.sum(axis=1).min() >= 1, "each run must spike"
    np.testing.assert_array_equal(np.isfinite(batched), finite)
    np.testing.assert_allclose(batched[finite], separate[finite], rtol=0, atol=1e-6)
    np.testing.assert_allclose(compiled, separate[0], rtol=0, atol=1e-9)
    # The two parameter values give different spike trains (the batch is not trivial).
    first, second = separate[0][finite[0]], separate[1][finite[1]]
    assert len(first) != len(second) or np.max(np.abs(first - second)) > 1e-3
