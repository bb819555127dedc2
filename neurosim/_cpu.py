"""The event loops as one compiled function on XLA's CPU backend.

XLA's CPU runtime runs the body of a loop as a sequence of small compiled kernels,
with a dispatch between each. An event of the exact loop (`neurosim._per_neuron`) is
about 80 such kernels over a hundred lanes each, so the dispatches cost about a third
of it. XLA can compile a *call* into a single function instead: its own pass for small
`while` loops marks their calls `xla_cpu_small_call`, and the CPU backend then emits
the callee as one function, loops and all. `one_kernel` marks the call of the exact
loop that way (and keeps XLA from inlining it) through JAX's `set_xla_metadata`. Only
that call changes; nothing is set for the process, and other programs are compiled as
before.

Such a function cannot hold a scatter, so the loop takes a form without one where it
is compiled whole (forward runs without repeated targets, of the closed form or of
ODE models solved per neuron by the lean stepper of `neurosim._clock`); under
`jax.vmap` batched indices would turn its row updates back into scatters, so a batched
call runs the usual loop (`_per_neuron.run`). The results are the same either way (bit
for bit in tests/test_cpu.py); on the CUBA benchmark an event costs about 40% less
(benchmarks/HISTORY.md).

The replay that differentiates the exact loop (`neurosim._replay`) compiles each of its
steps whole, with the step's derivative and transpose (`one_kernel(...,
differentiable=True)`): its steps are written so that neither reverse mode nor
`jax.vmap` makes a scatter of them, since a batched call cannot be routed to another
form once it is differentiated. Only where asked (`gradients="whole"`): a function
compiled whole cannot hold a reduction of 4096 entries or more either (XLA hands those
to a library kernel: "Fusion kind not implemented on CPU"), and a batch multiplies the
reductions of a step, reverse mode's included.

Some operations cannot be in a function compiled whole at all: XLA's CPU backend hands
long floating-point reductions, sorts and matrix products to library kernels, and the
compilation fails. The loops keep their own reductions short (`reduce`, `fold`); before
marking a call, `one_kernel` looks for such operations in its program (`blockers`: a
user's model or current may hold one) and, where it finds one, calls the program as
usual kernels instead.

The network clock's loop (`neurosim._engine`, models without a closed form) is
compiled whole the same way in forward runs on explicit Runge-Kutta solvers, with the
updates below in place of its scatters (`whole_unless_batched` routes batched calls to
its usual form): the Izhikevich (2003) network runs 2.2-2.5x faster
(tests/test_engine_whole.py, benchmarks/HISTORY.md, stop 30).
"""

import functools
import math

import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
from jax.experimental.xla_metadata import set_xla_metadata

# The XLA of this JAX compiles marked calls whole (checked with jax 0.10.2); older ones
# may inline the call (harmless) or reject what it holds.
MIN_JAX = (0, 10)


# XLA's CPU backend compiles a call so marked into one function (and does not inline it).
_MARK = {"xla_cpu_small_call": "true", "inlineable": "false"}

# XLA's CPU backend hands a reduction of this many entries or more to a library kernel
# (XNNPACK's), which a function compiled whole cannot call: its compilation then fails
# ("Fusion kind not implemented on CPU"; measured with jax 0.10.2, float32 and float64:
# 4095 entries compile, 4096 do not, whatever the shape). `reduce` stays below it; a
# loop whose own reductions (or reverse mode's) reach it is not compiled whole.
REDUCE_LIMIT = 4096


def compiles_whole() -> bool:
    """Whether a call marked by `one_kernel` is compiled into one function here: XLA's
    CPU backend, in a JAX recent enough."""
    recent = tuple(jax.__version_info__[:2]) >= MIN_JAX
    return recent and jax.default_backend() == "cpu"


def one_kernel(fn, *, differentiable=False):
    """`fn` (a function of pytrees of arrays) called as one function that XLA's CPU
    backend compiles whole. `fn` must hold no scatter (XLA cannot compile one into such
    a function: a compile error says so).

    `differentiable=True` marks the call through JAX's metadata context instead of its
    outputs: JAX keeps the context's mark on the calls it derives when it
    differentiates, partially evaluates or transposes the call, so that forward mode,
    and reverse mode's forward and backward passes, are compiled whole too. Their
    forms must then hold no scatter either (a gather's transpose is one)."""

    def marked(*args):
        closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*args)
        num_consts = len(closed.consts)
        if blockers(closed.jaxpr):
            # What XLA cannot compile whole (a model's own long reduction, a sort, a
            # matrix product): the same program as usual kernels, not a failed
            # compilation.
            out = jax.core.eval_jaxpr(closed.jaxpr, closed.consts, *jtu.tree_leaves(args))
            return jtu.tree_unflatten(jtu.tree_structure(shapes), out)
        # Every operand of the call opaque to constant folding: XLA cannot compile a
        # call whole with an operand it folded into a constant (arrays closed over
        # under an outer `jit`; its IR emitter aborts the process). An optimization
        # barrier hides where an operand comes from without copying it (a subtraction
        # of an unseen zero did the same and copied every operand: 90 MiB at
        # N = 64 000 on CUBA).
        operands = lax.optimization_barrier(
            [jnp.asarray(x) for x in [*closed.consts, *jtu.tree_leaves(args)]]
        )

        def call(*operands):
            consts, leaves = operands[:num_consts], operands[num_consts:]
            return jax.core.eval_jaxpr(closed.jaxpr, consts, *leaves)

        if differentiable:
            with set_xla_metadata(**_MARK):
                out = jax.jit(call)(*operands)
        else:
            out = set_xla_metadata(jax.jit(call)(*operands), **_MARK)
        return jtu.tree_unflatten(jtu.tree_structure(shapes), out)

    return marked


def whole_unless_batched(run, *args):
    """`run(*args, whole=True)` (a loop compiled whole: `run` calls `one_kernel`), or
    under `jax.vmap` that of `run(..., whole=False)`, the loop in its usual form:
    batched indices would make the row updates of the whole form scatters again.
    `args` are pytrees of arrays."""
    compiled = jax.custom_batching.custom_vmap(functools.partial(run, whole=True))

    @compiled.def_vmap
    def _batched(axis_size, in_batched, *batched_args):
        axes = tuple(
            jtu.tree_map(lambda batched: 0 if batched else None, flags)
            for flags in in_batched
        )
        usual = functools.partial(run, whole=False)
        out = jax.vmap(usual, in_axes=axes)(*batched_args)
        return out, jtu.tree_map(lambda _: True, out)

    return compiled(*args)


# ----- scatter-free forms of the updates a loop compiled whole makes ------------------


def row_start(row, ndim):
    """The start index of row `row` of an `ndim`-dimensional array, all of one integer
    type (`dynamic_slice` requires it; Python zeros become int64 under x64)."""
    row = jnp.asarray(row, jnp.int32)
    return (row,) + (jnp.zeros((), jnp.int32),) * (ndim - 1)


def put_row(array, i, row):
    """`array.at[i].set(row, mode="drop")` for one index `i`, as a dynamic update."""
    n = array.shape[0]
    start = row_start(jnp.clip(i, 0, n - 1), array.ndim)
    old = lax.dynamic_slice(array, start, (1,) + array.shape[1:])
    new = jnp.where((i >= 0) & (i < n), jnp.asarray(row, array.dtype)[None], old)
    return lax.dynamic_update_slice(array, new, start)


def set_rows(array, idx, rows, count=None):
    """`array.at[idx].set(rows, mode="drop")` as a loop of single-row updates over the
    first `count` entries of `idx` (all by default). Entries of `idx` are distinct or
    out of range."""
    count = idx.shape[0] if count is None else count
    return lax.fori_loop(0, count, lambda k, a: put_row(a, idx[k], rows[k]), array)


def add_at(target, idx, values):
    """`target.at[idx].add(values, mode="drop")` (flat `idx` and `values`) as a loop of
    single-entry updates, in the order of `idx`."""
    n = target.shape[0]

    def add(k, target):
        i = idx[k]
        j = jnp.clip(i, 0, n - 1)
        old = lax.dynamic_slice(target, (j,), (1,))
        new = jnp.where((i >= 0) & (i < n), old + values[k], old)
        return lax.dynamic_update_slice(target, new, (j,))

    return lax.fori_loop(0, idx.shape[0], add, target)


# Longer reductions are taken as a grid of rows of this many entries, combined row by
# row first: XLA hands a long one to a library kernel that a function compiled whole
# cannot hold ("Fusion kind not implemented on CPU"), and reduces short rows well.
REDUCE_COLUMNS = 128


def reduce(combine, x, fill):
    """`combine` (`jnp.minimum`, `jnp.maximum` or `jnp.add`) over the 1-D `x`, `fill`
    its identity, in a form a loop compiled whole can hold."""
    n = x.shape[0]
    if n > REDUCE_COLUMNS:
        rows = -(-n // REDUCE_COLUMNS)
        padded = jnp.pad(x, (0, rows * REDUCE_COLUMNS - n), constant_values=fill)
        x = functools.reduce(combine, list(padded.reshape(rows, REDUCE_COLUMNS)))
    return _FOLDS[combine](x)


_FOLDS = {jnp.minimum: jnp.min, jnp.maximum: jnp.max, jnp.add: jnp.sum}


def fold(combine, x):
    """`combine` (`jnp.minimum`, `jnp.maximum` or `jnp.add`) over the last axis of `x`:
    XLA's reduction where `x` has fewer than `REDUCE_LIMIT` entries (the same bits as
    before such arrays were folded), else by halving the axis with elementwise
    `combine`, which a loop compiled whole can hold."""
    if x.size < REDUCE_LIMIT:
        return _FOLDS[combine](x, axis=-1)
    while x.shape[-1] > 1:
        half = x.shape[-1] // 2
        head = combine(x[..., :half], x[..., half : 2 * half])
        x = (
            jnp.concatenate([head, x[..., 2 * half :]], axis=-1)
            if x.shape[-1] % 2
            else head
        )
    return x[..., 0]


# Primitives XLA's CPU backend hands to library kernels, which a function compiled whole
# cannot call (measured with jax 0.10.2): floating-point sums, products, minima and
# maxima of `REDUCE_LIMIT` entries or more ("Fusion kind not implemented on CPU";
# integer and boolean ones, `argmin`, `cumsum` compile), sorts of any length ("Failed to
# materialize symbols"), and matrix products (an 8 x 8 by 8 x 8 one fails; products
# with a vector, batched or not, compile up to a reduction of `REDUCE_LIMIT`).
_LIBRARY_REDUCTIONS = {"reduce_sum", "reduce_prod", "reduce_min", "reduce_max"}
_SORTS = {"sort", "top_k", "approx_top_k"}


def _matrix_product(eqn) -> bool:
    (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = eqn.params["dimension_numbers"]
    lhs, rhs = (v.aval.shape for v in eqn.invars)

    def size(shape, axes):
        return math.prod(shape[a] for a in axes)

    def free(shape, *taken):
        return math.prod(d for a, d in enumerate(shape) if a not in sum(taken, ()))

    m = free(lhs, tuple(lhs_contract), tuple(lhs_batch))
    n = free(rhs, tuple(rhs_contract), tuple(rhs_batch))
    reduced = size(lhs, lhs_contract) * size(lhs, lhs_batch)
    return (m > 1 and n > 1) or (m == 1 and n == 1 and reduced >= REDUCE_LIMIT)


def blockers(jaxpr) -> list[str]:
    """The operations of `jaxpr` (nested ones included) that keep XLA's CPU backend
    from compiling it as one function, by name and operand shapes: `one_kernel` calls
    such a program as usual kernels instead."""
    found = []
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        shapes = [getattr(v.aval, "shape", ()) for v in eqn.invars]
        if name in _LIBRARY_REDUCTIONS:
            aval = eqn.invars[0].aval
            blocked = aval.dtype.kind in "fc" and math.prod(aval.shape) >= REDUCE_LIMIT
        else:
            blocked = name in _SORTS or (name == "dot_general" and _matrix_product(eqn))
        if blocked:
            found.append(f"{name}{tuple(tuple(s) for s in shapes)}")
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else (param,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    found += blockers(inner)
    return found


def smallest(x):
    """`jnp.min(x)` of a 1-D float array (see `reduce`)."""
    return reduce(jnp.minimum, x, jnp.inf)


def nonzero(mask, size, fill_value):
    """`jnp.nonzero(mask, size=size, fill_value=fill_value)[0]` without its scatter:
    one reduction per index found (the usual masks hold one or two)."""
    iota = jnp.arange(mask.shape[0], dtype=jnp.int32)
    count = jnp.minimum(reduce(jnp.add, mask.astype(jnp.int32), 0), size)

    def find(k, carry):
        out, last = carry
        later = jnp.where(mask & (iota > last), iota, fill_value)
        i = reduce(jnp.minimum, later, fill_value).astype(jnp.int32)
        return lax.dynamic_update_slice(out, i[None], (k,)), i

    out = jnp.full((size,), fill_value, jnp.int32)
    return lax.fori_loop(0, count, find, (out, jnp.asarray(-1, jnp.int32)))[0]
