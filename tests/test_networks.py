"""`neurosim.networks.brette_coba`: the COBA benchmark network as documented."""

import numpy as np

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
