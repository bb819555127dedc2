"""Argument checks shared by models and the simulator.

Checks run on concrete values only; under `jax.jit` or `jax.vmap` the values are
tracers and the checks are skipped (the simulator then reports failures through its
result code instead).
"""

import numbers

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    return not any(
        isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x)
    )


def check_positive(
    owner: str, name: str, value, unit: str = "ms", allow_zero: bool = False
):
    """Raise a ValueError naming `owner.name` when a concrete `value` is not > 0."""
    if value is None or not is_concrete(value):
        return
    arr = np.asarray(value)
    bad = arr < 0 if allow_zero else arr <= 0
    if np.any(bad) or np.any(np.isnan(arr)):
        need = ">= 0" if allow_zero else "> 0"
        raise ValueError(
            f"{owner}: `{name}` must be {need} ({unit}); got {arr.tolist()}. "
            f"Pass a {'non-negative' if allow_zero else 'positive'} value."
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
    if value is None or not is_concrete(value):
        return
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.inexact):
        return
    bad = np.isnan(arr) if allow_inf else ~np.isfinite(arr)
    if np.any(bad):
        where = "" if arr.ndim == 0 else f" at index {np.argwhere(bad)[0].tolist()}"
        what = "NaN" if allow_inf else "a non-finite value"
        raise ValueError(
            f"{owner}: `{name}` holds {what}{where} (got {arr.ravel()[np.argmax(bad.ravel())]})."
            " Pass finite numbers."
        )


def check_per_neuron(owner: str, name: str, value, n: int):
    """Raise when `value` is neither a scalar nor shaped `(n,)`."""
    shape = jnp.shape(value)
    if shape not in ((), (n,)) and not (len(shape) >= 1 and shape[0] == n):
        raise ValueError(
            f"{owner}: `{name}` has shape {shape}; expected a scalar or one value per "
            f"neuron, shape ({n},)."
        )


def float_array(x):
    """Converter for model parameters: a float array of at least the default float
    dtype (float64 when `jax_enable_x64` is on: a float32 parameter is promoted, so
    that it cannot make a float64 run float32)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        return x.astype(jnp.result_type(float))
    return x.astype(jnp.promote_types(x.dtype, jnp.result_type(float)))


def check_below(owner: str, low_name: str, low, high_name: str, high):
    """Raise when concrete `low >= high` anywhere (e.g. a reset at or above threshold)."""
    if not (is_concrete(low) and is_concrete(high)):
        return
    if np.any(np.asarray(low) >= np.asarray(high)):
        raise ValueError(
            f"{owner}: `{low_name}` ({np.asarray(low).tolist()}) must be below "
            f"`{high_name}` ({np.asarray(high).tolist()})."
        )
