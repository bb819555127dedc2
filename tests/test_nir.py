"""NIR interchange: round trips bit for bit, a hand-written graph against an
independent event-driven reference in NIR's own units, and clear refusals."""

import heapq
import importlib
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from _interchange import every_node_network

import neurosim as ns

nir = pytest.importorskip("nir")
from neurosim.nir import UnsupportedNodeError, from_nir, to_nir  # noqa: E402


def test_round_trip_every_node_type_bit_for_bit(tmp_path):
    net = every_node_network()
    graph = to_nir(net)
    kinds = {type(node).__name__ for node in graph.nodes.values()}
    assert kinds == {
        "Input",
        "Output",
        "Affine",
        "Delay",
        "LIF",
        "CubaLIF",
        "IF",
        "LI",
        "CubaLI",
    }
    nir.write(tmp_path / "net.nir", graph)
    back = from_nir(nir.read(tmp_path / "net.nir"), inputs={"drive": net.inputs["drive"]})

    record = jnp.linspace(0.0, 60.0, 13)
    before = ns.simulate(net, t1=60.0, record=record)
    after = ns.simulate(back, t1=60.0, record=record)
    for name in ("cuba", "delta", "if"):
        assert len(before.spikes(name)[0]) > 0, name  # every spiking layer is exercised
    assert np.array_equal(before.spike_times, after.spike_times)
    assert np.array_equal(before.spike_neurons, after.spike_neurons)
    for name in net.populations:
        assert np.array_equal(before.states[name].v, after.states[name].v), name


# ------------------------------------------------- the hand-written graph and its reference

# NIR's units: seconds. Layer 1 has a bias that drives some neurons above threshold on
# their own; layer 2 is driven by layer 1's spikes only.
N_IN, N_1, N_2 = 3, 4, 2
TAU_1, R_1, LEAK_1, TH_1, RESET_1 = 0.010, 0.02, 0.1, 1.0, -0.2
TAU_2, R_2, LEAK_2, TH_2, RESET_2 = 0.020, 0.05, 0.0, 0.9, 0.0
T_END = 0.08  # s


def _two_layer_graph(rng):
    """Two LIF layers as in NIR's documentation: Input -> Affine -> LIF -> Affine ->
    LIF -> Output, parameters as arrays of one value per neuron."""
    ones1, ones2 = np.ones(N_1), np.ones(N_2)
    w1 = rng.uniform(5.0, 20.0, (N_1, N_IN))  # jumps r W / tau = 0.1 to 0.4
    b1 = rng.uniform(40.0, 60.0, N_1)  # v_inf = 0.1 + 0.02 b: 0.9 to 1.3
    w2 = rng.uniform(-2.0, 10.0, (N_2, N_1))  # jumps up to 0.5
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([N_IN])),
            "affine1": nir.Affine(weight=w1, bias=b1),
            "lif1": nir.LIF(
                tau=TAU_1 * ones1,
                r=R_1 * ones1,
                v_leak=LEAK_1 * ones1,
                v_threshold=TH_1 * ones1,
                v_reset=RESET_1 * ones1,
            ),
            "affine2": nir.Affine(weight=w2, bias=np.zeros(N_2)),
            "lif2": nir.LIF(
                tau=TAU_2 * ones2,
                r=R_2 * ones2,
                v_leak=LEAK_2 * ones2,
                v_threshold=TH_2 * ones2,
                v_reset=RESET_2 * ones2,
            ),
            "output": nir.Output(output_type=np.array([N_2])),
        },
        edges=[
            ("input", "affine1"),
            ("affine1", "lif1"),
            ("lif1", "affine2"),
            ("affine2", "lif2"),
            ("lif2", "output"),
        ],
    )
    return graph, w1, b1, w2


def _reference(in_times, in_sources, w1, b1, w2):
    """The graph's spikes in seconds, event by event in float64: between events each
    membrane relaxes exponentially to v_inf = v_leak + R b; a spike (a unit Dirac)
    through weight W jumps v by R W / tau; a layer-1 neuron with v_inf above threshold
    crosses it at t0 + tau log((v_inf - v0) / (v_inf - v_th))."""
    v1, v2 = np.full(N_1, LEAK_1), np.full(N_2, LEAK_2)
    inf1, inf2 = LEAK_1 + R_1 * b1, np.full(N_2, LEAK_2)
    t, spikes = 0.0, []
    inputs = [(float(s), int(k)) for s, k in zip(in_times, in_sources)]
    heapq.heapify(inputs)

    def advance(v, v_inf, tau, dt):
        return v_inf + (v - v_inf) * np.exp(-dt / tau)

    def crossing(v):
        with np.errstate(divide="ignore", invalid="ignore"):
            ahead = TAU_1 * np.log((inf1 - v) / (inf1 - TH_1))
        return np.where((inf1 > TH_1) & (v < TH_1), t + ahead, np.inf)

    while True:
        next_input = inputs[0][0] if inputs else np.inf
        next_cross = crossing(v1)
        t_next = min(next_input, next_cross.min(), T_END)
        if t_next >= T_END:
            break
        v1 = advance(v1, inf1, TAU_1, t_next - t)
        v2 = advance(v2, inf2, TAU_2, t_next - t)
        t = t_next
        fired1 = next_cross == t
        while inputs and inputs[0][0] == t:
            _, source = heapq.heappop(inputs)
            v1 = v1 + R_1 * w1[:, source] / TAU_1
        fired1 |= v1 > TH_1
        v1 = np.where(fired1, RESET_1, v1)
        v2 = v2 + R_2 * (w2[:, fired1].sum(axis=1)) / TAU_2
        fired2 = v2 > TH_2
        v2 = np.where(fired2, RESET_2, v2)
        spikes += [(t, "lif1", int(j)) for j in np.flatnonzero(fired1)]
        spikes += [(t, "lif2", int(j)) for j in np.flatnonzero(fired2)]
    return spikes


def test_hand_written_two_layer_graph_matches_reference():
    rng = np.random.default_rng(1)
    graph, w1, b1, w2 = _two_layer_graph(rng)
    in_times = np.sort(rng.uniform(0.0, T_END, 30))
    in_sources = rng.integers(0, N_IN, 30)
    expected = _reference(in_times, in_sources, w1, b1, w2)

    drive = ns.SpikeTrains(jnp.asarray(in_times * 1000.0), in_sources, N_IN)  # ms
    net = from_nir(graph, inputs={"input": drive})
    sol = ns.simulate(net, t1=T_END * 1000.0, max_spikes=200)
    got = []
    for name in ("lif1", "lif2"):
        times, neurons = sol.spikes(name)
        got += [(float(t) / 1000.0, name, int(k)) for t, k in zip(times, neurons)]
    got.sort()
    expected.sort()
    assert sum(name == "lif2" for _, name, _ in expected) >= 3
    assert sum(name == "lif1" for _, name, _ in expected) >= 10
    assert [(name, k) for _, name, k in got] == [(name, k) for _, name, k in expected]
    # float32 spike times in ms against the float64 reference.
    np.testing.assert_allclose(
        [t for t, _, _ in got], [t for t, _, _ in expected], rtol=0, atol=2e-7
    )


def test_units_time_and_spike_area():
    """A graph in ms equals the graph in s; `dt` multiplies each jump by the step."""
    graph, *_ = _two_layer_graph(np.random.default_rng(2))
    in_ms = _two_layer_graph(np.random.default_rng(2))[0]
    for name in ("lif1", "lif2"):
        in_ms.nodes[name].tau = in_ms.nodes[name].tau * 1000.0
    for name in ("affine1", "affine2"):
        in_ms.nodes[name].weight = in_ms.nodes[name].weight * 1000.0
    seconds, millis = from_nir(graph), from_nir(in_ms, time_unit="ms")
    stepped = from_nir(graph, dt=1e-4)
    for a, b, c in zip(seconds.connections, millis.connections, stepped.connections):
        np.testing.assert_allclose(a.weight, b.weight, rtol=1e-6)
        np.testing.assert_allclose(c.weight, a.weight * 1e-4, rtol=1e-6)
    for name in ("lif1", "lif2"):
        tau_ms = graph.nodes[name].tau * 1000.0
        np.testing.assert_allclose(
            seconds.populations[name].neuron.tau_mem, tau_ms, rtol=1e-7
        )
        np.testing.assert_allclose(
            millis.populations[name].neuron.tau_mem, tau_ms, rtol=1e-7
        )
    # Layer 1's bias b becomes the constant drive R b of v.
    np.testing.assert_allclose(
        seconds.populations["lif1"].current.value,
        R_1 * graph.nodes["affine1"].bias,
        rtol=1e-6,
    )


# ------------------------------------------------------------------------------ refusals


def _graph_with(name, node, size=3):
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([size])),
            name: node,
            "lif": nir.LIF(
                tau=np.full(size, 0.01),
                r=np.ones(size),
                v_leak=np.zeros(size),
                v_threshold=np.ones(size),
            ),
        },
        edges=[("input", name), (name, "lif")],
        type_check=False,
    )


@pytest.mark.parametrize(
    "name, node",
    [
        ("thresh", nir.Threshold(threshold=np.ones(3))),
        ("scaler", nir.Scale(scale=np.ones(3))),
        ("integrator", nir.I(r=np.ones(3))),
        ("conv", nir.Conv1d(None, np.ones((3, 3, 1)), 1, 0, 1, 1, np.zeros(3))),
    ],
)
def test_unsupported_node_is_named(name, node):
    with pytest.raises(
        UnsupportedNodeError, match=f"node '{name}' of type {type(node).__name__}"
    ):
        from_nir(_graph_with(name, node))


def test_refused_graphs_name_their_node():
    w = np.eye(3)
    series = _graph_with("a1", nir.Affine(weight=w, bias=np.zeros(3)))
    series.nodes["a2"] = nir.Linear(weight=w)
    series.edges = [("input", "a1"), ("a1", "a2"), ("a2", "lif")]
    with pytest.raises(UnsupportedNodeError, match="'a2' of type Linear: it follows 'a1'"):
        from_nir(series)
    cuba = _graph_with("a1", nir.Affine(weight=w, bias=np.ones(3)))
    cuba.nodes["lif"] = nir.CubaLIF(
        tau_syn=np.full(3, 0.005),
        tau_mem=np.full(3, 0.01),
        r=np.ones(3),
        v_leak=np.zeros(3),
        v_threshold=np.ones(3),
    )
    with pytest.raises(
        UnsupportedNodeError,
        match="'a1' of type Affine: its nonzero bias into CubaLIF 'lif'",
    ):
        from_nir(cuba)
    with pytest.raises(ValueError, match="input 'input' has 3 elements"):
        from_nir(
            _graph_with("a1", nir.Linear(weight=w)),
            inputs={"input": ns.SpikeTrains([1.0], [0], 2)},
        )


def _one_population(neuron, **projection):
    return ns.Network(
        {"p": ns.Population(neuron, 2)},
        [ns.Projection("drive", "p", jnp.ones((1, 2)), **projection)],
        {"drive": ns.SpikeTrains([1.0], [0], 1)},
    )


@pytest.mark.parametrize(
    "net, message",
    [
        (_one_population(ns.Izhikevich()), "population 'p' is a Izhikevich"),
        (
            _one_population(ns.LIF(reset_mode="soft")),
            "population 'p' \\(LIF\\) has reset_mode='soft'",
        ),
        (
            _one_population(ns.LIF(t_ref=2.0)),
            "population 'p' \\(LIF\\) has a refractory period",
        ),
        (
            _one_population(ns.CubaLIF(tau_inh=7.0)),
            "population 'p' is a CubaLIF with tau_exc != tau_inh",
        ),
        (
            _one_population(ns.LIF(tau_mem=jnp.inf)),
            "population 'p' \\(LIF\\) has tau_mem=inf and synaptic",
        ),
    ],
)
def test_unrepresentable_population_is_named(net, message):
    with pytest.raises(UnsupportedNodeError, match=message):
        to_nir(net)


def test_import_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "nir", None)
    monkeypatch.delitem(sys.modules, "neurosim.nir")
    with pytest.raises(ImportError, match=r"pip install 'neurosim\[nir\]'"):
        importlib.import_module("neurosim.nir")
