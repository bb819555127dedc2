"""Bad input gets a named error, eagerly and under `jax.jit`, never a wrong result."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurosim as ns

LIF = ns.LIF(tau_mem=10.0, v_th=1.0, v_reset=0.0)


def _network(delay):
    weights = jnp.full((2, 2), 0.1)
    return ns.Network(
        populations={"a": ns.Population(LIF, 2, 1.5)},
        projections=[ns.Projection("a", "a", weights, delay=delay)],
    )


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda: ns.simulate(
                ns.LIF(v_th=jnp.array([1.0, jnp.nan])), n=2, t1=10.0, current=1.5
            ),
            r"LIF: `v_th` holds NaN at index \[1\]",
        ),
        (
            lambda: ns.simulate(ns.Izhikevich(), n=1, t1=10.0, rtol=-1.0, atol=-1.0),
            "`rtol` must be a positive finite number",
        ),
        (
            lambda: ns.simulate(
                LIF,
                n=1,
                t1=10.0,
                input_spikes=(jnp.array([-1.0, 2.0]), jnp.array([0, 0])),
                input_weights=jnp.ones((1, 1)),
            ),
            r"`input_spikes` has 1 spike time\(s\) before t0",
        ),
        (
            lambda: ns.inputs.PiecewiseConstant(
                jnp.array([5.0, 2.0]), jnp.array([0.0, 1.0, 2.0])
            ),
            "`times` must be sorted",
        ),
        (
            lambda: ns.simulate(
                ns.LIF(tau_mem=jnp.full((2, 2), 10.0)), n=2, t1=10.0, current=1.5
            ),
            r"LIF: `tau_mem` has shape \(2, 2\).*A 2-D array is not a parameter",
        ),
        (
            lambda: ns.simulate(LIF, n=1, t1=20.0, record=jnp.array([jnp.nan, 10.0])),
            "`record` holds NaN at index 0",
        ),
        (
            lambda: ns.Network(
                populations=[("a", ns.Population(LIF, 1)), ("a", ns.Population(LIF, 2))]
            ),
            r"`populations` names \['a'\] more than once",
        ),
        (
            lambda: ns.simulate(_network(jnp.inf), t1=10.0),
            "`delay` holds a non-finite value",
        ),
        (
            lambda: ns.simulate(LIF, n=1, t1=10.0, solver=ns.SequentialEuler(), dt0=0.0),
            "`dt0` must be > 0",
        ),
    ],
    ids=[
        "nan-threshold",
        "negative-tolerances",
        "inputs-before-t0",
        "unsorted-jumps",
        "2-d-parameter",
        "nan-record",
        "repeated-population",
        "infinite-delay",
        "zero-dt0",
    ],
)
def test_bad_input_is_refused_eagerly(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "run, argument, match",
    [
        (
            lambda t1: ns.simulate(LIF, n=1, t1=t1, current=1.5).num_spikes,
            jnp.asarray(-5.0),
            "`t1` must be finite and greater than `t0`",
        ),
        (
            lambda t1: ns.simulate(LIF, n=1, t1=t1, current=1.5).num_spikes,
            jnp.asarray(jnp.nan),
            "`t1` must be finite and greater than `t0`",
        ),
        (
            lambda delay: ns.simulate(_network(delay), t1=30.0).num_spikes,
            jnp.asarray(-1.0),
            "a `delay` is negative, NaN or infinite",
        ),
        (
            lambda delay: ns.simulate(_network(delay), t1=30.0).num_spikes,
            jnp.asarray(jnp.nan),
            "a `delay` is negative, NaN or infinite",
        ),
        (
            lambda sources: (
                ns.simulate(
                    LIF,
                    n=1,
                    t1=10.0,
                    input_spikes=(jnp.array([1.0, 2.0]), sources),
                    input_weights=jnp.ones((2, 1)),
                ).num_spikes
            ),
            jnp.array([0, 7]),
            r"source lies outside \[0, 2\)",
        ),
        (
            lambda record: ns.simulate(LIF, n=1, t1=10.0, record=record).num_spikes,
            jnp.array([5.0, 2.0]),
            "`record` must be sorted times within",
        ),
        (
            lambda delay: ns.simulate(_network(delay), t1=30.0).num_spikes,
            jnp.asarray(jnp.inf),
            "a `delay` is negative, NaN or infinite",
        ),
        (
            lambda times: (
                ns.simulate(
                    LIF,
                    n=1,
                    t1=10.0,
                    current=ns.inputs.PiecewiseConstant(times, jnp.array([1.5, 0.0, 2.0])),
                ).num_spikes
            ),
            jnp.array([5.0, 2.0]),
            "PiecewiseConstant: `times` must be sorted and not NaN; a traced value was not",
        ),
        (
            lambda tau: ns.simulate(ns.LIF(tau_mem=tau), n=1, t1=10.0).num_spikes,
            jnp.asarray(jnp.nan),
            r"LIF: `tau_mem` must be > 0 \(ms\); a traced value was not",
        ),
        (
            lambda tau: (
                ns.simulate(ns.LIF(tau_mem=tau), n=1, t1=10.0, exact=False).num_spikes
            ),
            jnp.asarray(-1.0),
            r"LIF: `tau_mem` must be > 0 \(ms\); a traced value was not",
        ),
        (
            lambda c: ns.simulate(ns.Izhikevich(c=c), n=1, t1=10.0).num_spikes,
            jnp.asarray(40.0),
            "Izhikevich: `c` must be below `v_th`; a traced value was not",
        ),
        (
            lambda a: ns.simulate(ns.Izhikevich(a=a), n=2, t1=10.0).num_spikes,
            jnp.array([0.02, jnp.nan]),
            "Izhikevich: `a` must not hold NaN; a traced value was not",
        ),
    ],
    ids=[
        "t1-before-t0",
        "nan-t1",
        "negative-delay",
        "nan-delay",
        "source-7",
        "records",
        "infinite-delay",
        "unsorted-jumps",
        "nan-tau-exact",
        "negative-tau-ode",
        "reset-above-threshold",
        "nan-parameter-ode",
    ],
)
def test_bad_traced_input_stops_the_run_under_jit(run, argument, match):
    """Traced values cannot be checked in Python: the run stops with the named error
    instead of returning a result."""
    with pytest.raises(Exception, match=match):
        jax.block_until_ready(eqx.filter_jit(run)(argument))


def test_numpy_integers_are_accepted_as_counts():
    sol = ns.simulate(LIF, n=np.int64(2), t1=30.0, current=1.5, max_spikes=np.int32(8))
    assert sol.spike_times.shape == (8,)
    np.testing.assert_allclose(sol.spikes()[0][:2], 10 * np.log(3.0), rtol=1e-5)
    for bad in (True, 0, 2.0, np.float64(3.0)):
        with pytest.raises(ValueError, match="`n` must be a positive int"):
            ns.simulate(LIF, n=bad, t1=10.0)


def test_a_float32_parameter_does_not_make_a_float64_run_float32(x64):
    neuron = ns.LIF(tau_mem=jnp.float32(10.0), v_th=1.0, v_reset=0.0)
    sol = ns.simulate(neuron, n=1, t1=30.0, current=1.5)
    assert sol.spike_times.dtype == jnp.float64
    np.testing.assert_allclose(
        sol.spikes()[0][:2], np.array([10, 20]) * np.log(3.0), rtol=1e-12
    )


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "ode"])
def test_a_full_buffer_keeps_the_prefix_of_a_larger_run(exact):
    """A run whose spike buffer fills stops there with `overflow` set: what it holds
    is the prefix of the run with a larger buffer, spike for spike."""
    key_w, key_v = jax.random.split(jax.random.PRNGKey(7))
    weights = 0.1 * jax.random.bernoulli(key_w, 0.2, (40, 40)) * (1 - jnp.eye(40))
    neuron = ns.LIF(tau_mem=10.0, tau_syn=5.0, v_th=1.0, v_reset=0.0, t_ref=2.0)
    y0 = neuron.init_state(40)
    y0 = type(y0)(
        v=jax.random.uniform(key_v, (40,)),
        i=y0.i,
        refractory=y0.refractory,
        ref_end=y0.ref_end,
    )
    kwargs = dict(
        n=40, t1=100.0, current=1.2, weights=weights, y0=y0, exact=exact, throw=False
    )
    full = ns.simulate(neuron, max_spikes=2000, **kwargs)
    part = ns.simulate(neuron, max_spikes=150, **kwargs)
    assert int(full.status) == 1 and int(full.num_spikes) > 300
    assert bool(part.overflow) and int(part.status) == 2 and int(part.num_spikes) == 150
    np.testing.assert_array_equal(part.spike_neurons, full.spike_neurons[:150])
    np.testing.assert_array_equal(part.spike_times, full.spike_times[:150])
    assert float(part.t_final) < 100.0


def _nan_after_25(t):
    return jnp.where(t < 25.0, 10.0, jnp.nan) * jnp.ones(2)


@pytest.mark.parametrize(
    "kwargs, within",
    [
        ({}, 1e-9),
        ({"solver": diffrax.Euler(), "dt0": 0.1}, 0.1),
    ],
    ids=["tsit5", "euler-0.1"],
)
def test_a_current_turning_nan_is_reported_where_it_did(kwargs, within):
    """The run stops within one solver step of the fault, names the field, gives no
    advice about solver steps, and says the same with throw=True and throw=False."""
    current = ns.inputs.Function(_nan_after_25, jumps=jnp.array([25.0]))
    run = dict(n=2, t1=50.0, current=current, **kwargs)
    sol = ns.simulate(ns.Izhikevich(), throw=False, **run)
    assert int(sol.status) == 4
    assert abs(float(sol.t_final) - 25.0) <= within
    assert "`v`" in sol.message and "max_solver_steps" not in sol.message
    assert f"t={float(sol.t_final):.9g} ms" in sol.message
    # Spikes before the fault are kept (Izhikevich at I = 10 fires within 25 ms).
    assert int(sol.num_spikes) > 0 and float(sol.spike_times[0]) < 25.0
    with pytest.raises(ns.SimulationError) as info:
        ns.simulate(ns.Izhikevich(), **run)
    assert sol.message in str(info.value)
    np.testing.assert_array_equal(info.value.solution.spike_times, sol.spike_times)


def test_a_current_turning_nan_on_the_exact_path_is_reported_at_its_jump():
    values = jnp.array([[1.5, 1.5], [jnp.nan, 1.5]])
    run = jax.jit(
        lambda values: ns.simulate(
            LIF,
            n=2,
            t1=100.0,
            current=ns.inputs.PiecewiseConstant(jnp.array([25.0]), values),
            throw=False,
        )
    )
    sol = run(values)
    assert int(sol.status) == 4 and float(sol.t_final) == 25.0
    assert "neuron 0" in sol.message
    # 10 ln 3 = 10.99 and 21.97 ms: both spikes of each neuron before the fault.
    assert int(sol.num_spikes) == 4


def test_an_infinite_parameter_under_jit_is_reported_at_t0_with_its_field():
    """Infinite parameters pass the NaN check (a threshold may be +inf); if they make
    the dynamics non-finite, the run stops at once, naming the derivative."""
    run = jax.jit(
        lambda a: ns.simulate(ns.Izhikevich(a=a), n=2, t1=40.0, current=10.0, throw=False)
    )
    sol = run(jnp.array([0.02, jnp.inf]))
    assert int(sol.status) == 4 and float(sol.t_final) == 0.0
    assert "time derivative of `u` at neuron 1" in sol.message
    assert "max_solver_steps" not in sol.message
    assert int(sol.solver_steps) == 0


def test_a_batch_of_runs_describes_each_run():
    run = jax.vmap(
        lambda w: ns.simulate(
            LIF,
            n=2,
            t1=40.0,
            current=1.5,
            weights=jnp.array([[0.0, w], [0.0, 0.0]]),
            throw=False,
        )
    )
    lines = run(jnp.array([0.1, jnp.nan])).message.splitlines()
    assert lines[0].startswith("run 0: finished at t=40 ms")
    assert lines[1].startswith("run 1: stopped at t=")
    assert "neuron 1" in lines[1] and "`v` = nan" in lines[1]


def test_a_traced_failure_under_jit_names_its_status():
    run = eqx.filter_jit(
        lambda w: (
            ns.simulate(
                LIF, n=2, t1=40.0, current=1.5, weights=jnp.array([[0.0, w], [0.0, 0.0]])
            ).num_spikes
        )
    )
    with pytest.raises(Exception, match=r"simulate failed \(status 4\): the state"):
        jax.block_until_ready(run(jnp.asarray(jnp.nan)))


def test_a_float32_population_beside_a_float64_one_runs_in_float64(x64):
    class LIF32(ns.LIF):
        def init_state(self, n):
            state = super().init_state(n)
            return jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), state)

    def network(first):
        return ns.Network(
            {
                "a": ns.Population(first, 2, current=1.5),
                "b": ns.Population(ns.Izhikevich(), 2, current=10.0),
            }
        )

    for exact in (None, False):
        mixed = ns.simulate(network(LIF32(tau_mem=10.0)), t1=50.0, exact=exact)
        same = ns.simulate(network(ns.LIF(tau_mem=10.0)), t1=50.0, exact=exact)
        assert mixed.spike_times.dtype == jnp.float64
        np.testing.assert_array_equal(mixed.spike_times, same.spike_times)
        np.testing.assert_allclose(mixed.spikes("a")[0][:2], [10 * np.log(3.0)] * 2)
