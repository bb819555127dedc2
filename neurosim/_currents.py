"""External input currents: waveforms that know where they are discontinuous.

A current is a function of time (ms) returning a scalar or one value per neuron. Every
waveform also reports its next discontinuity (``next_jump``), and the event loop ends a
solver segment exactly there, so an adaptive solver never steps across a jump. Values
are right-continuous: at a jump time the new value applies.

Units: the value is added to the model's input term (for the LIF family it is in the
units of the membrane potential, i.e. the drive ``R I``; see each model).
"""

import abc
from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._checks import check_positive, check_sorted
from ._checks import float_array as _float

_INF = jnp.inf


def _first_after(times: Array, t) -> Array:
    """The first entry of sorted `times` strictly after `t` (inf when none)."""
    if times.shape[0] == 0:
        return jnp.asarray(_INF, jnp.result_type(t, float))
    k = jnp.searchsorted(times, t, side="right")
    return jnp.where(k < times.shape[0], times[jnp.minimum(k, times.shape[0] - 1)], _INF)


class AbstractCurrent(eqx.Module):
    """An input current waveform ``I(t)``.

    Subclasses implement `__call__(t)` (value at time `t` in ms, scalar or shape
    `(n,)`) and may implement `next_jump(t)`, the first discontinuity strictly after
    `t` (``inf`` if none), which the simulator uses as a segment boundary.
    """

    @abc.abstractmethod
    def __call__(self, t) -> Array:
        raise NotImplementedError

    def next_jump(self, t) -> Array:
        return jnp.asarray(_INF, jnp.result_type(t, float))

    def __add__(self, other: "AbstractCurrent") -> "Sum":
        return Sum((self, as_current(other)))

    __radd__ = __add__

    def __pdoc__(self, **kwargs):
        """The `repr` shows the waveform's values (see `neurosim.AbstractNeuron`)."""
        from ._repr import parameters_doc

        return parameters_doc(self, **kwargs)


class Constant(AbstractCurrent):
    """A constant current: a scalar or one value per neuron."""

    value: Float[Array, "..."] = eqx.field(converter=_float)

    def __call__(self, t) -> Array:
        return self.value


class PiecewiseConstant(AbstractCurrent):
    """A piecewise-constant current.

    **Arguments:**

    - `times`: sorted jump times, shape `(m,)`, in ms.
    - `values`: shape `(m + 1,)` or `(m + 1, n)`: `values[0]` before `times[0]`,
        `values[k]` on `[times[k-1], times[k])`, `values[m]` after the last jump.
    """

    times: Float[Array, " m"] = eqx.field(converter=_float)
    values: Float[Array, "m1 ..."] = eqx.field(converter=_float)

    def __check_init__(self):
        if self.times.ndim != 1:
            raise ValueError(
                f"PiecewiseConstant: `times` must be 1-D, got shape {self.times.shape}."
            )
        if self.values.shape[:1] != (self.times.shape[0] + 1,):
            raise ValueError(
                "PiecewiseConstant: `values` needs one more entry than `times` along its "
                f"first axis (got times {self.times.shape}, values {self.values.shape})."
            )
        check_sorted(
            "PiecewiseConstant",
            "times",
            self.times,
            "Pass the jump times in increasing order.",
        )

    def __call__(self, t) -> Array:
        k = jnp.searchsorted(self.times, t, side="right")
        return self.values[k]

    def next_jump(self, t) -> Array:
        return _first_after(self.times, t)


def Step(t_on, amplitude, t_off=None, baseline=0.0) -> PiecewiseConstant:
    """A step of `amplitude` switched on at `t_on` (ms) and, if given, off at `t_off`;
    `baseline` elsewhere. Amplitudes may be scalars or per-neuron arrays."""
    amplitude, baseline = _float(amplitude), _float(baseline)
    try:
        shape = jnp.broadcast_shapes(amplitude.shape, baseline.shape)
    except ValueError:
        raise ValueError(
            f"Step: `amplitude` (shape {amplitude.shape}) and `baseline` (shape "
            f"{baseline.shape}) must broadcast together: pass scalars or one value per "
            "neuron."
        ) from None
    amplitude = jnp.broadcast_to(amplitude, shape)
    baseline = jnp.broadcast_to(baseline, shape)
    if t_off is None:
        return PiecewiseConstant(
            jnp.stack([_float(t_on)]), jnp.stack([baseline, amplitude])
        )
    return PiecewiseConstant(
        jnp.stack([_float(t_on), _float(t_off)]), jnp.stack([baseline, amplitude, baseline])
    )


class PulseTrain(AbstractCurrent):
    """Rectangular pulses: `amplitude` for `width` ms every `period` ms from `start`,
    `count` pulses (all of them when `count` is None), `baseline` elsewhere."""

    start: Float[ArrayLike, ""] = eqx.field(converter=_float)
    width: Float[ArrayLike, ""] = eqx.field(converter=_float)
    period: Float[ArrayLike, ""] = eqx.field(converter=_float)
    amplitude: Float[Array, "..."] = eqx.field(converter=_float)
    count: int | None = eqx.field(static=True, default=None)
    baseline: Float[Array, "..."] = eqx.field(converter=_float, default=0.0)

    def __check_init__(self):
        check_positive("PulseTrain", "width", self.width)
        check_positive("PulseTrain", "period", self.period)

    def _index(self, t):
        return jnp.floor((t - self.start) / self.period)

    def __call__(self, t) -> Array:
        k = self._index(t)
        phase = t - self.start - k * self.period
        on = (t >= self.start) & (phase < self.width)
        if self.count is not None:
            on = on & (k < self.count)
        return jnp.where(on, self.amplitude, self.baseline)

    def next_jump(self, t) -> Array:
        k = jnp.maximum(self._index(t), 0.0)
        onset = self.start + k * self.period
        candidates = jnp.stack(
            [
                self.start,
                onset + self.width,
                onset + self.period,
                onset + self.period + self.width,
            ]
        )
        candidates = jnp.where(candidates > t, candidates, _INF)
        if self.count is not None:
            last_off = self.start + (self.count - 1) * self.period + self.width
            candidates = jnp.where(candidates <= last_off, candidates, _INF)
        return jnp.min(candidates)


class Ramp(AbstractCurrent):
    """A linear ramp from `value_start` at `t_start` to `value_stop` at `t_stop` (ms),
    constant outside. Its two kinks are announced as segment boundaries."""

    t_start: Float[ArrayLike, ""] = eqx.field(converter=_float)
    t_stop: Float[ArrayLike, ""] = eqx.field(converter=_float)
    value_start: Float[Array, "..."] = eqx.field(converter=_float)
    value_stop: Float[Array, "..."] = eqx.field(converter=_float)

    def __call__(self, t) -> Array:
        frac = jnp.clip((t - self.t_start) / (self.t_stop - self.t_start), 0.0, 1.0)
        return self.value_start + frac * (self.value_stop - self.value_start)

    def next_jump(self, t) -> Array:
        return _first_after(jnp.stack([self.t_start, self.t_stop]), t)


class PiecewiseLinear(AbstractCurrent):
    """A piecewise-linear current that may jump at its knots (steps, pulses and ramps
    in one waveform; the Izhikevich behaviours' stimulus protocols use it).

    **Arguments:**

    - `times`: sorted knot times, shape `(m,)`, in ms; `+inf` entries are unused knots.
    - `levels`: shape `(m + 1,)`: the value at the start of each piece; piece 0 is
        before `times[0]`, piece `k` is `[times[k-1], times[k])`.
    - `slopes`: shape `(m + 1,)`: the slope within each piece, per ms (that of piece 0
        is ignored: the current is constant before the first knot).

    Every knot is announced to the solver as a segment boundary.
    """

    times: Float[Array, " m"] = eqx.field(converter=_float)
    levels: Float[Array, " m1"] = eqx.field(converter=_float)
    slopes: Float[Array, " m1"] = eqx.field(converter=_float)

    def __check_init__(self):
        pieces = (self.times.shape[0] + 1,)
        shapes = (self.levels.shape, self.slopes.shape)
        if self.times.ndim != 1 or shapes != (pieces, pieces):
            raise ValueError(
                "PiecewiseLinear: `times` must have shape (m,) and `levels`, `slopes` "
                f"shape (m + 1,); got {self.times.shape}, {self.levels.shape}, "
                f"{self.slopes.shape}."
            )

    def __call__(self, t) -> Array:
        k = jnp.searchsorted(self.times, t, side="right")
        origin = jnp.where(k > 0, self.times[jnp.maximum(k - 1, 0)], t)
        return self.levels[k] + self.slopes[k] * (t - origin)

    def next_jump(self, t) -> Array:
        return _first_after(self.times, t)


class Function(AbstractCurrent):
    """An arbitrary current ``fn(t)``. If it is discontinuous, pass the jump times as
    `jumps` (sorted, ms) so the solver does not step across them."""

    fn: Callable
    jumps: Float[Array, " m"] = eqx.field(
        converter=_float, default_factory=lambda: jnp.zeros(0)
    )

    def __call__(self, t) -> Array:
        return jnp.asarray(self.fn(t))

    def next_jump(self, t) -> Array:
        return _first_after(self.jumps, t)


class Sum(AbstractCurrent):
    """The sum of several currents (also written ``a + b``)."""

    terms: tuple[AbstractCurrent, ...]

    def __call__(self, t) -> Array:
        total = self.terms[0](t)
        for term in self.terms[1:]:
            total = total + term(t)
        return total

    def next_jump(self, t) -> Array:
        return jnp.min(jnp.stack([jnp.asarray(term.next_jump(t)) for term in self.terms]))


def as_current(current) -> AbstractCurrent:
    """Turn what a user passes as `current` into an `AbstractCurrent`: None means zero,
    a number or array a constant, a plain callable `t -> value` a `Function`."""
    if current is None:
        return Constant(0.0)
    if isinstance(current, AbstractCurrent):
        return current
    if callable(current):
        return Function(current)
    return Constant(current)
