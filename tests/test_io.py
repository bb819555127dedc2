"""Saving and loading: every model of the zoo, a network, a result."""

import csv
import inspect
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _interchange import every_node_network

import neurosim as ns
import neurosim.neurons as neurons
from neurosim._io import FORMAT_VERSION

# Constructor arguments of the models that have no defaults (the wrappers).
_WRAPPED = {
    "AdaptiveCurrent": lambda: ns.AdaptiveCurrent(
        ns.LIF(),
        tau_adapt=jnp.array([100.0, 20.0]),
        voltage_coupling=0.0,
        spike_increment=0.1,
    ),
    "SpikeAdaptiveThreshold": lambda: ns.SpikeAdaptiveThreshold(
        ns.LIF(), tau_adapt=50.0, spike_increment=0.2
    ),
    "VoltageAdaptiveThreshold": lambda: ns.VoltageAdaptiveThreshold(
        ns.LIF(), adapt_rate=0.1, rebound_rate=0.05
    ),
    "Refractory": lambda: ns.Refractory(ns.Izhikevich(), t_ref=2.0),
}


def _zoo() -> dict:
    """Every concrete model class of `neurosim.neurons`, built with its defaults."""
    models = {}
    for name, cls in vars(neurons).items():
        if not (inspect.isclass(cls) and issubclass(cls, ns.AbstractNeuron)):
            continue
        if inspect.isabstract(cls) or cls is ns.AbstractNeuron:
            continue
        models[name] = _WRAPPED[name]() if name in _WRAPPED else cls()
    return models


def _per_neuron(model):
    """The model with each float parameter turned into two values, one per neuron
    (scaled by 1 and 1.25), so that loading must take shapes from the file."""

    def spread(leaf):
        if (
            isinstance(leaf, jax.Array)
            and leaf.ndim == 0
            and jnp.issubdtype(leaf.dtype, jnp.floating)
        ):
            return leaf * jnp.array([1.0, 1.25], leaf.dtype)
        return leaf

    return jax.tree.map(spread, model)


def _assert_same_tree(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert type(x) is type(y)
        if isinstance(x, jax.Array):
            assert x.dtype == y.dtype and x.shape == y.shape
            assert np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        else:
            assert x == y


def test_zoo_is_complete():
    names = set(_zoo())
    assert {"LIF", "CubaLIF", "LI", "Izhikevich", "AdEx", "EIF", "FHNRS"} <= names
    assert {"WereRabbit", "Boomerang", "CobaLIF", *_WRAPPED} <= names


@pytest.mark.parametrize("name", sorted(_zoo()))
def test_save_load_every_model_gives_an_equal_pytree(name, tmp_path):
    default = _zoo()[name]
    model = _per_neuron(default)
    ns.save(tmp_path / "model.eqx", model)
    # `like` needs the class and structure only: the default has scalar parameters.
    loaded = ns.load(tmp_path / "model.eqx", like=default)
    _assert_same_tree(model, loaded)


@pytest.mark.parametrize(
    "name, run",
    [
        ("Izhikevich", dict(t1=60.0, current=10.0)),
        pytest.param("AdEx", dict(t1=300.0, current=25.0), marks=pytest.mark.slow),
        pytest.param("FHNRS", dict(t1=60.0, current=1.0), marks=pytest.mark.slow),
        pytest.param("AdaptiveCurrent", dict(t1=60.0, current=1.5), marks=pytest.mark.slow),
    ],
)
def test_loaded_model_simulates_the_same(name, run, tmp_path):
    model = _per_neuron(_zoo()[name])
    ns.save(tmp_path / "model.eqx", model)
    loaded = ns.load(tmp_path / "model.eqx", like=_zoo()[name])
    before = ns.simulate(model, n=2, **run)
    after = ns.simulate(loaded, n=2, **run)
    assert int(before.num_spikes) > 0
    assert np.array_equal(before.spike_times, after.spike_times)
    assert np.array_equal(before.spike_neurons, after.spike_neurons)


@pytest.fixture(scope="module")
def network_run():
    net = every_node_network()
    return net, ns.simulate(net, t1=60.0, record=jnp.linspace(0.0, 60.0, 13))


def test_saved_network_reloads_and_simulates_the_same(network_run, tmp_path):
    net, before = network_run
    ns.save(tmp_path / "net.eqx", net)
    loaded = ns.load(tmp_path / "net.eqx", like=every_node_network())
    _assert_same_tree(net, loaded)
    after = ns.simulate(loaded, t1=60.0, record=jnp.linspace(0.0, 60.0, 13))
    assert np.array_equal(before.spike_times, after.spike_times)
    assert np.array_equal(before.spike_neurons, after.spike_neurons)


def test_load_refuses_a_wrong_like_or_a_newer_format(tmp_path):
    path = tmp_path / "lif.eqx"
    ns.save(path, ns.LIF(reset_mode="soft"))
    with pytest.raises(ValueError, match="holds a LIF, but `like` is a LI"):
        ns.load(path, like=ns.LI())
    with pytest.raises(ValueError, match="structure differs from `like`"):
        ns.load(path, like=ns.LIF())
    magic, header, body = path.read_bytes().split(b"\n", 2)
    newer = json.loads(header)
    newer["format"] = FORMAT_VERSION + 1
    path.write_bytes(magic + b"\n" + json.dumps(newer).encode() + b"\n" + body)
    with pytest.raises(
        ValueError, match=f"file format {FORMAT_VERSION + 1}.*Upgrade neurosim"
    ):
        ns.load(path, like=ns.LIF(reset_mode="soft"))
    (tmp_path / "other.eqx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a file written by neurosim.save"):
        ns.load(tmp_path / "other.eqx", like=ns.LIF())


def test_solution_saves_and_reloads_equal(network_run, tmp_path):
    net, sol = network_run
    sol.save(tmp_path / "run")
    with open(tmp_path / "run" / "spikes.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == int(sol.num_spikes) > 0
    for name in net.populations:
        times, local = sol.spikes(name)
        mine = [row for row in rows if row["population"] == name]
        assert [float(row["time"]) for row in mine] == times.tolist()
        assert [int(row["neuron"]) for row in mine] == local.tolist()

    back = ns.load_solution(tmp_path / "run")
    for field in ("spike_times", "spike_neurons", "num_spikes", "ts", "t_final", "status"):
        a, b = getattr(sol, field), getattr(back, field)
        assert a.dtype == b.dtype and np.array_equal(a, b), field
    assert back.populations == sol.populations
    for name in net.populations:
        for field in ("v", "i"):
            assert np.array_equal(
                back.states[name][field], getattr(sol.states[name], field), equal_nan=True
            )
            assert np.array_equal(
                back.final_state[name][field], getattr(sol.final_state[name], field)
            )
        np.testing.assert_array_equal(back.rates(name), sol.rates(name))


def test_to_dataframe_or_a_clear_error(network_run):
    _, sol = network_run
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install pandas"):
            sol.to_dataframe()
        return
    frame = sol.to_dataframe()
    times, local = sol.spikes("cuba")
    cuba = frame[frame.population == "cuba"]
    assert cuba.time.tolist() == times.tolist()
    assert cuba.neuron.tolist() == local.tolist()
