"""The neuron interface: one population of one model.

Every model is an `equinox.Module` whose array fields are its parameters (a scalar or
one value per neuron, differentiable, never static) and whose methods are pure
functions of the parameters and a state PyTree of `(n,)` arrays with named fields.

Time is in ms. The simulator integrates `dynamics` between events with a diffrax
solver, and stops at the first upward zero crossing of `spike_condition` of any armed
neuron (or of `rearm_condition` of any disarmed one).

Two families of spikes are covered by one mechanism:

- threshold spikes (LIF, Izhikevich, AdEx, ...): `spike_condition = v - v_th`, and
  `reset` moves the neuron back below threshold, so it stays armed;
- spikes without a reset that moves the state away (FitzHugh-Nagumo, fixpoint spikes of
  the Boomerang and WereRabbit): the model sets `disarms_on_spike = True`; after a spike
  the neuron is disarmed and fires again only after `rearm_condition` has crossed zero
  upwards (hysteresis), so it cannot fire forever while it sits past its condition.

**Writing your own model.**

- Parameters: fields declared with `parameter(default)`, which converts them with
  `float_array` (a float array of at least the default float dtype; float64 when
  `jax_enable_x64` is on). A scalar or one value per neuron; never a static field, so
  that they are differentiable and changing them does not recompile. Structural
  options (a mode string, a count) may be `equinox.field(static=True)`.
- State: an `equinox.Module` with one `(n,)` array per named field (`state.v`,
  `state.g_e`), returned by `init_state(n)`. `dynamics` returns the same class holding
  the time derivatives (per ms); a field that only jumps has derivative zero.
- Spikes: `spike_condition` is per neuron a value whose upward zero crossing is a
  spike (`v - v_th`); `reset(t, state, fired)` returns the state after it, `fired` a
  boolean `(n,)` mask (`jnp.where(fired, v_reset, state.v)`).
- Inputs: `dynamics` gets the external `current`, shape `(n,)`. A projection with a
  `target` adds its weights to that state field; without one, `receive(state, x)`
  decides where the weighted spikes `x` go.
- Refractoriness and adaptation are wrappers: `Refractory(model, t_ref=...)`,
  `AdaptiveCurrent(model, ...)`, which compose.
- Everything runs under `jax.jit`: no Python branches on state values (`jnp.where`).

The README's section "Writing your own model" shows a conductance-based LIF in a dozen
lines, checked against the built-in `CobaLIF`.
"""

import abc
import dataclasses
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PyTree

from .._checks import float_array

__all__ = ["AbstractNeuron", "State", "float_array", "parameter"]

State = PyTree[Float[Array, " n"]]


def parameter(default=dataclasses.MISSING, **kwargs):
    """A model parameter: a field whose value is converted by `float_array` (a float
    array leaf, differentiable, a scalar or one value per neuron), with an optional
    `default`. Other keyword arguments go to `equinox.field`.

    ```python
    class MyLIF(ns.AbstractNeuron):
        tau_mem: jax.Array = ns.parameter(10.0)   # ms
    ```
    """
    return eqx.field(converter=float_array, default=default, **kwargs)


class AbstractNeuron(eqx.Module):
    """Base class of every neuron model.

    Subclasses implement `init_state`, `dynamics` and, when they spike,
    `spike_condition`, `reset` and `receive`.

    **Class attributes:**

    - `spiking`: False for non-spiking models (readouts); the simulator then runs no
        event detection for them.
    - `disarms_on_spike`: True when a spike does not by itself move the neuron away
        from its spike condition; see the module docstring.
    - `float64_tolerance`: the solver tolerance (`rtol` and `atol`) that `simulate`
        uses by default in float64 for a network holding this model, when tighter
        than its usual 1e-9; None for the usual one. Models whose spike condition is
        ill-conditioned set it (the fixpoint models: their spike, the arrival near a
        fixpoint, is a slow crossing).
    - `constant_fields`: names of state fields whose time derivative is always zero
        (changed only by `reset`, `receive` or `apply_scheduled`, such as a
        refractory flag): the per-neuron clocks' stepper leaves them out of its
        solves. A subclass whose `dynamics` moves one of them must drop it here.
    - `propagates_across_changes`: True when `propagate` brings a neuron across its
        own scheduled changes (`next_scheduled_time`) inside the interval, which the
        caller then applies at the interval's end (`apply_scheduled`); False (the
        default): the caller ends the interval at each change. A subclass that
        writes its own `propagate` inherits the flag: it must set it to match.
    """

    spiking: ClassVar[bool] = True
    disarms_on_spike: ClassVar[bool] = False
    float64_tolerance: ClassVar[float | None] = None
    constant_fields: ClassVar[tuple[str, ...]] = ()
    propagates_across_changes: ClassVar[bool] = False

    @abc.abstractmethod
    def init_state(self, n: int) -> State:
        """The default initial state of `n` neurons."""

    @abc.abstractmethod
    def dynamics(self, t, state: State, current: Float[Array, " n"]) -> State:
        """The time derivative of `state` (per ms) at time `t` (ms), given the external
        input `current` (shape `(n,)`)."""

    def spike_condition(
        self, t, state: State, current: Float[Array, " n"]
    ) -> Float[Array, " n"]:
        """Per neuron, a value whose upward zero crossing is a spike."""
        raise NotImplementedError(f"{type(self).__name__} does not spike.")

    def rearm_condition(
        self, t, state: State, current: Float[Array, " n"]
    ) -> Float[Array, " n"]:
        """For models with `disarms_on_spike`: per neuron, a value whose upward zero
        crossing re-arms a disarmed neuron. The default is `-spike_condition`."""
        return -self.spike_condition(t, state, current)

    def reset(self, t, state: State, fired: Bool[Array, " n"]) -> State:
        """The state right after the neurons in `fired` spiked at time `t`."""
        return state

    def receive(self, state: State, x: Float[Array, " n"]) -> State:
        """The state after weighted incoming spikes `x` (shape `(n,)`) arrive."""
        raise NotImplementedError(f"{type(self).__name__} does not receive spikes.")

    def next_scheduled_time(self, state: State) -> Float[Array, ""]:
        """The next time (ms) at which the model changes its state by itself, without a
        spike (for example the end of a refractory period); `inf` when none. The
        simulator ends a solver segment there and calls `apply_scheduled`."""
        return jnp.asarray(jnp.inf, _dtype_of(state))

    def apply_scheduled(self, t, state: State) -> State:
        """The state after the changes scheduled at or before time `t`."""
        return state

    def quiet_time(
        self, t, state: State, current: Float[Array, " n"]
    ) -> Float[Array, " n"] | None:
        """Optional: per neuron, a time (ms, >= 0; `inf` allowed) during which its
        spike condition cannot turn positive from time `t`, if nothing reaches the
        neuron and `current` stays as it is, across the neuron's scheduled changes
        (`apply_scheduled`) too. It must hold for the exact solution of `dynamics`.

        Per-neuron clocks (`simulate(..., clocks="neuron")`) then integrate a neuron
        only when something reaches it or that time has passed, instead of ahead over
        their horizon after every touch. None (the default): the model offers no such
        bound."""
        return None

    def propagate(
        self, t, state: State, length: Float[Array, " n"], current: Float[Array, " n"]
    ) -> State | None:
        """Optional: the state `length` ms (per neuron, >= 0) after time `t` (ms, a
        scalar or one per neuron) if nothing reaches the neurons and `current` stays
        as it is, computed by the model itself (a closed form, a quadrature) as
        accurately as the float allows.
        The caller ends the interval at every scheduled change
        (`next_scheduled_time`, applied with `apply_scheduled`) and at the neuron's
        spikes, so that neither falls inside it; where the model sets
        `propagates_across_changes`, only at its spikes.

        Per-neuron clocks then bring a neuron to the time of an event that reaches it
        with it, instead of a solve, in forward runs (`gradients=False`); its spike
        times still come from the solver. `CobaLIF` has one. None (the default): the
        solver integrates the model."""
        return None

    def __pdoc__(self, **kwargs):
        """The `repr` shows the parameter values (scalars as numbers, small arrays as
        lists, large ones summarised), nested models included."""
        from .._repr import parameters_doc

        return parameters_doc(self, **kwargs)

    def validate(self, n: int) -> None:
        """Check that the parameters fit a population of `n` neurons (raises a
        ValueError naming the parameter). Called by the simulator on concrete values."""
        from .._checks import check_finite, check_per_neuron

        for name, value in vars(self).items():
            if isinstance(value, jnp.ndarray) or hasattr(value, "shape"):
                check_per_neuron(type(self).__name__, name, value, n)
                check_finite(type(self).__name__, name, value, allow_inf=True)


def _dtype_of(state: State):
    from jax.tree_util import tree_leaves

    leaves = tree_leaves(state)
    return leaves[0].dtype if leaves else jnp.result_type(float)
