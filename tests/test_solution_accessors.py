"""The jit-safe accessors of `Solution` (first and k-th spike times, padded trains,
counts): equal to the NumPy accessors on a concrete run, working under `jax.jit` and
`jax.vmap`, and differentiable (checked against the analytic first-spike time)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurosim as ns

# Constant drives (in units of v_th = 1): the third neuron never reaches threshold.
CURRENTS = np.array([2.0, 1.5, 0.5, 3.0])
T1 = 50.0


def _run(tau_mem, currents):
    return ns.simulate(ns.LIF(tau_mem=tau_mem), n=4, t1=T1, current=currents, max_spikes=48)


_solve = eqx.filter_jit(_run)


def _accessors(sol):
    return (
        sol.first_spike_times(),
        sol.kth_spike_times(2),
        sol.padded_spike_trains(3),
        sol.spike_counts(),
    )


def _first_spike(tau, current):
    """Analytic first spike of v' = (I - v) / tau from v = 0 to v_th = 1."""
    return tau * np.log(current / (current - 1.0)) if current > 1.0 else np.inf


@pytest.fixture(scope="module")
def concrete(float64):
    return _solve(jnp.asarray(10.0), jnp.asarray(CURRENTS))


def test_accessors_equal_the_numpy_spike_trains(concrete):
    trains = concrete.spike_trains(n=4)
    first = concrete.first_spike_times()
    third = concrete.kth_spike_times(2)
    padded = concrete.padded_spike_trains(3)
    counts = concrete.spike_counts()
    assert counts.dtype == jnp.int32
    np.testing.assert_array_equal(counts, [len(train) for train in trains])
    for neuron, train in enumerate(trains):
        want = np.full(3, np.inf)
        want[: min(3, len(train))] = train[:3]
        np.testing.assert_array_equal(padded[neuron], want)
        np.testing.assert_array_equal(first[neuron], want[0])
        np.testing.assert_array_equal(third[neuron], want[2])
    np.testing.assert_allclose(
        first, [_first_spike(10.0, current) for current in CURRENTS], rtol=1e-9
    )


def test_accessors_under_jit_and_vmap_equal_the_concrete_run(concrete):
    jitted = jax.jit(_accessors)(concrete)
    for got, want in zip(jitted, _accessors(concrete)):
        np.testing.assert_array_equal(got, want)
    # A batch of runs, stacked as `jax.vmap(simulate)` returns them: the accessors
    # map over the leading axis, and under `jax.vmap` see one run.
    other = _solve(jnp.asarray(12.0), jnp.asarray(CURRENTS))
    solutions = jax.tree_util.tree_map(lambda *runs: jnp.stack(runs), concrete, other)
    batched = _accessors(solutions)
    inside = jax.vmap(_accessors)(solutions)
    for got, also, want in zip(batched, inside, jitted):
        np.testing.assert_array_equal(got, also)
        np.testing.assert_allclose(got[0], want, rtol=1e-12)
    np.testing.assert_allclose(
        batched[0][1], [_first_spike(12.0, current) for current in CURRENTS], rtol=1e-9
    )


def test_gradient_of_first_spike_times_is_the_analytic_one(float64):
    # t = tau ln(I / (I - 1)), so dt/dtau = ln(I / (I - 1)); the silent neuron's +inf
    # must not leak into the gradient of the sum over the others.
    def loss(tau_mem):
        first = _run(tau_mem, jnp.asarray(CURRENTS)).first_spike_times()
        return jnp.sum(
            jnp.where(jnp.isfinite(first), first, 0.0) * jnp.array([1.0, 2.0, 5.0, 3.0])
        )

    grad = jax.jit(jax.grad(loss))(jnp.asarray(10.0))
    want = sum(
        weight * np.log(c / (c - 1.0))
        for weight, c in zip([1.0, 2.0, 0.0, 3.0], CURRENTS)
        if c > 1
    )
    np.testing.assert_allclose(grad, want, rtol=1e-8)


def test_network_populations_and_errors():
    # A network's buffer by hand: population "a" holds global neurons 0-1, "b" 2-4.
    inf = np.inf
    sol = ns.Solution(
        spike_times=jnp.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, inf, inf]),
        spike_neurons=jnp.array([3, 0, 4, 3, 0, 3, -1, -1]),
        num_spikes=jnp.array(6),
        overflow=jnp.array(False),
        ts=jnp.zeros((0,)),
        states=None,
        t0=jnp.array(0.0),
        t_final=jnp.array(10.0),
        final_state=None,
        status=jnp.array(1),
        iterations=jnp.array(6),
        solver_steps=jnp.array(0),
        populations=(("a", 0, 2), ("b", 2, 3)),
    )
    np.testing.assert_array_equal(sol.first_spike_times("a"), [2.0, inf])
    np.testing.assert_array_equal(sol.first_spike_times("b"), [inf, 1.0, 3.0])
    np.testing.assert_array_equal(sol.kth_spike_times(1, "b"), [inf, 4.0, inf])
    np.testing.assert_array_equal(sol.spike_counts("a"), [2, 0])
    np.testing.assert_array_equal(sol.spike_counts(), [2, 0, 0, 3, 1])
    np.testing.assert_array_equal(sol.padded_spike_trains(2, "a"), [[2.0, 5.0], [inf, inf]])
    for name in ("a", "b"):
        trains = sol.spike_trains(name)
        np.testing.assert_array_equal(
            sol.first_spike_times(name), [t[0] if len(t) else inf for t in trains]
        )
    with pytest.raises(ValueError, match="`n` is 4 but the population has 3"):
        sol.first_spike_times("b", n=4)
    with pytest.raises(KeyError, match="no population 'c'"):
        sol.spike_counts("c")
    with pytest.raises(ValueError, match="`k` must be a Python int >= 0"):
        sol.kth_spike_times(-1)
