"""Readable `repr` of models: parameter values, not only shapes.

Scalars print as numbers, arrays of up to `MAX_LISTED` values as (nested) lists, larger
arrays as their dtype and shape with their minimum, mean and maximum. Values under
`jax.jit` (tracers) have no value to print and show as dtype and shape.
"""

import dataclasses

import jax
import numpy as np
import wadler_lindig as wl

MAX_LISTED = 8


def _short_dtype(dtype) -> str:
    return wl.array_summary((), np.dtype(dtype).name, None).text[:-2]


def _number(x) -> str:
    # NumPy prints a float32 as its shortest decimal (0.1, not 0.10000000149).
    return str(x)


def _listed(values: np.ndarray) -> str:
    if values.ndim == 0:
        return _number(values[()])
    return "[" + ", ".join(_listed(row) for row in values) + "]"


def format_value(value) -> str | None:
    """The text of an array parameter, or None for a value that is not an array."""
    if not (isinstance(value, (jax.Array, np.ndarray, np.generic))):
        return None
    shape = ",".join(map(str, np.shape(value)))
    summary = f"{_short_dtype(value.dtype)}[{shape}]"
    if isinstance(value, jax.core.Tracer):
        return summary
    values = np.asarray(value)
    if values.size <= MAX_LISTED:
        return _listed(values)
    if not np.issubdtype(values.dtype, np.number):
        return summary
    return (
        f"{summary}(min={_number(values.min())}, mean={_number(values.mean())}, "
        f"max={_number(values.max())})"
    )


def parameters_doc(module, **kwargs) -> wl.AbstractDoc:
    """`Name(field=value, ...)` for a dataclass-like module, every field shown."""
    docs = []
    for field in dataclasses.fields(module):
        if not field.repr:
            continue
        value = getattr(module, field.name)
        text = format_value(value)
        value_doc = wl.pdoc(value, **kwargs) if text is None else wl.TextDoc(text)
        docs.append(wl.TextDoc(field.name) + wl.TextDoc("=") + value_doc)
    return wl.bracketed(
        begin=wl.TextDoc(f"{type(module).__name__}("),
        docs=docs,
        sep=wl.comma,
        end=wl.TextDoc(")"),
        indent=kwargs.get("indent", 2),
    )
