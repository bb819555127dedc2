r"""Losses on spike times and membrane traces, safe on padded buffers.

Every function is pure, works under `jax.jit`, `jax.vmap` and `jax.grad`, and takes
the padded arrays the `Solution` accessors return: spike times in ms with `+inf` for a
spike that did not happen (`sol.first_spike_times()`, `sol.padded_spike_trains(k)`),
membrane records with NaN after the end of a run that stopped early. A padding entry
never turns a value or a gradient into NaN: each function replaces it by a finite
stand-in before any arithmetic (a `jnp.where` on both sides, so no `inf - inf` reaches
the gradient).

Spikes that appear or vanish make these losses discontinuous in the parameters; their
gradient is then the one of the spike set of the run (a spike that did not happen has
no gradient), except where a function says otherwise. A neuron that never fires would
thus give no gradient at all: `silent_surrogate` gives it one, from how far its membrane
stayed below threshold.

For a batch, `jax.vmap` the per-sample loss, or let `neurosim.fit` do it.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

__all__ = [
    "final_membrane",
    "first_spike_cross_entropy",
    "max_membrane",
    "silent_surrogate",
    "soft_spike_counts",
    "spike_count_loss",
    "spike_time_mse",
    "van_rossum_distance",
]


def _fill(times, value):
    """`times` with every non-finite entry (padding) replaced by `value`, with a zero
    gradient through the replaced entries."""
    return jnp.where(jnp.isfinite(times), times, value)


def silent_surrogate(
    first_spike_times: Float[ArrayLike, "... n"],
    v_max: Float[ArrayLike, "... n"],
    *,
    v_th: Float[ArrayLike, "..."],
    t_silent: Float[ArrayLike, ""],
    slope: Float[ArrayLike, ""] = 1.0,
) -> Float[Array, "... n"]:
    r"""First-spike times in which a silent neuron (`+inf`) gets a finite, differentiable
    stand-in:

    $$
    t_i = \begin{cases} t_i^\text{first} & \text{if neuron } i \text{ fired,} \\
    t_\text{silent} + \text{slope}\,(v_\text{th} - v_i^\max) & \text{otherwise,}
    \end{cases}
    $$

    later than any real spike when `t_silent` is the end of the run, and earlier the
    closer the membrane came to threshold: a loss that wants the neuron to fire earlier
    then raises its membrane maximum, so a silent output is not a dead end for training.

    **Arguments:**

    - `first_spike_times`: ms, `+inf` for silent neurons (`sol.first_spike_times()`).
    - `v_max`: each neuron's membrane maximum over the run (`max_membrane` of the
        records); the surrogate is as good as the records are dense.
    - `v_th`: the threshold, in the membrane's units (scalar or one per neuron).
    - `t_silent`: the time a neuron at threshold would count as firing, ms (the end of
        the run, `t1`, is the natural choice).
    - `slope`: ms per unit of voltage below threshold (default 1).

    **Returns:** the times, same shape, all finite where `v_max` is.
    """
    first_spike_times = jnp.asarray(first_spike_times)
    fired = jnp.isfinite(first_spike_times)
    below = jnp.asarray(v_th) - jnp.asarray(v_max)
    return jnp.where(fired, _fill(first_spike_times, 0.0), t_silent + slope * below)


def first_spike_cross_entropy(
    first_spike_times: Float[ArrayLike, "... n"],
    label: Int[ArrayLike, "..."],
    *,
    tau: Float[ArrayLike, ""] = 1.0,
    t_silent: Float[ArrayLike, ""] | None = None,
) -> Float[Array, "..."]:
    r"""Time-to-first-spike cross-entropy: the neuron that fires first is the class.

    $$
    L = -\log \frac{e^{-t_\text{label}/\tau}}{\sum_i e^{-t_i/\tau}}
    $$

    **Arguments:**

    - `first_spike_times`: `(..., n)` first-spike times of the output neurons, ms;
        `+inf` for a silent neuron (or pass `silent_surrogate` times to give silent
        neurons a gradient).
    - `label`: the index of the correct output neuron (int, shape `...`).
    - `tau`: the temperature, ms (default 1): the time difference that counts as a
        factor e in the odds.
    - `t_silent`: the time (ms) a silent neuron counts as having fired (no gradient
        flows through it). Default: `tau` after the latest spike of the sample, or 0
        when none fired; so a silent correct neuron costs a finite loss.

    **Returns:** the loss, shape `...` (one per sample).
    """
    times = jnp.asarray(first_spike_times)
    if t_silent is None:
        latest = jnp.max(_fill(times, -jnp.inf), axis=-1, keepdims=True)
        t_silent = jnp.where(jnp.isfinite(latest), latest, -tau) + tau
        t_silent = jax.lax.stop_gradient(t_silent)
    logits = -_fill(times, t_silent) / tau
    log_p = jax.nn.log_softmax(logits, axis=-1)
    label = jnp.asarray(label)
    return -jnp.take_along_axis(log_p, label[..., None], axis=-1)[..., 0]


def spike_time_mse(
    spike_times: Float[ArrayLike, "..."],
    target_times: Float[ArrayLike, "..."],
    *,
    t_missing: Float[ArrayLike, ""],
) -> Float[Array, ""]:
    r"""Mean squared error (ms²) between spike times and target spike times, matched
    in order: spike `k` of a neuron against its target spike `k`.

    Pass the first `k` spikes of each neuron (`sol.padded_spike_trains(k)`, `(n, k)`)
    and the targets in the same layout, both padded with `+inf`. A missing spike (a
    target with no spike, or a spike with no target) counts as a spike at `t_missing`
    (the end of the window, ms): the penalty for a missing spike is
    `(t_missing - target)²`, constant in the parameters; the penalty for an extra spike
    is `(t_missing - t)²`, whose gradient pushes the spike out of the window. Entries
    missing on both sides cost 0.

    **Returns:** the mean over all entries (a scalar).
    """
    spike_times, target_times = jnp.asarray(spike_times), jnp.asarray(target_times)
    if spike_times.shape != target_times.shape:
        raise ValueError(
            f"spike_time_mse: `spike_times` has shape {spike_times.shape} and "
            f"`target_times` {target_times.shape}. Pad both to the same (n, k), e.g. "
            "with sol.padded_spike_trains(k)."
        )
    difference = _fill(spike_times, t_missing) - _fill(target_times, t_missing)
    return jnp.mean(difference**2)


def van_rossum_distance(
    spike_times: Float[ArrayLike, "... k"],
    other_times: Float[ArrayLike, "... m"],
    *,
    tau: Float[ArrayLike, ""],
    squared: bool = False,
) -> Float[Array, "..."]:
    r"""The van Rossum (2001) distance between two spike trains, in closed form.

    Each train is filtered with the causal exponential kernel
    $f(t) = \sum_i e^{-(t - t_i)/\tau} H(t - t_i)$, and

    $$
    D^2 = \frac{1}{\tau}\int_{-\infty}^{\infty} (f - g)^2\,dt
    = \frac12 \Big[\sum_{i,j} e^{-|a_i - a_j|/\tau} + \sum_{i,j} e^{-|b_i - b_j|/\tau}
    - 2 \sum_{i,j} e^{-|a_i - b_j|/\tau}\Big],
    $$

    so one spike against none is at distance $1/\sqrt 2$. The integral runs to
    infinity (the tails after the last spike count).

    **Arguments:**

    - `spike_times`, `other_times`: `(..., k)` and `(..., m)` spike times in ms, padded
        with `+inf` (e.g. `sol.padded_spike_trains(k)`: one train per neuron); the
        leading axes broadcast.
    - `tau`: the kernel's time constant, ms.
    - `squared`: return $D^2$ instead of $D$ (default False). The gradient of $D$ at
        $D = 0$ is taken as 0.

    **Returns:** the distance per train, shape `...`.
    """
    a, b = jnp.asarray(spike_times), jnp.asarray(other_times)

    def overlap(x, y):
        both = jnp.isfinite(x)[..., :, None] & jnp.isfinite(y)[..., None, :]
        gap = jnp.abs(_fill(x, 0.0)[..., :, None] - _fill(y, 0.0)[..., None, :])
        return jnp.sum(jnp.where(both, jnp.exp(-gap / tau), 0.0), axis=(-2, -1))

    squared_distance = 0.5 * (overlap(a, a) + overlap(b, b) - 2.0 * overlap(a, b))
    squared_distance = jnp.maximum(squared_distance, 0.0)
    if squared:
        return squared_distance
    positive = squared_distance > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared_distance, 1.0)), 0.0)


def soft_spike_counts(
    spike_times: Float[ArrayLike, "... k"],
    *,
    t_end: Float[ArrayLike, ""],
    width: Float[ArrayLike, ""],
) -> Float[Array, "..."]:
    r"""A differentiable spike count: $\sum_k \sigma((t_\text{end} - t_k)/w)$ over the
    padded spike times (`+inf` counts 0). A spike well inside the window counts 1; one
    within a few `width` (ms) of `t_end` counts partly, so the count has a gradient that
    moves spikes into or out of the window. Returns one count per train, shape `...`."""
    times = jnp.asarray(spike_times)
    inside = jax.nn.sigmoid((t_end - _fill(times, 0.0)) / width)
    return jnp.sum(jnp.where(jnp.isfinite(times), inside, 0.0), axis=-1)


def spike_count_loss(
    counts: Float[ArrayLike, "..."], target_counts: Float[ArrayLike, "..."]
) -> Float[Array, ""]:
    """Mean squared difference between spike counts and target counts. Integer counts
    (`sol.spike_counts()`) carry no gradient; pass `soft_spike_counts` for one."""
    counts = jnp.asarray(counts)
    if not jnp.issubdtype(counts.dtype, jnp.inexact):
        counts = counts.astype(jnp.result_type(float))
    return jnp.mean((counts - jnp.asarray(target_counts, counts.dtype)) ** 2)


def max_membrane(v: Float[ArrayLike, "r ..."]) -> Float[Array, "..."]:
    """The maximum over record times (axis 0) of a recorded membrane, e.g.
    `sol.states.v` of shape `(len(record), n)`; the NaN records after the end of a run
    that stopped early are skipped. The gradient goes to the record that holds the
    maximum."""
    v = jnp.asarray(v)
    return jnp.max(jnp.where(jnp.isnan(v), -jnp.inf, v), axis=0)


def final_membrane(v: Float[ArrayLike, "r ..."]) -> Float[Array, "..."]:
    """The last recorded value (axis 0 is the record time) of a membrane record, e.g.
    `sol.states.v`; for a run that stopped early, the last record before it stopped
    (the records after are NaN)."""
    v = jnp.asarray(v)
    recorded = ~jnp.isnan(v)
    last = jnp.maximum(jnp.sum(jnp.cumprod(recorded, axis=0), axis=0) - 1, 0)
    return jnp.take_along_axis(v, last[None], axis=0)[0]
