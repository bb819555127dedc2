"""One record access style: `sol.states.v` (a network: `sol.states["name"].v`), with
or without `record_fields`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurosim as ns

TAU, CURRENT = 10.0, 1.5
RECORD = jnp.array([1.0, 3.0, 7.0])


def _v_closed_form(t):
    """v(t) of a LIF from rest under a constant drive, before its first spike."""
    return CURRENT * (1.0 - np.exp(-np.asarray(t) / TAU))


def test_single_model_reads_v_as_an_attribute_with_and_without_record_fields():
    neuron = ns.LIF(tau_mem=TAU)
    whole = ns.simulate(neuron, n=2, t1=8.0, current=CURRENT, record=RECORD)
    some = ns.simulate(
        neuron, n=2, t1=8.0, current=CURRENT, record=RECORD, record_fields=("v",)
    )
    expected = np.repeat(_v_closed_form(RECORD)[:, None], 2, axis=1)
    np.testing.assert_allclose(np.asarray(whole.states.v), expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(some.states.v), expected, rtol=1e-5)
    # The mapping form of earlier versions still reads the same arrays.
    np.testing.assert_array_equal(np.asarray(some.states["v"]), np.asarray(some.states.v))
    assert list(some.states) == ["v"]


def test_network_reads_each_population_as_an_attribute_with_and_without_record_fields():
    net = ns.Network(
        populations={
            "a": ns.Population(ns.LIF(tau_mem=TAU), 1, current=CURRENT),
            "b": ns.Population(ns.LI(tau_mem=20.0), 1),
        },
        projections=[],
    )
    whole = ns.simulate(net, t1=8.0, record=RECORD)
    some = ns.simulate(net, t1=8.0, record=RECORD, record_fields={"a": ("v",)})
    for sol in (whole, some):
        np.testing.assert_allclose(
            np.asarray(sol.states["a"].v[:, 0]), _v_closed_form(RECORD), rtol=1e-5
        )
    assert "b" not in some.states
    np.testing.assert_allclose(np.asarray(whole.states["b"].v[:, 0]), 0.0, atol=0.0)


def test_a_field_not_recorded_names_record_fields_in_its_error():
    sol = ns.simulate(
        ns.LIF(), n=1, t1=2.0, current=CURRENT, record=[1.0], record_fields=("v",)
    )
    with pytest.raises(AttributeError, match="record_fields"):
        getattr(sol.states, "i")  # noqa: B009


def _recorded(tau, fields):
    """One LIF from rest, recorded at `RECORD` (before its first spike)."""
    return ns.simulate(
        ns.LIF(tau_mem=tau),
        n=1,
        t1=8.0,
        current=CURRENT,
        record=RECORD,
        record_fields=fields,
    )


def test_records_are_a_pytree_keyed_by_field_names():
    sol = _recorded(TAU, ("v", "i"))
    paths = [
        jax.tree_util.keystr(path)
        for path, _ in jax.tree_util.tree_leaves_with_path(sol.states)
    ]
    assert paths == [".v", ".i"]
    doubled = jax.tree.map(lambda x: 2 * x, sol.states)
    np.testing.assert_allclose(
        np.asarray(doubled.v[:, 0]), 2 * _v_closed_form(RECORD), rtol=1e-5
    )


def test_records_batch_under_vmap():
    def final_v(tau):
        return _recorded(tau, ("v",)).states.v[-1, 0]

    taus = jnp.array([10.0, 20.0])  # first spikes at tau ln 3 > 8 ms
    got = jax.vmap(final_v)(taus)
    expected = CURRENT * (1.0 - np.exp(-7.0 / np.asarray(taus)))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)
