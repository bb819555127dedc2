"""What the event loop integrates: a network seen as one system.

The loop (`_engine.py`) knows nothing about neuron models or projections. It sees a
continuous state `y` (a dict: population name -> model state) that diffrax integrates,
a discrete state `aux` (the queues of delayed spikes in flight) that changes only
between segments, one signed spike condition per neuron (concatenated over
populations), and what happens when neurons spike, when external spikes arrive and at
scheduled times (current jumps, ends of refractoriness, delayed deliveries).
"""

import equinox as eqx
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ._cpu import nonzero, put_row, set_rows, smallest
from ._network import Connection, Network
from ._record import Record

# Delayed deliveries due at the same time handled per loop iteration and projection.
DELIVERIES_PER_ITERATION = 8


class DelayQueue(eqx.Module):
    """Spikes in flight on one delayed projection: a ring buffer of emission times and
    presynaptic neurons; `cursor` is the next synapse of that neuron's row (rows are
    sorted by delay) still to be delivered."""

    emit_t: Float[Array, " Q"]
    pre: Int[Array, " Q"]
    cursor: Int[Array, " Q"]
    live: Bool[Array, " Q"]
    tail: Int[Array, ""]
    overflow: Bool[Array, ""]


def _jump(neuron, state, x, target):
    if target is None:
        return neuron.receive(state, x)
    return eqx.tree_at(lambda s: getattr(s, target), state, getattr(state, target) + x)


class NetworkSystem(eqx.Module):
    network: Network
    record_fields: dict | None = eqx.field(static=True)
    queue_size: int = eqx.field(static=True)

    @property
    def num_neurons(self) -> int:
        return self.network.num_neurons

    @property
    def spiking_mask(self) -> np.ndarray:
        return np.concatenate(
            [np.full((p.n,), p.neuron.spiking) for p in self.network.populations.values()]
        )

    @property
    def disarm_mask(self) -> np.ndarray:
        return np.concatenate(
            [
                np.full((p.n,), p.neuron.disarms_on_spike)
                for p in self.network.populations.values()
            ]
        )

    def _split(self, flat):
        parts, start = {}, 0
        for name, pop in self.network.populations.items():
            parts[name] = flat[start : start + pop.n]
            start += pop.n
        return parts

    @staticmethod
    def _current(pop, t, dtype):
        return jnp.broadcast_to(jnp.asarray(pop.current(t), dtype), (pop.n,))

    def vector_field(self, t, y):
        out = {}
        for name, pop in self.network.populations.items():
            dtype = jtu.tree_leaves(y[name])[0].dtype
            out[name] = pop.neuron.dynamics(t, y[name], self._current(pop, t, dtype))
        return out

    def conditions(self, t, y):
        spikes, rearms = [], []
        for name, pop in self.network.populations.items():
            dtype = jtu.tree_leaves(y[name])[0].dtype
            if not pop.neuron.spiking:
                spikes.append(-jnp.ones((pop.n,), dtype))
                rearms.append(-jnp.ones((pop.n,), dtype))
                continue
            current = self._current(pop, t, dtype)
            spike = pop.neuron.spike_condition(t, y[name], current)
            spikes.append(spike)
            if pop.neuron.disarms_on_spike:
                rearms.append(pop.neuron.rearm_condition(t, y[name], current))
            else:
                rearms.append(-spike)
        return jnp.concatenate(spikes), jnp.concatenate(rearms)

    # ----- discrete state -------------------------------------------------------------

    def init_aux(self, dtype):
        queues = []
        for conn in self.network.connections:
            if conn.delay is None:
                queues.append(None)
                continue
            size = self.queue_size
            queues.append(
                DelayQueue(
                    emit_t=jnp.full((size,), jnp.inf, dtype),
                    pre=jnp.zeros((size,), jnp.int32),
                    cursor=jnp.zeros((size,), jnp.int32),
                    live=jnp.zeros((size,), bool),
                    tail=jnp.asarray(0, jnp.int32),
                    overflow=jnp.asarray(False),
                )
            )
        return tuple(queues)

    def failed(self, aux) -> Bool[Array, ""]:
        flags = [q.overflow for q in aux if q is not None]
        return jnp.any(jnp.stack(flags)) if flags else jnp.asarray(False)

    @staticmethod
    def _arrivals(conn: Connection, queue: DelayQueue):
        if conn.per_synapse_delay:
            row_delay = conn.delay[
                queue.pre, jnp.minimum(queue.cursor, conn.delay.shape[1] - 1)
            ]
        else:
            row_delay = conn.delay
        return jnp.where(queue.live, queue.emit_t + row_delay, jnp.inf)

    @staticmethod
    def _enqueue(queue: DelayQueue, t, fired, whole=False):
        size = queue.emit_t.shape[0]
        count = jnp.sum(fired, dtype=jnp.int32)
        pre = jnp.arange(fired.shape[0], dtype=jnp.int32)
        if whole:
            # One reduction and four row updates per fired neuron (usually one).
            fired_pre = nonzero(fired, fired.shape[0], fired.shape[0])
            slot = (queue.tail + jnp.arange(fired.shape[0], dtype=jnp.int32)) % size
            taken = jnp.any(queue.live[slot] & (pre < count))

            def write(k, fields):
                emit_t, pre_, cursor, live = fields
                i = slot[k]
                return (
                    put_row(emit_t, i, t),
                    put_row(pre_, i, fired_pre[k]),
                    put_row(cursor, i, 0),
                    put_row(live, i, True),
                )

            fields = (queue.emit_t, queue.pre, queue.cursor, queue.live)
            emit_t, pre_, cursor, live = lax.fori_loop(0, count, write, fields)
        else:
            slot = (queue.tail + jnp.cumsum(fired, dtype=jnp.int32) - 1) % size
            slot = jnp.where(fired, slot, size)
            taken = jnp.any(queue.live[jnp.minimum(slot, size - 1)] & fired)
            emit_t = queue.emit_t.at[slot].set(t, mode="drop")
            pre_ = queue.pre.at[slot].set(pre, mode="drop")
            cursor = queue.cursor.at[slot].set(0, mode="drop")
            live = queue.live.at[slot].set(True, mode="drop")
        return DelayQueue(
            emit_t=emit_t,
            pre=pre_,
            cursor=cursor,
            live=live,
            tail=(queue.tail + count) % size,
            overflow=queue.overflow | taken | (count > size),
        )

    # ----- events ---------------------------------------------------------------------

    def on_spikes(self, t, y, aux, fired, differentiable: bool = True, whole=False):
        """Resets, immediate deliveries and delayed spikes queued. `whole`: in the form
        of a loop compiled whole (`neurosim._cpu`)."""
        pops = self.network.populations
        fired_by_pop = self._split(fired)
        y = dict(y)
        for name, pop in pops.items():
            y[name] = pop.neuron.reset(t, y[name], fired_by_pop[name])
        aux = list(aux)
        for k, conn in enumerate(self.network.connections):
            if conn.pre not in pops:
                continue
            if conn.delay is None:
                x = conn.deliver(fired_by_pop[conn.pre], differentiable, whole)
                y[conn.post] = _jump(pops[conn.post].neuron, y[conn.post], x, conn.target)
            else:
                aux[k] = self._enqueue(aux[k], t, fired_by_pop[conn.pre], whole)
        return y, tuple(aux)

    def input_offsets(self) -> dict[str, int]:
        offsets, start = {}, 0
        for name, source in self.network.inputs.items():
            offsets[name] = start
            start += source.num_sources
        return offsets

    def on_input(self, y, sources, valid, whole=False):
        pops = self.network.populations
        offsets = self.input_offsets()
        y = dict(y)
        for conn in self.network.connections:
            if conn.pre not in offsets:
                continue
            local = sources - offsets[conn.pre]
            ok = valid & (local >= 0) & (local < conn.n_pre)
            x = conn.rows(jnp.clip(local, 0, conn.n_pre - 1), ok, whole=whole)
            y[conn.post] = _jump(pops[conn.post].neuron, y[conn.post], x, conn.target)
        return y

    def next_internal_time(self, t, y, aux, whole=False):
        """The next scheduled change: a current jump, a delayed delivery, a model's own
        schedule (the end of a refractory period). `whole`: see `on_spikes`."""
        times = []
        for name, pop in self.network.populations.items():
            times.append(jnp.asarray(pop.neuron.next_scheduled_time(y[name])))
            times.append(jnp.asarray(pop.current.next_jump(t)))
        for conn, queue in zip(self.network.connections, aux):
            if queue is not None:
                arrivals = self._arrivals(conn, queue)
                times.append(smallest(arrivals) if whole else jnp.min(arrivals))
        dtype = jtu.tree_leaves(y)[0].dtype
        return jnp.min(jnp.stack([x.astype(dtype) for x in times]))

    def apply_internal(self, t, y, aux, whole=False):
        pops = self.network.populations
        y = {name: pop.neuron.apply_scheduled(t, y[name]) for name, pop in pops.items()}
        aux = list(aux)
        for k, (conn, queue) in enumerate(zip(self.network.connections, aux)):
            if queue is None:
                continue
            size = queue.emit_t.shape[0]
            due = self._arrivals(conn, queue) == t
            per_iteration = min(DELIVERIES_PER_ITERATION, size)
            if whole:
                slots = nonzero(due, per_iteration, size)
            else:
                slots = jnp.nonzero(due, size=per_iteration, fill_value=size)[0]
            ok = slots < size
            slots = jnp.minimum(slots, size - 1)
            rows = queue.pre[slots]
            if conn.per_synapse_delay:
                row_delays = conn.delay[rows]
                now = row_delays[
                    jnp.arange(rows.shape[0]),
                    jnp.minimum(queue.cursor[slots], row_delays.shape[1] - 1),
                ]
                mask = row_delays == now[:, None]
                x = conn.rows(rows, ok, synapse_mask=mask, whole=whole)
                next_cursor = jnp.sum(row_delays <= now[:, None], axis=1).astype(jnp.int32)
                finished = (next_cursor >= row_delays.shape[1]) | ~jnp.isfinite(
                    row_delays[
                        jnp.arange(rows.shape[0]),
                        jnp.minimum(next_cursor, row_delays.shape[1] - 1),
                    ]
                )
            else:
                x = conn.rows(rows, ok, whole=whole)
                next_cursor = queue.cursor[slots]
                finished = jnp.ones_like(ok)
            write = jnp.where(ok, slots, size)
            if whole:
                count = jnp.sum(ok, dtype=jnp.int32)
                cursor = set_rows(queue.cursor, write, next_cursor, count)
                live = set_rows(queue.live, write, ~finished, count)
            else:
                cursor = queue.cursor.at[write].set(next_cursor, mode="drop")
                live = queue.live.at[write].set(~finished, mode="drop")
            aux[k] = eqx.tree_at(lambda q: (q.cursor, q.live), queue, (cursor, live))
            y[conn.post] = _jump(pops[conn.post].neuron, y[conn.post], x, conn.target)
        return y, tuple(aux)

    def observe(self, y):
        """The part of the state recorded at record times: the state itself, or a
        `Record` of the fields named in `record_fields` (read as attributes too)."""
        if self.record_fields is None:
            return y
        return {
            name: Record({field: getattr(y[name], field) for field in fields})
            for name, fields in self.record_fields.items()
        }
