"""Gradients of spike times with respect to every kind of parameter, on the exact
(closed-form) path and the ODE path, against central finite differences; near
`tau_syn == tau_mem`, where finite differences of a closed form cancel, against the ODE
path's gradient at tight tolerances; batched (`jax.vmap`) gradients on the ODE path
against per-sample ones.

One network holds every parameter kind (compilation dominates the cost): it is one
function of a parameter vector, compiled once per path and precision, and evaluated at
many points."""

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurosim as ns
from neurosim.neurons import _linear

TIGHT = dict(rtol=1e-12, atol=1e-12)
MAX_SPIKES = 32
T1 = 60.0
STEP = 1e-5  # finite-difference step (ms, mV): parameters are of order 1 to 10

# The parameters of the scenario, in the order of its vector, and their values.
PARAMETERS = {
    "LIF tau_mem": 10.0,
    "LIF tau_syn": 5.0,
    "LIF v_th": 1.0,
    "LIF v_reset": 0.0,
    "LIF t_ref": 2.0,
    "weight a -> b": 2.0,
    "delay a -> b": 1.0,
    "current of a before 25 ms": 1.3,
    "current of a after 25 ms": 1.6,
    "constant current of b": 0.4,
    "input spike time": 8.0,
    "input weight": 0.5,
    # A CubaLIF at its defaults (tau_inh == tau_mem).
    "CubaLIF tau_mem": float(ns.CubaLIF().tau_mem),
    "CubaLIF tau_exc": float(ns.CubaLIF().tau_exc),
    "CubaLIF tau_inh": float(ns.CubaLIF().tau_inh),
    "constant current of c": 1.2,
    "excitatory input weight onto c": 1.0,
    "inhibitory weight a -> c": -0.1,
    # Per-synapse delays a -> d, not in increasing order.
    "delay a -> d[0]": 3.0,
    "delay a -> d[1]": 0.5,
}
NAMES = tuple(PARAMETERS)
TAU_SYN = NAMES.index("LIF tau_syn")
T_REF = NAMES.index("LIF t_ref")


def _parameters(dtype=None, **changes):
    values = dict(PARAMETERS)
    for name, value in changes.items():
        values[name.replace("_", " ", 1)] = value
    return jnp.array(list(values.values()), dtype)


def _weighted_sum(sol):
    """A loss on every spike time of the run: distinct weights, so that a wrong
    derivative of one spike cannot hide behind another's; padding contributes 0."""
    times = sol.spike_times
    real = jnp.arange(times.shape[0]) < sol.num_spikes
    weights = 1.0 + 0.1 * jnp.arange(times.shape[0])
    return jnp.sum(jnp.where(real, weights * jnp.where(real, times, 0.0), 0.0))


def _network(p):
    """Population `a` (one LIF, a piecewise-constant current, an input spike) drives
    `b` (one LIF, a constant current) through a delayed synapse and `d` (two LIF)
    through synapses with their own delays, and inhibits `c` (a CubaLIF with a
    constant current and an excitatory input spike)."""
    lif = ns.LIF(tau_mem=p[0], tau_syn=p[1], v_th=p[2], v_reset=p[3], t_ref=p[4])
    cuba = ns.CubaLIF(tau_mem=p[12], tau_exc=p[13], tau_inh=p[14])
    current_a = ns.inputs.PiecewiseConstant(jnp.array([25.0], p.dtype), p[7:9])
    return ns.Network(
        populations={
            "a": ns.Population(lif, 1, current_a),
            "b": ns.Population(lif, 1, p[9]),
            "c": ns.Population(cuba, 1, p[15]),
            "d": ns.Population(lif, 2, p[9]),
        },
        projections=[
            ns.Projection("drive", "a", p[11][None, None]),
            ns.Projection("a", "b", p[5][None, None], delay=p[6]),
            ns.Projection("drive", "c", p[16][None, None]),
            ns.Projection("a", "c", p[17][None, None]),
            ns.Projection("a", "d", jnp.array([[1.7, 1.6]], p.dtype), delay=p[None, 18:20]),
        ],
        inputs={"drive": ns.SpikeTrains(p[10][None], jnp.array([0]), 1)},
    )


def _run(p, exact, gradients=True):
    # The ODE path at tight tolerances in float64 (float32 cannot reach them).
    tolerances = TIGHT if not exact and p.dtype == jnp.float64 else {}
    return ns.simulate(
        _network(p),
        t1=T1,
        max_spikes=MAX_SPIKES,
        exact=exact,
        gradients=gradients,
        **tolerances,
    )


@functools.cache
def _compiled(exact, gradients=True):
    """The weighted spike-time loss, its gradient and the spike count, jitted once per
    scenario and path (and per precision, by the tracing cache): the finite
    differences use the same compiled function as the gradient."""

    def loss(p):
        sol = _run(p, exact, gradients)
        return _weighted_sum(sol), sol.num_spikes

    return eqx.filter_jit(jax.value_and_grad(loss, has_aux=True))


def _central_differences(compiled, p, which):
    """Central finite differences of the loss along the coordinates `which` of `p`,
    and the spike counts at every evaluated point (the spike set must not change)."""
    fd, counts = [], []
    for k in which:
        (up, n_up), _ = compiled(p.at[k].add(STEP))
        (down, n_down), _ = compiled(p.at[k].add(-STEP))
        fd.append((float(up) - float(down)) / (2 * STEP))
        counts += [int(n_up), int(n_down)]
    return np.array(fd), np.array(counts)


def _assert_close(grad, reference, names, rtol=1e-4):
    """Relative error below `rtol` per coordinate (relative to the largest
    reference entry for those that are nearly zero)."""
    grad, reference = np.asarray(grad), np.asarray(reference)
    scale = np.maximum(np.abs(reference), 1e-3 * np.max(np.abs(reference)))
    error = np.abs(grad - reference) / scale
    bad = [
        f"{n}: {g!r} vs {r!r}"
        for n, g, r, e in zip(names, grad, reference, error)
        if e > rtol
    ]
    assert not bad, "gradient differs from the reference: " + "; ".join(bad)


@pytest.mark.parametrize(
    "exact, gradients",
    # The ODE path's gradient is also checked below (equal time constants); its
    # finite-difference sweep compiles another minute and runs with the slow tests.
    [(True, True), (True, "eventprop"), pytest.param(False, True, marks=pytest.mark.slow)],
    ids=["exact", "eventprop", "ode"],
)
def test_every_parameter_against_finite_differences(exact, gradients, x64):
    """LIF tau_mem, tau_syn (the time constants also at tau_syn = 2 tau_mem), v_th, v_reset, t_ref; a weight, a
    scalar delay, piecewise-constant and constant currents, an input spike time and
    its weight; a CubaLIF at its defaults and its weights; per-synapse delays. On the
    exact path with the replay (`gradients=True`) and with the adjoint written out
    (`"eventprop"`)."""
    compiled = _compiled(exact, gradients)
    everything = range(len(NAMES))
    time_constants = [k for k, name in enumerate(NAMES) if "tau" in name]
    for tau_syn, which in ((5.0, everything), (20.0, time_constants)):
        p = _parameters(LIF_tau_syn=tau_syn)
        (_, count), grad = compiled(p)
        fd, counts = _central_differences(compiled, p, which)
        assert int(count) >= 8 and np.all(counts == int(count))
        assert np.all(np.abs(fd) > 0)
        _assert_close(np.asarray(grad)[list(which)], fd, [NAMES[k] for k in which])


def test_equal_and_nearly_equal_time_constants_against_the_ode_path(x64):
    """tau_syn == tau_mem and tau_syn = tau_mem (1 +- 1e-9): every gradient on the
    exact path equals the ODE path's (whose equations do not single out equality)."""
    exact, ode = _compiled(True), _compiled(False)
    for tau_syn in (10.0, 10.0 * (1 + 1e-9), 10.0 * (1 - 1e-9)):
        p = _parameters(LIF_tau_syn=tau_syn)
        (loss_exact, count), grad_exact = exact(p)
        (loss_ode, count_ode), grad_ode = ode(p)
        assert int(count) == int(count_ode)
        np.testing.assert_allclose(float(loss_exact), float(loss_ode), rtol=1e-9)
        assert abs(float(grad_exact[TAU_SYN])) > 1e-2  # tau_syn does matter here
        _assert_close(grad_exact, grad_ode, NAMES)


@pytest.mark.parametrize("gradients", [True, "eventprop"])
def test_float32_gradients_are_finite_for_any_refractory_period(gradients, float32):
    """A refractory period of many membrane time constants (exp(t_ref / tau_mem)
    overflows float32 above about 88) leaves every gradient finite on the exact path,
    with the replay and with the adjoint. (The ODE path's LIF equations hold no such
    exponential.)"""
    compiled = _compiled(True, gradients)
    for t_ref in (0.0, 1.0, 100.0, 1000.0, 1e4):
        p = _parameters(jnp.float32, LIF_t_ref=t_ref)
        (loss, _), grad = compiled(p)
        assert grad.dtype == jnp.float32
        assert np.isfinite(float(loss)) and float(loss) > 0
        assert np.all(np.isfinite(np.asarray(grad))), (t_ref, grad)
        assert np.all(np.abs(np.asarray(grad)[:3]) > 0)


def _izhikevich(p):
    """A model without a closed form (the global ODE loop): an Izhikevich neuron with
    the constant current `p[0]` and an input spike of weight `p[1]` mV at 5 ms, which
    pushes it over threshold at once when large."""
    return ns.Network(
        populations={"izhikevich": ns.Population(ns.Izhikevich(), 1, p[0])},
        projections=[ns.Projection("drive", "izhikevich", p[1][None, None])],
        inputs={"drive": ns.SpikeTrains(jnp.array([5.0], p.dtype), jnp.array([0]), 1)},
    )


@functools.cache
def _ode_gradient():
    """The weighted spike-time loss's gradient on `_izhikevich` (and the spike times),
    jitted, and the same vmapped (which batches its traced program: no second trace)."""

    def loss(p):
        sol = ns.simulate(_izhikevich(p), t1=40.0, max_spikes=8)
        return _weighted_sum(sol), sol.spike_times

    grad = eqx.filter_jit(jax.grad(loss, has_aux=True))
    return grad, eqx.filter_jit(jax.vmap(grad))


def test_batched_gradients_on_the_ode_path_equal_per_sample_gradients(x64):
    """`jax.vmap(jax.grad(...))` through the ODE event loop is finite and equals the
    per-sample gradients, also when the samples take different branches in one
    iteration (one is pushed over threshold by its input spike, the others
    integrate): the event root finder's implicit adjoint must not be run on the
    branch a sample did not take."""
    per_sample, batched = _ode_gradient()
    ps = jnp.array([[10.0, 2.0], [12.0, 120.0], [14.0, 2.0]])
    grads, times = batched(ps)
    assert np.all(np.isfinite(np.asarray(grads)))
    # Only the second sample fires at the input spike.
    assert [bool(np.any(np.asarray(t) == 5.0)) for t in times] == [False, True, False]
    for p, grad, t in zip(ps, grads, times):
        reference, reference_times = per_sample(p)
        np.testing.assert_allclose(np.asarray(t), np.asarray(reference_times), rtol=1e-12)
        assert abs(float(reference[0])) > 0.1
        _assert_close(grad, reference, ["current", "input weight"], rtol=1e-9)


def test_phi_value_and_derivative_against_series_and_closed_form(x64):
    """phi(x) = (e^x - 1)/x and its derivative on both sides of the switch between
    the Taylor series and expm1, against the series summed to convergence (math.fsum)
    near 0 and against expm1(x)/x and (x e^x - expm1(x))/x^2 away from it."""
    xs = np.array(
        [-30.0, -3.0, -1.0000001, -1.0, -0.5, -1e-3, -1e-9, 0.0, 1e-9, 0.3, 1.0, 2.0]
    )
    value = jax.vmap(_linear.phi)(jnp.asarray(xs))
    derivative = jax.vmap(jax.grad(_linear.phi))(jnp.asarray(xs))

    def series(x, power):
        # d^power/dx^power of sum_k x^k / (k + 1)!, power in {0, 1}.
        terms = [
            (k if power else 1) * x ** (k - power) / math.factorial(k + 1)
            for k in range(power, 60)
        ]
        return math.fsum(terms)

    for x, v, d in zip(xs, np.asarray(value), np.asarray(derivative)):
        if abs(x) < 2:
            np.testing.assert_allclose(v, series(x, 0), rtol=1e-15)
            np.testing.assert_allclose(d, series(x, 1), rtol=1e-14)
        else:
            np.testing.assert_allclose(v, math.expm1(x) / x, rtol=1e-15)
            expected = (x * math.exp(x) - math.expm1(x)) / x**2
            np.testing.assert_allclose(d, expected, rtol=1e-14)
