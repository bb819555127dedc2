r"""An absolute refractory period for any threshold model, in one line.

`Refractory(neuron, t_ref=2.0)` wraps a model (a user's own included): after each spike
(once the wrapped model's `reset` has run) the neuron is refractory for `t_ref` ms.
While refractory

- the held state fields (`hold`, default `("v",)`) do not change by the dynamics:
  `v` stays at its reset value;
- the neuron cannot fire; if it is above threshold when the period ends (an input
  lifted it), it fires then;
- every other state variable (synaptic currents or conductances, recovery variables)
  evolves and receives spikes as usual.

This is the refractoriness of the LIF models (`LIF(t_ref=...)`), which have it built in,
and of Brian2's `(unless refractory)` on `v`. The wrapper composes with the adaptation
wrappers: wrap the model first, then add adaptation around it (the adaptation variables
are then held while the neuron is refractory, see `neurosim.neurons.adaptation`).

**Example:**

```python
import neurosim as ns

neuron = ns.Refractory(ns.Izhikevich(), t_ref=2.0)   # v held at c for 2 ms after a spike
sol = ns.simulate(neuron, n=1, t1=100.0, current=10.0)
```
"""

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PyTree

from .._checks import check_per_neuron, check_positive, float_array
from ._wrapper import (
    AbstractWrapper,
    _refractory,
    _shifted_spike_condition,
    _voltage,
    check_wrapped,
)

__all__ = [
    "Refractory",
    "RefractoryState",
]


class RefractoryState(eqx.Module):
    """State of a `Refractory` neuron: `neuron`, the wrapped model's state;
    `refractory`, 1.0 while refractory, else 0.0; `ref_end`, the time (ms) at which
    the current refractory period ends."""

    neuron: PyTree
    refractory: Float[Array, " n"]
    ref_end: Float[Array, " n"]


class Refractory(AbstractWrapper):
    r"""Adds an absolute refractory period to a threshold model (see the module
    docstring).

    **Arguments:**

    - `neuron`: the wrapped spiking model (any `neurosim.AbstractNeuron` whose reset
        moves it below threshold).
    - `t_ref`: the refractory period, ms (>= 0; a scalar or one value per neuron).
    - `hold`: the names of the wrapped state's fields held constant while refractory
        (default `("v",)`).

    The state is `RefractoryState(neuron=..., refractory=..., ref_end=...)`; read the
    wrapped model's state as `state.neuron` (`sol.states.neuron.v`).
    """

    constant_fields: ClassVar[tuple[str, ...]] = ("refractory", "ref_end")

    t_ref: Float[Array, "..."] = eqx.field(converter=float_array)
    hold: tuple[str, ...] = eqx.field(static=True, default=("v",))

    def __check_init__(self):
        check_wrapped("Refractory", self.neuron)
        check_positive("Refractory", "t_ref", self.t_ref, allow_zero=True)
        if isinstance(self.hold, str):
            raise TypeError(
                f"Refractory: `hold` must be a tuple of field names, e.g. "
                f"({self.hold!r},); got the string {self.hold!r}."
            )
        state = self.neuron.init_state(1)
        missing = [name for name in self.hold if not hasattr(state, name)]
        if missing:
            raise ValueError(
                f"Refractory: `hold` names {missing}, which are not fields of "
                f"{type(state).__name__} (the state of {type(self.neuron).__name__}). "
                "Pass the names of the state fields to hold while refractory."
            )

    def init_state(self, n: int) -> RefractoryState:
        inner = self.neuron.init_state(n)
        zeros = jnp.zeros((n,), _voltage(self.neuron, inner).dtype)
        return RefractoryState(neuron=inner, refractory=zeros, ref_end=zeros)

    def dynamics(self, t, state: RefractoryState, current) -> RefractoryState:
        rates = self.neuron.dynamics(t, state.neuron, current)
        held = state.refractory > 0
        rates = eqx.tree_at(
            lambda s: tuple(getattr(s, name) for name in self.hold),
            rates,
            tuple(jnp.where(held, 0.0, getattr(rates, name)) for name in self.hold),
        )
        zeros = jnp.zeros_like(state.refractory)
        return RefractoryState(neuron=rates, refractory=zeros, ref_end=zeros)

    def shifted_spike_condition(self, t, state: RefractoryState, current, shift):
        """The wrapped model's spike condition with its threshold raised by `shift`,
        at most -1 while refractory (so that adaptation wrappers compose)."""
        condition = _shifted_spike_condition(self.neuron, t, state.neuron, current, shift)
        return jnp.where(state.refractory > 0, jnp.minimum(condition, -1.0), condition)

    def spike_condition(self, t, state: RefractoryState, current) -> Array:
        return self.shifted_spike_condition(t, state, current, 0.0)

    def rearm_condition(self, t, state: RefractoryState, current) -> Array:
        return self.neuron.rearm_condition(t, state.neuron, current)

    def reset(self, t, state: RefractoryState, fired) -> RefractoryState:
        starts = fired & (self.t_ref > 0)
        return RefractoryState(
            neuron=self.neuron.reset(t, state.neuron, fired),
            refractory=jnp.where(starts, 1.0, state.refractory),
            ref_end=jnp.where(fired, t + self.t_ref, state.ref_end),
        )

    def receive(self, state: RefractoryState, x) -> RefractoryState:
        return eqx.tree_at(lambda s: s.neuron, state, self.neuron.receive(state.neuron, x))

    def next_scheduled_time(self, state: RefractoryState) -> Array:
        own = jnp.min(jnp.where(state.refractory > 0, state.ref_end, jnp.inf))
        return jnp.minimum(own, self.neuron.next_scheduled_time(state.neuron))

    def apply_scheduled(self, t, state: RefractoryState) -> RefractoryState:
        ended = (state.refractory > 0) & (state.ref_end <= t)
        return RefractoryState(
            neuron=self.neuron.apply_scheduled(t, state.neuron),
            refractory=jnp.where(ended, 0.0, state.refractory),
            ref_end=state.ref_end,
        )

    def refractory_mask(self, state: RefractoryState) -> Bool[Array, " n"]:
        """Whether the neuron is refractory (by this wrapper or by the wrapped model)."""
        return (state.refractory > 0) | _refractory(self.neuron, state.neuron)

    def validate(self, n: int) -> None:
        self.neuron.validate(n)
        check_per_neuron("Refractory", "t_ref", self.t_ref, n)
