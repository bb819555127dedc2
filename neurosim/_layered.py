r"""Layered first spikes: feed-forward networks of fire-once LIF neurons without an
event loop (`simulate(..., exact="layered")`).

In a network whose projections form a directed acyclic graph over its populations,
and whose neurons fire at most once in `[t0, t1]` (a refractory period at least
`t1 - t0` long), the spikes a population receives are known once the populations
before it are done: the external input spikes and the first spikes of its sources.
So the populations are computed one after another in topological order, each in one
vectorised pass over its neurons:

- every arrival (an input spike, or a presynaptic first spike plus the projection's
  delay) is a row of a dense `(K, n)` block of times and weights (`inf` and 0 where a
  synapse is absent, a source silent or the arrival after `t1`), sorted per neuron;
- a scan over the `K` rows brings each neuron from one arrival to the next with the
  closed form (`_per_neuron._advance`) and adds the weights: the state at the start of
  each of the `K + 1` segments between arrivals;
- each neuron walks its segments in order, searching each for a threshold crossing
  before the segment's end with the event loop's own predictor
  (`_per_neuron._predict`, its checks included), and stops at the first: all neurons
  of the population at once, one prediction each per round. Segments where `v`
  provably stays below threshold (a bound from the segment's ends) are skipped, so a
  neuron receiving 120 arrivals is predicted a few times, not 121.

So the spike times are those of the exact event loop (the same closed form, the same
predictor and the same order of events at equal times: arrivals before a crossing),
to rounding. Derivatives come from plain automatic differentiation: the search runs
without derivatives, then the last prediction of the segment that fired is made
again from the differentiable state, where the root carries its implicit-function
derivative, as in the event loop. The states at record times and at `t1` come from
the same segments (after a spike a neuron is held at its reset value, its synaptic
currents keep receiving input).

`check` says why a network does not qualify; `run` returns the engine's `RunOutput`.
"""

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from ._checks import is_concrete
from ._engine import FINISHED, NONFINITE, RunOutput
from ._per_neuron import (
    SPIKE,
    _advance,
    _constant,
    _elapsed,
    _finest,
    _predict,
    forward_bound,
    horizon_cap,
    newton_step,
)
from ._system import _jump
from .neurons.lif import _Linear

# Indices that are in bounds by construction: no bounds checks in the gathers.
_IN = "promise_in_bounds"
_FIX = "Pass exact=True (the event loop) or exact=None for this network."


def _refuse(problem: str, fix: str = _FIX) -> ValueError:
    return ValueError(f'simulate: exact="layered" {problem}. {fix}')


def order(network) -> list[str]:
    """The populations in topological order of the projections between them, or a
    ValueError naming a projection that closes a cycle."""
    pops = network.populations
    edges = {name: [] for name in pops}
    for conn in network.connections:
        if conn.pre in pops:
            if conn.pre == conn.post:
                raise _refuse(
                    f"needs a feed-forward network, but the projection {conn.pre!r} -> "
                    f"{conn.post!r} is recurrent"
                )
            edges[conn.pre].append(conn.post)
    done, visiting, out = set(), [], []

    def visit(name):
        if name in done:
            return
        if name in visiting:
            cycle = visiting[visiting.index(name) :] + [name]
            raise _refuse(
                "needs a feed-forward network, but the projections "
                + " -> ".join(repr(p) for p in cycle)
                + " form a cycle"
            )
        visiting.append(name)
        for post in edges[name]:
            visit(post)
        visiting.pop()
        done.add(name)
        out.append(name)

    for name in pops:
        visit(name)
    return out[::-1]


def check(network, t0, t1, max_spikes: int) -> list:
    """Refuse (ValueError, naming the reason) a network the layered path does not
    cover; returns the checks of traced values as `(bad, message)`."""
    deferred = []
    for name, pop in network.populations.items():
        neuron = pop.neuron
        if not (isinstance(neuron, _Linear) and neuron.has_closed_form()):
            raise _refuse(
                f"needs populations of the LIF family (LIF, CubaLIF, LI); population "
                f"{name!r} is a {type(neuron).__name__}"
            )
        if not _constant(pop.current):
            raise _refuse(
                f"needs constant currents; population {name!r} has a "
                f"{type(pop.current).__name__}",
                "Pass a constant current, or exact=True for a stepped one.",
            )
        if not neuron.spiking:
            continue
        t_ref = neuron.t_ref
        message = (
            f"computes first spikes only: every neuron must fire at most once, but "
            f"population {name!r} has t_ref shorter than t1 - t0"
        )
        fix = "Set t_ref >= t1 - t0 (e.g. t_ref=1e4), or pass exact=True."
        if is_concrete((t_ref, t0, t1)):
            shortest = float(np.min(np.asarray(t_ref)))
            if shortest < float(t1) - float(t0):
                raise _refuse(
                    f"{message} ({shortest} ms < {float(t1) - float(t0)} ms)", fix
                )
        else:
            deferred.append(
                (jnp.any(t_ref < t1 - t0), f'simulate: exact="layered" {message}. {fix}')
            )
    order(network)
    for conn in network.connections:
        where = f"Projection {conn.pre!r} -> {conn.post!r}"
        fields = network.populations[conn.post].neuron.synapse_fields
        if conn.target is not None and conn.target not in fields:
            raise _refuse(
                f"takes synapses onto synaptic currents only; {where} targets "
                f"{conn.target!r} (delta synapses are not covered)"
            )
        if conn.per_synapse_delay and is_concrete(conn.post_index):
            rows = np.sort(np.asarray(conn.post_index), axis=1)
            if np.any((rows[:, 1:] == rows[:, :-1]) & (rows[:, 1:] < conn.n_post)):
                raise _refuse(_twice(conn))
    spiking = sum(p.n for p in network.populations.values() if p.neuron.spiking)
    if max_spikes < spiking:
        raise _refuse(
            f"needs room for every neuron's spike: max_spikes={max_spikes} is less than "
            f"the {spiking} neurons that can fire",
            f"Pass max_spikes={spiking}.",
        )
    return deferred


def _twice(conn) -> str:
    return (
        f"needs one synapse per neuron pair with per-synapse delays; Projection "
        f"{conn.pre!r} -> {conn.post!r} connects a pair twice"
    )


def _per_element(neuron, shape):
    """`neuron` with every array parameter broadcast to `shape` and flattened: the
    predictor then samples each element over its own horizon."""

    def spread(leaf):
        if eqx.is_array(leaf):
            return jnp.broadcast_to(leaf, shape).reshape(-1)
        return leaf

    return jtu.tree_map(spread, neuron)


def _arrivals(network, name, first, t1, dtype):
    """The arrivals at population `name`: `(times, weights)`, a `(K, n)` block of
    times sorted per neuron (`inf`: none) and per target field a `(K, n)` block of
    weights, from the inputs and the first spikes `first` of the populations before."""
    n = network.populations[name].n
    times, blocks = [], []
    for conn in network.connections:
        if conn.post != name:
            continue
        if conn.pre in network.inputs:
            source = network.inputs[conn.pre]
            emitted, rows = jnp.asarray(source.times, dtype), source.sources
        else:
            emitted, rows = first[conn.pre], jnp.arange(conn.n_pre)
        delay = 0.0
        if conn.delay is not None:
            delay = conn.delay[rows] if conn.per_synapse_delay else conn.delay
        at = emitted[:, None] + delay
        weight = conn.weight[rows]
        if conn.post_index is None:
            block_t = at  # (rows, 1), or (rows, n) with per-synapse delays
            block_w = weight
        else:
            post = conn.post_index[rows]
            line = jnp.arange(rows.shape[0])[:, None]
            block_w = jnp.zeros((rows.shape[0], n), dtype)
            block_w = block_w.at[line, post].add(weight, mode="drop")
            if conn.per_synapse_delay:
                at = jnp.broadcast_to(at, post.shape)
                block_t = jnp.full((rows.shape[0], n), jnp.inf, dtype)
                block_t = block_t.at[line, post].set(at, mode="drop")
                # Indices traced (delays being differentiated): checked when it runs.
                count = jnp.zeros((rows.shape[0], n), jnp.int32)
                count = count.at[line, post].add(1, mode="drop")
                message = f'simulate: exact="layered" {_twice(conn)}. {_FIX}'
                block_t = eqx.error_if(block_t, jnp.any(count > 1), message)
            else:
                hit = jnp.zeros((rows.shape[0], n), bool)
                hit = hit.at[line, post].set(True, mode="drop")
                block_t = jnp.where(hit, at, jnp.inf)
        times.append(block_t.astype(dtype))
        blocks.append((conn.target, block_w.astype(dtype)))
    if not times:
        return jnp.zeros((0, n), dtype), {}
    # Where every block's times are the same for all neurons (dense projections
    # without per-synapse delays: one column), one sort of the arrivals serves every
    # neuron: the same order as sorting each column (a stable sort). XLA's CPU sort
    # costs about as much per column as per entry: sorting the (5, 120) and (121, 3)
    # blocks of the Yin-Yang batch took half of its forward run.
    shared = all(block.shape[1] == 1 for block in times)
    times = jnp.concatenate(
        times if shared else [jnp.broadcast_to(b, (b.shape[0], n)) for b in times]
    )
    # Arrivals after t1 never come (nor do NaN ones: the run's checks refuse them).
    times = jnp.where(times <= t1, times, jnp.inf)
    weights = {}
    start = 0
    for target, block in blocks:
        full = jnp.zeros((times.shape[0], n), dtype)
        full = lax.dynamic_update_slice(full, block, (start, 0))
        weights[target] = weights.get(target, 0.0) + full
        start += block.shape[0]
    sort = jnp.argsort(lax.stop_gradient(times), axis=0, stable=True)
    times = jnp.broadcast_to(
        jnp.take_along_axis(times, sort, axis=0, mode=_IN), (times.shape[0], n)
    )
    sort = jnp.broadcast_to(sort, times.shape)
    weights = {
        k: jnp.take_along_axis(w, sort, axis=0, mode=_IN) for k, w in weights.items()
    }
    return times, weights


class _Population:
    """One population computed from its arrivals: the state at the start of each
    segment between arrivals, its first spikes, and its state at any time."""

    def __init__(self, neuron, state0, current, t0, t1, times, weights, cap):
        self.neuron, self.current, self.t0, self.t1 = neuron, current, t0, t1
        self.times = times
        n = state0.v.shape[0]
        start0 = jnp.broadcast_to(t0, (n,)).astype(times.dtype)

        def step(carry, row):
            state, t_last = carry
            at, jumps = row
            arrived = jnp.isfinite(at)
            at = jnp.where(arrived, at, t_last)
            state = _advance(neuron, state, current, t_last, 0.0, at, 0.0)
            for target, w in jumps.items():
                state = _jump(neuron, state, jnp.where(arrived, w, 0.0), target)
            return (state, at), (state, at)

        _, (states, starts) = lax.scan(step, (state0, start0), (times, weights))
        self.states = jtu.tree_map(
            lambda first, rest: jnp.concatenate([first[None], rest]), state0, states
        )
        self.starts = jnp.concatenate([start0[None], starts])
        self.rounds = jnp.zeros((), jnp.int32)
        if neuron.spiking:
            self.spikes, self.after = self._first_spikes(cap)
        else:
            self.spikes, self.after = jnp.full((n,), jnp.inf, times.dtype), None

    def _candidates(self, neuron, current, states, starts, ends, live):
        """Per segment (flattened), whether it can hold a crossing: every segment but
        those where `v` provably stays at or below threshold. With `G` the synaptic
        drive, which moves monotonically between its values at the segment's ends,
        `v` moves towards `v_inf + G <= high = v_inf + max G`: by comparison with
        `w' = (high - w) / tau_m` from `v(start)`, it stays below
        `max(v(start), high + (v(start) - high) exp(-length / tau_m))`
        (`forward_bound`, also the loop's), far below `high` on segments short against
        `tau_m` (many arrivals close together).
        The test keeps a margin of rounding (it only skips work: a kept segment is
        searched as before), and keeps refractory neurons and those without leak."""
        form = neuron.closed_form(states, current, starts, jnp.zeros_like(starts))
        length = ends - starts
        drives = [
            (g, g * jnp.exp(-length / tau))
            for g, tau in zip(form.g, form.taus, strict=True)
        ]
        scale = jnp.abs(form.v_inf) + jnp.abs(form.state.v)
        for g in form.g:
            scale = scale + jnp.abs(g)
        theta = neuron.v_th
        margin = 64 * jnp.finfo(starts.dtype).eps * (scale + jnp.abs(theta))
        ratio = jnp.exp(-length / form.tau_m)
        below = forward_bound(form.v_inf, drives, form.state.v, ratio) <= theta - margin
        return live & ((form.r > 0) | jnp.isinf(form.tau_m) | ~below)

    def _search(self, cap):
        """Per neuron (without derivatives): the first segment that holds a crossing
        by the event loop's predictor, and the start and horizon of the prediction
        that finds it (the segment's start, or its last check).

        Each neuron walks its segments in order, one prediction per round (a check
        moves within the segment, a prediction past its end moves to the next
        segment that can hold a crossing, `_candidates`), and stops at its first
        crossing: the work grows with the neurons, not with neurons times segments."""
        stop = lax.stop_gradient
        segments, n = self.starts.shape
        shape = (segments, n)
        flat_neuron = _per_element(stop(self.neuron), shape)
        neuron = _per_element(stop(self.neuron), (n,))
        current = jnp.broadcast_to(stop(self.current), (n,))
        states = jtu.tree_map(stop, self.states)
        starts = stop(self.starts)
        arrived = jnp.isfinite(self.times)
        t1 = jnp.broadcast_to(stop(self.t1), (1, n))
        ends = jnp.concatenate([jnp.where(arrived, stop(self.times), t1), t1])
        # The last segment ends at t1, which a crossing may reach; others end at an
        # arrival, which comes first at equal times.
        closed = jnp.concatenate([~arrived, jnp.ones((1, n), bool)])
        live = jnp.concatenate([jnp.ones((1, n), bool), arrived])
        candidate = self._candidates(
            flat_neuron,
            jnp.broadcast_to(stop(self.current), shape).reshape(-1),
            jtu.tree_map(lambda x: x.reshape(-1), states),
            starts.reshape(-1),
            ends.reshape(-1),
            live.reshape(-1),
        ).reshape(shape)
        # The first candidate segment at or after each segment (`segments`: none).
        index = jnp.arange(segments, dtype=jnp.int32)[:, None]
        following = lax.cummin(jnp.where(candidate, index, segments), axis=0, reverse=True)
        following = jnp.concatenate([following, jnp.full((1, n), segments, jnp.int32)])
        # A segment is searched over its own length (not beyond the next arrival, where
        # the neuron is predicted again), within the loop's bounds on a horizon.
        h0 = jnp.clip(jnp.where(live, ends - starts, cap), _finest(starts, cap), cap)

        def at(x, segment):
            clipped = jnp.minimum(segment, segments - 1)[None]
            return jnp.take_along_axis(x, clipped, axis=0, mode=_IN)[0]

        def cond(c):
            return jnp.any(~c["done"])

        def body(c):
            segment, active = c["segment"], ~c["done"]
            state, start = (
                jtu.tree_map(lambda x: at(x, segment), states),
                at(starts, segment),
            )
            end, shut = at(ends, segment), at(closed, segment)
            zero = jnp.zeros_like(start)
            state = _advance(neuron, state, current, start, zero, c["t"], c["t_lo"])
            key, key_lo, kind, h = _predict(
                neuron, state, current, c["t"], c["t_lo"], c["h"], cap
            )
            before = (key < end) | (shut & (key == end))
            spike = active & (kind == SPIKE) & before
            moves = active & (kind != SPIKE) & before
            leaves = active & ~before
            nxt = jnp.where(
                leaves, at(following, jnp.minimum(segment + 1, segments)), segment
            )
            nxt = jnp.where(leaves & (segment + 1 >= segments), segments, nxt)
            return dict(
                segment=nxt,
                t=jnp.where(moves, key, jnp.where(leaves, at(starts, nxt), c["t"])),
                t_lo=jnp.where(moves, key_lo, jnp.where(leaves, 0.0, c["t_lo"])),
                h=jnp.where(moves, h, jnp.where(leaves, at(h0, nxt), c["h"])),
                moved=jnp.where(leaves, False, c["moved"] | moves),
                done=c["done"] | spike | (leaves & (nxt >= segments)),
                found=c["found"] | spike,
                key=jnp.where(spike, key, c["key"]),
                key_lo=jnp.where(spike, key_lo, c["key_lo"]),
                rounds=c["rounds"] + 1,
            )

        first = following[0]
        init = dict(
            segment=first,
            t=at(starts, first),
            t_lo=jnp.zeros((n,), starts.dtype),
            h=at(h0, first),
            moved=jnp.zeros((n,), bool),
            done=first >= segments,
            found=jnp.zeros((n,), bool),
            key=jnp.full((n,), jnp.inf, starts.dtype),
            key_lo=jnp.zeros((n,), starts.dtype),
            rounds=jnp.zeros((), jnp.int32),
        )
        out = lax.while_loop(cond, body, init)
        self.rounds = out.pop("rounds")
        return out

    def _first_spikes(self, cap):
        """The first spike of each neuron (`inf`: none) with its derivatives, and
        the state just after it (reset, refractory)."""
        stop = lax.stop_gradient
        found = self._search(cap)
        fired = found["found"]
        segment = jnp.minimum(found["segment"], self.starts.shape[0] - 1)[None]

        def pick(x):
            return jnp.take_along_axis(x, segment, axis=0, mode=_IN)[0]

        neuron, current = self.neuron, self.current
        state, start = jtu.tree_map(pick, self.states), pick(self.starts)
        # The prediction that found the spike started at the segment's start (an
        # arrival, with the derivative of the spike or input that made it) or at its
        # last check (a time without derivative, as in the event loop).
        moved = found["moved"]
        t = jnp.where(moved, stop(found["t"]), start)
        t_lo = jnp.where(moved, found["t_lo"], 0.0)
        key, key_lo = found["key"], found["key_lo"]
        state = _advance(neuron, state, current, start, 0.0, t, t_lo)
        # Its derivative, as `_predict` gives it: due at `t` (no time elapsed), held
        # above threshold until the end of a refractory period, or a crossing (the
        # implicit function theorem at the root).
        full = neuron.closed_form(state, current, t, t_lo)
        local = stop(_elapsed(key, key_lo, t, t_lo))
        held = (full.r > 0) & (state.v > neuron.v_th)
        crossing = fired & ~held & (local > 0)
        form = jtu.tree_map(stop, full)
        local = newton_step(full, form, neuron.v_th, local, crossing)
        exact = t + jnp.where(held, full.r, local)
        # The search's value (as the event loop stores it), this derivative.
        spike = jnp.where(fired, stop(key) + (exact - stop(exact)), jnp.inf)
        at = jnp.where(fired, spike, t)
        at_lo = jnp.where(fired, key_lo, t_lo)
        state = _advance(neuron, state, current, t, t_lo, at, at_lo)
        return spike, neuron.reset(at, state, fired)

    def state_at(self, t, left: bool):
        """The state at `t`: the left limit (before the events at `t`) or after
        them."""
        arrived = self.times < t if left else self.times <= t
        segment = jnp.sum(arrived, axis=0)[None]

        def pick(x):
            return jnp.take_along_axis(x, segment, axis=0, mode=_IN)[0]

        state = jtu.tree_map(pick, self.states)
        start = pick(self.starts)
        state = _advance(self.neuron, state, self.current, start, 0.0, t, 0.0)
        if self.after is None:
            return state
        fired = self.spikes < t if left else self.spikes <= t
        # After its spike a neuron is held at its reset value (refractory through t1);
        # its synaptic currents keep decaying and receiving input.
        held = [
            f for f in state.__dataclass_fields__ if f not in self.neuron.synapse_fields
        ]
        return eqx.tree_at(
            lambda s: [getattr(s, f) for f in held],
            state,
            [jnp.where(fired, getattr(self.after, f), getattr(state, f)) for f in held],
        )


def run(system, *, t0, t1, y0, record_times, max_spikes: int, until=None) -> RunOutput:
    """First spikes, records and final states of a qualifying network (see `check`),
    population by population in topological order (pure; call it under jit).
    `until` (`simulate`'s `until_fired`): the neurons whose first spikes end the run,
    or None; the run then ends at the last of them (spikes after it dropped, the
    final state there, records after it NaN), as the event loop does."""
    network = system.network
    pops = network.populations
    dtype = jtu.tree_leaves(y0)[0].dtype
    t0, t1 = jnp.asarray(t0, dtype), jnp.asarray(t1, dtype)
    cap = horizon_cap(network, dtype)
    done, first = {}, {}
    for name in order(network):
        pop = pops[name]
        times, weights = _arrivals(network, name, first, t1, dtype)
        current = jnp.broadcast_to(jnp.asarray(pop.current(t0), dtype), (pop.n,))
        layer = _Population(pop.neuron, y0[name], current, t0, t1, times, weights, cap)
        done[name], first[name] = layer, layer.spikes
    spikes = jnp.concatenate([first[name] for name in pops])
    t_end = t1
    if until is not None:
        named = spikes[np.flatnonzero(until.array)]
        t_end = jnp.where(jnp.all(jnp.isfinite(named)), jnp.max(named), t1)
        spikes = jnp.where(spikes <= t_end, spikes, jnp.inf)
    final = {name: done[name].state_at(t_end, left=False) for name in pops}

    def observe(t):
        return system.observe({name: done[name].state_at(t, left=True) for name in pops})

    if record_times.shape[0]:
        records = jax.vmap(observe)(record_times)
        if until is not None:
            after = record_times > t_end
            records = jtu.tree_map(
                lambda r: jnp.where(after.reshape((-1,) + (1,) * (r.ndim - 1)), jnp.nan, r),
                records,
            )
    else:
        records = jtu.tree_map(
            lambda x: jnp.zeros((0,) + x.shape, x.dtype), system.observe(final)
        )
    neurons = jnp.arange(spikes.shape[0], dtype=jnp.int32)
    sort = jnp.argsort(lax.stop_gradient(spikes), stable=True)
    spikes, neurons = spikes[sort], neurons[sort]
    fired = jnp.isfinite(spikes)
    pad = max_spikes - spikes.shape[0]
    spikes = jnp.pad(spikes, (0, pad), constant_values=jnp.inf)
    neurons = jnp.pad(jnp.where(fired, neurons, -1), (0, pad), constant_values=-1)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jtu.tree_leaves(final)]))
    return RunOutput(
        t_final=t_end,
        final_state=final,
        armed=jnp.ones((system.num_neurons,), bool),
        spike_times=spikes,
        spike_neurons=neurons,
        num_spikes=jnp.sum(fired).astype(jnp.int32),
        records=records,
        status=jnp.where(finite, FINISHED, NONFINITE).astype(jnp.int32),
        iterations=sum(layer.rounds for layer in done.values()),
        solver_steps=jnp.zeros((), jnp.int32),
    )
