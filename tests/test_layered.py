"""`simulate(..., exact="layered")` (`neurosim._layered`) against the exact event loop
on random feed-forward networks of fire-once neurons: first spike times, records and
final states, gradients (against the replay), batches, float32; and its refusals."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurosim as ns

T1 = 40.0
N_IN = 6
SEEDS = (0, 1, 4)
RECORD = jnp.linspace(0.0, T1, 9)

# One structure, drawn per seed: a CubaLIF layer (tau_exc == tau_mem), then a LIF
# layer (tau_syn != tau_mem) reached through per-synapse delays and by a skip
# projection from the inputs. (Two layers: compiling the event loop's gradient of a
# third takes most of a minute on a loaded machine. The float32 test has a scalar
# delay.)
SIZES = (16, 4)
DELAYS = (None, "per_synapse")
N = sum(SIZES)
NAMES = ("l0", "l1")


def _model(k, p):
    if k == 0:
        return ns.CubaLIF(tau_mem=p["tau_mem"], tau_exc=5.0, tau_inh=8.0, t_ref=1e4)
    v_th = p["v_th"] if k == len(SIZES) - 1 else 1.0
    return ns.LIF(tau_mem=2 * p["tau_mem"], tau_syn=4.0, v_th=v_th, t_ref=1e4)


def draw(seed):
    """The differentiable values of one network: weights (both signs), the membrane
    time constant, thresholds and input spike times."""
    rng = np.random.default_rng(seed)
    sizes = (N_IN, *SIZES)
    weights = [
        rng.normal(0.5 / np.sqrt(a), 1.6 / np.sqrt(a), (a, b)) * (5 if k == 0 else 2.5)
        for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
    ]
    return {
        "w": [jnp.asarray(w) for w in weights],
        "skip": jnp.asarray(rng.normal(0.1, 0.5, (N_IN, SIZES[-1]))),
        "tau_mem": jnp.asarray(5.0),
        "v_th": jnp.asarray(rng.uniform(0.8, 1.2, SIZES[-1])),
        "times": jnp.asarray(rng.uniform(0.5, 15.0, 2 * N_IN)),
    }


def network(p):
    pops = {
        name: ns.Population(_model(k, p), n, 0.05)
        for k, (name, n) in enumerate(zip(NAMES, SIZES, strict=True))
    }
    projections = []
    for k, (pre, post) in enumerate(zip(["in", *NAMES[:-1]], NAMES, strict=True)):
        delay = DELAYS[k]
        if delay == "scalar":
            delay = 1.5
        elif delay == "per_synapse":
            delay = np.random.default_rng(k).uniform(0.2, 2.0, p["w"][k].shape)
        projections.append(ns.Projection(pre, post, p["w"][k], delay=delay))
    projections.append(ns.Projection("in", NAMES[-1], p["skip"]))
    sources = jnp.arange(2 * N_IN) % N_IN
    inputs = {"in": ns.SpikeTrains(p["times"], sources, N_IN)}
    return ns.Network(pops, projections, inputs)


def _loss(exact):
    def loss(p, coefficients):
        sol = ns.simulate(network(p), t1=T1, max_spikes=N, exact=exact, record=RECORD)
        first = sol.first_spike_times()
        times = jnp.where(jnp.isfinite(first), first, 0.0)
        return jnp.sum(coefficients * times), (first, sol.states, sol.final_state)

    return loss


@pytest.fixture(scope="module")
def paths(float64):
    """One compiled value, first spikes, records, final states and gradient per path
    (the event loop with its replay, and the layered path), shared by the seeds."""
    return {
        exact: eqx.filter_jit(jax.value_and_grad(_loss(exact), has_aux=True))
        for exact in ("layered", True)
    }


@pytest.fixture(scope="module", params=SEEDS)
def both(paths, request):
    seed = request.param
    p = draw(seed)
    coefficients = jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, N))
    return {exact: fn(p, coefficients) for exact, fn in paths.items()}


def test_first_spikes_records_and_final_states(both):
    (_, (first_l, states_l, final_l)), _ = both["layered"]
    (_, (first_e, states_e, final_e)), _ = both[True]
    first_l, first_e = np.asarray(first_l), np.asarray(first_e)
    silent = np.isinf(first_e)
    # Both firing and silent neurons, in the hidden and the output layer.
    assert 0 < silent[: N - SIZES[-1]].sum() < N - SIZES[-1] - 2, silent
    assert np.isfinite(first_e[-SIZES[-1] :]).any(), first_e
    np.testing.assert_array_equal(np.isinf(first_l), silent)
    np.testing.assert_allclose(first_l[~silent], first_e[~silent], rtol=1e-9)
    for got, want in ((states_l, states_e), (final_l, final_e)):
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def test_gradients_match_the_replay(both):
    """With respect to the weights, the membrane time constant, the output
    thresholds and the input spike times."""
    (value_l, _), grad_l = both["layered"]
    (value_e, _), grad_e = both[True]
    np.testing.assert_allclose(value_l, value_e, rtol=1e-9)
    flat_e, tree = jax.tree.flatten_with_path(grad_e)
    for (path, g_e), g_l in zip(flat_e, jax.tree.leaves(grad_l), strict=True):
        name = jax.tree_util.keystr(path)
        g_l, g_e = np.asarray(g_l), np.asarray(g_e)
        assert np.all(np.isfinite(g_l)), name
        assert np.max(np.abs(g_e)) > 0, name
        scale = np.max(np.abs(g_e))
        np.testing.assert_allclose(g_l, g_e, rtol=0, atol=1e-7 * scale, err_msg=name)


def _yinyang_like(times):
    """5 input spikes -> 40 hidden -> 3 output LIF neurons, t_ref = 1e4 ms."""
    rng = np.random.default_rng(0)
    lif = ns.LIF(tau_mem=20.0, tau_syn=5.0, t_ref=1e4)
    return ns.Network(
        {"hidden": ns.Population(lif, 40), "out": ns.Population(lif, 3)},
        [
            ns.Projection("in", "hidden", rng.normal(1.6, 0.8, (5, 40)).astype(np.float32)),
            ns.Projection(
                "hidden",
                "out",
                rng.normal(0.4, 0.1, (40, 3)).astype(np.float32),
                delay=1.0,
            ),
        ],
        inputs={"in": ns.SpikeTrains(times, jnp.arange(5), 5)},
    )


def test_float32_and_vmap(float32):
    """In float32 with t_ref = 1e4 ms: finite spike times close to the exact loop's;
    a batch under `jax.vmap` equals its samples run one by one."""

    @jax.jit
    def first(times):
        sol = ns.simulate(_yinyang_like(times), t1=50.0, max_spikes=43, exact="layered")
        return sol.first_spike_times()

    batch = jnp.asarray(np.random.default_rng(1).uniform(2.0, 22.0, (3, 5)), jnp.float32)
    batched = np.asarray(jax.vmap(first)(batch))
    assert batched.dtype == np.float32
    for b, times in enumerate(batch):
        one = np.asarray(first(times))
        # Batched, XLA fuses differently: a few float32 spacings.
        np.testing.assert_allclose(batched[b], one, rtol=1e-6)
        exact = ns.simulate(_yinyang_like(times), t1=50.0, max_spikes=43, gradients=False)
        want = np.asarray(exact.first_spike_times())
        assert np.sum(np.isfinite(one)) > 20 and np.isfinite(one[-3:]).all(), one
        np.testing.assert_array_equal(np.isinf(one), np.isinf(want))
        fired = np.isfinite(want)
        np.testing.assert_allclose(one[fired], want[fired], rtol=1e-5)


def _refused(net, match, **kwargs):
    with pytest.raises(ValueError, match=match):
        ns.simulate(net, t1=10.0, max_spikes=kwargs.pop("max_spikes", 10), **kwargs)


def _small(neuron=None, projections=(), current=None):
    """Populations `a` (2 neurons, `neuron`, default a LIF that fires once) and `b`
    (2 LIF that fire once), `a` driven by one input spike at 1 ms."""
    once = ns.LIF(t_ref=100.0)
    pops = {
        "a": ns.Population(once if neuron is None else neuron, 2, current),
        "b": ns.Population(once, 2),
    }
    drive = ns.Projection("in", "a", jnp.ones((1, 2)))
    inputs = {"in": ns.SpikeTrains(jnp.array([1.0]), jnp.array([0]), 1)}
    return ns.Network(pops, [drive, *projections], inputs)


def test_refusals():
    net = _small
    w = jnp.ones((2, 2))
    layered = dict(exact="layered")
    _refused(
        net(projections=[ns.Projection("a", "a", w)]), "'a' -> 'a' is recurrent", **layered
    )
    cycle = [ns.Projection("a", "b", w), ns.Projection("b", "a", w)]
    _refused(net(projections=cycle), "'a' -> 'b' -> 'a' form a cycle", **layered)
    _refused(net(ns.LIF(t_ref=2.0)), "population 'a' has t_ref shorter", **layered)
    _refused(net(current=ns.inputs.Step(5.0, 1.0)), "constant currents", **layered)
    delta = [ns.Projection("a", "b", w, target="v")]
    _refused(net(projections=delta), "targets 'v'", **layered)
    _refused(net(ns.AdEx()), "is a AdEx", **layered)
    _refused(net(), "max_spikes=3 is less than the 4", max_spikes=3, **layered)
    _refused(net(), "`exact` must be", exact="layers")
    _refused(net(), "`solver` is not used", solver=__import__("diffrax").Euler(), **layered)


@pytest.mark.default_compile
def test_a_traced_refractory_period_is_checked_when_the_run_executes():
    """Also a program that, at XLA's default level, once sent LLVM's instruction
    combiner into an endless loop (a series in `phi` that started from `0 * x`, next
    to the folded constants of the input layer's solve): it must compile."""

    @jax.jit
    def traced(t_ref):
        net = _small(ns.LIF(t_ref=t_ref))
        return ns.simulate(net, t1=10.0, max_spikes=4, exact="layered")

    assert np.isfinite(traced(20.0).final_state["a"].v).all()
    with pytest.raises(Exception, match="population 'a' has t_ref shorter"):
        traced(2.0)


def test_projections_of_one_source_deliver_one_by_one(x64):
    """Two undelayed projections from one source onto a CubaLIF are two deliveries,
    each split by sign (as in the event loop and the ODE path): +6 and -4 onto one pair
    are an excitatory and an inhibitory jump into currents of different time
    constants, not one jump of +2."""
    cuba = ns.CubaLIF(tau_mem=10.0, tau_exc=2.0, tau_inh=12.0, t_ref=1e4)
    up = 4 * np.array([[3.0, 1.5, 0.0, 2.5], [0.0, 2.0, 2.6, 0.8]])
    down = 4 * np.array([[-1.0, -1.0, 0.0, -2.4], [0.0, -0.3, -0.5, 0.0]])
    net = ns.Network(
        {"a": ns.Population(cuba, 4, 0.2), "b": ns.Population(cuba, 2)},
        [
            ns.Projection("in", "a", up),
            ns.Projection("in", "a", down),
            ns.Projection("a", "b", np.full((4, 2), 8.0)),
            ns.Projection("a", "b", np.array([[-4.0, 0.0]] * 4)),
        ],
        {"in": ns.SpikeTrains(jnp.array([1.0, 2.0, 4.0]), jnp.array([0, 1, 0]), 2)},
    )
    kwargs = dict(t1=40.0, max_spikes=6, record=jnp.linspace(0.0, 40.0, 5))
    layered = ns.simulate(net, exact="layered", **kwargs)
    loop = ns.simulate(net, gradients=False, **kwargs)
    first_l = np.asarray(layered.first_spike_times())
    first_e = np.asarray(loop.first_spike_times())
    assert 2 <= np.isfinite(first_e).sum() < 6, first_e
    np.testing.assert_array_equal(np.isinf(first_l), np.isinf(first_e))
    fired = np.isfinite(first_e)
    np.testing.assert_allclose(first_l[fired], first_e[fired], rtol=1e-9)
    for got, want in zip(
        jax.tree.leaves(layered.states), jax.tree.leaves(loop.states), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def _sampled_maximum(form, length, samples=401):
    """The largest `v` of each segment over `samples` evenly spaced times in
    `[0, length]` (ends included), from the closed form."""
    fractions = np.linspace(0.0, 1.0, samples)
    return np.max([np.asarray(form.voltage(f * length)) for f in fractions], axis=0)


@pytest.mark.parametrize("model", ["LIF", "CubaLIF"])
def test_skipped_segments_hold_no_crossing(x64, model):
    """The segments the search skips (`_Population._candidates`) on random states,
    drives, time constants (equal ones included) and lengths from 1e-3 to 50 ms: none
    has a sampled `v` above threshold; and the bound from `v(start)` over the segment's
    length skips most of the segments that the asymptotic bound
    `max(v(start), v_inf + max G)` must keep."""
    from neurosim._layered import _Population

    rng = np.random.default_rng(3)
    m = 20_000
    tau_mem = rng.uniform(2.0, 30.0, m)
    length = 10.0 ** rng.uniform(-3.0, np.log10(50.0), m)
    v = rng.uniform(-1.0, 1.05, m)
    current = rng.uniform(-0.5, 0.5, m)
    if model == "LIF":
        tau_syn = np.where(rng.random(m) < 0.2, tau_mem, rng.uniform(1.0, 20.0, m))
        neuron = ns.LIF(tau_mem=jnp.asarray(tau_mem), tau_syn=jnp.asarray(tau_syn))
        drives = {"i": rng.uniform(-2.0, 4.0, m)}
        taus = {"i": tau_syn}
    else:
        tau_exc = np.where(rng.random(m) < 0.2, tau_mem, rng.uniform(1.0, 20.0, m))
        neuron = ns.CubaLIF(
            tau_mem=jnp.asarray(tau_mem),
            tau_exc=jnp.asarray(tau_exc),
            tau_inh=jnp.asarray(rng.uniform(1.0, 20.0, m)),
        )
        drives = {"ge": rng.uniform(0.0, 4.0, m), "gi": rng.uniform(-3.0, 0.0, m)}
        taus = {"ge": tau_exc, "gi": np.asarray(neuron.tau_inh)}
    zeros = jnp.zeros(m)
    state = neuron.init_state(m)
    state = eqx.tree_at(
        lambda s: [s.v, *(getattr(s, f) for f in drives)],
        state,
        [jnp.asarray(v), *(jnp.asarray(g) for g in drives.values())],
    )
    starts = jnp.asarray(rng.uniform(0.0, 20.0, m))
    candidate = np.asarray(
        _Population._candidates(
            None,
            neuron,
            jnp.asarray(current),
            state,
            starts,
            starts + length,
            jnp.ones(m, bool),
        )
    )
    form = neuron.closed_form(state, jnp.asarray(current), starts, zeros)
    highest = _sampled_maximum(form, jnp.asarray(length))
    v_th = float(neuron.v_th)
    crossing = highest > v_th + 1e-9
    assert 0.05 < crossing.mean() < 0.5, crossing.mean()
    assert np.all(candidate[crossing]), np.flatnonzero(crossing & ~candidate)[:10]
    # What the asymptotic bound keeps, and how much of it the search skips.
    high = np.asarray(neuron.v_leak) + current
    for name, g in drives.items():
        high = high + np.maximum(g, g * np.exp(-length / taus[name]))
    kept = np.maximum(v, high) > v_th
    assert np.mean(~candidate[kept & ~crossing]) > 0.5


def test_many_close_arrivals_take_few_rounds(x64):
    """A fire-once LIF neuron receiving 300 small input spikes 0.05 ms apart (short
    segments against tau_mem) crosses long after its asymptotic drive passes
    threshold: the search skips the segments in between, so it takes a few rounds,
    not one per segment, and its spike is the event loop's."""
    times = 1.0 + 0.05 * jnp.arange(300.0)
    net = ns.Network(
        {"out": ns.Population(ns.LIF(tau_mem=20.0, tau_syn=20.0, t_ref=1e4), 1)},
        [ns.Projection("in", "out", jnp.full((300, 1), 0.02))],
        {"in": ns.SpikeTrains(times, jnp.arange(300), 300)},
    )
    layered = ns.simulate(net, t1=40.0, max_spikes=1, exact="layered")
    loop = ns.simulate(net, t1=40.0, max_spikes=1, gradients=False)
    spike = float(layered.first_spike_times()[0])
    np.testing.assert_allclose(spike, float(loop.first_spike_times()[0]), rtol=1e-12)
    # The drive v_inf + G passes threshold after 50 arrivals (G = 0.02 k, decaying
    # little); the spike comes after more than 100 of them.
    assert np.sum(np.asarray(times) < spike) > 100, spike
    assert int(layered.iterations) <= 4, int(layered.iterations)
