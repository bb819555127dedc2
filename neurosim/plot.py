r"""Figures of simulations and models (needs matplotlib: `pip install 'neurosim[plot]'`).

Every function draws into the axes it is given (`ax=`, or a pair of axes where it draws
two panels) or into a new figure, labels every axis with its unit, and returns the
axes, so that the figure can be restyled afterwards. Time is in ms, rates in Hz;
voltages are in the model's own units (mV for `Izhikevich` and `AdEx`, dimensionless
for the circuit models `FHNRS`, `WereRabbit` and `Boomerang`, the unit of the
parameters for the LIF family: pass `unit=` to name it).

- `raster`: spikes per population, coloured, with an optional population-rate panel.
- `traces`: membrane traces with spike marks and the threshold.
- `phase_portrait`: nullclines, vector field, fixpoints and a trajectory of any model
  with two state variables of interest (`nullclines` and `fixpoints` give the numbers).
- `iv_curves`: the instantaneous, fast and slow I-V curves of an `FHNRS` neuron.
- `isi_histogram`: the inter-spike intervals of one neuron or of all of them.
- `fi_curve`: the firing rate against a constant input current (`firing_rates` gives
  the numbers), simulated for all currents at once under `jax.vmap`.

**Example:**

```python
import neurosim as ns
import neurosim.plot as nsp

sol = ns.simulate(ns.Izhikevich(), n=1, t1=200.0, current=10.0, record=range(200))
nsp.traces(sol, model=ns.Izhikevich())
nsp.phase_portrait(ns.Izhikevich(), "v", "u", xlim=(-80, 35), ylim=(-20, 10),
                   current=10.0, trajectory=sol)
```
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

try:
    import matplotlib.pyplot as plt
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "neurosim.plot needs matplotlib, which is not installed: "
        "pip install 'neurosim[plot]'"
    ) from error

from ._simulate import simulate

__all__ = [
    "fi_curve",
    "firing_rates",
    "fixpoints",
    "isi_histogram",
    "iv_curves",
    "nullclines",
    "phase_portrait",
    "raster",
    "traces",
]

# Units of the state variables of the built-in models (voltages, and the recovery
# variable of the Izhikevich neuron, in the units of its input current).
# `current` is the unit of `simulate`'s input current.
_DIMENSIONLESS = {"current": "dimensionless"}
_LINEAR = {"v": "voltage units", "current": "voltage units"}
_UNITS = {
    "Izhikevich": {"v": "mV", "u": "mV/ms", "current": "mV/ms"},
    "AdEx": {"v": "mV", "v_bounded": "mV", "current": "mV / R_m"},
    "EIF": {"v": "mV", "v_bounded": "mV", "current": "mV / R_m"},
    "FHNRS": {"v": "dimensionless", "v_slow": "dimensionless"} | _DIMENSIONLESS,
    "WereRabbit": {"u": "dimensionless", "v": "dimensionless"} | _DIMENSIONLESS,
    "Boomerang": {"u": "dimensionless", "v": "dimensionless"} | _DIMENSIONLESS,
    "LIF": _LINEAR,
    "CubaLIF": _LINEAR,
    "LI": _LINEAR,
}
_THRESHOLDS = ("v_th", "thr", "vthr")
_POPULATION_COLOURS = ("tab:blue", "tab:red", "tab:green", "tab:orange", "tab:purple")


def _unit(model, field: str, unit: str | None) -> str:
    if unit is not None:
        return unit
    while model is not None:
        known = _UNITS.get(type(model).__name__, {})
        if field in known:
            return known[field]
        model = getattr(model, "neuron", None)
    return "model units"


def _label(name: str, unit: str) -> str:
    return f"{name} ({unit})"


def _axes(ax, rows: int = 1, **kwargs):
    if ax is not None:
        return ax
    fig, axes = plt.subplots(rows, 1, squeeze=False, **kwargs)
    return axes[0, 0] if rows == 1 else tuple(axes[:, 0])


def _get(states, name: str):
    """A field of a state, recorded or not: a module (`states.v`) or a dict."""
    if isinstance(states, dict):
        if name not in states:
            raise KeyError(
                f"no state field {name!r}; the recorded fields are {list(states)}"
            )
        return states[name]
    if not hasattr(states, name):
        fields = [f for f in vars(states) if not f.startswith("_")]
        raise KeyError(f"no state field {name!r}; the state has {fields}")
    return getattr(states, name)


def _threshold(model):
    while model is not None:
        for name in _THRESHOLDS:
            if hasattr(model, name):
                return getattr(model, name)
        model = getattr(model, "neuron", None)
    return None


def _populations(sol, populations):
    """`(name, offset, size)` of each population to draw."""
    if sol.populations is None:
        if populations is not None:
            raise ValueError(
                "raster: `populations` names populations of a network; this solution "
                "is of a single population (drop `populations`)."
            )
        _, neurons = sol.spikes()
        return [(None, 0, int(neurons.max(initial=-1)) + 1)]
    known = {name: (name, offset, size) for name, offset, size in sol.populations}
    if populations is None:
        return list(sol.populations)
    if isinstance(populations, str):
        populations = [populations]
    missing = [p for p in populations if p not in known]
    if missing:
        raise ValueError(
            f"raster: no population {missing[0]!r} in this solution; it has {list(known)}."
        )
    return [known[p] for p in populations]


def raster(
    sol,
    populations=None,
    *,
    rate: bool = False,
    bin_ms: float = 5.0,
    n: int | None = None,
    colors=None,
    markersize: float | None = None,
    ax=None,
):
    """A spike raster, one colour per population, with an optional population-rate panel.

    **Arguments:**

    - `sol`: a `Solution` of `neurosim.simulate`.
    - `populations`: the names of the populations to draw (default: all of a
        network's, stacked in the network's order); None for a single population.
    - `rate`: also draw the population rate (Hz per neuron) in bins of `bin_ms` ms
        under the raster (default False).
    - `n`: the number of neurons of a single population (default: the highest index
        that spiked, plus one); used for its rate.
    - `colors`: one matplotlib colour per population (default: blue, red, green, ...).
    - `markersize`: the size of the spike ticks (points; default: from 6 for a few
        neurons down to 1.5 for thousands).
    - `ax`: the axes to draw into: one, or a pair `(raster, rate)` with `rate=True`.

    **Returns:** the raster's axes, or the pair `(raster, rate)` with `rate=True`.
    """
    drawn = _populations(sol, populations)
    if n is not None and sol.populations is None:
        drawn = [(None, 0, n)]
    if colors is None:
        colors = [
            _POPULATION_COLOURS[k % len(_POPULATION_COLOURS)] for k in range(len(drawn))
        ]
    if rate:
        if ax is not None and (not isinstance(ax, tuple | list) or len(ax) != 2):
            raise ValueError("raster: with rate=True pass `ax` as a pair (raster, rate).")
        ax_spikes, ax_rate = _axes(
            ax, rows=2, sharex=True, gridspec_kw={"height_ratios": (3, 1)}
        )
    else:
        ax_spikes, ax_rate = _axes(ax), None
    if markersize is None:
        markersize = float(np.clip(300.0 / max(sum(d[2] for d in drawn), 1), 1.5, 6.0))
    row = 0
    for (name, _, size), color in zip(drawn, colors):
        times, neurons = sol.spikes(name)
        label = name if name is not None else None
        ax_spikes.plot(
            times, neurons + row, "|", color=color, markersize=markersize, label=label
        )
        if ax_rate is not None:
            starts, values = sol.population_rate(name, bin_ms=bin_ms, n=size)
            # The last bin drawn to its end.
            edges = np.append(starts, starts[-1] + bin_ms) if len(starts) else starts
            values = np.append(values, values[-1:])
            ax_rate.step(edges, values, where="post", color=color, lw=1.0, label=label)
        row += size
    ax_spikes.set_ylabel("neuron (index)")
    ax_spikes.set_ylim(-0.5, max(row, 1) - 0.5)
    ax_spikes.set_xlim(float(sol.t0), float(sol.t_final))
    if sol.populations is not None and len(drawn) > 1:
        ax_spikes.legend(loc="upper right", markerscale=3)
    if ax_rate is None:
        ax_spikes.set_xlabel("time (ms)")
        return ax_spikes
    ax_rate.set_xlabel("time (ms)")
    ax_rate.set_ylabel(f"rate (Hz, {bin_ms:g} ms bins)")
    return ax_spikes, ax_rate


def traces(
    sol,
    field: str = "v",
    neurons=(0,),
    *,
    model=None,
    population: str | None = None,
    threshold=None,
    unit: str | None = None,
    ax=None,
):
    """Recorded traces of a state variable (the membrane potential by default), with a
    mark at every spike of the drawn neurons and the threshold as a dashed line.

    **Arguments:**

    - `sol`: a `Solution` with recorded states (`simulate(..., record=times)`).
    - `field`: the state field to draw (default `"v"`). For models that define
        `voltage(state)` (`AdEx`, the adaptation wrappers) `"v"` uses it.
    - `neurons`: the indices of the neurons to draw (default neuron 0).
    - `model`: the simulated model: gives the threshold, the unit and `voltage`.
    - `population`: the population of a network whose traces to draw.
    - `threshold`: the threshold to draw (default: the model's `v_th`, `thr` or
        `vthr`; None without a model). A threshold per neuron draws one line each.
    - `unit`: the unit of the field (default: the model's, see the module docstring).
    - `ax`: the axes to draw into.

    **Returns:** the axes.
    """
    if np.size(sol.ts) == 0:
        raise ValueError(
            "traces: the solution has no recorded states; pass `record=` (the times, ms) "
            "to `simulate`."
        )
    states = sol.states[population] if population is not None else sol.states
    if field == "v" and model is not None and hasattr(model, "voltage"):
        values = np.asarray(model.voltage(states))
    else:
        values = np.asarray(_get(states, field))
    if threshold is None and model is not None and field == "v":
        threshold = _threshold(model)
    ax = _axes(ax)
    t = np.asarray(sol.ts)
    neurons = np.atleast_1d(np.asarray(neurons))
    many = len(neurons) > 1
    for k in neurons:
        (line,) = ax.plot(t, values[:, k], lw=1.0, label=f"neuron {k}" if many else None)
        if threshold is not None:
            level = float(np.broadcast_to(np.asarray(threshold), (values.shape[1],))[k])
            ax.axhline(level, color=line.get_color(), ls="--", lw=0.8)
        else:
            level = float(np.nanmax(values[:, k]))
        _spike_marks(ax, sol.spike_train(int(k), population), level, line.get_color())
    ax.set_xlabel("time (ms)")
    ax.set_ylabel(_label(field, _unit(model, field, unit)))
    if many:
        ax.legend(loc="best")
    return ax


def _base_state(model, x: str, y: str, state):
    base = model.init_state(1) if state is None else state
    for name in (x, y):
        _get(base, name)
    return base


def _spike_marks(ax, times, level: float, color):
    """A downward triangle at each spike time, at height `level`."""
    ax.plot(times, np.full(len(times), level), "v", color=color, markersize=5)


@eqx.filter_jit
def _plane_field(model, base, x: str, y: str, current, xs, ys):
    """`(dx/dt, dy/dt)` of `model` at the points `(xs, ys)` of the plane of the state
    fields `x`, `y`, the other fields held at their values in `base` (neuron 0)."""
    xs, ys = jnp.broadcast_arrays(xs, ys)
    size = xs.size
    flat = jax.tree_util.tree_map(
        lambda leaf: jnp.broadcast_to(leaf[:1], (size,) + leaf.shape[1:]), base
    )
    flat = eqx.tree_at(
        lambda s: (_get(s, x), _get(s, y)), flat, (xs.reshape(-1), ys.reshape(-1))
    )
    current = jnp.broadcast_to(jnp.asarray(current, xs.dtype), (size,))
    rates = model.dynamics(0.0, flat, current)
    return _get(rates, x).reshape(xs.shape), _get(rates, y).reshape(xs.shape)


def _field_on_grid(model, x, y, state, current, xs, ys):
    base = _base_state(model, x, y, state)
    dtype = jnp.asarray(0.0).dtype
    dx, dy = _plane_field(
        model, base, x, y, current, jnp.asarray(xs, dtype), jnp.asarray(ys, dtype)
    )
    return np.asarray(dx), np.asarray(dy)


_NEWTON_STEPS = 60


@eqx.filter_jit
def _newton(model, base, x: str, y: str, current, starts):
    """Newton's method from each starting point (rows of `starts`) on the plane field;
    returns the end points, the field's largest component there and the real parts of
    the Jacobian's eigenvalues."""

    def vector(p):
        return jnp.stack(_plane_field(model, base, x, y, current, p[0], p[1]))

    def step(_, p):
        jacobian = jax.jacfwd(vector)(p)
        move = jnp.linalg.solve(jacobian, vector(p))
        return jnp.where(jnp.all(jnp.isfinite(move)), p - move, p)

    def solve(start):
        root = jax.lax.fori_loop(0, _NEWTON_STEPS, step, start)
        eigenvalues = jnp.linalg.eigvals(jax.jacfwd(vector)(root))
        return root, jnp.max(jnp.abs(vector(root))), eigenvalues.real

    return jax.vmap(solve)(starts)


def _grid(xlim, ylim, points: int):
    """Cell centres, one more row than columns: no grid point lies on the diagonal
    x = y, where some models switch rules (the WereRabbit's sign rule, a set of measure
    zero that a contour must not be built from)."""

    def centres(lim, count):
        edges = np.linspace(*lim, count + 1)
        return 0.5 * (edges[1:] + edges[:-1])

    return np.meshgrid(centres(xlim, points), centres(ylim, points + 1))


def nullclines(model, x: str, y: str, *, xlim, ylim, current=0.0, state=None, grid=300):
    r"""The nullclines of `model` in the plane of the state fields `x` and `y`: the
    curves where $\dot x = 0$ and where $\dot y = 0$, as contours of `dynamics` on a
    `grid` x `grid` mesh (the other state fields held at their values in `state`, by
    default the model's initial state; a constant input `current`).

    **Returns:** `(x_nullcline, y_nullcline)`, each a list of `(m, 2)` arrays of points
    `(x, y)` along the curve pieces.
    """
    xs, ys = _grid(xlim, ylim, grid)
    dx, dy = _field_on_grid(model, x, y, state, current, xs, ys)
    figure = plt.figure()
    try:
        contour = figure.add_subplot().contour(xs, ys, dx, levels=[0.0])
        x_curves = [np.asarray(p) for p in contour.allsegs[0]]
        contour = figure.axes[0].contour(xs, ys, dy, levels=[0.0])
        y_curves = [np.asarray(p) for p in contour.allsegs[0]]
    finally:
        plt.close(figure)
    return x_curves, y_curves


def fixpoints(model, x: str, y: str, *, xlim, ylim, current=0.0, state=None, seeds=12):
    """The fixpoints of `model` in the plane of the state fields `x` and `y` within the
    limits: Newton's method from a `seeds` x `seeds` grid of starting
    points, converged roots kept once each. The other fields are held as in
    `nullclines`.

    **Returns:** a list of `(point, kind)`: `point` an array `(x, y)` and `kind` one of
    `"stable"`, `"unstable"`, `"saddle"` (from the eigenvalues of the Jacobian).
    """
    xs, ys = _grid(xlim, ylim, seeds)
    dtype = jnp.asarray(0.0).dtype
    starts = jnp.stack([xs.ravel(), ys.ravel()], axis=1).astype(dtype)
    base = _base_state(model, x, y, state)
    roots, residual, real_parts = (
        np.asarray(a) for a in _newton(model, base, x, y, current, starts)
    )
    # A root is a root relative to how fast the field moves elsewhere in the window.
    dx, dy = _field_on_grid(model, x, y, state, current, xs, ys)
    typical = float(np.median(np.maximum(np.abs(dx), np.abs(dy))))
    low, high = np.array([xlim[0], ylim[0]]), np.array([xlim[1], ylim[1]])
    span = high - low
    found = []
    for root, res, real in zip(roots, residual, real_parts):
        if not (np.all(root >= low) and np.all(root <= high) and res <= 1e-4 * typical):
            continue
        if any(np.all(np.abs(root - other) <= 1e-3 * span) for other, _ in found):
            continue
        if real.min() < 0 < real.max():
            kind = "saddle"
        else:
            kind = "stable" if real.max() < 0 else "unstable"
        found.append((root, kind))
    return found


def _trajectory(trajectory, x: str, y: str, neuron: int):
    """The path `(xs, ys)` of a trajectory; for a `Solution`, broken (NaN) between
    two record points where a spike's reset jumps the state."""
    if isinstance(trajectory, tuple | list):
        return tuple(np.asarray(p, dtype=float) for p in trajectory)
    if np.size(trajectory.ts) == 0:
        raise ValueError(
            "phase_portrait: the trajectory has no recorded states; pass `record=` (the "
            "times, ms) to `simulate`."
        )
    ts = np.asarray(trajectory.ts)
    path = np.stack(
        [
            np.asarray(_get(trajectory.states, name), dtype=float)[:, neuron]
            for name in (x, y)
        ]
    )
    span = np.nanmax(path, axis=1) - np.nanmin(path, axis=1)
    jumps = np.any(np.abs(np.diff(path, axis=1)) > 0.05 * span[:, None], axis=0)
    after = np.searchsorted(ts, trajectory.spike_train(neuron), side="left")
    breaks = [k for k in np.unique(after) if 0 < k < len(ts) and jumps[k - 1]]
    path = np.insert(path, breaks, np.nan, axis=1)
    return path[0], path[1]


_FIXPOINT_STYLE = {
    "stable": dict(marker="o", facecolor="black", edgecolor="white"),
    "unstable": dict(marker="o", facecolor="white", edgecolor="black"),
    "saddle": dict(marker="X", facecolor="white", edgecolor="black"),
}


def phase_portrait(
    model,
    x: str,
    y: str,
    *,
    xlim,
    ylim,
    current=0.0,
    state=None,
    trajectory=None,
    neuron: int = 0,
    arrows: int = 20,
    grid: int = 300,
    show_fixpoints: bool = True,
    units=(None, None),
    ax=None,
):
    r"""The phase portrait of a model in the plane of two state fields: the nullclines
    ($\dot x = 0$ in blue, $\dot y = 0$ in orange), the vector field (arrows, their
    direction only), the fixpoints (filled: stable, open: unstable, cross: saddle) and
    optionally a trajectory.

    **Arguments:**

    - `model`: any neuron model, e.g. `Izhikevich()` (`"v"`, `"u"`), `FHNRS()`
        (`"v"`, `"v_slow"`), `WereRabbit()` or `Boomerang()` (`"u"`, `"v"`).
    - `x`, `y`: the names of the state fields on the two axes.
    - `xlim`, `ylim`: the ranges drawn, in the fields' units.
    - `current`: the constant input current (default 0).
    - `state`: a state of one neuron holding the values of the other fields (default
        the model's initial state; e.g. the rest point of a `Boomerang`).
    - `trajectory`: a `Solution` with recorded states (the path of neuron `neuron` is
        drawn), or a pair of arrays `(xs, ys)`.
    - `arrows`: arrows per axis of the vector field (0: none).
    - `grid`: points per axis of the mesh the nullclines are contoured on.
    - `show_fixpoints`: find and draw the fixpoints (default True).
    - `units`: the units of `x` and `y` (default: the model's).
    - `ax`: the axes to draw into.

    **Returns:** the axes.
    """
    ax = _axes(ax)
    state = _base_state(model, x, y, state)
    x_curves, y_curves = nullclines(
        model, x, y, xlim=xlim, ylim=ylim, current=current, state=state, grid=grid
    )
    for k, curve in enumerate(x_curves):
        ax.plot(
            *curve.T, color="tab:blue", lw=1.5, label=f"{x}-nullcline" if k == 0 else None
        )
    for k, curve in enumerate(y_curves):
        ax.plot(
            *curve.T, color="tab:orange", lw=1.5, label=f"{y}-nullcline" if k == 0 else None
        )
    if arrows:
        xs, ys = _grid(xlim, ylim, arrows)
        dx, dy = _field_on_grid(model, x, y, state, current, xs, ys)
        # Directions only, in screen proportions: the speeds span orders of magnitude.
        sx, sy = dx / (xlim[1] - xlim[0]), dy / (ylim[1] - ylim[0])
        norm = np.hypot(sx, sy)
        norm = np.where(norm > 0, norm, 1.0)
        ax.quiver(
            xs,
            ys,
            sx / norm,
            sy / norm,
            color="0.6",
            angles="uv",
            pivot="mid",
            scale=arrows * 1.5,
            width=0.003,
        )
    if trajectory is not None:
        path_x, path_y = _trajectory(trajectory, x, y, neuron)
        ax.plot(path_x, path_y, color="tab:purple", lw=0.9, label="trajectory")
    if show_fixpoints:
        labelled = set()
        for point, kind in fixpoints(
            model, x, y, xlim=xlim, ylim=ylim, current=current, state=state
        ):
            label = None if kind in labelled else f"{kind} fixpoint"
            labelled.add(kind)
            ax.scatter(
                *point,
                s=60,
                zorder=5,
                linewidths=1.2,
                label=label,
                **_FIXPOINT_STYLE[kind],
            )
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel(_label(x, _unit(model, x, units[0])))
    ax.set_ylabel(_label(y, _unit(model, y, units[1])))
    ax.legend(loc="best", fontsize="small")
    return ax


def iv_curves(model, v=(-3.0, 3.0), *, v_rest: float = 0.0, points: int = 400, ax=None):
    """The instantaneous, fast and slow I-V curves of an `FHNRS` neuron (its
    `iv_instantaneous`, `iv_fast`, `iv_slow`) over the voltages `v` (a range
    `(low, high)` or an array; dimensionless), from the rest voltage `v_rest`. A
    constant input `I` has its equilibria where the slow curve equals `I`; the
    negative slope of the fast curve is what makes the upstroke regenerative.

    **Returns:** the axes.
    """
    if not all(hasattr(model, name) for name in ("iv_instantaneous", "iv_fast", "iv_slow")):
        raise TypeError(
            f"iv_curves: {type(model).__name__} has no I-V curves; pass an FHNRS neuron."
        )
    voltages = np.linspace(*v, points) if len(v) == 2 else np.asarray(v)
    ax = _axes(ax)
    ax.plot(
        voltages,
        np.asarray(model.iv_instantaneous(voltages, v_rest)),
        label="instantaneous",
    )
    ax.plot(voltages, np.asarray(model.iv_fast(voltages, v_rest)), label="fast")
    ax.plot(voltages, np.asarray(model.iv_slow(voltages)), label="slow (steady state)")
    ax.axhline(0.0, color="0.7", lw=0.8)
    ax.set_xlabel("v (dimensionless)")
    ax.set_ylabel("membrane current I (dimensionless)")
    ax.legend(loc="best")
    return ax


def isi_histogram(sol, neuron: int | None = None, *, population=None, bins=30, ax=None):
    """The histogram of inter-spike intervals (ms) of one neuron, or of every neuron
    pooled (`neuron=None`, the default).

    **Returns:** the axes.
    """
    if neuron is None:
        intervals = np.concatenate(
            [np.diff(train) for train in sol.spike_trains(population)] or [np.zeros(0)]
        )
    else:
        intervals = np.diff(sol.spike_train(neuron, population))
    ax = _axes(ax)
    ax.hist(intervals, bins=bins, color="tab:blue", edgecolor="white")
    ax.set_xlabel("inter-spike interval (ms)")
    ax.set_ylabel("count (intervals)")
    return ax


def firing_rates(
    model,
    currents,
    *,
    t1: float = 1000.0,
    t_skip: float = 0.0,
    max_spikes: int = 512,
    **kwargs,
):
    """The firing rate of one neuron of `model` at each constant input current, from
    one simulation per current, all run at once under `jax.vmap`.

    **Arguments:**

    - `model`: a neuron model (scalar parameters).
    - `currents`: the input currents (a 1-d array, in the model's current units).
    - `t1`: the duration of each simulation, ms (default 1000).
    - `t_skip`: spikes before this time (ms) are not counted in the mean rate, to
        leave out the transient (default 0).
    - `max_spikes`: the spike buffer of each run; a full buffer raises an error.
    - further keyword arguments go to `neurosim.simulate` (e.g. `rtol`, `atol`).

    **Returns:** `(mean, initial)`, NumPy arrays in Hz: the mean rate over
    `[t_skip, t1]` and the inverse of the first inter-spike interval (0 with fewer
    than two spikes).
    """
    if not 0.0 <= t_skip < t1:
        raise ValueError(
            f"firing_rates: need 0 <= t_skip < t1; got t_skip={t_skip}, t1={t1}."
        )
    currents = jnp.asarray(currents, dtype=jnp.asarray(0.0).dtype)

    def run(current):
        sol = simulate(model, n=1, t1=t1, current=current, max_spikes=max_spikes, **kwargs)
        return sol.spike_times, sol.overflow

    times, overflow = jax.jit(jax.vmap(run))(currents)
    if np.any(np.asarray(overflow)):
        raise ValueError(
            f"firing_rates: a run filled its spike buffer; raise `max_spikes` (now {max_spikes})."
        )
    times = np.asarray(times)
    counted = np.sum(np.isfinite(times) & (times >= t_skip), axis=1)
    mean = counted / ((t1 - t_skip) / 1000.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        first_interval = times[:, 1] - times[:, 0]
        initial = np.where(np.isfinite(first_interval), 1000.0 / first_interval, 0.0)
    return mean, initial


def fi_curve(
    model,
    currents,
    *,
    t1: float = 1000.0,
    t_skip: float = 0.0,
    initial: bool = False,
    current_unit: str | None = None,
    label=None,
    ax=None,
    **kwargs,
):
    """The f-I curve: the mean firing rate (Hz) against the constant input current,
    from `firing_rates` (same arguments). With `initial=True` the rate from the first
    inter-spike interval is drawn too, dashed: adaptation shows as the gap between
    the two.

    **Returns:** the axes.
    """
    mean, first = firing_rates(model, currents, t1=t1, t_skip=t_skip, **kwargs)
    currents = np.asarray(currents)
    ax = _axes(ax)
    (line,) = ax.plot(currents, mean, "o-", markersize=3, label=label or "mean rate")
    if initial:
        ax.plot(
            currents,
            first,
            "--",
            color=line.get_color(),
            label=f"{label} (first interval)" if label else "first interval",
        )
    unit = current_unit or _unit(model, "current", None)
    ax.set_xlabel(_label("input current", unit))
    ax.set_ylabel("firing rate (Hz)")
    if initial or label:
        ax.legend(loc="best")
    return ax
