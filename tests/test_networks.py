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
