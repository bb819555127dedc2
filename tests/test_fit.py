"""`neurosim.fit`: recovering a LIF's `tau_mem` and `v_th` from target spike trains,
frozen parameters, constraints, batches and epochs, progress on stderr."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optax
import pytest

import neurosim as ns
from neurosim import losses
from neurosim.fit import clip

# Constant drives from near threshold to strong: their periods tau ln(I / (I - v_th))
# separate tau_mem from v_th.
CURRENTS = jnp.array([1.2, 1.5, 3.0, 6.0])
SPIKES, T1 = 3, 80.0


def _trains(model, current, gradients=True):
    sol = ns.simulate(
        model, n=1, t1=T1, current=current, max_spikes=32, gradients=gradients
    )
    return sol.padded_spike_trains(SPIKES)


def _loss(model, sample, gradients=True):
    current, target = sample
    trains = _trains(model, current, gradients)
    return losses.spike_time_mse(trains, target, t_missing=T1)


# The replay's gradient (the default) and the adjoint written out.
@pytest.mark.parametrize("gradients", [True, "eventprop"])
def test_fitting_a_lif_recovers_tau_mem_and_v_th_within_one_percent(gradients):
    true = ns.LIF(tau_mem=10.0, v_th=1.0, t_ref=0.5)
    # Targets from the analytic periods: spike k at (k + 1) (t_ref + tau ln(I/(I-1)))
    # minus t_ref, for the hard reset to 0.
    period = 10.0 * np.log(np.asarray(CURRENTS) / (np.asarray(CURRENTS) - 1.0))
    targets = (np.arange(1, SPIKES + 1) * (period[:, None] + 0.5) - 0.5)[:, None, :]
    np.testing.assert_allclose(
        jax.vmap(lambda c: _trains(true, c))(CURRENTS), targets, rtol=1e-5
    )
    start = ns.LIF(tau_mem=11.0, v_th=0.95, t_ref=0.5)
    fitted_fields = eqx.tree_at(
        lambda m: (m.tau_mem, m.v_th),
        jtu.tree_map(lambda _: False, start),
        replace=(True, True),
    )
    # Adam with steps relative to each parameter's size (tau_mem ~ 10, v_th ~ 1).
    optimizer = optax.chain(
        optax.scale_by_adam(),
        optax.scale_by_param_block_rms(),
        optax.scale_by_learning_rate(optax.exponential_decay(0.02, 300, 0.01)),
    )
    fitted, history = ns.fit(
        functools.partial(_loss, gradients=gradients),
        start,
        (CURRENTS, jnp.asarray(targets, jnp.float32)),
        optimizer=optimizer,
        steps=300,
        filter_spec=fitted_fields,
        progress=False,
    )
    np.testing.assert_allclose(fitted.tau_mem, 10.0, rtol=0.01)
    np.testing.assert_allclose(fitted.v_th, 1.0, rtol=0.01)
    assert history.shape == (300,) and history[-1] < 1e-3 * history[0]
    # The parameters outside the filter spec are the very same arrays.
    for name in ("v_reset", "v_leak", "t_ref", "tau_syn"):
        assert getattr(fitted, name) is getattr(start, name)


def test_frozen_parameters_stay_bit_identical_and_constraints_hold():
    start = ns.LIF(tau_mem=3.0, v_th=0.3)
    only_tau = eqx.tree_at(
        lambda m: m.tau_mem, jtu.tree_map(lambda _: False, start), replace=True
    )

    def push_down(model):
        # Both parameters get a gradient; only tau_mem may move.
        return model.tau_mem + 7.0 * model.v_th

    five_steps = functools.partial(
        ns.fit, push_down, start, optimizer=optax.sgd(1.0), steps=5, filter_spec=only_tau
    )
    free, history = five_steps(progress=False)
    np.testing.assert_allclose(free.tau_mem, -2.0)  # 3 - 5 steps of 1: negative
    np.testing.assert_allclose(
        history, [3.0 + 2.1, 2.0 + 2.1, 1.0 + 2.1, 2.1, -1.0 + 2.1], rtol=1e-6
    )
    assert np.asarray(free.v_th).tobytes() == np.asarray(start.v_th).tobytes()
    kept, _ = five_steps(constraints=[clip(lambda m: m.tau_mem, lower=0.5)], progress=False)
    np.testing.assert_allclose(kept.tau_mem, 0.5)
    assert np.asarray(kept.v_th).tobytes() == np.asarray(start.v_th).tobytes()


def test_batches_epochs_and_progress(capsys):
    # Per-sample loss (w - x)²: the batch mean is minimised at the mean of the data.
    data = jnp.arange(10.0)
    params = {"w": jnp.array(0.0)}
    fitted, history = ns.fit(
        lambda p, x: (p["w"] - x) ** 2,
        params,
        data,
        optimizer=optax.adam(0.5),
        epochs=60,
        batch_size=5,
        key=jax.random.PRNGKey(1),
    )
    assert history.shape == (120,)
    np.testing.assert_allclose(fitted["w"], 4.5, atol=0.3)
    # Full batches: the exact mean.
    exact, _ = ns.fit(
        lambda p, x: (p["w"] - x) ** 2,
        params,
        data,
        optimizer=optax.sgd(0.5),
        steps=1,
        progress=False,
    )
    np.testing.assert_allclose(exact["w"], 4.5, rtol=1e-6)
    err = capsys.readouterr().err
    assert "fit: step 1/120" in err and "fit: step 120/120" in err
    ns.fit(lambda p: p["w"] ** 2, params, steps=2, progress=False)
    assert capsys.readouterr().err == ""


def test_fit_errors_name_the_argument():
    params = {"w": jnp.array(0.0)}
    with pytest.raises(ValueError, match="exactly one of `steps`"):
        ns.fit(lambda p: p["w"], params, steps=1, epochs=1)
    with pytest.raises(ValueError, match="`batch_size` is 20 but `data` holds 10"):
        ns.fit(lambda p, x: p["w"], params, jnp.zeros(10), epochs=1, batch_size=20)
    with pytest.raises(TypeError, match="`constraints` must be a callable"):
        ns.fit(lambda p: p["w"], params, steps=1, constraints=3)
    with pytest.raises(ValueError, match="clip: pass `lower`"):
        clip(lambda m: m.tau_mem)
