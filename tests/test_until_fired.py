"""`simulate(..., until_fired=...)`: a run that ends once every neuron of a population
has fired. Checked against full runs to `t1` (the first spike times, the spikes up to
the end, the records before it) on every path (exact event loop, ODE network clock,
layered), on feed-forward fire-once networks and a recurrent one, with gradients,
under `vmap`, and its refusals."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurosim as ns

pytestmark = pytest.mark.usefixtures("float64")

T1 = 30.0
RECORD = jnp.linspace(0.0, T1, 13)
MAX_SPIKES = 200
TIGHT = dict(rtol=1e-12, atol=1e-12)  # the ODE path, against the closed form
PATHS = {"exact": dict(exact=True), "ode": dict(exact=False, **TIGHT)}
FEED_FORWARD_PATHS = {**PATHS, "layered": dict(exact="layered")}
# Spike times and states: exact paths agree to rounding, the ODE path to its tolerance.
TOLERANCE = {"exact": 1e-11, "layered": 1e-11, "ode": 1e-7}


def _network(seed, recurrent=False, silent_output=False, twins=False):
    """5 inputs (10 spike times) -> 12 hidden LIF -> 3 output LIF (0.5 ms delay); fire
    once (t_ref 1e4) unless `recurrent` (t_ref 2 ms and recurrent hidden weights of
    both signs); the last output neuron never fires with `silent_output`. `twins`
    adds a population "twin" equal to "out" and reached by the same weights: each
    output spike has a twin at the same instant, which a run ended by "out" must
    still apply."""
    rng = np.random.default_rng(seed)
    t_ref = 2.0 if recurrent else 1e4
    v_th = [1.0, 1.0, 100.0 if silent_output else 1.0]
    pops = {
        "hid": ns.Population(ns.LIF(tau_mem=8.0, tau_syn=3.0, t_ref=t_ref), 12, 0.0),
        "out": ns.Population(
            ns.LIF(tau_mem=10.0, tau_syn=5.0, t_ref=t_ref, v_th=jnp.asarray(v_th)), 3, 0.0
        ),
    }
    w_in = jnp.asarray(rng.uniform(0.0, 3.0, (5, 12)))
    w_out = jnp.asarray(rng.uniform(0.3, 1.2, (12, 3)))
    projections = [
        ns.Projection("in", "hid", w_in),
        ns.Projection("hid", "out", w_out, delay=0.5),
    ]
    if twins:
        pops["twin"] = pops["out"]
        projections.append(ns.Projection("hid", "twin", w_out, delay=0.5))
    if recurrent:
        w = jnp.asarray(rng.normal(0.0, 0.5, (12, 12)))
        projections.append(ns.Projection("hid", "hid", w))
    times = jnp.asarray(np.sort(rng.uniform(0.5, 10.0, 10)))
    inputs = {"in": ns.SpikeTrains(times, jnp.arange(10) % 5, 5)}
    return ns.Network(pops, projections, inputs)


def _run(net, path, **kwargs):
    return ns.simulate(
        net,
        t1=T1,
        max_spikes=MAX_SPIKES,
        record=RECORD,
        **FEED_FORWARD_PATHS[path],
        **kwargs,
    )


def _global(sol, name):
    """The global indices of population `name` (the network orders them)."""
    start, size = {p: (s, n) for p, s, n in sol.populations}[name]
    return np.arange(start, start + size)


def _check_against_full(sol, full, named, tol):
    """`sol` (ended by `until_fired`) against `full` (the same run to t1): it ends at
    the last first spike of the `named` global neurons, keeps the spikes up to then
    and the records before, and its records after are NaN."""
    first = np.asarray(full.first_spike_times())
    assert np.all(np.isfinite(first[named])), "the test network must complete"
    t_end = first[named].max()
    assert int(sol.status) == 1
    np.testing.assert_allclose(float(sol.t_final), t_end, rtol=tol)
    times, neurons = (np.asarray(x) for x in full.spikes())
    kept = times <= t_end + tol * t_end
    got_times, got_neurons = (np.asarray(x) for x in sol.spikes())
    np.testing.assert_array_equal(got_neurons, neurons[kept])
    np.testing.assert_allclose(got_times, times[kept], rtol=tol)
    before = np.asarray(RECORD) <= t_end
    for name in ("hid", "out"):
        got, want = np.asarray(sol.states[name].v), np.asarray(full.states[name].v)
        np.testing.assert_allclose(got[before], want[before], rtol=tol, atol=tol)
        assert np.all(np.isnan(got[~before]))
    # Every named neuron has fired, and the one that fired last was reset (v = 0).
    fired = np.asarray(sol.first_spike_times())
    assert np.all(np.isfinite(fired[named]))
    start = _global(full, "out")[0]
    last = named[np.argmax(first[named])] - start
    assert float(sol.final_state["out"].v[last]) == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_a_feed_forward_run_ends_at_the_last_output_spike_on_every_path(seed):
    net = _network(seed, twins=seed == 1)
    full = _run(net, "exact")
    out = _global(full, "out")
    finals = {}
    for path in FEED_FORWARD_PATHS:
        sol = _run(net, path, until_fired="out")
        _check_against_full(sol, full, out, TOLERANCE[path])
        if "twin" in net.populations:  # the last output spike's twin is kept
            twins = np.asarray(sol.first_spike_times("twin"))
            np.testing.assert_array_equal(twins, np.asarray(sol.first_spike_times("out")))
        finals[path] = sol.final_state
    # The state at the end (after its events) is the same on every path.
    for path in ("ode", "layered"):
        for name in ("hid", "out"):
            for field in ("v", "i"):
                np.testing.assert_allclose(
                    getattr(finals[path][name], field),
                    getattr(finals["exact"][name], field),
                    rtol=TOLERANCE[path],
                    atol=TOLERANCE[path],
                )


def test_a_recurrent_run_ends_once_every_neuron_has_fired():
    net = _network(2, recurrent=True)
    full = _run(net, "exact")
    assert int(full.num_spikes) > 15  # neurons fire again after their first spike
    for path in PATHS:
        sol = _run(net, path, until_fired=True)
        _check_against_full(sol, full, np.arange(15), TOLERANCE[path])


@pytest.mark.default_compile
@pytest.mark.parametrize("path", list(FEED_FORWARD_PATHS))
def test_an_incomplete_population_runs_to_t1_unchanged(path):
    """An output neuron stays silent, so the run is the full one."""
    net = _network(0, silent_output=True)
    full = _run(net, path)
    assert not np.all(np.isfinite(np.asarray(full.first_spike_times("out"))))
    sol = _run(net, path, until_fired="out")
    assert float(sol.t_final) == T1 and int(sol.status) == 1
    np.testing.assert_array_equal(sol.spike_times, full.spike_times)
    np.testing.assert_array_equal(sol.spike_neurons, full.spike_neurons)
    np.testing.assert_array_equal(sol.states["out"].v, full.states["out"].v)


@pytest.mark.parametrize("path", ["exact", "layered"])
def test_gradients_of_first_spikes_do_not_change(path):
    """The first output spikes and their derivatives with respect to the weights are
    those of the full run: the end only drops what comes after."""
    net = _network(1)
    w = net.connections[1].weight

    def loss(w, until):
        sol = ns.simulate(
            _with_weight(net, w),
            t1=T1,
            max_spikes=MAX_SPIKES,
            until_fired=until,
            **FEED_FORWARD_PATHS[path],
        )
        return jnp.sum(sol.first_spike_times("out") * jnp.asarray([1.0, -2.0, 0.5]))

    value, grad = jax.value_and_grad(loss)(w, "out")
    value_full, grad_full = jax.value_and_grad(loss)(w, None)
    np.testing.assert_allclose(value, value_full, rtol=1e-12)
    np.testing.assert_allclose(grad, grad_full, rtol=1e-9, atol=1e-12)
    assert np.any(np.abs(np.asarray(grad)) > 1e-3)


def _with_weight(net, w):
    return eqx.tree_at(lambda n: n.connections[1].weight, net, w)


def test_runs_under_vmap_end_each_at_their_own_time():
    nets = [_network(seed) for seed in (0, 1, 2)]
    ws = jnp.stack([n.connections[1].weight for n in nets])

    def run(w):
        sol = ns.simulate(
            _with_weight(nets[0], w), t1=T1, max_spikes=MAX_SPIKES, until_fired="out"
        )
        return sol.t_final, sol.first_spike_times("out")

    t_final, first = jax.vmap(run)(ws)
    for k in range(3):
        t_one, first_one = run(ws[k])
        # The batched loop runs in its usual form, one run compiled whole: a few ulps.
        np.testing.assert_allclose(float(t_final[k]), float(t_one), rtol=1e-14)
        np.testing.assert_allclose(first[k], first_one, rtol=1e-14)
        np.testing.assert_allclose(float(t_one), float(jnp.max(first_one)), rtol=1e-14)
    assert len({float(t) for t in t_final}) == 3


def test_until_fired_refuses_by_name():
    net = _network(0)
    cases = [
        (dict(model=net, until_fired="nope"), "names no population"),
        (dict(model=net, until_fired=3), "must be None, True or a population"),
        (dict(model=ns.LIF(), n=2, until_fired="out"), "a single model has none"),
        (dict(model=ns.LI(), n=2, until_fired=True), "no neuron of this model can fire"),
    ]
    for kwargs, text in cases:
        model = kwargs.pop("model")
        with pytest.raises(ValueError, match="until_fired") as info:
            ns.simulate(model, t1=T1, **kwargs)
        assert text in str(info.value)
    li = ns.Network(
        {"a": ns.Population(ns.LIF(), 2, 1.5), "r": ns.Population(ns.LI(), 2, 0.0)},
        [ns.Projection("a", "r", jnp.ones((2, 2)))],
    )
    with pytest.raises(ValueError, match="never fire"):
        ns.simulate(li, t1=T1, until_fired="r")
