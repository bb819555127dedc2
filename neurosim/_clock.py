"""Per-neuron clocks for models without a closed form: each neuron integrated alone.

The exact loop (`neurosim._per_neuron`) keeps every neuron at the time it was last
touched and orders the neurons by their *keys* (the time of their next spike if nothing
reaches them before, or of their next check). For the LIF family the closed form
advances and predicts a neuron; for any other model this module does it with a diffrax
solver, one solve per neuron (`jax.vmap` over the neurons an event touches), so that
an event costs the work of the neurons it reaches and nobody else's:

- **advance** (`advance`): the neuron's state from its last touch to the event time,
  by a solve of its own dynamics under its own (piecewise constant) current (or the
  model's `propagate`); then the changes it scheduled by then (the end of a
  refractory period, `apply_scheduled`);
- **predict** (`predict`): from the event time, a solve over the neuron's *horizon*
  that stops at the first upward crossing of its spike condition (diffrax's event,
  located by the engine's root finder, as on the network path). The key is that
  crossing (a spike), or the end of the horizon or the neuron's next scheduled change
  (a check: the neuron is advanced there and predicted again). A neuron whose
  condition is already positive fires at once.

Each neuron is solved as a population of one (every state field and per-neuron
parameter keeps a leading axis of length 1), so a model's methods see the shapes they
see in a population. Lanes that are not *active* (padding, neurons an event reads but
leaves as they are) take zero-length solves and no steps.

**Horizon.** A prediction integrates ahead of the neuron over `cap` (20 ms) from any
touch; if an input reaches it first, the work past the input is lost. Shorter horizons
after an input (twice the time since the last touch) took 2.3x fewer steps on a
500-neuron COBA network but 5x more iterations (checks), and ran 1.45x slower: the
cost of an event is its sequence of solver steps and loop operations, not the width
of its lanes. The steps a neuron takes follow its own inputs and spikes: a neuron
that receives nothing takes the same steps whatever the rest of the network does
(tests/test_clocks.py counts them).

**Quiet times.** A model may bound the time during which its spike condition cannot
turn positive while nothing reaches the neuron (`AbstractNeuron.quiet_time`;
`CobaLIF` has one: below threshold while its drive at threshold is negative). A
prediction then takes no solve where that time covers the horizon (the key is a check
at its end, or `inf`: the neuron waits for its next input), and a solve stops at the
first step from whose end the neuron is quiet for the rest of it. COBA, 4000 neurons,
100 ms, float32: 11.2 M steps and 5.57 s without, 1.79 M steps and 2.39 s with them,
the same 6965 spikes; 96% of the neurons are quiet until their next input at any
moment.

**Propagation.** A model may bring its neurons forward itself
(`AbstractNeuron.propagate`; `CobaLIF` has one, a quadrature of its
variation-of-constants formula exact to the float's precision). Forward runs then
advance the neurons an event touches with it, in pieces that end at their scheduled
changes, and solve only to predict. COBA, 4000 neurons, 100 ms, float32: 1.29 M solver
steps and 0.53-0.62 s with solves, 75 k steps and 0.28-0.36 s with `propagate`
(interleaved runs); 96% of those steps were advances.

**Two steppers.** Differentiated runs solve each neuron with `diffrax.diffeqsolve`
(differentiable: the event time through the root finder's implicit function theorem,
as on the network path; the loop is then the checkpointed one). Forward runs
(`gradients=False`) take a lean stepper (`_lean_solve`, below) with the same solver
steps, step-size control and event location, which compiles in about 0.7x the time
and ran 1.3x faster on a 500-neuron COBA network (the same 6989 spikes). The two
agree to the solver's tolerance (tests/test_clocks.py).
"""

import diffrax as dfx
import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu

from . import _cpu
from ._clip_floor import diffeqsolve
from ._root import event_root_finder

# The prediction horizon after a neuron is touched (ms); checks double it up to this.
CLOCK_HORIZON = 20.0
# Forward runs: a neuron quiet past its next scheduled change (the end of its
# refractory period) is not checked there; its next advance applies the change
# (`predict`, `_lean_lanes`). COBA 4000, 100 ms: 0.68-0.77 s with a check at every
# end (14 508 loop iterations), 0.52-0.54 s without (12 055), the same 7461 spikes.
# (False: a check at every end, for comparison in tests.)
LAZY_CHANGES = True
# Forward runs: neurons whose model has a `propagate` (`CobaLIF`) are brought to an
# event's time by it instead of a solve (`advance`; see "Propagation" above).
# (False: solved, for comparison in tests.)
PROPAGATE = True
# Forward runs: a check (a key that is not a spike) works on its neuron alone, in a
# branch of the loop's iteration (`_per_neuron._Loop.touch`). (False: on every lane
# an event touches, the checked neuron's alone changed, for comparison in tests.)
NARROW_CHECKS = True
# Forward runs: neurons solved per neuron start with a check due at `t0` instead of a
# prediction at the start (`_per_neuron._Loop.starts_with_checks`). (False: predicted
# at the start, for comparison in tests.)
START_WITH_CHECKS = True


class OdeClock(eqx.Module):
    """How neurons without a closed form are integrated on their own clocks: the
    solver, its step-size controller, the cap on steps of one solve, the longest
    horizon of a prediction (ms), and whether the LIF family is solved this way too
    (`everywhere`, instead of its closed form)."""

    solver: dfx.AbstractSolver
    controller: dfx.AbstractStepSizeController
    max_steps: int = eqx.field(static=True)
    cap: float = eqx.field(static=True)
    everywhere: bool = eqx.field(static=True, default=False)


def per_neuron_mask(neuron, n):
    """Which leaves of `neuron` hold one value per neuron (leading axis `n`)."""
    return jtu.tree_map(
        lambda x: eqx.is_array(x) and x.ndim >= 1 and x.shape[0] == n, neuron
    )


def _one(leaf):
    return leaf[None]


def _solve(clock, neuron, y, current, t_abs, length, event):
    """One neuron (leaves with a leading axis of 1) solved from local time 0 to
    `length` (0 gives the state as it is), stopping at `event` if any."""
    dtype = current.dtype

    def field(s, y, args):
        return neuron.dynamics(t_abs + s, y, current)

    return diffeqsolve(
        dfx.ODETerm(field),
        clock.solver,
        t0=jnp.zeros((), dtype),
        t1=length,
        dt0=None,
        y0=y,
        stepsize_controller=clock.controller,
        event=event,
        max_steps=clock.max_steps,
        saveat=dfx.SaveAt(t1=True),
        throw=False,
    )


def _single(batched, rest):
    """One lane's neuron (its per-neuron leaves `batched`), as a population of one."""
    return eqx.combine(jtu.tree_map(_one, batched), rest)


def _lanes(fn, neuron, mask, *lanes):
    """`fn(neuron_i, *lane_i)` over the lanes (each neuron alone, leading axis 1)."""
    batched, rest = eqx.partition(neuron, mask)

    def one(batched, *lane):
        return fn(
            _single(batched, rest),
            *(jtu.tree_map(_one, x) if i == 0 else x for i, x in enumerate(lane)),
        )

    return jax.vmap(one)(batched, *lanes)


def _past_condition(neuron, y, current, t):
    """Whether one neuron (a lane) is past its spike condition at `t`: it fires at `t`."""
    return neuron.spike_condition(t, y, current[None])[0] > 0


def due(neuron, mask, state, current, t):
    """Which neurons are past their spike condition at `t` (as `predict` tells them):
    they fire at `t`."""
    return _lanes(
        lambda nrn, y, c: _past_condition(nrn, y, c, t), neuron, mask, state, current
    )


def advance(clock, neuron, mask, state, current, elapsed, t_last, t, active, forward, dt):
    """The states at `t` of neurons last touched at `t_last`, `elapsed` later (per
    lane), the solver steps taken and each lane's next step size; inactive lanes stay
    as they are. `forward`: the run is not differentiated (the lean stepper may take
    it). `dt`: each lane's first step size (its last proposal; 0 where unknown)."""
    length = jnp.where(active, jnp.maximum(elapsed, 0.0), 0.0)
    if forward and lean(clock) and PROPAGATE and _propagates(neuron, mask, state, current):
        y = neuron.apply_scheduled(
            t, _propagated(neuron, mask, state, current, t_last, length)
        )
        ok, steps = jnp.ones(length.shape, bool), jnp.zeros(length.shape, jnp.int32)
    elif forward and lean(clock):
        y, _, _, ok, steps, dt = _lean_solve(
            clock, neuron, mask, state, current, t_last, length, False, dt
        )
        y = neuron.apply_scheduled(t, y)
    else:

        def one(neuron, y, current, length, t_last):
            sol = _solve(clock, neuron, y, current[None], t_last, length, None)
            y_end = jtu.tree_map(lambda leaf: leaf[-1], sol.ys)
            y_end = neuron.apply_scheduled(t, y_end)
            ok = sol.result == dfx.RESULTS.successful
            steps = sol.stats["num_accepted_steps"]
            return jtu.tree_map(lambda leaf: leaf[0], y_end), steps, ok

        y, steps, ok = _lanes(one, neuron, mask, state, current, length, t_last)
    y = jtu.tree_map(lambda new: jnp.where(_wide(ok, new), new, jnp.nan), y)
    return y, jnp.sum(jnp.where(active, steps, 0)), dt


def _propagates(neuron, mask, state, current):
    """Whether the model brings its neurons forward itself (`AbstractNeuron.propagate`
    is not None)."""
    shape = jax.eval_shape(
        lambda: _lanes(
            lambda nrn, y, c, s: nrn.propagate(s[None], y, s[None], c[None]),
            neuron,
            mask,
            state,
            current,
            jnp.zeros_like(current),
        )  # fmt: skip
    )
    return shape is not None


def _propagated(neuron, mask, state, current, t_last, length):
    """Each lane's state `length` after `t_last` by the model's `propagate` (all lanes
    at once, as one population), in pieces that end at the lanes' scheduled changes
    (applied there, at their own times, as the lean stepper does); in one piece where
    the model brings its neurons across their changes itself
    (`propagates_across_changes`; the caller applies them at the end): a spike's
    lanes otherwise take a second piece, at their full width, wherever one of them
    has a change (a refractory end) inside its interval."""
    if type(neuron).propagates_across_changes:
        return neuron.propagate(t_last, state, length, current)

    def scheduled(y):
        return _lanes(
            lambda nrn, y: jnp.asarray(nrn.next_scheduled_time(y), length.dtype),
            neuron, mask, y,
        )  # fmt: skip

    def applied(change, y):
        return _lanes(
            lambda nrn, y, t: _first(nrn.apply_scheduled(t, y)), neuron, mask, y, change
        )

    def piece(s, y):
        """From local time `s` to the next change inside the interval, or its end."""
        change = scheduled(y)
        to_change = change - t_last - s
        split = (to_change > 0) & (to_change < length - s)
        h = jnp.where(split, to_change, jnp.maximum(length - s, 0.0))
        y = neuron.propagate(t_last + s, y, h, current)
        y = leafwise_where(split, applied(change, y), y)
        return jnp.where(split, s + h, length), y

    # Most lanes have no change inside: one piece, and the loop stops at once.
    s, y = piece(jnp.zeros_like(length), state)
    return lax.while_loop(lambda c: jnp.any(c[0] < length), lambda c: piece(*c), (s, y))[1]


def _wide(flag, like):
    return flag.reshape(flag.shape + (1,) * (like.ndim - flag.ndim))


def predict(clock, neuron, mask, state, current, t, t_lo, h, active, later, forward, dt):
    """The next event of neurons at time `(t, t_lo)` (a pair; `later(t, t_lo, s)` adds
    a local time to it): `(key, key_lo, spike, h_next, steps, dt_next)` (`dt`, the
    step sizes, as for `advance`). `spike` tells a
    crossing (or a neuron already past its condition, keyed at `t`) from a check (at
    the end of the horizon `h`, or at the neuron's next scheduled change). A solve that
    fails gives a NaN key, which stops the run. `forward`: the run is not
    differentiated (the lean stepper may take it)."""
    dtype = current.dtype
    t_event = t
    h = lax.stop_gradient(h)

    def prelude(neuron, y, current, h, active):
        due = _past_condition(neuron, y, current, t)
        scheduled = jnp.asarray(neuron.next_scheduled_time(y), dtype)
        until = lax.stop_gradient(scheduled - t)
        quiet = neuron.quiet_time(t, y, current[None])
        quiet = jnp.zeros((), dtype) if quiet is None else lax.stop_gradient(quiet[0])
        # Quiet over the whole horizon (or until the scheduled change): no solve.
        skip = ~due & (quiet >= jnp.minimum(h, until))
        length = jnp.minimum(h, until)
        length = jnp.where(active & ~due & ~skip, jnp.clip(length, 0.0, None), 0.0)
        return due, scheduled, until, length, skip, quiet

    due, scheduled, until, length, skip, quiet = _lanes(
        prelude, neuron, mask, state, current, h, active
    )
    # How far ahead a check goes: the horizon, or as long as the neuron is quiet.
    ahead = jnp.where(skip, quiet, h)
    # How far ahead nothing can cross (the solve's end where it ran to it).
    established = ahead
    if forward and lean(clock):
        # Where the model has no quiet time, every lane the event touched is
        # predicted over the same horizon: one batch of them all is cheaper.
        quiet_model = jax.eval_shape(
            lambda: _lanes(
                lambda nrn, y, c: nrn.quiet_time(t, y, c[None]),
                neuron,
                mask,
                state,
                current,
            )
        )
        _, s, hit, ok, steps, dt, quiet_until = _lean_solve(
            clock, neuron, mask, state, current, t, length, True, dt,
            CHUNK if quiet_model is not None else None,
        )  # fmt: skip
        ahead = jnp.where(skip, ahead, jnp.maximum(ahead, quiet_until))
        established = jnp.where(skip, quiet, quiet_until)
    else:

        def one(neuron, y, current, length):
            def crossing(t, y, args, **kwargs):  # diffrax passes `t` (local) by name
                return neuron.spike_condition(t_event + t, y, current[None])[0]

            event = dfx.Event(
                crossing, root_finder=event_root_finder(dtype, t_event), direction=True
            )
            sol = _solve(clock, neuron, y, current[None], t_event, length, event)
            hit = sol.result == dfx.RESULTS.event_occurred
            ok = hit | (sol.result == dfx.RESULTS.successful)
            return sol.ts[-1], hit, ok, sol.stats["num_accepted_steps"]

        s, hit, ok, steps = _lanes(one, neuron, mask, state, current, length)
    hit = hit & ~due
    ok = ok | ~active
    # Quiet past its scheduled change: no check there; the lean stepper's advance
    # applies the change inside its solve (`_lean_lanes`), so a neuron keyed past
    # the end of its refractory period waits for its next input.
    if forward and lean(clock) and LAZY_CHANGES:
        beyond = established > until
        ahead = jnp.where(beyond, established, ahead)
    else:
        beyond = jnp.zeros_like(hit)
    t_const = lax.stop_gradient(t)
    key, key_lo = later(jnp.where(hit, t, t_const), t_lo, jnp.where(hit, s, ahead))
    # A check at a scheduled change is at that time itself (as stored), so that the
    # change is due there.
    check = ~due & ~hit
    at_schedule = check & (until <= ahead) & ~beyond
    key = jnp.where(at_schedule, lax.stop_gradient(scheduled), key)
    key_lo = jnp.where(at_schedule, 0.0, key_lo)
    key = jnp.where(due, t, key)
    key_lo = jnp.where(due, t_lo, key_lo)
    key = jnp.where(ok, key, jnp.nan)
    spike = due | hit
    # The horizon doubles after a check at its end (not after a quiet time).
    h_next = jnp.where(
        check & ~at_schedule & (ahead == h), jnp.minimum(2 * h, clock.cap), h
    )
    return key, key_lo, spike, h_next, jnp.sum(jnp.where(active, steps, 0)), dt


# ----- a lean stepper for forward runs ---------------------------------------------
#
# `jax.vmap` of `diffrax.diffeqsolve` runs a batched `while` whose body costs about
# twenty times a single solve's step on the CPU (measured: 0.9 ms against 50 us per
# step for 10 lanes of an Izhikevich neuron). Forward runs (`gradients=False`) take
# their solves here instead: the lanes side by side in one plain `while` loop, each
# step the solver's own `step` under `vmap` (no loop inside), with the step-size
# control of diffrax's default controller (an I controller on the RMS norm of the
# scaled error estimate) and the event located on the solver's dense output by a
# bracketed Newton iteration (the condition is read at the step's end and at one point
# inside it, `INTERIOR`). Differentiated runs keep `diffeqsolve`.

ROOT_ITERATIONS = 16
REFINEMENTS = 2
# Where inside each accepted step the spike condition is also read (on the dense
# output, as fractions of the step): a crossing that goes back below within one step
# (a graze) is found when it is above there. COBA, 16 000 neurons, 80 targets each,
# float32, 10 ms: 8 of 2050 spikes were grazes missed at the step ends (the network's
# clock, whose steps end at every spike of the network, found them); the midpoint
# finds them at no measurable cost there (1.31-1.35 against 1.32-1.37 s), two points
# cost 10-35% more, and on 1024 independent Izhikevich neurons (lanes, no graze) the
# midpoint costs 20% (0.82 against 0.69 s). Where the condition rises at a step's start
# and falls at its end, it is read at the maximum of the cubic through its values and
# slopes at the ends instead of the midpoint (`Lean.crossed`): a shallow excursion
# 30% into a step, below the threshold at the midpoint, was missed (mixed seed 1,
# float32: neuron 173, 4.4e-4 above it for 1.3 ms). COBA 4000, 1 s: the same cost
# (31.3-31.8 against 31.4-31.5 us per spike); 1024 Izhikevich lanes: 0.50-0.52 against
# 0.43-0.44 s (the dense output read at a point that differs per lane). The slopes at
# the steps' ends come from the solver's last stage.
INTERIOR = (0.5,)
SAFETY, FACTOR_MIN, FACTOR_MAX = 0.9, 0.2, 10.0


def lean(clock) -> bool:
    """Whether `clock`'s solves can take the lean stepper: an adaptive solver with an
    error estimate and dense output, under a plain PID controller."""
    return (
        isinstance(clock.controller, dfx.PIDController)
        and isinstance(clock.solver, dfx.AbstractAdaptiveSolver)
        and clock.controller.pcoeff == 0
        and clock.controller.dcoeff == 0
        and clock.controller.dtmin is None
        and clock.controller.dtmax is None
    )


class Lean:
    """The pieces of the lean stepper for lanes that each hold one neuron of a
    population (`neuron`'s per-neuron leaves, `mask`, split off as `batched`): the
    solver's step, its first-step estimate, the step-size control, the spike
    condition and the crossing inside a step. Every method takes per-lane arrays
    (leading axis: the lanes) and works on all lanes at once."""

    def __init__(self, clock, neuron, mask, dtype):
        self.solver, controller = clock.solver, clock.controller
        self.rtol = jnp.asarray(controller.rtol, dtype)
        self.atol = jnp.asarray(controller.atol, dtype)
        order = controller.error_order
        order = self.solver.order(None) if order is None else order
        self.exponent = controller.icoeff / (order + 1)
        self.batched, self.rest = eqx.partition(neuron, mask)
        self.dtype = dtype
        # State fields that stay as they are between events: left out of the solves.
        self.constant = tuple(type(neuron).constant_fields)
        self.unrolled = unrolled(self.solver)

    def _parts(self, y):
        """`y` split into the fields the solver integrates and the constant ones
        (`AbstractNeuron.constant_fields`; None where there are none)."""
        if not self.constant:
            return y, None
        mask = jtu.tree_map(lambda _: False, y)
        mask = eqx.tree_at(
            lambda s: tuple(getattr(s, f) for f in self.constant),
            mask,
            (True,) * len(self.constant),
        )
        constant, moving = eqx.partition(y, mask)
        return moving, constant

    def at(self, idx):
        """The same pieces for the lanes `idx` (indices past the end read the last)."""
        sub = object.__new__(Lean)
        sub.__dict__.update(self.__dict__)
        sub.batched = jtu.tree_map(lambda x: x.at[idx].get(mode="clip"), self.batched)
        return sub

    def _term(self, batched, current, t_abs, constant=None):
        """The vector field of one lane's integrated fields (`constant`: the others)."""
        neuron = _single(batched, self.rest)

        def field(s, y, args):
            full = _joined(y, constant)
            return self._parts(neuron.dynamics(t_abs + s, full, current[None]))[0]

        return dfx.ODETerm(field)

    def _condition_one(self, batched, current, t_abs, s, y):
        neuron = _single(batched, self.rest)
        return neuron.spike_condition(t_abs + s, jtu.tree_map(_one, y), current[None])[0]

    def step(self, current, t_abs, t0, t1, y, state):
        """One solver step per lane: `(y1, error, dense, state1)` (`error` of the
        integrated fields only)."""

        def one(batched, current, t_abs, t0, t1, y, state):
            moving, constant = self._parts(jtu.tree_map(_one, y))
            term = self._term(batched, current, t_abs, constant)
            if self.unrolled:
                y1, error, dense, state1 = _erk_step(
                    self.solver.tableau, term, t0, t1, moving, state
                )
            else:
                y1, error, dense, state1, _ = self.solver.step(
                    term, t0, t1, moving, None, state, False
                )
            # The constant fields: as they were (the error, of the integrated fields
            # only, is normed over the whole state, as in diffrax's solves).
            y1 = _joined(y1, constant)
            # The solver's state and dense output keep their shapes (the state's
            # leading axis of 1); the dense output carries the constant fields.
            return _first(y1), _first(error), (dense, constant), state1

        return jax.vmap(one)(self.batched, current, t_abs, t0, t1, y, state)

    def init(self, current, t_abs, y, h, derivative=True, s=None):
        """The solver's state at local time `s` (default 0) and (if `derivative`) the
        time derivative there."""
        s = jnp.zeros_like(h) if s is None else s

        def one(batched, current, t_abs, y, h, s):
            moving, constant = self._parts(jtu.tree_map(_one, y))
            term = self._term(batched, current, t_abs, constant)
            state = self.solver.init(term, s, s + h, moving, None)
            if not derivative:
                return state, None
            return state, _first(term.vf(s, moving, None))

        return jax.vmap(one)(self.batched, current, t_abs, y, h, s)

    def scheduled(self, y):
        """Each lane's next scheduled change (`next_scheduled_time`, absolute)."""

        def one(batched, y):
            neuron = _single(batched, self.rest)
            time = neuron.next_scheduled_time(jtu.tree_map(_one, y))
            return jnp.asarray(time, self.dtype)

        return jax.vmap(one)(self.batched, y)

    def apply_scheduled(self, t, y):
        """Each lane's state after its changes scheduled at or before `t` (per lane)."""

        def one(batched, t, y):
            neuron = _single(batched, self.rest)
            return _first(neuron.apply_scheduled(t, jtu.tree_map(_one, y)))

        return jax.vmap(one)(self.batched, t, y)

    def condition(self, current, t_abs, s, y):
        """The spike condition of each lane at local time `s`."""
        return jax.vmap(self._condition_one)(self.batched, current, t_abs, s, y)

    def quiet(self, current, t_abs, s, y):
        """The model's quiet time (`AbstractNeuron.quiet_time`) of each lane at local
        time `s`; None when the model has none."""

        def one(batched, current, t_abs, s, y):
            neuron = _single(batched, self.rest)
            q = neuron.quiet_time(t_abs + s, jtu.tree_map(_one, y), current[None])
            return None if q is None else q[0]

        return jax.vmap(one)(self.batched, current, t_abs, s, y)

    def _rms(self, tree, like=None):
        """The RMS norm of each lane's `tree`, over as many entries as `like` has (the
        whole state, where `tree` holds only the integrated fields: the constant ones
        count as zeros, as in a solve of the whole state)."""
        leaves = jtu.tree_leaves(tree)
        lanes = leaves[0].shape[0]
        total = sum(_cpu.fold(jnp.add, leaf.reshape(lanes, -1) ** 2) for leaf in leaves)
        size = sum(leaf[0].size for leaf in jtu.tree_leaves(tree if like is None else like))
        return jnp.sqrt(total / size)

    def first_step(self, y, f):
        """Hairer & Wanner's estimate of the first step from the state and its time
        derivative."""
        scale = jtu.tree_map(lambda y: self.atol + self.rtol * jnp.abs(y), y)
        d0 = self._rms(jtu.tree_map(lambda y, s: y / s, y, scale))
        d1 = self._rms(jtu.tree_map(lambda f, s: f / s, f, self._parts(scale)[0]), y)
        return jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / d1)

    def control(self, live, y, y1, error):
        """The I controller: `(accept, finite, factor)` of each lane's step."""
        scale = jtu.tree_map(
            lambda a, b: self.atol + self.rtol * jnp.maximum(jnp.abs(a), jnp.abs(b)), y, y1
        )
        norm = self._rms(jtu.tree_map(lambda e, s: e / s, error, self._parts(scale)[0]), y)
        finite = jnp.isfinite(norm)
        accept = live & (norm <= 1.0) & finite
        factor = jnp.where(
            norm == 0,
            FACTOR_MAX,
            SAFETY * jnp.where(finite, norm, jnp.inf) ** -self.exponent,
        )
        factor = jnp.clip(factor, FACTOR_MIN, jnp.where(accept, FACTOR_MAX, 1.0))
        return accept, finite, factor

    def slope(self, current, t_abs, s, y, f=None):
        """The time derivative of each lane's spike condition at local time `s` in
        state `y`, along the vector field (`f`: its value there, per lane, as `init`
        returns it; evaluated when None)."""

        def one(batched, current, t_abs, s, y, f):
            moving, constant = self._parts(jtu.tree_map(_one, y))
            if f is None:
                f = self._term(batched, current, t_abs, constant).vf(s, moving, None)
            else:
                f = jtu.tree_map(_one, f)

            def condition(s, moving):
                full = _first(_joined(moving, constant))
                return self._condition_one(batched, current, t_abs, s, full)

            return jax.jvp(condition, (s, moving), (jnp.ones_like(s), f))[1]

        return jax.vmap(one)(self.batched, current, t_abs, s, y, f)

    def end_slope(self, current, t_abs, s, y, state):
        """`slope` at the end `s` of a step that gave `y` and the solver's `state`: an
        `unrolled` solver's last stage is the vector field there (no evaluation)."""
        f = jax.vmap(_first)(state[1]) if self.unrolled else None
        return self.slope(current, t_abs, s, y, f)

    def crossed(
        self, current, t_abs, t_a, t_b, c_a, c_b, dense, accept, m_a=None, m_b=None
    ):
        """Whether each lane's accepted step `[t_a, t_b]` holds an upward crossing of
        its condition (`c_a <= 0` at its start; positive at its end or at one of the
        `INTERIOR` points of its dense output), and the end of the bracket: the first
        point where it is positive.

        With the condition's slopes at the step's ends (`m_a`, `m_b`), a step along
        which it rises at the start and falls at the end (so has a maximum inside) is
        read at that maximum of the cubic through the values and slopes at its ends
        (Hermite) in place of the first `INTERIOR` point: a shallow excursion above 0
        is found wherever in the step it lies (the midpoint finds it only near the
        middle), at no more cost."""
        if not INTERIOR:
            return accept & (c_a <= 0) & (c_b > 0), t_b
        fractions = jnp.broadcast_to(
            jnp.asarray(INTERIOR, self.dtype), t_a.shape + (len(INTERIOR),)
        )
        if m_a is not None:
            h = t_b - t_a
            theta = _cubic_peak(c_a, c_b, h * m_a, h * m_b)
            rising_falling = (m_a > 0) & (m_b < 0) & (theta > 0) & (theta < 1)
            first = jnp.where(rising_falling, theta, fractions[:, 0])[:, None]
            fractions = jnp.concatenate([first, fractions[:, 1:]], axis=1)
            if len(INTERIOR) > 1:
                fractions = jnp.sort(fractions, axis=1)
        x = t_a[:, None] + fractions * (t_b - t_a)[:, None]
        inside = jax.vmap(
            jax.vmap(
                _dense_condition(self.solver, self._condition_one), (None,) * 6 + (0,)
            ),
        )(self.batched, current, t_abs, t_a, t_b, dense, x)
        above = jnp.concatenate([inside, c_b[:, None]], axis=1) > 0
        first = jnp.argmax(above, axis=1)
        ends = jnp.concatenate([x, t_b[:, None]], axis=1)
        t_hi = jnp.take_along_axis(ends, first[:, None], axis=1)[:, 0]
        return accept & (c_a <= 0) & jnp.any(above, axis=1), t_hi

    def crossing(
        self, current, t_abs, t_a, t_b, c_a, y_a, state_a, dense, hit, at=False, t_hi=None
    ):
        """The upward crossing inside each lane's bracketing step `[t_a, t_b]` (where
        `hit`; in `[t_a, t_hi]` when given), from its dense output, then corrected
        (`REFINEMENTS` Newton steps, the condition from a real step from the bracket's
        start): `(root, y_a stepped to the root, when `at`)`. The crossing on the dense output alone is as accurate as the
        interpolation (a lower order than the steps: 1.6e-6 ms off on a 1.5 ms step
        of CobaLIF at rtol 1e-10); the corrections make it as accurate as the steps."""
        t_hi = t_b if t_hi is None else t_hi
        root = _locate(
            self.solver, self.batched, self._condition_one, current, t_abs, t_a, t_b,
            dense, c_a, t_hi,
        )  # fmt: skip
        slope_of = jax.vmap(_slope(self.solver, self._condition_one))
        for _ in range(REFINEMENTS):
            x = jnp.where(hit, root, t_b)
            y_x = self.step(current, t_abs, t_a, x, y_a, state_a)[0]
            c_x = self.condition(current, t_abs, x, y_x)
            slope = slope_of(self.batched, current, t_abs, t_a, t_b, dense, x)
            corrected = x - c_x / slope
            ok = jnp.isfinite(corrected) & (corrected > t_a) & (corrected <= t_hi)
            root = jnp.where(ok, corrected, root)
        x = jnp.where(hit, root, t_b)
        return x, (self.step(current, t_abs, t_a, x, y_a, state_a)[0] if at else None)


def unrolled(solver) -> bool:
    """Whether the lean stepper takes `solver`'s steps itself (`_erk_step`): an
    explicit Runge-Kutta method with one Butcher tableau whose last stage is its
    solution and the first stage of its next step (Tsit5, the default; Dopri5 and
    Dopri8 too)."""
    tableau = getattr(solver, "tableau", None)
    return (
        isinstance(solver, dfx.AbstractERK)
        and isinstance(tableau, dfx.ButcherTableau)
        and tableau.fsal
        and tableau.ssal
    )


def _erk_step(tableau, term, t0, t1, y0, state):
    """One step of an explicit Runge-Kutta method (`unrolled`) with its stages written
    out: the step of diffrax's solver (`(y1, error, dense, state1)`, the same values to
    rounding), whose stages run in a `while` loop. COBA 4000, 100 ms, interleaved runs:
    0.29-0.30 s with diffrax's step, 0.24-0.26 s with this one (the spike times
    differ by rounding: 7443 and 7513 spikes of a chaotic network)."""
    first, f0 = state
    dtype = jtu.tree_leaves(y0)[0].dtype
    h = t1 - t0
    # The first stage is stored from the last step (its last stage), except on a first
    # step (diffrax's solver state holds zeros then).
    f0 = jtu.tree_map(
        lambda new, old: jnp.where(first, new, old), term.vf(t0, y0, None), f0
    )

    def combined(weights, ks):
        return jtu.tree_map(
            lambda y, *k: (
                y + sum(jnp.asarray(w, dtype) * ki for w, ki in zip(weights, k) if w != 0)
            ),
            y0,
            *ks,
        )

    ks = [jtu.tree_map(lambda f: h * f, f0)]
    for c, a in zip(tableau.c, tableau.a_lower):
        y_i = combined(a, ks)
        f_i = term.vf(t0 + jnp.asarray(c, dtype) * h, y_i, None)
        ks.append(jtu.tree_map(lambda f: h * f, f_i))
    y1 = y_i  # (the last stage is the solution)
    error = jtu.tree_map(
        lambda *k: sum(jnp.asarray(w, dtype) * ki for w, ki in zip(tableau.b_error, k)),
        *ks,
    )
    k = jtu.tree_map(lambda *k: jnp.stack(k), *ks)
    return y1, error, dict(y0=y0, y1=y1, k=k), (jnp.asarray(False), f_i)


def _joined(moving, constant):
    """A state from its integrated and constant fields (`Lean._parts`)."""
    return moving if constant is None else eqx.combine(moving, constant)


def _first(tree):
    return jtu.tree_map(lambda leaf: leaf[0], tree)


def leafwise_where(flag, a, b):
    """`a` where `flag` (one per lane), else `b`, leaf by leaf."""
    return jtu.tree_map(lambda x, z: jnp.where(_wide(flag, x), x, z), a, b)


# The lean stepper's cost is its width times its iterations, and its iterations are
# those of its slowest lane. `_lean_solve` takes the lanes with something to
# integrate in batches of `CHUNK`, the longest solves first (an event's lanes, at most
# `RANKED_UP_TO`); more lanes (a whole population's) go in slices of `CHUNK`, in order.
CHUNK = 16
RANKED_UP_TO = 512


def _lean_solve(
    clock, neuron, mask, y0, current, t_abs, length, event: bool, dt, chunk=CHUNK
):
    """`_lean_lanes` over the lanes with something to integrate (`length > 0`), in
    batches of `chunk` lanes, longest first (None: all lanes in one batch). An event's prediction integrates a few of
    the lanes it touched (most are quiet) and a check one lane, out of lanes as many
    as the widest row of the delivery plans; the solves of an event's targets differ
    in length (the times since their last touches). COBA, 4000 neurons, 100 ms,
    float32, warm: 1.31 s in one batch of every lane (a batch of 8 where at most 8
    lanes had something to integrate), 0.83 s in batches of 16 (8: 0.99 s, 32:
    1.05 s), and the first call compiles in 14 s instead of 30 s. Predictions of a
    model without quiet times (`chunk=None` there) cover the same horizon in every
    lane and take one batch: a sparse Izhikevich network (4000 neurons, 80 targets
    each, 50 ms) ran in 2.12 s in batches, 1.63-1.67 s so (1.98-2.64 s before
    batches and kept step sizes)."""
    lanes = length.shape[0]
    t_abs = jnp.broadcast_to(t_abs, (lanes,))
    if chunk is None or lanes <= chunk:
        widest = _widest(clock)
        if lanes <= widest:
            return _lean_lanes(clock, neuron, mask, y0, current, t_abs, length, event, dt)
        width = -(-lanes // -(-lanes // widest))  # as few slices as can be, even
        return _in_slices(clock, neuron, mask, y0, current, t_abs, length, event, dt, width)
    if lanes > RANKED_UP_TO:
        # A whole population's solve (at the start, at a jump of its current, at a
        # record): slices of `chunk` lanes in their order, one after another, in time
        # and memory linear in the lanes (placing lanes into batches costs a pass over
        # every lane per batch: 7 ms per record of 4000 Izhikevich neurons).
        return _in_slices(clock, neuron, mask, y0, current, t_abs, length, event, dt, chunk)
    need = length > 0
    count = jnp.sum(need.astype(jnp.int32))
    lane = jnp.arange(lanes)

    def in_order():
        needing = jnp.cumsum(need.astype(jnp.int32))
        return jnp.where(need, needing - 1, count + lane - needing)

    def ranked():  # longest first, nothing last
        key = jnp.where(need, length, -1.0)
        before = (key[None, :] > key[:, None]) | (
            (key[None, :] == key[:, None]) & (lane[None, :] < lane[:, None])
        )
        return jnp.sum(before.astype(jnp.int32), axis=1)

    # Each lane's place. The ranking sorts the lanes into batches, so it is needed
    # only where more lanes than one batch has integrate (lanes are independent: the
    # order within a batch changes nothing). Most events need one batch or none.
    place = lax.cond(count > chunk, ranked, in_order)
    batched, rest = eqx.partition(neuron, mask)
    zero = jnp.zeros_like(length)
    # A lane with nothing to integrate, as a zero-length solve leaves it.
    out0 = (y0, zero, jnp.zeros((lanes,), bool), jnp.ones((lanes,), bool))
    out0 += (jnp.zeros((lanes,), jnp.int32), dt) + ((zero,) if event else ())

    def body(carry):
        c, out = carry
        slots = c * chunk + jnp.arange(chunk)
        # The lane at each place (0 past the last).
        at = place[None, :] == slots[:, None]
        idx = jnp.sum(jnp.where(at, lane[None, :], 0), axis=1)
        used = slots < count
        take = jtu.tree_map(lambda x: x[idx], (batched, y0, current, t_abs, dt))
        got = _lean_lanes(
            clock, eqx.combine(take[0], rest), mask, take[1], take[2], take[3],
            jnp.where(used, length[idx], 0.0), event, take[4],
        )  # fmt: skip
        mine = need & (place // chunk == c)
        back = place % chunk
        out = jtu.tree_map(
            lambda new, old: jnp.where(_wide(mine, old), new[back], old), got, out
        )
        return c + 1, out

    chunks = (count + chunk - 1) // chunk
    return lax.while_loop(lambda carry: carry[0] < chunks, body, (0, out0))[1]


def _widest(clock) -> int:
    """The most lanes one solve takes at once. Its dense output multiplies each lane's
    stages by the interpolation's coefficients, a product batched over the lanes that
    XLA hands to a library kernel from `_cpu.REDUCE_LIMIT` products on (a loop compiled
    whole cannot call one: Tsit5's 7 stages failed from 586 lanes)."""
    tableau = getattr(clock.solver, "tableau", None)
    stages = len(tableau.c) + 1 if isinstance(tableau, dfx.ButcherTableau) else 16
    return max((_cpu.REDUCE_LIMIT - 1) // stages, 1)


def _in_slices(clock, neuron, mask, y0, current, t_abs, length, event, dt, width):
    """`_lean_lanes` over consecutive slices of `width` lanes (the last padded with
    lanes that have nothing to integrate), one after another: a whole population's
    solve (its prediction at the start or at a jump of its current, its advance to a
    record time)."""
    lanes = length.shape[0]
    slices = -(-lanes // width)
    batched, rest = eqx.partition(neuron, mask)

    def sliced(x, fill=None):
        pad = [(0, slices * width - lanes)] + [(0, 0)] * (x.ndim - 1)
        x = (
            jnp.pad(x, pad, mode="edge")
            if fill is None
            else jnp.pad(x, pad, constant_values=fill)
        )
        return x.reshape((slices, width) + x.shape[1:])

    operands = jtu.tree_map(sliced, (batched, y0, current, t_abs, dt))
    operands += (sliced(length, 0.0),)

    def one(operands):
        batched, y0, current, t_abs, dt, length = operands
        return _lean_lanes(
            clock, eqx.combine(batched, rest), mask, y0, current, t_abs, length, event, dt
        )

    out = lax.map(one, operands)
    return jtu.tree_map(lambda x: x.reshape((slices * width,) + x.shape[2:])[:lanes], out)


def _lean_lanes(clock, neuron, mask, y0, current, t_abs, length, event: bool, dt):
    """Every lane (neuron) solved from local time 0 to `length` (per lane), stopping
    at the first upward crossing of its spike condition when `event`. Returns the
    final states, the local end times (the crossing where one was found), whether
    each lane crossed, whether it succeeded, its accepted steps, its next step size
    (the controller's last proposal; `dt` where it took no step), and (when `event`)
    the local time until which the lane is known to be quiet (`inf` if it never
    fires without inputs; `length` where the solve ran to its end).

    With `event`, a lane whose model has a quiet time (`AbstractNeuron.quiet_time`)
    stops as soon as that time, from the end of an accepted step, covers the rest of
    its solve: nothing can cross there. Without `event` (an advance), a lane's
    scheduled changes inside its solve (`next_scheduled_time`; a neuron keyed past its
    refractory end, quiet across it) end a step there and are applied
    (`apply_scheduled`) before the solve goes on."""
    lean_ = Lean(clock, neuron, mask, current.dtype)
    lanes = length.shape[0]
    zeros = jnp.zeros_like(length)
    quiet0 = lean_.quiet(current, t_abs, zeros, y0) if event else None
    state0, f0 = lean_.init(current, t_abs, y0, jnp.maximum(length, 1e-3))
    # The first step: the lane's last proposal where it has one (an estimate from the
    # state, Hairer & Wanner's, takes about one more step per solve on COBA).
    h0 = jnp.minimum(jnp.where(dt > 0, dt, lean_.first_step(y0, f0)), length)

    def cond(carry):
        return jnp.any(~carry["done"]) & (carry["iterations"] < clock.max_steps)

    def body(carry):
        t, h, y, state = carry["t"], carry["h"], carry["y"], carry["state"]
        live = ~carry["done"]
        proposal = h
        h = jnp.where(live, jnp.minimum(h, length - t), 0.0)
        last = h >= length - t
        if not event:  # a step ends at a scheduled change inside the solve
            to_change = carry["change"] - t_abs - t
            split = live & (to_change > 0) & (to_change < h)
            h = jnp.where(split, to_change, h)
            last = last & ~split
        t1 = jnp.where(last, length, t + h)
        y1, error, dense, state1 = lean_.step(current, t_abs, t, t1, y, state)
        accept, finite, factor = lean_.control(live, y, y1, error)
        new = dict(carry)
        if not event:
            changed = accept & split

            def change():
                # At the change's own time (as stored); the solver starts afresh.
                y_c = lean_.apply_scheduled(carry["change"], y1)
                state_c, _ = lean_.init(current, t_abs, y_c, h, False, t1)
                return (
                    leafwise_where(changed, y_c, y1),
                    leafwise_where(changed, state_c, state1),
                    jnp.where(changed, lean_.scheduled(y_c), carry["change"]),
                )

            y1, state1, new["change"] = lax.cond(
                jnp.any(changed), change, lambda: (y1, state1, carry["change"])
            )
        if event:
            c1 = lean_.condition(current, t_abs, t1, y1)
            m1 = lean_.end_slope(current, t_abs, t1, y1, state1)
            crossed, t_hi = lean_.crossed(
                current, t_abs, t, t1, carry["c"], c1, dense, accept, carry["m"], m1
            )
            new["c"] = jnp.where(accept, c1, carry["c"])
            new["m"] = jnp.where(accept, m1, carry["m"])
            new["hit"] = carry["hit"] | crossed
            new["t_a"] = jnp.where(crossed, t, carry["t_a"])
            new["t_b"] = jnp.where(crossed, t1, carry["t_b"])
            new["t_hi"] = jnp.where(crossed, t_hi, carry["t_hi"])
            new["dense"] = leafwise_where(crossed, dense, carry["dense"])
            new["c_a"] = jnp.where(crossed, carry["c"], carry["c_a"])
            new["y_a"] = leafwise_where(crossed, y, carry["y_a"])
            new["state_a"] = leafwise_where(crossed, state, carry["state_a"])
            if quiet0 is not None:
                until = t1 + lean_.quiet(current, t_abs, t1, y1)
                quieted = accept & ~crossed & ~last & (until >= length)
                new["quiet"] = jnp.where(quieted, until, carry["quiet"])
                crossed = crossed | quieted  # (ends the lane's solve)
        else:
            crossed = jnp.zeros_like(accept)
        new["t"] = jnp.where(accept, t1, t)
        new["y"] = leafwise_where(accept, y1, y)
        new["state"] = leafwise_where(accept, state1, state)
        # A step shortened to end the solve (or at a change) keeps the proposal it
        # was cut from.
        kept = accept & (h < proposal) & (last if event else last | split)
        new["h"] = jnp.where(live, jnp.where(kept, proposal, h * factor), carry["h"])
        new["steps"] = carry["steps"] + accept.astype(jnp.int32)
        new["done"] = carry["done"] | (accept & last) | crossed
        new["ok"] = carry["ok"] & (finite | ~live)
        new["iterations"] = carry["iterations"] + 1
        return new

    carry = dict(
        t=zeros,
        h=h0,
        y=y0,
        state=state0,
        steps=jnp.zeros((lanes,), jnp.int32),
        done=length <= 0,
        ok=jnp.ones((lanes,), bool),
        iterations=jnp.asarray(0, jnp.int32),
    )
    if not event:
        carry["change"] = lean_.scheduled(y0)
    if event:
        _, _, dense_shape, _ = jax.eval_shape(
            lean_.step, current, t_abs, zeros, zeros, y0, state0
        )
        carry.update(
            c=lean_.condition(current, t_abs, zeros, y0),
            m=lean_.slope(current, t_abs, zeros, y0, f0),
            hit=jnp.zeros((lanes,), bool),
            t_a=zeros,
            t_b=zeros,
            t_hi=zeros,
            c_a=zeros,
            y_a=y0,
            state_a=state0,
            dense=jtu.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), dense_shape),
            quiet=length,
        )
    final = lax.while_loop(cond, body, carry)
    ok = final["ok"] & final["done"]
    dt_next = jnp.where(final["steps"] > 0, final["h"], dt)
    if not event:
        return final["y"], final["t"], jnp.zeros_like(ok), ok, final["steps"], dt_next
    names = ("t_a", "t_b", "c_a", "y_a", "state_a", "dense", "hit")
    # Located only where a lane crossed (most batches hold no crossing).
    root = lax.cond(
        jnp.any(final["hit"]),
        lambda: lean_.crossing(
            current, t_abs, *(final[k] for k in names), t_hi=final["t_hi"]
        )[0],
        lambda: final["t"],
    )
    s = jnp.where(final["hit"], root, final["t"])
    quiet = jnp.where(final["hit"], s, final["quiet"])
    return final["y"], s, final["hit"], ok, final["steps"], dt_next, quiet


def _dense_condition(solver, condition):
    """The condition on the dense output of a step, at `x` (one lane)."""

    def one(batched, current, t_abs, t_a, t_b, dense, x):
        dense, constant = dense
        interpolation = solver.interpolation_cls(t0=t_a, t1=t_b, **dense)
        y = _joined(interpolation.evaluate(x), constant)
        return condition(batched, current, t_abs, x, jtu.tree_map(lambda leaf: leaf[0], y))

    return one


def _slope(solver, condition):
    """d condition / d s on the dense output of a step, at `x`."""
    value = _dense_condition(solver, condition)

    def one(batched, current, t_abs, t_a, t_b, dense, x):
        def at(s):
            return value(batched, current, t_abs, t_a, t_b, dense, s)

        return jax.jvp(at, (x,), (jnp.ones_like(x),))[1]

    return one


def _cubic_peak(c0, c1, d0, d1):
    """Where the cubic on `[0, 1]` with values `c0`, `c1` and derivatives `d0`, `d1`
    at its ends (Hermite) has its maximum inside, where `d0 > 0 > d1` (its derivative
    `d0 + 2 a theta + 3 b theta^2` has one root there; elsewhere the value is outside
    `(0, 1)`, inf or nan)."""
    a = 3 * (c1 - c0) - 2 * d0 - d1
    b = 2 * (c0 - c1) + d0 + d1
    root = jnp.sqrt(jnp.maximum(a * a - 3 * b * d0, 0.0))
    # The root where the second derivative 2 a + 6 b theta is -2 root < 0:
    # (-a - root) / (3 b) = d0 / (root - a), each form where it has no cancellation.
    return jnp.where(a > 0, -(a + root) / (3 * b), d0 / (root - a))


def _locate(solver, batched, condition, current, t_abs, t_a, t_b, dense, c_a, t_hi):
    """The crossing inside each lane's bracket `[t_a, t_hi]` of its step `[t_a, t_b]`,
    on the solver's dense output: Newton's method kept inside the bracket (bisection
    where it leaves it)."""

    on_dense = _dense_condition(solver, condition)

    def one(batched, current, t_abs, t_a, t_b, dense, c_a, t_hi):
        def value(s):
            return on_dense(batched, current, t_abs, t_a, t_b, dense, s)

        def iterate(_, bracket):
            lo, hi, x = bracket
            f, df = jax.jvp(value, (x,), (jnp.ones_like(x),))
            lo = jnp.where(f <= 0, x, lo)
            hi = jnp.where(f > 0, x, hi)
            newton = x - f / df
            inside = (newton > lo) & (newton < hi) & jnp.isfinite(newton)
            return lo, hi, jnp.where(inside, newton, 0.5 * (lo + hi))

        # The secant point of the bracket to start from.
        c_hi = value(t_hi)
        x0 = t_a - c_a * (t_hi - t_a) / (c_hi - c_a)
        x0 = jnp.where((x0 > t_a) & (x0 < t_hi), x0, 0.5 * (t_a + t_hi))
        # The last iterate: Newton's iterates may all lie on one side of the root.
        return lax.fori_loop(0, ROOT_ITERATIONS, iterate, (t_a, t_hi, x0))[2]

    return jax.vmap(one)(batched, current, t_abs, t_a, t_b, dense, c_a, t_hi)
