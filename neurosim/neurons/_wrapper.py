"""What the wrappers (adaptation, refractoriness) share: a wrapped spiking model, and
the ways to read its membrane potential, refractoriness, threshold and resting
potential (see `neurosim.neurons.adaptation`, "What a wrapped neuron must provide")."""

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .base import AbstractNeuron


def _voltage(neuron: AbstractNeuron, state) -> Float[Array, " n"]:
    method = getattr(neuron, "voltage", None)
    return method(state) if method is not None else state.v


def _refractory(neuron: AbstractNeuron, state) -> Bool[Array, " n"]:
    method = getattr(neuron, "refractory_mask", None)
    if method is not None:
        return method(state)
    flag = getattr(state, "refractory", None)
    if flag is None:
        return jnp.zeros(jnp.shape(_voltage(neuron, state)), bool)
    return flag > 0


def _shifted_spike_condition(neuron: AbstractNeuron, t, state, current, shift):
    method = getattr(neuron, "shifted_spike_condition", None)
    if method is not None:
        return method(t, state, current, shift)
    return neuron.spike_condition(t, state, current) - shift


def _resting_potential(neuron: AbstractNeuron):
    method = getattr(neuron, "resting_potential", None)
    if method is not None:
        return method()
    for name in ("v_rest", "v_leak"):
        value = getattr(neuron, name, None)
        if value is not None:
            return value
    raise ValueError(
        f"{type(neuron).__name__} has no resting potential (`v_rest` or `v_leak`); pass "
        "`v_rest` to the adaptation mechanism."
    )


def check_wrapped(owner: str, neuron) -> None:
    """Raise unless `neuron` is a spiking neurosim model (run it first in a wrapper's
    `__check_init__`: equinox runs a subclass's checks before its base's)."""
    if not isinstance(neuron, AbstractNeuron):
        raise TypeError(
            f"{owner}: `neuron` must be a neurosim neuron model (a subclass of "
            f"neurosim.AbstractNeuron), got {type(neuron).__name__}."
        )
    if not neuron.spiking:
        raise ValueError(
            f"{owner}: `neuron` must be a spiking model; {type(neuron).__name__} "
            "does not spike."
        )


class AbstractWrapper(AbstractNeuron):
    """A model that wraps a spiking `neuron`; its state keeps the wrapped state in the
    field `neuron`. Spiking, disarming, membrane potential and resting potential are
    the wrapped model's. Subclasses call `check_wrapped` in their `__check_init__`."""

    neuron: AbstractNeuron

    @property
    def spiking(self) -> bool:
        return self.neuron.spiking

    @property
    def disarms_on_spike(self) -> bool:
        return self.neuron.disarms_on_spike

    def resting_potential(self):
        """The wrapped neuron's resting potential."""
        return _resting_potential(self.neuron)

    def voltage(self, state) -> Float[Array, " n"]:
        """The wrapped neuron's membrane potential (also of recorded states)."""
        return _voltage(self.neuron, state.neuron)
