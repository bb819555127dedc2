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
  The reset potential: $\lambda_v(t_k^+)$ per spike. The drive $v_\text{leak} + I$
  enters $\dot v$ with $1/\tau_m$; between a neuron's anchors $\lambda_v$ decays
  with $\tau_m$, so a free stretch of $s$ ms before an anchor adds $\lambda_v (1 -
  e^{-s/\tau_m})$ to it (nothing while `v` is held). Where a current jumps, every
  neuron of its population is re-anchored at each jump (a pass over the population
  per jump), so that between anchors the current is constant and its values get the
  stretches' sums. An input spike's time gets its targets' $-\lambda^\top A\,
  \Delta x$, as a spike's does.
- The walk starts from the loss's derivative with respect to the final state (at the
  run's end) and ends at `t0` with the derivative with respect to the initial state.

The gradient is the same as `gradients=True` gives (tests/test_eventprop.py: random
networks against the replay, and finite differences); a spike that appears or
vanishes is handled as there (the gradient of the spikes the run produced).

**Scope** (`unsupported` names what is outside it). Populations of the LIF family
with a closed form (`LIF`, `CubaLIF`, `LI`), refractory periods included, constant or
piecewise-constant currents, projections that jump a synaptic current, external input
spikes; no delays, record times or early end (`until_fired`). Derivatives with
respect to the connection weights (input weights included), the neurons' `v_th`,
`v_reset` and `v_leak`, the currents' values (not the jump times of a
`PiecewiseConstant` or `Step`), the input spike times and the initial states' `v` and
synaptic currents (the refractory fields get zeros); differentiating anything else
(time constants, refractory periods) raises an error that names it. Reverse mode only (`jax.grad`, `jax.vjp`; a
`jax.custom_vjp`): forward mode (`jax.jvp`, `jax.jacfwd`) needs `gradients=True`.
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


def unsupported(network, records: bool, until) -> str | None:
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
        if conn.delay is not None:
            return f"{owner}: a delay"
        if conn.target == "v":
            return f"{owner}: it jumps `v` itself (a delta synapse)"
    if records:
        return "record times (`record`)"
    if until is not None:
        return "`until_fired`"
    return None


# The neuron parameters the adjoint differentiates, where a population's neuron has
# them: the threshold and reset (at each spike), the resting potential (along the
# free flow).
NEURON_PARAMETERS = ("v_th", "v_reset", "v_leak")


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
    """The names of `NEURON_PARAMETERS` that population `name`'s neuron has."""
    neuron = network.populations[name].neuron
    return tuple(p for p in NEURON_PARAMETERS if hasattr(neuron, p))


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
    y0_mask = jtu.tree_map(lambda _: True, args[3])
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


def _sources(system, conn, kind, a, log_src, spike_neurons):
    """Whether log entry (`kind`, `a`) delivers through `conn`, and its row."""
    network = system.network
    if conn.pre in network.populations:
        local = spike_neurons[a] - network.offsets[conn.pre]
        ok = (kind == _replay.SPIKE) & (local >= 0) & (local < conn.n_pre)
    else:
        local = log_src[a] - system.input_offsets()[conn.pre]
        ok = (kind == _replay.INPUT) & (local >= 0) & (local < conn.n_pre)
    return ok, jnp.clip(local, 0, conn.n_pre - 1)


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
        for conn in conns:
            ok, row = _sources(system, conn, kind, a, input_sources, out.spike_neurons)
            q, post = conn.post, pops[conn.post]
            idx = _rows(conn, row, post.n)
            valid = ok & (idx < post.n)
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


def _adjoint(system, t0, y0, input_sources, out, log, cot_spikes, cot_final):
    """The derivatives of the loss from its derivatives with respect to the spike
    times (`cot_spikes`, per slot) and the final states (`cot_final`): per connection
    its weights'; per population its neuron's `NEURON_PARAMETERS` (per neuron) and
    its current's (a tree like it); the initial states'; the input spike times'."""
    network, pops, conns, count, num_spikes, dtype = _walk(system, out, log)
    slots, hold0 = _forward_pass(system, t0, y0, input_sources, out, log)
    t_end = out.t_final
    num_inputs = input_sources.shape[0]
    # Populations whose current jumps: every neuron of theirs is re-anchored at each
    # jump, so that between its anchors the current is constant.
    jumping = [name for name, pop in pops.items() if _replay._jump_bound(pop.current) != 0]

    def fields(pop):
        return ("v", *pop.neuron.synapse_fields)

    lam0 = {
        name: {f: jnp.asarray(getattr(cot_final[name], f), dtype) for f in fields(pop)}
        for name, pop in pops.items()
    }
    anchor0 = {name: jnp.full((pop.n,), t_end, dtype) for name, pop in pops.items()}
    dweights0 = tuple(jnp.zeros_like(conn.weight) for conn in conns)
    # Per neuron: the derivatives with respect to `v_th`, `v_reset` and the drive
    # (`v_leak`), and the drive's since the last flush into the current's.
    zeros = {name: jnp.zeros((pop.n,), dtype) for name, pop in pops.items()}
    acc0 = {key: dict(zeros) for key in ("v_th", "v_reset", "drive", "pending")}

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

    dcurrent0 = {
        name: flush(name, jnp.zeros((pop.n,), dtype), t0, t_end)
        for name, pop in pops.items()
    }

    def read(name, lam, anchor, hold, idx, t):
        """Lanes `idx` of population `name`: their neurons, their adjoints at `t`
        (from their anchors, through the hold in force), whether `t` is inside their
        refractory hold, and the drive's derivative over `[t, anchor]`."""
        pop = pops[name]
        safe = jnp.clip(idx, 0, pop.n - 1)
        neuron = pn._take(pop.neuron, safe, pop.n)
        lanes = {f: lam[name][f][safe] for f in fields(pop)}
        at = anchor[name][safe]
        end = jnp.clip(hold[name][safe], t, at)
        adjoint = _flow_transpose(neuron, lanes, at - end, end - t)
        drive = _drive(neuron, lanes["v"], at - end)
        return neuron, adjoint, hold[name][safe] > t, drive

    def add(arrays, write, value):
        return arrays.at[write].add(value, mode="drop")

    def at_jump(t, state):
        """Every neuron of the populations in `jumping` re-anchored at `t` (a jump of
        a current), and the drive's derivatives since the last jump flushed."""
        lam, anchor, hold, acc, dcurrent, later = state
        acc = {key: dict(value) for key, value in acc.items()}
        lam, anchor, dcurrent = dict(lam), dict(anchor), dict(dcurrent)
        for name in jumping:
            every = jnp.arange(pops[name].n, dtype=jnp.int32)
            _, lanes, _, drive = read(name, lam, anchor, hold, every, t)
            acc["drive"][name] = acc["drive"][name] + drive
            pending = acc["pending"][name] + drive
            d = flush(name, pending, t, later)
            dcurrent[name] = jtu.tree_map(jnp.add, dcurrent[name], d)
            acc["pending"][name] = jnp.zeros_like(pending)
            lam[name] = lanes
            anchor[name] = jnp.full_like(anchor[name], t)
        return lam, anchor, hold, acc, dcurrent, t

    def body(j, carry):
        lam, anchor, hold, dweights, acc, dinputs, dcurrent, later = carry
        e = count - 1 - j
        kind, a = log["kind"][e], log["a"][e]
        t = log["t"][e] + log["t_lo"][e]
        slot = jnp.clip(a, 0, num_spikes - 1)
        is_spike = kind == _replay.SPIKE
        g_time = jnp.where(is_spike, cot_spikes[slot], 0.0)
        new_dweights = []
        for c, conn in enumerate(conns):
            ok, row = _sources(system, conn, kind, a, input_sources, out.spike_neurons)
            post = pops[conn.post]
            idx = _rows(conn, row, post.n)
            valid = ok & (idx < post.n)
            neuron, lanes, held, _ = read(conn.post, lam, anchor, hold, idx, t)
            lanes = {f: jnp.where(valid, x, 0.0) for f, x in lanes.items()}
            weight = conn.weight[row]
            jump, pullback = jax.vjp(
                lambda w, neuron=neuron, conn=conn: _jumps(neuron, conn, w), weight
            )
            (d_row,) = pullback(lanes)
            dw = dweights[c]
            new_dweights.append(
                _cpu.put_row(dw, jnp.where(ok, row, conn.n_pre), dw[row] + d_row)
            )
            # What moving the event later does through this connection's jumps.
            moved = -jnp.sum(_velocity_coupling(neuron, lanes, jump, held))
            if conn.pre in pops:
                g_time = g_time + moved
            else:
                dinputs = add(dinputs, jnp.where(ok, a, num_inputs), moved)
        acc = {key: dict(value) for key, value in acc.items()}
        for name, pop in pops.items():
            if not pop.neuron.spiking:
                continue
            local = out.spike_neurons[slot] - network.offsets[name]
            mine = is_spike & (local >= 0) & (local < pop.n)
            i = jnp.clip(local, 0, pop.n - 1)
            neuron, lane, _, drive = read(name, lam, anchor, hold, i[None], t)

            def rest_at(time, pop=pop, neuron=neuron, i=i):
                current = jnp.broadcast_to(jnp.asarray(pop.current(time), dtype), (pop.n,))
                return (neuron.v_leak + current[i]).reshape(())

            rest = rest_at(t)
            tau_m = jnp.reshape(neuron.tau_mem, (-1,))[0]
            before = (rest + slots["at_spike"][slot] - neuron.v_th.reshape(())) / tau_m
            # At the end of the refractory period `v` is free again: the end moves
            # with the spike, and so does everything after it.
            end = t + _refractory(neuron).reshape(())
            ended = slots["ended"][slot]
            _, at_end, _, _ = read(name, lam, anchor, hold, i[None], end)
            free = rest_at(end) + slots["at_end"][slot] - neuron.v_reset.reshape(())
            free = free / tau_m
            keep = 0.0 if pop.neuron.reset_mode == "hard" else 1.0
            lam_v = lane["v"].reshape(())
            total = g_time + keep * lam_v * before
            total = total - jnp.where(ended, at_end["v"].reshape(()) * free, 0.0)
            crossing = (t > t0) & (before > 0)
            # The spike time's derivative turned into the firing neuron's adjoint (and
            # the threshold's: the spike comes `1 / v'` later per unit of `v_th`).
            moved = jnp.where(crossing, total / jnp.where(crossing, before, 1.0), 0.0)
            new_v = keep * lam_v - moved
            write = jnp.where(mine, i, pop.n)
            # The reset: `v <- v_reset`, or `v <- v - (v_th - v_reset)`.
            acc["v_th"][name] = add(acc["v_th"][name], write, moved - keep * lam_v)
            acc["v_reset"][name] = add(acc["v_reset"][name], write, lam_v)
            for key in ("drive", "pending"):
                acc[key][name] = add(acc[key][name], write, drive[0])
            new = dict(lam[name])
            for f in fields(pop):
                value = new_v if f == "v" else lane[f].reshape(())
                new[f] = _cpu.put_row(lam[name][f], write, value)
            lam = {**lam, name: new}
            anchor = {**anchor, name: _cpu.put_row(anchor[name], write, t)}
            # Before this spike, the hold of the one before it is in force.
            hold = {**hold, name: _cpu.put_row(hold[name], write, slots["before"][slot])}
        state = (lam, anchor, hold, acc, dcurrent, later)
        if jumping:
            state = lax.cond(
                kind == _replay.JUMP, lambda s: at_jump(t, s), lambda s: s, state
            )
        lam, anchor, hold, acc, dcurrent, later = state
        return lam, anchor, hold, tuple(new_dweights), acc, dinputs, dcurrent, later

    dinputs0 = jnp.zeros((num_inputs,), dtype)
    carry = (lam0, anchor0, hold0, dweights0, acc0, dinputs0, dcurrent0, t_end)
    lam, anchor, hold, dweights, acc, dinputs, dcurrent, later = lax.fori_loop(
        0, count, body, carry
    )
    dy0, dparams = {}, {}
    for name, pop in pops.items():
        end = jnp.clip(hold[name], t0, anchor[name])
        dy0[name] = _flow_transpose(pop.neuron, lam[name], anchor[name] - end, end - t0)
        drive = _drive(pop.neuron, lam[name]["v"], anchor[name] - end)
        d = flush(name, acc["pending"][name] + drive, t0, later)
        dcurrent[name] = jtu.tree_map(jnp.add, dcurrent[name], d)
        per_neuron = {
            "v_th": acc["v_th"][name],
            "v_reset": acc["v_reset"][name],
            "v_leak": acc["drive"][name] + drive,
        }
        dparams[name] = {
            p: _broadcast_pullback(getattr(pop.neuron, p), per_neuron[p])
            for p in _parameters(network, name)
        }
    return dweights, dparams, dcurrent, dy0, dinputs


def apply(output, system, t0, t1, y0, input_times, input_sources, record_times, log):
    """The forward run's `output` with the adjoint's derivatives attached (a custom
    VJP whose primal is zero: the walk runs only in reverse mode)."""
    args = (system, t0, t1, y0, input_times, input_sources, record_times)
    allowed = _allowed(args)
    inexact = jtu.tree_map(eqx.is_inexact_array, args)
    diff, rest = eqx.partition(args, inexact)
    allowed, _ = eqx.partition(allowed, inexact)
    arrays, static = eqx.partition(rest, eqx.is_array)
    fixed = (arrays, output, log)

    @jax.custom_vjp
    def carriers(diff, fixed):
        out = fixed[1]
        return _replay._zeros_like((out.spike_times, out.final_state))

    def fwd(diff, fixed):
        flags = jtu.tree_map(lambda p: p.perturbed, diff)
        values = jtu.tree_map(lambda p: p.value, diff)
        fixed = jtu.tree_map(lambda p: p.value, fixed)
        for (path, moved), ok in zip(
            jtu.tree_flatten_with_path(flags)[0], jtu.tree_leaves(allowed), strict=True
        ):
            if moved and not ok:
                raise ValueError(
                    "gradients='eventprop' differentiates connection weights, "
                    "thresholds, resets, resting potentials, current values, initial "
                    f"states and input spike times; this run differentiates "
                    f"{jtu.keystr(path)} too: use gradients=True."
                )
        out = fixed[1]
        zeros = _replay._zeros_like((out.spike_times, out.final_state))
        return zeros, (values, fixed)

    def bwd(res, cot):
        values, (arrays, out, log) = res
        system_, t0_, _, y0_, _, input_sources_, _ = eqx.combine(values, arrays, static)
        cot_spikes, cot_final = cot
        if isinstance(cot_spikes, SymbolicZero):
            cot_spikes = jnp.zeros_like(out.spike_times)
        cot_final = jtu.tree_map(
            lambda c, x: jnp.zeros_like(x) if isinstance(c, SymbolicZero) else c,
            cot_final,
            out.final_state,
            is_leaf=lambda c: isinstance(c, SymbolicZero),
        )
        cot_spikes = jnp.where(jnp.isfinite(out.spike_times), cot_spikes, 0.0)
        derivatives = _adjoint(
            system_, t0_, y0_, input_sources_, out, log, cot_spikes, cot_final
        )
        grads = jtu.tree_map(lambda _: None, values)
        grads = _put_gradients(grads, values, *derivatives)
        return grads, None

    carriers.defvjp(fwd, bwd, symbolic_zeros=True)
    spikes, final_state = carriers(diff, _replay._stop_floats(fixed))
    return eqx.tree_at(
        lambda o: (o.spike_times, o.final_state),
        output,
        (
            output.spike_times + spikes,
            jtu.tree_map(lambda a, b: a + b, output.final_state, final_state),
        ),
    )


def _put_gradients(grads, values, dweights, dparams, dcurrent, dy0, dinputs):
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
    for c in range(len(network.connections)):
        where.append(lambda s, c=c: s.network.connections[c].weight)
        put.append(dweights[c])
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
