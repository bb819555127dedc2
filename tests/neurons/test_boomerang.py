"""Boomerang (felice) against an independent integration of felice's own vector field
(scipy's DOP853 at 1e-12, rest point by scipy's fsolve) with the fixpoint-spike rule
applied to the reference trajectory."""

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _reference import fixpoint_reference, parameter_values
from scipy.integrate import solve_ivp
from scipy.optimize import fsolve

import neurosim as ns
from neurosim.neurons.boomerang import Boomerang

TOL = dict(rtol=1e-12, atol=1e-12)


def _circuit(p, u, v):
    """felice's code: z = tanh(rho (v - u)), rho = 30 by default."""
    z = np.tanh(p["rho"] * (v - u))
    du = (
        1
        - p["alpha"] * np.exp(p["beta"] * v) * (1 - p["gamma"] * (0.3 - u))
        + p["sigma"] * z
    )
    dv = (
        -1
        + p["alpha"] * np.exp(p["beta"] * u) * (1 + p["gamma"] * (0.3 - v))
        + p["sigma"] * z
    )
    return np.array([du, dv])


def _rest(p):
    return fsolve(lambda y: _circuit(p, *y), [0.3, 0.3], xtol=1e-15)


def _jacobian(p, y, h=1e-7):
    return np.stack(
        [(_circuit(p, *(y + e)) - _circuit(p, *(y - e))) / (2 * h) for e in np.eye(2) * h],
        axis=1,
    )


def _margins(p, current, y, y_rest):
    """Spike margin (outside the rest neighbourhood: tolerance - |f|) and re-arm margin
    (|f| - factor * tolerance), RMS norms, felice's field plus the input."""
    field = _circuit(p, y[0], y[1]) + current * np.array(
        [p["weight_u"], p["weight_v"]]
    ).reshape((2,) + (1,) * (np.ndim(y) - 1))
    norm_f = np.sqrt((field[0] ** 2 + field[1] ** 2) / 2)
    tolerance = p["atol"] + p["rtol"] * np.sqrt((y[0] ** 2 + y[1] ** 2) / 2)
    away = (
        np.sqrt(((y[0] - y_rest[0]) ** 2 + (y[1] - y_rest[1]) ** 2) / 2) - p["rest_radius"]
    )
    return np.minimum(tolerance - norm_f, away), norm_f - p["rearm_factor"] * tolerance


def reference(p, current, t1, kicks=()):
    """Spike times and a dense solution from the rest point, with kicks
    `(time, (du, dv))` (see `fixpoint_reference`)."""
    y_rest = _rest(p)
    drive = current * np.array([p["weight_u"], p["weight_v"]])
    return fixpoint_reference(
        lambda s, y: _circuit(p, *y) + drive,
        lambda y: _margins(p, current, y, y_rest),
        y_rest,
        t1,
        kicks,
    )


def test_rest_state_is_a_saddle_root_of_the_vector_field(float64):
    neuron = Boomerang(sigma=jnp.array([0.55, 0.6, 0.65]))
    u_rest, v_rest = (np.asarray(x) for x in neuron.rest_state())
    assert u_rest.shape == v_rest.shape == (3,)
    for k, sigma in enumerate([0.55, 0.6, 0.65]):
        p = parameter_values(Boomerang(sigma=sigma))
        y = np.array([u_rest[k], v_rest[k]])
        assert np.max(np.abs(_circuit(p, *y))) < 1e-14
        np.testing.assert_allclose(y, _rest(p), rtol=0, atol=1e-12)
        eigenvalues = np.linalg.eigvals(_jacobian(p, y))
        assert np.min(eigenvalues.real) < -10 and np.max(eigenvalues.real) > 10
    np.testing.assert_allclose([u_rest[1], v_rest[1]], [0.27914, 0.27860], atol=1e-5)
    state = neuron.init_state(3)
    np.testing.assert_array_equal(np.asarray(state.u), u_rest)
    np.testing.assert_array_equal(np.asarray(state.u_rest), u_rest)


def test_a_neuron_at_rest_stays_there_exactly_in_float32(float32):
    neuron = Boomerang()
    sol = ns.simulate(neuron, n=2, t1=100.0, record=jnp.linspace(0.0, 100.0, 11))
    rest = neuron.init_state(2)
    assert rest.u.dtype == jnp.float32
    assert int(sol.num_spikes) == 0
    assert np.all(np.asarray(sol.states.u) == np.asarray(rest.u)[None])
    assert np.all(np.asarray(sol.states.v) == np.asarray(rest.v)[None])


@pytest.fixture(scope="module")
def population(float64):
    """Three neurons from rest with constant inputs 0, +0.05 and -0.05."""
    neuron = Boomerang()
    currents = np.array([0.0, 0.05, -0.05])
    record = jnp.linspace(0.0, 40.0, 21)
    sol = ns.simulate(
        neuron,
        n=3,
        t1=40.0,
        current=jnp.asarray(currents),
        record=record,
        max_spikes=16,
        **TOL,
    )
    return neuron, currents, sol


def test_trajectories_and_spikes_match_independent_integration(population):
    neuron, currents, sol = population
    p = parameter_values(neuron)
    ts = np.asarray(sol.ts)
    # Neuron 0 (no input) stays at rest exactly while its neighbours move.
    start = neuron.init_state(1)
    rest = np.array([float(start.u[0]), float(start.v[0])])
    assert np.all(np.asarray(sol.states.u[:, 0]) == rest[0])
    assert np.all(np.asarray(sol.states.v[:, 0]) == rest[1])
    assert len(sol.spike_train(0)) == 0
    # felice's field, integrated from the same point, leaves the saddle on the root's
    # round-off residual alone: the reason for integrating g(y) - g(y_rest).
    drift = solve_ivp(
        lambda t, y: _circuit(p, *y), (0.0, 20.0), rest, method="DOP853", **TOL
    )
    assert np.max(np.abs(drift.y[:, -1] - rest)) > 1e-2
    for k, current in list(enumerate(currents))[1:]:
        expected, dense = reference(p, current, 40.0)
        recorded = np.stack(
            [np.asarray(sol.states.u[:, k]), np.asarray(sol.states.v[:, k])]
        )
        np.testing.assert_allclose(recorded, dense(ts), rtol=0, atol=1e-8)
        np.testing.assert_allclose(sol.spike_train(k), expected, rtol=0, atol=1e-5)
    assert [len(sol.spike_train(k)) for k in range(3)] == [0, 1, 1]
    # The sign of the input picks the focus.
    final = np.asarray(sol.states.u[-1]) - np.asarray(sol.states.v[-1])
    assert final[1] > 0.05 and final[2] < -0.05


def test_one_spike_per_arrival_at_a_fixpoint(float64):
    neuron = Boomerang()
    p = parameter_values(neuron)
    times = np.array([1.0, 60.0, 120.0, 180.0])
    jumps = np.array([0.02, -0.1, 0.1, 1e-6])
    sol = ns.simulate(
        neuron,
        n=1,
        t1=250.0,
        input_spikes=(jnp.asarray(times), jnp.arange(4)),
        input_weights=jnp.asarray(jumps)[:, None],
        max_spikes=16,
        **TOL,
    )
    kicks = [(t, (p["weight_u"] * x, p["weight_v"] * x)) for t, x in zip(times, jumps)]
    expected, _ = reference(p, 0.0, 250.0, kicks)
    # Three kicks that dislodge it, three returns; the last kick is too small to leave
    # the neighbourhood, and sitting at a focus never fires again.
    assert len(expected) == 3
    assert np.all((expected > times[:3]) & (expected < times[1:]))
    np.testing.assert_allclose(sol.spike_train(0), expected, rtol=0, atol=1e-5)


def test_implicit_solver_gives_the_same_spike(float64):
    # Looser fixpoint tolerances than the defaults: an earlier spike, a shorter run.
    neuron = Boomerang(atol=1e-4, rtol=1e-3)
    record = jnp.linspace(0.0, 30.0, 7)
    sol = ns.simulate(
        neuron,
        n=1,
        t1=30.0,
        current=0.05,
        solver=dfx.Kvaerno5(),
        rtol=1e-11,
        atol=1e-11,
        record=record,
        max_solver_steps=50_000,
    )
    expected, dense = reference(parameter_values(neuron), 0.05, 30.0)
    assert len(expected) == 1
    np.testing.assert_allclose(sol.spike_train(0), expected, rtol=0, atol=1e-4)
    recorded = np.stack([np.asarray(sol.states.u[:, 0]), np.asarray(sol.states.v[:, 0])])
    np.testing.assert_allclose(recorded, dense(np.asarray(record)), rtol=0, atol=1e-8)


def test_gradient_of_spike_time_matches_finite_differences(float64):
    def first_spike(sigma):
        sol = ns.simulate(
            Boomerang(sigma=sigma), n=1, t1=40.0, current=0.05, max_spikes=16, **TOL
        )
        return sol.spike_times[0]

    sigma, h = 0.6, 1e-5
    grad = float(jax.grad(first_spike)(sigma))
    fd = (float(first_spike(sigma + h)) - float(first_spike(sigma - h))) / (2 * h)
    assert abs(grad) > 0.1
    np.testing.assert_allclose(grad, fd, rtol=1e-5)
