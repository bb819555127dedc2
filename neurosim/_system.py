"""What the event loop integrates: an internal interface between models and the loop.

The loop (`_engine.py`) knows nothing about neuron models. It sees a *system*: a state
PyTree, its vector field, one spike-condition value per neuron, and what happens when
neurons spike, when external spikes arrive and at the system's own scheduled times.
A single population of one model is the simplest system (`PopulationSystem`).
"""

import abc

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PyTree

from ._currents import AbstractCurrent
from .neurons.base import AbstractNeuron


class AbstractSystem(eqx.Module):
    """Internal: the loop's view of what it simulates (`num_neurons` neurons in all)."""

    @property
    @abc.abstractmethod
    def num_neurons(self) -> int: ...

    @property
    @abc.abstractmethod
    def spiking_mask(self) -> np.ndarray:
        """Static boolean array: which neurons can spike."""

    @property
    @abc.abstractmethod
    def disarm_mask(self) -> np.ndarray:
        """Static boolean array: which neurons are disarmed by their own spike."""

    @abc.abstractmethod
    def vector_field(self, t, y: PyTree) -> PyTree: ...

    @abc.abstractmethod
    def conditions(self, t, y: PyTree) -> tuple[Float[Array, " N"], Float[Array, " N"]]:
        """Spike conditions and re-arm conditions, one value per neuron each."""

    @abc.abstractmethod
    def on_spikes(self, t, y: PyTree, fired: Bool[Array, " N"]) -> PyTree:
        """Resets of the neurons in `fired`, and delivery of their spikes."""

    @abc.abstractmethod
    def on_input(self, y: PyTree, sources: Int[Array, " B"], valid: Bool[Array, " B"]) -> PyTree:
        """Delivery of external spikes from `sources` where `valid`."""

    @abc.abstractmethod
    def next_internal_time(self, t, y: PyTree) -> Float[Array, ""]:
        """The next scheduled change (current jump, end of refractoriness) after `t`."""

    @abc.abstractmethod
    def apply_internal(self, t, y: PyTree) -> PyTree: ...


class PopulationSystem(AbstractSystem):
    """One population of `n` neurons of one model, with an external current, optional
    recurrent weights `(n, n)` (row = presynaptic) and input weights
    `(n_inputs, n)`."""

    neuron: AbstractNeuron
    n: int = eqx.field(static=True)
    current: AbstractCurrent
    weights: Float[Array, "n n"] | None
    input_weights: Float[Array, "k n"] | None

    @property
    def num_neurons(self) -> int:
        return self.n

    @property
    def spiking_mask(self) -> np.ndarray:
        return np.full((self.n,), self.neuron.spiking)

    @property
    def disarm_mask(self) -> np.ndarray:
        return np.full((self.n,), self.neuron.disarms_on_spike)

    def _current(self, t, dtype) -> Array:
        return jnp.broadcast_to(jnp.asarray(self.current(t), dtype), (self.n,))

    def vector_field(self, t, y):
        return self.neuron.dynamics(t, y, self._current(t, _dtype(y)))

    def conditions(self, t, y):
        if not self.neuron.spiking:
            minus_one = -jnp.ones((self.n,), _dtype(y))
            return minus_one, minus_one
        current = self._current(t, _dtype(y))
        spike = self.neuron.spike_condition(t, y, current)
        if self.neuron.disarms_on_spike:
            rearm = self.neuron.rearm_condition(t, y, current)
        else:
            rearm = -spike
        return spike, rearm

    def on_spikes(self, t, y, fired):
        y = self.neuron.reset(t, y, fired)
        if self.weights is not None:
            y = self.neuron.receive(y, fired.astype(self.weights.dtype) @ self.weights)
        return y

    def on_input(self, y, sources, valid):
        rows = self.input_weights[sources] * valid[:, None].astype(self.input_weights.dtype)
        return self.neuron.receive(y, jnp.sum(rows, axis=0))

    def next_internal_time(self, t, y):
        return jnp.minimum(self.neuron.next_scheduled_time(y), self.current.next_jump(t))

    def apply_internal(self, t, y):
        return self.neuron.apply_scheduled(t, y)


def _dtype(y):
    from jax.tree_util import tree_leaves

    return tree_leaves(y)[0].dtype
