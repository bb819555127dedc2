"""Networks: named populations, projections between them, and external spike inputs.

A `Network` is data: each `Population` is one neuron model with `n` neurons and an
optional external current; each `Projection` connects a population or an input group
(`pre`) to a population (`post`) with weights (dense `(n_pre, n_post)` or sparse), an
optional delay (ms, one value or one per synapse) and a target (the state field a spike
jumps; by default the model's `receive` decides). `SpikeTrains` are external inputs.

Internally each projection is stored row by row (the outgoing synapses of each
presynaptic neuron, padded to the largest fan-out, rounded up to a multiple of 8), so
a spike costs one row of work, never a dense pass over the whole matrix.
"""

import functools

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse as jsparse
from jaxtyping import Array, Bool, Float, Int

from ._checks import as_count, check_finite, check_positive, is_concrete
from ._cpu import add_at, nonzero, set_rows
from ._currents import AbstractCurrent, as_current
from ._memory import RELEASE_ENTRIES, release_free_memory
from .neurons.base import AbstractNeuron

# Fired neurons handled by gathering their rows; more at once use one pass over all rows.
GATHER_ROWS = 8


class Population(eqx.Module):
    """`n` neurons of one model, with an optional external `current` (see
    `simulate`'s `current`: a number, an `(n,)` array, a callable or a waveform)."""

    neuron: AbstractNeuron
    n: int = eqx.field(static=True)
    current: AbstractCurrent

    def __init__(self, neuron: AbstractNeuron, n: int, current=None):
        if not isinstance(neuron, AbstractNeuron):
            raise TypeError(
                f"Population: `neuron` must be a neurosim model, got {type(neuron).__name__}."
            )
        self.neuron = neuron
        self.n = as_count("Population", "n", n, "Pass the number of neurons.")
        self.current = as_current(current)


def _named(items, what: str) -> dict:
    """A dict of named items from a mapping or from `(name, item)` pairs, refusing a
    name given twice (a dict built from the pairs would keep the last silently)."""
    if hasattr(items, "items"):
        return dict(items.items())
    pairs = list(items)
    names = [name for name, _ in pairs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"Network: `{what}` names {repeated} more than once. Give each a unique name."
        )
    return dict(pairs)


class SpikeTrains(eqx.Module):
    """External spike trains: spike `k` comes from source `sources[k]` at `times[k]`
    (ms). `num_sources` sources in all; `+inf` times are padding and never arrive.
    `neurosim.inputs.poisson_spikes` returns `(times, sources)` for this."""

    times: Float[Array, " K"]
    sources: Int[Array, " K"]
    num_sources: int = eqx.field(static=True)

    def __init__(self, times, sources, num_sources: int):
        times = jnp.asarray(times)
        if not jnp.issubdtype(times.dtype, jnp.floating):
            times = times.astype(jnp.result_type(float))
        sources = jnp.asarray(sources, jnp.int32)
        if times.ndim != 1 or sources.shape != times.shape:
            raise ValueError(
                "SpikeTrains: `times` and `sources` must be 1-D arrays of equal length "
                f"(got {times.shape} and {sources.shape})."
            )
        # Checked with numpy: a jnp reduction under a jit trace is staged, even of a
        # concrete array.
        if (
            is_concrete(sources)
            and sources.size
            and (
                int(np.min(np.asarray(sources))) < 0
                or int(np.max(np.asarray(sources))) >= num_sources
            )
        ):
            raise ValueError(f"SpikeTrains: `sources` must lie in [0, {num_sources}).")
        check_finite("SpikeTrains", "times", times, allow_inf=True)
        self.times = times
        self.sources = sources
        self.num_sources = as_count(
            "SpikeTrains", "num_sources", num_sources, "Pass the number of sources."
        )


class Projection(eqx.Module):
    """Synapses from `pre` (a population or input name) to the population `post`.

    **Arguments:**

    - `pre`, `post`: names in the network.
    - `weights`: dense `(n_pre, n_post)` array (row = presynaptic), a
        `jax.experimental.sparse.BCOO` matrix of that shape, or a triple
        `(pre_index, post_index, values)` of 1-D arrays (one entry per synapse).
    - `delay`: None or 0 (immediate), a scalar (ms), or one value per synapse (an
        `(n_pre, n_post)` array for dense weights, else aligned with the synapses).
        Per-synapse delays may be traced (differentiated): their order within a
        presynaptic row is taken from their values, without derivatives.
    - `target`: the name of the postsynaptic state field that a spike jumps by its
        weight (e.g. `"v"` for delta synapses onto a LIF); None uses the model's
        `receive` (for the LIF family, the synaptic current `i`).
    """

    pre: str = eqx.field(static=True)
    post: str = eqx.field(static=True)
    weights: object
    delay: object
    target: str | None = eqx.field(static=True)

    def __init__(
        self, pre: str, post: str, weights, *, delay=None, target: str | None = None
    ):
        self.pre = pre
        self.post = post
        self.weights = weights
        self.delay = delay
        self.target = target


class Connection(eqx.Module):
    """Internal: a projection stored by presynaptic rows, with its delays sorted
    within each row. `post_index` is None for dense rows (row = all postsynaptic
    neurons); padded entries point past the last neuron and are dropped."""

    pre: str = eqx.field(static=True)
    post: str = eqx.field(static=True)
    target: str | None = eqx.field(static=True)
    n_pre: int = eqx.field(static=True)
    n_post: int = eqx.field(static=True)
    weight: Float[Array, "n_pre F"]
    post_index: Int[Array, "n_pre F"] | None
    delay: Float[Array, "..."] | None
    per_synapse_delay: bool = eqx.field(static=True)

    def rows(
        self,
        rows: Int[Array, " G"],
        valid: Bool[Array, " G"],
        synapse_mask=None,
        whole: bool = False,
    ):
        """The summed input to `post` from presynaptic `rows` (where `valid`). `whole`:
        in the form of a loop compiled whole (`neurosim._cpu`): dense rows summed
        elementwise, sparse ones added entry by entry (no reduction, no scatter)."""
        weight = self.weight[rows] * valid[:, None].astype(self.weight.dtype)
        if synapse_mask is not None:
            weight = weight * synapse_mask.astype(weight.dtype)
        if self.post_index is None:
            if whole:
                return functools.reduce(jnp.add, list(weight))
            return jnp.sum(weight, axis=0)
        target = jnp.zeros((self.n_post,), weight.dtype)
        if whole:
            return add_at(target, self.post_index[rows].reshape(-1), weight.reshape(-1))
        return target.at[self.post_index[rows]].add(weight, mode="drop")

    def deliver(
        self,
        fired: Bool[Array, " n_pre"],
        differentiable: bool = True,
        whole: bool = False,
    ):
        """The input to `post` when the presynaptic neurons in `fired` spike: their
        rows, gathered `GATHER_ROWS` at a time, never a dense pass over all rows for the
        usual few spikes. Beyond `GATHER_ROWS` simultaneous spikes: a dense pass when
        `differentiable` (reverse-mode autodiff needs a branch, not a loop of unknown
        length), else further rounds of gathers in a loop (no branch, whose operands
        would be copied on every call). `whole`: see `rows`."""
        gather = min(GATHER_ROWS, self.n_pre)

        def first_rows(mask):
            if whole:
                return nonzero(mask, gather, self.n_pre)
            return jnp.nonzero(mask, size=gather, fill_value=self.n_pre)[0]

        rows = first_rows(fired)
        valid = rows < self.n_pre
        if gather == self.n_pre:
            return self.rows(jnp.minimum(rows, self.n_pre - 1), valid, whole=whole)

        if differentiable:

            def many():
                scale = fired.astype(self.weight.dtype)[:, None]
                if self.post_index is None:
                    return jnp.sum(self.weight * scale, axis=0)
                target = jnp.zeros((self.n_post,), self.weight.dtype)
                return target.at[self.post_index].add(self.weight * scale, mode="drop")

            def few():
                return self.rows(jnp.minimum(rows, self.n_pre - 1), valid)

            return lax.cond(jnp.sum(fired) <= gather, few, many)

        def clear(remaining, rows, ok):
            where = jnp.where(ok, rows, self.n_pre)
            if whole:
                return set_rows(remaining, where, jnp.zeros(where.shape, bool))
            return remaining.at[where].set(False, mode="drop")

        first = self.rows(jnp.minimum(rows, self.n_pre - 1), valid, whole=whole)

        def cond(carry):
            remaining, _ = carry
            return jnp.any(remaining)

        def body(carry):
            remaining, x = carry
            more = first_rows(remaining)
            ok = more < self.n_pre
            more = jnp.minimum(more, self.n_pre - 1)
            remaining = clear(remaining, more, ok)
            return remaining, x + self.rows(more, ok, whole=whole)

        return lax.while_loop(cond, body, (clear(fired, rows, valid), first))[1]


def _as_triplets(weights, n_pre, n_post, delay, owner):
    """Sparse input as concrete index arrays plus (possibly traced) values/delays."""
    if isinstance(weights, jsparse.BCOO):
        if weights.shape != (n_pre, n_post):
            raise ValueError(
                f"{owner}: sparse `weights` has shape {weights.shape}, expected ({n_pre}, {n_post})."
            )
        indices = np.asarray(weights.indices)
        return indices[:, 0], indices[:, 1], weights.data, delay
    try:
        pre_index, post_index, values = weights
    except (TypeError, ValueError):
        raise ValueError(
            f"{owner}: `weights` must be an (n_pre, n_post) array, a BCOO matrix or a "
            "triple (pre_index, post_index, values)."
        ) from None
    if not is_concrete((pre_index, post_index)):
        raise ValueError(
            f"{owner}: sparse indices must be concrete arrays, not traced values."
        )
    pre_index, post_index = np.asarray(pre_index), np.asarray(post_index)
    values = jnp.asarray(values)
    if not (pre_index.shape == post_index.shape == values.shape) or pre_index.ndim != 1:
        raise ValueError(
            f"{owner}: pre_index, post_index and values must be 1-D of equal length."
        )
    if pre_index.size and (pre_index.min() < 0 or pre_index.max() >= n_pre):
        raise ValueError(f"{owner}: pre_index must lie in [0, {n_pre}).")
    if post_index.size and (post_index.min() < 0 or post_index.max() >= n_post):
        raise ValueError(f"{owner}: post_index must lie in [0, {n_post}).")
    return pre_index, post_index, values, delay


def build_connection(proj: Projection, n_pre: int, n_post: int, dtype) -> Connection:
    owner = f"Projection {proj.pre!r} -> {proj.post!r}"
    delay = proj.delay
    if delay is not None:
        delay = jnp.asarray(delay, dtype)
        check_positive(owner, "delay", delay, allow_zero=True)
        check_finite(owner, "delay", delay)
        if delay.ndim == 0 and is_concrete(delay) and float(delay) == 0.0:
            delay = None
    per_synapse = delay is not None and delay.ndim > 0
    dense = isinstance(proj.weights, (jax.Array, np.ndarray)) or (
        hasattr(proj.weights, "shape") and not isinstance(proj.weights, jsparse.BCOO)
    )
    if dense:
        weight = jnp.asarray(proj.weights, dtype)
        if weight.shape != (n_pre, n_post):
            raise ValueError(
                f"{owner}: `weights` has shape {weight.shape}, expected ({n_pre}, {n_post})."
            )
        # A concrete matrix that is mostly zeros is stored by its synapses: a spike
        # then touches its targets only. (A traced one, which may be differentiated
        # with respect to its zeros too, stays dense.)
        sparse_enough = is_concrete(weight) and np.mean(np.asarray(weight) != 0) <= 0.5
        if not per_synapse and not sparse_enough:
            return Connection(
                proj.pre, proj.post, proj.target, n_pre, n_post, weight, None, delay, False
            )
        if not per_synapse:
            pre_index, post_index = np.nonzero(np.asarray(weight) != 0)
            values = weight[pre_index, post_index]
        elif delay.shape != (n_pre, n_post):
            raise ValueError(
                f"{owner}: per-synapse `delay` has shape {delay.shape}, expected ({n_pre}, {n_post})."
            )
        else:
            nonzero = (
                np.nonzero(np.asarray(weight) != 0)
                if is_concrete(weight)
                else np.nonzero(np.ones((n_pre, n_post)))
            )
            pre_index, post_index = nonzero
            values = weight[pre_index, post_index]
            delay = delay[pre_index, post_index]
    else:
        pre_index, post_index, values, delay = _as_triplets(
            proj.weights, n_pre, n_post, delay, owner
        )
        values = jnp.asarray(values, dtype)
        if per_synapse:
            delay = jnp.asarray(delay, dtype)
            if delay.shape != values.shape:
                raise ValueError(
                    f"{owner}: per-synapse `delay` must have one value per synapse ({values.shape})."
                )
    # Order synapses by presynaptic neuron, then by delay, and pad rows to equal length.
    # Traced per-synapse delays (being differentiated) are ordered within their rows
    # below, in the traced program.
    traced_delay = per_synapse and not is_concrete(delay)
    weight, post, delay = _pad_rows(
        pre_index,
        post_index,
        values,
        delay,
        n_pre,
        n_post,
        dtype,
        per_synapse,
        traced_delay,
    )
    if traced_delay:
        # The order is a discrete choice, taken from the values without their
        # derivatives; the sorted values keep them (padding, at inf, stays last).
        within = jnp.argsort(lax.stop_gradient(delay), axis=1, stable=True)
        weight = jnp.take_along_axis(weight, within, axis=1)
        post = jnp.take_along_axis(jnp.asarray(post), within, axis=1)
        delay = jnp.take_along_axis(delay, within, axis=1)
    return Connection(
        proj.pre,
        proj.post,
        proj.target,
        n_pre,
        n_post,
        weight,
        jnp.asarray(post),
        delay,
        per_synapse,
    )


# Rows wider than this are padded to a multiple of it. XLA's CPU code for the event
# loop's work over a spike's targets (vector registers of 8 float32 lanes) runs faster
# on such widths than on the narrower ones between them: CUBA 4000 with 80 targets per
# neuron, its rows padded to 100, 104, 110 and 112 entries, 10.6, 9.7, 11.9 and 10.5 us
# per spike.
ROW_MULTIPLE = 8


def padded_width(longest: int) -> int:
    """The width of rows whose longest holds `longest` entries: at least 1, and a
    multiple of `ROW_MULTIPLE` above it."""
    if longest <= ROW_MULTIPLE:
        return max(longest, 1)
    return -(-longest // ROW_MULTIPLE) * ROW_MULTIPLE


def _pad_rows(
    pre_index, post_index, values, delay, n_pre, n_post, dtype, per_synapse, traced
):
    """The synapses as rows of their presynaptic neurons, padded to the longest row
    (rounded: `padded_width`): `(weight, post, delay)`, each `(n_pre, width)`; padded
    entries have weight 0, `post` = `n_post` and delay inf. Within a row, synapses
    follow their concrete delays (per synapse), else their given order.

    The index work is NumPy's, in 32 bits where it fits, and concrete values are
    written straight into the padded rows: building a large network peaks at a few
    copies of its synapse arrays (CUBA at N = 64 000, 5.1 M synapses, 4 bytes each).
    Traced values (and traced delays) are gathered into place by the traced program."""
    index_dtype = np.int32 if len(pre_index) < 2**31 - 1 else np.int64
    pre_index = np.asarray(pre_index).astype(index_dtype, copy=False)
    if per_synapse and not traced:
        order = np.lexsort((np.asarray(delay), pre_index)).astype(index_dtype)
    elif np.all(pre_index[1:] >= pre_index[:-1]):
        order = None  # already in row order (as `random_connections` draws them)
    else:
        order = np.argsort(pre_index, kind="stable").astype(index_dtype)

    def ordered(x):
        return x if order is None else x[order]

    rows = ordered(pre_index)
    del pre_index
    counts = np.bincount(rows, minlength=n_pre)
    width = padded_width(int(counts.max()) if counts.size else 0)
    starts = (np.cumsum(counts) - counts).astype(index_dtype)
    del counts
    column = np.arange(len(rows), dtype=index_dtype)
    column -= starts[rows]
    del starts
    post = np.full((n_pre, width), n_post, np.int32)
    post[rows, column] = ordered(np.asarray(post_index)).astype(np.int32, copy=False)
    concrete = is_concrete(values) and not traced
    if concrete and not per_synapse:
        weight = np.zeros((n_pre, width), np.dtype(dtype))
        weight[rows, column] = ordered(np.asarray(values, np.dtype(dtype)))
        return jnp.asarray(weight), jnp.asarray(post), delay
    # Traced weights or per-synapse delays: each entry's synapse, gathered.
    num = len(rows)
    gather = np.zeros((n_pre, width), index_dtype)
    gather[rows, column] = np.arange(num, dtype=index_dtype) if order is None else order
    del rows, column
    padded = post == n_post
    if num:
        weight = jnp.where(padded, 0.0, jnp.asarray(values, dtype)[gather])
    else:
        weight = jnp.zeros((n_pre, width), dtype)
    if per_synapse:
        delay = jnp.where(padded, jnp.inf, jnp.asarray(delay, dtype)[gather])
    return weight, jnp.asarray(post), delay


def _trigger(c: int, conn: Connection, populations) -> tuple:
    """What makes connection `c` deliver: a spike of its source population (`"spike"`),
    its own delay queue (`"delay"`), or an external input spike (`"input"`). The
    connections into one population with the same trigger deliver together."""
    if conn.pre not in populations:
        return ("input", conn.pre)
    if conn.delay is None:
        return ("spike", conn.pre)
    return ("delay", c)


class DeliveryPlan(eqx.Module):
    """Internal: where the connections that deliver together into one population
    (`members`, same `trigger`) put a presynaptic row's input, for the exact event
    loop. `index[row]` lists the row's targets over all members, each once (padded
    with `n_post`; None: every neuron in order); `sources[k][row]` gives, for each
    entry, the slot of member `k`'s row that feeds it (its row width where none; None:
    the member's row is the list itself); `self_slot[row]` is where a neuron of a
    population that projects onto itself finds itself in its own row (`W` if absent;
    None: not such a projection, or dense rows, where it is `row`).

    Where no row has targets in more than one member (the usual split of a population
    into excitatory and inhibitory senders), `index[row]` is the row of the member
    that has one, and `sources` is all None: each member's row is aligned with the
    list, slot for slot, the other members' rows being padding (weight 0). At N =
    64 000 with two members that is two fewer arrays of N x 80 entries.

    `aligned` is False (and the arrays None) where a row reaches a neuron twice or the
    indices are traced: the loop then sums the input of such a group densely.
    `width`: the width of an aligned plan's rows (its longest row's length, padded:
    `padded_width`; the population's size for dense rows); `typical`: the length that
    `TYPICAL_SHARE` of its rows do not exceed, rounded up to a multiple of
    `ROW_MULTIPLE` (at most `width`; the loop's narrow branch, `neurosim._per_neuron`).
    Both are static, so part of the key of a compiled program: as padded widths they
    are the same for networks of the same shapes drawn from other seeds (the longest
    row itself varies from seed to seed), which then share their compiled programs."""

    post: str = eqx.field(static=True)
    trigger: tuple = eqx.field(static=True)
    members: tuple[int, ...] = eqx.field(static=True)
    aligned: bool = eqx.field(static=True)
    index: Int[Array, "rows W"] | None = None
    sources: tuple | None = None
    self_slot: Int[Array, " rows"] | None = None
    width: int | None = eqx.field(static=True, default=None)
    typical: int | None = eqx.field(static=True, default=None)


# The share of a plan's rows whose length `DeliveryPlan.typical` covers.
TYPICAL_SHARE = 0.8
# Rows of a delivery plan worked on at a time.
PLAN_BLOCK = 4096


def _place_block(rows, block, n_post, width, index, slots):
    """Rows `block` of a plan joining several members (`rows`, each member's post
    indices): each row's targets moved to the front, in member order, into `index`,
    and for each entry, the slot of its member's row, into `slots`. An entry's place
    is the number of targets before it in the joined row (a spare last column takes
    the padding, then is dropped)."""
    joined = np.concatenate([row[block] for row in rows], axis=1)
    place = np.cumsum(joined < n_post, axis=1, dtype=np.int32) - 1
    place = np.where(joined < n_post, place, width)
    spare = np.full((joined.shape[0], width + 1), n_post, np.int32)
    np.put_along_axis(spare, place, joined.astype(np.int32), axis=1)
    index[block] = spare[:, :width]
    offset = 0
    for row, slot in zip(rows, slots, strict=True):
        row_width = row.shape[1]
        spare = np.full((joined.shape[0], width + 1), row_width, np.int32)
        taken = np.broadcast_to(np.arange(row_width, dtype=np.int32), row[block].shape)
        np.put_along_axis(spare, place[:, offset : offset + row_width], taken, axis=1)
        slot[block] = spare[:, :width]
        offset += row_width


def _plan(post: str, trig: tuple, members, connections) -> DeliveryPlan:
    """The delivery plan of one group of connections (see `DeliveryPlan`)."""
    members = tuple(members)
    unaligned = DeliveryPlan(post, trig, members, False)
    conns = [connections[c] for c in members]
    n_post = conns[0].n_post
    if any(conn.post_index is None for conn in conns):
        if len(conns) > 1:
            return unaligned  # several dense rows reach every neuron more than once
        return DeliveryPlan(post, trig, members, True, None, (None,), None, n_post)
    if not all(is_concrete(conn.post_index) for conn in conns):
        return unaligned
    rows = [np.asarray(conn.post_index) for conn in conns]
    # Row-local work, a block of rows at a time: its temporaries stay small beside the
    # network (several copies of all rows at N = 64 000 otherwise).
    blocks = [slice(lo, lo + PLAN_BLOCK) for lo in range(0, rows[0].shape[0], PLAN_BLOCK)]
    width, lengths = 1, []
    for block in blocks:
        joined = np.concatenate([row[block] for row in rows], axis=1)
        ordered = np.sort(joined, axis=1)
        if np.any((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] < n_post)):
            return unaligned
        lengths.append(np.sum(joined < n_post, axis=1))
        width = max(width, int(np.max(lengths[-1], initial=0)))
    lengths = np.concatenate(lengths)
    typical = (
        int(np.quantile(lengths, TYPICAL_SHARE, method="higher")) if lengths.size else 0
    )
    width = padded_width(width)
    typical = min(width, -(-max(typical, 1) // ROW_MULTIPLE) * ROW_MULTIPLE)
    if len(conns) == 1:
        index, sources = rows[0], (None,)
    elif _disjoint(rows, n_post):
        width = max(row.shape[1] for row in rows)
        index = np.full((rows[0].shape[0], width), n_post, np.int32)
        for row in rows:
            own = np.any(row < n_post, axis=1)
            index[own, : row.shape[1]] = row[own]
        sources = (None,) * len(conns)
    else:
        index = np.full((rows[0].shape[0], width), n_post, np.int32)
        slots = [np.full(index.shape, row.shape[1], np.int32) for row in rows]
        for block in blocks:
            _place_block(rows, block, n_post, width, index, slots)
        sources = tuple(jnp.asarray(slot) for slot in slots)
        del slots
    self_slot = None
    if trig == ("spike", post):
        found = index == np.arange(index.shape[0])[:, None]
        self_slot = np.where(
            np.any(found, axis=1), np.argmax(found, axis=1), index.shape[1]
        )
        self_slot = jnp.asarray(self_slot.astype(np.int32))
    # One member: its own rows are the list (one array for both).
    index = conns[0].post_index if len(conns) == 1 else jnp.asarray(index)
    return DeliveryPlan(
        post, trig, members, True, index, sources, self_slot, width, typical
    )


def _disjoint(rows, n_post) -> bool:
    """Whether no presynaptic row has targets in more than one of `rows`."""
    count = np.zeros(rows[0].shape[0], np.int32)
    for row in rows:
        count += np.any(row < n_post, axis=1)
    return bool(np.all(count <= 1))


def _delivery_plans(populations, connections) -> tuple[DeliveryPlan, ...]:
    """One plan per group of connections that deliver together."""
    groups = {}
    for c, conn in enumerate(connections):
        groups.setdefault((conn.post, _trigger(c, conn, populations)), []).append(c)
    return tuple(
        _plan(post, trig, members, connections) for (post, trig), members in groups.items()
    )


class Network(eqx.Module):
    """Populations, projections and external inputs, simulated together by
    `neurosim.simulate(network, t1=...)`.

    **Arguments:**

    - `populations`: a dict name -> `Population`.
    - `projections`: a sequence of `Projection`.
    - `inputs`: a dict name -> `SpikeTrains` (external spike sources).

    Global neuron indices (`Solution.spike_neurons`) number the populations in the
    order of their names (`network.offsets`); `Solution.spikes(name)` gives each
    population's own indices.

    **Example:**

    ```python
    net = ns.Network(
        populations={"hidden": ns.Population(ns.LIF(), 100), "readout": ns.Population(ns.LI(), 10)},
        projections=[ns.Projection("drive", "hidden", w_in), ns.Projection("hidden", "readout", w_out)],
        inputs={"drive": ns.SpikeTrains(times, sources, num_sources=20)},
    )
    sol = ns.simulate(net, t1=200.0, record=jnp.linspace(0, 200, 201))
    ```
    """

    populations: dict[str, Population]
    connections: tuple[Connection, ...]
    inputs: dict[str, SpikeTrains]
    plans: tuple[DeliveryPlan, ...]

    def __init__(self, populations, projections=(), inputs=None):
        # Kept in name order: JAX flattens dicts by sorted key, so inside `jit` this is
        # the order anyway, and global indices must mean the same outside.
        inputs = {} if inputs is None else dict(sorted(_named(inputs, "inputs").items()))
        populations = dict(sorted(_named(populations, "populations").items()))
        if not populations:
            raise ValueError("Network: `populations` must name at least one Population.")
        for name, pop in populations.items():
            if not isinstance(pop, Population):
                raise TypeError(
                    f"Network: population {name!r} must be a Population, got {type(pop).__name__}."
                )
        for name, source in inputs.items():
            if not isinstance(source, SpikeTrains):
                raise TypeError(
                    f"Network: input {name!r} must be SpikeTrains, got {type(source).__name__}."
                )
            if name in populations:
                raise ValueError(
                    f"Network: the name {name!r} is both a population and an input."
                )
        connections = []
        for proj in projections:
            if proj.post not in populations:
                raise ValueError(
                    f"Network: projection target {proj.post!r} is not a population "
                    f"(populations: {sorted(populations)})."
                )
            if proj.pre in populations:
                n_pre = populations[proj.pre].n
            elif proj.pre in inputs:
                n_pre = inputs[proj.pre].num_sources
                if proj.delay is not None and np.any(np.asarray(proj.delay) != 0):
                    raise ValueError(
                        f"Network: projection from input {proj.pre!r} has a delay; shift the "
                        "input spike times instead."
                    )
            else:
                raise ValueError(
                    f"Network: projection source {proj.pre!r} is neither a population nor an "
                    f"input (populations: {sorted(populations)}, inputs: {sorted(inputs)})."
                )
            post = populations[proj.post]
            state = post.neuron.init_state(1)
            dtype = jax.tree_util.tree_leaves(state)[0].dtype
            if proj.target is not None and not hasattr(state, proj.target):
                raise ValueError(
                    f"Network: projection {proj.pre!r} -> {proj.post!r} targets "
                    f"{proj.target!r}, which is not a state field of {type(post.neuron).__name__}."
                )
            connections.append(build_connection(proj, n_pre, post.n, dtype))
        self.populations = populations
        self.connections = tuple(connections)
        self.inputs = inputs
        self.plans = _delivery_plans(populations, self.connections)
        entries = sum(int(np.prod(conn.weight.shape)) for conn in self.connections)
        if entries >= RELEASE_ENTRIES:
            release_free_memory()  # the building's temporaries (`neurosim._memory`)

    @property
    def distinct_targets(self) -> bool:
        """Whether no presynaptic neuron reaches a postsynaptic neuron twice through
        the connections that deliver together (then every group has a plan)."""
        return all(plan.aligned for plan in self.plans)

    @property
    def offsets(self) -> dict[str, int]:
        """The first global neuron index of each population (spike_neurons are global)."""
        offsets, start = {}, 0
        for name, pop in self.populations.items():
            offsets[name] = start
            start += pop.n
        return offsets

    @property
    def num_neurons(self) -> int:
        return sum(pop.n for pop in self.populations.values())
