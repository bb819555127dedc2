"""The Izhikevich neuron and the 20 behaviours of Izhikevich (2004), Fig. 1.

The reference integrations use an independent transcription of the figure script
(izhikevich.org, figure1.m) and scipy's DOP853 at tolerance 1e-12, with its event
locator on the dense output; nothing of the model under test is reused.
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from neurosim import simulate
from neurosim.neurons.izhikevich import (
    IZHIKEVICH_BEHAVIOURS,
    Izhikevich,
    PiecewiseLinear,
    SequentialEuler,
    izhikevich_behaviour,
)


def _pulses(windows, amplitude, base=0.0):
    def current(t):
        return amplitude if any(start <= t < stop for start, stop in windows) else base

    return current, sorted({x for window in windows for x in window})


def _accommodation_ramps(t):
    if t < 200.0:
        return t / 25.0
    if 300.0 <= t < 312.5:
        return (t - 300.0) / 12.5 * 4.0
    return 0.0


def _threshold_variability(t):
    if 10.0 <= t < 15.0 or 80.0 <= t < 85.0:
        return 1.0
    return -6.0 if 70.0 <= t < 75.0 else 0.0


_T1_INT = 100.0 / 11.0
# name: (a, b, c, d, v0, t1, (current, jump times), extra). Continuous-time variants of
# dap, bistability and inhibition-induced bursting as documented in the module.
SCRIPT = {
    "tonic_spiking": (0.02, 0.2, -65, 6, -70, 100, _pulses([(10, np.inf)], 14.0), {}),
    "phasic_spiking": (0.02, 0.25, -65, 6, -64, 200, _pulses([(20, np.inf)], 0.5), {}),
    "tonic_bursting": (0.02, 0.2, -50, 2, -70, 220, _pulses([(22, np.inf)], 15.0), {}),
    "phasic_bursting": (0.02, 0.25, -55, 0.05, -64, 200, _pulses([(20, np.inf)], 0.6), {}),
    "mixed_mode": (0.02, 0.2, -55, 4, -70, 160, _pulses([(16, np.inf)], 10.0), {}),
    "spike_frequency_adaptation": (
        0.01,
        0.2,
        -65,
        8,
        -70,
        85,
        _pulses([(8.5, np.inf)], 30.0),
        {},
    ),
    "class_1_exc": (
        0.02,
        -0.1,
        -55,
        6,
        -60,
        300,
        (lambda t: max(0.0, 0.075 * (t - 30)), [30.0]),
        dict(mn=4.1, bias=108.0),
    ),
    "class_2_exc": (
        0.2,
        0.26,
        -65,
        0,
        -64,
        300,
        (lambda t: -0.5 + max(0.0, 0.015 * (t - 30)), [30.0]),
        {},
    ),
    "spike_latency": (0.02, 0.2, -65, 6, -70, 100, _pulses([(10, 13)], 7.04), {}),
    "subthreshold_oscillation": (
        0.05,
        0.26,
        -60,
        0,
        -62,
        200,
        _pulses([(20, 25)], 2.0),
        {},
    ),
    "resonator": (
        0.1,
        0.26,
        -60,
        -1,
        -62,
        400,
        _pulses([(40, 44), (60, 64), (280, 284), (320, 324)], 0.65),
        {},
    ),
    "integrator": (
        0.02,
        -0.1,
        -55,
        6,
        -60,
        100,
        _pulses(
            [(_T1_INT, _T1_INT + 2), (_T1_INT + 5, _T1_INT + 7), (70, 72), (80, 82)], 9.0
        ),
        dict(mn=4.1, bias=108.0),
    ),
    "rebound_spike": (0.03, 0.25, -60, 4, -64, 200, _pulses([(20, 25)], -15.0), {}),
    "rebound_burst": (0.03, 0.25, -52, 0, -64, 200, _pulses([(20, 25)], -15.0), {}),
    "threshold_variability": (
        0.03,
        0.25,
        -60,
        4,
        -64,
        100,
        (_threshold_variability, [10.0, 15.0, 70.0, 75.0, 80.0, 85.0]),
        {},
    ),
    "bistability": (
        0.1,
        0.26,
        -60,
        0,
        -61,
        300,
        _pulses([(37.5, 42.5), (206.5, 211.5)], 1.24, 0.24),
        {},
    ),
    "dap": (1.0, 0.2, -60, -18, -70, 50, _pulses([(9, 11)], 20.0), {}),
    "accomodation": (
        0.02,
        1.0,
        -55,
        4,
        -65,
        400,
        (_accommodation_ramps, [200.0, 300.0, 312.5]),
        dict(u0=-16.0, script_recovery=True),
    ),
    "inhibition_induced_spiking": (
        -0.02,
        -1.0,
        -60,
        8,
        -63.8,
        350,
        _pulses([(50, 250)], 75.0, 80.0),
        {},
    ),
    "inhibition_induced_bursting": (
        -0.026,
        -1.0,
        -45,
        -0.6,
        -63.8,
        350,
        _pulses([(50, 250)], 75.0, 80.0),
        {},
    ),
}


def _reference_spikes(name):
    a, b, c, d, v0, t1, (current, jumps), extra = SCRIPT[name]
    mn, bias = extra.get("mn", 5.0), extra.get("bias", 140.0)

    def rhs(t, y):
        v, u = y
        du = a * b * (v + 65.0) if extra.get("script_recovery") else a * (b * v - u)
        return [0.04 * v * v + mn * v + bias - u + current(t), du]

    def threshold(t, y):
        return y[0] - 30.0

    threshold.terminal, threshold.direction = True, 1.0
    y = np.array([v0, extra.get("u0", b * v0)], float)
    t, spikes = 0.0, []
    for end in [x for x in jumps if 0.0 < x < t1] + [float(t1)]:
        while t < end:
            sol = solve_ivp(
                rhs,
                (t, end),
                y,
                "DOP853",
                rtol=1e-12,
                atol=1e-12,
                events=threshold,
                max_step=1.0,
            )
            if sol.status == 1:
                t, y = sol.t_events[0][0], sol.y_events[0][0].copy()
                spikes.append(t)
                y = np.array([c, y[1] + d])
            else:
                t, y = end, sol.y[:, -1]
    return np.array(spikes)


RECORD_POINTS = 1001


class Run(NamedTuple):
    spikes: np.ndarray
    ts: np.ndarray
    v: np.ndarray


def _run(panel, **kwargs):
    record = jnp.linspace(0.0, panel.t1, RECORD_POINTS)
    sol = panel.simulate(record=record, max_spikes=64, **kwargs)
    return sol, Run(sol.spike_train(0), np.asarray(record), np.asarray(sol.states.v[:, 0]))


def _run_all(names, **kwargs):
    """The behaviours in float64; one compilation serves all (same structure)."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        figure = kwargs.get("figure_step", False)
        return {
            name: _run(izhikevich_behaviour(name, continuous=not figure), **kwargs)[1]
            for name in names
        }
    finally:
        jax.config.update("jax_enable_x64", previous)


# The figure scheme (SequentialEuler at the published step, reset at the end of the
# crossing step) reproduces every panel with the published values.
FIGURE_SCHEME_PANELS = list(IZHIKEVICH_BEHAVIOURS)


@pytest.fixture(scope="module")
def exact_runs():
    return _run_all(IZHIKEVICH_BEHAVIOURS, rtol=1e-10, atol=1e-10)


@pytest.fixture(scope="module")
def figure_runs():
    return _run_all(FIGURE_SCHEME_PANELS, figure_step=True)


@pytest.mark.parametrize("name", IZHIKEVICH_BEHAVIOURS)
def test_spike_times_match_independent_integration(name, exact_runs):
    expected = _reference_spikes(name)
    got = exact_runs[name].spikes
    assert len(got) == len(expected)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


# Defining features, on (spike times, record times, v at the record times).


def _bursts(spikes, gap=20.0):
    return np.split(spikes, np.flatnonzero(np.diff(spikes) > gap) + 1)


def _tonic_spiking(s, t, v):
    isi = np.diff(s)
    assert len(s) >= 4 and s[0] > 10.0
    assert abs(isi[-1] - isi[-2]) < 0.02 * isi[-1]  # regular firing
    assert s[-1] > 100.0 - 1.5 * isi[-1]  # for as long as the input lasts


def _phasic_spiking(s, t, v):
    assert len(s) == 1 and 20.0 < s[0] < 60.0


def _tonic_bursting(s, t, v):
    bursts = _bursts(s)
    assert len(bursts) >= 3 and all(len(burst) >= 3 for burst in bursts)
    intra = max(np.max(np.diff(burst)) for burst in bursts)
    gaps = [nxt[0] - prev[-1] for prev, nxt in zip(bursts[:-1], bursts[1:], strict=True)]
    assert intra < 0.25 * min(gaps)


def _phasic_bursting(s, t, v):
    assert len(s) >= 3 and s[0] > 20.0 and s[-1] < 100.0
    assert len(_bursts(s)) == 1


def _mixed_mode(s, t, v):
    isi = np.diff(s)
    assert isi[0] < 5.0 and isi[1] < 5.0  # a burst at onset
    assert len(isi) >= 5 and np.all(isi[2:] > 25.0)  # then single spikes
    np.testing.assert_allclose(isi[3:], isi[-1], rtol=0.05)


def _spike_frequency_adaptation(s, t, v):
    assert len(s) >= 5 and np.all(np.diff(np.diff(s)) > 0)


def _class_1(s, t, v):
    isi = np.diff(s)
    assert s[0] > 30.0 and len(s) >= 5
    assert isi[0] > 35.0  # firing starts at a low rate
    assert np.all(np.diff(isi) < 0)  # that grows with the ramp


def _class_2(s, t, v):
    isi = np.diff(s)
    assert s[0] > 30.0 and len(s) >= 5
    assert isi[0] < 25.0  # firing starts at a high rate
    # The rate rises with the ramp (ties allowed: fixed-step ISIs are whole steps).
    assert np.all(np.diff(isi) <= 1e-9) and isi[-1] < isi[0] - 5.0


def _spike_latency(s, t, v):
    assert len(s) == 1 and s[0] > 13.0 + 2.0  # well after the 10-13 ms pulse


def _subthreshold_oscillation(s, t, v):
    assert len(s) == 1 and 20.0 < s[0] < 30.0
    # Rest: the lower root of 0.04 v^2 + (5 - b) v + 140 = 0.
    v_rest = min(np.roots([0.04, 5.0 - 0.26, 140.0]).real)
    late = t > s[0] + 10.0
    sign_changes = np.sum(np.diff(np.sign(v[late] - v_rest)) != 0)
    assert sign_changes >= 4  # oscillates around rest
    assert abs(v[-1] - v_rest) < 0.1 * np.max(np.abs(v[late] - v_rest))  # damped


def _resonator(s, t, v):
    assert len(s) == 1 and s[0] > 320.0  # only the pair 40 ms apart fires


def _integrator(s, t, v):
    assert len(s) == 1 and _T1_INT + 5.0 < s[0] < 70.0  # only the close pair fires


def _rebound_spike(s, t, v):
    assert len(s) == 1 and s[0] > 25.0


def _rebound_burst(s, t, v):
    assert len(s) >= 3 and s[0] > 25.0 and len(_bursts(s, gap=10.0)) == 1


def _threshold_variability(s, t, v):
    assert len(s) == 1 and s[0] > 80.0


def _bistability(s, t, v):
    assert not np.any(s < 37.5)
    assert np.sum(s < 206.5) >= 3  # switched on by the first pulse
    assert not np.any(s > 215.0)  # and off by the second


def _dap(s, t, v):
    assert len(s) == 1 and 9.0 < s[0] < 13.0
    after = (t > s[0] + 0.5) & (t < s[0] + 10.0)
    c = -60.0
    assert np.max(v[after]) > c + 3.0  # depolarizing after-potential
    assert abs(v[-1] + 70.0) < 0.5  # back to rest


def _accommodation(s, t, v):
    assert len(s) == 1 and 300.0 < s[0] < 330.0  # the fast ramp fires, the slow does not


def _inhibition_induced_spiking(s, t, v):
    assert np.sum((s > 50.0) & (s < 250.0)) >= 2
    assert np.all((s > 50.0) & (s < 270.0))


def _inhibition_induced_bursting(s, t, v):
    bursts = _bursts(s, gap=10.0)
    assert len(bursts) >= 2 and all(len(burst) >= 3 for burst in bursts)
    assert np.all((s > 50.0) & (s < 250.0))


FEATURES = {
    "tonic_spiking": _tonic_spiking,
    "phasic_spiking": _phasic_spiking,
    "tonic_bursting": _tonic_bursting,
    "phasic_bursting": _phasic_bursting,
    "mixed_mode": _mixed_mode,
    "spike_frequency_adaptation": _spike_frequency_adaptation,
    "class_1_exc": _class_1,
    "class_2_exc": _class_2,
    "spike_latency": _spike_latency,
    "subthreshold_oscillation": _subthreshold_oscillation,
    "resonator": _resonator,
    "integrator": _integrator,
    "rebound_spike": _rebound_spike,
    "rebound_burst": _rebound_burst,
    "threshold_variability": _threshold_variability,
    "bistability": _bistability,
    "dap": _dap,
    "accomodation": _accommodation,
    "inhibition_induced_spiking": _inhibition_induced_spiking,
    "inhibition_induced_bursting": _inhibition_induced_bursting,
}


@pytest.mark.parametrize("name", IZHIKEVICH_BEHAVIOURS)
def test_exact_model_shows_each_behaviour(name, exact_runs):
    run = exact_runs[name]
    FEATURES[name](run.spikes, run.ts, run.v)


@pytest.mark.parametrize("name", FIGURE_SCHEME_PANELS)
def test_figure_scheme_shows_each_behaviour(name, figure_runs):
    run = figure_runs[name]
    FEATURES[name](run.spikes, run.ts, run.v)


def test_published_values_fail_in_continuous_time_as_documented(x64):
    """The three panels whose published values need the figure's coarse Euler step."""
    tolerance = dict(rtol=1e-10, atol=1e-10)
    dap = _run(izhikevich_behaviour("dap"), **tolerance)[1]
    bistability = _run(izhikevich_behaviour("bistability"), **tolerance)[1]
    with pytest.warns(UserWarning, match="max_spikes"):
        bursting, _ = _run(izhikevich_behaviour("inhibition_induced_bursting"), **tolerance)
    assert len(dap.spikes) > 3  # tonic firing after the pulse
    assert np.any(bistability.spikes > 221.0)  # not switched off by the second pulse
    assert bool(bursting.overflow)  # never stops firing


def test_sequential_euler_is_the_figure_script_update(x64):
    """v first, then u from the new v, compared with the script's loop step by step."""
    panel = izhikevich_behaviour("tonic_spiking")
    dt, steps = 0.25, 48  # up to 12 ms, before the first spike
    record = dt * jnp.arange(1, steps + 1)
    sol = simulate(
        panel.neuron,
        n=1,
        t1=12.0,
        current=panel.current,
        record=record,
        solver=SequentialEuler(),
        dt0=dt,
    )
    v, u = -70.0, 0.2 * -70.0
    expected = []
    for k in range(steps):
        current = 14.0 if k * dt >= 10.0 else 0.0
        v = v + dt * (0.04 * v * v + 5 * v + 140 - u + current)
        u = u + dt * 0.02 * (0.2 * v - u)
        expected.append((v, u))
    expected = np.array(expected)
    assert int(sol.num_spikes) == 0
    np.testing.assert_allclose(np.asarray(sol.states.v[:, 0]), expected[:, 0], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(sol.states.u[:, 0]), expected[:, 1], rtol=1e-12)


def test_spike_time_gradient_matches_finite_differences(x64):
    panel = izhikevich_behaviour("tonic_spiking")

    def third_spike(neuron):
        sol = simulate(
            neuron,
            n=1,
            t1=60.0,
            current=panel.current,
            rtol=1e-12,
            atol=1e-12,
            max_spikes=8,
        )
        return sol.spike_times[2]

    neuron = panel.neuron
    grads = eqx.filter_grad(third_spike)(neuron)
    h = 1e-5
    for field in ("a", "c", "d", "v_th"):

        def shifted(delta, field=field):
            value = getattr(neuron, field) + delta
            return third_spike(eqx.tree_at(lambda n: getattr(n, field), neuron, value))

        fd = (shifted(h) - shifted(-h)) / (2 * h)
        assert abs(float(fd)) > 1e-3
        np.testing.assert_allclose(float(getattr(grads, field)), float(fd), rtol=1e-5)


def test_vmap_over_behaviours_equals_separate_runs(exact_runs, x64):
    names = ["tonic_spiking", "class_1_exc", "accomodation", "inhibition_induced_bursting"]
    panels = [izhikevich_behaviour(name, continuous=True) for name in names]
    pairs = [(panel.neuron, panel.current) for panel in panels]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *pairs)
    t1 = jnp.array([panel.t1 for panel in panels])

    def spike_times(neuron, current, t1):
        sol = simulate(
            neuron, n=1, t1=t1, current=current, rtol=1e-10, atol=1e-10, max_spikes=64
        )
        return sol.spike_times

    batched = np.asarray(jax.vmap(spike_times)(*stacked, t1))
    for row, name in zip(batched, names, strict=True):
        expected = exact_runs[name].spikes
        np.testing.assert_allclose(row[np.isfinite(row)], expected, atol=1e-6)


def test_incoming_spikes_jump_v():
    """A weight of 200 mV lifts a resting neuron over threshold at once; the recurrent
    weight passes the spike on at the same instant."""
    neuron = Izhikevich()
    sol = simulate(
        neuron,
        n=2,
        t1=10.0,
        input_spikes=(jnp.array([5.0]), jnp.array([0])),
        input_weights=jnp.array([[200.0, 0.0]]),
        weights=jnp.array([[0.0, 200.0], [0.0, 0.0]]),
    )
    times, neurons = sol.spikes()
    assert sorted(neurons.tolist()) == [0, 1]
    np.testing.assert_array_equal(times, 5.0)


def test_default_initial_state_and_preset_lookup():
    state = Izhikevich(b=0.25, v0=-64.0).init_state(3)
    np.testing.assert_allclose(np.asarray(state.u), -16.0)
    assert izhikevich_behaviour("accommodation").name == "accomodation"
    assert izhikevich_behaviour("threshhold_variability").name == "threshold_variability"
    assert float(Izhikevich.preset("dap").d) == -21.0
    assert float(Izhikevich.preset("dap", continuous=True).d) == -18.0
    assert len(IZHIKEVICH_BEHAVIOURS) == 20


def test_stimulus_protocols_follow_the_figure():
    for name, (*_, t1, (current, jumps), _extra) in SCRIPT.items():
        protocol = izhikevich_behaviour(name, continuous=True).current
        ts = np.linspace(0.0, t1, 397)
        expected = [current(t) for t in ts]
        np.testing.assert_allclose(protocol(ts), expected, atol=1e-5, err_msg=name)
        for jump in jumps:
            if 0.0 < jump < t1:
                assert float(protocol.next_jump(jump - 0.5)) == pytest.approx(jump), name


def test_unknown_behaviour_lists_valid_names():
    with pytest.raises(ValueError, match="tonic_spiking.*inhibition_induced_bursting"):
        izhikevich_behaviour("tonic_spikes")


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Izhikevich(c=30.0), "`c`"),
        (lambda: Izhikevich(sq=-0.04), "sq"),
        (lambda: PiecewiseLinear(jnp.zeros(2), jnp.zeros(2), jnp.zeros(3)), "levels"),
    ],
)
def test_bad_parameters_are_reported(make, match):
    with pytest.raises(ValueError, match=match):
        make()
