"""FHNRS (felice's FitzHugh-Nagumo, Ribar-Sepulchre form) against independent
integrations of its equations (scipy's DOP853 at 1e-12, event location by root finding
on the dense output), closed-form I-V curves and finite differences."""

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _reference import parameter_values
from scipy.integrate import solve_ivp

import neurosim as ns
from neurosim.neurons.fhn import FHNRS, FHNRSState

TOL = dict(rtol=1e-12, atol=1e-12)


def _field(p, current):
    def field(t, y):
        v, v_slow, i_app = y
        membrane = (
            p["gmax_passive"] * (v - p["erev_passive"])
            + p["a_fast"] * np.tanh(v - p["voff_fast"])
            + p["a_slow"] * np.tanh(v_slow - p["voff_slow"])
        )
        return [
            (i_app + current - membrane) / p["C"],
            (v - v_slow) / p["tau_slow"],
            -i_app / p["tsyn"],
        ]

    return field


def reference(p, current, y0, t0, t1):
    """Upward crossings of `vthr` (each checked to be preceded by a fall below
    `vthr - rearm_margin`, as the model's re-arming requires) and the dense solution."""

    def crossing(t, y):
        return y[0] - p["vthr"]

    crossing.direction = 1
    sol = solve_ivp(
        _field(p, current),
        (t0, t1),
        y0,
        method="DOP853",
        events=crossing,
        dense_output=True,
        **TOL,
    )
    times = sol.t_events[0]
    for a, b in zip(times[:-1], times[1:]):
        grid = np.linspace(a, b, 2001)
        assert sol.sol(grid)[0].min() < p["vthr"] - p["rearm_margin"]
    return times, sol.sol


@pytest.fixture(scope="module")
def oscillation(float64):
    """Three neurons, no input spikes: constant input 0.5 from rest; no input from a
    1e-6 perturbation of the zero state; no input from the zero state."""
    neuron = FHNRS()
    y0 = neuron.init_state(3)
    y0 = FHNRSState(v=jnp.array([0.0, 1e-6, 0.0]), v_slow=y0.v_slow, i_app=y0.i_app)
    record = jnp.linspace(0.0, 300.0, 61)
    sol = ns.simulate(
        neuron,
        n=3,
        t1=300.0,
        current=jnp.array([0.5, 0.0, 0.0]),
        y0=y0,
        record=record,
        max_spikes=64,
        **TOL,
    )
    return neuron, sol


def test_constant_input_oscillates_with_one_spike_per_cycle(oscillation):
    neuron, sol = oscillation
    p = parameter_values(neuron)
    times = sol.spike_train(0)
    expected, dense = reference(p, 0.5, [0.0, 0.0, 0.0], 0.0, 300.0)
    assert len(times) == len(expected) == 6
    np.testing.assert_allclose(times, expected, rtol=0, atol=1e-7)
    # One spike per cycle: each cycle has exactly one downstroke through v = -1.
    grid = np.linspace(0.0, 300.0, 300_001)
    v = dense(grid)[0]
    downstrokes = grid[1:][(v[:-1] >= -1.0) & (v[1:] < -1.0)]
    events = sorted([(t, "spike") for t in times] + [(t, "down") for t in downstrokes])
    kinds = [kind for _, kind in events]
    assert kinds[0] == "spike" and all(a != b for a, b in zip(kinds[:-1], kinds[1:]))
    period = np.diff(times)[1:]
    np.testing.assert_allclose(period, np.diff(expected)[1:], rtol=0, atol=1e-7)
    assert abs(period.mean() - 56.42) < 0.01
    recorded = np.stack(
        [np.asarray(sol.states.v[:, 0]), np.asarray(sol.states.v_slow[:, 0])]
    )
    np.testing.assert_allclose(recorded, dense(np.asarray(sol.ts))[:2], rtol=0, atol=1e-7)


def test_zero_state_is_an_unstable_equilibrium(oscillation):
    neuron, sol = oscillation
    zero = neuron.init_state(1)
    derivative = neuron.dynamics(0.0, zero, jnp.zeros(1))
    assert all(float(leaf[0]) == 0.0 for leaf in jax.tree_util.tree_leaves(derivative))

    def flat_field(y):
        state = FHNRSState(v=y[:1], v_slow=y[1:2], i_app=y[2:])
        return jnp.concatenate(jax.tree_util.tree_leaves(neuron.dynamics(0.0, state, 0.0)))

    jacobian = np.asarray(jax.jacfwd(flat_field)(jnp.zeros(3)))
    p = parameter_values(neuron)
    expected = np.array(
        [
            [
                -(p["gmax_passive"] + p["a_fast"]) / p["C"],
                -p["a_slow"] / p["C"],
                1.0 / p["C"],
            ],
            [1.0 / p["tau_slow"], -1.0 / p["tau_slow"], 0.0],
            [0.0, 0.0, -1.0 / p["tsyn"]],
        ]
    )
    np.testing.assert_allclose(jacobian, expected, rtol=1e-12)
    assert np.max(np.linalg.eigvals(expected).real) > 0.9
    # Exactly at rest it stays there; 1e-6 away it is driven onto the oscillation.
    assert len(sol.spike_train(2)) == 0
    assert np.all(np.asarray(sol.states.v[:, 2]) == 0.0)
    expected_times, _ = reference(p, 0.0, [1e-6, 0.0, 0.0], 0.0, 300.0)
    assert len(expected_times) >= 4
    np.testing.assert_allclose(sol.spike_train(1), expected_times, rtol=0, atol=1e-5)


def test_hysteresis_counts_one_spike_per_upstroke(float64):
    # With vthr = 1, v crosses the threshold on the upstroke and falls back through it
    # slowly on the upper branch: still one spike per cycle.
    neuron = FHNRS(vthr=1.0, rearm_margin=0.2)
    sol = ns.simulate(neuron, n=1, t1=300.0, current=0.5, max_spikes=16, **TOL)
    expected, _ = reference(parameter_values(neuron), 0.5, [0.0, 0.0, 0.0], 0.0, 300.0)
    assert len(expected) == 6
    np.testing.assert_allclose(sol.spike_train(0), expected, rtol=0, atol=1e-7)


def test_incoming_spike_jumps_i_app(float64):
    neuron = FHNRS()
    p = parameter_values(neuron)
    t_in, weight = 5.0, 3.0
    record = jnp.array([4.0, 5.5, 6.0, 8.0])
    sol = ns.simulate(
        neuron,
        n=1,
        t1=40.0,
        input_spikes=(jnp.array([t_in]), jnp.array([0])),
        input_weights=jnp.array([[weight]]),
        record=record,
        max_spikes=8,
        **TOL,
    )
    s = np.asarray(record) - t_in
    i_expected = np.where(s > 0, weight * np.exp(-s / p["tsyn"]), 0.0)
    np.testing.assert_allclose(
        np.asarray(sol.states.i_app[:, 0]), i_expected, rtol=0, atol=1e-10
    )
    expected, _ = reference(p, 0.0, [0.0, 0.0, weight], t_in, 40.0)
    assert len(expected) == 1
    np.testing.assert_allclose(sol.spike_train(0), expected, rtol=0, atol=1e-7)


def test_iv_curves_match_their_formulas():
    neuron = FHNRS(
        gmax_passive=1.3,
        erev_passive=-0.2,
        a_fast=-2.5,
        voff_fast=0.1,
        a_slow=1.7,
        voff_slow=-0.3,
    )
    p = parameter_values(neuron)
    v = np.linspace(-3.0, 3.0, 41)
    v_rest = 0.4
    passive = p["gmax_passive"] * (v - p["erev_passive"])
    fast = p["a_fast"] * np.tanh(v - p["voff_fast"])
    slow = p["a_slow"] * np.tanh(v - p["voff_slow"])
    fast_rest = p["a_fast"] * np.tanh(v_rest - p["voff_fast"])
    slow_rest = p["a_slow"] * np.tanh(v_rest - p["voff_slow"])
    np.testing.assert_allclose(
        neuron.iv_instantaneous(jnp.asarray(v), v_rest),
        passive + fast_rest + slow_rest,
        rtol=1e-6,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        neuron.iv_fast(jnp.asarray(v), v_rest),
        passive + fast + slow_rest,
        rtol=1e-6,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        neuron.iv_slow(jnp.asarray(v)), passive + fast + slow, rtol=1e-6, atol=1e-6
    )
    # The steady-state curve is the vector field's nullcline: dv/dt = 0 at equilibrium.
    state = FHNRSState(v=jnp.asarray(v), v_slow=jnp.asarray(v), i_app=jnp.zeros(41))
    drive = neuron.iv_slow(jnp.asarray(v))
    np.testing.assert_allclose(neuron.dynamics(0.0, state, drive).v, 0.0, atol=1e-6)


def test_implicit_solver_gives_the_same_spikes(float64):
    neuron = FHNRS()
    sol = ns.simulate(
        neuron, n=1, t1=120.0, current=0.5, solver=dfx.Kvaerno5(), rtol=1e-10, atol=1e-10
    )
    expected, _ = reference(parameter_values(neuron), 0.5, [0.0, 0.0, 0.0], 0.0, 120.0)
    assert len(expected) == 3
    np.testing.assert_allclose(sol.spike_train(0), expected, rtol=0, atol=1e-5)


def test_gradient_of_spike_time_matches_finite_differences(float64):
    def second_spike(tau_slow):
        sol = ns.simulate(
            FHNRS(tau_slow=tau_slow), n=1, t1=60.0, current=0.5, max_spikes=16, **TOL
        )
        return sol.spike_times[1]

    tau_slow, h = 50.0, 1e-5
    grad = float(jax.grad(second_spike)(tau_slow))
    fd = (float(second_spike(tau_slow + h)) - float(second_spike(tau_slow - h))) / (2 * h)
    assert abs(grad) > 0.1
    np.testing.assert_allclose(grad, fd, rtol=1e-5)
