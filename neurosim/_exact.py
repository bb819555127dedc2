"""Exact segments for networks that are linear between events (the LIF family).

When every population propagates exactly (`neurosim.neurons._linear`) and every
external current is piecewise constant, a segment of the event loop needs no ODE
solver: the state at any time is known in closed form, and only the first threshold
crossing must be found. Over a horizon `h` (at most half the shortest time constant)
the segment samples the spike conditions at `M` equally spaced points and bounds them
rigorously on each sub-interval (`ClosedForm.bound`):

- no sub-interval can hold a crossing: the segment advances by `h` and the horizon
  doubles (up to its cap);
- the first sub-interval that can hold one ends in a crossing: the earliest crossing
  is the first root of the largest condition, found by safeguarded Newton on the
  closed form;
- it could hold one but no neuron is above threshold at its end (a possible grazing
  crossing): the segment stops at the sub-interval's start and the horizon shrinks to
  the sub-interval, so that the bound tightens (its slack is of order `h^2`), down to
  `MIN_HORIZON_FRACTION` of the cap, where a graze that does not reach the end of a
  sub-interval is taken as no crossing, as a step-based event check would.

Spike times are the roots of the closed form to a few ulps of the absolute time;
gradients flow through them by the implicit function theorem (one Newton step with
the derivative held constant).
"""

import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu

from ._currents import Constant, PiecewiseConstant, PulseTrain, Sum
from .neurons.lif import _Linear

SAMPLES = 4
MIN_HORIZON_FRACTION = 1e-6
ROOT_ITERATIONS = 60


def _piecewise_constant(current) -> bool:
    if isinstance(current, Sum):
        return all(_piecewise_constant(term) for term in current.terms)
    return isinstance(current, (Constant, PiecewiseConstant, PulseTrain))


def supported(system) -> bool:
    """Whether every population is linear between events with a piecewise-constant
    external current."""
    return all(
        isinstance(pop.neuron, _Linear) and _piecewise_constant(pop.current)
        for pop in system.network.populations.values()
    )


def max_horizon(system):
    """Half the shortest time constant of the network, the cap of a segment's horizon
    (a traced value: parameters may be traced)."""
    shortest = []
    for pop in system.network.populations.values():
        for tau in (pop.neuron.tau_mem,) + pop.neuron.synapse_time_constants():
            shortest.append(jnp.min(tau))
    return lax.stop_gradient(0.5 * jnp.min(jnp.stack(shortest)))


class _Closed:
    """The network's closed-form solution from a segment start: one `ClosedForm` per
    population."""

    def __init__(self, system, forms):
        self.system, self.forms = system, forms

    @classmethod
    def start(cls, system, t, y0):
        forms = {}
        for name, pop in system.network.populations.items():
            dtype = jtu.tree_leaves(y0[name])[0].dtype
            current = system._current(pop, t, dtype)
            forms[name] = pop.neuron.closed_form(y0[name], current, t)
        return cls(system, forms)

    def frozen(self):
        """The same solution with no derivatives flowing through it (root finding)."""
        return _Closed(self.system, jtu.tree_map(lax.stop_gradient, self.forms))

    def state(self, s):
        """The state `s` ms after the start (local time `s`, a scalar)."""
        return {name: form.at(s) for name, form in self.forms.items()}

    def _per_population(self, fn):
        out = []
        for name, pop in self.system.network.populations.items():
            form = self.forms[name]
            if pop.neuron.spiking:
                out.append(fn(form, pop.neuron))
            else:
                out.append(jnp.full((pop.n,), -1.0, form.state.v.dtype))
        return jnp.concatenate(out)

    def condition(self, s):
        """The spike conditions `v - v_th` at local time `s` (scalar)."""
        return self._per_population(lambda form, neuron: form.voltage(s) - neuron.v_th)

    def slope(self, s):
        return self._per_population(lambda form, neuron: form.slope(s))

    def bound(self, a, b):
        """Upper bounds of the spike conditions over `[a, b]`."""
        return self._per_population(lambda form, neuron: form.bound(a, b) - neuron.v_th)


def segment(system, t, y0, length, horizon, cap, record_local=None):
    """One exact segment from `t` (state `y0`) of at most `length` ms.

    Returns `(hit, tau, reaches_end, y_end, saved, kept, horizon)`: whether it ends in
    a spike, its local end time, whether it reached `length`, the state there (before
    any reset), the states at the local record times `record_local` (or None), how
    many of those lie within the segment, and the next horizon.
    """
    closed = _Closed.start(system, t, y0)
    dtype = jnp.result_type(length)
    horizon = lax.stop_gradient(horizon)
    h = jnp.minimum(lax.stop_gradient(length), horizon)
    sub = h / SAMPLES
    knots = jnp.append(sub * jnp.arange(SAMPLES, dtype=dtype), h)
    conditions = jax.vmap(closed.condition)(knots)  # (M + 1, N): at the knots
    bounds = jax.vmap(closed.bound)(knots[:-1], knots[1:])  # (M, N)
    possible = jnp.any(bounds >= 0, axis=1)
    any_possible = jnp.any(possible)
    k = jnp.argmax(possible)
    at_end = conditions[k + 1] >= 0
    graze = jnp.any((bounds[k] >= 0) & ~at_end)
    refine = any_possible & graze & (sub > MIN_HORIZON_FRACTION * cap)
    hit = any_possible & ~refine & jnp.any(at_end)

    # The earliest crossing is the first root of g(s) = max_i c_i(s) in
    # (knots[k], knots[k + 1]]: safeguarded Newton on g with a scalar `s`, so that the
    # exponentials of the closed form are scalars for homogeneous parameters.
    frozen = closed.frozen()
    tol = 4 * jnp.finfo(dtype).eps * (jnp.abs(lax.stop_gradient(t)) + h)

    def g_and_slope(x):
        c = frozen.condition(x)
        g = jnp.max(c)
        # The slope of the leading neuron (two plain reductions beat an argmax).
        return g, jnp.max(jnp.where(c >= g, frozen.slope(x), -jnp.inf))

    def root_cond(carry):
        i, _, lo, hi, step = carry
        return hit & (i < ROOT_ITERATIONS) & (hi - lo > tol) & (step > tol)

    def root_body(carry):
        i, x, lo, hi, _ = carry
        g, dg = g_and_slope(x)
        lo = jnp.where(g < 0, x, lo)
        hi = jnp.where(g >= 0, x, hi)
        newton = x - g / jnp.where(dg > 0, dg, 1.0)
        converged = (dg > 0) & (jnp.abs(newton - x) <= tol)
        inside = (dg > 0) & (newton > lo) & (newton < hi)
        x_new = jnp.where(inside, newton, 0.5 * (lo + hi))
        x_new = jnp.where(converged, jnp.clip(newton, lo, hi), x_new)
        return i + 1, x_new, lo, hi, jnp.where(converged, 0.0, jnp.abs(x_new - x))

    lo0, hi0 = lax.stop_gradient(knots[k]), lax.stop_gradient(knots[k + 1])
    # Start from the secant of the crossing neurons' conditions over the sub-interval.
    c_lo, c_hi = conditions[k], conditions[k + 1]
    secant = lo0 + (hi0 - lo0) * (-c_lo) / jnp.where(c_hi > c_lo, c_hi - c_lo, 1.0)
    x0 = jnp.clip(jnp.min(jnp.where(at_end, secant, hi0)), lo0, hi0)
    carry = (0, lax.stop_gradient(x0), lo0, hi0, jnp.asarray(jnp.inf, dtype))
    _, root, _, hi, _ = lax.while_loop(root_cond, root_body, carry)
    root = lax.stop_gradient(jnp.minimum(root, hi))
    # Implicit derivative of the root: one Newton step with the slope held constant.
    c = closed.condition(root)
    j = jnp.argmax(lax.stop_gradient(c))
    slope = lax.stop_gradient(closed.slope(root)[j])
    tau_hit = root - c[j] / jnp.where(slope > 0, slope, 1.0)

    tau_stop = jnp.where(any_possible & refine, knots[k], knots[k + 1])
    tau_stop = jnp.where(any_possible, tau_stop, h)
    reaches_end = ~hit & (tau_stop >= lax.stop_gradient(length))
    tau = jnp.where(hit, tau_hit, jnp.where(reaches_end, length, tau_stop))
    y_end = closed.state(tau)
    next_horizon = jnp.where(refine, sub, jnp.minimum(2 * horizon, cap))
    if record_local is None:
        return hit, tau, reaches_end, y_end, None, None, next_horizon
    saved = jax.vmap(closed.state)(record_local)
    kept = jnp.sum(record_local <= tau)
    return hit, tau, reaches_end, y_end, saved, kept, next_horizon
