"""`neurosim.plot` on the Agg backend: each function draws what it claims, checked
against numbers computed here independently (spike counts, closed forms, the model's
own `dynamics` at points read back from the drawn curves)."""

import importlib
import sys

import matplotlib

matplotlib.use("Agg")
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pytest

import neurosim as ns
import neurosim.plot as nsp


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _points(line):
    return np.column_stack([line.get_xdata(), line.get_ydata()]).astype(float)


def test_import_without_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    monkeypatch.delitem(sys.modules, "neurosim.plot")
    with pytest.raises(ImportError, match=r"pip install 'neurosim\[plot\]'"):
        importlib.import_module("neurosim.plot")


@pytest.fixture(scope="module")
def two_populations():
    """Two LIF populations driven by constant currents, the second by the first."""
    net = ns.Network(
        populations={
            "exc": ns.Population(
                ns.LIF(tau_mem=10.0), 8, current=jnp.linspace(1.2, 3.0, 8)
            ),
            "inh": ns.Population(ns.LIF(tau_mem=10.0), 4, current=1.1),
        },
        projections=[ns.Projection("exc", "inh", 0.3 * jnp.ones((8, 4)))],
    )
    return ns.simulate(net, t1=200.0, max_spikes=2000)


def test_raster_draws_one_point_per_spike_per_population(two_populations):
    sol = two_populations
    ax = nsp.raster(sol)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"exc", "inh"}
    for name, offset in (("exc", 0), ("inh", 8)):
        times, neurons = sol.spikes(name)
        drawn = _points(lines[name])
        assert len(drawn) == len(times) > 0
        np.testing.assert_allclose(drawn[:, 0], times)
        np.testing.assert_array_equal(drawn[:, 1], neurons + offset)
    assert sum(len(line.get_xdata()) for line in ax.get_lines()) == int(sol.num_spikes)
    assert ax.get_xlabel() == "time (ms)" and ax.get_ylabel()


def test_raster_rate_panel_counts_the_spikes(two_populations):
    sol = two_populations
    ax_spikes, ax_rate = nsp.raster(sol, rate=True, bin_ms=10.0)
    assert "(Hz" in ax_rate.get_ylabel() and ax_rate.get_xlabel() == "time (ms)"
    for line, (name, size) in zip(ax_rate.get_lines(), (("exc", 8), ("inh", 4))):
        times, _ = sol.spikes(name)
        counts, _ = np.histogram(times, np.arange(0.0, 210.0, 10.0))
        rate = np.asarray(line.get_ydata())[: len(counts)]
        np.testing.assert_allclose(rate * size * 10.0 / 1000.0, counts)


@pytest.fixture(scope="module")
def regular_lif():
    """One LIF firing every 10 ln 3 ms."""
    return ns.simulate(ns.LIF(tau_mem=10.0), n=1, t1=200.0, current=1.5)


def test_raster_of_one_population_and_bad_names(regular_lif, two_populations):
    ax = nsp.raster(regular_lif)
    points = _points(ax.get_lines()[0])
    assert len(points) == int(regular_lif.num_spikes) == 18
    np.testing.assert_allclose(points[:, 0], 10 * np.log(3.0) * np.arange(1, 19), rtol=1e-5)
    with pytest.raises(ValueError, match="single population"):
        nsp.raster(regular_lif, populations="exc")
    with pytest.raises(ValueError, match="no population 'b'"):
        nsp.raster(two_populations, "b")


@pytest.fixture(scope="module")
def tonic_izhikevich():
    """A regular-spiking Izhikevich neuron at a constant input of 10 mV/ms, recorded."""
    ts = jnp.linspace(0.0, 100.0, 1001)
    return ns.simulate(ns.Izhikevich(), n=1, t1=100.0, current=10.0, record=ts)


def test_traces_draw_the_recorded_voltage_spikes_and_threshold(tonic_izhikevich):
    neuron, sol = ns.Izhikevich(), tonic_izhikevich
    ax = nsp.traces(sol, model=neuron)
    trace, marks = ax.get_lines()[0], ax.get_lines()[-1]
    np.testing.assert_allclose(trace.get_ydata(), np.asarray(sol.states.v[:, 0]))
    np.testing.assert_allclose(marks.get_xdata(), sol.spike_train(0))
    assert len(marks.get_xdata()) == int(sol.num_spikes) > 2
    thresholds = [line for line in ax.get_lines() if np.ptp(line.get_ydata()) == 0]
    assert any(np.allclose(line.get_ydata(), 30.0) for line in thresholds)
    assert ax.get_ylabel() == "v (mV)" and ax.get_xlabel() == "time (ms)"
    with pytest.raises(ValueError, match="record="):
        nsp.traces(ns.simulate(neuron, n=1, t1=10.0, current=10.0))


# (model, x, y, window, current): the four two-variable models of the issue.
PORTRAITS = {
    "izhikevich": (ns.Izhikevich(), "v", "u", ((-80.0, 35.0), (-20.0, 10.0)), 0.0),
    "fhn": (ns.FHNRS(), "v", "v_slow", ((-3.0, 3.0), (-3.0, 3.0)), 0.5),
    "wererabbit": (ns.WereRabbit(), "u", "v", ((-0.2, 0.6), (-0.2, 0.6)), 0.0),
    "boomerang": (ns.Boomerang(), "u", "v", ((0.15, 0.4), (0.15, 0.4)), 0.0),
}


def _dynamics_at(model, x, y, points, current):
    """The model's own `dynamics` at `points` (rows `(x, y)`), other fields as at rest."""
    state = model.init_state(len(points))
    fields = dict(vars(state))
    fields[x], fields[y] = jnp.asarray(points[:, 0]), jnp.asarray(points[:, 1])
    rates = model.dynamics(0.0, type(state)(**fields), jnp.full(len(points), current))
    return np.asarray(getattr(rates, x)), np.asarray(getattr(rates, y))


@pytest.mark.parametrize("name", list(PORTRAITS))
def test_nullclines_lie_where_their_component_vanishes(name):
    model, x, y, (xlim, ylim), current = PORTRAITS[name]
    ax = nsp.phase_portrait(
        model, x, y, xlim=xlim, ylim=ylim, current=current, arrows=0, show_fixpoints=False
    )
    span = np.array([xlim[1] - xlim[0], ylim[1] - ylim[0]])
    cell = span / 300  # the contour grid of `phase_portrait`
    for component, field in enumerate((x, y)):
        colour = ("tab:blue", "tab:orange")[component]
        curves = [line for line in ax.get_lines() if line.get_color() == colour]
        points = np.concatenate([_points(line) for line in curves])
        assert len(points) > 20, f"no {field}-nullcline drawn"

        def rate(p):
            return _dynamics_at(model, x, y, p, current)[component]

        # At every drawn point, not one: the component vanishes within a grid cell.
        # |f| / |grad f| is the distance to the zero set, to first order.
        step = 1e-3 * span
        grad = np.stack(
            [
                (rate(points + step * e) - rate(points - step * e)) / (2 * step[k])
                for k, e in enumerate(np.eye(2))
            ],
            axis=1,
        )
        distance = np.abs(rate(points)) / np.linalg.norm(grad / cell, axis=1)
        assert np.max(distance) < 1.0, field
    assert ax.get_xlabel().startswith(f"{x} (") and ax.get_ylabel().startswith(f"{y} (")


def test_izhikevich_v_nullcline_is_the_parabola():
    model = ns.Izhikevich()
    v_curves, _ = nsp.nullclines(
        model, "v", "u", xlim=(-80, 35), ylim=(-20, 10), current=4.0
    )
    points = np.concatenate(v_curves)
    parabola = 0.04 * points[:, 0] ** 2 + 5 * points[:, 0] + 140 + 4.0
    np.testing.assert_allclose(points[:, 1], parabola, atol=0.02)


# Independent values: the Izhikevich rest and saddle solve 0.04 v^2 + 4.8 v + 140 = 0;
# the FHN's equilibrium has v = v_slow and iv_slow(v) = v = I; the WereRabbit's foci are
# in its docstring; the Boomerang's saddle is its `rest_state` (optimistix).
EXPECTED_FIXPOINTS = {
    "izhikevich": [((-70.0, -14.0), "stable"), ((-50.0, -10.0), "saddle")],
    "fhn": [((0.5, 0.5), "unstable")],
    "wererabbit": [((0.31338, 0.14435), "stable"), ((0.14435, 0.31338), "stable")],
    "boomerang": [
        (tuple(float(c) for c in ns.Boomerang().rest_state()), "saddle"),
        ((0.3074, 0.2211), "stable"),
        ((0.2212, 0.3101), "stable"),
    ],
}


@pytest.mark.parametrize("name", list(PORTRAITS))
def test_fixpoints_are_where_the_dynamics_vanish(name):
    model, x, y, (xlim, ylim), current = PORTRAITS[name]
    found = nsp.fixpoints(model, x, y, xlim=xlim, ylim=ylim, current=current)
    assert len(found) == len(EXPECTED_FIXPOINTS[name])
    for point, kind in EXPECTED_FIXPOINTS[name]:
        match = [(p, k) for p, k in found if np.allclose(p, point, atol=5e-4)]
        assert len(match) == 1, (point, found)
        assert match[0][1] == kind
        dx, dy = _dynamics_at(model, x, y, match[0][0][None, :], current)
        assert abs(dx[0]) < 1e-4 and abs(dy[0]) < 1e-4


def test_phase_portrait_draws_fixpoints_and_trajectory(tonic_izhikevich):
    model, sol = ns.Izhikevich(), tonic_izhikevich
    ax = nsp.phase_portrait(model, "v", "u", xlim=(-80, 35), ylim=(-20, 10), trajectory=sol)
    labels = [line.get_label() for line in ax.get_lines()]
    path = _points(ax.get_lines()[labels.index("trajectory")])
    finite = path[np.isfinite(path[:, 0])]
    np.testing.assert_allclose(finite[:, 0], np.asarray(sol.states.v[:, 0]))
    # One break per reset: the jump from the peak to c = -65 mV is not drawn.
    assert np.sum(np.isnan(path[:, 0])) == int(sol.num_spikes) > 2
    markers = np.concatenate(
        [
            c.get_offsets()
            for c in ax.collections
            if c.get_offsets().shape[1:] == (2,) and len(c.get_offsets()) == 1
        ]
    )
    assert any(np.allclose(m, (-70.0, -14.0), atol=1e-3) for m in markers)
    assert ax.get_xlabel() == "v (mV)" and ax.get_ylabel() == "u (mV/ms)"


def test_fhn_iv_curves_match_their_closed_forms():
    ax = nsp.iv_curves(ns.FHNRS(), (-3.0, 3.0))
    curves = {line.get_label(): _points(line) for line in ax.get_lines()}
    v = curves["fast"][:, 0]
    # Defaults: g = 1, a_fast = -2, a_slow = 2, offsets 0, from v_rest = 0.
    np.testing.assert_allclose(curves["instantaneous"][:, 1], v, atol=1e-6)
    np.testing.assert_allclose(curves["fast"][:, 1], v - 2 * np.tanh(v), atol=1e-6)
    np.testing.assert_allclose(curves["slow (steady state)"][:, 1], v, atol=1e-6)
    assert "dimensionless" in ax.get_xlabel() and "dimensionless" in ax.get_ylabel()
    with pytest.raises(TypeError, match="FHNRS"):
        nsp.iv_curves(ns.LIF())


def test_isi_histogram_of_a_regular_neuron_is_one_bar_at_10_ln_3(regular_lif):
    sol = regular_lif
    ax = nsp.isi_histogram(sol, 0, bins=np.arange(0.0, 30.0, 1.0))
    heights = np.array([patch.get_height() for patch in ax.patches])
    assert heights.sum() == int(sol.num_spikes) - 1
    assert heights[int(10 * np.log(3.0))] == heights.sum()
    assert ax.get_xlabel() == "inter-spike interval (ms)"


def test_fi_curve_of_a_lif_follows_the_closed_form():
    # Period of a LIF from rest to threshold 1 at constant drive I > 1: tau ln(I/(I-1)).
    currents = np.array([0.5, 0.9, 1.2, 1.5, 2.0, 3.0])
    ax = nsp.fi_curve(ns.LIF(tau_mem=10.0), currents, t1=500.0, initial=True)
    period = np.where(
        currents > 1, 10.0 * np.log(currents / np.maximum(currents - 1, 1e-9)), np.inf
    )
    mean, first = (np.asarray(line.get_ydata()) for line in ax.get_lines()[:2])
    np.testing.assert_allclose(mean, np.floor(500.0 / period) / 0.5)
    np.testing.assert_allclose(
        first, np.where(np.isfinite(period), 1000.0 / period, 0.0), rtol=1e-4
    )
    assert ax.get_ylabel() == "firing rate (Hz)" and "(" in ax.get_xlabel()
    with pytest.raises(ValueError, match="t_skip"):
        nsp.firing_rates(ns.LIF(), currents, t1=100.0, t_skip=100.0)
    with pytest.raises(ValueError, match="max_spikes"):
        nsp.firing_rates(ns.LIF(), [5.0], t1=100.0, max_spikes=4)
