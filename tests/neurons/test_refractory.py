"""`Refractory`: an absolute refractory period for any threshold model, checked on a
user-written model against an independent integration (scipy) and on the LIF against
its closed form."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _reference import threshold_reference

import neurosim as ns

TOL = 1e-12


class QIFState(eqx.Module):
    v: jax.Array
    u: jax.Array


class AdaptiveQIF(ns.AbstractNeuron):
    """A quadratic integrate-and-fire neuron with a slow adaptation current `u`, written
    with the public model API only: tau dv/dt = (v - v_rest)(v - v_crit)/delta - u + I,
    tau_u du/dt = -u, u += b at a spike."""

    tau: jax.Array = ns.parameter(10.0)
    v_rest: jax.Array = ns.parameter(-65.0)
    v_crit: jax.Array = ns.parameter(-50.0)
    delta: jax.Array = ns.parameter(15.0)
    v_th: jax.Array = ns.parameter(0.0)
    v_reset: jax.Array = ns.parameter(-70.0)
    tau_u: jax.Array = ns.parameter(40.0)
    b: jax.Array = ns.parameter(2.0)

    def init_state(self, n):
        return QIFState(v=jnp.full((n,), self.v_rest), u=jnp.zeros((n,), self.tau.dtype))

    def dynamics(self, t, s, current):
        dv = (s.v - self.v_rest) * (s.v - self.v_crit) / self.delta - s.u + current
        return QIFState(v=dv / self.tau, u=-s.u / self.tau_u)

    def spike_condition(self, t, s, current):
        return s.v - self.v_th

    def reset(self, t, s, fired):
        return QIFState(
            v=jnp.where(fired, self.v_reset, s.v), u=jnp.where(fired, s.u + self.b, s.u)
        )

    def receive(self, s, x):
        return QIFState(v=s.v + x, u=s.u)


def _qif_reference(current, t1, t_ref, kicks=()):
    """The model's equations at its defaults, written again for scipy."""
    tau, v_rest, v_crit, delta = 10.0, -65.0, -50.0, 15.0

    def rhs(t, y):
        v, u = y
        return [((v - v_rest) * (v - v_crit) / delta - u + current) / tau, -u / 40.0]

    return threshold_reference(
        rhs,
        [v_rest, 0.0],
        t1,
        v_th=0.0,
        reset=lambda y: np.array([-70.0, y[1] + 2.0]),
        t_ref=t_ref,
        kicks=kicks,
        tol=TOL,
    )


@pytest.mark.parametrize("t_ref", [0.0, 4.0])
def test_custom_model_spike_times_match_scipy(t_ref, x64):
    # A kick of v 1 ms after the first spike (inside the refractory period for
    # t_ref = 4) lifts v above threshold: it fires at once without a refractory
    # period and when the period ends with one. A smaller kick later.
    current, t1 = 30.0, 100.0
    first = _qif_reference(current, 20.0, t_ref)[0]
    kick_times = np.array([first + 1.0, 62.0])
    kick_sizes = np.array([80.0, 10.0])
    expected = _qif_reference(
        current, t1, t_ref, [(t, (dv, 0.0)) for t, dv in zip(kick_times, kick_sizes)]
    )
    sol = ns.simulate(
        ns.Refractory(AdaptiveQIF(), t_ref=t_ref),
        n=1,
        t1=t1,
        current=current,
        input_spikes=(jnp.asarray(kick_times), jnp.array([0, 1])),
        input_weights=jnp.asarray(kick_sizes[:, None]),
        rtol=TOL,
        atol=TOL,
    )
    got = sol.spike_train(0)
    assert len(expected) >= 5
    assert len(got) == len(expected)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert np.all(np.diff(got) >= t_ref - 1e-9)
    # The kick fires the neuron: at once, or when the refractory period ends.
    np.testing.assert_allclose(got[1], first + max(1.0, t_ref), rtol=0, atol=1e-9)


def test_wrapped_lif_matches_the_closed_form_and_the_built_in_refractory_period(x64):
    tau, current, t_ref = 10.0, 1.5, 3.0
    rise = tau * np.log(current / (current - 1.0))
    expected = rise + (rise + t_ref) * np.arange(6)
    wrapped = ns.simulate(
        ns.Refractory(ns.LIF(tau_mem=tau), t_ref=t_ref),
        n=1,
        t1=expected[-1] + 1.0,
        current=current,
        rtol=TOL,
        atol=TOL,
    )
    built_in = ns.simulate(
        ns.LIF(tau_mem=tau, t_ref=t_ref), n=1, t1=expected[-1] + 1.0, current=current
    )
    np.testing.assert_allclose(wrapped.spike_train(0), expected, rtol=0, atol=1e-8)
    np.testing.assert_allclose(built_in.spike_train(0), expected, rtol=0, atol=1e-8)


def test_only_the_held_fields_stop_while_refractory(x64):
    record = jnp.array([14.0, 16.0, 18.0])
    sol = ns.simulate(
        ns.Refractory(AdaptiveQIF(), t_ref=10.0),
        n=1,
        t1=20.0,
        current=30.0,
        record=record,
        rtol=TOL,
        atol=TOL,
    )
    t_spike = sol.spike_train(0)[0]
    assert t_spike < 14.0 < 18.0 < t_spike + 10.0
    v = np.asarray(sol.states.neuron.v[:, 0])
    u = np.asarray(sol.states.neuron.u[:, 0])
    np.testing.assert_array_equal(v, -70.0)
    np.testing.assert_allclose(u[1:] / u[:-1], np.exp(-2.0 / 40.0), rtol=1e-9)


def test_adaptation_wraps_a_refractory_model():
    neuron = ns.AdaptiveCurrent(
        ns.Refractory(AdaptiveQIF(), t_ref=2.0),
        tau_adapt=50.0,
        voltage_coupling=0.0,
        spike_increment=1.0,
    )
    sol = ns.simulate(neuron, n=1, t1=200.0, current=30.0)
    isi = np.diff(sol.spike_train(0))
    assert len(isi) >= 3 and np.all(isi >= 2.0)
    assert isi[-1] > isi[0]  # the added adaptation slows the firing


def test_errors_name_the_bad_argument():
    with pytest.raises(ValueError, match="t_ref"):
        ns.Refractory(AdaptiveQIF(), t_ref=-1.0)
    with pytest.raises(ValueError, match="hold"):
        ns.Refractory(AdaptiveQIF(), t_ref=1.0, hold=("w",))
    with pytest.raises(TypeError, match="hold"):
        ns.Refractory(AdaptiveQIF(), t_ref=1.0, hold="v")
    with pytest.raises(ValueError, match="spiking"):
        ns.Refractory(ns.LI(), t_ref=1.0)
