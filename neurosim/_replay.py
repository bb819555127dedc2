r"""Gradients of the exact event loop by replaying its events (the adjoint pass).

The exact loop (`neurosim._per_neuron`) finds *which* events happen and *when*: it
predicts crossings, refines grazes, checks neurons and orders ties. None of that work
carries a derivative. Once the events are known, the spike times satisfy, spike by
spike,

$$ v_{i_k}(t_k;\ \theta,\ t_1, \dots, t_{k-1}) = v_\text{th}, $$

where $v_{i_k}$ is the closed form of the firing neuron from its last touch, which
depends on the parameters $\theta$ and on the earlier events that reached it. By the
implicit function theorem

$$ \frac{d t_k}{d\theta} = -\Big(\frac{\partial v}{\partial \theta}
    + \sum_{j<k} \frac{\partial v}{\partial t_j} \frac{d t_j}{d\theta}\Big)
    \Big/ \dot v(t_k). $$

So the loop runs forward without derivatives (its fastest form, compiled whole on a
CPU) and logs each event that changes a state: a spike (its slot in the spike buffer),
an input spike, a delayed delivery, a current jump, a record time. The replay then
walks that log once in a `lax.scan`, with the closed form only: it brings each touched
neuron to the event time, resets, jumps and reads it, exactly as the loop did, but
without predictions, checks or root finding. Every time is the loop's value plus a
*carrier*: a number whose value is zero and whose derivative is the time's, so the
replay's values are the loop's to the last bit and only its derivatives are new. A
spike's carrier is $-(v - v_\text{th})/\dot v$ with the slope held constant: one Newton
step, whose derivative is the one above.

Reverse-mode differentiation of the replay is EventProp (Wunderlich & Pehle 2021) in
closed form: between stored events the adjoint of each neuron is carried backward by
the transpose of the closed form, and jumped at each spike by the transpose of its
Newton step. Memory grows with the number of events (the carry at the start of each
chunk of `CHUNK` events; the backward pass recomputes a chunk's steps), not with loop
iterations; what the steps read (weights, delivery lists, the spike buffer) is kept
once. Because the replay is plain JAX code (a scan of closed forms), forward mode
(`jax.jvp`, `jax.jacfwd`) works too. It is wrapped in a custom JVP whose primal is
zero, so that a run that is not differentiated pays for the forward loop only, and
which carries tangents only for what is differentiated.

**Compiled whole** (`compiled_whole`, asked for with `gradients="whole"`). On XLA's CPU
backend each step of the replay is one call that XLA compiles into a single function
(`neurosim._cpu.one_kernel`), and so are its derivative and its transpose: reverse
mode's backward pass runs a function per step instead of a kernel per operation (the
value and gradient of a 100-neuron recurrent network in 21-24 ms instead of 34-45; its
forward run takes 6 ms). Such a function holds no scatter, also where reverse mode or
`vmap` would make one: what each log entry delivers (the connections' rows, the input
and record times) is gathered before the loop for all entries at once, records are put
out per step and written after it, and networks with delays or jumping currents (whose
steps read and write at positions known only in the loop) take the usual form, as do
other backends. It is not the default: XLA takes a reduction of 4096 entries or more out
of a function compiled whole (a library kernel such a function cannot call), and under
`jax.vmap` the batch multiplies every reduction of a step, also those reverse mode makes
where a value shared by the batch meets it. A batch of 35 Yin-Yang networks (120 hidden
neurons) failed to compile so, and from inside its `jit` the replay cannot see the batch
to avoid it. Batches gain nothing from the whole form anyway (stop 36's figures in
benchmarks/HISTORY.md).

**Scope** (`supported`). Projections that jump a synaptic current (the models'
`receive`, as every model of the family does), and currents that are constant or
piecewise constant. A projection that jumps `v` itself (a delta synapse) can lift a
neuron over threshold at once, or hold it above threshold while refractory: the spike
time is then an arrival time or a refractory end, not a crossing, and simultaneous
spikes are committed and resolved in waves. Such networks, and pulse-train currents
(jumps without a static bound), use the checkpointed loop, which differentiates the
loop itself.

**Ties.** A spike whose neuron was touched at the same instant by another spike's
delivery (simultaneous spikes) is a crossing at that instant, and gets the crossing's
derivative. A neuron that starts above threshold fires at `t0`: its spike time is
`t0`, and so is its derivative.
"""

import functools
import math

import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
from jax.ad_checkpoint import checkpoint_name
from jax.custom_derivatives import SymbolicZero

from ._cpu import REDUCE_LIMIT, compiles_whole, one_kernel, reduce
from ._currents import Constant, PiecewiseConstant, Sum

# Kinds of logged event.
NONE, SPIKE, INPUT, DELAY, JUMP, RECORD = 0, 1, 2, 3, 4, 5
CHUNK = 16  # log entries per chunk of the replay
BLOCK = 16  # chunks per block (an unused block is skipped whole)
LOG_FIELDS = ("kind", "a", "b", "cursor", "t", "t_lo", "emit")
_CHUNK_CARRY = "neurosim replay chunk carry"
_KEEP_CHUNK_CARRIES = jax.checkpoint_policies.save_only_these_names(_CHUNK_CARRY)


def _jump_bound(current):
    """An upper bound on the number of jumps of a current, or None (unbounded)."""
    if isinstance(current, Sum):
        bounds = [_jump_bound(term) for term in current.terms]
        return None if None in bounds else sum(bounds)
    if isinstance(current, Constant):
        return 0
    if isinstance(current, PiecewiseConstant):
        return int(current.times.shape[0])
    return None


def supported(system) -> bool:
    """Whether gradients of this (LIF-family) network come from the replay; else the
    checkpointed loop (see "Scope" in the module docstring)."""
    network = system.network
    if any(conn.target == "v" for conn in network.connections):
        return False
    return all(_jump_bound(pop.current) is not None for pop in network.populations.values())


def log_size(system, max_spikes, num_inputs, num_records, max_iterations) -> int:
    """How many events a run can log: every spike, input, record time and current
    jump, and every delayed delivery (one per spike and distinct delay of its row);
    at most one per loop iteration."""
    network = system.network
    size = max_spikes + num_inputs + num_records + 1
    for pop in network.populations.values():
        size += _jump_bound(pop.current)
    for conn in network.connections:
        if conn.delay is None or conn.pre not in network.populations:
            continue
        per_spike = conn.delay.shape[1] if conn.per_synapse_delay else 1
        size += max_spikes * per_spike
    return min(size, max_iterations)


# Where the replay is compiled whole, what each log entry delivers is gathered before
# the loop for every entry at once: at most this many bytes of it per run.
WHOLE_BYTES = 32 << 20
# The largest population (and connection row) whose steps are compiled whole: half of
# the entries from which XLA takes a reduction out of such a function
# (`_cpu.REDUCE_LIMIT`).
MAX_ROW = REDUCE_LIMIT // 2


def compiled_whole(system, log_length, dtype, record_bytes=0) -> bool:
    """Whether the replay's steps are compiled whole with their derivatives
    (`_cpu.one_kernel`): on XLA's CPU backend, for networks without delays (a delayed
    delivery reads and writes the carried spikes' carriers at positions known only in
    the loop, which reverse mode or `vmap` turns into scatters) and whose currents do
    not jump (the same for their values), where the deliveries gathered before the
    loop and the records put out per step (`record_bytes` per log entry) fit in
    `WHOLE_BYTES`."""
    from . import _per_neuron as pn

    network = system.network
    if not compiles_whole():
        return False
    # XLA's CPU backend hands a reduction of 4096 entries or more to a library kernel
    # that a function compiled whole cannot hold ("Fusion kind not implemented on
    # CPU"); reverse mode sums over a population wherever a scalar meets its neurons.
    sizes = [pop.n for pop in network.populations.values()]
    sizes += [conn.n_post for conn in network.connections]
    if max(sizes) > MAX_ROW:
        return False
    if any(conn.delay is not None for conn in network.connections):
        return False
    # The replay's own test of a current that jumps (its `jumping` populations).
    if not all(pn._constant(pop.current) for pop in network.populations.values()):
        return False
    itemsize = jnp.dtype(dtype).itemsize
    per_entry = sum(conn.n_post * (itemsize + 1) for conn in network.connections)
    return log_length * (per_entry + record_bytes) <= WHOLE_BYTES


def _padded(x, length):
    """`x` padded with zeros (`NONE` entries) to `length` along its first axis."""
    return jnp.pad(x, [(0, length - x.shape[0])] + [(0, 0)] * (x.ndim - 1))


def _stop_floats(tree):
    return jtu.tree_map(
        lambda x: lax.stop_gradient(x) if eqx.is_inexact_array(x) else x, tree
    )


def _symbolic_zero(x):
    return isinstance(x, SymbolicZero)


def _carrier(x):
    """`x - stop_gradient(x)`: zero, with the derivative of `x`."""
    return x - lax.stop_gradient(x)


def _keep(touched, new, old):
    return jnp.where(touched, new, old)


def _zeros_like(tree):
    """Zeros computed from the leaves (not constants of their shape), so that they
    are batched where the leaves are (a custom JVP under `vmap` needs its primal and
    tangent batched alike)."""
    return jtu.tree_map(lambda x: 0.0 * jnp.where(jnp.isfinite(x), x, 0.0), tree)


class _Replay(eqx.Module):
    """The replay's carry: per population the state at each neuron's last touch,
    that time (a pair, no derivative) and its carrier, and the current it sees; the
    carriers of the spikes so far where a delayed delivery reads them (else None: each
    step puts out its spike's carrier, written into the buffer after the scan); the
    record buffers; the populations' last current jumps; the carrier of the last
    event's time."""

    state: dict
    t_last: dict
    t_last_lo: dict
    c_last: dict
    current: dict
    spikes: jax.Array | None
    records: object
    jumped: dict
    c_event: jax.Array


def replay_carriers(
    system, t0, t1, y0, input_times, input_sources, record_times, *, out, log, whole
):
    """The carriers (zero values, the derivatives of the run) of the spike times, the
    final state and the records, from the forward run's output `out` and event
    `log`.

    Each step is one logged event, written over whole populations with elementwise
    operations (a neuron the event does not touch keeps its row): one closed form per
    population and step, no gather or scatter of rows, so that XLA fuses a step into
    few kernels. Its cost is O(N) per event. Where the weights are differentiated they
    are dense rows, and the forward loop's touch is O(N) too; for a network stored by
    its synapse lists it is not, and the replay's share grows with N (CUBA with 80
    targets per neuron, gradient with respect to the initial potentials: 18 times the
    forward run at 1000 neurons, 65 times at 4000). Touching only the neurons an event
    reaches would take gathers and scatters of rows, which a step compiled whole
    cannot hold."""
    from . import _per_neuron as pn

    network = system.network
    pops, names = network.populations, list(network.populations)
    connections = network.connections
    offsets = network.offsets
    input_offsets = system.input_offsets()
    dtype = jtu.tree_leaves(y0)[0].dtype
    delayed = [c for c, conn in enumerate(connections) if conn.delay is not None]
    jumping = [name for name in names if not pn._constant(pops[name].current)]
    zero = jnp.zeros((), dtype)
    t0 = jnp.asarray(t0, dtype)
    c_t0 = _carrier(t0)
    num_inputs, num_records = input_times.shape[0], record_times.shape[0]
    num_spikes = out.spike_times.shape[0]
    eps = jnp.finfo(dtype).eps
    # (the delay fields only where there are delays)
    log_fields = [field for field in LOG_FIELDS if field in log]
    record_bytes = sum(
        math.prod(buf.shape[1:]) * buf.dtype.itemsize
        for buf in jtu.tree_leaves(out.records)
    )
    whole = whole and compiled_whole(system, log["kind"].shape[0], dtype, record_bytes)

    def current_at(name, t):
        pop = pops[name]
        return jnp.broadcast_to(jnp.asarray(pop.current(t), dtype), (pop.n,))

    def forms(carry, t, t_lo):
        """Per population: its closed form from each neuron's last touch, and the
        elapsed times to `(t, t_lo)` (no derivative)."""
        result = {}
        for name in names:
            neuron = pops[name].neuron
            t_last, c_last = carry.t_last[name], carry.c_last[name]
            form = neuron.closed_form(
                carry.state[name],
                carry.current[name],
                t_last + c_last,
                carry.t_last_lo[name],
            )
            s = pn._elapsed(t, t_lo, t_last, carry.t_last_lo[name])
            result[name] = (form, s)
        return result

    def row_input(conn, row, on, mask=None):
        """What connection `conn` delivers from presynaptic `row` (where `on`), per
        postsynaptic neuron: the input, whether it is reached, and the carrier of
        each synapse's delay (per-synapse delays)."""
        n = conn.n_post
        row = jnp.clip(row, 0, conn.n_pre - 1)
        weight = conn.weight[row]
        reached = jnp.ones(weight.shape, bool) if mask is None else mask
        weight = jnp.where(reached, weight, 0.0)
        delay = None
        if conn.per_synapse_delay:
            delay = conn.delay[row]
            # Padded synapses hold an infinite delay: no carrier (inf - inf).
            delay = _carrier(jnp.where(jnp.isfinite(lax.stop_gradient(delay)), delay, 0.0))
            delay = jnp.where(reached, delay, 0.0)
        elif conn.delay is not None:
            delay = jnp.broadcast_to(_carrier(conn.delay), weight.shape)
        if conn.post_index is not None:
            targets = jnp.where(reached, conn.post_index[row], n)
            weight = jnp.zeros((n + 1,), dtype).at[targets].add(weight)[:n]
            if delay is not None:
                delay = jnp.zeros((n + 1,), dtype).at[targets].set(delay, mode="drop")[:n]
            reached = jnp.zeros((n + 1,), bool).at[targets].set(True)[:n]
        reached = reached & on
        return jnp.where(on, weight, 0.0), reached, delay

    def entry_terms(entry):
        """What a log entry brings that depends on the log alone, not on the carry:
        the neuron that fired, the carriers of the input and record times, and what
        each connection delivers (None where a connection has nothing to deliver)."""
        kind = entry["kind"]
        k = jnp.clip(entry["a"], 0, num_spikes - 1)
        terms = {"fired": out.spike_neurons[k], "c_input": zero, "c_record": zero}
        source = None
        if num_inputs:
            ptr = jnp.clip(entry["a"], 0, num_inputs - 1)
            terms["c_input"] = _carrier(input_times[ptr])
            source = input_sources[ptr]
        if num_records:
            rptr = jnp.clip(entry["a"], 0, num_records - 1)
            terms["c_record"] = _carrier(record_times[rptr])
        deliveries = []
        for c, conn in enumerate(connections):
            if conn.pre in pops and conn.delay is None:
                local = terms["fired"] - offsets[conn.pre]
                ok = (kind == SPIKE) & (local >= 0) & (local < conn.n_pre)
                deliveries.append(row_input(conn, local, ok))
            elif conn.pre in pops:
                position = delayed.index(c)
                ok = (kind == DELAY) & (entry["a"] == position)
                row = jnp.clip(entry["b"], 0, conn.n_pre - 1)
                mask = None
                if conn.per_synapse_delay:
                    row_delays = lax.stop_gradient(conn.delay[row])
                    width = row_delays.shape[0]
                    at_delay = row_delays[jnp.clip(entry["cursor"], 0, width - 1)]
                    mask = row_delays == at_delay
                deliveries.append(row_input(conn, row, ok, mask))
            elif num_inputs:
                local = source - input_offsets[conn.pre]
                ok = (kind == INPUT) & (local >= 0) & (local < conn.n_pre)
                x, reached, _ = row_input(conn, local, ok)
                deliveries.append((x, reached, None))
            else:
                deliveries.append(None)
        terms["deliveries"] = deliveries
        return terms

    def step_body(carry, entry):
        kind, t, t_lo = entry["kind"], entry["t"], entry["t_lo"]
        is_spike, is_input = kind == SPIKE, kind == INPUT
        is_delay, is_jump, is_record = kind == DELAY, kind == JUMP, kind == RECORD
        at = forms(carry, t, t_lo)
        # Gathered before the loop where it is compiled whole, else here.
        terms = entry["terms"] if "terms" in entry else entry_terms(entry)

        # The event's time carrier.
        k = jnp.clip(entry["a"], 0, out.spike_times.shape[0] - 1)
        fired_global = terms["fired"]
        fired, c_fire = {}, zero
        for name in names:
            form, s = at[name]
            pop, n = pops[name], pops[name].n
            local = fired_global - offsets[name]
            fired[name] = is_spike & (jnp.arange(n) == local)
            if not pop.neuron.spiking:
                continue
            c_last = carry.c_last[name]
            # v at the spike time as a function of everything but the spike time; one
            # Newton step with the slope held constant.
            f = form.voltage(s - c_last) - pop.neuron.v_th
            f_value = lax.stop_gradient(f)
            slope = lax.stop_gradient(form.slope(s))
            scale = jnp.maximum(jnp.abs(lax.stop_gradient(pop.neuron.v_th)), 1.0)
            due = (s <= 0) & (f_value > 64 * eps * scale)
            crossing = ~due & (slope > 0)
            c_cross = -(f - f_value) / jnp.where(crossing, slope, 1.0)
            c_here = jnp.where(crossing, c_cross, jnp.where(due, c_last, 0.0))
            c_fire = c_fire + reduce(jnp.add, jnp.where(fired[name], c_here, 0.0), 0.0)
        c_input, c_record = terms["c_input"], terms["c_record"]
        # A delayed delivery: the carrier of the spike that emitted it.
        c_emit = zero
        for position, c in enumerate(delayed):
            conn = connections[c]
            row = jnp.clip(entry["b"], 0, conn.n_pre - 1)
            match = (out.spike_neurons == offsets[conn.pre] + row) & (
                out.spike_times == entry["emit"]
            )
            mine = is_delay & (entry["a"] == position)
            c_emit = c_emit + jnp.where(mine, carry.spikes[jnp.argmax(match)], 0.0)
        jumps, jumped = {}, dict(carry.jumped)
        c_jump = zero
        for name in jumping:
            t_next = jnp.asarray(pops[name].current.next_jump(carry.jumped[name]), dtype)
            now = is_jump & (lax.stop_gradient(t_next) <= t)
            jumps[name] = now
            c_jump = c_jump + jnp.where(now, _carrier(t_next), 0.0)
            jumped[name] = jnp.where(now, lax.stop_gradient(t_next), carry.jumped[name])
        c_event = jnp.select(
            [is_spike, is_input, is_delay, is_jump, is_record],
            [c_fire, c_input, c_emit, c_jump, c_record],
            zero,
        )

        # What each connection delivers, per postsynaptic population.
        inputs = {name: [] for name in names}
        for conn, delivery in zip(connections, terms["deliveries"]):
            if delivery is not None:
                inputs[conn.post].append((conn, *delivery))

        # Every population: touched neurons brought to the event time, reset, jumped.
        state, t_last, t_last_lo = (
            dict(carry.state),
            dict(carry.t_last),
            dict(carry.t_last_lo),
        )
        c_last, current = dict(carry.c_last), dict(carry.current)
        for name in names:
            pop, n = pops[name], pops[name].n
            form, s = at[name]
            touched = fired[name]
            c_now = jnp.broadcast_to(c_event, (n,))
            for _, _, reached, delay in inputs[name]:
                touched = touched | reached
                if delay is not None:
                    c_now = jnp.where(reached, c_event + delay, c_now)
            if name in jumps:
                touched = touched | jumps[name]
            new = form.at(jnp.where(touched, s, 0.0) + (c_now - carry.c_last[name]))
            if pop.neuron.spiking:
                new = pop.neuron.reset(t + c_now, new, fired[name])
            for conn, x, _, _ in inputs[name]:
                new = pn._jump(pop.neuron, new, x, conn.target)
            keep = functools.partial(_keep, touched)
            state[name] = jtu.tree_map(keep, new, carry.state[name])
            t_last[name] = keep(t, carry.t_last[name])
            t_last_lo[name] = keep(t_lo, carry.t_last_lo[name])
            c_last[name] = keep(c_now, carry.c_last[name])
            if name in jumps:
                current[name] = jnp.where(
                    jumps[name], current_at(name, t + c_event), carry.current[name]
                )

        records, recorded = carry.records, None
        if num_records:
            read = {
                name: at[name][0].at(at[name][1] + (c_record - carry.c_last[name]))
                for name in names
            }
            values = system.observe(read)
            if whole:  # put out, and written into the buffers after the loop
                recorded = values
            else:
                rptr = jnp.clip(entry["a"], 0, num_records - 1)
                records = jtu.tree_map(
                    lambda buf, value: buf.at[rptr].set(
                        jnp.where(is_record, value, buf[rptr])
                    ),
                    carry.records,
                    values,
                )
        slot = jnp.where(is_spike, k, num_spikes)
        spikes = carry.spikes
        if spikes is not None:
            spikes = spikes.at[slot].set(c_fire, mode="drop")
        new = _Replay(
            state=state,
            t_last=t_last,
            t_last_lo=t_last_lo,
            c_last=c_last,
            current=current,
            spikes=spikes,
            records=records,
            jumped=jumped,
            c_event=jnp.where(kind == NONE, carry.c_event, c_event),
        )
        return new, (slot.astype(jnp.int32), c_fire, recorded)

    def skipped(shape):
        """What unused steps put out: no spike slot (dropped), no carrier, no record."""
        recorded = None
        if whole and num_records:
            recorded = jtu.tree_map(
                lambda buf: jnp.zeros(shape + buf.shape[1:], buf.dtype), out.records
            )
        return jnp.full(shape, num_spikes, jnp.int32), jnp.zeros(shape, dtype), recorded

    # Where the replay is compiled whole, each step is one function (forward,
    # derivative and transpose alike) instead of a kernel per operation.
    body = one_kernel(step_body, differentiable=True) if whole else step_body

    def step(carry, entry):
        # Under `vmap`, a step is taken when any run has an event there (the others
        # keep their carry: every change is masked by the event's kind).
        used = eqxi.unvmap_any(entry["kind"] != NONE)
        return lax.cond(used, body, lambda c, e: (c, skipped(())), carry, entry)

    init = _Replay(
        state={name: y0[name] for name in names},
        t_last={name: jnp.full((pops[name].n,), t0) for name in names},
        t_last_lo={name: jnp.zeros((pops[name].n,), dtype) for name in names},
        c_last={name: jnp.broadcast_to(c_t0, (pops[name].n,)) for name in names},
        current={name: current_at(name, t0) for name in names},
        spikes=_zeros_like(out.spike_times) if delayed else None,
        records=None if whole else _zeros_like(out.records),
        jumped={name: lax.stop_gradient(t0) for name in jumping},
        c_event=c_t0,
    )
    # The log ends in unused entries (its size is a bound): it is walked in blocks of
    # chunks, and a block or chunk that starts unused is skipped whole.
    size = log["kind"].shape[0]
    shape = (-(-size // (CHUNK * BLOCK)), BLOCK, CHUNK)

    # Reverse mode keeps what a checkpoint takes in, and a `lax.cond` hands on to the
    # loop around it whatever its branches keep. So each `cond` is inside its
    # checkpoint: the values the steps close over (weights, delivery lists, the spike
    # buffer) are then inputs of the loops, kept once, not once per chunk (a
    # 1000-neuron network's dense weights were kept 256 times, 1 GiB).
    @jax.checkpoint
    def chunk(carry, entries):
        # Reverse mode keeps a chunk's starting carry, not every step's intermediate
        # values (a skipped chunk would store them as zeros): its backward pass
        # computes the chunk's steps again.
        used = eqxi.unvmap_any(entries["kind"][0] != NONE)
        return lax.cond(
            used,
            lambda c: lax.scan(step, c, entries),
            lambda c: (c, skipped((CHUNK,))),
            carry,
        )

    # A block keeps its chunks' starting carries (named), nothing else: it is not
    # computed again before its chunks are.
    @functools.partial(jax.checkpoint, policy=_KEEP_CHUNK_CARRIES)
    def block(carry, entries):
        # Unused blocks of chunks are skipped whole: a skipped iteration costs
        # microseconds forward and backward, and most of the log can be unused.
        used = eqxi.unvmap_any(entries["kind"][0, 0] != NONE)
        return lax.cond(
            used,
            lambda c: lax.scan(
                lambda c, e: chunk(checkpoint_name(c, _CHUNK_CARRY), e), c, entries
            ),
            lambda c: (c, skipped((BLOCK, CHUNK))),
            carry,
        )

    flat = {field: _padded(log[field], math.prod(shape)) for field in log_fields}
    if whole:  # what each entry delivers, gathered for all entries at once
        flat["terms"] = jax.vmap(entry_terms)(flat)
    entries = jtu.tree_map(lambda x: x.reshape(shape + x.shape[1:]), flat)
    final, (slots, fired, recorded) = lax.scan(block, init, entries)
    records = _zeros_like(out.records) if whole else final.records
    if whole and num_records:
        # Each record entry's values into its row of the buffers.
        rows = jnp.where(
            entries["kind"] == RECORD,
            jnp.clip(entries["a"], 0, num_records - 1),
            num_records,
        ).ravel()
        records = jtu.tree_map(
            lambda buf, values: (
                jnp.zeros_like(buf)
                .at[rows]
                .set(values.reshape((-1,) + buf.shape[1:]), mode="drop")
            ),
            out.records,
            recorded,
        )
    # Each spike's carrier, from the step that logged it (a slot is logged once).
    spikes = (
        jnp.zeros((num_spikes,), dtype).at[slots.ravel()].set(fired.ravel(), mode="drop")
    )
    # The end: at t1 when finished, else at the last event.
    t1 = jnp.asarray(t1, dtype)
    done = out.t_final == lax.stop_gradient(t1)
    last = jnp.maximum(log["count"] - 1, 0)
    at_last = (log["t"][last] == out.t_final) & (log["count"] > 0)
    c_final = jnp.where(done, _carrier(t1), jnp.where(at_last, final.c_event, 0.0))
    at = forms(final, out.t_final, log["t_final_lo"])
    final_state = {
        name: at[name][0].at(at[name][1] + (c_final - final.c_last[name])) for name in names
    }
    final_state = jtu.tree_map(_carrier, final_state)
    records = jtu.tree_map(_carrier, records)
    return spikes, final_state, records


def apply(output, system, t0, t1, y0, input_times, input_sources, record_times, log, whole):
    """The forward run's `output` with the replay's derivatives attached: each is
    added as a carrier (zero) from a custom JVP whose primal costs nothing, so that the
    replay runs only when the run is differentiated (forward or reverse mode)."""
    # Floating-point arrays may carry derivatives; other arrays (indices) are passed
    # as arguments too (a custom JVP cannot close over traced values).
    args = (system, t0, t1, y0, input_times, input_sources, record_times)
    diff, rest = eqx.partition(args, eqx.is_inexact_array)
    arrays, static = eqx.partition(rest, eqx.is_array)
    fixed = (arrays, output, log)

    def replay(diff, fixed):
        arrays, output, log = fixed
        return replay_carriers(
            *eqx.combine(diff, arrays, static), out=output, log=log, whole=whole
        )

    @jax.custom_jvp
    def carriers(diff, fixed):
        output = fixed[1]
        return _zeros_like((output.spike_times, output.final_state, output.records))

    @functools.partial(carriers.defjvp, symbolic_zeros=True)
    def _carriers_jvp(primals, tangents):
        diff, fixed = primals
        tangent, _ = tangents
        # Only what is differentiated moves; the rest (the weights, where the gradient
        # is taken with respect to parameters of the neurons alone) stays a constant
        # of the replay, with no tangent to carry through its steps.
        moves = jtu.tree_map(
            lambda t: not _symbolic_zero(t), tangent, is_leaf=_symbolic_zero
        )
        moving, still = eqx.partition(diff, moves)
        tangent = eqx.filter(tangent, moves, is_leaf=_symbolic_zero)
        return jax.jvp(
            lambda moving: replay(eqx.combine(moving, still), fixed), (moving,), (tangent,)
        )

    spikes, final_state, records = carriers(diff, _stop_floats(fixed))
    add = lambda a, b: a + b  # noqa: E731
    return eqx.tree_at(
        lambda o: (o.spike_times, o.final_state, o.records),
        output,
        (
            output.spike_times + spikes,
            jtu.tree_map(add, output.final_state, final_state),
            jtu.tree_map(add, output.records, records),
        ),
    )
