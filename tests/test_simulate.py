"""The event loop on LIF neurons, against closed forms and finite differences."""

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurosim as ns

LN3 = np.log(3.0)


def _first_spike_time(tau_mem, current, v_th=1.0):
    return tau_mem * np.log(current / (current - v_th))


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_constant_current_spike_times_are_k_tau_ln3(precision, request):
    if precision == "float64":
        request.getfixturevalue("x64")
        tol, kwargs = 1e-6, dict(rtol=1e-12, atol=1e-12)
    else:
        tol, kwargs = 1e-3, {}
    neuron = ns.LIF(tau_mem=10.0, v_th=1.0, v_reset=0.0)
    sol = ns.simulate(neuron, n=1, t1=1000.0, current=1.5, max_spikes=200, **kwargs)
    times, neurons = sol.spikes()
    expected = np.arange(1, len(times) + 1) * 10 * LN3
    assert len(times) == int(1000.0 // (10 * LN3))
    assert np.all(neurons == 0)
    assert np.max(np.abs(times - expected)) < tol
    assert not bool(sol.overflow)
    assert float(sol.t_final) == 1000.0


def test_refractory_period_adds_to_isi(x64):
    neuron = ns.LIF(tau_mem=10.0, t_ref=2.0)
    sol = ns.simulate(neuron, n=1, t1=300.0, current=1.5, rtol=1e-12, atol=1e-12)
    times, _ = sol.spikes()
    isi = np.diff(times)
    assert len(times) == int((300.0 + 2.0) // (2.0 + 10 * LN3))
    np.testing.assert_allclose(times[0], 10 * LN3, atol=1e-8)
    np.testing.assert_allclose(isi, 2.0 + 10 * LN3, atol=1e-8)


def test_refractory_holds_voltage_at_reset(x64):
    neuron = ns.LIF(tau_mem=10.0, t_ref=2.0, v_reset=0.2)
    t_spike = 10 * LN3
    record = jnp.array([t_spike + 0.5, t_spike + 1.9, t_spike + 3.0])
    sol = ns.simulate(
        neuron, n=1, t1=20.0, current=1.5, record=record, rtol=1e-12, atol=1e-12
    )
    v = np.asarray(sol.states.v[:, 0])
    np.testing.assert_allclose(v[:2], 0.2, atol=1e-12)
    # After refractoriness ends at t_spike + 2: v relaxes from 0.2 towards 1.5.
    expected = 1.5 + (0.2 - 1.5) * np.exp(-1.0 / 10.0)
    np.testing.assert_allclose(v[2], expected, atol=1e-9)


def test_recurrent_weight_gives_closed_form_response(x64):
    tau_mem, tau_syn, w = 10.0, 5.0, 0.3
    neuron = ns.LIF(tau_mem=tau_mem, tau_syn=tau_syn)
    current = jnp.array([1.5, 0.0])
    weights = jnp.array([[0.0, w], [0.0, 0.0]])
    t_a = 10 * LN3
    record = t_a + jnp.array([-1e-9, 1.0, 3.0, 7.5])
    sol = ns.simulate(
        neuron,
        n=2,
        t1=t_a + 8.0,
        current=current,
        weights=weights,
        record=record,
        rtol=1e-12,
        atol=1e-12,
    )
    times, neurons = sol.spikes()
    assert list(neurons) == [0]
    np.testing.assert_allclose(times[0], t_a, atol=1e-9)
    s = np.asarray(record) - t_a
    i_expected = np.where(s > 0, w * np.exp(-s / tau_syn), 0.0)
    v_expected = np.where(
        s > 0,
        w * tau_syn / (tau_syn - tau_mem) * (np.exp(-s / tau_syn) - np.exp(-s / tau_mem)),
        0.0,
    )
    np.testing.assert_allclose(np.asarray(sol.states.i[:, 1]), i_expected, atol=1e-9)
    np.testing.assert_allclose(np.asarray(sol.states.v[:, 1]), v_expected, atol=1e-9)


def test_input_spike_trains_give_closed_form_subthreshold_response(x64):
    tau_mem, tau_syn = 20.0, 5.0
    neuron = ns.LIF(tau_mem=tau_mem, tau_syn=tau_syn, v_th=10.0)
    in_times = jnp.array([12.0, 3.0, 7.5, 7.5])
    in_index = jnp.array([1, 0, 0, 1])
    in_weights = jnp.array([[0.4, 0.1], [0.2, 0.5]])
    record = jnp.linspace(0.0, 40.0, 41)
    sol = ns.simulate(
        neuron,
        n=2,
        t1=40.0,
        input_spikes=(in_times, in_index),
        input_weights=in_weights,
        record=record,
        rtol=1e-12,
        atol=1e-12,
    )
    assert int(sol.num_spikes) == 0

    def kernel_v(s):
        s = np.maximum(s, 0.0)
        return tau_syn / (tau_syn - tau_mem) * (np.exp(-s / tau_syn) - np.exp(-s / tau_mem))

    r = np.asarray(record)[:, None]
    v = np.zeros((41, 2))
    i = np.zeros((41, 2))
    for t_k, k in zip(np.asarray(in_times), np.asarray(in_index)):
        # Left limits at the record times: an input at exactly t counts only after t.
        after = (r > t_k).astype(float)
        v += after * np.asarray(in_weights)[k] * kernel_v(r - t_k)
        i += after * np.asarray(in_weights)[k] * np.exp(-np.maximum(r - t_k, 0) / tau_syn)
    np.testing.assert_allclose(np.asarray(sol.states.v), v, atol=1e-9)
    np.testing.assert_allclose(np.asarray(sol.states.i), i, atol=1e-9)


def test_vmap_over_currents_equals_separate_calls():
    neuron = ns.LIF(tau_mem=10.0)
    currents = jnp.linspace(1.2, 3.0, 8)

    def first_spikes(current):
        return ns.simulate(neuron, n=1, t1=60.0, current=current, max_spikes=32).spike_times

    batched = jax.vmap(first_spikes)(currents)
    separate = jnp.stack([first_spikes(c) for c in currents])
    np.testing.assert_array_equal(np.isinf(batched), np.isinf(separate))
    finite = np.isfinite(np.asarray(separate))
    np.testing.assert_allclose(
        np.asarray(batched)[finite], np.asarray(separate)[finite], rtol=1e-5
    )


def test_jit_equals_eager():
    neuron = ns.LIF(tau_mem=12.0, t_ref=1.0)
    weights = jnp.array([[0.0, 0.4, 0.0], [0.0, 0.0, 0.6], [0.2, 0.0, 0.0]])

    def run(current):
        sol = ns.simulate(
            neuron, n=3, t1=80.0, current=current, weights=weights, max_spikes=64
        )
        return sol.spike_times, sol.spike_neurons

    current = jnp.array([1.6, 0.9, 0.8])
    eager_t, eager_i = run(current)
    jit_t, jit_i = jax.jit(run)(current)
    np.testing.assert_array_equal(np.asarray(eager_i), np.asarray(jit_i))
    np.testing.assert_allclose(np.asarray(eager_t), np.asarray(jit_t), rtol=1e-6)


def _first_spike(current, tau_mem):
    neuron = ns.LIF(tau_mem=tau_mem)
    sol = ns.simulate(
        neuron, n=1, t1=50.0, current=current, rtol=1e-12, atol=1e-12, max_spikes=8
    )
    return sol.spike_times[0]


def test_first_spike_gradient_matches_analytic_and_finite_differences(x64):
    current, tau = 1.5, 10.0
    d_current, d_tau = jax.grad(_first_spike, argnums=(0, 1))(current, tau)
    # t* = tau ln(I / (I - 1)).
    analytic_current = tau * (1.0 / current - 1.0 / (current - 1.0))
    analytic_tau = np.log(current / (current - 1.0))
    h = 1e-5
    fd_current = (_first_spike(current + h, tau) - _first_spike(current - h, tau)) / (2 * h)
    fd_tau = (_first_spike(current, tau + h) - _first_spike(current, tau - h)) / (2 * h)
    np.testing.assert_allclose(float(d_current), analytic_current, rtol=1e-5)
    np.testing.assert_allclose(float(d_tau), analytic_tau, rtol=1e-5)
    np.testing.assert_allclose(float(d_current), float(fd_current), rtol=1e-5)
    np.testing.assert_allclose(float(d_tau), float(fd_tau), rtol=1e-5)


def test_gradient_of_later_spike_through_resets_and_weights(x64):
    """d(third spike of B)/d(weight A->B), through A's spike, B's resets and the jump."""

    def third_spike_of_b(w):
        weights = jnp.array([[0.0, w], [0.0, 0.0]])
        sol = ns.simulate(
            ns.LIF(tau_mem=10.0, tau_syn=5.0, t_ref=1.0),
            n=2,
            t1=120.0,
            current=jnp.array([1.5, 1.2]),
            weights=weights,
            rtol=1e-12,
            atol=1e-12,
            max_spikes=64,
        )
        times = jnp.where(sol.spike_neurons == 1, sol.spike_times, jnp.inf)
        return jnp.sort(times)[2]

    w = 0.7
    grad = jax.grad(third_spike_of_b)(w)
    h = 1e-5
    fd = (third_spike_of_b(w + h) - third_spike_of_b(w - h)) / (2 * h)
    assert np.isfinite(float(grad)) and abs(float(grad)) > 1e-3
    np.testing.assert_allclose(float(grad), float(fd), rtol=1e-5)


def test_gradient_with_respect_to_input_spike_time(x64):
    def first_spike(t_in):
        sol = ns.simulate(
            ns.LIF(tau_mem=10.0, tau_syn=5.0),
            n=1,
            t1=60.0,
            current=1.05,
            input_spikes=(jnp.array([t_in]), jnp.array([0])),
            input_weights=jnp.array([[1.0]]),
            rtol=1e-12,
            atol=1e-12,
            max_spikes=4,
        )
        return sol.spike_times[0]

    grad = jax.grad(first_spike)(5.0)
    h = 1e-5
    fd = (first_spike(5.0 + h) - first_spike(5.0 - h)) / (2 * h)
    np.testing.assert_allclose(float(grad), float(fd), rtol=1e-5)


def test_small_buffer_sets_overflow_and_keeps_spikes():
    neuron = ns.LIF(tau_mem=10.0)
    with pytest.warns(UserWarning, match="max_spikes"):
        sol = ns.simulate(neuron, n=1, t1=1000.0, current=1.5, max_spikes=5)
    assert bool(sol.overflow)
    assert int(sol.num_spikes) == 5
    np.testing.assert_allclose(
        np.asarray(sol.spike_times), np.arange(1, 6) * 10 * LN3, atol=1e-3
    )
    assert float(sol.t_final) < 1000.0


def test_simultaneous_spikes_are_recorded_together():
    neuron = ns.LIF(tau_mem=10.0)
    sol = ns.simulate(
        neuron, n=3, t1=25.0, current=jnp.array([1.5, 1.5, 1.5]), max_spikes=16
    )
    times, neurons = sol.spikes()
    assert len(times) == 6
    assert sorted(neurons[:3].tolist()) == [0, 1, 2]
    np.testing.assert_array_equal(times[:3], times[0])


def test_fixed_step_euler_runs():
    sol = ns.simulate(
        ns.LIF(tau_mem=10.0), n=1, t1=50.0, current=1.5, solver=dfx.Euler(), dt0=0.01
    )
    times, _ = sol.spikes()
    np.testing.assert_allclose(times, np.arange(1, 5) * 10 * LN3, atol=0.05)


def test_heterogeneous_parameters():
    tau = jnp.array([10.0, 20.0])
    sol = ns.simulate(ns.LIF(tau_mem=tau), n=2, t1=30.0, current=1.5)
    first = [sol.spike_train(k)[0] for k in range(2)]
    np.testing.assert_allclose(first, np.asarray(tau) * LN3, rtol=1e-4)


def test_li_readout_matches_closed_form(x64):
    sol = ns.simulate(
        ns.LI(tau_mem=10.0, tau_syn=5.0),
        n=1,
        t1=30.0,
        current=2.0,
        record=jnp.array([5.0, 30.0]),
        rtol=1e-12,
        atol=1e-12,
    )
    expected = 2.0 * (1 - np.exp(-np.array([5.0, 30.0]) / 10.0))
    np.testing.assert_allclose(np.asarray(sol.states.v[:, 0]), expected, atol=1e-9)
    assert int(sol.num_spikes) == 0


def test_li_readout_gradient_matches_closed_form_and_finite_differences(x64):
    """The readout's membrane value at 12 ms after an input spike at 2 ms, as a
    function of tau_mem: v = w tau_s / (tau_s - tau_m) (e^{-s/tau_s} - e^{-s/tau_m})."""
    t_in, t_rec, w, tau_syn = 2.0, 12.0, 3.0, 5.0

    def readout(tau_mem):
        sol = ns.simulate(
            ns.LI(tau_mem=tau_mem, tau_syn=tau_syn),
            n=1,
            t1=20.0,
            input_spikes=(jnp.array([t_in]), jnp.array([0])),
            input_weights=jnp.array([[w]]),
            record=jnp.array([t_rec]),
            rtol=1e-12,
            atol=1e-12,
        )
        return sol.states.v[0, 0]

    def closed_form(tau_mem):
        s = t_rec - t_in
        return (
            w
            * tau_syn
            / (tau_syn - tau_mem)
            * (jnp.exp(-s / tau_syn) - jnp.exp(-s / tau_mem))
        )

    tau, h = 10.0, 1e-5
    np.testing.assert_allclose(float(readout(tau)), float(closed_form(tau)), rtol=1e-9)
    grad = float(jax.grad(readout)(tau))
    fd = (float(readout(tau + h)) - float(readout(tau - h))) / (2 * h)
    analytic = float(jax.grad(closed_form)(tau))
    assert abs(analytic) > 1e-3
    np.testing.assert_allclose(grad, analytic, rtol=1e-6)
    np.testing.assert_allclose(grad, fd, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(t1=0.0), "t1"),
        (dict(t1=10.0, t0=20.0), "t1"),
        (dict(t1=10.0, weights=jnp.zeros((2, 3))), "weights"),
        (dict(t1=10.0, current=jnp.ones(5)), "current"),
        (dict(t1=10.0, record=jnp.array([5.0, 1.0])), "record"),
        (dict(t1=10.0, record=jnp.array([11.0])), "record"),
        (dict(t1=10.0, input_spikes=(jnp.array([1.0]), jnp.array([0]))), "input_weights"),
        (dict(t1=10.0, max_spikes=0), "max_spikes"),
        (dict(t1=10.0, solver=dfx.Euler()), "dt0"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ns.simulate(ns.LIF(), n=2, **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(tau_mem=-1.0), "tau_mem"),
        (dict(tau_syn=0.0), "tau_syn"),
        (dict(t_ref=-0.5), "t_ref"),
        (dict(v_reset=2.0, v_th=1.0), "v_reset"),
    ],
)
def test_bad_parameters_name_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ns.LIF(**kwargs)


def test_parameter_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="tau_mem"):
        ns.simulate(ns.LIF(tau_mem=jnp.ones(3) * 10.0), n=2, t1=10.0)


def test_wrong_initial_state_is_reported():
    bad = eqx.tree_at(lambda s: s.v, ns.LIF().init_state(2), jnp.zeros(3))
    with pytest.raises(ValueError, match="y0"):
        ns.simulate(ns.LIF(), n=2, t1=10.0, y0=bad)


def test_parameter_change_does_not_recompile():
    def spikes(tau):
        return ns.simulate(ns.LIF(tau_mem=tau), n=1, t1=20.0, current=1.5).spike_times

    spikes(10.0)
    before = ns._simulate._run_jit._cached._cache_size()
    spikes(11.0)
    assert ns._simulate._run_jit._cached._cache_size() == before


def test_forward_only_loop_gives_the_same_spikes():
    weights = jnp.array([[0.0, 0.5], [-0.3, 0.0]])

    def run(gradients):
        return ns.simulate(
            ns.LIF(tau_mem=10.0, t_ref=1.0),
            n=2,
            t1=100.0,
            current=jnp.array([1.5, 1.1]),
            weights=weights,
            gradients=gradients,
            max_spikes=64,
        ).spikes()

    (t_ckpt, i_ckpt), (t_plain, i_plain) = run(True), run(False)
    assert len(t_ckpt) > 10
    np.testing.assert_array_equal(i_ckpt, i_plain)
    np.testing.assert_allclose(t_ckpt, t_plain, rtol=1e-6)


def test_callable_current_gives_the_closed_form(x64):
    """A plain Python callable `t -> I(t)`: 1.5 before 25 ms, 3 after (announced as a
    jump through `inputs.Function`), against the closed form."""
    from neurosim.inputs import Function

    plain = ns.simulate(
        ns.LIF(tau_mem=10.0),
        n=1,
        t1=50.0,
        current=lambda t: 1.5,
        max_spikes=16,
        rtol=1e-12,
        atol=1e-12,
    )
    np.testing.assert_allclose(plain.spike_train(0), np.arange(1, 5) * 10 * LN3, atol=1e-8)
    stepped = Function(lambda t: jnp.where(t < 25.0, 1.5, 3.0), jumps=[25.0])
    sol = ns.simulate(
        ns.LIF(tau_mem=10.0),
        n=1,
        t1=40.0,
        current=stepped,
        max_spikes=16,
        rtol=1e-12,
        atol=1e-12,
    )
    # Two spikes at 10 ln 3 k; at 25 ms v = 1.5 (1 - e^{-(25 - 20 ln 3)/10}), then
    # under I = 3 it reaches 1 at 25 + 10 ln((3 - v25) / 2).
    v25 = 1.5 * (1 - np.exp(-(25 - 20 * LN3) / 10))
    third = 25 + 10 * np.log((3 - v25) / 2)
    expected = [10 * LN3, 20 * LN3, third, third + 10 * np.log(3 / 2)]
    np.testing.assert_allclose(sol.spike_train(0)[:4], expected, atol=1e-8)


def test_the_room_for_checks_changes_only_at_doublings_of_t1():
    """`max_iterations`'s default is compiled into the run: on per-neuron clocks it
    holds about four checks per neuron and horizon cap, rounded up so that a new `t1`
    within a doubling of the span reuses the compiled program."""
    from neurosim._simulate import _checks_bound

    class Network:
        num_neurons = 10

    cap = 20.0
    spans = np.linspace(1.0, 10_000.0, 5000)
    rooms = np.array([_checks_bound(Network, 0.0, t1, cap) for t1 in spans])
    assert np.all(rooms >= 4 * 10 * (np.floor(spans / cap) + 2))
    assert np.all(rooms <= 2 * 4 * 10 * (np.floor(spans / cap) + 2))
    assert np.all(np.diff(rooms) >= 0)
    assert len(np.unique(rooms)) == 9  # 2, 4, ..., 512 caps
    assert _checks_bound(Network, 0.0, 650.0, cap) == _checks_bound(
        Network, 0.0, 1200.0, cap
    )


def test_a_step_broadcasts_a_scalar_amplitude_over_a_per_neuron_baseline():
    from neurosim.inputs import Step

    step = Step(5.0, 1.5, baseline=jnp.asarray([0.1, 0.2, 0.3]))
    assert step.values.shape == (2, 3)
    np.testing.assert_allclose(np.asarray(step(1.0)), [0.1, 0.2, 0.3])
    np.testing.assert_allclose(np.asarray(step(6.0)), [1.5, 1.5, 1.5])
    with pytest.raises(ValueError, match="`amplitude`.*`baseline`.*broadcast"):
        Step(5.0, jnp.ones(2), baseline=jnp.ones(3))
