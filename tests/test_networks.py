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
