"""`neurosim.networks`: the benchmark networks as documented, and their random connections."""

import numpy as np
import pytest

import neurosim as ns


def test_brette_coba_connects_excitatory_to_g_e_and_inhibitory_to_g_i():
    n, p = 200, 0.05
    net, y0 = ns.networks.brette_coba(1, n=n, p=p)
    exc, inh = net.connections
    assert (exc.target, inh.target) == ("g_e", "g_i")
    n_exc = 160
    for conn, weight, sources in ((exc, 0.6, (0, n_exc)), (inh, 6.7, (n_exc, n))):
        w = np.asarray(conn.weight)  # one row per presynaptic neuron, zero-padded
        pre = np.nonzero(w)[0]
        assert np.all((pre >= sources[0]) & (pre < sources[1]))
        np.testing.assert_allclose(w[w != 0], weight, rtol=1e-6)
        # About p of the possible synapses (binomial, 5 sd).
        possible = (sources[1] - sources[0]) * n
        assert abs(len(pre) - p * possible) < 5 * np.sqrt(possible * p * (1 - p))
    state = y0["coba"]
    v, g_e, g_i = (np.asarray(x) for x in (state.v, state.g_e, state.g_i))
    assert np.all((v >= -60.0) & (v <= -50.0))
    assert np.all(g_e >= 0.0) and np.all(g_i >= 0.0)
    assert abs(g_i.mean() - 20.0) < 4.0 and abs(g_e.mean() - 4.0) < 0.6


def test_brette_coba_runs_with_refractory_spacing():
    n = 100
    net, y0 = ns.networks.brette_coba(0, n=n, we=0.6 * 40, wi=6.7 * 40)
    sol = ns.simulate(net, t1=30.0, y0=y0, max_spikes=2000, rtol=1e-6, atol=1e-6)
    times, neurons = sol.spikes("coba")
    assert len(times) > 0
    for k in range(n):
        assert np.all(np.diff(times[neurons == k]) >= 5.0 - 1e-4)


def _pair_frequencies(draw, n_pre, n_post, repeats):
    counts = np.zeros((n_pre, n_post))
    for seed in range(repeats):
        pre, post = draw(np.random.default_rng(seed))
        assert len(set(zip(pre.tolist(), post.tolist(), strict=True))) == len(pre)
        np.add.at(counts, (pre, post), 1)
    return counts / repeats


def _dense(conn, n):
    """A projection's weights as a dense `(pre, post)` matrix."""
    w, post = np.asarray(conn.weight), np.asarray(conn.post_index)
    rows = np.broadcast_to(np.arange(w.shape[0])[:, None], w.shape)
    out = np.zeros((n, n))
    ok = post < n
    np.add.at(out, (rows[ok], post[ok]), w[ok])
    return out


def _coba_euler(neuron, w_e, w_i, state, t1, dt):
    """Forward Euler for `v` and exact decay for the conductances, spike times
    interpolated within the step, the refractory hold ended within the step: an
    independent integration of a COBA network (a spike adds row `pre` of `w_e` to the
    targets' `g_e` and of `w_i` to their `g_i`)."""
    names = (
        "tau_mem",
        "v_leak",
        "v_th",
        "v_reset",
        "t_ref",
        "E_e",
        "E_i",
        "tau_e",
        "tau_i",
    )
    tau, v_leak, v_th, v_reset, t_ref, e_e, e_i, tau_e, tau_i = (
        np.asarray(getattr(neuron, k), float) for k in names
    )
    v, g_e, g_i = (np.array(getattr(state, k), float) for k in ("v", "g_e", "g_i"))
    ref_end = np.full(v.shape, -np.inf)
    times, neurons = [], []
    for k in range(int(round(t1 / dt))):
        t = k * dt
        free = np.clip(t + dt - np.maximum(ref_end, t), 0.0, dt)  # not refractory
        dv = (v_leak - v + g_e * (e_e - v) + g_i * (e_i - v)) / tau
        v_new = np.where(free > 0, v + free * dv, v)
        g_e, g_i = g_e * np.exp(-dt / tau_e), g_i * np.exp(-dt / tau_i)
        fired = (v_new > v_th) & (free > 0)
        if fired.any():
            start = t + dt - free[fired]
            at = start + free[fired] * (v_th - v[fired]) / (v_new[fired] - v[fired])
            times.extend(at)
            neurons.extend(np.nonzero(fired)[0])
            v_new[fired] = v_reset
            ref_end[fired] = at + t_ref
            g_e, g_i = g_e + w_e[fired].sum(axis=0), g_i + w_i[fired].sum(axis=0)
        v = v_new
    return np.asarray(times), np.asarray(neurons)


def test_brette_coba_spikes_match_an_independent_clock_driven_run(x64):
    """A reduced COBA network (200 neurons, p = 0.05, weights scaled to the published
    fan-in, 40 ms, 576 spikes) against `_coba_euler`: every neuron fires as often, each
    spike within 1e-2 ms at dt = 1e-3 (measured 8.2e-3, and 2.0e-3 at dt = 2.5e-4:
    first order, towards neurosim's times). With transposed weights the Euler run fires
    1280 spikes, so the wiring and the targets (`g_e`, `g_i`) are checked."""
    n, p = 200, 0.05
    scale = 4000 * 0.02 / (n * p)
    net, y0 = ns.networks.brette_coba(2, n=n, p=p, we=0.6 * scale, wi=6.7 * scale)
    exc, inh = net.connections
    neuron = net.populations["coba"].neuron
    sol = ns.simulate(net, t1=40.0, y0=y0, max_spikes=3000, rtol=1e-10, atol=1e-10)
    times, neurons = sol.spikes()
    w_e, w_i = _dense(exc, n), _dense(inh, n)
    ref_times, ref_neurons = _coba_euler(neuron, w_e, w_i, y0["coba"], 40.0, 1e-3)
    assert len(times) == len(ref_times) > 300
    for k in range(n):
        np.testing.assert_allclose(
            np.sort(ref_times[ref_neurons == k]), times[neurons == k], atol=1e-2
        )
    swapped, _ = _coba_euler(neuron, w_e.T, w_i.T, y0["coba"], 40.0, 1e-3)
    assert abs(len(swapped) - len(times)) > 100


def test_random_connections_with_probability_p_connect_each_pair_independently():
    """Every pair, self-pairs included, is connected with probability p: frequencies
    over 400 draws within 5 sd of p, and the number of synapses of one draw binomial."""
    n_pre, n_post, p, repeats = 12, 9, 0.3, 400
    freq = _pair_frequencies(
        lambda rng: ns.networks.random_connections(rng, n_pre, n_post, p=p),
        n_pre,
        n_post,
        repeats,
    )
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / repeats))
    pairs = 3000 * 2000
    pre, post = ns.networks.random_connections(np.random.default_rng(7), 3000, 2000, p=0.01)
    assert abs(len(pre) - 0.01 * pairs) < 5 * np.sqrt(pairs * 0.01 * 0.99)
    assert pre.min() >= 0 and pre.max() < 3000 and post.min() >= 0 and post.max() < 2000
    assert np.all(np.diff(pre) >= 0)
    for p_edge, expected in ((0.0, 0), (1.0, 12 * 9)):
        pre, _ = ns.networks.random_connections(np.random.default_rng(0), 12, 9, p=p_edge)
        assert len(pre) == expected


def test_random_connections_with_a_fan_out_draw_distinct_targets_uniformly():
    """Each neuron gets exactly `fan_out` distinct targets; every target with
    probability k/n and every pair of targets with k(k-1)/(n(n-1)) (within 5 sd over
    600 draws), as for a uniform k-subset. Both the sparse (redraw) and the dense
    (permutation) ways are exercised."""
    n_post, repeats = 10, 600
    for k in (3, 8):
        samples = []
        for seed in range(repeats):
            pre, post = ns.networks.random_connections(
                np.random.default_rng(seed), 4, n_post, fan_out=k
            )
            assert np.array_equal(np.bincount(pre, minlength=4), [k] * 4)
            rows = post.reshape(4, k)
            assert all(len(set(row.tolist())) == k for row in rows)
            samples.extend(rows)
        member = np.zeros((len(samples), n_post))
        for i, row in enumerate(samples):
            member[i, row] = 1
        single = member.mean(axis=0)
        p1 = k / n_post
        assert np.all(np.abs(single - p1) < 5 * np.sqrt(p1 * (1 - p1) / len(samples)))
        both = (member.T @ member) / len(samples)
        p2 = k * (k - 1) / (n_post * (n_post - 1))
        off = ~np.eye(n_post, dtype=bool)
        assert np.all(np.abs(both[off] - p2) < 5 * np.sqrt(p2 * (1 - p2) / len(samples)))


def test_random_connections_refuse_bad_arguments_by_name():
    rng = np.random.default_rng(0)
    for kwargs, match in (
        ({}, "exactly one of `p`"),
        ({"p": 0.1, "fan_out": 3}, "exactly one of `p`"),
        ({"p": 1.5}, "`p` is a connection probability"),
        ({"fan_out": 11}, "`fan_out` must lie in"),
    ):
        with pytest.raises(ValueError, match=match):
            ns.networks.random_connections(rng, 5, 10, **kwargs)


def test_cuba_with_a_fixed_fan_out_gives_every_neuron_that_many_targets():
    n, k = 1000, 80
    net, _ = ns.networks.vogels_abbott_cuba(0, n=n, fan_out=k)
    per_row = sum(np.sum(np.asarray(c.post_index) < n, axis=1) for c in net.connections)
    assert np.all(per_row == k)
    exc, inh = net.connections
    assert np.all(np.asarray(exc.post_index)[800:] == n)  # inhibitory rows: none
    assert np.all(np.asarray(inh.post_index)[:800] == n)


def _izhikevich_euler(neuron, current, weights, t1, dt):
    """Forward Euler with spike times interpolated within the step: an independent
    integration of the Izhikevich (2003) network (each spike jumps every target's v by
    its weight, self included, after the reset)."""
    a, b, c, d = (np.asarray(getattr(neuron, k)) for k in "abcd")
    values = np.asarray(current.values)
    v = np.full(len(a), -65.0)
    u = b * v
    times, neurons = [], []
    for k in range(int(round(t1 / dt))):
        t = k * dt
        drive = values[int(np.floor(t + 1e-9))]
        v_new = v + dt * (0.04 * v * v + 5.0 * v + 140.0 - u + drive)
        u = u + dt * a * (b * v - u)
        fired = v_new >= 30.0
        if fired.any():
            times.extend(t + dt * (30.0 - v[fired]) / (v_new[fired] - v[fired]))
            neurons.extend(np.nonzero(fired)[0])
            v_new[fired] = c[fired]
            u[fired] += d[fired]
            v_new = v_new + weights[fired].sum(axis=0)
        v = v_new
    order = np.lexsort((neurons, times))
    return np.asarray(times)[order], np.asarray(neurons)[order]


def test_izhikevich_2003_is_the_published_network(x64):
    """Parameters, weights and thalamic input as in the paper, and the spikes of a
    reduced network (40 + 10 neurons, 60 ms) against an independent Euler integration
    at dt = 1e-3 ms (first order: 2.7e-3 ms off at 1e-3, 6.8e-4 at 2.5e-4 over 30 ms).
    Transposed weights put the Euler run 5.7 ms off, so the wiring is checked."""
    n_exc, n_inh = 40, 10
    net, y0 = ns.networks.izhikevich_2003(3, n_exc=n_exc, n_inh=n_inh, t1=60.0)
    pop = net.populations["izhikevich"]
    neuron, current = pop.neuron, pop.current
    a, b, c, d = (np.asarray(getattr(neuron, k)) for k in "abcd")
    exc, inh = slice(0, n_exc), slice(n_exc, None)
    assert np.all(a[exc] == 0.02) and np.all(b[exc] == 0.2)
    r = np.sqrt((c[exc] + 65.0) / 15.0)
    np.testing.assert_allclose(d[exc], 8.0 - 6.0 * r**2)
    r = (a[inh] - 0.02) / 0.08
    np.testing.assert_allclose(b[inh], 0.25 - 0.05 * r)
    assert np.all((r >= 0) & (r < 1)) and np.all(c[inh] == -65.0) and np.all(d[inh] == 2.0)
    weights = np.asarray(net.connections[0].weight)  # [pre, post], all to all
    assert weights.shape == (50, 50)
    assert np.all((weights[exc] >= 0) & (weights[exc] < 0.5))
    assert np.all((weights[inh] <= 0) & (weights[inh] > -1))
    np.testing.assert_array_equal(np.asarray(current.times), np.arange(1.0, 60.0))
    values = np.asarray(current.values)
    assert values.shape == (60, 50)
    assert 4.0 < values[:, exc].std() < 6.0 and 1.6 < values[:, inh].std() < 2.4
    state = y0["izhikevich"]
    np.testing.assert_array_equal(np.asarray(state.u), b * -65.0)

    sol = ns.simulate(net, t1=60.0, y0=y0, max_spikes=2000, rtol=1e-10, atol=1e-10)
    times, neurons = sol.spikes()
    ref_times, ref_neurons = _izhikevich_euler(neuron, current, weights, 60.0, 1e-3)
    assert len(times) == len(ref_times) >= 10
    np.testing.assert_array_equal(neurons, ref_neurons)
    np.testing.assert_allclose(times, ref_times, atol=1e-2)
