"""WereRabbit (felice) against an independent integration of its equations (scipy's
DOP853 at 1e-12) with the fixpoint-spike rule applied to the reference trajectory."""

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _reference import fixpoint_reference, parameter_values

import neurosim as ns
from neurosim.neurons.wererabbit import WereRabbit, WereRabbitState

TOL = dict(rtol=1e-12, atol=1e-12)


def _circuit(p, u, v):
    """felice's code: z = tanh(rho (u - v)), with a plus before alpha exp(beta u)."""
    z = np.tanh(p["rho"] * (u - v))
    du = (
        z * (1 - p["alpha"] * np.exp(p["beta"] * v) * (1 + p["gamma"] * (0.5 - u)))
        - p["sigma"]
    )
    dv = (
        z * (-1 + p["alpha"] * np.exp(p["beta"] * u) * (1 + p["gamma"] * (0.5 - v)))
        - p["sigma"]
    )
    return du, dv, z


def _field(p, current):
    def field(t, y):
        du, dv, z = _circuit(p, *y)
        du, dv = du + p["weight_u"] * current, dv + p["weight_v"] * current
        if abs(z) <= 1e-8:
            du, dv = du * np.sign(y[0]), dv * np.sign(y[1])
        return [du, dv]

    return field


def _margins(p, current, y):
    """Spike margin (tolerance - |f|) and re-arm margin (|f| - factor * tolerance),
    with the circuit's field (no diagonal rule) and RMS norms."""
    du, dv, _ = _circuit(p, y[0], y[1])
    norm_f = np.sqrt(
        ((du + p["weight_u"] * current) ** 2 + (dv + p["weight_v"] * current) ** 2) / 2
    )
    tolerance = p["atol"] + p["rtol"] * np.sqrt((y[0] ** 2 + y[1] ** 2) / 2)
    return tolerance - norm_f, norm_f - p["rearm_factor"] * tolerance


def reference(p, current, y0, t1, kicks=()):
    """Spike times and a dense solution, with kicks `(time, (du, dv))` (see
    `fixpoint_reference`)."""
    return fixpoint_reference(
        _field(p, current), lambda y: _margins(p, current, y), y0, t1, kicks
    )


@pytest.fixture(scope="module")
def population(float64):
    """Three neurons from rest: neuron 0 has a current but no kick, neuron 1 a kick of
    +0.1 into `u` at 0.5 ms, neuron 2 a current 0.05 and a kick of -0.2 at 1 ms."""
    neuron = WereRabbit()
    currents = np.array([0.3, 0.0, 0.05])
    kicks = [[], [(0.5, (0.1, 0.0))], [(1.0, (-0.2, 0.0))]]
    input_weights = jnp.array([[0.0, 0.1, 0.0], [0.0, 0.0, -0.2]])
    record = jnp.linspace(0.0, 60.0, 31)
    sol = ns.simulate(
        neuron,
        n=3,
        t1=60.0,
        current=jnp.asarray(currents),
        input_spikes=(jnp.array([0.5, 1.0]), jnp.array([0, 1])),
        input_weights=input_weights,
        record=record,
        max_spikes=16,
        **TOL,
    )
    return neuron, currents, kicks, sol


def test_trajectories_match_independent_integration(population):
    neuron, currents, kicks, sol = population
    p = parameter_values(neuron)
    ts = np.asarray(sol.ts)
    for k, current in enumerate(currents):
        _, dense = reference(p, current, [0.0, 0.0], 60.0, kicks[k])
        recorded = np.stack(
            [np.asarray(sol.states.u[:, k]), np.asarray(sol.states.v[:, k])]
        )
        np.testing.assert_allclose(recorded, dense(ts), rtol=0, atol=1e-8)


def test_neurons_of_a_population_are_independent(population):
    neuron, currents, kicks, sol = population
    p = parameter_values(neuron)
    # Neuron 0 rests at the origin, exactly, under its current, while its neighbours
    # move (felice's population-wide `allclose(z, 0)` would let it slide away).
    assert np.all(np.asarray(sol.states.u[:, 0]) == 0.0)
    assert np.all(np.asarray(sol.states.v[:, 0]) == 0.0)
    assert len(sol.spike_train(0)) == 0
    for k in (1, 2):
        expected, _ = reference(p, currents[k], [0.0, 0.0], 60.0, kicks[k])
        assert len(expected) == 1
        np.testing.assert_allclose(sol.spike_train(k), expected, rtol=0, atol=1e-6)


def test_one_spike_per_arrival_at_a_fixpoint(float64):
    neuron = WereRabbit()
    p = parameter_values(neuron)
    times = np.array([0.5, 80.0, 160.0, 240.0])
    jumps = np.array([0.1, -0.3, 0.3, 1e-4])
    sol = ns.simulate(
        neuron,
        n=1,
        t1=300.0,
        input_spikes=(jnp.asarray(times), jnp.arange(4)),
        input_weights=jnp.asarray(jumps)[:, None],
        max_spikes=16,
        **TOL,
    )
    kicks = [(t, (p["weight_u"] * x, p["weight_v"] * x)) for t, x in zip(times, jumps)]
    expected, _ = reference(p, 0.0, [0.0, 0.0], 300.0, kicks)
    # Three kicks out of a fixpoint, three returns; the last kick is too small to leave
    # the neighbourhood, and sitting at a focus never fires again.
    assert len(expected) == 3
    assert np.all((expected > times[:3]) & (expected < times[1:]))
    np.testing.assert_allclose(sol.spike_train(0), expected, rtol=0, atol=1e-6)


START = WereRabbitState(u=jnp.array([0.1]), v=jnp.array([0.0]))


def test_implicit_solver_gives_the_same_spike(float64):
    neuron = WereRabbit()
    sol = ns.simulate(
        neuron,
        n=1,
        t1=7.0,
        current=0.3,
        y0=START,
        solver=dfx.Kvaerno5(),
        rtol=1e-10,
        atol=1e-10,
        max_spikes=16,
    )
    expected, _ = reference(parameter_values(neuron), 0.3, [0.1, 0.0], 7.0)
    assert len(expected) == 1
    np.testing.assert_allclose(sol.spike_train(0), expected, rtol=0, atol=1e-5)


def test_gradient_of_spike_time_matches_finite_differences(float64):
    def first_spike(sigma):
        sol = ns.simulate(
            WereRabbit(sigma=sigma),
            n=1,
            t1=7.0,
            current=0.3,
            y0=START,
            max_spikes=16,
            **TOL,
        )
        return sol.spike_times[0]

    sigma, h = 0.6, 1e-5
    grad = float(jax.grad(first_spike)(sigma))
    fd = (float(first_spike(sigma + h)) - float(first_spike(sigma - h))) / (2 * h)
    assert abs(grad) > 0.1
    np.testing.assert_allclose(grad, fd, rtol=1e-5)


def test_docstring_example_a_kick_sends_a_resting_neuron_to_a_focus(float64):
    neuron = WereRabbit()
    sol = ns.simulate(
        neuron,
        n=2,
        t1=60.0,
        input_spikes=(jnp.array([0.5]), jnp.array([0])),
        input_weights=jnp.array([[0.0, 0.1]]),
        max_spikes=16,
        **TOL,
    )
    expected, _ = reference(
        parameter_values(neuron), 0.0, [0.0, 0.0], 60.0, [(0.5, (0.1, 0.0))]
    )
    assert len(expected) == 1
    assert len(sol.spike_train(0)) == 0
    np.testing.assert_allclose(sol.spike_train(1), expected, rtol=0, atol=1e-6)
    assert float(sol.final_state.u[1]) > float(sol.final_state.v[1])
