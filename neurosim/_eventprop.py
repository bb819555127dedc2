r"""Gradients of the exact event loop by its adjoint (EventProp), written out.

`simulate(..., gradients="eventprop")`. The exact loop (`neurosim._per_neuron`) runs
forward without derivatives and logs its events, as for `gradients=True`; reverse mode
then walks the log once backward with the adjoint of the LIF family's closed form
(Wunderlich & Pehle 2021), instead of differentiating a replay of the events
(`neurosim._replay`). An event costs the work of the neurons it reaches (its firing
neuron and the targets of its rows), not a pass over whole populations.

**The adjoint.** Between events a neuron's state $x = (v, g_1, \dots, g_K)$ (the
membrane potential and its synaptic currents) evolves as $\dot x = A x + c$, with the
flow $\Phi(s)$ of the closed form: $v$ decays with $\tau_m$ and each $g_k$ with
$\tau_k$, feeding $v$ through $\kappa_k(s) = (e^{-s/\tau_k} - e^{-s/\tau_m})
\tau_k / (\tau_k - \tau_m)$. Each neuron keeps its adjoint $\lambda$ (the derivative of
the loss with respect to its state) at an *anchor* time, and reading it at an earlier
time $t$ is $\Phi(s - t)^\top \lambda$: nothing moves between the events that touch it.

- *A jump* $\Delta x$ of a target at a presynaptic spike at $t_k$ (additive: $\lambda$
  is the same on both sides) gives the weight its derivative
  $\lambda(t_k)^\top \partial \Delta x / \partial w$, and the spike time the term
  $-\lambda(t_k)^\top A\, \Delta x$ (the jump a little later changes everything after
  it by $\Phi A \Delta x$).
- *The reset* of the firing neuron ($v^+ = R v^- + r$; $R = 0$ for a hard reset, 1 for
  a soft one), after which `v` is held for `t_ref` ms: the spike time gets
  $\lambda_v(t_k^+)\,R\,\dot v^-$ from the reset, and
  $-\lambda_v(t_e)\,\dot v_\text{free}(t_e)$ from the end $t_e = t_k + t_\text{ref}$
  of the hold it moves (with `t_ref = 0` the two make $\lambda_v (R \dot v^- - \dot
  v^+)$). With $G$ the spike time's whole derivative (the loss's own, the targets'
  and these), the implicit function theorem on $v(t_k) = v_\text{th}$ gives
  $\lambda_v(t_k^-) = R \lambda_v(t_k^+) - G / \dot v^-$; the synaptic currents pass.
  Through a hold, $\lambda_v$ passes unchanged and the currents no longer feed `v`.
  The slopes need the firing neuron's synaptic currents at $t_k$ and at $t_e$: one
  pass forward over the log computes them first (each neuron keeps its currents at
  its last touch).
- *Parameters.* The threshold: a crossing comes $1 / \dot v^-$ later per unit of
  `v_th`, which gives it $G / \dot v^-$ (and $-\lambda_v(t_k^+)$ from a soft reset).
  The reset potential: $\lambda_v(t_k^+)$ per spike. The refractory period: the end
  of the hold, $-\lambda_v(t_e)\,\dot v_\text{free}(t_e)$ (at `t_ref = 0`, the
  derivative from the right). The drive $v_\text{leak} + I$ enters $\dot v$ with
  $1/\tau_m$; between a neuron's anchors $\lambda_v$ decays with $\tau_m$, so a free
  stretch of $s$ ms before an anchor adds $\lambda_v (1 - e^{-s/\tau_m})$ to it
  (nothing while `v` is held). Where a current jumps, every neuron of its population
  is re-anchored at each jump (a pass over the population per jump), so that between
  anchors the current is constant and its values get the stretches' sums. An input
  spike's time gets its targets' $-\lambda^\top A\,\Delta x$, as a spike's does.
- *Time constants* move the flow itself: their derivative is
  $\sum \lambda^\top \partial_\tau \Phi\, x$ over the stretches between the events
  that touch a neuron, which needs the states along the way. Those are sums of what
  the initial state, the jumps, the resets and the drive put in, carried linearly by
  the flow, so each neuron carries instead, per time constant differentiated, a
  second adjoint $\mu$ read like $\lambda$: $\mu(t) = \Phi^\top \mu(s) +
  \partial_\tau (\Phi^\top \lambda(s))$ (a `jax.jvp` of the transpose's closed form,
  smooth through $\tau_k = \tau_m$), passed by jumps and scaled by $R$ at a reset.
  Each of those terms gives $\mu^\top$ its size where it enters. The walk carries
  $\mu$ only for the time constants a run differentiates.
- *Delays*: a delayed delivery's time is its spike's plus the delay, so what moving
  it gives (its targets' $-\lambda^\top A\,\Delta x$) goes to the delay (per
  synapse, each its own) and, kept per spike slot until the walk reaches that spike,
  to the spike's time. The emitting slot of each delivery is found once, by a binary
  search within its neuron's spikes.
- *Records*: the loss's derivatives with respect to the states recorded at a time
  are added to the adjoints there (every neuron of the recorded populations is
  re-anchored: a pass over them per record time). Those of `ref_end` (the end of a
  refractory period, in records or the final state) are refused.
- The walk starts from the loss's derivative with respect to the final state (at the
  run's end) and ends at `t0` with the derivative with respect to the initial state.

The gradient is the same as `gradients=True` gives (tests/test_eventprop.py: random
networks against the replay, and finite differences), but for `t_ref` at 0, where
the replay, with no hold to differentiate, gives 0; a spike that appears or
vanishes is handled as there (the gradient of the spikes the run produced).

**Scope** (`unsupported` names what is outside it). Populations of the LIF family
with a closed form (`LIF`, `CubaLIF`, `LI`), refractory periods included, constant or
piecewise-constant currents, projections that jump a synaptic current, external input
spikes, synaptic delays (scalar or per synapse), record times (a loss of the
recorded states), runs ended by `until_fired` (the end moves with the spike that
completes the population, and the final state with it: that spike's time gets the
final state's velocity times its derivatives); no delta synapses. Derivatives with
respect to the connection weights (input weights included) and delays, every neuron
parameter
(`tau_mem`, the synaptic time constants, `v_th`, `v_reset`, `v_leak`, `t_ref`), the
currents' values (not the jump times of a `PiecewiseConstant` or `Step`), the input
spike times and the initial states' `v` and synaptic currents (the refractory flag
gets zeros); differentiating anything else (a current's jump times, the end of a
refractory period in the initial state) raises an error that names it. Reverse mode
only (`jax.grad`, `jax.vjp`; a `jax.custom_vjp`): forward mode (`jax.jvp`,
`jax.jacfwd`) needs `gradients=True`.
"""

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
from jax.custom_derivatives import SymbolicZero

from . import _cpu, _replay
from . import _per_neuron as pn
from ._currents import PiecewiseConstant
from ._system import _jump
from .neurons._linear import synaptic_kernel


def unsupported(network) -> str | None:
    """Why `gradients="eventprop"` cannot differentiate this run (None: it can)."""
    for name, pop in network.populations.items():
        neuron = pop.neuron
        if not pn.closed_form(neuron) or not hasattr(neuron, "synapse_fields"):
            return f"population {name!r}: {type(neuron).__name__} has no closed form"
        if (
            not pn._piecewise_constant(pop.current)
            or _replay._jump_bound(pop.current) is None
        ):
            return f"population {name!r}: its current is not piecewise constant"
    for conn in network.connections:
        owner = f"projection {conn.pre!r} -> {conn.post!r}"
        if conn.target == "v":
            return f"{owner}: it jumps `v` itself (a delta synapse)"
    return None


# The neuron parameters besides the time constants that the adjoint differentiates,
# where a population's neuron has them: the threshold and reset (at each spike), the
# resting potential (along the free flow), the refractory period (the hold's end).
NEURON_PARAMETERS = ("v_th", "v_reset", "v_leak", "t_ref")


def time_constants(neuron) -> tuple[str, ...]:
    """The names of `neuron`'s time constants: the membrane's and its synapses'."""
    return ("tau_mem", *type(neuron)._synapse_taus)


def _current_mask(current):
    """True for `current`'s leaves, except the jump times of piecewise-constant terms
    (the adjoint does not move them)."""
    mask = jtu.tree_map(lambda _: True, current)
    return jtu.tree_map(
        lambda node, m: (
            eqx.tree_at(lambda p: p.times, m, False)
            if isinstance(node, PiecewiseConstant)
            else m
        ),
        current,
        mask,
        is_leaf=lambda x: isinstance(x, PiecewiseConstant),
    )


def _parameters(network, name):
    """The names of `NEURON_PARAMETERS` that population `name`'s neuron has, and its
    time constants."""
    neuron = network.populations[name].neuron
    own = tuple(p for p in NEURON_PARAMETERS if hasattr(neuron, p))
    return own + time_constants(neuron)


def _allowed(args):
    """A mask over `args` = (system, t0, t1, y0, input_times, ...): the leaves the
    adjoint differentiates (the connections' weights, the neurons' `NEURON_PARAMETERS`,
    the currents' values, the initial state and the input spike times)."""
    mask = jtu.tree_map(lambda _: False, args)
    network = args[0].network
    system_mask = mask[0]
    for name, pop in network.populations.items():
        params = _parameters(network, name)
        system_mask = eqx.tree_at(
            lambda s, name=name, params=params: (
                *(getattr(s.network.populations[name].neuron, p) for p in params),
                s.network.populations[name].current,
            ),
            system_mask,
            (*(True for _ in params), _current_mask(pop.current)),
        )
    # The run reads the input spike times from the merged array (`input_times`), not
    # from the network's inputs: their derivatives there are zeros.
    system_mask = eqx.tree_at(
        lambda s: s.network.inputs,
        system_mask,
        jtu.tree_map(lambda _: True, system_mask.network.inputs),
    )
    if network.connections:
        system_mask = eqx.tree_at(
            lambda s: [conn.weight for conn in s.network.connections],
            system_mask,
            [True] * len(network.connections),
        )
    delayed = [c for c, conn in enumerate(network.connections) if conn.delay is not None]
    if delayed:
        system_mask = eqx.tree_at(
            lambda s: [s.network.connections[c].delay for c in delayed],
            system_mask,
            [True] * len(delayed),
        )
    # Not the end of a refractory period the initial state holds.
    y0_mask = {
        name: eqx.tree_at(lambda s: s.ref_end, jtu.tree_map(lambda _: True, y), False)
        if hasattr(y, "ref_end")
        else jtu.tree_map(lambda _: True, y)
        for name, y in args[3].items()
    }
    inputs_mask = jtu.tree_map(lambda _: True, args[4])
    return (system_mask, *mask[1:3], y0_mask, inputs_mask, *mask[5:])


def _flow_transpose(neuron, lam, free, held=None):
    """`lam` (dict field -> lanes) read earlier than its anchor: `free` ms of the free
    flow's transpose, then `held` ms of a refractory hold's (`v` held: its adjoint
    passes, the currents decay and no longer feed it)."""
    fields, taus = neuron.synapse_fields, neuron.synapse_time_constants()
    tau_m = neuron.tau_mem
    lam_v = lam["v"]
    out = {"v": jnp.exp(-free / tau_m) * lam_v}
    for field, tau in zip(fields, taus, strict=True):
        kappa = (free / tau_m) * synaptic_kernel(free, tau_m, tau)
        out[field] = kappa * lam_v + jnp.exp(-free / tau) * lam[field]
        if held is not None:
            out[field] = jnp.exp(-held / tau) * out[field]
    return out


def _jumps(neuron, conn, weight):
    """The jump of each synaptic field that the weights `weight` (per lane) make: a
    dict field -> lanes."""
    fields = ("v", *neuron.synapse_fields)
    zeros = jnp.zeros_like(weight)
    state = neuron.init_state(weight.shape[0])
    state = eqx.tree_at(
        lambda s: tuple(getattr(s, f) for f in fields), state, (zeros,) * len(fields)
    )
    jumped = _jump(neuron, state, weight, conn.target)
    return {f: getattr(jumped, f) for f in fields}


def _velocity_coupling(neuron, lam, jump, held):
    """`lam^T A jump` per lane (`A`: the closed form's matrix; the row of `v` zero
    where `held`, in a refractory period)."""
    coupling = jnp.where(held, 0.0, lam["v"] / neuron.tau_mem)
    out = -jump["v"] * coupling
    taus = neuron.synapse_time_constants()
    for field, tau in zip(neuron.synapse_fields, taus, strict=True):
        out = out + jump[field] * (coupling - lam[field] / tau)
    return out


def _rows(conn, row, n_post):
    """The targets of presynaptic `row` of `conn` (`n_post` pads)."""
    if conn.post_index is None:
        return jnp.arange(n_post, dtype=jnp.int32)
    return conn.post_index[row]


def _sources(system, conn, position, entry, log_src, spike_neurons):
    """Whether log entry `entry` (its fields at one index) delivers through `conn`
    (`position`: its place among the delayed connections, None where it has no
    delay), its row, and which of the row's synapses (None: all; per-synapse delays
    deliver the synapses of one delay at a time)."""
    network, kind, a = system.network, entry["kind"], entry["a"]
    mask = None
    if position is not None:
        local = entry["b"]
        ok = (kind == _replay.DELAY) & (a == position)
        row = jnp.clip(local, 0, conn.n_pre - 1)
        if conn.per_synapse_delay:
            delays = lax.stop_gradient(conn.delay[row])
            at = delays[jnp.clip(entry["cursor"], 0, delays.shape[0] - 1)]
            mask = delays == at
        return ok, row, mask
    if conn.pre in network.populations:
        local = spike_neurons[a] - network.offsets[conn.pre]
        ok = (kind == _replay.SPIKE) & (local >= 0) & (local < conn.n_pre)
    else:
        local = log_src[a] - system.input_offsets()[conn.pre]
        ok = (kind == _replay.INPUT) & (local >= 0) & (local < conn.n_pre)
    return ok, jnp.clip(local, 0, conn.n_pre - 1), mask


def _positions(conns):
    """Each connection's place among the delayed ones (None: no delay)."""
    delayed = [c for c, conn in enumerate(conns) if conn.delay is not None]
    return [delayed.index(c) if c in delayed else None for c in range(len(conns))]


def _entry(log, e):
    return {k: log[k][e] for k in ("kind", "a", "b", "cursor") if k in log}


def _emitting_slots(system, out, log):
    """For each log entry that is a delayed delivery, the spike slot that emitted it
    (the spike of its row's neuron at its emission time; slots are in time order,
    each neuron's too): a binary search within each neuron's spikes."""
    network, conns = system.network, system.network.connections
    positions = _positions(conns)
    offsets = [
        network.offsets[conn.pre]
        for conn, p in zip(conns, positions, strict=True)
        if p is not None
    ]
    if not offsets:
        return None
    neuron = jnp.asarray(offsets, jnp.int32)[jnp.clip(log["a"], 0, len(offsets) - 1)]
    neuron = neuron + log["b"]
    order = jnp.argsort(out.spike_neurons, stable=True)
    by_neuron = out.spike_neurons[order]
    times = out.spike_times[order]
    lo = jnp.searchsorted(by_neuron, neuron, side="left")
    hi = jnp.searchsorted(by_neuron, neuron, side="right")
    for _ in range(max(1, int(out.spike_times.shape[0]).bit_length())):
        mid = (lo + hi) // 2
        right = (lo < hi) & (times[jnp.clip(mid, 0, times.shape[0] - 1)] < log["emit"])
        lo, hi = jnp.where(right, mid + 1, lo), jnp.where(right, hi, mid)
    return order[jnp.clip(lo, 0, order.shape[0] - 1)]


def _walk(system, out, log):
    """What both walks over the log read: the network, its populations and
    connections, the number of log entries, the spike buffer's size and the dtype."""
    network = system.network
    return (
        network,
        network.populations,
        network.connections,
        log["count"],
        out.spike_times.shape[0],
        out.spike_times.dtype,
    )


def _sum_at(neuron, fields, g, anchor, time):
    """The summed synaptic currents of lanes at `time` (their values `g` at `anchor`)."""
    total = jnp.zeros_like(anchor)
    for f, tau in zip(fields, neuron.synapse_time_constants(), strict=True):
        total = total + g[f] * jnp.exp(-(time - anchor) / tau)
    return total


def _refractory(neuron):
    return getattr(neuron, "t_ref", jnp.zeros(()))


def _forward_pass(system, t0, y0, input_sources, out, log):
    """Pass forward over the log for what the adjoint reads of the states, per spike
    slot: the firing neuron's summed synaptic currents at its spike (`at_spike`) and
    at the end of its refractory period (`at_end`, where that end came before the
    run's: `ended`), and the end of the neuron's previous refractory period
    (`before`: the hold in force before the spike; -inf where none); per population,
    the end of each neuron's last refractory period (`hold`). Each neuron keeps its
    currents at its last touch; a refractory end is read at the first touch after
    it."""
    network, pops, conns, count, num_spikes, dtype = _walk(system, out, log)
    positions = _positions(conns)
    inf = jnp.asarray(jnp.inf, dtype)
    per_slot = dict(
        at_spike=jnp.zeros((num_spikes,), dtype),
        at_end=jnp.zeros((num_spikes,), dtype),
        ended=jnp.zeros((num_spikes,), bool),
        before=jnp.full((num_spikes,), -inf, dtype),
    )
    state = {}
    for name, pop in pops.items():
        y = y0[name]
        held = getattr(y, "refractory", jnp.zeros((pop.n,), dtype)) > 0
        ref_end = getattr(y, "ref_end", jnp.zeros((pop.n,), dtype))
        state[name] = dict(
            g={f: getattr(y, f) for f in pop.neuron.synapse_fields},
            anchor=jnp.full((pop.n,), t0, dtype),
            hold=jnp.where(held, ref_end, -inf),
            pending=jnp.full((pop.n,), -1, jnp.int32),
        )

    def resolve(name, st, slots, idx, valid, time):
        """Lanes `idx` touched at `time`: a pending refractory end at or before it is
        read now (the currents there, from the lane's last touch)."""
        pop = pops[name]
        safe = jnp.clip(idx, 0, pop.n - 1)
        neuron = pn._take(pop.neuron, safe, pop.n)
        pending, hold = st["pending"][safe], st["hold"][safe]
        due = valid & (pending >= 0) & (hold <= time)
        g = {f: st["g"][f][safe] for f in pop.neuron.synapse_fields}
        total = _sum_at(neuron, pop.neuron.synapse_fields, g, st["anchor"][safe], hold)
        where = jnp.where(due, pending, num_spikes)
        slots = dict(
            slots,
            at_end=slots["at_end"].at[where].set(total, mode="drop"),
            ended=slots["ended"].at[where].set(True, mode="drop"),
        )
        write = jnp.where(due, idx, pop.n)
        st = dict(st, pending=st["pending"].at[write].set(-1, mode="drop"))
        return st, slots

    def body(e, carry):
        state, slots = carry
        kind, a = log["kind"][e], log["a"][e]
        t = log["t"][e] + log["t_lo"][e]
        slot = jnp.clip(a, 0, num_spikes - 1)
        for name, pop in pops.items():
            if not pop.neuron.spiking:
                continue
            local = out.spike_neurons[slot] - network.offsets[name]
            mine = (kind == _replay.SPIKE) & (local >= 0) & (local < pop.n)
            i = jnp.clip(local, 0, pop.n - 1)[None]
            st, slots = resolve(name, state[name], slots, i, mine[None], t)
            neuron = pn._take(pop.neuron, i, pop.n)
            g = {f: st["g"][f][i] for f in pop.neuron.synapse_fields}
            total = _sum_at(neuron, pop.neuron.synapse_fields, g, st["anchor"][i], t)
            where = jnp.where(mine, slot, num_spikes)
            slots = dict(
                slots,
                at_spike=slots["at_spike"].at[where].set(total[0], mode="drop"),
                before=slots["before"].at[where].set(st["hold"][i][0], mode="drop"),
            )
            write = jnp.where(mine, i, pop.n)
            end = t + jnp.broadcast_to(_refractory(neuron), (1,))
            st = dict(
                st,
                hold=st["hold"].at[write].set(end, mode="drop"),
                pending=st["pending"].at[write].set(slot, mode="drop"),
            )
            # Without a refractory period the end is the spike itself, read before
            # this event's own deliveries.
            st, slots = resolve(name, st, slots, i, mine[None], t)
            state = {**state, name: st}
        entry = _entry(log, e)
        for conn, position in zip(conns, positions, strict=True):
            ok, row, mask = _sources(
                system, conn, position, entry, input_sources, out.spike_neurons
            )
            q, post = conn.post, pops[conn.post]
            idx = _rows(conn, row, post.n)
            valid = ok & (idx < post.n) & (True if mask is None else mask)
            st, slots = resolve(q, state[q], slots, idx, valid, t)
            neuron = pn._take(post.neuron, idx, post.n)
            jump = _jumps(neuron, conn, conn.weight[row] * valid.astype(dtype))
            safe = jnp.clip(idx, 0, post.n - 1)
            elapsed = t - st["anchor"][safe]
            write = jnp.where(valid, idx, post.n)
            g = dict(st["g"])
            taus = neuron.synapse_time_constants()
            for f, tau in zip(post.neuron.synapse_fields, taus, strict=True):
                decayed = g[f][safe] * jnp.exp(-elapsed / tau)
                g[f] = g[f].at[write].set(decayed, mode="drop")
                g[f] = g[f].at[write].add(jump[f], mode="drop")
            st = dict(st, g=g, anchor=st["anchor"].at[write].set(t, mode="drop"))
            state = {**state, q: st}
        return state, slots

    state, slots = lax.fori_loop(0, count, body, (state, per_slot))
    for name, pop in pops.items():
        every = jnp.arange(pop.n, dtype=jnp.int32)
        valid = jnp.ones((pop.n,), bool)
        state[name], slots = resolve(name, state[name], slots, every, valid, out.t_final)
    return slots, {name: state[name]["hold"] for name in pops}


def _drive(neuron, lam_v, free):
    r"""What `free` ms of free flow before an anchor, with `lam_v` there, give the
    resting potential's derivative (and any constant term of the drive's, `v_leak +
    I`): $\int \lambda_v / \tau_m = \lambda_v (1 - e^{-s/\tau_m})$."""
    return -jnp.expm1(-free / neuron.tau_mem) * lam_v


def _broadcast_pullback(param, per_neuron):
    """The derivative with respect to `param` (a scalar or per-neuron array) from the
    derivatives `per_neuron` of its broadcast to each neuron."""
    _, pullback = jax.vjp(lambda p: jnp.broadcast_to(p, per_neuron.shape), param)
    (out,) = pullback(per_neuron.astype(param.dtype))
    return out


def _transport(neuron, lam, mu, free, held):
    """`lam` read earlier than its anchor (`_flow_transpose`) and its drive's
    derivative (`_drive`); with `mu` (time constant -> dict field -> lanes), theirs:
    the flow's transpose of `mu` plus the derivative of `lam`'s reading with respect to
    that time constant, and the same for the drive."""
    read = _flow_transpose(neuron, lam, free, held)
    drive = _drive(neuron, lam["v"], free)
    mus, drives = {}, {}
    for p, m in mu.items():

        def moved(value, p=p):
            other = eqx.tree_at(lambda n: getattr(n, p), neuron, value)
            return _flow_transpose(other, lam, free, held), _drive(other, lam["v"], free)

        value = getattr(neuron, p)
        _, (d_read, d_drive) = jax.jvp(moved, (value,), (jnp.ones_like(value),))
        carried = _flow_transpose(neuron, m, free, held)
        mus[p] = {f: carried[f] + d_read[f] for f in carried}
        drives[p] = _drive(neuron, m["v"], free) + d_drive
    return read, drive, mus, drives


def _run_end(system, out, log, cot_final, until):
    r"""With `until` (`until_fired`): the log entry of the spike that ended the run (-1:
    none, it ran to t1) and what moving the end gives the loss, $\sum_i
    \partial L / \partial x_i \cdot \dot x_i$ at the end (after its events; `v`
    still where held)."""
    if until is None:
        return -1, 0.0
    network, dtype = system.network, out.spike_times.dtype
    t_end = out.t_final
    moves = jnp.zeros((), dtype)
    for name, pop in network.populations.items():
        neuron, state = pop.neuron, out.final_state[name]
        current = jnp.broadcast_to(jnp.asarray(pop.current(t_end), dtype), (pop.n,))
        total = sum(
            (getattr(state, f) for f in neuron.synapse_fields), jnp.zeros((pop.n,), dtype)
        )
        dv = (neuron.v_leak + current + total - state.v) / neuron.tau_mem
        if hasattr(state, "refractory"):
            # (The flag may outlive the period in a final state: its end decides.)
            held = (state.refractory > 0) & (state.ref_end > t_end)
            dv = jnp.where(held, 0.0, dv)
        moves = moves + jnp.sum(cot_final[name].v * dv)
        taus = neuron.synapse_time_constants()
        for f, tau in zip(neuron.synapse_fields, taus, strict=True):
            cot = getattr(cot_final[name], f)
            moves = moves - jnp.sum(cot * getattr(state, f) / tau)
    entries = jnp.arange(log["kind"].shape[0])
    slot = jnp.clip(log["a"], 0, out.spike_times.shape[0] - 1)
    neuron = jnp.clip(out.spike_neurons[slot], 0, until.shape[0] - 1)
    ends = (
        (log["kind"] == _replay.SPIKE)
        & (entries < log["count"])
        & (log["t"] == t_end)
        & until[neuron]
    )
    return jnp.max(jnp.where(ends, entries, -1)), moves


def _adjoint(system, t0, y0, input_sources, out, log, cots, wanted, until=None):
    r"""The derivatives of the loss from its derivatives `cots` with respect to the
    spike times (`cot_spikes`, per slot), the final states (`cot_final`) and the
    records (`cot_records`): per connection
    its weights'; per population its neuron's parameters (`_parameters`, per neuron)
    and its current's (a tree like it); the initial states'; the input spike times'.

    `cot_records` (population -> field -> `(records, n)`): the loss's derivatives
    with respect to the recorded states, added to the adjoints at each record time
    (where every neuron of those populations is re-anchored).

    `until` (a mask over the neurons, `until_fired`): the run ends at the spike that
    completes them, and the end moves with it: that spike's time gets the final
    state's velocity there (after the events at the end) times its derivatives.

    `wanted`: per population, the names of the parameters to differentiate (its
    neuron's, and "current"), and under "inputs" whether the input spike times are;
    the walk carries the terms of those alone (elsewhere the derivatives are zeros).
    The time constants' derivative is $\sum_j \lambda(t_{j+1})^\top \partial_\tau x(t_{j+1})$ over the
    stretches of free flow between the events that touch a neuron (their ends fixed).
    It is linear in the stretch's initial state, which is the sum of what the initial
    state, each jump, reset and the drive put in: each neuron carries, per time
    constant, $\mu$, read like $\lambda$ ($\mu(t) = \Phi^\top \mu(s) + \partial_\tau
    (\Phi^\top \lambda(s))$, a `jax.jvp` of the closed form's transpose), and each of
    those terms gives $\mu^\top$ its size where it enters."""
    cot_spikes, cot_final, cot_records = cots
    network, pops, conns, count, num_spikes, dtype = _walk(system, out, log)
    taus = {
        name: tuple(p for p in time_constants(pop.neuron) if p in wanted[name])
        for name, pop in pops.items()
    }
    slots, hold0 = _forward_pass(system, t0, y0, input_sources, out, log)
    t_end = out.t_final
    num_inputs = input_sources.shape[0]
    # Populations whose current jumps: every neuron of theirs is re-anchored at each
    # jump, so that between its anchors the current is constant.
    jumping = [name for name, pop in pops.items() if _replay._jump_bound(pop.current) != 0]
    # Populations with recorded states whose derivatives are wanted.
    num_records = max(
        (x.shape[0] for c in cot_records.values() for x in c.values()), default=0
    )
    recorded = [name for name in pops if num_records and cot_records.get(name)]

    def fields(pop):
        return ("v", *pop.neuron.synapse_fields)

    def zeros(name):
        return jnp.zeros((pops[name].n,), dtype)

    lam0 = {
        name: {f: jnp.asarray(getattr(cot_final[name], f), dtype) for f in fields(pop)}
        for name, pop in pops.items()
    }
    mu0 = {
        name: {p: {f: zeros(name) for f in fields(pops[name])} for p in taus[name]}
        for name in pops
    }
    anchor0 = {name: jnp.full((pop.n,), t_end, dtype) for name, pop in pops.items()}
    dweights0 = tuple(jnp.zeros_like(conn.weight) for conn in conns)
    # Delays: their derivatives, and what the deliveries they delay give the spikes
    # that emitted them (added when the walk reaches those spikes).
    positions = _positions(conns)
    ddelays0 = tuple(
        jnp.zeros((), dtype) if conn.delay is None else jnp.zeros_like(conn.delay)
        for conn in conns
    )
    emitters = _emitting_slots(system, out, log)
    g_delayed0 = jnp.zeros((num_spikes,), dtype)
    # Per neuron, where wanted: the derivatives with respect to `v_th`, `v_reset`,
    # `t_ref`, the drive (`v_leak`: "drive") and the time constants, and the drive's
    # since the last flush into the current's ("pending"); where neurons are
    # re-anchored (`reanchor`), `v`'s adjoint at the end of a hold re-anchored inside.
    renamed = {"v_leak": "drive", "current": "pending"}
    acc0 = {}
    for name in pops:
        keys = [renamed.get(p, p) for p in wanted[name]]
        keys += ["at_hold_end"] if jumping or recorded else []
        acc0[name] = {key: zeros(name) for key in keys}

    def flush(name, pending, start, stop):
        """The current's derivative from `pending` (the drive's, per neuron) over
        `[start, stop]`, where it is constant."""
        pop = pops[name]
        mid = 0.5 * (start + stop)
        _, pullback = eqx.filter_vjp(
            lambda c: jnp.broadcast_to(jnp.asarray(c(mid), dtype), (pop.n,)),
            pop.current,
        )
        (d,) = pullback(pending)
        return d

    dcurrent0 = {name: jtu.tree_map(jnp.zeros_like, pops[name].current) for name in pops}

    def read(name, lam, mu, anchor, hold, idx, t):
        """Lanes `idx` of population `name`: their neurons, their adjoints at `t`
        (from their anchors, through the hold in force), whether `t` is inside their
        refractory hold, the drive's derivative over `[t, anchor]`, and their `mu`
        and its drive's derivatives (`_transport`)."""
        pop = pops[name]
        safe = jnp.clip(idx, 0, pop.n - 1)
        neuron = pn._take(pop.neuron, safe, pop.n)
        lanes = {f: lam[name][f][safe] for f in fields(pop)}
        mus = {p: {f: x[safe] for f, x in m.items()} for p, m in mu[name].items()}
        at = anchor[name][safe]
        end = jnp.clip(hold[name][safe], t, at)
        adjoint, drive, mus, drives = _transport(neuron, lanes, mus, at - end, end - t)
        return neuron, adjoint, hold[name][safe] > t, drive, mus, drives

    def resting(name, neuron, idx, time):
        """`v_leak + I` of lanes `idx` at `time`."""
        pop = pops[name]
        current = jnp.broadcast_to(jnp.asarray(pop.current(time), dtype), (pop.n,))
        return neuron.v_leak + current[jnp.clip(idx, 0, pop.n - 1)]

    def initial(state, mus, drives=None, drive_level=None):
        """What `mu` read where a stretch starts gives the time constants there: the
        state's size (its initial state, a jump or a reset) times `mu`, and the drive
        (where the stretch is one between anchors)."""
        out = {}
        for p, m in mus.items():
            total = 0.0 if drives is None else drive_level * drives[p]
            for f, x in m.items():
                total = total + x * state[f]
            out[p] = total
        return out

    def add(arrays, write, value):
        return arrays.at[write].add(value, mode="drop")

    def put(arrays, write, value):
        return _cpu.put_row(arrays, write, value)

    def reanchor(t, state, names, record=None):
        """Every neuron of the populations `names` re-anchored at `t`: at a jump of a
        current (`record` None: the drive's derivatives since the last jump are
        flushed into the current's), or at record time `record` (its derivatives
        added to the adjoints)."""
        lam, mu, anchor, hold, acc, dcurrent, later = state
        lam, mu, anchor, dcurrent = dict(lam), dict(mu), dict(anchor), dict(dcurrent)
        acc = {name: dict(a) for name, a in acc.items()}
        for name in names:
            every = jnp.arange(pops[name].n, dtype=jnp.int32)
            neuron, lanes, _, drive, mus, drives = read(
                name, lam, mu, anchor, hold, every, t
            )
            level = resting(name, neuron, every, 0.5 * (t + later))
            zero = {f: jnp.zeros_like(x) for f, x in lanes.items()}
            for p, d in initial(zero, mus, drives, level).items():
                acc[name][p] = acc[name][p] + d
            for key in ("drive", "pending"):
                if key in acc[name]:
                    acc[name][key] = acc[name][key] + drive
            # Re-anchored inside a refractory hold: `v`'s adjoint at its end (the
            # spike that started it reads it there) is kept.
            inside = (hold[name] > t) & (anchor[name] >= hold[name])
            kept = acc[name]["at_hold_end"]
            acc[name]["at_hold_end"] = jnp.where(inside, lanes["v"], kept)
            if record is None and "pending" in acc[name]:
                d = flush(name, acc[name]["pending"], t, later)
                dcurrent[name] = jtu.tree_map(jnp.add, dcurrent[name], d)
                acc[name]["pending"] = jnp.zeros_like(acc[name]["pending"])
            elif record is not None:
                k = jnp.clip(record, 0, num_records - 1)
                lanes = {
                    f: x + cot_records[name][f][k] if f in cot_records[name] else x
                    for f, x in lanes.items()
                }
            lam[name], mu[name] = lanes, mus
            anchor[name] = jnp.full_like(anchor[name], t)
        return lam, mu, anchor, hold, acc, dcurrent, t if record is None else later

    end_entry, end_moves = _run_end(system, out, log, cot_final, until)

    def body(j, carry):
        lam, mu, anchor, hold, dweights, acc, dinputs, dcurrent, later = carry[:9]
        ddelays, g_delayed = carry[9:]
        e = count - 1 - j
        kind, a = log["kind"][e], log["a"][e]
        t = log["t"][e] + log["t_lo"][e]
        slot = jnp.clip(a, 0, num_spikes - 1)
        is_spike = kind == _replay.SPIKE
        g_time = jnp.where(is_spike, cot_spikes[slot] + g_delayed[slot], 0.0)
        if until is not None:
            g_time = g_time + jnp.where(e == end_entry, end_moves, 0.0)
        acc = {name: dict(x) for name, x in acc.items()}
        new_dweights, new_ddelays = [], list(ddelays)
        entry = _entry(log, e)
        for c, conn in enumerate(conns):
            position = positions[c]
            ok, row, mask = _sources(
                system, conn, position, entry, input_sources, out.spike_neurons
            )
            q, post = conn.post, pops[conn.post]
            idx = _rows(conn, row, post.n)
            valid = ok & (idx < post.n) & (True if mask is None else mask)
            neuron, lanes, held, _, mus, _ = read(q, lam, mu, anchor, hold, idx, t)
            lanes = {f: jnp.where(valid, x, 0.0) for f, x in lanes.items()}
            weight = conn.weight[row]
            jump, pullback = jax.vjp(
                lambda w, neuron=neuron, conn=conn: _jumps(neuron, conn, w), weight
            )
            (d_row,) = pullback(lanes)
            dw = dweights[c]
            new_dweights.append(put(dw, jnp.where(ok, row, conn.n_pre), dw[row] + d_row))
            # The jump's part of each target's state, for its time constants.
            write = jnp.where(valid, idx, post.n)
            for p, d in initial(jump, mus).items():
                acc[q][p] = add(acc[q][p], write, d)
            # What moving the event later does through this connection's jumps.
            per_lane = -_velocity_coupling(neuron, lanes, jump, held)
            moved = jnp.sum(per_lane)
            if position is not None:
                # A delayed delivery: its time is the emitting spike's plus the delay.
                at = jnp.where(ok, emitters[e], num_spikes)
                g_delayed = g_delayed.at[at].add(moved, mode="drop")
                dd = new_ddelays[c]
                if conn.per_synapse_delay:
                    put_at = jnp.where(ok, row, conn.n_pre)
                    new_ddelays[c] = put(dd, put_at, dd[row] + per_lane)
                else:
                    new_ddelays[c] = dd + jnp.where(ok, moved, 0.0)
            elif conn.pre in pops:
                g_time = g_time + moved
            elif wanted["inputs"]:
                dinputs = add(dinputs, jnp.where(ok, a, num_inputs), moved)
        for name, pop in pops.items():
            if not pop.neuron.spiking:
                continue
            local = out.spike_neurons[slot] - network.offsets[name]
            mine = is_spike & (local >= 0) & (local < pop.n)
            i = jnp.clip(local, 0, pop.n - 1)
            neuron, lane, _, drive, mus, drives = read(
                name, lam, mu, anchor, hold, i[None], t
            )

            def rest_at(time, name=name, neuron=neuron, i=i):
                return resting(name, neuron, i[None], time).reshape(())

            rest = rest_at(t)
            tau_m = jnp.reshape(neuron.tau_mem, (-1,))[0]
            before = (rest + slots["at_spike"][slot] - neuron.v_th.reshape(())) / tau_m
            # At the end of the refractory period `v` is free again: the end moves
            # with the spike, and so does everything after it.
            end = t + _refractory(neuron).reshape(())
            ended = slots["ended"][slot]
            _, at_end, _, _, _, _ = read(name, lam, {name: {}}, anchor, hold, i[None], end)
            at_end_v = at_end["v"][0]
            if "at_hold_end" in acc[name]:
                # (Where the neuron was re-anchored inside the hold, the value kept.)
                inside = anchor[name][i] < end
                at_end_v = jnp.where(inside, acc[name]["at_hold_end"][i], at_end_v)
            free = rest_at(end) + slots["at_end"][slot] - neuron.v_reset.reshape(())
            free = free / tau_m
            keep = 0.0 if pop.neuron.reset_mode == "hard" else 1.0
            lam_v = lane["v"].reshape(())
            held_longer = -jnp.where(ended, at_end_v * free, 0.0)
            total = g_time + keep * lam_v * before + held_longer
            crossing = (t > t0) & (before > 0)
            # The spike time's derivative turned into the firing neuron's adjoint (and
            # the threshold's: the spike comes `1 / v'` later per unit of `v_th`).
            moved = jnp.where(crossing, total / jnp.where(crossing, before, 1.0), 0.0)
            new_v = keep * lam_v - moved
            write = jnp.where(mine, i, pop.n)
            # The reset: `v <- v_reset`, or `v <- v - (v_th - v_reset)`.
            reset = jnp.reshape(neuron.v_reset - keep * neuron.v_th, ())
            mine_acc = acc[name]
            terms = {
                "v_th": moved - keep * lam_v,
                "v_reset": lam_v,
                "t_ref": held_longer,
                "drive": drive[0],
                "pending": drive[0],
            }
            for key, term in terms.items():
                if key in mine_acc:
                    mine_acc[key] = add(mine_acc[key], write, term)
            # The stretch after the spike starts from the reset and the drive.
            level = rest_at(0.5 * (t + anchor[name][i]))
            after = {f: jnp.zeros((1,), dtype) for f in fields(pop)}
            after["v"] = jnp.reshape(reset, (1,))
            for p, d in initial(after, mus, drives, level).items():
                mine_acc[p] = add(mine_acc[p], write, d[0])
            new_mu = dict(mu[name])
            for p, m in mus.items():
                new_mu[p] = {
                    f: put(mu[name][p][f], write, (keep * x if f == "v" else x)[0])
                    for f, x in m.items()
                }
            new = dict(lam[name])
            for f in fields(pop):
                value = new_v if f == "v" else lane[f].reshape(())
                new[f] = put(lam[name][f], write, value)
            lam, mu = {**lam, name: new}, {**mu, name: new_mu}
            anchor = {**anchor, name: put(anchor[name], write, t)}
            # Before this spike, the hold of the one before it is in force.
            hold = {**hold, name: put(hold[name], write, slots["before"][slot])}
        state = (lam, mu, anchor, hold, acc, dcurrent, later)
        if jumping:
            state = lax.cond(
                kind == _replay.JUMP,
                lambda s: reanchor(t, s, jumping),
                lambda s: s,
                state,
            )
        if recorded:
            state = lax.cond(
                kind == _replay.RECORD,
                lambda s: reanchor(t, s, recorded, record=a),
                lambda s: s,
                state,
            )
        lam, mu, anchor, hold, acc, dcurrent, later = state
        new_dweights = tuple(new_dweights)
        new_ddelays = tuple(new_ddelays)
        out_carry = (lam, mu, anchor, hold, new_dweights, acc, dinputs, dcurrent, later)
        return (*out_carry, new_ddelays, g_delayed)

    dinputs0 = jnp.zeros((num_inputs,), dtype)
    carry = (lam0, mu0, anchor0, hold0, dweights0, acc0, dinputs0, dcurrent0, t_end)
    carry = lax.fori_loop(0, count, body, (*carry, ddelays0, g_delayed0))
    lam, mu, anchor, hold, dweights, acc, dinputs, dcurrent, later = carry[:9]
    ddelays = carry[9]
    dy0, dparams = {}, {}
    for name, pop in pops.items():
        every = jnp.arange(pop.n, dtype=jnp.int32)
        neuron, dy0[name], _, drive, mus, drives = read(
            name, lam, mu, anchor, hold, every, t0
        )
        if "pending" in acc[name]:
            d = flush(name, acc[name]["pending"] + drive, t0, later)
            dcurrent[name] = jtu.tree_map(jnp.add, dcurrent[name], d)
        level = resting(name, neuron, every, 0.5 * (t0 + later))
        state = {f: jnp.asarray(getattr(y0[name], f), dtype) for f in fields(pop)}
        start = initial(state, mus, drives, level)
        last = {"drive": drive, **start}  # the stretches from t0
        per_neuron = {
            p: acc[name][renamed.get(p, p)] + last.get(renamed.get(p, p), 0.0)
            for p in wanted[name]
            if p != "current"
        }
        dparams[name] = {
            p: _broadcast_pullback(getattr(pop.neuron, p), d) for p, d in per_neuron.items()
        }
    return dweights, ddelays, dparams, dcurrent, dy0, dinputs


def apply(
    output, system, t0, t1, y0, input_times, input_sources, record_times, log, until=None
):
    """The forward run's `output` with the adjoint's derivatives attached (a custom
    VJP whose primal is zero: the walk runs only in reverse mode). `until`: the mask
    of `until_fired` (None: the run went to `t1`)."""
    until = None if until is None else jnp.asarray(until.array)
    args = (system, t0, t1, y0, input_times, input_sources, record_times)
    allowed = _allowed(args)
    inexact = jtu.tree_map(eqx.is_inexact_array, args)
    diff, rest = eqx.partition(args, inexact)
    allowed, _ = eqx.partition(allowed, inexact)
    arrays, static = eqx.partition(rest, eqx.is_array)
    fixed = (arrays, output, log, until)

    @jax.custom_vjp
    def carriers(diff, fixed):
        out = fixed[1]
        return _replay._zeros_like((out.spike_times, out.final_state, out.records))

    # What the run differentiates, per population (its neuron's parameters, and
    # "current") and "inputs": `fwd` finds it, and the walk carries the terms of those
    # alone (a `mu` per time constant, the parameters' sums).
    wanted = {}

    def fwd(diff, fixed):
        flags = jtu.tree_map(lambda p: p.perturbed, diff)
        network = flags[0].network
        for name, pop in network.populations.items():
            params = _parameters(network, name)
            moved = tuple(p for p in params if getattr(pop.neuron, p) is True)
            current = ("current",) if any(jtu.tree_leaves(pop.current)) else ()
            wanted[name] = moved + current
        wanted["inputs"] = any(jtu.tree_leaves(flags[4]))
        values = jtu.tree_map(lambda p: p.value, diff)
        fixed = jtu.tree_map(lambda p: p.value, fixed)
        for (path, moved), ok in zip(
            jtu.tree_flatten_with_path(flags)[0], jtu.tree_leaves(allowed), strict=True
        ):
            if moved and not ok:
                raise ValueError(
                    "gradients='eventprop' differentiates connection weights, neuron "
                    "parameters, current values, initial states and input spike "
                    f"times; this run differentiates "
                    f"{jtu.keystr(path)} too: use gradients=True."
                )
        out = fixed[1]
        zeros = _replay._zeros_like((out.spike_times, out.final_state, out.records))
        return zeros, (values, fixed)

    def bwd(res, cot):
        values, (arrays, out, log, until) = res
        system_, t0_, _, y0_, _, input_sources_, _ = eqx.combine(values, arrays, static)
        cot_spikes, cot_final, cot_records = cot
        _refuse_refractory_ends(cot_final, cot_records)
        if isinstance(cot_spikes, SymbolicZero):
            cot_spikes = jnp.zeros_like(out.spike_times)
        cot_final = jtu.tree_map(
            lambda c, x: jnp.zeros_like(x) if isinstance(c, SymbolicZero) else c,
            cot_final,
            out.final_state,
            is_leaf=lambda c: isinstance(c, SymbolicZero),
        )
        pops = system_.network.populations
        cot_records = {
            name: _wanted_fields(cot_records.get(name), pops[name].neuron) for name in pops
        }
        cot_spikes = jnp.where(jnp.isfinite(out.spike_times), cot_spikes, 0.0)
        everything = {
            name: (*_parameters(system_.network, name), "current") for name in pops
        }
        differentiated = {name: wanted.get(name, everything[name]) for name in pops}
        differentiated["inputs"] = wanted.get("inputs", True)
        cots = (cot_spikes, cot_final, cot_records)
        derivatives = _adjoint(
            system_, t0_, y0_, input_sources_, out, log, cots, differentiated, until
        )
        grads = jtu.tree_map(lambda _: None, values)
        grads = _put_gradients(grads, values, *derivatives)
        return grads, None

    carriers.defvjp(fwd, bwd, symbolic_zeros=True)
    spikes, final_state, records = carriers(diff, _replay._stop_floats(fixed))
    return eqx.tree_at(
        lambda o: (o.spike_times, o.final_state, o.records),
        output,
        (
            output.spike_times + spikes,
            jtu.tree_map(jnp.add, output.final_state, final_state),
            jtu.tree_map(jnp.add, output.records, records),
        ),
    )


def _is_zero(cot) -> bool:
    return cot is None or isinstance(cot, SymbolicZero)


def _refuse_refractory_ends(cot_final, cot_records):
    """The ends of refractory periods (`ref_end`, in final or recorded states) move
    with spike times the adjoint does not map them to: a loss that reads them is
    refused."""
    for where, tree in (("final state", cot_final), ("records", cot_records)):
        for name, cot in (tree or {}).items():
            if not _is_zero(getattr(cot, "ref_end", None)):
                raise ValueError(
                    f"gradients='eventprop' does not differentiate `ref_end` (the end "
                    f"of a refractory period) of population {name!r}'s {where}: leave "
                    "it out of the loss, or use gradients=True."
                )


def _wanted_fields(cot, neuron) -> dict:
    """The recorded fields (`v` and the synaptic currents) whose derivatives the loss
    has (field -> `(records, n)`); the refractory flag's derivative is zero."""
    out = {}
    for f in ("v", *neuron.synapse_fields):
        c = getattr(cot, f, None)
        if not _is_zero(c):
            out[f] = c
    return out


def _put_gradients(grads, values, dweights, ddelays, dparams, dcurrent, dy0, dinputs):
    """The cotangent of `values` (the differentiable arguments): the adjoint's
    derivatives in their places, zeros (None) elsewhere."""
    system = values[0]
    network = system.network
    where, put = [], []
    for name in network.populations:
        for p, d in dparams[name].items():
            where.append(
                lambda s, name=name, p=p: getattr(s.network.populations[name].neuron, p)
            )
            put.append(d)
        where.append(lambda s, name=name: s.network.populations[name].current)
        put.append(dcurrent[name])
    for c, conn in enumerate(network.connections):
        where.append(lambda s, c=c: s.network.connections[c].weight)
        put.append(dweights[c])
        if conn.delay is not None and eqx.is_inexact_array(conn.delay):
            where.append(lambda s, c=c: s.network.connections[c].delay)
            put.append(ddelays[c])
    grads_system = eqx.tree_at(
        lambda s: [w(s) for w in where], grads[0], put, is_leaf=lambda x: x is None
    )
    y0 = values[3]
    grads_y0 = {}
    for name, state in y0.items():
        # `v` and the synaptic currents; the refractory fields get zeros.
        fields = tuple(dy0[name])
        grads_y0[name] = eqx.tree_at(
            lambda s, fields=fields: tuple(getattr(s, f) for f in fields),
            jtu.tree_map(jnp.zeros_like, state),
            tuple(
                jnp.broadcast_to(dy0[name][f], getattr(state, f).shape).astype(
                    getattr(state, f).dtype
                )
                for f in fields
            ),
        )
    grads_inputs = grads[4]
    if values[4] is not None:
        grads_inputs = dinputs.astype(values[4].dtype)
    return (grads_system, grads[1], grads[2], grads_y0, grads_inputs, *grads[5:])
