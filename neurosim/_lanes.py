"""A population whose neurons never reach each other, each on its own clock at once.

With per-neuron clocks (`clocks="neuron"`), a population that receives no spikes (no
projection into it, no input spikes) and drives nobody (no projection out of it) is a
set of independent neurons: a parameter sweep, say (a constant or piecewise-constant
current of its own for each). The event loop would still take
its events one at a time, each advancing and predicting one neuron by a sequence of
solver steps. Here every neuron is a lane of one loop instead: each iteration takes one
step of the lean stepper (`neurosim._clock.Lean`: the solver's own step, diffrax's I
controller) in every lane, each lane at its own time and with its own step size, so an
iteration costs one vectorised step whatever the number of neurons. A lane stops

- at an upward crossing of its spike condition, located as the event loop's
  predictions locate it (on the dense output, then corrected by real steps): the spike
  goes into the buffer, the model's `reset` applies, and the lane starts again there;
  a lane whose condition is still positive fires again at the same time;
- at its next record time (the state before any event at that time), at a jump of
  its current (piecewise constant: constants, `Step`, `PiecewiseConstant`,
  `PulseTrain` and their sums; the new value applies from the jump), at its next
  scheduled change (`next_scheduled_time`, `apply_scheduled`: the end of a refractory
  period), and at the end of the run.

Spikes are written to one buffer of `max_spikes` entries as the lanes find them, out
of order, and sorted at the end (by time, then neuron). When the buffer fills, or the
loop reaches `max_iterations`, every lane has reached at least the time `t_stop` of
the slowest one, so the spikes before `t_stop` are all known: the lanes are run once
more from the start to `t_stop` (the same steps, so the same spikes), which gives the
states and records at that time, as the event loop would have stopped there. A lane
whose state goes non-finite or that runs out of steps stops the run at once, the
other lanes where they are.

Spike times and states are those of the event loop's per-neuron clocks with the same
solver and tolerances (the same steps from each touch, since nothing else touches the
neuron), to rounding; tests/test_clocks.py compares them.
"""

import equinox.internal as eqxi
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu

from . import _clock, _engine, _per_neuron
from ._currents import PiecewiseConstant, Sum
from ._engine import RunOutput

# Crossings located per iteration (at most); lanes that cross beyond it take their step
# again in the next iteration.
CROSSINGS_PER_ITERATION = 32


def applies(system, input_times, clock, gradients) -> bool:
    """Whether the run is one population of independent neurons that the lanes can
    take: per-neuron clocks on a model solved by ODE (not the closed form) with the lean
    stepper, a forward run, no projections, no input spikes, a piecewise-constant
    current, a model that does not disarm on a spike."""
    network = system.network
    if clock is None or gradients is not False or not _clock.lean(clock):
        return False
    if len(network.populations) != 1 or network.connections or input_times.shape[0]:
        return False
    (pop,) = network.populations.values()
    ode = clock.everywhere or not _per_neuron.closed_form(pop.neuron)
    return (
        pop.neuron.spiking
        and not pop.neuron.disarms_on_spike
        and ode
        and _per_neuron._piecewise_constant(pop.current)
    )


def _lane_values(current, t, n):
    """A piecewise-constant current's value for each lane `i` at its own time `t[i]`
    (right-continuous: at a jump, the new value)."""
    if isinstance(current, Sum):
        return sum(_lane_values(term, t, n) for term in current.terms)
    if isinstance(current, PiecewiseConstant):
        k = jnp.searchsorted(current.times, t, side="right")
        values = current.values
        return values[k] if values.ndim == 1 else values[k, jnp.arange(n)]
    # Constant and PulseTrain are elementwise in time.
    return jnp.broadcast_to(current(t), (n,))


class _Lanes:
    """The population's pieces that a pass of the lanes needs."""

    def __init__(self, clock, neuron, n, current, dtype, record_times, max_spikes):
        mask = _clock.per_neuron_mask(neuron, n)
        self.lean = _clock.Lean(clock, neuron, mask, dtype)
        self.n, self.dtype = n, dtype
        self.current = current
        self.record_times = record_times
        self.max_spikes = max_spikes
        self.max_steps = clock.max_steps

    def single(self, batched):
        return _clock._single(batched, self.lean.rest)

    def reset(self, t, y):
        def one(batched, t, y):
            state = jtu.tree_map(_clock._one, y)
            return _clock._first(self.single(batched).reset(t, state, jnp.ones((1,), bool)))

        return jax.vmap(one)(self.lean.batched, t, y)

    def scheduled_time(self, y):
        def one(batched, y):
            time = self.single(batched).next_scheduled_time(jtu.tree_map(_clock._one, y))
            return jnp.asarray(time, self.dtype)

        return jax.vmap(one)(self.lean.batched, y)

    def apply_scheduled(self, t, y):
        def one(batched, t, y):
            state = jtu.tree_map(_clock._one, y)
            return _clock._first(self.single(batched).apply_scheduled(t, state))

        return jax.vmap(one)(self.lean.batched, t, y)

    def next_record(self, ptr):
        count = self.record_times.shape[0]
        if not count:
            return jnp.full(ptr.shape, jnp.inf, self.dtype)
        time = self.record_times[jnp.minimum(ptr, count - 1)]
        return jnp.where(ptr < count, time, jnp.inf)

    def start(self, carry, restart, t, t_lo, y, t_end, first=False):
        """Lanes `restart` start again at the time pair `(t, t_lo)` in state `y`: a
        fresh solver state and first step, their spike condition there (positive:
        due, they fire before stepping) and their next stop (record, scheduled change
        or the end of the pass). The first step is estimated at the start of a pass
        (`first`); later, lanes keep their step size (after a reset too: the
        controller grows it by up to 10x a step)."""
        lean = self.lean
        zero = jnp.zeros_like(t)
        # The current from here on (right-continuous), constant to its next jump.
        current = _lane_values(self.current, t, self.n).astype(self.dtype)
        state, f = lean.init(current, t, y, jnp.full_like(t, 1e-3))
        stop = jnp.minimum(self.next_record(carry["r_ptr"]), t_end)
        stop = jnp.minimum(stop, self.scheduled_time(y))
        stop = jnp.minimum(stop, jax.vmap(self.current.next_jump)(t).astype(self.dtype))
        new = dict(carry)
        updates = dict(
            tb=t,
            tb_lo=t_lo,
            s=zero,
            y=y,
            state=state,
            h=lean.first_step(y, f) if first else carry["h"],
            c=lean.condition(current, t, zero, y),
            m=lean.slope(current, t, zero, y, f),
            current=current,
            stop=stop,
            stop_s=(stop - t) - t_lo,
            seg_steps=jnp.zeros_like(carry["seg_steps"]),
        )
        for key, value in updates.items():
            new[key] = _clock.leafwise_where(restart, value, carry[key])
        return new

    def body(self, carry):
        lean, current, n = self.lean, carry["current"], self.n
        # Under `jax.vmap` the loop runs while any run of the batch does; the others
        # stay as they are.
        live = ~carry["done"] & (carry["status"] == _engine.RUNNING)
        at_stop = live & (carry["s"] >= carry["stop_s"])
        due = live & ~at_stop & (carry["c"] > 0)
        stepping = live & ~at_stop & ~due
        tb, tb_lo, s, y = carry["tb"], carry["tb_lo"], carry["s"], carry["y"]

        # One step in the lanes that step.
        h = jnp.where(stepping, jnp.minimum(carry["h"], carry["stop_s"] - s), 0.0)
        last = h >= carry["stop_s"] - s
        s1 = jnp.where(last, carry["stop_s"], s + h)
        y1, error, dense, state1 = lean.step(current, tb, s, s1, y, carry["state"])
        accept, finite, factor = lean.control(stepping, y, y1, error)
        c1 = lean.condition(current, tb, s1, y1)
        m1 = lean.end_slope(current, tb, s1, y1, state1)
        crossed, t_hi = lean.crossed(
            current, tb, s, s1, carry["c"], c1, dense, accept, carry["m"], m1
        )
        # The crossings of at most CROSSINGS_PER_ITERATION lanes are located; the
        # others take the same step again next time.
        k = min(n, CROSSINGS_PER_ITERATION)
        (chosen,) = jnp.nonzero(crossed, size=k, fill_value=n)
        taken = jnp.zeros((n,), bool).at[chosen].set(True, mode="drop")
        retry = crossed & ~taken
        crossed = crossed & taken
        accept = accept & ~retry
        pick = lambda tree: jtu.tree_map(lambda x: x.at[chosen].get(mode="clip"), tree)  # noqa: E731
        root, y_root = lean.at(chosen).crossing(
            pick(current), pick(tb), pick(s), pick(s1), pick(carry["c"]), pick(y),
            pick(carry["state"]), pick(dense), jnp.ones((k,), bool), at=True,
            t_hi=pick(t_hi),
        )  # fmt: skip
        put = lambda full, part: jtu.tree_map(  # noqa: E731
            lambda a, b: a.at[chosen].set(b, mode="drop"), full, part
        )
        s_fire = jnp.where(due, 0.0, put(s1, root))
        y_fire = _clock.leafwise_where(due, y, put(y1, y_root))

        # Spikes: into the buffer (those before the end of the pass), then the reset.
        fires = due | crossed
        t_fire, t_fire_lo = _per_neuron._later(tb, tb_lo, s_fire)
        inside = fires & (t_fire < carry["t_end"])
        position = carry["count"] + jnp.cumsum(inside, dtype=jnp.int32) - 1
        kept = inside & (position < self.max_spikes)
        slot = jnp.where(kept, position, self.max_spikes)
        spike_times = carry["spike_times"].at[slot].set(t_fire, mode="drop")
        spike_neurons = (
            carry["spike_neurons"].at[slot].set(jnp.arange(n, dtype=jnp.int32), mode="drop")
        )
        overflow = jnp.any(inside & (position >= self.max_spikes))
        y_reset = self.reset(t_fire, y_fire)

        # Stops: record (the state before any event then), scheduled change, end.
        stop = carry["stop"]
        recording = at_stop & (self.next_record(carry["r_ptr"]) == stop)
        records = carry["records"]
        if self.record_times.shape[0]:
            rows = jnp.where(recording, carry["r_ptr"], self.record_times.shape[0])
            records = jtu.tree_map(
                lambda buf, leaf: buf.at[rows, jnp.arange(n)].set(leaf, mode="drop"),
                records,
                y,
            )
        r_ptr = carry["r_ptr"] + recording.astype(jnp.int32)
        y_stop = self.apply_scheduled(stop, y)
        ended = at_stop & ~recording & (stop >= carry["t_end"])

        new = dict(carry)
        new.update(
            s=jnp.where(accept, s1, s),
            y=_clock.leafwise_where(accept, y1, y),
            state=_clock.leafwise_where(accept, state1, carry["state"]),
            c=jnp.where(accept, c1, carry["c"]),
            m=jnp.where(accept, m1, carry["m"]),
            h=jnp.where(stepping & ~retry, h * factor, carry["h"]),
            steps=carry["steps"] + jnp.sum(accept, dtype=jnp.int32),
            seg_steps=carry["seg_steps"] + stepping.astype(jnp.int32),
            spike_times=spike_times,
            spike_neurons=spike_neurons,
            count=jnp.minimum(
                carry["count"] + jnp.sum(inside, dtype=jnp.int32), self.max_spikes
            ),
            records=records,
            r_ptr=r_ptr,
            done=carry["done"] | ended,
            iterations=carry["iterations"] + jnp.any(live).astype(jnp.int32),
        )
        restart_stop = at_stop & ~ended
        restart = fires | restart_stop
        t_new = jnp.where(fires, t_fire, stop)
        t_new_lo = jnp.where(fires, t_fire_lo, 0.0)
        y_new = _clock.leafwise_where(fires, y_reset, y_stop)
        new = self.start(new, restart, t_new, t_new_lo, y_new, carry["t_end"])
        failed = stepping & ~finite
        exhausted = new["seg_steps"] > self.max_steps
        status = carry["status"]
        status = jnp.where(overflow, _engine.OVERFLOW, status)
        status = jnp.where(jnp.any(exhausted), _engine.SOLVER_FAILED, status)
        status = jnp.where(jnp.any(failed), _engine.NONFINITE, status)
        status = jnp.where(
            (status == _engine.RUNNING) & (new["iterations"] >= carry["limit"]),
            _engine.ITERATION_LIMIT,
            status,
        )
        # A failed lane keeps its non-finite state, where the fault is located.
        new["y"] = _clock.leafwise_where(failed, y1, new["y"])
        new["status"] = jnp.where(jnp.all(new["done"]), _engine.FINISHED, status)
        new["status"] = jnp.where(status != _engine.RUNNING, status, new["status"])
        return new

    def run_pass(self, y0, t0, t_end, limit, active=True):
        """The lanes from `t0` to `t_end` (or until the run stops); nothing happens
        where not `active`."""
        n, dtype = self.n, self.dtype
        t = jnp.full((n,), t0, dtype)
        zeros = jnp.zeros((n,), dtype)
        num = self.record_times.shape[0]
        current = _lane_values(self.current, t, n).astype(dtype)
        state0, _ = self.lean.init(current, t, y0, jnp.full((n,), 1e-3, dtype), False)
        carry = dict(
            tb=t,
            tb_lo=zeros,
            s=zeros,
            y=y0,
            state=state0,
            h=zeros,
            c=zeros,
            m=zeros,
            current=current,
            stop=zeros,
            stop_s=zeros,
            seg_steps=jnp.zeros((n,), jnp.int32),
            r_ptr=jnp.zeros((n,), jnp.int32),
            steps=jnp.zeros((), jnp.int32),
            spike_times=jnp.full((self.max_spikes,), jnp.inf, dtype),
            spike_neurons=jnp.full((self.max_spikes,), -1, jnp.int32),
            count=jnp.zeros((), jnp.int32),
            records=jtu.tree_map(
                lambda leaf: jnp.full((num,) + leaf.shape, jnp.nan, leaf.dtype), y0
            ),
            done=jnp.zeros((n,), bool),
            iterations=jnp.zeros((), jnp.int32),
            status=jnp.where(active, _engine.RUNNING, _engine.FINISHED).astype(jnp.int32),
            t_end=jnp.asarray(t_end, dtype),
            limit=jnp.asarray(limit, jnp.int32),
        )
        everyone = jnp.ones((n,), bool)
        carry = self.start(carry, everyone, t, zeros, y0, carry["t_end"], first=True)
        # A predicate that is not batched: under `jax.vmap` a batched one would make
        # every iteration select between the old and new carry (the spike buffer too).
        return lax.while_loop(
            lambda c: eqxi.unvmap_any(c["status"] == _engine.RUNNING), self.body, carry
        )


def run(
    system, *, t0, t1, y0, input_times, input_sources, record_times, max_spikes,
    max_iterations, clock,
):  # fmt: skip
    """The population's neurons as lanes (see the module docstring); the engine's
    `RunOutput`."""
    ((name, pop),) = system.network.populations.items()
    dtype = jtu.tree_leaves(y0)[0].dtype
    lanes = _Lanes(clock, pop.neuron, pop.n, pop.current, dtype, record_times, max_spikes)
    y0 = y0[name]

    def again(status):
        return (status == _engine.OVERFLOW) | (status == _engine.ITERATION_LIMIT)

    # A second pass only where the first stopped at the buffer or the iteration limit
    # (traced once: a loop of at most two passes).
    def cond(carry):
        k, _, first_status, _, _ = carry
        return (k == 0) | ((k == 1) & eqxi.unvmap_any(again(first_status)))

    def body(carry):
        k, previous, first_status, first_iterations, reached = carry
        first = k == 0
        t_end = jnp.where(first, t1, reached)
        limit = jnp.where(first, max_iterations, 2 * max_iterations + 2)
        active = first | again(first_status)
        out = lanes.run_pass(y0, t0, t_end, limit, active)
        out = jtu.tree_map(lambda new, old: jnp.where(active, new, old), out, previous)
        # Every lane has reached at least the slowest one's time.
        slowest = jnp.min(jnp.where(out["done"], t_end, out["tb"] + out["s"]))
        return (
            k + 1,
            out,
            jnp.where(first, out["status"], first_status),
            jnp.where(first, out["iterations"], first_iterations),
            jnp.where(first, slowest, reached),
        )

    shapes = jax.eval_shape(lambda: lanes.run_pass(y0, t0, t1, max_iterations))
    empty = jtu.tree_map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)
    zero = jnp.zeros((), jnp.int32)
    init = (zero, empty, zero, zero, jnp.asarray(t1, dtype))
    k, final, status, first_iterations, reached = lax.while_loop(cond, body, init)
    t_final = jnp.where(status == _engine.FINISHED, t1, reached)
    order = jnp.lexsort((final["spike_neurons"], final["spike_times"]))
    times = final["spike_times"][order]
    iterations = first_iterations + jnp.where(again(status), final["iterations"], 0)
    return RunOutput(
        t_final=t_final,
        final_state={name: final["y"]},
        armed=jnp.ones((pop.n,), bool),
        spike_times=times,
        spike_neurons=final["spike_neurons"][order],
        num_spikes=jnp.sum(jnp.isfinite(times)).astype(jnp.int32),
        records=system.observe({name: final["records"]}),
        status=status,
        iterations=iterations,
        solver_steps=final["steps"],
    )
