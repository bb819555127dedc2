"""Adaptation mechanisms around LIF (and AdEx) against closed forms.

Between spikes a LIF with constant input and linear adaptation is a linear ODE
x' = A x + c, solved exactly by the matrix exponential; the spike times follow by
bisection on that solution, independently of the simulator.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurosim as ns
from neurosim.neurons.adaptation import (
    AdaptiveCurrent,
    SpikeAdaptiveThreshold,
    VoltageAdaptiveThreshold,
)
from neurosim.neurons.adex import EIF, AdEx

TOL = dict(rtol=1e-12, atol=1e-12)


class LinearFlow:
    """The exact solution of x' = A x + c, by eigendecomposition."""

    def __init__(self, A, c):
        self.A = np.asarray(A, float)
        self.x_eq = -np.linalg.solve(self.A, np.asarray(c, float))
        self.lam, self.V = np.linalg.eig(self.A)
        self.V_inv = np.linalg.inv(self.V)

    def __call__(self, x0, s):
        coef = self.V_inv @ (np.asarray(x0, float) - self.x_eq)
        growth = np.exp(np.outer(self.lam, np.atleast_1d(s)))
        return self.x_eq[:, None] + (self.V @ (coef[:, None] * growth)).real


def reference_spike_times(flow, condition, jump, x0, t1, t_ref=0.0, grid=0.01):
    """Spike times of the linear flow with `condition(x) > 0` as the spike, `jump` at
    each spike and, after each spike, the whole state held for `t_ref` ms."""
    t, x, times = 0.0, np.asarray(x0, float), []
    while True:
        s = np.arange(0.0, t1 - t + grid, grid)
        above = condition(flow(x, s)) > 0
        if not above[1:].any():
            return np.array(times)
        k = np.argmax(above[1:]) + 1
        lo, hi = s[k - 1], s[k]
        for _ in range(80):
            middle = 0.5 * (lo + hi)
            lo, hi = (lo, middle) if condition(flow(x, middle))[0] > 0 else (middle, hi)
        if t + hi > t1:
            return np.array(times)
        times.append(t + hi)
        x = jump(flow(x, hi)[:, 0])
        t = t + hi + t_ref


def _lif(**kwargs):
    return ns.LIF(tau_mem=10.0, v_th=1.0, v_reset=0.0, **kwargs)


def _alif(spike_increment, t_ref=0.0):
    return SpikeAdaptiveThreshold(
        _lif(t_ref=t_ref),
        tau_adapt=jnp.array([30.0, 300.0]),
        spike_increment=spike_increment,
    )


def _alif_spike_times(spike_increment, t1=150.0):
    sol = ns.simulate(_alif(spike_increment), n=1, t1=t1, current=2.0, max_spikes=64, **TOL)
    return sol.spike_times


def test_spike_threshold_with_two_sets_matches_closed_form(x64):
    increments = np.array([0.2, 0.05])
    times = np.asarray(_alif_spike_times(jnp.asarray(increments)))
    times = times[np.isfinite(times)]
    # x = (v, theta_1, theta_2); the threshold is 1 + theta_1 + theta_2.
    flow = LinearFlow(np.diag([-1 / 10, -1 / 30, -1 / 300]), [2.0 / 10, 0.0, 0.0])
    expected = reference_spike_times(
        flow,
        condition=lambda x: x[0] - 1.0 - x[1] - x[2],
        jump=lambda x: np.array([0.0, x[1] + increments[0], x[2] + increments[1]]),
        x0=[0.0, 0.0, 0.0],
        t1=150.0,
    )
    assert len(times) == len(expected) >= 8
    np.testing.assert_allclose(times, expected, atol=1e-8)
    isi = np.diff(times)
    assert np.all(np.diff(isi) > 0)
    assert isi[-1] > 1.5 * isi[0]


def test_two_sets_with_one_time_constant_equal_one_set_with_the_summed_increment():
    # Per-neuron sets (n, K): neuron 0 splits the increment 0.25 over two sets with the
    # same time constant, neuron 1 puts all of it in the first set.
    neuron = SpikeAdaptiveThreshold(
        _lif(), tau_adapt=50.0, spike_increment=jnp.array([[0.1, 0.15], [0.25, 0.0]])
    )
    sol = ns.simulate(neuron, n=2, t1=150.0, current=2.0, record=jnp.array([100.0]))
    first, second = sol.spike_train(0), sol.spike_train(1)
    assert len(first) == len(second) >= 8
    np.testing.assert_allclose(first, second, atol=1e-4)
    theta = np.asarray(sol.states.theta[0])
    np.testing.assert_allclose(theta[0].sum(), theta[1].sum(), rtol=1e-5)


def test_adaptive_current_with_two_sets_matches_closed_form(x64):
    tau, coupling, increment = (
        np.array([20.0, 200.0]),
        np.array([0.05, 0.02]),
        np.array([0.1, 0.05]),
    )
    neuron = AdaptiveCurrent(
        _lif(), tau_adapt=tau, voltage_coupling=coupling, spike_increment=increment
    )
    sol = ns.simulate(neuron, n=1, t1=150.0, current=2.0, max_spikes=64, **TOL)
    times, _ = sol.spikes()
    # x = (v, w_1, w_2): tau_m v' = -v + I - w_1 - w_2, tau_k w_k' = a_k v - w_k.
    A = np.array(
        [
            [-1 / 10, -1 / 10, -1 / 10],
            [coupling[0] / tau[0], -1 / tau[0], 0.0],
            [coupling[1] / tau[1], 0.0, -1 / tau[1]],
        ]
    )
    flow = LinearFlow(A, [2.0 / 10, 0.0, 0.0])
    expected = reference_spike_times(
        flow,
        condition=lambda x: x[0] - 1.0,
        jump=lambda x: np.array([0.0, x[1] + increment[0], x[2] + increment[1]]),
        x0=[0.0, 0.0, 0.0],
        t1=150.0,
    )
    assert len(times) == len(expected) >= 8
    np.testing.assert_allclose(times, expected, atol=1e-8)
    assert np.all(np.diff(np.diff(times)) > 0)


def test_voltage_threshold_matches_closed_form_with_reset_bound(x64):
    rate, rebound, theta_reset = 0.02, 0.05, 0.3
    neuron = VoltageAdaptiveThreshold(
        _lif(), adapt_rate=rate, rebound_rate=rebound, theta_reset=theta_reset
    )
    sol = ns.simulate(neuron, n=1, t1=150.0, current=2.0, max_spikes=64, **TOL)
    times, _ = sol.spikes()
    # x = (v, theta): theta' = a v - b theta; at a spike theta <- max(theta, theta_reset).
    flow = LinearFlow([[-1 / 10, 0.0], [rate, -rebound]], [2.0 / 10, 0.0])
    expected = reference_spike_times(
        flow,
        condition=lambda x: x[0] - 1.0 - x[1],
        jump=lambda x: np.array([0.0, max(x[1], theta_reset)]),
        x0=[0.0, 0.0],
        t1=150.0,
    )
    assert len(times) == len(expected) >= 5
    np.testing.assert_allclose(times, expected, atol=1e-8)
    assert np.diff(times)[-1] > np.diff(times)[0]


def test_nested_wrappers_hold_their_adaptation_while_refractory(x64):
    t_ref, tau_w, coupling, b, tau_theta, a = 2.0, 50.0, 0.05, 0.2, 40.0, 0.3
    inner = AdaptiveCurrent(
        _lif(t_ref=t_ref), tau_adapt=tau_w, voltage_coupling=coupling, spike_increment=b
    )
    neuron = SpikeAdaptiveThreshold(inner, tau_adapt=tau_theta, spike_increment=a)
    # x = (v, w, theta); the whole state is held for t_ref after each spike.
    A = np.array(
        [
            [-1 / 10, -1 / 10, 0.0],
            [coupling / tau_w, -1 / tau_w, 0.0],
            [0.0, 0.0, -1 / tau_theta],
        ]
    )
    expected = reference_spike_times(
        LinearFlow(A, [2.5 / 10, 0.0, 0.0]),
        condition=lambda x: x[0] - 1.0 - x[2],
        jump=lambda x: np.array([0.0, x[1] + b, x[2] + a]),
        x0=[0.0, 0.0, 0.0],
        t1=120.0,
        t_ref=t_ref,
    )
    first = expected[0]
    record = jnp.array([first + 0.1, first + 1.0, first + 1.9])
    sol = ns.simulate(
        neuron, n=1, t1=120.0, current=2.5, record=record, max_spikes=64, **TOL
    )
    times, _ = sol.spikes()
    assert len(times) == len(expected) >= 6
    np.testing.assert_allclose(times, expected, atol=1e-8)
    theta = np.asarray(sol.states.theta[:, 0, 0])
    w = np.asarray(sol.states.neuron.w[:, 0, 0])
    v = np.asarray(neuron.voltage(sol.states)[:, 0])
    np.testing.assert_allclose(theta, theta[0], rtol=0, atol=1e-14)
    np.testing.assert_allclose(w, w[0], rtol=0, atol=1e-14)
    np.testing.assert_allclose(v, 0.0, atol=1e-14)
    assert theta[0] == pytest.approx(a) and w[0] > b


def test_gradient_of_spike_time_matches_finite_differences(x64):
    increments = jnp.array([0.2, 0.05])

    def fifth_spike(increments):
        return _alif_spike_times(increments)[4]

    grad = np.asarray(jax.grad(fifth_spike)(increments))
    h = 1e-5
    fd = [
        (fifth_spike(increments.at[k].add(h)) - fifth_spike(increments.at[k].add(-h)))
        / (2 * h)
        for k in range(2)
    ]
    assert np.all(np.abs(grad) > 1.0)
    np.testing.assert_allclose(grad, np.asarray(fd), rtol=1e-5)


def test_adaptive_current_around_eif_is_adex(x64):
    wrapped = AdaptiveCurrent(
        EIF(), tau_adapt=400.0, voltage_coupling=0.1, spike_increment=0.75
    )
    adex = AdEx()
    kwargs = dict(n=1, t1=200.0, current=25.0, rtol=1e-10, atol=1e-10)
    times, _ = ns.simulate(wrapped, **kwargs).spikes()
    expected, _ = ns.simulate(adex, **kwargs).spikes()
    assert len(times) == len(expected) >= 5
    np.testing.assert_allclose(times, expected, atol=1e-4)


def test_threshold_wrapper_shifts_the_adex_threshold():
    neuron = SpikeAdaptiveThreshold(AdEx(), tau_adapt=100.0, spike_increment=-50.0)
    inner = AdEx().state_at(jnp.array([-45.5, -44.5]), jnp.zeros(2))
    state = eqx.tree_at(
        lambda s: (s.neuron, s.theta),
        neuron.init_state(2),
        (inner, jnp.full((2, 1), -50.0)),
    )
    condition = np.asarray(neuron.spike_condition(0.0, state, jnp.zeros(2)))
    assert condition[0] < 0 < condition[1]


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda: SpikeAdaptiveThreshold(_lif(), tau_adapt=0.0, spike_increment=0.1),
            "tau_adapt",
        ),
        (
            lambda: AdaptiveCurrent(
                _lif(), tau_adapt=-1.0, voltage_coupling=0.0, spike_increment=0.1
            ),
            "tau_adapt",
        ),
        (
            lambda: SpikeAdaptiveThreshold(ns.LI(), tau_adapt=10.0, spike_increment=0.1),
            "spiking",
        ),
    ],
)
def test_bad_parameters_are_reported(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_mismatched_parameter_sets_are_reported():
    with pytest.raises(ValueError, match="parameter sets"):
        SpikeAdaptiveThreshold(
            _lif(),
            tau_adapt=jnp.array([10.0, 20.0]),
            spike_increment=jnp.array([0.1, 0.2, 0.3]),
        )
    neuron = SpikeAdaptiveThreshold(
        _lif(), tau_adapt=10.0, spike_increment=jnp.ones((3, 2))
    )
    with pytest.raises(ValueError, match="spike_increment"):
        ns.simulate(neuron, n=2, t1=10.0)
