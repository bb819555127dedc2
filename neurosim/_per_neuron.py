r"""Per-neuron clocks: the exact event loop for networks of the LIF family.

Between events a neuron of the LIF family is known in closed form
(`neurosim.neurons._linear`), and a spike changes only the neurons it reaches. So each
neuron keeps its own clock: its state is stored at the time it was last touched, with
the current it sees (constant between current jumps) and its *key*, the time of its
next threshold crossing if nothing reaches it before (or of its next check, below).
Each iteration of the loop takes the earliest of

- the smallest key over all neurons (from the minima of the key grid's rows, kept
  up to date: `O(sqrt(n))` work per event, see **Layout**),
- the next external input spike, the next delayed delivery,
- the next jump of an external current, the next record time,

and touches only the neurons that event involves: a firing neuron and the targets of
its outgoing synapses are brought to the event time by the closed form, reset or
jumped by their weights, and given new keys. The work of a spike grows with its
fan-out, not with the size of the network. A current jump touches its population, a
record time reads every neuron (changing none), the end brings every neuron to `t1`.

**Prediction** (`_predict`). From a neuron's state at time `t`, the spike condition
`v - v_th` is sampled at `KNOTS + 1` points of a horizon `h` (per neuron), spaced as
`h (j / KNOTS)^SPACING` (finer near the present), and bounded rigorously on each
sub-interval `[a, b]` twice, taking the smaller bound. Each synaptic current is
monotone, so their sum lies between `G_lo` and `G_hi`, the sums of their smaller and
larger end values; with $\tau_m \dot v = v_\infty + G - v$:

- forward, from `v(a)`: `v` stays below the solution with `G_hi`, which moves
  monotonically from `v(a)` towards `v_inf + G_hi` (slack of order `(b - a)^2`);
- backward, from `v(b)`: with `D = v_inf + G_lo`, `v(s) - D <= (v(b) - D) e^{(b-s)/tau_m}`,
  so `v <= v(b)` on the sub-interval when `v(b) < D` (a neuron rising towards its drive
  cannot have crossed and come back), else `v <= D + (v(b) - D) e^{(b-a)/tau_m}`.

A spike is `v` strictly above `v_th` (`v - v_th > 0`), the ODE path's event
(diffrax's sign change to positive): a neuron driven exactly to rheobase, whose `v`
rounds to `v_th`, never fires, on either path. Then:

- the first sub-interval whose bound exceeds threshold ends above it: the key is the
  crossing there, by Newton's method from the secant point (`_root`, to a few ulps of
  the local time; a safeguarded loop takes the rare ones that do not converge);
- it may exceed threshold but ends at or below it (a possible grazing crossing): the
  neuron is checked again at the sub-interval's start with the horizon shrunk to the
  sub-interval, down to the finest sub-interval (`_finest`: `MIN_HORIZON_FRACTION` of
  the cap, and at least `TIME_ULPS` spacings of the absolute time). There a graze that
  does not reach the end of a sub-interval is taken as no crossing, as a step-based
  event check would take it (it samples the condition at step ends), and the neuron
  is checked again at the sub-interval's end;
- no crossing within `h`: if `v` provably stays at or below threshold after `h` too
  (below `max(v(h), v_inf + sum_j max(g_j(h), 0))`), the key is infinite; else the
  neuron is checked again at `t + h` with the horizon doubled (up to the cap,
  `HORIZON_FACTOR` times the shortest time constant).

A check touches one neuron and emits nothing; its time carries no derivative.

**Progress.** Every iteration consumes one finite thing or advances time: an input
spike, a delayed delivery, a current jump, a record time (each taken once, pointers
only move forward), a spike (bounded by the spike buffer: a full buffer ends the run),
or a check of one neuron. A check at time `t` either moves the neuron's key to a later
time, or keeps it at `t` with a horizon shrunk at least 36/11-fold (the widest
sub-interval is the last, `1 - (5/6)^2` of `h`); the horizon never falls below the
finest sub-interval, which is at least `TIME_ULPS` spacings of `t`, so after at most
`log(cap / finest) / log(36/11)` (12 for the default fraction) re-checks at one time
the decision is taken: a spike (the key is a crossing), or no crossing up to a time
that is strictly later than `t` in the working precision. A check that finds nothing
within `h` moves the key to `t + h`, strictly later, since `h` is never below the
finest sub-interval either.

**Time.** The absolute time is kept as a pair `(t, t_lo)`: `t` the time rounded to the
working precision (what is stored as a spike time and compared to order events) and
`t_lo` the remainder (`_two_sum`). A key is `t + s` of the pair and a local time `s`,
and a neuron's elapsed time is `(t - t_last) + (t_lo - t_last_lo)`, exact to the
precision of `s`. A neuron that fires every `T` ms therefore gains no error from the
rounding of the absolute time: its k-th spike is within one or two spacings of the
precision at `t_k`, in float32 as in float64 (without the pair, float32 loses 1 ms and
a spike in 1.1e5 ms). External times (inputs, records, current jumps, delayed
arrivals) are single numbers, exact as given; refractory ends are stored rounded
(within one spacing of the time).

**Gradients.** A key that is a crossing is the root plus one Newton step with the
slope held constant (the implicit function theorem), from the differentiable closed
form; everything downstream uses it. Each touch advances over `t - t_last` even when
it is zero: the two times can carry different derivatives. With `gradients=True` the
loop runs forward without derivatives and logs its events, and the derivatives come
from replaying the log in closed form (`neurosim._replay`), where that covers the
network; otherwise (and with `gradients="checkpointed"`) the loop is a checkpointed
`equinox.internal.while_loop`, differentiated itself.

**Layout.** Keys live in a `(rows, cols)` grid of about `sqrt(n)` by `sqrt(n)`
(`_Keys`), with the minimum of each row; the slots past `n` are padding, inf forever
(a write that is dropped goes past the grid's end, never into them). The earliest
key is the smallest row minimum's row searched (`_earliest_key`). A write lowers its
row's minimum, or, where it moves the key that was the minimum later (the firing
neuron's, an inhibited target's), marks the row to be searched again (`_write_keys`).
So an event costs `O(fan-out + sqrt(n))`, not `O(n)`: on CUBA with a fan-out of 80
the cost per spike is the same from 1000 to 64 000 neurons
(benchmarks/cuba_scaling.py). The rest of a population's data is one `(n, width)` table (the state fields, then those of
`_Row`), read with one gather and written with one scatter per event; the table is
read only before it is written, else XLA copies it on every iteration. The targets of a spike come from the network's delivery plans (one list per
presynaptic neuron over the projections that deliver together, each target once). In a
forward run on the CPU the loop holds no scatter (row updates in a loop, the key grid
reduced row by row), so that XLA compiles it into one function (`neurosim._cpu`).

**Ties.** At equal times a record time comes first (it stores left limits), then a
delayed delivery, an input spike, a current jump, and last a key, as on the ODE path
(whose segment ends before the external time, where the inputs are applied before the
spike condition is read): a neuron that reaches threshold as an input arrives fires
once, after the input (times equal in the working precision; times that differ in
their last bits are ordered by them, on either path). Neurons that fire at the same
time fire in successive iterations at that time.

**Simultaneous spikes.** All neurons above threshold at one instant fire, as on the
ODE path (which resets them together, then delivers their spikes). Here they fire in
successive iterations at that instant; a neuron whose key is a spike at this very
instant is *committed* when another's spike at this instant reaches it: it keeps its
key, and the jumps onto its `v` are held back (`_Row.pending`) and added after its own
reset. Jumps onto synaptic currents commute with the reset and are applied at once.
(Without this, an instantaneous inhibitory delta synapse between two neurons pushed
over threshold by one input spike would cancel the second spike.) Spikes that jump
`v` at once (zero-delay delta synapses) can make more neurons fire at the same
instant: a cascade, which the ODE path fires in waves (every neuron above threshold,
then all their deliveries, then the neurons above threshold after them). Where a
network has such synapses, each neuron's row holds its wave (`_Row.wave`: 0 when it
is due by its own dynamics or an external input, one more than the spike that made it
due otherwise), equal keys are taken wave by wave (`_Loop.earliest_wave`), a
committed neuron defers only the spikes of its own or a later wave, and an earlier
wave's spike is applied at once (it may then no longer be due). In dense synchronous
bursts the two paths can still part where a decision rests on the last bits of `v`
(see benchmarks/agreement.py, structure `delta_ties`).

**Refractoriness.** A refractory neuron does not fire. If a jump onto `v` lifts it
above threshold while it is refractory, its key is the end of the refractory period,
where it fires unless an input brings it below threshold first (the ODE path reads the
spike condition there too: `spike_condition` is negative while refractory).

**Reading the code.** `_Loop.body` is one iteration, and follows one event through
the loop: `next_event` takes the earliest of the key grids, delay queues, inputs,
current jumps and records; `touched` lists the neurons it reaches (the first neuron,
then the targets of what is delivered) and reads their rows, which tell whether the
first neuron fires, and puts a spike into the delay queues; `touch` brings those
neurons to the event time (`_advance`), resets the one that fired, adds what each
connection delivers, predicts again (`_predict`) and writes the rows and keys back;
`record` and `jump_currents` handle their events; `bookkeeping` stores the spike and
sets the status.
"""

import dataclasses
import functools
import math

import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Bool, Float, Int, PyTree

from . import _clock, _cpu, _replay
from ._cpu import compiles_whole, one_kernel, put_row, set_rows, whole_unless_batched
from ._cpu import row_start as _row_start
from ._currents import Constant, PiecewiseConstant, PulseTrain, Sum
from ._engine import (
    FINISHED,
    ITERATION_LIMIT,
    NONFINITE,
    OVERFLOW,
    QUEUE_OVERFLOW,
    RUNNING,
    RunOutput,
    _select,
    spacing_above,
)
from ._system import DelayQueue, NetworkSystem, _jump
from .neurons.lif import _Linear

KNOTS = 6
SPACING = 2  # knots at h * (j / KNOTS) ** SPACING: finer near the present
HORIZON_FACTOR = 4.0  # horizon cap: this many times the shortest time constant
MIN_HORIZON_FRACTION = 1e-6
TIME_ULPS = 4  # the finest graze refinement, in spacings of the absolute time
ROOT_ITERATIONS = 60
NEWTON_STEPS = 3
# Forward runs of the closed form compiled whole: a population whose spikes' target
# lists are mostly (`_network.TYPICAL_SHARE`) at least `NARROW_GAP` entries shorter
# than the longest takes an event that fits in the shorter width in a branch of that
# width (`_Loop.touch`). (False: every event at the full width, for comparison.)
NARROW_ROWS = True
NARROW_GAP = 16
# Kinds of key (stored per neuron in its table row).
CHECK, SPIKE = 0.0, 1.0


def _piecewise_constant(current) -> bool:
    if isinstance(current, Sum):
        return all(_piecewise_constant(term) for term in current.terms)
    return isinstance(current, (Constant, PiecewiseConstant, PulseTrain))


def _constant(current) -> bool:
    if isinstance(current, Sum):
        return all(_constant(term) for term in current.terms)
    return isinstance(current, Constant)


def supported(system) -> bool:
    """Whether every population is linear between events (the LIF family, with the
    equations of neurosim's own classes) with a piecewise-constant external current."""
    return all(
        closed_form(pop.neuron) and _piecewise_constant(pop.current)
        for pop in system.network.populations.values()
    )


def closed_form(neuron) -> bool:
    """Whether a model is advanced and predicted in closed form (else by an ODE solve
    per neuron, `neurosim._clock`)."""
    return isinstance(neuron, _Linear) and neuron.has_closed_form()


def clock_problem(system) -> str | None:
    """Why the network cannot run with per-neuron clocks (None when it can): every
    external current piecewise constant, no model that disarms on a spike."""
    for name, pop in system.network.populations.items():
        if not _piecewise_constant(pop.current):
            return (
                f"population {name!r} has a current that is not piecewise constant "
                "(per-neuron clocks take constants, PiecewiseConstant, PulseTrain and "
                "their sums)"
            )
        if pop.neuron.spiking and pop.neuron.disarms_on_spike:
            return (
                f"population {name!r} is a {type(pop.neuron).__name__}, which disarms "
                "on a spike (fixpoint models run on the network's clock)"
            )
    return None


def horizon_cap(network, dtype):
    """The longest prediction horizon of the closed form: `HORIZON_FACTOR` times the
    shortest time constant of its populations (no derivative; 1 where none)."""
    taus = []
    for pop in network.populations.values():
        if not closed_form(pop.neuron):
            continue
        for tau in (pop.neuron.tau_mem,) + pop.neuron.synapse_time_constants():
            taus.append(jnp.min(tau))
    if not taus:
        return jnp.ones((), dtype)
    return lax.stop_gradient(HORIZON_FACTOR * jnp.min(jnp.stack(taus))).astype(dtype)


def _take(tree, idx, n):
    """The entries `idx` of every leaf with one value per neuron (others as they are);
    out-of-range indices read the last neuron (their results are dropped)."""

    def take(leaf):
        if eqx.is_array(leaf) and leaf.ndim >= 1 and leaf.shape[0] == n:
            return leaf.at[idx].get(mode="clip")
        return leaf

    return jtu.tree_map(take, tree)


def _two_sum(a, b):
    """`(s, e)` with `s = fl(a + b)` and `s + e = a + b` exactly (Knuth); `e` is 0
    where `s` is not finite. `e` carries no derivative (that of the sum is in `s`)."""
    s = a + b
    b_virtual = s - a
    e = (a - (s - b_virtual)) + (b - b_virtual)
    return s, lax.stop_gradient(jnp.where(jnp.isfinite(s), e, 0.0))


def _later(t, t_lo, s):
    """The time pair `(t, t_lo)` plus a duration `s`, as a pair whose first entry is
    the sum rounded (see "Time" in the module docstring)."""
    hi, err = _two_sum(t, s)
    return _two_sum(hi, err + t_lo)


def _elapsed(t, t_lo, t_last, t_last_lo):
    """`t - t_last` of two time pairs: the difference of the rounded parts is exact
    when they are close (Sterbenz), and the low parts add what they hold."""
    return (t - t_last) + (t_lo - t_last_lo)


def _advance(neuron, state, current, t_last, t_last_lo, t, t_lo):
    """The states at `t` of neurons last touched at `t_last` (per neuron; times as
    pairs). Also at `t == t_last`: the two times may carry different derivatives (a
    check is a constant time, a spike time is not), and the flow over `t - t_last`
    carries the difference."""
    form = neuron.closed_form(state, current, t_last, t_last_lo)
    return form.at(_elapsed(t, t_lo, t_last, t_last_lo))


def _predict(neuron, state, current, t, t_lo, h, cap):
    """The next event of neurons at time `(t, t_lo)` (a pair, see "Time" in the module
    docstring).

    Returns `(key, key_lo, kind, h_next)`: the predicted spike time (kind SPIKE; inf
    for never) or the time of the next check (kind CHECK), as a pair, and the next
    horizon.

    Written as a walk over the knots with one vector per knot, elementwise operations
    only: XLA's CPU reductions over a vector are scalar loops, and the work here is
    for the few neurons an event touches, where the number of operations (not their
    size) sets the cost.
    """
    full = neuron.closed_form(state, current, t, t_lo)
    form = jtu.tree_map(lax.stop_gradient, full)
    theta = lax.stop_gradient(neuron.v_th)
    h = lax.stop_gradient(h)
    # All knots at once, (KNOTS + 1, M) blocks: few, larger XLA operations.
    fractions = jnp.asarray([(j / KNOTS) ** SPACING for j in range(KNOTS + 1)], h.dtype)
    knots = h[None, :] * fractions[:, None]

    def decay(tau):
        """`exp(-knots / tau)`. Every neuron but the first is predicted over the full
        horizon `cap` (or its prediction is not used): with a time constant shared by
        the population, those rows are one column, computed once."""
        if jnp.ndim(tau) or h.shape[0] < 2:
            return jnp.exp(-knots / tau)
        rest = jnp.exp(-(cap * fractions) / tau)
        first = jnp.exp(-knots[:, :1] / tau)
        rest = jnp.broadcast_to(rest[:, None], (KNOTS + 1, h.shape[0] - 1))
        return jnp.concatenate([first, rest], axis=1)

    decay_m = decay(form.tau_m)
    decays = [decay(tau) for tau in form.taus]
    free = form.v_inf + (form.a + form.c * knots) * decay_m
    for b, decay in zip(form.b, decays, strict=True):
        free = free + b * decay
    held = knots < form.r
    v = jnp.where(held, form.state.v, free)
    # Bounds over each [a, b] = knots[j : j + 2]: forward from v(a), backward from
    # v(b) (see the module docstring); the smaller one.
    ends = [
        (g * decay[:-1], g * decay[1:]) for g, decay in zip(form.g, decays, strict=True)
    ]
    low = form.v_inf
    for g_a, g_b in ends:
        low = low + jnp.minimum(g_a, g_b)
    ratio = decay_m[1:] / decay_m[:-1]
    forward = forward_bound(form.v_inf, ends, v[:-1], ratio)
    backward = jnp.where(v[1:] < low, v[1:], low + (v[1:] - low) / ratio)
    possible = jnp.where(held[1:], form.state.v, jnp.minimum(forward, backward)) > theta
    due = (v[0] > theta) & (form.r <= 0)
    # Held above threshold while refractory (a jump onto `v`): no spike before the end
    # of the refractory period, one at its end unless an input comes first.
    held_above = (form.r > 0) & (form.state.v > theta)
    # The first sub-interval that can hold a crossing.
    steps = jnp.arange(KNOTS, dtype=jnp.int32)[:, None]
    first = jnp.min(jnp.where(possible, steps, KNOTS), axis=0)
    found = first < KNOTS
    first = jnp.minimum(first, KNOTS - 1)
    lo, hi = h * fractions[first], h * fractions[first + 1]
    v_lo = jnp.take_along_axis(v, first[None], axis=0, mode="promise_in_bounds")[0]
    v_hi = jnp.take_along_axis(v, first[None] + 1, axis=0, mode="promise_in_bounds")[0]
    sub = hi - lo
    v_prev = v[-1]
    decays = [decay[-1] for decay in decays]
    crossing = ~due & ~held_above & found & (v_hi > theta)
    graze = ~due & ~held_above & found & ~crossing
    refine = graze & (sub > _finest(t, cap))
    # After h: v stays below max(v(h), v_inf + sum_j max(g_j(h), 0)) (comparison).
    late = form.v_inf
    for g, decay in zip(form.g, decays, strict=True):
        late = late + jnp.maximum(g * decay, 0.0)
    never = ~due & ~held_above & ~found & (jnp.maximum(v_prev, late) <= theta)
    never = never & (form.r <= h)

    root = _root(
        full, form, neuron.v_th, theta, lo, hi, v_lo - theta, v_hi - theta, crossing
    )
    s_check = lax.stop_gradient(jnp.where(refine, lo, jnp.where(graze, hi, h)))
    # A check's time carries no derivative; a spike's does (through `root`).
    t_check = jnp.where(crossing, t, lax.stop_gradient(t))
    local = jnp.where(crossing, root, jnp.where(held_above, full.r, s_check))
    key, key_lo = _later(jnp.where(crossing | held_above, t, t_check), t_lo, local)
    key = jnp.where(due, t, jnp.where(never, jnp.inf, key))
    key_lo = jnp.where(due, t_lo, jnp.where(never, 0.0, key_lo))
    spike = due | crossing | held_above
    kind = jnp.where(spike, SPIKE, CHECK).astype(h.dtype)
    h_next = jnp.where(refine, sub, jnp.where(spike, h, jnp.minimum(2 * h, cap)))
    return key, key_lo, kind, h_next


def forward_bound(v_inf, ends, v_a, ratio):
    """A bound on `v` over an interval `[a, b]` from its value `v_a` at `a` (the
    forward bound of the module docstring): `ends` holds each synaptic current's values
    at `a` and `b` (monotone in between), `ratio` is `exp(-(b - a) / tau_m)`. `v` stays
    below the solution driven by `G_hi`, the sum of the larger ends, which moves
    monotonically from `v_a` towards `high = v_inf + G_hi`: below
    `max(v_a, high + (v_a - high) ratio)`. Used by `_predict` on each sub-interval of a
    horizon and by `neurosim._layered` on each segment between arrivals."""
    high = v_inf
    for g_a, g_b in ends:
        high = high + jnp.maximum(g_a, g_b)
    return jnp.maximum(v_a, high + (v_a - high) * ratio)


def _finest(t, cap):
    """The shortest sub-interval a graze is refined to at time `t`: a fraction of the
    horizon cap, and never below `TIME_ULPS` spacings of the time itself, so that a
    check at its end is strictly later than `t`."""
    t = jnp.abs(lax.stop_gradient(t))
    return jnp.maximum(MIN_HORIZON_FRACTION * cap, TIME_ULPS * spacing_above(t))


def _value_and_slope(form, theta, x):
    decay = jnp.exp(-x / form.tau_m)
    linear = form.a + form.c * x
    f = form.v_inf + linear * decay
    df = (form.c - linear / form.tau_m) * decay
    for b, tau in zip(form.b, form.taus, strict=True):
        e = b * jnp.exp(-x / tau)
        f = f + e
        df = df - e / tau
    return f - theta, df


def _root(full, form, v_th, theta, lo, hi, f_lo, f_hi, active):
    """Local crossing times in the brackets `[lo, hi]` (`f_lo <= 0 < f_hi`) where
    `active`: `NEWTON_STEPS` Newton steps from the secant point, kept in the bracket,
    then a safeguarded loop for any that did not converge (rare); differentiable by
    the implicit function theorem (one more Newton step from the differentiable
    closed form, with the slope held constant)."""
    dtype = lo.dtype
    # Relative to the local time: spike times are kept as pairs (module docstring), so
    # the resolution of the absolute time does not limit a crossing's.
    tol = 4 * jnp.finfo(dtype).eps * hi
    x = lo + (hi - lo) * (-f_lo) / jnp.where(f_hi > f_lo, f_hi - f_lo, 1.0)
    x = jnp.clip(x, lo, hi)
    step = jnp.full_like(x, jnp.inf)
    for _ in range(NEWTON_STEPS):
        f, df = _value_and_slope(form, theta, x)
        newton = x - f / jnp.where(df > 0, df, 1.0)
        # The step before clipping: a step out of the bracket is not convergence.
        step = jnp.where(df > 0, jnp.abs(newton - x), jnp.inf)
        x = jnp.clip(newton, lo, hi)
    slow = active & (step > 16 * tol)

    def safeguarded(x):
        def cond(carry):
            i, _, lo_, hi_, done = carry
            return (i < ROOT_ITERATIONS) & ~jnp.all(done)

        def body(carry):
            i, x, lo_, hi_, done = carry
            f, df = _value_and_slope(form, theta, x)
            lo2 = jnp.where(f <= 0, x, lo_)
            hi2 = jnp.where(f > 0, x, hi_)
            newton = x - f / jnp.where(df > 0, df, 1.0)
            converged = (df > 0) & (jnp.abs(newton - x) <= tol)
            inside = (df > 0) & (newton > lo2) & (newton < hi2)
            x2 = jnp.where(inside, newton, 0.5 * (lo2 + hi2))
            x2 = jnp.where(converged, jnp.clip(newton, lo2, hi2), x2)
            finished = converged | (hi2 - lo2 <= tol)
            return (
                i + 1,
                jnp.where(done, x, x2),
                jnp.where(done, lo_, lo2),
                jnp.where(done, hi_, hi2),
                done | finished,
            )

        start = jnp.where(slow, lo + (hi - lo) * 0.5, x)
        return lax.while_loop(cond, body, (0, start, lo, hi, ~slow))[1]

    x = safeguarded(x)  # no iteration unless some did not converge
    return newton_step(full, form, v_th, x, active)


def newton_step(full, form, v_th, x, active):
    """One Newton step from the crossing `x` (where `active`; 0 elsewhere) with the
    slope held constant: the value stays `x` to rounding, the derivative is the
    implicit function theorem's, through the differentiable closed form `full`."""
    x = jnp.where(active, x, 0.0)
    f = full.voltage(x) - v_th
    slope = form.slope(x)
    return x - jnp.where(active, f / jnp.where(slope > 0, slope, 1.0), 0.0)


def _grid(n):
    """Rows and columns of the `(rows, cols)` grid that holds `n` keys (padded)."""
    cols = max(min(128, n), -(-n // 64))
    return -(-n // cols), cols


def _as_grid(keys):
    """`(n,)` keys padded with inf to their `(rows, cols)` grid."""
    rows, cols = _grid(keys.shape[0])
    return jnp.pad(keys, (0, rows * cols - keys.shape[0]), constant_values=jnp.inf).reshape(
        rows, cols
    )


def _earliest(keys, whole=False):
    """The smallest key and its index. `keys` is padded to a `(rows, cols)` grid: XLA's
    CPU backend vectorizes the reduction of a 2-D array, not that of a long vector.
    In a loop compiled whole (`whole`, see `neurosim._cpu`) reductions are scalar
    loops: the rows are first combined elementwise."""
    rows, cols = keys.shape

    def smallest(x):
        if whole:
            x = functools.reduce(jnp.minimum, [x[r] for r in range(rows)])
        return jnp.min(x)

    low = smallest(keys)
    iota = lax.broadcasted_iota(jnp.int32, keys.shape, 0) * cols
    iota = iota + lax.broadcasted_iota(jnp.int32, keys.shape, 1)
    return low, smallest(jnp.where(keys == low, iota, rows * cols))


def _set_rows(array, idx, rows, whole, count=None):
    """`array.at[idx].set(rows, mode="drop")`; in a loop compiled whole (`whole`), as a
    loop of single-row updates (XLA cannot compile a loop holding a scatter whole) over
    the first `count` entries (all by default: the others must hold the rows as they
    are). Entries of `idx` are distinct or out of range."""
    if not whole:
        return array.at[idx].set(rows, mode="drop")
    return set_rows(array, idx, rows, count)


class _Keys(eqx.Module):
    """A population's keys in a `(rows, cols)` grid of about `sqrt(n)` by `sqrt(n)`
    (padded with inf), and the minimum of each row, kept exact as keys are written
    (`_write_keys`): the earliest key is the earliest row minimum's row searched, so
    finding it costs `O(sqrt(n))`, not `O(n)`."""

    grid: Array
    rowmin: Array


def _key_shape(n):
    """Rows and columns of the key grid of `n` neurons: columns a multiple of 8 near
    `sqrt(n)`."""
    root = math.isqrt(max(n - 1, 0)) + 1  # the ceiling of sqrt(n)
    cols = 8 * -(-root // 8)
    return -(-n // cols), cols


def _keys_of(keys):
    """`(n,)` keys as `_Keys`."""
    rows, cols = _key_shape(keys.shape[0])
    padding = rows * cols - keys.shape[0]
    grid = jnp.pad(keys, (0, padding), constant_values=jnp.inf).reshape(rows, cols)
    return _Keys(grid, _cpu.fold(jnp.minimum, grid))


def _earliest_key(keys: _Keys):
    """The smallest key and its index (the lowest among equal keys; `rows * cols` if
    the smallest is NaN). The time is the chosen neuron's key, with its derivative."""
    rows, cols = keys.grid.shape
    low = jnp.min(keys.rowmin)
    r = jnp.min(jnp.where(keys.rowmin == low, jnp.arange(rows, dtype=jnp.int32), rows))
    start = _row_start(jnp.minimum(r, rows - 1), 2)
    row = lax.dynamic_slice(keys.grid, start, (1, cols))[0]
    c = jnp.min(jnp.where(row == low, jnp.arange(cols, dtype=jnp.int32), cols))
    found = (r < rows) & (c < cols)
    k = jnp.where(found, r * cols + c, rows * cols)
    return jnp.where(found, row[jnp.minimum(c, cols - 1)], low), k


def _write_keys(keys: _Keys, idx, old, new, whole, count=None) -> _Keys:
    """`keys` with the flat entries `idx` set to `new` (entries of `idx` distinct, or
    `rows * cols` and up: dropped; `old` their values before), and the row minima
    brought up to date.

    In a loop compiled whole (`whole`), a row's minimum is lowered to the new keys
    written into it, and the row is searched again only when the key that was its
    minimum moved later: a spike's targets cost `O(1)` each, and the firing neuron's
    row `O(sqrt(n))`; entries past the first `count` (all by default) are not
    written, and must hold their keys as they were (`new == old`: a check's lanes past
    its neuron's). Otherwise every written row's minimum is taken again."""
    rows, cols = keys.grid.shape
    size = rows * cols
    flat = keys.grid.reshape(-1)
    if not whole:
        grid = flat.at[idx].set(new, mode="drop").reshape(rows, cols)
        r = idx // cols
        minima = jnp.min(grid.at[r].get(mode="clip"), axis=1)
        return _Keys(grid, keys.rowmin.at[r].set(minima, mode="drop"))

    # Every read of an array happens where it is written (or before any write), so
    # that XLA updates it in place instead of copying it in every step.
    flat = _set_rows(flat, idx, new, whole, count)
    valid = idx < size
    r = jnp.minimum(idx // cols, rows - 1).astype(jnp.int32)
    was_min = (old <= keys.rowmin.at[r].get(mode="clip")) | jnp.isnan(old)
    raised = valid & was_min & ~(new <= old)
    lowering = jnp.where(valid, new, jnp.inf)

    def lower(k, rowmin):
        m = lax.dynamic_slice(rowmin, (r[k],), (1,))
        return lax.dynamic_update_slice(rowmin, jnp.minimum(m, lowering[k]), (r[k],))

    count = idx.shape[0] if count is None else count
    rowmin = lax.fori_loop(0, count, lower, keys.rowmin)
    rank = jnp.cumsum(raised.astype(jnp.int32))
    position = jnp.arange(idx.shape[0], dtype=jnp.int32)

    def search(j, rowmin):
        k = jnp.min(jnp.where(raised & (rank == j + 1), position, idx.shape[0] - 1))
        start = r[k] * cols
        m = jnp.min(lax.dynamic_slice(flat, (start,), (cols,)))
        return lax.dynamic_update_slice(rowmin, m[None], (r[k],))

    rowmin = lax.fori_loop(0, rank[-1], search, rowmin)
    return _Keys(flat.reshape(rows, cols), rowmin)


def _put(array, i, value, whole):
    """`array.at[i].set(value, mode="drop")` for one index (see `_set_rows`)."""
    i = jnp.asarray(i, jnp.int32)[None]
    return _set_rows(array, i, jnp.asarray(value, array.dtype)[None], whole)


class _Row(eqx.Module):
    """What a population's table holds per neuron (besides its state): the time of
    its last touch (a pair), the low part of its key (the key itself is in the key
    grid), the current it sees, its horizon, the jumps onto `v` held back while it is
    committed to fire (see "Simultaneous spikes" in the module docstring), the next
    step size of its ODE solves (0 where it has none yet) and the kind of its key
    (last, so that `rows[..., -1]` reads it)."""

    t_last: Array
    t_last_lo: Array
    key_lo: Array
    current: Array
    horizon: Array
    pending: Array
    wave: Array
    dt: Array
    kind: Array


class _Table:
    """One population's per-neuron data packed as the columns of an `(n, width)`
    array, so that an event reads and writes its neurons with one gather and one
    scatter: the state fields (a field of shape `(n, K)` as K columns), then the
    fields of `_Row`."""

    def __init__(self, state):
        leaves, self.treedef = jtu.tree_flatten(state)
        self.shapes = [leaf.shape[1:] for leaf in leaves]
        self.widths = [math.prod(shape) for shape in self.shapes]

    def pack(self, state, row: _Row):
        leaves = jtu.tree_leaves(state)
        if all(not shape for shape in self.shapes):
            return jnp.stack(leaves + jtu.tree_leaves(row), axis=-1)
        lead = leaves[0].shape[: leaves[0].ndim - len(self.shapes[0])]
        columns = [
            leaf.reshape(lead + (width,))
            for leaf, width in zip(leaves, self.widths, strict=True)
        ]
        columns.append(jnp.stack(jtu.tree_leaves(row), axis=-1))
        return jnp.concatenate(columns, axis=-1)

    def unpack(self, rows):
        leaves, start = [], 0
        for shape, width in zip(self.shapes, self.widths, strict=True):
            if shape:
                leaves.append(
                    rows[..., start : start + width].reshape(rows.shape[:-1] + shape)
                )
            else:
                leaves.append(rows[..., start])
            start += width
        state = jtu.tree_unflatten(self.treedef, leaves)
        extra = [rows[..., start + j] for j in range(len(_Row.__dataclass_fields__))]
        return state, _Row(*extra)


class _Carry(eqx.Module):
    t: Float[Array, ""]  # the time as a pair (t, t_lo), see the module docstring
    t_lo: Float[Array, ""]
    table: dict  # population -> (n, width)
    key: dict  # population -> `_Keys`: predicted times (each neuron's priority)
    jumped: dict  # population with a stepped current -> time of its last jump
    aux: tuple  # delay queues
    input_ptr: Int[Array, ""]
    record_ptr: Int[Array, ""]
    spike_times: Float[Array, " S"]
    spike_neurons: Int[Array, " S"]
    num_spikes: Int[Array, ""]
    records: PyTree
    status: Int[Array, ""]
    iterations: Int[Array, ""]
    checks: Int[Array, ""]
    steps: Int[Array, ""]  # ODE solver steps of the populations without a closed form
    log: dict | None = None  # the events for the replay (`neurosim._replay`)
    num_logged: Int[Array, ""] | None = None
    # With `until_fired`: which neurons have fired, and the run's end (t1 until the
    # last of the named neurons fires; the events at that instant still apply).
    fired: Bool[Array, " N"] | None = None
    t_end: Float[Array, ""] | None = None


def compilable_whole(system: NetworkSystem, gradients: bool, clock=None) -> bool:
    """Whether the loop has a form without scatters (`neurosim._cpu`): a forward run
    (the checkpointed loop's buffers are written by scatters) without repeated targets
    (summed by a scatter-add), of populations in closed form or solved per neuron by
    the lean stepper (`clock`; `diffeqsolve` under `vmap` holds scatters)."""
    closed = all(closed_form(pop.neuron) for pop in system.network.populations.values())
    lean = clock is not None and _clock.lean(clock)
    return not gradients and system.network.distinct_targets and (closed or lean)


def run(
    system: NetworkSystem,
    *,
    t0,
    t1,
    y0: PyTree,
    input_times,
    input_sources,
    record_times,
    max_spikes: int,
    max_iterations: int,
    gradients: bool = True,
    whole: bool | None = None,
    clock=None,
    until=None,
):
    """Run the per-neuron event loop (pure; call it under jit). Returns the engine's
    `RunOutput`; `solver_steps` counts the checks (events that emit nothing) and the
    steps of the ODE solves (`clock`, a `neurosim._clock.OdeClock`, integrates the
    populations without a closed form; required where there are any).

    `whole`: compile the loop into one function (`neurosim._cpu`); None (default)
    where it can be (`compilable_whole`) and the backend does so (`compiles_whole`).
    Either way the results are the same. Under `jax.vmap` the loop runs in its usual
    form (batched indices would make its row updates scatters again).

    `gradients=True`: where `neurosim._replay.supported`, the loop runs forward
    without derivatives and logs its events, and the derivatives come from replaying
    them (`neurosim._replay`); elsewhere the loop is checkpointed and differentiated
    itself (also with `gradients="checkpointed"`)."""
    args = (t0, t1, y0, input_times, input_sources, record_times)
    eventprop = gradients == "eventprop"
    if eventprop:
        from . import _eventprop  # (it imports this module)

        # (`simulate` refused what `_eventprop.unsupported` names.)
        if clock is not None or not _replay.supported(system):
            raise ValueError(
                "gradients='eventprop' cannot differentiate this run: its neurons are "
                "solved by the ODE solver. Use gradients=True."
            )
    if (
        gradients in (True, "whole", "eventprop")
        and _replay.supported(system)
        and clock is None
    ):
        size = _replay.log_size(
            system,
            max_spikes,
            input_times.shape[0],
            record_times.shape[0],
            max_iterations,
        )
        frozen = _replay._stop_floats((system, *args))
        out, log = _forward(
            *frozen,
            max_spikes=max_spikes,
            max_iterations=max_iterations,
            gradients=False,
            whole=whole,
            log_size=size,
            until=until,
        )
        if eventprop:
            return _eventprop.apply(out, system, *args, log, until)
        return _replay.apply(out, system, *args, log, whole=gradients == "whole")
    return _forward(
        system,
        *args,
        max_spikes=max_spikes,
        max_iterations=max_iterations,
        gradients=bool(gradients),
        whole=whole,
        clock=clock,
        until=until,
    )


def _forward(
    system,
    t0,
    t1,
    y0,
    input_times,
    input_sources,
    record_times,
    *,
    max_spikes,
    max_iterations,
    gradients,
    whole,
    log_size=0,
    clock=None,
    until=None,
):
    """`run` of the loop itself (see `run`); with the event log when `log_size`."""
    sizes = dict(
        max_spikes=max_spikes,
        max_iterations=max_iterations,
        gradients=gradients,
        log_size=log_size,
        clock=clock,
        until=until,
    )
    args = (t0, t1, y0, input_times, input_sources, record_times)
    if whole is None:
        whole = compilable_whole(system, gradients, clock) and compiles_whole()
    elif whole and not compilable_whole(system, gradients, clock):
        raise ValueError(
            "whole=True: this loop cannot be compiled whole (it needs a forward run, "
            "gradients=False, without projections that reach a neuron twice from one "
            "source)."
        )
    if not whole:
        return _run(system, *args, whole=False, **sizes)
    arrays, static = eqx.partition(system, eqx.is_array)

    def run_form(arrays, *args, whole):
        return _run(eqx.combine(arrays, static), *args, whole=whole, **sizes)

    return whole_unless_batched(run_form, arrays, *args)


def _run(system, t0, t1, y0, input_times, input_sources, record_times, **options):
    """`run`, with the loop in its scatter-free form compiled into one function
    (`whole`) or in its usual form."""
    loop = _Loop(system, t0, t1, y0, input_times, input_sources, record_times, **options)
    final = loop.run(loop.init(y0))
    out = loop.output(final)
    if not loop.log_size:
        return out
    log = dict(final.log)
    log["count"] = final.num_logged
    log["t_final_lo"] = jnp.where(out.t_final == loop.t1, 0.0, final.t_lo)
    return out, log


class _Event(eqx.Module):
    """What one iteration handles (`_Loop.next_event`): its time (the rounded part;
    the remainder is known once the rows are read, `_Touched.t_lo`) and its kind, in
    the order of precedence at equal times."""

    t: Array
    is_record: Array  # store the states (left limits), change nothing
    finished: Array  # nothing left before t1
    is_neuron: Array  # the earliest key: a spike or a check of neuron `firsts[which]`
    is_delay: Array  # a delayed delivery (connection `delayed[delay_which]`)
    is_input: Array  # an external input spike from `source`
    is_jump: Array  # a jump of a population's current
    which: Array  # population of the earliest key
    firsts: tuple  # per population: its neuron of earliest key
    arrivals: dict  # delayed connection -> (slot of its earliest arrival, its time)
    delay_which: Array
    source: Array
    jump_times: dict  # population with a stepped current -> time of its next jump

    @property
    def active(self):
        return ~self.is_record & ~self.finished


class _Touched(eqx.Module):
    """The neurons an event touches (`_Loop.touched`): per population the table rows
    `indices` (the first neuron, then the targets of what is delivered; `n` pads),
    their rows as read, whether the first neuron fires, what each connection delivers
    (`deliveries`: rows selected now, presynaptic row, synapse mask), the delay queues
    after this event, and the low part of the event time."""

    indices: dict
    gathered: dict
    fired: list
    fires: Array
    deliveries: dict
    aux: list
    t_lo: Array
    wave: Array  # the wave of the first neuron (see "Simultaneous spikes")


class _Loop:
    """The exact event loop of one network (static structure and the arrays it closes
    over). `body` is one iteration, read top to bottom: `next_event` (the earliest
    event), `touched` (the neurons it reaches and what they receive), `touch` (bring
    them to the event time, reset, deliver, predict), `record`, `jump_currents`, and
    `bookkeeping` (spikes out, status)."""

    def __init__(
        self,
        system,
        t0,
        t1,
        y0,
        input_times,
        input_sources,
        record_times,
        *,
        whole: bool,
        max_spikes: int,
        max_iterations: int,
        gradients: bool,
        log_size: int = 0,
        clock=None,
        until=None,
    ):
        self.system = system
        self.log_size = log_size
        # `until_fired` (`neurosim._simulate`): the neurons (global order) whose first
        # spikes end the run; None: run to t1.
        self.until = None if until is None else jnp.asarray(until.array)
        self.network = network = system.network
        self.pops = pops = network.populations
        self.names = names = list(pops)
        self.dtype = dtype = jtu.tree_leaves(y0)[0].dtype
        self.t0 = jnp.asarray(t0, dtype)
        self.t1 = jnp.asarray(t1, dtype)
        self.inf = jnp.asarray(jnp.inf, dtype)
        self.input_times, self.input_sources = input_times, input_sources
        self.record_times = record_times
        self.num_inputs = input_times.shape[0]
        self.num_records = record_times.shape[0]
        self.input_offsets = system.input_offsets()
        self.connections = network.connections
        self.delayed = [
            c for c, conn in enumerate(network.connections) if conn.delay is not None
        ]
        self.jumping = [name for name in names if not _constant(pops[name].current)]
        # Spikes that jump `v` at once can make other neurons fire at the same
        # instant: such cascades fire in waves ("Simultaneous spikes").
        self.waves = any(
            conn.pre in pops and conn.delay is None and conn.target == "v"
            for conn in network.connections
        )
        self.layout = {name: _Table(y0[name]) for name in names}
        self.whole, self.gradients = whole, gradients
        self.max_spikes, self.max_iterations = max_spikes, max_iterations
        # The connections into each population, in groups that deliver in the same
        # event (different groups never do), with their delivery plans.
        self.plans = {
            name: [plan for plan in network.plans if plan.post == name] for name in names
        }
        # A loop compiled into one function (`neurosim._cpu`) holds no scatter: each
        # buffer has a last slot for the writes not stored.
        self.cap = horizon_cap(network, dtype)
        # Populations without a closed form: one ODE solve per neuron (`_clock`).
        everywhere = clock is not None and clock.everywhere
        self.ode = {
            name: everywhere or not closed_form(pops[name].neuron) for name in names
        }
        if any(self.ode.values()) and clock is None:
            raise ValueError(
                "the exact loop needs an OdeClock for models without a closed form"
            )
        self.clock = clock
        self.masks = {
            name: _clock.per_neuron_mask(pops[name].neuron, pops[name].n)
            for name in names
            if self.ode[name]
        }
        # Forward runs of the closed form compiled whole: populations whose spikes'
        # rows are mostly much shorter than the longest get a branch that works on
        # the first `narrow[name]` lanes where the event's fit in them (`touch`).
        self.narrow = {}
        for name in names:
            plans = self.plans[name]
            if self.ode[name] or gradients or not whole or not NARROW_ROWS or not plans:
                continue
            if any(plan.typical is None for plan in plans):  # dense or unaligned
                continue
            lanes = 1 + max(plan.index.shape[1] for plan in plans)
            thin = 1 + max(plan.typical for plan in plans)
            if lanes - thin >= NARROW_GAP:
                self.narrow[name] = thin

    # ----- helpers ------------------------------------------------------------------

    def current_at(self, name, t):
        pop = self.pops[name]
        return jnp.broadcast_to(jnp.asarray(pop.current(t), self.dtype), (pop.n,))

    def cap_of(self, name):
        """The horizon a population's neurons start from after a touch: the closed
        form's cap, or the ODE clock's."""
        return self.clock.cap if self.ode[name] else self.cap

    def predict(self, name, neuron, state, current, t, t_lo, h, active=None, dt=None):
        """The keys of neurons touched at the time pair `(t, t_lo)`, their table rows,
        and the ODE steps taken (`active`: the lanes whose prediction is used, for the
        populations without a closed form; all by default; `dt`: the step sizes their
        solves start from, 0 or None for none)."""
        steps = jnp.zeros((), jnp.int32)
        dt = jnp.zeros_like(current) if dt is None else dt
        if not self.pops[name].neuron.spiking:
            key = jnp.full_like(current, jnp.inf)
            key_lo, kind, h_next = jnp.zeros_like(key), jnp.full_like(key, CHECK), h
        elif self.ode[name]:
            active = jnp.ones(current.shape, bool) if active is None else active
            key, key_lo, spike, h_next, steps, dt = _clock.predict(
                self.clock,
                neuron,
                self.masks[name],
                state,
                current,
                t,
                t_lo,
                h,
                active,
                _later,
                not self.gradients,
                dt,
            )
            kind = jnp.where(spike, SPIKE, CHECK).astype(h.dtype)
        else:
            key, key_lo, kind, h_next = _predict(
                neuron, state, current, t, t_lo, h, self.cap
            )
        t_last = jnp.broadcast_to(t, key.shape)
        t_last_lo = jnp.broadcast_to(t_lo, key.shape)
        zeros = jnp.zeros_like(key)
        row = _Row(t_last, t_last_lo, key_lo, current, h_next, zeros, zeros, dt, kind)
        return key, row, steps.astype(jnp.int32)

    def advance(self, name, neuron, state, row: _Row, t, t_lo, active=None):
        """Neurons of `name` brought from their last touch to `(t, t_lo)`, the ODE
        steps taken (`active`: the lanes whose result is used; all by default) and
        their next step sizes."""
        if not self.ode[name]:
            state = _advance(neuron, state, row.current, row.t_last, row.t_last_lo, t, t_lo)
            return state, jnp.zeros((), jnp.int32), row.dt
        active = jnp.ones(row.current.shape, bool) if active is None else active
        elapsed = _elapsed(t, t_lo, row.t_last, row.t_last_lo)
        state, steps, dt = _clock.advance(
            self.clock,
            neuron,
            self.masks[name],
            state,
            row.current,
            elapsed,
            row.t_last,
            t,
            active,
            not self.gradients,
            row.dt,
        )
        return state, steps.astype(jnp.int32), dt

    def states_at(self, table, t, t_lo):
        """Every neuron brought to `(t, t_lo)` (reads only)."""
        out = {}
        for name in self.names:
            state, row = self.layout[name].unpack(table[name])
            out[name] = self.advance(name, self.pops[name].neuron, state, row, t, t_lo)[0]
        return out

    def store(self, buffer, slot, value, pred):
        """`buffer[slot] = value` where `pred`. In the checkpointed loop the buffers
        are equinox's write-only buffers (kept out of the checkpoints), written with a
        predicate; in the plain loop an index past the end is dropped (a predicate
        would read the buffer first, and XLA would copy it), or in a loop compiled
        whole, where it is updated in place, the entry is read and written back. (A
        spare last entry written instead made every buffer one longer than asked, and
        slicing the results to their sizes copied them: 30 MiB of spike buffers and
        log at N = 64 000.)"""
        if self.gradients:
            return eqxi.buffer_at_set(buffer, slot, value, pred=pred)
        if self.whole:
            return put_row(buffer, jnp.where(pred, slot, buffer.shape[0]), value)
        return buffer.at[jnp.where(pred, slot, buffer.shape[0])].set(value, mode="drop")

    # ----- the start ----------------------------------------------------------------

    def init(self, y0) -> _Carry:
        """Every neuron predicted from `t0`; empty buffers."""
        table0, key0 = {}, {}
        zero = jnp.zeros((), self.dtype)
        for name in self.names:
            n = self.pops[name].n
            current = self.current_at(name, self.t0)
            h = jnp.full((n,), self.cap_of(name), self.dtype)
            if self.starts_with_checks(name):
                key = jnp.full((n,), self.t0, self.dtype)
                zeros = jnp.zeros((n,), self.dtype)
                # Those past their condition at t0 are due there, as a prediction
                # tells them: they fire at t0 (where a spike's jump reaches them first,
                # it waits for their reset), the others are checked there.
                fire = _clock.due(
                    self.pops[name].neuron, self.masks[name], y0[name], current, self.t0
                )
                row = _Row(
                    t_last=key,
                    t_last_lo=zeros,
                    key_lo=zeros,
                    current=current,
                    horizon=h,
                    pending=zeros,
                    wave=zeros,
                    dt=zeros,
                    kind=jnp.where(fire, SPIKE, CHECK).astype(self.dtype),
                )
            else:
                key, row, _ = self.predict(
                    name, self.pops[name].neuron, y0[name], current, self.t0, zero, h
                )
            table0[name] = self.layout[name].pack(y0[name], row)
            key0[name] = _keys_of(key)
        size = self.max_spikes
        return _Carry(
            t=self.t0,
            t_lo=zero,
            table=table0,
            key=key0,
            jumped={name: self.t0 for name in self.jumping},
            aux=self.system.init_aux(self.dtype),
            input_ptr=jnp.asarray(0, jnp.int32),
            record_ptr=jnp.asarray(0, jnp.int32),
            spike_times=jnp.full((size,), jnp.inf, self.dtype),
            spike_neurons=jnp.full((size,), -1, jnp.int32),
            num_spikes=jnp.asarray(0, jnp.int32),
            records=jtu.tree_map(
                lambda leaf: jnp.full(
                    (self.num_records,) + leaf.shape, jnp.nan, leaf.dtype
                ),
                self.system.observe(y0),
            ),
            status=jnp.asarray(RUNNING, jnp.int32),
            iterations=jnp.asarray(0, jnp.int32),
            checks=jnp.asarray(0, jnp.int32),
            steps=jnp.asarray(0, jnp.int32),
            log=self.init_log() if self.log_size else None,
            num_logged=jnp.asarray(0, jnp.int32) if self.log_size else None,
            **self.init_until(),
        )

    def starts_with_checks(self, name) -> bool:
        """Whether the neurons of `name` start with a check due at `t0` instead of a
        prediction: the loop's one-neuron branch for checks (`_touch_checked`) then
        predicts each in turn, and the program holds no solve of the whole population
        at the start (COBA 4000: 1.1 s less XLA compilation and 0.5 s less tracing,
        for 4000 more iterations of a few us each). Forward runs of models solved per
        neuron (`_clock.START_WITH_CHECKS`)."""
        return self.ode[name] and not self.gradients and _clock.START_WITH_CHECKS

    def init_until(self) -> dict:
        if self.until is None:
            return {}
        return dict(
            fired=jnp.zeros(self.until.shape, bool),
            t_end=self.t1,
        )

    def complete(self, fired):
        """Whether every neuron named by `until_fired` has fired."""
        return jnp.all(fired | ~self.until)

    def until_fired(self, carry, fires, neuron, t):
        """`fired` and `t_end` after `neuron` (global index) fired (where
        `fires`) at `t`: the run ends at `t` once every named neuron has fired."""
        if self.until is None:
            return {}
        hit = fires & (jnp.arange(self.until.shape[0]) == neuron)
        fired = carry.fired | hit
        now = self.complete(fired) & ~self.complete(carry.fired)
        return dict(fired=fired, t_end=jnp.where(now, t, carry.t_end))

    def init_log(self):
        """The log's buffers: the kind of each event (int8), what it refers to, its
        time; for delayed deliveries, their row, cursor and emission time (fields a
        network without delays does not hold: at 2.6 M entries each is 10 MiB)."""
        size = self.log_size
        ints = jnp.zeros((size,), jnp.int32)
        floats = jnp.zeros((size,), self.dtype)
        log = dict(kind=jnp.zeros((size,), jnp.int8), a=ints, t=floats, t_lo=floats)
        if self.delayed:
            log.update(b=ints, cursor=ints, emit=floats)
        return log

    def log_event(self, carry: _Carry, event: _Event, touched: _Touched, stored):
        """The log after this event (see `neurosim._replay`): its kind and what it
        refers to (spike slot, input, record or delayed connection), its time."""
        kind = jnp.where(
            event.is_record,
            _replay.RECORD,
            jnp.where(
                stored,
                _replay.SPIKE,
                jnp.where(
                    event.is_delay,
                    _replay.DELAY,
                    jnp.where(
                        event.is_input,
                        _replay.INPUT,
                        jnp.where(
                            event.active & ~event.is_neuron, _replay.JUMP, _replay.NONE
                        ),
                    ),
                ),
            ),
        ).astype(jnp.int8)
        a = jnp.where(
            event.is_record,
            carry.record_ptr,
            jnp.where(
                stored,
                carry.num_spikes,
                jnp.where(event.is_delay, event.delay_which, carry.input_ptr),
            ),
        ).astype(jnp.int32)
        b = cursor = jnp.asarray(0, jnp.int32)
        emit = jnp.zeros((), self.dtype)
        if self.delayed:
            slots = [event.arrivals[c][0] for c in self.delayed]
            queues = [carry.aux[c] for c in self.delayed]
            pick = lambda values: jnp.stack(values)[event.delay_which]  # noqa: E731
            b = pick([q.pre[s] for q, s in zip(queues, slots, strict=True)])
            cursor = pick([q.cursor[s] for q, s in zip(queues, slots, strict=True)])
            emit = pick([q.emit_t[s] for q, s in zip(queues, slots, strict=True)])
        logged = kind != _replay.NONE
        slot = jnp.minimum(carry.num_logged, self.log_size - 1)
        values = dict(
            kind=kind, a=a, b=b, cursor=cursor, t=event.t, t_lo=touched.t_lo, emit=emit
        )
        log = {
            field: self.store(carry.log[field], slot, values[field], logged)
            for field in carry.log
        }
        return log, carry.num_logged + logged.astype(jnp.int32)

    # ----- one iteration ------------------------------------------------------------

    def body(self, carry: _Carry) -> _Carry:
        event = self.next_event(carry)
        touched = self.touched(carry, event)
        table, keys, finite, steps = self.touch(carry, event, touched)
        records = self.record(carry, event, touched, table)
        table, keys, jumped, finite_currents = self.jump_currents(
            carry, event, touched, table, keys
        )
        finite = finite + finite_currents
        return self.bookkeeping(
            carry, event, touched, table, keys, jumped, records, finite, steps
        )

    def earliest_wave(self, carry: _Carry, name, low):
        """Among the neurons of `name` whose key is `low`, the one of the earliest
        wave (then the lowest index), and its wave."""
        n = self.pops[name].n
        keys = carry.key[name].grid.reshape(-1)[:n]
        waves = self.layout[name].unpack(carry.table[name])[1].wave
        at_low = keys == low
        # (Folded past `_cpu.REDUCE_LIMIT` neurons; an integer minimum compiles whole.)
        wave = _cpu.fold(jnp.minimum, jnp.where(at_low, waves, jnp.inf))
        index = jnp.arange(n, dtype=jnp.int32)
        first = jnp.min(jnp.where(at_low & (waves == wave), index, n))
        return first, wave

    def next_event(self, carry: _Carry) -> _Event:
        """The earliest of: the smallest key, the next delayed arrival, input spike,
        current jump and record time (see "Ties" in the module docstring)."""
        inf, names = self.inf, self.names
        firsts, lows, waves = [], [], []
        for name in names:
            low, k = _earliest_key(carry.key[name])
            if self.waves:
                k, wave = self.earliest_wave(carry, name, low)
                waves.append(wave)
            firsts.append(k)
            lows.append(low)
        if len(names) == 1:
            which, t_low = jnp.asarray(0, jnp.int32), lows[0]
        else:
            stacked = jnp.stack(lows)
            if self.waves:  # equal times: the earliest wave
                stacked_waves = jnp.stack(waves)
                order = jnp.where(stacked == jnp.min(stacked), stacked_waves, jnp.inf)
                which = jnp.argmin(order).astype(jnp.int32)
            else:
                which = jnp.argmin(stacked).astype(jnp.int32)
            t_low = stacked[which]

        arrivals = {}
        for c in self.delayed:
            arriving = _as_grid(NetworkSystem._arrivals(self.connections[c], carry.aux[c]))
            first, slot = _earliest(arriving, self.whole)
            arrivals[c] = (slot, first)
        if arrivals:
            delay_times = jnp.stack([arrivals[c][1] for c in self.delayed])
            delay_which = jnp.argmin(delay_times)
            t_delay = delay_times[delay_which]
        else:
            delay_which, t_delay = jnp.asarray(0, jnp.int32), inf

        source = jnp.asarray(0, jnp.int32)
        t_input = inf
        if self.num_inputs:
            ptr = jnp.minimum(carry.input_ptr, self.num_inputs - 1)
            t_input = jnp.where(
                carry.input_ptr < self.num_inputs, self.input_times[ptr], inf
            )
            source = self.input_sources[ptr]

        jump_times = {
            name: jnp.asarray(
                self.pops[name].current.next_jump(carry.jumped[name]), self.dtype
            )
            for name in self.jumping
        }
        t_jump = jnp.min(jnp.stack(list(jump_times.values()))) if self.jumping else inf

        t_record = inf
        if self.num_records:
            rptr = jnp.minimum(carry.record_ptr, self.num_records - 1)
            t_record = jnp.where(
                carry.record_ptr < self.num_records, self.record_times[rptr], inf
            )

        t_external = jnp.minimum(jnp.minimum(t_delay, t_input), t_jump)
        t_event = jnp.minimum(t_low, t_external)
        t_end = self.t1 if self.until is None else carry.t_end
        is_record = (t_record <= t_event) & (t_record <= t_end)
        finished = ~is_record & (t_event > t_end)
        active = ~is_record & ~finished
        is_neuron = active & (t_low < t_external)
        is_delay = active & ~is_neuron & (t_delay <= t_event)
        is_input = active & ~is_neuron & ~is_delay & (t_input <= t_event)
        return _Event(
            t=jnp.where(is_record, t_record, jnp.where(active, t_event, carry.t)),
            is_record=is_record,
            finished=finished,
            is_neuron=is_neuron,
            is_delay=is_delay,
            is_input=is_input,
            is_jump=active & ~is_neuron & ~is_delay & ~is_input,
            which=which,
            firsts=tuple(firsts),
            arrivals=arrivals,
            delay_which=delay_which,
            source=source,
            jump_times=jump_times,
        )

    def touched(self, carry: _Carry, event: _Event) -> _Touched:
        """The neurons the event touches and what each connection delivers.

        The first neuron and the targets of its rows are read before it is known
        whether it fires (a check touches them too, changing nothing): whether it
        fires is then read from the rows gathered for the update, so that the table
        is read only before it is written (else XLA copies it on every iteration)."""
        names, pops, connections = self.names, self.pops, self.connections
        firsts, which = event.firsts, event.which
        deliveries = {}
        for c, conn in enumerate(connections):
            if conn.pre in pops and conn.delay is None:
                p = names.index(conn.pre)
                deliveries[c] = (event.is_neuron & (which == p), firsts[p], None)
            elif conn.pre in pops:
                position = self.delayed.index(c)
                deliveries[c] = _delayed_row(
                    conn,
                    carry.aux[c],
                    event.arrivals[c][0],
                    event.is_delay & (event.delay_which == position),
                )
            else:
                local = event.source - self.input_offsets[conn.pre]
                ok = event.is_input & (local >= 0) & (local < conn.n_pre)
                deliveries[c] = (ok, jnp.clip(local, 0, conn.n_pre - 1), None)

        indices, gathered, fired = {}, {}, []
        for p, name in enumerate(names):
            n = pops[name].n
            first = jnp.where(event.is_neuron & (which == p), firsts[p], n)
            idx = jnp.concatenate(
                [
                    first[None].astype(jnp.int32),
                    _targets(self.plans[name], connections, deliveries, n),
                ]
            )
            indices[name] = idx
            gathered[name] = carry.table[name].at[idx].get(mode="clip")
            fired.append(event.is_neuron & (which == p) & (gathered[name][0, -1] == SPIKE))
        fires = fired[0] if len(names) == 1 else jnp.any(jnp.stack(fired))

        # Spikes leave now (into the targets' rows) or enter their delay queues.
        aux = list(carry.aux)
        for c, conn in enumerate(connections):
            if conn.pre not in pops:
                continue
            p = names.index(conn.pre)
            on, row, mask = deliveries[c]
            if conn.delay is None:
                deliveries[c] = (on & fired[p], row, mask)
                continue
            emits = fired[p]
            if conn.post_index is not None:  # a spike with no synapse here
                emits = emits & (conn.post_index[firsts[p], 0] < conn.n_post)
            aux[c] = _enqueue(
                conn,
                carry.aux[c],
                event.arrivals[c][0],
                on,
                row,
                emits,
                firsts[p],
                event.t,
                self.whole,
            )

        # The low part of the event time: the first neuron's key's (its row was read
        # above); none for external times, which are given as single numbers.
        firsts_rows = [self.layout[name].unpack(gathered[name][0])[1] for name in names]
        key_los = [row.key_lo for row in firsts_rows]
        key_lo = key_los[0] if len(names) == 1 else jnp.stack(key_los)[which]
        waves = [row.wave for row in firsts_rows]
        wave = waves[0] if len(names) == 1 else jnp.stack(waves)[which]
        external = event.active | event.is_record
        t_lo = jnp.where(event.is_neuron, key_lo, jnp.where(external, 0.0, carry.t_lo))
        return _Touched(indices, gathered, fired, fires, deliveries, aux, t_lo, wave)

    def touch(self, carry: _Carry, event: _Event, touched: _Touched):
        """The touched neurons brought to the event time, reset if they fire, given
        what is delivered, and predicted again; written back to the tables and key
        grids. Returns the tables, the key grids and whether every state is finite.

        A check (a neuron's key that is not a spike) changes its neuron alone: in
        forward runs of models solved per neuron it takes a branch that works on that
        neuron only (`_touch_checked`), not on every lane an event may touch. COBA
        4000, 100 ms (44 k of 115 k iterations per simulated second are checks):
        0.24-0.26 s without it, 0.19 s with it (the same 7513 spikes); the first call
        compiles the second branch too (about 3 s longer). In a loop compiled whole,
        a check also writes back its first lane alone (the loops over the rows and
        keys stop after it): COBA 4000, 1 s (47 k of its 115 k iterations are checks,
        most of them at the end of a refractory period): best of 5 1.03-1.06 s
        against 1.12 s, the same spikes; CUBA (few checks) unchanged.

        Likewise, in forward runs of the closed form compiled whole, an event whose
        lanes fit in the width of its plans' typical rows (`self.narrow`,
        `DeliveryPlan.typical`) takes a branch of that width. CUBA (4000 neurons,
        p = 0.02, 1 s; rows of up to 110 targets padded to 112, 80% of them 88 or
        fewer): 0.246-0.248 s against 0.269-0.271 s (best of 7, alternating
        processes), the same spikes; the first call 1.5-2 s longer."""
        table, keys = dict(carry.table), dict(carry.key)
        finite, steps = [], []
        # Taken when every run of a batch (under `vmap`) is in a check.
        checked = eqxi.unvmap_all(event.is_neuron & ~touched.fires)
        for p, name in enumerate(self.names):
            idx, n = touched.indices[name], self.pops[name].n
            write = _first_occurrences(idx, n, self.network.distinct_targets)
            flat = carry.key[name].grid.reshape(-1)
            old_key = flat.at[idx].get(mode="clip")
            args = (event, touched, p, name, write, old_key)
            if self.ode[name] and not self.gradients and _clock.NARROW_CHECKS:
                out = lax.cond(
                    checked,
                    lambda args=args: self._touch_checked(*args),
                    lambda args=args: self._touch_lanes(*args),
                )
            elif name in self.narrow:
                thin = self.narrow[name]
                fits = eqxi.unvmap_all(jnp.all(write[thin:] >= n))
                out = lax.cond(
                    fits,
                    lambda args=args, thin=thin: self._touch_thin(*args, thin),
                    lambda args=args: self._touch_lanes(*args),
                )
            else:
                out = self._touch_lanes(*args)
            new_rows, key, finite_p, steps_p = out
            # The lanes written back: all (a check in a loop compiled whole: its own).
            count = jnp.where(checked, 1, idx.shape[0]) if self.whole else None
            table[name] = _set_rows(carry.table[name], write, new_rows, self.whole, count)
            # The grid's padding (slots n and up) must stay inf: entries not written
            # go past its end, not to slot n.
            write_key = jnp.where(write < n, write, flat.shape[0])
            keys[name] = _write_keys(
                carry.key[name], write_key, old_key, key, self.whole, count
            )
            finite.append(finite_p)
            steps.append(steps_p)
        return table, keys, finite, sum(steps)

    def _touch_lanes(self, event, touched, p, name, write, old_key):
        """`touch` for one population, every lane: its new table rows and keys (the
        lanes it does not change as they were), whether its states are finite, and its
        solver steps."""
        pop, lay, idx = self.pops[name], self.layout[name], touched.indices[name]
        n, gathered = pop.n, touched.gathered[name]
        t, t_lo = event.t, touched.t_lo
        neuron = _take(pop.neuron, idx, n)
        state, row = lay.unpack(gathered)
        me = (idx == event.firsts[p]) & event.is_neuron & (event.which == p)
        # In a check, only the checked neuron changes (its targets were read in
        # case it fired; touching them would undo their own refinements).
        keep = event.is_neuron & ~touched.fires & ~me
        # Repeated entries (the first neuron among its own targets; repeated
        # targets) hold equal values; each neuron is written once, so that the
        # transpose of the write (reverse mode) does not count it twice.
        active = ~keep & (write < n)
        state, advanced, dt = self.advance(name, neuron, state, row, t, t_lo, active)
        has_v = hasattr(state, "v")
        if pop.neuron.spiking:
            fired = me & touched.fired[p]
            state = neuron.reset(t, state, fired)
            if has_v:  # jumps held back while it was committed come after its reset
                state = eqx.tree_at(
                    lambda s: s.v,
                    state,
                    state.v + jnp.where(fired, row.pending, 0.0),
                )
        # Committed: due at this instant when another neuron's spike at this
        # instant reaches it. It fires too (all neurons above threshold at one
        # instant fire together); the jumps onto its `v` wait for its reset.
        committed = (
            jnp.asarray(has_v)
            & touched.fires
            & ~me
            & (old_key == t)
            & (row.key_lo == t_lo)
            & (row.kind == SPIKE)
            & (row.wave <= touched.wave)
        )
        v_committed = state.v if has_v else None
        for plan in self.plans[name]:
            for k, c in enumerate(plan.members):
                conn = self.connections[c]
                x = _input_to(plan, k, conn, touched.deliveries[c], idx)
                state = _jump(neuron, state, x, conn.target)
        if has_v:
            pending = jnp.where(committed, row.pending + (state.v - v_committed), 0.0)
            state = eqx.tree_at(
                lambda s: s.v, state, jnp.where(committed, v_committed, state.v)
            )
        else:
            pending = jnp.zeros_like(row.pending)
        # A check keeps its horizon; a neuron whose dynamics changed starts over.
        h = jnp.where(me & ~touched.fires, row.horizon, self.cap_of(name))
        key, new_row, predicted = self.predict(
            name, neuron, state, row.current, t, t_lo, h, active, dt
        )
        # Due now after this spike's deliveries: the next wave.
        due = (key == t) & (new_row.key_lo == t_lo) & (new_row.kind == SPIKE)
        wave = jnp.where(due & touched.fires, touched.wave + 1, 0.0)
        new_row = eqx.tree_at(
            lambda r: (r.key_lo, r.pending, r.wave, r.kind),
            new_row,
            (
                jnp.where(committed, t_lo, new_row.key_lo),
                pending,
                jnp.where(committed, row.wave, wave).astype(new_row.wave.dtype),
                jnp.where(committed, SPIKE, new_row.kind).astype(new_row.kind.dtype),
            ),
        )
        key = jnp.where(committed, t, key)
        new_rows = lay.pack(state, new_row)
        new_rows = jnp.where(keep[:, None], gathered, new_rows)
        key = jnp.where(keep, old_key, key)
        if self.ode[name]:
            leaves = jtu.tree_leaves(state)
            ok = [jnp.all(jnp.isfinite(leaf) | _clock._wide(keep, leaf)) for leaf in leaves]
            finite_p = jnp.all(jnp.stack(ok))
        else:
            finite_p = jnp.all(jnp.isfinite(state.v))
        return new_rows, key, finite_p, (advanced + predicted).astype(jnp.int32)

    def _touch_thin(self, event, touched, p, name, write, old_key, thin):
        """`_touch_lanes` on the first `thin` lanes, where every later lane is padding
        (or a repeated entry): its rows and keys, the later lanes' as they were."""
        gathered = touched.gathered[name]
        part = dataclasses.replace(
            touched,
            indices={**touched.indices, name: touched.indices[name][:thin]},
            gathered={**touched.gathered, name: gathered[:thin]},
        )
        rows, key, finite, steps = self._touch_lanes(
            event, part, p, name, write[:thin], old_key[:thin]
        )
        rows = jnp.concatenate([rows, gathered[thin:]])
        return rows, jnp.concatenate([key, old_key[thin:]]), finite, steps

    def _touch_checked(self, event, touched, p, name, write, old_key):
        """`_touch_lanes` for a check: only the checked neuron (the first lane) is
        brought forward and predicted again; nothing reaches it, and it keeps its
        horizon."""
        pop, lay, idx = self.pops[name], self.layout[name], touched.indices[name]
        gathered, t, t_lo = touched.gathered[name], event.t, touched.t_lo
        neuron = _take(pop.neuron, idx[:1], pop.n)
        state, row = lay.unpack(gathered[:1])
        active = write[:1] < pop.n  # (not this population's neuron: idx is n)
        state, advanced, dt = self.advance(name, neuron, state, row, t, t_lo, active)
        key, new_row, predicted = self.predict(
            name, neuron, state, row.current, t, t_lo, row.horizon, active, dt
        )
        new_row = eqx.tree_at(
            lambda r: (r.pending, r.wave),
            new_row,
            (jnp.zeros_like(row.pending), jnp.zeros_like(row.wave)),
        )
        new_rows = lax.dynamic_update_slice(
            gathered, lay.pack(state, new_row).astype(gathered.dtype), (0, 0)
        )
        key = lax.dynamic_update_slice(old_key, key.astype(old_key.dtype), (0,))
        ok = [
            jnp.all(jnp.isfinite(leaf) | _clock._wide(~active, leaf))
            for leaf in jtu.tree_leaves(state)
        ]
        return (
            new_rows,
            key,
            jnp.all(jnp.stack(ok)),
            (advanced + predicted).astype(jnp.int32),
        )

    def record(self, carry: _Carry, event: _Event, touched: _Touched, table):
        """At a record time, every neuron's state (read after the writes of `touch`,
        which change nothing then: a read before them would make XLA copy the tables
        on every iteration)."""
        if not self.num_records:
            return carry.records

        def read(table):
            return self.system.observe(self.states_at(table, event.t, touched.t_lo))

        shapes = jax.eval_shape(read, table)
        # Under `vmap`, read when any run is at a record time (not in every iteration,
        # as a batched predicate would); the others store nothing.
        values = lax.cond(
            eqxi.unvmap_any(event.is_record),
            read,
            lambda table: jtu.tree_map(lambda x: jnp.zeros(x.shape, x.dtype), shapes),
            table,
        )
        slot = jnp.minimum(carry.record_ptr, self.num_records - 1)
        return jtu.tree_map(
            lambda new, buf: self.store(buf, slot, new, event.is_record),
            values,
            carry.records,
        )

    def jump_currents(self, carry: _Carry, event: _Event, touched: _Touched, table, keys):
        """At a jump of a population's current, its whole population brought to the
        event time and predicted again under the new current; and whether each new
        current is finite."""
        table, keys, jumped = dict(table), dict(keys), dict(carry.jumped)
        finite = []
        t, t_lo = event.t, touched.t_lo
        for name in self.jumping:
            now = event.is_jump & (event.jump_times[name] <= t)

            def jump(operands, name=name, now=now):
                table_q, _ = operands
                lay = self.layout[name]
                state, row = lay.unpack(table_q)
                neuron = self.pops[name].neuron
                state, _, dt = self.advance(name, neuron, state, row, t, t_lo)
                current = self.current_at(name, t)
                h = jnp.full_like(row.t_last, self.cap_of(name))
                key, new_row, _ = self.predict(
                    name, neuron, state, current, t, t_lo, h, dt=dt
                )
                ok = jnp.all(jnp.isfinite(current)) | ~now
                # Under `vmap` the branch runs when any run jumps: the others keep
                # their rows.
                rows = jnp.where(now, lay.pack(state, new_row), table_q)
                return rows, _select(now, _keys_of(key), operands[1]), ok

            table[name], keys[name], ok = lax.cond(
                eqxi.unvmap_any(now),
                jump,
                lambda operands: (*operands, jnp.asarray(True)),
                (table[name], keys[name]),
            )
            finite.append(ok)
            jumped[name] = jnp.where(now, t, carry.jumped[name])
        return table, keys, jumped, finite

    def bookkeeping(
        self,
        carry: _Carry,
        event: _Event,
        touched: _Touched,
        table,
        keys,
        jumped,
        records,
        finite,
        steps,
    ) -> _Carry:
        """The spike out (if the first neuron fired), pointers, status."""
        names, max_spikes = self.names, self.max_spikes
        offsets = self.network.offsets
        fires = touched.fires
        offset = jnp.asarray([offsets[name] for name in names], jnp.int32)[event.which]
        firsts = event.firsts
        first = firsts[0] if len(names) == 1 else jnp.stack(firsts)[event.which]
        slot = jnp.minimum(carry.num_spikes, max_spikes - 1)
        stored = fires & (carry.num_spikes < max_spikes)
        status = jnp.where(event.finished, FINISHED, carry.status)
        status = jnp.where(fires & (carry.num_spikes >= max_spikes), OVERFLOW, status)
        # A NaN parameter can make a key NaN: the run stops where it was.
        lost = jnp.isnan(event.t) | jnp.isneginf(event.t)
        status = jnp.where(jnp.all(jnp.stack(finite)) & ~lost, status, NONFINITE)
        failed = [q.overflow for q in touched.aux if q is not None]
        if failed:
            status = jnp.where(jnp.any(jnp.stack(failed)), QUEUE_OVERFLOW, status)
        log, num_logged = carry.log, carry.num_logged
        if self.log_size:
            log, num_logged = self.log_event(carry, event, touched, stored)
        return _Carry(
            t=jnp.where(event.finished | lost, carry.t, event.t),
            t_lo=jnp.where(event.finished | lost, carry.t_lo, touched.t_lo),
            table=table,
            key=keys,
            jumped=jumped,
            aux=tuple(touched.aux),
            input_ptr=carry.input_ptr + event.is_input.astype(jnp.int32),
            record_ptr=carry.record_ptr + event.is_record.astype(jnp.int32),
            spike_times=self.store(carry.spike_times, slot, event.t, stored),
            spike_neurons=self.store(carry.spike_neurons, slot, offset + first, stored),
            num_spikes=jnp.minimum(carry.num_spikes + fires.astype(jnp.int32), max_spikes),
            records=records,
            status=status,
            iterations=carry.iterations + 1,
            checks=carry.checks + (event.is_neuron & ~fires).astype(jnp.int32),
            steps=carry.steps + steps,
            log=log,
            num_logged=num_logged,
            **self.until_fired(carry, fires, offset + first, event.t),
        )

    # ----- the loop and its result --------------------------------------------------

    def run(self, init: _Carry) -> _Carry:
        """The loop: checkpointed when differentiable (the spike and record buffers
        are only written: not part of the checkpoints), compiled whole when asked."""
        gradients = self.gradients

        def loop(init):
            return eqxi.while_loop(
                lambda c: c.status == RUNNING,
                self.body,
                init,
                max_steps=self.max_iterations,
                kind="checkpointed" if gradients else "lax",
                buffers=(lambda c: (c.spike_times, c.spike_neurons, c.records))
                if gradients
                else None,
            )

        return one_kernel(loop)(init) if self.whole else loop(init)

    def output(self, final: _Carry) -> RunOutput:
        status = jnp.where(final.status == RUNNING, ITERATION_LIMIT, final.status)
        done = status == FINISHED
        if self.until is not None:  # ended at the named neurons' last first spike
            done = done & ~self.complete(final.fired)
        t_final = jnp.where(done, self.t1, final.t)
        t_final_lo = jnp.where(done, 0.0, final.t_lo)
        max_spikes, num_records = self.max_spikes, self.num_records
        return RunOutput(
            t_final=t_final,
            final_state=self.states_at(final.table, t_final, t_final_lo),
            armed=jnp.ones((self.system.num_neurons,), bool),
            spike_times=final.spike_times[:max_spikes],
            spike_neurons=final.spike_neurons[:max_spikes],
            num_spikes=final.num_spikes,
            records=jtu.tree_map(lambda buf: buf[:num_records], final.records),
            status=status,
            iterations=final.iterations,
            solver_steps=final.checks + final.steps,
        )


def _first_occurrences(idx, n, distinct_targets):
    """`idx` with every repeated entry replaced by `n` (dropped when written). Only the
    first entry (the first neuron) can repeat when the rows hold distinct targets."""
    if distinct_targets:
        repeat = jnp.concatenate([jnp.zeros((1,), bool), idx[1:] == idx[0]])
    else:
        order = jnp.arange(idx.shape[0])
        earlier = (idx[None, :] == idx[:, None]) & (order[None, :] < order[:, None])
        repeat = jnp.any(earlier, axis=1)
    return jnp.where(repeat, n, idx)


def _targets(plans, connections, deliveries, n):
    """The postsynaptic neurons of the group delivering now (padded with `n`)."""
    lists = []
    for plan in plans:
        on, row, _ = deliveries[plan.members[0]]
        if not plan.aligned:
            parts = [_row_targets(connections[c], row, n) for c in plan.members]
            lists.append((on, jnp.concatenate(parts)))
        elif plan.index is None:
            lists.append((on, jnp.arange(n, dtype=jnp.int32)))
        else:
            lists.append((on, plan.index[row]))
    width = max((found.shape[0] for _, found in lists), default=0)
    targets = jnp.full((width,), n, jnp.int32)
    for on, found in lists:
        padded = jnp.pad(found, (0, width - found.shape[0]), constant_values=n)
        targets = jnp.where(on, padded, targets)
    return targets


def _row_targets(conn, row, n):
    """The targets of one presynaptic row of `conn` (every neuron for dense rows)."""
    if conn.post_index is None:
        return jnp.arange(n, dtype=jnp.int32)
    return conn.post_index[row]


def _input_to(plan, k, conn, delivery, idx):
    """What connection `conn`, member `k` of `plan`, adds to each neuron of `idx` (the
    first neuron, then the targets of the group delivering now) in this event."""
    on, row, mask = delivery
    if not plan.aligned:
        # Summed over repeated targets, so that repeated entries of `idx` agree.
        dense = conn.rows(row[None], on[None], None if mask is None else mask[None])
        return dense.at[idx].get(mode="fill", fill_value=0.0)
    weight = conn.weight[row]
    if mask is not None:
        weight = weight * mask.astype(weight.dtype)
    weight = weight * on.astype(weight.dtype)
    # Aligned with the group's list (`DeliveryPlan`): no neuron appears twice in it.
    source = plan.sources[k]
    if source is not None:
        weight = weight.at[source[row]].get(mode="fill", fill_value=0.0)
    if plan.trigger == ("spike", plan.post):
        # The first neuron, when it is among its own targets (a self-connection).
        slot = row if plan.self_slot is None else plan.self_slot[row]
        first = weight.at[slot].get(mode="fill", fill_value=0.0)
    else:
        first = jnp.zeros((), weight.dtype)
    padding = idx.shape[0] - 1 - weight.shape[0]
    # (Negative in the loop's narrow branch, whose lanes past `idx` are padding.)
    weight = jnp.pad(weight, (0, padding)) if padding >= 0 else weight[:padding]
    return jnp.concatenate([first[None], weight])


def _delayed_row(conn, queue, slot, now):
    """The row a delayed projection delivers when its earliest arrival (`slot`) is
    due `now`, with the synapses whose delay is the current one."""
    row = queue.pre[slot]
    mask = None
    if conn.per_synapse_delay:
        row_delays = conn.delay[row]
        at = row_delays[jnp.minimum(queue.cursor[slot], row_delays.shape[0] - 1)]
        mask = row_delays == at
    return now, row, mask


def _enqueue(conn, queue, slot, now, row, emits, pre, t, whole):
    """The queue of a delayed projection after the delivery of its earliest arrival
    (`slot`, when `now`) and after the presynaptic spike `pre` at `t` enters (when
    `emits`); written without scatters in a loop compiled whole (`whole`)."""
    size = queue.emit_t.shape[0]
    cursor = queue.cursor[slot]
    if conn.per_synapse_delay:
        row_delays = conn.delay[row]
        width = row_delays.shape[0]
        at = row_delays[jnp.minimum(cursor, width - 1)]
        cursor = jnp.sum(row_delays <= at).astype(jnp.int32)
        done = (cursor >= width) | ~jnp.isfinite(row_delays[jnp.minimum(cursor, width - 1)])
    else:
        done = jnp.asarray(True)
    write = jnp.where(now, slot, size)
    live = _put(queue.live, write, ~done, whole)
    cursor_all = _put(queue.cursor, write, cursor, whole)
    tail = jnp.where(emits, queue.tail, size)
    return DelayQueue(
        emit_t=_put(queue.emit_t, tail, t, whole),
        pre=_put(queue.pre, tail, pre, whole),
        cursor=_put(cursor_all, tail, 0, whole),
        live=_put(live, tail, True, whole),
        tail=jnp.where(emits, (queue.tail + 1) % size, queue.tail),
        overflow=queue.overflow | (emits & live[queue.tail]),
    )
