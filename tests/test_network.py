"""Networks: populations, projections (dense/sparse, delays, targets), inputs, records."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _compare import assert_same_spikes
from _random_networks import STRUCTURES, draw
from jax.experimental import sparse as jsparse

import neurosim as ns
from neurosim.inputs import PulseTrain, Step, poisson_spikes

LN3 = np.log(3.0)
TIGHT = dict(rtol=1e-12, atol=1e-12)


def _kernel_v(s, tau_mem, tau_syn):
    """v response of a LIF (v_leak = 0) to a unit jump of i at s = 0."""
    s = np.maximum(s, 0.0)
    return tau_syn / (tau_syn - tau_mem) * (np.exp(-s / tau_syn) - np.exp(-s / tau_mem))


def test_two_populations_equal_one_population_with_block_weights():
    lif = ns.LIF(tau_mem=10.0, tau_syn=4.0, t_ref=1.0)
    current_a = jnp.array([1.6, 1.3, 1.1])
    current_b = jnp.array([0.9, 1.05])
    w_aa = jnp.array([[0.0, 0.3, 0.1], [0.2, 0.0, 0.0], [0.0, 0.4, 0.0]])
    w_ab = jnp.array([[0.5, 0.0], [0.0, 0.3], [0.2, 0.2]])
    w_ba = jnp.array([[-0.4, 0.0, -0.2], [0.0, -0.3, 0.0]])
    net = ns.Network(
        populations={
            "a": ns.Population(lif, 3, current_a),
            "b": ns.Population(lif, 2, current_b),
        },
        projections=[
            ns.Projection("a", "a", w_aa),
            ns.Projection("a", "b", w_ab),
            ns.Projection("b", "a", w_ba),
        ],
    )
    block = jnp.block([[w_aa, w_ab], [w_ba, jnp.zeros((2, 2))]])
    sol_net = ns.simulate(net, t1=150.0, max_spikes=256)
    sol_one = ns.simulate(
        lif,
        n=5,
        t1=150.0,
        current=jnp.concatenate([current_a, current_b]),
        weights=block,
        max_spikes=256,
    )
    t_net, i_net = sol_net.spikes()
    t_one, i_one = sol_one.spikes()
    assert len(t_net) > 20
    np.testing.assert_array_equal(i_net, i_one)
    np.testing.assert_allclose(t_net, t_one, rtol=1e-6)
    t_b, i_b = sol_net.spikes("b")
    mine = i_one >= 3
    np.testing.assert_allclose(t_b, t_one[mine], rtol=1e-6)
    np.testing.assert_array_equal(i_b, i_one[mine] - 3)


def _delayed_pair(delay, weight=0.4, t1=40.0, record=None, target=None):
    lif = ns.LIF(tau_mem=10.0, tau_syn=5.0)
    net = ns.Network(
        populations={"a": ns.Population(lif, 1, 1.5), "b": ns.Population(lif, 1)},
        projections=[
            ns.Projection("a", "b", jnp.array([[weight]]), delay=delay, target=target)
        ],
    )
    return ns.simulate(net, t1=t1, record=record, max_spikes=16, **TIGHT)


def test_delayed_response_starts_exactly_delay_after_the_spike(x64):
    delay, weight = 3.0, 0.4
    t_a = 10 * LN3
    offsets = np.array([-0.5, -1e-9, 1e-9, 1.0, 4.0, 9.0])
    record = jnp.asarray(t_a + delay + offsets)
    sol = _delayed_pair(delay, weight, t1=float(t_a + delay + 9.5), record=record)
    t_spikes, neurons = sol.spikes("a")
    np.testing.assert_allclose(t_spikes[0], t_a, atol=1e-9)
    s = offsets
    i_expected = np.where(s > 0, weight * np.exp(-np.maximum(s, 0) / 5.0), 0.0)
    v_expected = np.where(s > 0, weight * _kernel_v(s, 10.0, 5.0), 0.0)
    np.testing.assert_allclose(np.asarray(sol.states["b"].i[:, 0]), i_expected, atol=1e-9)
    np.testing.assert_allclose(np.asarray(sol.states["b"].v[:, 0]), v_expected, atol=1e-9)


def test_gradient_of_delayed_spike_with_respect_to_delay_is_one(x64):
    def first_b_spike(delay):
        lif = ns.LIF(tau_mem=10.0, tau_syn=5.0)
        net = ns.Network(
            populations={"a": ns.Population(lif, 1, 1.5), "b": ns.Population(lif, 1)},
            projections=[ns.Projection("a", "b", jnp.array([[8.0]]), delay=delay)],
        )
        sol = ns.simulate(net, t1=40.0, max_spikes=16, **TIGHT)
        return jnp.min(jnp.where(sol.spike_neurons == 1, sol.spike_times, jnp.inf))

    grad = jax.grad(first_b_spike)(2.0)
    np.testing.assert_allclose(float(grad), 1.0, rtol=1e-6)


def test_per_synapse_delays_and_simultaneous_deliveries(x64):
    n_pre = 12
    lif = ns.LIF(tau_mem=10.0, tau_syn=5.0)
    weights = jnp.full((n_pre, 2), 0.05)
    delays = jnp.stack([jnp.full((n_pre,), 1.0), jnp.full((n_pre,), 2.5)], axis=1)
    net = ns.Network(
        populations={"a": ns.Population(lif, n_pre, 1.5), "b": ns.Population(lif, 2)},
        projections=[ns.Projection("a", "b", weights, delay=delays)],
    )
    t_a = 10 * LN3
    record = jnp.asarray(t_a + np.array([0.9, 1.5, 2.4, 3.0]))
    sol = ns.simulate(net, t1=float(t_a) + 4.0, record=record, max_spikes=64, **TIGHT)
    t_spikes, _ = sol.spikes("a")
    assert len(t_spikes) == n_pre
    s = np.asarray(record) - t_a
    total = n_pre * 0.05
    for k, delay in enumerate([1.0, 2.5]):
        expected = np.where(s > delay, total * _kernel_v(s - delay, 10.0, 5.0), 0.0)
        np.testing.assert_allclose(np.asarray(sol.states["b"].v[:, k]), expected, atol=1e-9)


def test_delta_synapse_target_v_and_kick_above_threshold_spikes_at_arrival(x64):
    t_a = 10 * LN3
    sol = _delayed_pair(
        2.0, weight=0.3, t1=t_a + 6.0, record=jnp.asarray([t_a + 3.0]), target="v"
    )
    np.testing.assert_allclose(
        float(sol.states["b"].v[0, 0]), 0.3 * np.exp(-1.0 / 10.0), atol=1e-9
    )
    kicked = _delayed_pair(2.0, weight=1.5, t1=t_a + 6.0, target="v")
    t_b, _ = kicked.spikes("b")
    np.testing.assert_allclose(t_b, [t_a + 2.0], atol=1e-9)


def _random_network_weights(n, seed=0):
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n, n)) < 0.2, rng.normal(0.25, 0.2, (n, n)), 0.0)
    np.fill_diagonal(dense, 0.0)
    return dense


def test_sparse_and_dense_projections_give_identical_spikes():
    n = 30
    dense = _random_network_weights(n)
    lif = ns.LIF(tau_mem=15.0, tau_syn=5.0, t_ref=2.0)
    current = jnp.asarray(np.linspace(0.8, 1.5, n))
    pre, post = np.nonzero(dense)
    variants = {
        "dense": jnp.asarray(dense),
        "triplets": (pre, post, jnp.asarray(dense[pre, post])),
        "bcoo": jsparse.BCOO.fromdense(jnp.asarray(dense)),
    }
    results = {}
    for name, weights in variants.items():
        net = ns.Network(
            populations={"p": ns.Population(lif, n, current)},
            projections=[ns.Projection("p", "p", weights)],
        )
        results[name] = ns.simulate(net, t1=100.0, max_spikes=1024).spikes()
    assert len(results["dense"][0]) > 50
    for name in ("triplets", "bcoo"):
        np.testing.assert_array_equal(results[name][1], results["dense"][1])
        np.testing.assert_allclose(results[name][0], results["dense"][0], rtol=1e-6)


def test_poisson_rate_within_statistical_bounds_and_reproducible():
    rate, sources, t1 = 20.0, 400, 1000.0
    times, idx = poisson_spikes(jax.random.PRNGKey(3), rate, num_sources=sources, t1=t1)
    counts = np.bincount(np.asarray(idx)[np.isfinite(np.asarray(times))], minlength=sources)
    expected = rate * t1 / 1000.0
    # Mean of 400 Poisson(20) counts: standard error sqrt(20/400) = 0.22.
    assert abs(counts.mean() - expected) < 5 * np.sqrt(expected / sources)
    # Poisson: variance equals the mean (Fano factor 1), within sampling error.
    assert abs(counts.var() / counts.mean() - 1.0) < 0.25
    again, _ = poisson_spikes(jax.random.PRNGKey(3), rate, num_sources=sources, t1=t1)
    np.testing.assert_array_equal(np.asarray(times), np.asarray(again))
    other, _ = poisson_spikes(jax.random.PRNGKey(4), rate, num_sources=sources, t1=t1)
    assert not np.array_equal(np.asarray(times), np.asarray(other))
    finite = np.asarray(times)[np.isfinite(np.asarray(times))]
    assert np.all(np.diff(finite) >= 0) and finite.min() >= 0 and finite.max() <= t1


def test_poisson_time_varying_rate_by_thinning():
    def rate(t):
        return jnp.where(t < 500.0, 40.0, 0.0)

    times, _ = poisson_spikes(
        jax.random.PRNGKey(0), (rate, 40.0), num_sources=300, t1=1000.0
    )
    finite = np.asarray(times)[np.isfinite(np.asarray(times))]
    assert np.all(finite < 500.0)
    per_source = len(finite) / 300
    assert abs(per_source - 20.0) < 5 * np.sqrt(20.0 / 300)


def test_step_current_spike_matches_closed_form(x64):
    sol = ns.simulate(
        ns.LIF(tau_mem=10.0), n=1, t1=40.0, current=Step(5.0, 1.5, t_off=30.0), **TIGHT
    )
    times, _ = sol.spikes()
    # From rest at t = 5: k * 10 ln 3 later, while the step is on.
    np.testing.assert_allclose(times, 5.0 + np.array([1, 2]) * 10 * LN3, atol=1e-9)


def test_pulse_train_drive_matches_closed_form(x64):
    # Pulses of 2.0 for 4 ms every 20 ms: v = 2 (1 - exp(-s/10)) reaches 1 at s = 10 ln 2 > 4,
    # so no spikes, and the voltage at the end of each pulse is known in closed form.
    pulses = PulseTrain(start=2.0, width=4.0, period=20.0, amplitude=2.0, count=3)
    ends = 2.0 + np.arange(3) * 20.0 + 4.0
    sol = ns.simulate(
        ns.LIF(tau_mem=10.0),
        n=1,
        t1=70.0,
        current=pulses,
        record=jnp.asarray(ends),
        **TIGHT,
    )
    assert int(sol.num_spikes) == 0
    v_end = 2.0 * (1 - np.exp(-0.4))
    decay = np.exp(-16.0 / 10.0)
    expected = [v_end]
    for _ in range(2):
        start = expected[-1] * decay
        expected.append(2.0 + (start - 2.0) * np.exp(-0.4))
    np.testing.assert_allclose(np.asarray(sol.states.v[:, 0]), expected, atol=1e-9)


def test_lif_hidden_layer_feeds_li_readout(x64):
    hidden = ns.LIF(tau_mem=10.0, tau_syn=5.0)
    readout = ns.LI(tau_mem=20.0, tau_syn=5.0)
    w_out = jnp.array([[0.5], [-0.2]])
    net = ns.Network(
        populations={
            "hidden": ns.Population(hidden, 2, jnp.array([1.5, 2.0])),
            "readout": ns.Population(readout, 1),
        },
        projections=[ns.Projection("hidden", "readout", w_out)],
    )
    record = jnp.linspace(0.0, 60.0, 13)
    sol = ns.simulate(
        net,
        t1=60.0,
        record=record,
        record_fields={"readout": ("v",)},
        max_spikes=64,
        **TIGHT,
    )
    times, neurons = sol.spikes("hidden")
    expected = np.zeros(13)
    r = np.asarray(record)
    for t_k, k in zip(times, neurons):
        expected += np.where(
            r > t_k, float(w_out[k, 0]) * _kernel_v(r - t_k, 20.0, 5.0), 0.0
        )
    np.testing.assert_allclose(
        np.asarray(sol.states["readout"].v[:, 0]), expected, atol=1e-9
    )
    # Spike times of the hidden layer are the closed-form ones.
    np.testing.assert_allclose(
        times[neurons == 1][:2], 10 * np.log(2.0) * np.array([1, 2]), atol=1e-9
    )


def test_network_spike_inputs_and_rates():
    times, sources = poisson_spikes(jax.random.PRNGKey(1), 50.0, num_sources=20, t1=200.0)
    lif = ns.LIF(tau_mem=10.0, tau_syn=5.0)
    net = ns.Network(
        populations={"p": ns.Population(lif, 10)},
        projections=[ns.Projection("drive", "p", jnp.full((20, 10), 0.35))],
        inputs={"drive": ns.SpikeTrains(times, sources, num_sources=20)},
    )
    sol = ns.simulate(net, t1=200.0, max_spikes=4096)
    rates = sol.rates("p")
    assert rates.shape == (10,) and np.all(rates > 0)
    # Identical neurons with identical input fire identically.
    trains = sol.spike_trains("p")
    for train in trains[1:]:
        np.testing.assert_allclose(train, trains[0], rtol=1e-6)
    edges, rate = sol.population_rate("p", bin_ms=50.0)
    assert len(edges) == 4
    np.testing.assert_allclose(rate.mean(), rates.mean(), rtol=1e-6)


def test_reduced_cuba_runs_to_the_end():
    n = 400
    net, y0 = ns.networks.vogels_abbott_cuba(0, n=n, we=1.62 * 4000 / n, wi=-9.0 * 4000 / n)
    sol = ns.simulate(net, t1=100.0, y0=y0, max_spikes=20_000)
    assert float(sol.t_final) == 100.0 and not bool(sol.overflow)
    rate = sol.rates("cuba").mean()
    assert 1.0 < rate < 100.0
    # Refractoriness: no neuron fires twice within 5 ms.
    for train in sol.spike_trains("cuba"):
        assert np.all(np.diff(train) >= 5.0 - 1e-4)


def test_cuba_with_a_delay_is_unconnected_until_the_first_spike_arrives():
    """`vogels_abbott_cuba(delay=d)`: until the first spike plus d nothing is delivered,
    so the spikes are those of the same neurons unconnected, to the bit (no neuron is
    touched before then); later they differ. (Zero weights would not do: a delivery
    of zero still brings its targets to the spike time, and re-predicting them from
    there moves a float32 crossing time by rounding: 9e-6 ms for one seed.)"""
    n, d = 400, 1.5
    scale = dict(we=1.62 * 4000 / n, wi=-9.0 * 4000 / n)
    net, y0 = ns.networks.vogels_abbott_cuba(0, n=n, delay=d, **scale)
    silent = ns.Network(populations={"cuba": net.populations["cuba"]})
    delayed = ns.simulate(net, t1=30.0, y0=y0, max_spikes=5000, gradients=False)
    alone = ns.simulate(silent, t1=30.0, y0=y0, max_spikes=5000, gradients=False)
    t_d, n_d = delayed.spikes()
    t_a, n_a = alone.spikes()
    early = t_a < t_a[0] + d
    assert early.sum() >= 3
    np.testing.assert_array_equal(t_d[: early.sum()], t_a[early])
    np.testing.assert_array_equal(n_d[: early.sum()], n_a[early])
    assert t_d[early.sum()] >= t_a[0] + d  # the next spike comes after the delivery
    assert not np.array_equal(t_d[: len(t_a)], t_a[: len(t_d)])


def test_full_delay_queue_is_reported():
    lif = ns.LIF(tau_mem=10.0)
    net = ns.Network(
        populations={"a": ns.Population(lif, 4, 3.0), "b": ns.Population(lif, 1)},
        projections=[ns.Projection("a", "b", jnp.full((4, 1), 0.1), delay=50.0)],
    )
    with pytest.raises(ns.SimulationError, match="max_in_flight") as info:
        ns.simulate(net, t1=60.0, max_in_flight=6, max_spikes=128)
    assert int(info.value.solution.num_spikes) > 0


@pytest.mark.parametrize(
    "build, match",
    [
        (
            lambda lif: ns.Network(
                {"a": ns.Population(lif, 2)}, [ns.Projection("a", "c", jnp.zeros((2, 2)))]
            ),
            "'c'",
        ),
        (
            lambda lif: ns.Network(
                {"a": ns.Population(lif, 2)}, [ns.Projection("x", "a", jnp.zeros((2, 2)))]
            ),
            "'x'",
        ),
        (
            lambda lif: ns.Network(
                {"a": ns.Population(lif, 2)}, [ns.Projection("a", "a", jnp.zeros((3, 2)))]
            ),
            "shape",
        ),
        (
            lambda lif: ns.Network(
                {"a": ns.Population(lif, 2)},
                [ns.Projection("a", "a", jnp.zeros((2, 2)), target="w")],
            ),
            "'w'",
        ),
        (
            lambda lif: ns.Network(
                {"a": ns.Population(lif, 2)},
                [ns.Projection("a", "a", jnp.zeros((2, 2)), delay=-1.0)],
            ),
            "delay",
        ),
        (
            lambda lif: ns.Network(
                {"a": ns.Population(lif, 2)}, [ns.Projection("a", "a", ([0], [5], [1.0]))]
            ),
            "post_index",
        ),
    ],
)
def test_bad_networks_name_the_problem(build, match):
    with pytest.raises(ValueError, match=match):
        build(ns.LIF())


def test_network_rejects_single_population_arguments():
    net = ns.Network({"a": ns.Population(ns.LIF(), 2)})
    with pytest.raises(ValueError, match="current"):
        ns.simulate(net, t1=10.0, current=1.0)
    with pytest.raises(ValueError, match="y0"):
        ns.simulate(net, t1=10.0, y0={"zzz": ns.LIF().init_state(2)})


def _izhikevich_reference(params, currents, weights, v0, u0, t1):
    """Spike times of a recurrent Izhikevich network (incoming spikes jump `v` by the
    weight), integrated independently: scipy's DOP853 between spikes, a terminal event
    on the largest `v - 30`, reset and deliveries applied at each spike."""
    from scipy.integrate import solve_ivp

    a, b, c, d = (np.asarray(x, float) for x in params)
    n = len(a)

    def field(t, y):
        v, u = y[:n], y[n:]
        return np.concatenate([0.04 * v * v + 5 * v + 140 - u + currents, a * (b * v - u)])

    def threshold(t, y):
        return np.max(y[:n]) - 30.0

    threshold.terminal, threshold.direction = True, 1
    t, y, spikes = 0.0, np.concatenate([v0, u0]).astype(float), []
    while t < t1:
        sol = solve_ivp(
            field, (t, t1), y, method="DOP853", rtol=1e-12, atol=1e-12, events=threshold
        )
        if sol.status != 1:
            break
        t, y = sol.t_events[0][0], sol.y_events[0][0].copy()
        k = int(np.argmax(y[:n]))
        spikes.append((t, k))
        y[k], y[n + k] = c[k], y[n + k] + d[k]
        y[:n] += weights[k]
    return spikes


def test_recurrent_izhikevich_excitatory_and_fast_spiking_populations(x64):
    """Regular-spiking excitatory and fast-spiking inhibitory Izhikevich populations,
    recurrently coupled (exc -> exc, exc -> inh, inh -> exc), against an independent
    event-driven integration of the whole network."""
    exc = ns.Izhikevich(a=0.02, b=0.2, c=-65.0, d=8.0)
    inh = ns.Izhikevich(a=0.1, b=0.2, c=-65.0, d=2.0)
    w_ee = np.array([[0.0, 6.0], [3.0, 0.0]])
    w_ei = np.array([[4.0], [4.0]])
    w_ie = np.array([[-5.0, -5.0]])
    i_exc, i_inh = np.array([14.0, 6.0]), np.array([3.0])
    net = ns.Network(
        populations={
            "exc": ns.Population(exc, 2, jnp.asarray(i_exc)),
            "inh": ns.Population(inh, 1, jnp.asarray(i_inh)),
        },
        projections=[
            ns.Projection("exc", "exc", jnp.asarray(w_ee)),
            ns.Projection("exc", "inh", jnp.asarray(w_ei)),
            ns.Projection("inh", "exc", jnp.asarray(w_ie)),
        ],
    )
    t1 = 300.0
    sol = ns.simulate(net, t1=t1, max_spikes=128, **TIGHT)
    weights = np.zeros((3, 3))
    weights[:2, :2], weights[:2, 2:], weights[2:, :2] = w_ee, w_ei, w_ie
    v0 = np.concatenate([np.asarray(exc.init_state(2).v), np.asarray(inh.init_state(1).v)])
    u0 = np.concatenate([np.asarray(exc.init_state(2).u), np.asarray(inh.init_state(1).u)])
    expected = _izhikevich_reference(
        ([0.02, 0.02, 0.1], [0.2] * 3, [-65.0] * 3, [8.0, 8.0, 2.0]),
        np.concatenate([i_exc, i_inh]),
        weights,
        v0,
        u0,
        t1,
    )
    got = [(float(t), int(k)) for t, k in zip(*sol.spikes("exc"))]
    got += [(float(t), 2 + int(k)) for t, k in zip(*sol.spikes("inh"))]
    got.sort()
    assert len(expected) >= 10
    assert {k for _, k in expected} == {0, 1, 2}  # every neuron takes part
    assert [k for _, k in got] == [k for _, k in expected]
    np.testing.assert_allclose([t for t, _ in got], [t for t, _ in expected], atol=1e-6)


def _wide_fan_in(scale, gradients, simultaneous):
    """12 presynaptic LIF neurons (more than one gather round of rows) onto 3 targets;
    with `simultaneous`, all 12 have the same drive and fire together."""
    drive = jnp.full((12,), 1.6) if simultaneous else jnp.linspace(1.3, 2.4, 12)
    w = scale * (0.05 + 0.01 * jnp.arange(36.0).reshape(12, 3))
    net = ns.Network(
        populations={
            "pre": ns.Population(ns.LIF(tau_mem=10.0), 12, drive),
            "post": ns.Population(ns.LIF(tau_mem=10.0, tau_syn=5.0), 3, 0.5),
        },
        projections=[ns.Projection("pre", "post", w)],
    )
    sol = ns.simulate(net, t1=60.0, max_spikes=256, gradients=gradients, **TIGHT)
    times, _ = (
        sol.spikes("post") if not isinstance(scale, jax.core.Tracer) else (None, None)
    )
    # Global indices follow the population names: "post" (0-2) before "pre" (3-14).
    post = jnp.where(sol.spike_neurons < 3, sol.spike_times, jnp.inf)
    return jnp.sort(post)[:3], times


@pytest.mark.parametrize("simultaneous", [False, True])
def test_gradient_through_a_wide_fan_in_and_the_forward_only_loop_agrees(simultaneous, x64):
    def first_post_spikes(scale):
        return jnp.sum(_wide_fan_in(scale, True, simultaneous)[0])

    scale, h = 1.0, 1e-5
    value, grad = jax.value_and_grad(first_post_spikes)(scale)
    fd = (first_post_spikes(scale + h) - first_post_spikes(scale - h)) / (2 * h)
    assert np.isfinite(float(value)) and abs(float(grad)) > 0.1
    np.testing.assert_allclose(float(grad), float(fd), rtol=1e-5)
    # The forward-only loop delivers more than 8 simultaneous spikes in gather rounds.
    _, with_grad = _wide_fan_in(scale, True, simultaneous)
    _, forward_only = _wide_fan_in(scale, False, simultaneous)
    np.testing.assert_allclose(with_grad, forward_only, rtol=0, atol=1e-9)


def test_population_order_is_by_name_inside_and_outside_jit():
    """Populations given out of name order: per-population spikes and global indices
    agree with each model's own drive (a regression test: the order inside `jit` is
    the sorted one)."""
    net = ns.Network(
        populations={
            "zeta": ns.Population(ns.LIF(tau_mem=10.0), 2, jnp.array([1.5, 3.0])),
            "alpha": ns.Population(ns.LIF(tau_mem=10.0), 1, 2.0),
        },
    )
    sol = ns.simulate(net, t1=15.0, max_spikes=32)
    assert list(net.offsets) == ["alpha", "zeta"]
    np.testing.assert_allclose(sol.spike_train(0, "alpha")[0], 10 * np.log(2.0), rtol=1e-4)
    np.testing.assert_allclose(sol.spike_train(0, "zeta")[0], 10 * LN3, rtol=1e-4)
    np.testing.assert_allclose(sol.spike_train(1, "zeta")[0], 10 * np.log(1.5), rtol=1e-4)


def test_mostly_zero_dense_weights_are_stored_by_synapse(x64):
    """A concrete dense matrix with few non-zeros is stored by its synapses (a spike
    touches its targets only); a traced one stays dense. Both give the same spikes."""
    rng = np.random.default_rng(5)
    n = 30
    w = rng.normal(0.0, 0.6, (n, n)) * (rng.random((n, n)) < 0.15)
    lif = ns.LIF(tau_mem=10.0, t_ref=1.0)
    current = jnp.asarray(np.linspace(1.1, 1.4, n))

    def network(weights):
        return ns.Network(
            populations={"p": ns.Population(lif, n, current)},
            projections=[ns.Projection("p", "p", weights)],
        )

    assert network(jnp.asarray(w)).connections[0].post_index is not None
    assert network(jnp.ones((n, n))).connections[0].post_index is None

    def spikes(weights):
        sol = ns.simulate(network(weights), t1=100.0, max_spikes=2000)
        return sol.spike_times, sol.spike_neurons, sol.num_spikes

    by_synapse = spikes(jnp.asarray(w))
    dense = jax.jit(spikes)(jnp.asarray(w))
    assert int(by_synapse[2]) == int(dense[2]) >= 100
    np.testing.assert_array_equal(by_synapse[1], dense[1])
    finite = np.isfinite(np.asarray(dense[0]))
    np.testing.assert_allclose(
        np.asarray(by_synapse[0])[finite], np.asarray(dense[0])[finite], atol=1e-9
    )


def _overlapping_projections(n, seed):
    """Two projections of one population onto itself from every neuron (to `ge` and
    `gi`, onto the first and the second half): a row has targets in both."""
    rng = np.random.default_rng(seed)
    neuron = ns.CubaLIF()
    projections = []
    for target, scale, first in (("ge", 1.0, 0), ("gi", -1.0, n // 2)):
        pre, post = ns.networks.random_connections(rng, n, n // 2, fan_out=12)
        post = post + first
        weight = scale * rng.uniform(0.1, 1.0, pre.shape[0])
        projections.append(ns.Projection("p", "p", (pre, post, weight), target=target))
    return ns.Network(populations={"p": ns.Population(neuron, n)}, projections=projections)


def _slots(plan, k, row, width):
    """For each entry of the plan's list of `row`, the slot of member `k`'s row that
    feeds it (`width`, the row's width, where none)."""
    if plan.sources[k] is not None:
        return np.asarray(plan.sources[k][row])
    size = plan.index.shape[1]  # the member's row is aligned with the list
    return np.where(np.arange(size) < width, np.arange(size), width)


def test_split_senders_deliver_as_dense_rows_do(x64):
    """Excitatory and inhibitory senders of one population (each row held by one of
    two projections; the plan's list is that row): the same spikes as the same
    weights held dense (traced under `jit`), which the loop sums without a plan."""
    rng = np.random.default_rng(8)
    n, n_exc = 120, 96
    neuron = ns.networks.vogels_abbott_cuba(n=2)[0].populations["cuba"].neuron
    mask = rng.random((n, n)) < 0.1
    w_exc = np.where(mask & (np.arange(n) < n_exc)[:, None], 1.2, 0.0)
    w_inh = np.where(mask & (np.arange(n) >= n_exc)[:, None], -4.0, 0.0)
    v0 = jnp.asarray(-60.0 + 10.0 * rng.random(n))

    def spikes(w_exc, w_inh):
        net = ns.Network(
            populations={"p": ns.Population(neuron, n)},
            projections=[
                ns.Projection("p", "p", w_exc, target="ge"),
                ns.Projection("p", "p", w_inh, target="gi"),
            ],
        )
        y0 = {"p": neuron.init_state(n)}
        y0["p"] = eqx.tree_at(lambda y: y.v, y0["p"], v0)
        sol = ns.simulate(net, y0=y0, t1=200.0, max_spikes=4000)
        return sol.spike_times, sol.spike_neurons, sol.num_spikes, net

    *by_rows, net = spikes(jnp.asarray(w_exc), jnp.asarray(w_inh))
    assert net.plans[0].aligned and net.plans[0].sources == (None, None)
    dense = jax.jit(lambda a, b: spikes(a, b)[:3])(jnp.asarray(w_exc), jnp.asarray(w_inh))
    assert int(by_rows[2]) == int(dense[2]) >= 200
    np.testing.assert_array_equal(by_rows[1], dense[1])
    finite = np.isfinite(np.asarray(dense[0]))
    np.testing.assert_allclose(
        np.asarray(by_rows[0])[finite], np.asarray(dense[0])[finite], atol=1e-9
    )


def _padded(longest):
    """The width rows are padded to: the longest row, rounded up to a multiple of 8
    when it is longer than 8 (the loop's vector registers)."""
    return longest if longest <= 8 else 8 * -(-longest // 8)


@pytest.mark.parametrize("block", [4096, 7], ids=["one-block", "blocks-of-7"])
@pytest.mark.parametrize("senders", ["split", "overlapping"])
def test_projections_that_deliver_together_share_one_target_list(
    block, senders, monkeypatch
):
    """Two projections that deliver together (one source population, self connections
    allowed) deliver through one list per presynaptic neuron: each target once, each
    projection's weight at its place, and the neuron's own place; the same when the
    plan is built a few rows at a time (the last block partial). Split senders (the
    CUBA network: excitatory rows in one projection, inhibitory in the other) keep
    each row as it is and name its owner; rows with targets in both are joined."""
    monkeypatch.setattr(ns._network, "PLAN_BLOCK", block)
    n = 200
    if senders == "split":
        net, _ = ns.networks.vogels_abbott_cuba(3, n=n)
    else:
        net = _overlapping_projections(n, 3)
    (plan,) = net.plans
    name = next(iter(net.populations))
    assert plan.aligned and plan.members == (0, 1) and plan.trigger == ("spike", name)
    # Split senders: each row is its owner's as it is (the other's is padding).
    assert all(source is None for source in plan.sources) == (senders == "split")
    expected = [{} for _ in range(n)]  # row -> target -> weight per projection
    for k, conn in enumerate(net.connections):
        post, weight = np.asarray(conn.post_index), np.asarray(conn.weight)
        for row in range(n):
            for target, w in zip(post[row], weight[row], strict=True):
                if target < n:
                    expected[row].setdefault(int(target), [0.0, 0.0])[k] += float(w)
    index = np.asarray(plan.index)
    assert index.shape[1] == _padded(max(len(found) for found in expected))
    for row in range(n):
        listed = index[row][index[row] < n]
        assert len(set(listed.tolist())) == len(listed)
        found = {int(t): [0.0, 0.0] for t in listed}
        for k, conn in enumerate(net.connections):
            weight = np.asarray(conn.weight[row])
            source = _slots(plan, k, row, weight.shape[0])
            for slot, target in enumerate(index[row]):
                if target < n and source[slot] < weight.shape[0]:
                    found[int(target)][k] += float(weight[source[slot]])
        assert found == expected[row]
        own = int(plan.self_slot[row])
        assert (own < index.shape[1] and index[row, own] == row) == (row in expected[row])


@pytest.mark.parametrize("delays", [False, True], ids=["given-order", "per-synapse-delays"])
def test_synapses_stored_by_presynaptic_rows_match_a_loop_over_synapses(delays, x64):
    """Synapses given out of order (as triplets) are stored by presynaptic rows padded
    to the longest (rounded up to a multiple of 8): each row holds its neuron's synapses in the given order, or by
    delay (ties in the given order), against a Python loop over the synapses; concrete
    and traced weights alike."""
    rng = np.random.default_rng(4)
    n_pre, n_post, m = 29, 17, 260
    pre, post = rng.integers(0, n_pre, m), rng.integers(0, n_post, m)
    pre[:5] = 3  # one longer row
    weight = rng.normal(size=m)
    delay = rng.choice([0.5, 1.0, 2.5], m) if delays else None
    rows = [[] for _ in range(n_pre)]
    for k in range(m):
        rows[pre[k]].append(k)
    if delays:
        rows = [sorted(row, key=lambda k: delay[k]) for row in rows]
    width = _padded(max(len(row) for row in rows))

    def stored(weight):
        net = ns.Network(
            populations={
                "a": ns.Population(ns.LIF(), n_pre),
                "b": ns.Population(ns.LIF(), n_post),
            },
            projections=[ns.Projection("a", "b", (pre, post, weight), delay=delay)],
        )
        (conn,) = net.connections
        return conn.weight, conn.post_index, conn.delay

    for w, p, d in (stored(weight), jax.jit(stored)(jnp.asarray(weight))):
        assert w.shape == p.shape == (n_pre, width)
        for i, row in enumerate(rows):
            pad = width - len(row)
            np.testing.assert_array_equal(w[i], np.r_[weight[row], np.zeros(pad)])
            np.testing.assert_array_equal(p[i], np.r_[post[row], np.full(pad, n_post)])
            if delays:
                np.testing.assert_array_equal(d[i], np.r_[delay[row], np.full(pad, np.inf)])


def test_reduced_cuba_exact_loop_equals_the_ode_solver(x64):
    """Both CUBA projections (merged delivery, self-connections) through the exact loop
    against the ODE-solver path."""
    n = 100
    net, y0 = ns.networks.vogels_abbott_cuba(1, n=n, we=1.62 * 4000 / n, wi=-9.0 * 4000 / n)
    kwargs = dict(t1=60.0, y0=y0, max_spikes=4000)
    exact = ns.simulate(net, **kwargs)
    solver = ns.simulate(net, exact=False, **kwargs, **TIGHT)
    assert_same_spikes(exact, solver, at_least=50, atol=1e-7)


def test_networks_of_one_shape_from_other_seeds_share_their_compiled_run():
    """A plan's static figures (`DeliveryPlan.width`, `typical`: part of the key of a
    compiled program) are padded widths, so networks of the same shapes drawn from
    other seeds share their structure, and a second network runs without compiling
    (tests/_random_networks.py relies on one program per structure). The unpadded
    typical row varied from seed to seed, and every seed compiled its own run."""
    for name, structure in sorted(STRUCTURES.items()):
        nets = [draw(seed, structure).network() for seed in range(6)]
        first = jax.tree_util.tree_structure(nets[0])
        assert all(jax.tree_util.tree_structure(net) == first for net in nets[1:]), name

    def run(seed):
        net = draw(seed, STRUCTURES["lif_exp"])
        sol = ns.simulate(
            net.network(), y0=net.y0(), t1=20.0, max_spikes=2000, gradients=False
        )
        return int(sol.num_spikes)

    assert run(0) > 0
    compiled = []

    def listen(event, duration, **_):
        if event.endswith("backend_compile_duration"):
            compiled.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        assert run(1) > 0
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert compiled == []


def test_events_that_fit_a_narrow_width_change_nothing(monkeypatch, x64):
    """Forward runs of the closed form compiled whole take an event whose lanes (the
    first neuron and its targets) fit in the width of the plan's typical row (80% of
    its rows are no longer; `DeliveryPlan.typical`) in a branch of that width. CUBA,
    1000 neurons, p = 0.02: most rows fit (so the branch is taken), and the spikes
    (within 1e-9 ms) and final states are those of every event at the full width (the
    two widths compile to code that can round differently)."""
    n = 1000
    net, y0 = ns.networks.vogels_abbott_cuba(0, n=n, we=1.62 * 4000 / n, wi=-9.0 * 4000 / n)
    (plan,) = net.plans
    lengths = sum(
        np.sum(np.asarray(conn.post_index) < n, axis=1) for conn in net.connections
    )
    typical = int(np.quantile(lengths, 0.8, method="higher"))
    width = np.asarray(plan.index).shape[1]
    assert plan.typical == min(width, 8 * -(-typical // 8))  # a multiple of 8
    thin, lanes = 1 + plan.typical, 1 + width
    assert lanes - thin >= ns._per_neuron.NARROW_GAP  # the branch is compiled
    assert np.mean(1 + lengths <= thin) >= 0.75  # and taken by most spikes

    def run():
        return ns.simulate(net, t1=200.0, y0=y0, max_spikes=20_000, gradients=False)

    narrow = run()
    monkeypatch.setattr(ns._per_neuron, "NARROW_ROWS", False)
    jax.clear_caches()  # (a switch read when the loop is traced)
    try:
        wide = run()
    finally:
        jax.clear_caches()
    assert_same_spikes(narrow, wide, at_least=500, atol=1e-9)
    for a, b in zip(
        jax.tree_util.tree_leaves(narrow.final_state),
        jax.tree_util.tree_leaves(wide.final_state),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
