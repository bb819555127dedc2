"""Shared helpers of the reference integrations in the model tests."""

import dataclasses

import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import brentq


def parameter_values(neuron) -> dict[str, float]:
    """The model's scalar parameters as Python floats, for the numpy/scipy references
    (which must not call the code under test)."""
    return {
        field.name: float(getattr(neuron, field.name))
        for field in dataclasses.fields(neuron)
        if getattr(neuron, field.name) is not None
        and getattr(getattr(neuron, field.name), "size", 2) == 1
    }


def fixpoint_reference(field, margins, y0, t1, kicks=(), tol=1e-12):
    """Fixpoint spikes of a two-variable model, independently of the simulator.

    `field(t, y)` is the vector field, `margins(y)` returns (spike margin, re-arm
    margin) for states `y` of shape (2, ...). Integrates with scipy's DOP853 between
    kicks `(time, (du, dv))`, scans each segment on a 0.002 ms grid for the armed
    neuron's spike margin (or the disarmed neuron's re-arm margin) turning positive and
    locates it with brentq. Returns the spike times and a dense solution `dense(ts)`.
    """
    y, t, armed, spikes, pieces = np.asarray(y0, float), 0.0, True, [], []
    for t_end, jump in list(kicks) + [(t1, (0.0, 0.0))]:
        sol = solve_ivp(
            field, (t, t_end), y, method="DOP853", dense_output=True, rtol=tol, atol=tol
        )
        pieces.append((t, t_end, sol.sol))
        grid = np.linspace(t, t_end, int((t_end - t) / 0.002) + 2)
        values = np.stack(margins(sol.sol(grid)))
        k = 0
        while True:
            which = 0 if armed else 1
            row = values[which]
            ahead = np.nonzero((row[k:-1] <= 0) & (row[k + 1 :] > 0))[0]
            if ahead.size == 0:
                break
            k += ahead[0]
            root = brentq(
                lambda s: margins(sol.sol(s))[which], grid[k], grid[k + 1], xtol=1e-14
            )
            if armed:
                # A dip below the tolerance shorter than a solver step can be missed by
                # any step-based event detection: the scenarios avoid such dips.
                assert margins(sol.sol(root + 0.01))[0] > 0, "dip too short"
                spikes.append(root)
            armed = not armed
            k += 1
        y = sol.y[:, -1] + np.asarray(jump)
        t = t_end

    def dense(ts):
        return np.stack(
            [next(f for a, b, f in pieces if a <= s <= b)(s) for s in ts], axis=1
        )

    return np.array(spikes), dense


def threshold_reference(
    rhs, y0, t1, *, v_th, reset, t_ref=0.0, hold=(0,), kicks=(), breaks=(), tol=1e-12
):
    """Spike times of a threshold model with an absolute refractory period,
    independently of the simulator.

    `rhs(t, y)` is the free vector field with `y[0] = v`; a spike is `v` crossing `v_th`
    upwards, after which `reset(y)` gives the state; for `t_ref` ms the components in
    `hold` do not change and no spike can occur (one that is above threshold when the
    period ends fires then). `kicks` are `(time, dy)` added to the state at that time;
    `breaks` are times at which `rhs` jumps. Integrates with scipy's DOP853 and locates
    crossings with its event root finder. Returns the spike times.
    """
    jumps: dict[float, np.ndarray] = {}
    for time, dy in kicks:
        jumps[time] = jumps.get(time, 0.0) + np.asarray(dy, float)
    boundaries = sorted(set(jumps) | set(breaks) | {t1})
    t, y, ref_end, spikes = 0.0, np.asarray(y0, float), -np.inf, []

    def crossing(s, z):
        return z[0] - v_th

    crossing.terminal, crossing.direction = True, 1.0

    def fire(time, state):
        spikes.append(time)
        return reset(state), time + t_ref

    while t < t1:
        refractory = t < ref_end
        stop = min([b for b in boundaries if b > t] + ([ref_end] if refractory else []))

        def field(s, z, refractory=refractory):
            dz = np.array(rhs(s, z), float)
            if refractory:
                dz[list(hold)] = 0.0
            return dz

        sol = solve_ivp(
            field,
            (t, stop),
            y,
            method="DOP853",
            rtol=tol,
            atol=tol,
            events=None if refractory else crossing,
        )
        if not refractory and sol.t_events[0].size:
            t = float(sol.t_events[0][0])
            y, ref_end = fire(t, sol.y_events[0][0])
            continue
        t, y = stop, sol.y[:, -1] + jumps.get(stop, 0.0)
        if t >= ref_end and y[0] > v_th and t < t1:
            y, ref_end = fire(t, y)
    return np.array(spikes)
