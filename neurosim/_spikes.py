"""External spike-train generators."""

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ._checks import check_positive, is_concrete


def poisson_spikes(
    key: PRNGKeyArray,
    rate,
    *,
    num_sources: int,
    t1: float,
    t0: float = 0.0,
    max_per_source: int | None = None,
) -> tuple[Float[Array, " K"], Int[Array, " K"]]:
    r"""Independent Poisson spike trains, ready for `simulate(..., input_spikes=...)`.

    **Arguments:**

    - `key`: a `jax.random` key; the same key gives the same trains.
    - `rate`: firing rate in Hz: a scalar, one per source, or a pair
        `(fn, max_rate)` for a time-varying rate (see below).
    - `num_sources`: number of independent trains.
    - `t0`, `t1`: the interval in ms.
    - `max_per_source`: buffer length per source. The default holds the expected
        count plus 8 standard deviations; spikes beyond it would be lost, so the
        generator raises (when it can see the values) if the buffer is too short.

    A time-varying rate is a pair `(fn, max_rate)`: `fn(t)` (t in ms) gives the rate
    in Hz, scalar or per source, and `max_rate` bounds it over `[t0, t1]`; events are
    drawn at `max_rate` and kept with probability `fn(t) / max_rate` (thinning).

    **Returns:** `(times, sources)`: sorted times (ms), padded at the end with `+inf`
    (which the simulator ignores), and the source index of each spike.
    """
    if callable(rate) or (isinstance(rate, tuple) and callable(rate[0])):
        if not isinstance(rate, tuple):
            raise ValueError(
                "poisson_spikes: a time-varying `rate` must be given as (fn, max_rate), "
                "with max_rate (Hz) an upper bound of fn over [t0, t1]."
            )
        rate_fn, max_rate = rate
    else:
        rate_fn, max_rate = None, rate
    max_rate = jnp.broadcast_to(
        jnp.asarray(max_rate, jnp.result_type(float)), (num_sources,)
    )
    check_positive("poisson_spikes", "rate", max_rate, unit="Hz", allow_zero=True)
    if is_concrete((t0, t1)) and float(t1) <= float(t0):
        raise ValueError(
            f"poisson_spikes: `t1` must be greater than `t0` (got {t0}, {t1})."
        )
    if max_per_source is None:
        if not is_concrete(max_rate):
            raise ValueError(
                "poisson_spikes: pass `max_per_source` when the rate is traced (under jit)."
            )
        expected = float(jnp.max(max_rate)) * (float(t1) - float(t0)) / 1000.0
        max_per_source = int(math.ceil(expected + 8.0 * math.sqrt(expected) + 8))
    key_isi, key_keep = jax.random.split(key)
    rate_per_ms = max_rate / 1000.0
    isi = jax.random.exponential(key_isi, (num_sources, max_per_source + 1))
    isi = isi / jnp.where(rate_per_ms > 0, rate_per_ms, jnp.inf)[:, None]
    times = t0 + jnp.cumsum(isi, axis=1)
    if is_concrete(times) and bool(jnp.any(times[:, -1] <= t1)):
        raise ValueError(
            "poisson_spikes: `max_per_source` is too small for this rate and duration; "
            "raise it."
        )
    times = times[:, :-1]
    keep = times <= t1
    if rate_fn is not None:
        local = jnp.broadcast_to(rate_fn(times), times.shape)
        u = jax.random.uniform(key_keep, times.shape)
        keep = keep & (u * max_rate[:, None] < local)
    sources = jnp.broadcast_to(
        jnp.arange(num_sources, dtype=jnp.int32)[:, None], times.shape
    )
    times = jnp.where(keep, times, jnp.inf).ravel()
    order = jnp.argsort(times)
    return times[order], sources.ravel()[order]
