"""LIF reset variants (norse, inferno): hard reset `v <- v_reset` and soft reset
`v <- v - (v_th - v_reset)` ("subtract threshold" for `v_reset = 0`).

After a continuous crossing `v = v_th` exactly, so both resets give `v_reset`; they
differ when `v` starts (or is moved) above threshold: the soft reset keeps the excess,
and fires again at once while the excess exceeds `v_th - v_reset`.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurosim as ns

TAU, CURRENT = 10.0, 1.5
V_RESET = (0.0, 0.2)


def _run(reset_mode, v_th=1.0, v0=None, t1=60.0):
    neuron = ns.LIF(
        tau_mem=TAU, v_th=v_th, v_reset=jnp.array(V_RESET), reset_mode=reset_mode
    )
    y0 = None
    if v0 is not None:
        y0 = eqx.tree_at(lambda s: s.v, neuron.init_state(2), jnp.full((2,), v0))
    return ns.simulate(
        neuron, n=2, t1=t1, current=CURRENT, y0=y0, max_spikes=64, rtol=1e-12, atol=1e-12
    )


def _crossing_time(v_start, v_th=1.0):
    """Time for v to rise from v_start to v_th under tau dv/dt = I - v."""
    return TAU * np.log((CURRENT - v_start) / (CURRENT - v_th))


@pytest.mark.parametrize("reset_mode", ["hard", "soft"])
def test_both_resets_give_the_closed_form_after_continuous_crossings(reset_mode, x64):
    sol = _run(reset_mode)
    for k, v_reset in enumerate(V_RESET):
        times = sol.spike_train(k)
        expected = _crossing_time(0.0) + _crossing_time(v_reset) * np.arange(len(times))
        assert (
            len(times) == int((60.0 - _crossing_time(0.0)) // _crossing_time(v_reset)) + 1
        )
        np.testing.assert_allclose(times, expected, atol=1e-9)


def test_soft_reset_keeps_the_excess_and_hard_reset_drops_it(x64):
    soft, hard = _run("soft", v0=2.5), _run("hard", v0=2.5)
    for k, v_reset in enumerate(V_RESET):
        # Soft: 2.5 -> 2.5 - (1 - v_reset) -> 2.5 - 2 (1 - v_reset): two spikes at t = 0,
        # then a rise from the remaining excess.
        v_left = 2.5 - 2 * (1.0 - v_reset)
        soft_times = soft.spike_train(k)
        expected = np.concatenate(
            [
                [0.0, 0.0],
                _crossing_time(v_left)
                + _crossing_time(v_reset) * np.arange(len(soft_times) - 2),
            ]
        )
        np.testing.assert_allclose(soft_times, expected, atol=1e-9)
        # Hard: one spike at t = 0, then from v_reset.
        hard_times = hard.spike_train(k)
        expected = _crossing_time(v_reset) * np.arange(len(hard_times))
        np.testing.assert_allclose(hard_times, expected, atol=1e-9)
        assert len(soft_times) > len(hard_times)


def test_gradient_through_the_soft_reset_matches_closed_form_and_finite_differences(x64):
    def first_spike_after_start(v_th):
        sol = _run("soft", v_th=v_th, v0=2.5)
        times = jnp.where(sol.spike_neurons == 0, sol.spike_times, jnp.inf)
        return jnp.sort(times)[2]  # neuron 0 fires twice at t = 0

    v_th = 1.0
    grad = float(jax.grad(first_spike_after_start)(v_th))
    # Neuron 0 (v_reset = 0) is at 2.5 - 2 v_th after its two spikes:
    # t = tau ln((I - 2.5 + 2 v_th) / (I - v_th)).
    analytic = TAU * (2.0 / (CURRENT - 2.5 + 2 * v_th) + 1.0 / (CURRENT - v_th))
    h = 1e-5
    fd = (first_spike_after_start(v_th + h) - first_spike_after_start(v_th - h)) / (2 * h)
    np.testing.assert_allclose(
        float(first_spike_after_start(v_th)), _crossing_time(0.5), atol=1e-9
    )
    np.testing.assert_allclose(grad, analytic, rtol=1e-5)
    np.testing.assert_allclose(grad, float(fd), rtol=1e-5)
