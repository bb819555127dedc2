"""AdEx and EIF (ngc-learn's equations) against independent integrations.

The reference integrates the original, untransformed equations with scipy's DOP853:
in time up to a voltage well past the knee of the exponential (where the blow-up has
not started yet), then with `v` as the independent variable up to `thr`, where
`dt/dv` and `dw/dv` are small and smooth.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _reference import parameter_values
from scipy.integrate import quad, solve_ivp

import neurosim as ns
from neurosim.neurons.adex import EIF, AdEx


def _dv_dt(p, v, w, j):
    exponential = p["sharpV"] * np.exp((v - p["vT"]) / p["sharpV"])
    return (-(v - p["v_rest"]) + exponential - p["R_m"] * w + p["R_m"] * j) / p["tau_m"]


def _dw_dt(p, v, w):
    return (p["a"] * (v - p["v_rest"]) - w) / p["tau_w"]


def reference_spike_times(p, j, t1, v0, w0, tol=1e-12):
    """Spike times of the original AdEx equations, integrated independently."""
    v_switch = p["vT"] + 5 * p["sharpV"]

    def in_time(t, y):
        return [_dv_dt(p, y[0], y[1], j), _dw_dt(p, y[0], y[1])]

    def in_voltage(v, y):
        rate = _dv_dt(p, v, y[1], j)
        assert rate > 0, "v must rise monotonically over the last stretch"
        return [1.0 / rate, _dw_dt(p, v, y[1]) / rate]

    def reaches_switch(t, y):
        return y[0] - v_switch

    reaches_switch.terminal, reaches_switch.direction = True, 1
    t, v, w, spikes = 0.0, v0, w0, []
    while True:
        sol = solve_ivp(
            in_time,
            (t, t1),
            [v, w],
            method="DOP853",
            rtol=tol,
            atol=tol,
            events=reaches_switch,
        )
        if sol.status != 1:
            return np.array(spikes)
        t, w = sol.t_events[0][0], sol.y_events[0][0][1]
        last = solve_ivp(
            in_voltage, (v_switch, p["thr"]), [t, w], method="DOP853", rtol=tol, atol=tol
        )
        t, w = last.y[0, -1], last.y[1, -1]
        if t > t1:
            return np.array(spikes)
        spikes.append(t)
        v, w = p["v_reset"], w + p["b"]


def _rheobase(p):
    """The smallest constant j without a stable rest state (saddle-node of the
    stationary equations), in closed form."""
    gain = 1 + p["R_m"] * p["a"]
    knee = p["vT"] - p["v_rest"] + p["sharpV"] * np.log(gain) - p["sharpV"]
    return gain * knee / p["R_m"]


def _rest_state(p, j):
    """The stable fixed point (v, w) below the knee, by bisection."""
    gain = 1 + p["R_m"] * p["a"]
    low, high = p["v_rest"] - 50.0, p["vT"] + p["sharpV"] * np.log(gain)

    def excess(v):
        return (
            gain * (v - p["v_rest"])
            - p["sharpV"] * np.exp((v - p["vT"]) / p["sharpV"])
            - p["R_m"] * j
        )

    for _ in range(200):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if excess(middle) < 0 else (low, middle)
    return low, p["a"] * (low - p["v_rest"])


def test_spike_times_match_independent_integration(x64):
    neuron = AdEx()
    p = parameter_values(neuron)
    sol = ns.simulate(neuron, n=1, t1=300.0, current=25.0, rtol=1e-10, atol=1e-10)
    times, _ = sol.spikes()
    expected = reference_spike_times(p, 25.0, 300.0, v0=-70.0, w0=0.0)
    assert len(expected) >= 8
    assert len(times) == len(expected)
    assert np.max(np.abs(times - expected)) < 1e-4
    np.testing.assert_allclose(
        float(sol.final_state.t_last_spike[0]), times[-1], rtol=0, atol=0
    )


def test_spike_times_are_stable_under_tenfold_tighter_tolerance(x64):
    neuron = AdEx()
    loose = ns.simulate(neuron, n=1, t1=300.0, current=25.0, rtol=1e-10, atol=1e-10)
    tight = ns.simulate(neuron, n=1, t1=300.0, current=25.0, rtol=1e-11, atol=1e-11)
    loose_times, _ = loose.spikes()
    tight_times, _ = tight.spikes()
    assert len(loose_times) == len(tight_times) >= 8
    assert np.max(np.abs(loose_times - tight_times)) < 1e-5


def test_j25_gives_23_spikes_in_one_second_float32():
    neuron = AdEx()
    sol = ns.simulate(neuron, n=1, t1=1000.0, current=25.0)
    times, _ = sol.spikes()
    expected = reference_spike_times(
        parameter_values(neuron), 25.0, 1000.0, v0=-70.0, w0=0.0
    )
    assert len(expected) == 23
    assert len(times) == 23
    assert np.all(np.isfinite(np.asarray(sol.final_state.v_bounded)))
    assert np.all(np.diff(times) > 0)
    # Float32 with the default tolerances: the error accumulates over 23 spikes.
    assert np.max(np.abs(times - expected)) < 0.5


def test_tonic_spiking_without_nan_from_a_hyperpolarized_start_float32():
    neuron = AdEx()
    y0 = neuron.state_at(jnp.array([-70.0, -300.0]), jnp.zeros(2))
    sol = ns.simulate(
        neuron,
        n=2,
        t1=200.0,
        current=jnp.array([25.0, 200.0]),
        y0=y0,
        record=jnp.linspace(0.0, 200.0, 41),
    )
    v = np.asarray(neuron.voltage(sol.states))
    assert np.all(np.isfinite(v)) and np.all(v <= 5.0)
    for k in range(2):
        isi = np.diff(sol.spike_train(k))
        assert len(isi) >= 3
        # Adaptation lengthens the ISI under a constant current.
        assert isi[-1] > isi[0]


def test_rheobase_is_about_16_7():
    neuron = AdEx()
    p = parameter_values(neuron)
    j_rh = _rheobase(p)
    assert abs(j_rh - 16.7) < 0.02
    v_rest, w_rest = _rest_state(p, 0.99 * j_rh)
    y0 = neuron.state_at(jnp.array([v_rest]), jnp.array([w_rest]))
    below = ns.simulate(neuron, n=1, t1=1000.0, current=0.99 * j_rh, y0=y0)
    above = ns.simulate(neuron, n=1, t1=1000.0, current=1.01 * j_rh, y0=y0)
    assert int(below.num_spikes) == 0
    assert int(above.num_spikes) >= 1
    expected = reference_spike_times(
        p, 1.01 * j_rh, 1000.0, v0=v_rest, w0=w_rest, tol=1e-10
    )
    assert int(above.num_spikes) == len(expected)
    np.testing.assert_allclose(above.spike_train(0)[0], expected[0], atol=0.5)


def test_eif_is_adex_without_adaptation_and_fires_at_the_quadrature_isi(x64):
    neuron = EIF()
    assert float(neuron.a) == 0.0 and float(neuron.b) == 0.0
    p = parameter_values(neuron)
    j = 20.0
    sol = ns.simulate(neuron, n=1, t1=200.0, current=j, rtol=1e-10, atol=1e-10)
    times, _ = sol.spikes()

    def travel_time(v_start):
        # dt = dv / (dv/dt): the time to go from v_start to thr, by quadrature.
        return quad(
            lambda v: 1.0 / _dv_dt(p, v, 0.0, j),
            v_start,
            p["thr"],
            epsabs=1e-13,
            epsrel=1e-13,
            limit=200,
        )[0]

    first, isi = travel_time(-70.0), travel_time(p["v_reset"])
    expected = first + isi * np.arange(len(times))
    assert len(times) == int((200.0 - first) // isi) + 1
    assert np.max(np.abs(times - expected)) < 1e-5
    np.testing.assert_allclose(np.asarray(neuron.adaptation(sol.final_state)), 0.0, atol=0)


def test_gradient_of_spike_time_matches_finite_differences(x64):
    """Through the first spike's reset (`w += b`) to the second spike. The gradient
    is accurate to about 1e-4 (see the module docstring of `neurosim.neurons.adex`)."""

    def second_spike(b, tau_m):
        sol = ns.simulate(
            AdEx(b=b, tau_m=tau_m),
            n=1,
            t1=60.0,
            current=25.0,
            rtol=1e-12,
            atol=1e-12,
            max_spikes=8,
        )
        return sol.spike_times[1]

    b, tau_m = 0.75, 15.0
    grad_b, grad_tau = jax.grad(second_spike, argnums=(0, 1))(b, tau_m)
    h = 1e-5
    fd_b = (second_spike(b + h, tau_m) - second_spike(b - h, tau_m)) / (2 * h)
    fd_tau = (second_spike(b, tau_m + h) - second_spike(b, tau_m - h)) / (2 * h)
    assert abs(float(grad_b)) > 0.5 and abs(float(grad_tau)) > 0.5
    np.testing.assert_allclose(float(grad_b), float(fd_b), rtol=1e-3)
    np.testing.assert_allclose(float(grad_tau), float(fd_tau), rtol=1e-3)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_transformed_state_is_exact(precision, request):
    """The maps v <-> v_bounded and w <-> w_smooth round-trip, and the equations of the
    transformed state are the chain rule applied to the original ones, at states from
    far below rest up to thr."""
    if precision == "float64":
        request.getfixturevalue("x64")
    neuron = AdEx()
    p = parameter_values(neuron)
    v = np.concatenate([np.linspace(-300.0, -60.0, 25), np.linspace(-60.0, 5.0, 40)])
    w = np.linspace(-2.0, 3.0, v.size)
    j = 25.0
    state = neuron.state_at(jnp.asarray(v), jnp.asarray(w))
    tol = 1e-12 if precision == "float64" else 2e-6
    v_back = np.asarray(neuron.voltage(state), np.float64)
    # Near the blow-up, v_bounded resolves v only coarsely (all of v > -29 mV lies within
    # one float32 ulp of vT), which costs nothing in time; compare v where it is resolved.
    resolved = v < (-40.0 if precision == "float64" else -60.0)
    np.testing.assert_allclose(v_back[resolved], v[resolved], rtol=tol)
    np.testing.assert_allclose(
        np.asarray(neuron.bounded(jnp.asarray(v_back, state.v_bounded.dtype))),
        np.asarray(state.v_bounded),
        rtol=tol,
    )
    w_back = np.asarray(neuron.adaptation(state), np.float64)
    np.testing.assert_allclose(w_back, w, rtol=tol, atol=tol)
    rates = neuron.dynamics(0.0, state, jnp.full(v.shape, j))
    # y = vT - sharpV softplus((vT - v) / sharpV): dy/dv = 1 / (1 + exp((v - vT) / sharpV)).
    dy_dv = 1.0 / (1.0 + np.exp((v_back - p["vT"]) / p["sharpV"]))
    dv_dt, dw_dt = _dv_dt(p, v_back, w_back, j), _dw_dt(p, v_back, w_back)
    np.testing.assert_allclose(
        np.asarray(rates.v_bounded), dy_dv * dv_dt, rtol=10 * tol, atol=10 * tol
    )
    # w_smooth = w - k (e^{-z} + g log g): d w_smooth/dt = dw/dt - k e^{-z} log(g) dz/dt.
    k = p["a"] * p["sharpV"] * p["tau_m"] / p["tau_w"]
    z = np.logaddexp(0.0, (p["vT"] - v_back) / p["sharpV"])
    dz_dt = -dy_dv * dv_dt / p["sharpV"]
    expected_w = dw_dt - k * np.exp(-z) * np.log(-np.expm1(-z)) * dz_dt
    np.testing.assert_allclose(
        np.asarray(rates.w_smooth), expected_w, rtol=10 * tol, atol=10 * tol
    )


def test_shifted_threshold_condition_changes_sign_at_the_shifted_threshold(x64):
    neuron = AdEx()
    for threshold in (-45.0, -20.0, 0.0, 5.0, 8.0):
        state = neuron.state_at(jnp.array([threshold - 0.5, threshold + 0.5]), jnp.zeros(2))
        condition = np.asarray(
            neuron.shifted_spike_condition(0.0, state, 0.0, threshold - 5.0)
        )
        assert condition[0] < 0 < condition[1]
