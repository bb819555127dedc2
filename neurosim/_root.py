"""Safeguarded Newton root finder used to locate event times.

Spike times are found on the solver's dense interpolation of one step, inside the bracket
``[lower, upper]`` that diffrax hands over (the condition is ``<= 0`` at ``lower`` and
``> 0`` at ``upper``). Plain Newton with fixed tolerances stalls in float32 when the
condition is evaluated at round-off level (its iterates jitter and never meet the
tolerance); keeping the bracket and falling back to bisection makes every iteration
shrink the interval, and a hard iteration cap ends the search once the bracket is below
the time resolution of the dtype.
"""

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, PyTree, Scalar


class _BracketState(eqx.Module):
    lower: Scalar
    upper: Scalar
    diff: Scalar
    f_value: Scalar
    steps: Array


class BracketedNewton(optx.AbstractRootFinder):
    """Newton's method kept inside a sign-change bracket, with bisection fallback.

    **Arguments:**

    - `rtol`, `atol`: the search stops once a Newton step or the bracket is smaller
        than `atol + rtol * |t|` (in the solver's time unit, ms).
    - `max_steps`: a cap on iterations; reaching it is not a failure, since the answer
        then lies within the (already tiny) bracket.
    """

    rtol: Any
    atol: Any
    max_steps: int = eqx.field(static=True, default=40)
    norm: ClassVar[Callable[[PyTree], Scalar]] = jnp.abs

    def init(self, fn, y, args, options, f_struct, aux_struct, tags) -> _BracketState:
        del aux_struct, tags
        dtype = f_struct.dtype
        lower = jnp.asarray(options["lower"], dtype)
        upper = jnp.asarray(options["upper"], dtype)
        return _BracketState(
            lower=lower,
            upper=upper,
            diff=jnp.asarray(jnp.inf, dtype),
            f_value=jnp.asarray(jnp.inf, dtype),
            steps=jnp.asarray(0),
        )

    def step(self, fn, y, args, options, state: _BracketState, tags):
        del options, tags

        def value(t):
            return fn(t, args)

        (f, aux), (df, _) = jax.jvp(value, (y,), (jnp.ones_like(y),))
        lower = jnp.where(f <= 0, y, state.lower)
        upper = jnp.where(f > 0, y, state.upper)
        newton = y - f / df
        inside = (newton > lower) & (newton < upper) & jnp.isfinite(newton)
        new_y = jnp.where(inside, newton, 0.5 * (lower + upper))
        new_y = jnp.where(f == 0, y, new_y)
        new_state = _BracketState(
            lower=lower,
            upper=upper,
            diff=jnp.abs(new_y - y),
            f_value=f,
            steps=state.steps + 1,
        )
        return new_y, new_state, aux

    def terminate(self, fn, y, args, options, state: _BracketState, tags):
        del fn, args, options, tags
        scale = self.atol + self.rtol * jnp.abs(y)
        small_step = state.diff < scale
        small_bracket = (state.upper - state.lower) < scale
        done = small_step | small_bracket | (state.f_value == 0)
        done = done | (state.steps >= self.max_steps)
        return done, optx.RESULTS.successful

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        return y, aux, {"num_steps": state.steps}


def event_root_finder(dtype, time_scale) -> BracketedNewton:
    """A root finder whose tolerance matches the time resolution of `dtype` at
    `time_scale` (the magnitude of the absolute time, in ms): resolving an event
    finer than one unit in the last place of the absolute time is meaningless."""
    eps = jnp.finfo(dtype).eps
    scale = jnp.maximum(jnp.abs(time_scale), 1.0)
    return BracketedNewton(rtol=2 * eps, atol=2 * eps * scale)
