"""`CobaLIF` (conductance-based LIF, Brette et al. 2007's COBA benchmark) against an
independent integration of its equations (scipy's DOP853 at rtol 1e-12)."""

import jax.numpy as jnp
import numpy as np
import pytest
from _reference import threshold_reference

import neurosim as ns

TOL = 1e-12
SPIKE_ATOL = 1e-4  # ms, the accuracy asked of CobaLIF's spike times


def _coba_rhs(p, current):
    """The COBA equations with state (v, g_e, g_i), written from the docstring."""

    def rhs(t, y):
        v, g_e, g_i = y
        drive = g_e * (p["E_e"] - v) + g_i * (p["E_i"] - v) + current(t)
        return [
            (p["v_leak"] - v + drive) / p["tau_mem"],
            -g_e / p["tau_e"],
            -g_i / p["tau_i"],
        ]

    return rhs


BENCHMARK = dict(
    tau_mem=20.0, v_leak=-60.0, v_th=-50.0, v_reset=-60.0, t_ref=5.0,
    E_e=0.0, E_i=-80.0, tau_e=5.0, tau_i=10.0,
)  # fmt: skip


def _reference(p, current, t1, kicks=(), breaks=()):
    return threshold_reference(
        _coba_rhs(p, current),
        [p["v_leak"], 0.0, 0.0],
        t1,
        v_th=p["v_th"],
        reset=lambda y: np.array([p["v_reset"], y[1], y[2]]),
        t_ref=p["t_ref"],
        kicks=kicks,
        breaks=breaks,
        tol=TOL,
    )


def _simulate(neuron, **kwargs):
    return ns.simulate(neuron, n=1, rtol=TOL, atol=TOL, max_spikes=200, **kwargs)


def test_defaults_are_the_benchmark_values():
    neuron = ns.CobaLIF()
    for name, value in BENCHMARK.items():
        assert float(getattr(neuron, name)) == value, name


def test_step_current_spike_times_match_scipy(x64):
    # A step of 25 mV from 5 ms to 150 ms: regular firing with a 5 ms refractory period.
    t_on, t_off, amplitude, t1 = 5.0, 150.0, 25.0, 200.0
    sol = _simulate(
        ns.CobaLIF(), t1=t1, current=ns.inputs.Step(t_on, amplitude, t_off=t_off)
    )
    expected = _reference(
        BENCHMARK,
        lambda t: amplitude if t_on <= t < t_off else 0.0,
        t1,
        breaks=(t_on, t_off),
    )
    got = sol.spike_train(0)
    assert len(expected) >= 5
    assert len(got) == len(expected)
    np.testing.assert_allclose(got, expected, rtol=0, atol=SPIKE_ATOL)
    # The first interval has the leaky integrator's closed form: no conductance yet.
    first = t_on + 20.0 * np.log(amplitude / (amplitude - 10.0))
    np.testing.assert_allclose(got[0], first, rtol=0, atol=1e-9)


def test_input_spikes_through_both_conductances_match_scipy(x64):
    # Excitatory sources 0-1 and an inhibitory source 2: single-model input weights
    # route positive weights to g_e and negative ones (their magnitude) to g_i.
    p = dict(BENCHMARK, t_ref=3.0)
    rng = np.random.default_rng(1)
    times = np.sort(rng.uniform(0.0, 150.0, 90))
    sources = rng.choice(3, size=times.size, p=[0.4, 0.4, 0.2])
    weights = np.array([0.6, 0.4, -2.0])
    t1 = 160.0
    sol = _simulate(
        ns.CobaLIF(t_ref=p["t_ref"]),
        t1=t1,
        current=2.0,
        input_spikes=(jnp.asarray(times), jnp.asarray(sources)),
        input_weights=jnp.asarray(weights[:, None]),
    )
    kicks = [
        (t, (0.0, max(weights[k], 0.0), max(-weights[k], 0.0)))
        for t, k in zip(times, sources)
    ]
    expected = _reference(p, lambda t: 2.0, t1, kicks=kicks)
    got = sol.spike_train(0)
    assert len(expected) >= 5
    assert len(got) == len(expected)
    np.testing.assert_allclose(got, expected, rtol=0, atol=SPIKE_ATOL)


def test_projection_targets_name_the_conductances(x64):
    # The same drive through a network, with projections targeting g_e and g_i.
    p = dict(BENCHMARK)
    exc_times = np.arange(1.0, 100.0, 2.5)
    inh_times = np.arange(30.0, 60.0, 4.0)
    times = np.concatenate([exc_times, inh_times])
    sources = np.concatenate([np.zeros(exc_times.size), np.ones(inh_times.size)])
    order = np.argsort(times, kind="stable")
    net = ns.Network(
        populations={"coba": ns.Population(ns.CobaLIF(), 1)},
        projections=[
            ns.Projection("drive", "coba", jnp.array([[0.5], [0.0]]), target="g_e"),
            ns.Projection("drive", "coba", jnp.array([[0.0], [3.0]]), target="g_i"),
        ],
        inputs={"drive": ns.SpikeTrains(times[order], sources[order], num_sources=2)},
    )
    sol = ns.simulate(net, t1=110.0, rtol=TOL, atol=TOL, max_spikes=200)
    kicks = [(t, (0.0, 0.5, 0.0)) for t in exc_times] + [
        (t, (0.0, 0.0, 3.0)) for t in inh_times
    ]
    expected = _reference(p, lambda t: 0.0, 110.0, kicks=kicks)
    got, _ = sol.spikes("coba")
    assert len(expected) >= 3
    assert len(got) == len(expected)
    np.testing.assert_allclose(got, expected, rtol=0, atol=SPIKE_ATOL)


def test_v_is_held_at_reset_while_refractory_and_conductances_decay(x64):
    record = jnp.linspace(0.0, 60.0, 601)
    sol = _simulate(ns.CobaLIF(), t1=60.0, current=30.0, record=record)
    spikes = sol.spike_train(0)
    assert len(spikes) >= 2
    assert np.all(np.diff(spikes) >= 5.0)
    ts, v = np.asarray(record), np.asarray(sol.states.v[:, 0])
    for t_spike in spikes:
        inside = (ts > t_spike) & (ts < t_spike + 5.0)
        assert inside.any()
        np.testing.assert_array_equal(v[inside], -60.0)
        after = (ts > t_spike + 5.05) & (ts < t_spike + 6.0)
        assert np.all(v[after] > -60.0)


def test_errors_name_the_bad_argument():
    with pytest.raises(ValueError, match="tau_e"):
        ns.CobaLIF(tau_e=0.0)
    with pytest.raises(ValueError, match="v_reset"):
        ns.CobaLIF(v_reset=-40.0)
    with pytest.raises(ValueError, match="exact"):
        ns.simulate(ns.CobaLIF(), n=1, t1=10.0, exact=True)
