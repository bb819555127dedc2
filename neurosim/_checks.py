"""Argument checks shared by models and the simulator.

Checks raise at once on concrete values. On values traced by `jax.jit` or `jax.vmap`
they cannot: inside `traced_checks()` (the simulator opens it around the models'
checks) each one is kept as a traced condition with its message, and the simulator
attaches it to the computation with `equinox.error_if`, so that a bad traced
parameter stops the run with that message. Outside it, checks of traced values are
skipped.
"""

import contextlib
import contextvars
import numbers

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    return not any(
        isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x)
    )


_DEFERRED: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "neurosim_deferred_checks", default=None
)


@contextlib.contextmanager
def traced_checks():
    """Collect, as a list of `(bad, message)`, the checks made inside on traced
    values (`bad` a traced boolean)."""
    token = _DEFERRED.set([])
    try:
        yield _DEFERRED.get()
    finally:
        _DEFERRED.reset(token)


def _defer(bad, problem: str, fix: str):
    """Keep a check of a traced value: `problem` says what it must be."""
    deferred = _DEFERRED.get()
    if deferred is not None:
        deferred.append((jnp.any(bad), f"{problem}; a traced value was not. {fix}"))


def run_checks(module) -> None:
    """Run the `__check_init__` of `module`'s classes (as at construction) and of the
    modules it holds (a wrapped neuron): under a transformation the values were
    traced when it was built, and inside `traced_checks()` the checks are kept."""
    for cls in reversed(type(module).__mro__):
        check = cls.__dict__.get("__check_init__")
        if check is not None:
            check(module)
    for value in vars(module).values():
        if isinstance(value, eqx.Module):
            run_checks(value)


def check_positive(
    owner: str, name: str, value, unit: str = "ms", allow_zero: bool = False
):
    """Raise a ValueError naming `owner.name` when a concrete `value` is not > 0."""
    if value is None:
        return
    need = ">= 0" if allow_zero else "> 0"
    fix = f"Pass a {'non-negative' if allow_zero else 'positive'} value."
    if not is_concrete(value):
        value = jnp.asarray(value)
        bad = ~(value >= 0) if allow_zero else ~(value > 0)
        _defer(bad, f"{owner}: `{name}` must be {need} ({unit})", fix)
        return
    arr = np.asarray(value)
    bad = arr < 0 if allow_zero else arr <= 0
    if np.any(bad) or np.any(np.isnan(arr)):
        raise ValueError(
            f"{owner}: `{name}` must be {need} ({unit}); got {arr.tolist()}. {fix}"
        )


def as_count(owner: str, name: str, value, example: str) -> int:
    """`value` as a Python int when it is a positive integer (a Python or NumPy
    integer, not a bool); else a ValueError naming `owner`'s `name`."""
    if (
        isinstance(value, numbers.Integral)
        and not isinstance(value, (bool, np.bool_))
        and int(value) >= 1
    ):
        return int(value)
    raise ValueError(f"{owner}: `{name}` must be a positive int (got {value!r}). {example}")


def check_finite(owner: str, name: str, value, allow_inf: bool = False):
    """Raise a ValueError naming `owner.name` when a concrete `value` holds NaN (or,
    unless `allow_inf`, an infinity)."""
    if value is None:
        return
    what = "NaN" if allow_inf else "a non-finite value"
    if not is_concrete(value):
        value = jnp.asarray(value)
        if jnp.issubdtype(value.dtype, jnp.inexact):
            bad = jnp.isnan(value) if allow_inf else ~jnp.isfinite(value)
            _defer(bad, f"{owner}: `{name}` must not hold {what}", "Pass finite numbers.")
        return
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.inexact):
        return
    bad = np.isnan(arr) if allow_inf else ~np.isfinite(arr)
    if np.any(bad):
        where = "" if arr.ndim == 0 else f" at index {np.argwhere(bad)[0].tolist()}"
        raise ValueError(
            f"{owner}: `{name}` holds {what}{where} (got {arr.ravel()[np.argmax(bad.ravel())]})."
            " Pass finite numbers."
        )


def check_per_neuron(owner: str, name: str, value, n: int):
    """Raise when `value` is neither a scalar nor shaped `(n,)` (one value per neuron;
    a 2-D parameter is refused, with the shape it should have)."""
    shape = jnp.shape(value)
    if shape not in ((), (n,)):
        hint = (
            f" A {len(shape)}-D array is not a parameter of a {n}-neuron population: "
            "pass one value per neuron (e.g. `x.reshape(-1)` or a row)."
            if len(shape) >= 2
            else ""
        )
        raise ValueError(
            f"{owner}: `{name}` has shape {shape}; expected a scalar or one value per "
            f"neuron, shape ({n},).{hint}"
        )


def float_array(x):
    """Converter for model parameters: a float array of at least the default float
    dtype (float64 when `jax_enable_x64` is on: a float32 parameter is promoted, so
    that it cannot make a float64 run float32)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        return x.astype(jnp.result_type(float))
    return x.astype(jnp.promote_types(x.dtype, jnp.result_type(float)))


def check_sorted(owner: str, name: str, value, fix: str):
    """Raise a ValueError naming `owner.name` when a concrete 1-D `value` holds NaN or
    is not in increasing order (kept as a traced check inside `traced_checks()`)."""
    if not is_concrete(value):
        value = jnp.asarray(value)
        bad = jnp.any(jnp.isnan(value)) | jnp.any(jnp.diff(value) < 0)
        _defer(bad, f"{owner}: `{name}` must be sorted and not NaN", fix)
        return
    values = np.asarray(value)
    if np.any(np.isnan(values)) or np.any(np.diff(values) < 0):
        raise ValueError(
            f"{owner}: `{name}` must be sorted and not NaN (got {values.tolist()}). {fix}"
        )


def check_below(owner: str, low_name: str, low, high_name: str, high):
    """Raise when concrete `low >= high` anywhere (e.g. a reset at or above threshold)."""
    if not (is_concrete(low) and is_concrete(high)):
        _defer(
            ~(jnp.asarray(low) < jnp.asarray(high)),
            f"{owner}: `{low_name}` must be below `{high_name}`",
            f"Pass a `{low_name}` below `{high_name}`.",
        )
        return
    if np.any(np.asarray(low) >= np.asarray(high)):
        raise ValueError(
            f"{owner}: `{low_name}` ({np.asarray(low).tolist()}) must be below "
            f"`{high_name}` ({np.asarray(high).tolist()})."
        )
