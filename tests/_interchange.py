"""A network of every kind of population and projection that NIR can carry, shared by
tests/test_nir.py and tests/test_io.py so that both use one compiled simulation."""

import jax
import jax.numpy as jnp
import numpy as np

import neurosim as ns


def _weights(rng, low, high, shape):
    return jnp.asarray(rng.uniform(low, high, shape), jnp.float32)


def _per_neuron(n, **values):
    """Parameters as float32 arrays of one value per neuron, as `from_nir` makes
    them, so that the network read back has the same shapes and reuses the compiled
    simulation."""
    return {name: np.full(n, value, np.float32) for name, value in values.items()}


def every_node_network():
    """A network that writes as every NIR node neurosim supports: LIF (delta synapses
    and a constant current, i.e. an Affine bias), CubaLIF, IF, LI, CubaLI, Delay
    before and after the weights, Input and Output."""
    rng = np.random.default_rng(0)
    times, sources = ns.inputs.poisson_spikes(
        jax.random.PRNGKey(0), 200.0, num_sources=4, t1=60.0
    )
    cuba = _per_neuron(3, tau_syn=4.0, v_th=1.0, v_reset=-0.1, v_leak=0.05)
    delta = _per_neuron(3, tau_mem=15.0, v_th=0.8, v_reset=0.0, v_leak=0.0)
    return ns.Network(
        populations={
            "cuba": ns.Population(
                ns.LIF(tau_mem=np.array([8.0, 10.0, 12.0], np.float32), **cuba), 3
            ),
            "delta": ns.Population(ns.LIF(**delta), 3, current=np.full(3, 0.3, np.float32)),
            "if": ns.Population(
                ns.LIF(tau_mem=jnp.inf, **_per_neuron(2, v_th=1.2, v_reset=0.1)), 2
            ),
            "li": ns.Population(
                ns.LI(**_per_neuron(2, tau_mem=10.0, tau_syn=3.0, v_leak=0.0)), 2
            ),
            "li_v": ns.Population(ns.LI(**_per_neuron(2, tau_mem=7.0, v_leak=0.2)), 2),
        },
        projections=[
            ns.Projection("drive", "cuba", _weights(rng, 0.2, 0.8, (4, 3)), target="i"),
            ns.Projection("drive", "delta", _weights(rng, 0.0, 0.4, (4, 3)), target="v"),
            ns.Projection(
                "cuba", "if", _weights(rng, 0.3, 0.6, (3, 2)), delay=1.5, target="v"
            ),
            ns.Projection(
                "delta",
                "if",
                _weights(rng, 0.3, 0.6, (3, 2)),
                delay=np.array([[0.5, 0.5], [1.0, 1.0], [2.0, 2.0]], np.float32),
                target="v",
            ),
            ns.Projection("if", "li", _weights(rng, -1.0, 1.0, (2, 2)), target="i"),
            ns.Projection("cuba", "li_v", _weights(rng, -1.0, 1.0, (3, 2)), target="v"),
        ],
        inputs={"drive": ns.SpikeTrains(times, sources, 4)},
    )
