r"""Adaptation mechanisms (as in inferno) that wrap a threshold neuron.

Each mechanism is a neuron model that wraps another one and adds `K` adaptation
variables per neuron (`K` parameter sets at once: a trailing `K` axis in the state,
summed over `K` where it acts). Time in ms, voltages in the wrapped neuron's units (mV
for biophysical models).

- `AdaptiveCurrent`: $\tau_k \dot w_k = a_k (v - v_\text{rest}) - w_k$,
  $w_k \leftarrow w_k + b_k$ at a spike; $\sum_k w_k$ is subtracted from the input
  current of the wrapped neuron.
- `VoltageAdaptiveThreshold`: $\dot\theta_k = a_k (v - v_\text{rest}) - b_k \theta_k$,
  $\theta_k \leftarrow \max(\theta_k, \theta_\text{reset})$ at a spike.
- `SpikeAdaptiveThreshold`: $\tau_k \dot\theta_k = -\theta_k$,
  $\theta_k \leftarrow \theta_k + a_k$ at a spike.

The two threshold mechanisms raise the wrapped neuron's threshold by $\sum_k \theta_k$.
While the wrapped neuron is refractory its adaptation variables are held constant, as
in inferno (which skips their update during the absolute refractory period); the jump
at the spike itself is applied.

inferno (`inferno.neural.functional`: `adaptive_currents_linear`,
`adaptive_thresholds_linear_voltage`, `adaptive_thresholds_linear_spike`) advances
these equations by one Euler (or exponential) step per time step and checks the
threshold once per step; here they are integrated together with the neuron and a spike
is the exact crossing of the adapted threshold. Wrappers delegate everything else
(reset, incoming spikes, scheduled events such as the end of refractoriness) to the
wrapped neuron, so they compose: a wrapper can wrap a wrapper.

**What a wrapped neuron must provide.**

- a membrane potential: `neuron.voltage(state)` if the model defines it (e.g. `AdEx`),
  else the state field `v`;
- a threshold that can be raised: `neuron.shifted_spike_condition(t, state, current,
  shift)` if the model defines it (e.g. `AdEx`), else `spike_condition - shift`, which
  is right for every model whose spike condition is `v - threshold` in voltage units
  (LIF, Izhikevich);
- refractoriness: `neuron.refractory_mask(state)` if defined, else the state field
  `refractory > 0` if there is one (LIF), else never refractory;
- the default `v_rest`: the model's `v_rest` (AdEx) or `v_leak` (LIF).

The wrappers provide all four themselves, which is what lets them compose.

**Parameter shapes.** The adaptation parameters have the set axis last: a scalar
(`K = 1`), shape `(K,)` (the same sets for every neuron) or `(n, K)` (per neuron and
set). `v_rest` is a scalar or shape `(n,)`.

**Example:**

```python
import neurosim as ns
from neurosim.neurons.adaptation import AdaptiveCurrent, SpikeAdaptiveThreshold

lif = ns.LIF(tau_mem=10.0, t_ref=2.0)
alif = SpikeAdaptiveThreshold(lif, tau_adapt=[50.0, 500.0], spike_increment=[0.2, 0.05])
neuron = AdaptiveCurrent(alif, tau_adapt=100.0, voltage_coupling=0.1, spike_increment=0.05)
sol = ns.simulate(neuron, n=1, t1=500.0, current=2.0, record=[100.0])
sol.states.neuron.theta        # shape (1, 1, 2): the two threshold adaptations at 100 ms
sol.states.w                   # shape (1, 1, 1): the adaptive current
sol.states.neuron.neuron.v     # shape (1, 1): the LIF's membrane potential
```
"""

import abc
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PyTree

from .._checks import check_per_neuron, check_positive, float_array
from ._wrapper import (
    AbstractWrapper,
    _refractory,
    _resting_potential,
    _shifted_spike_condition,
    _voltage,
    check_wrapped,
)

__all__ = [
    "AbstractAdaptation",
    "AdaptiveCurrent",
    "AdaptiveCurrentState",
    "AdaptiveThresholdState",
    "SpikeAdaptiveThreshold",
    "VoltageAdaptiveThreshold",
]


def _optional_float_array(x):
    return None if x is None else float_array(x)


class AdaptiveCurrentState(eqx.Module):
    """State of a neuron with an adaptive current: `neuron`, the wrapped neuron's state,
    and `w`, shape `(n, K)`, the adaptive currents (units of the input current)."""

    neuron: PyTree
    w: Float[Array, "n K"]


class AdaptiveThresholdState(eqx.Module):
    """State of a neuron with an adaptive threshold: `neuron`, the wrapped neuron's
    state, and `theta`, shape `(n, K)`, the threshold adaptations (voltage units)."""

    neuron: PyTree
    theta: Float[Array, "n K"]


class AbstractAdaptation(AbstractWrapper):
    """Base class of the adaptation mechanisms: a wrapped `neuron` and `K` adaptation
    variables per neuron, stored in the state field named `_field`. Subclasses define
    the rate of change of the adaptation, its jump at a spike, and its effect on the
    input current or on the threshold; everything else is delegated to the wrapped
    neuron.
    """

    _state_type: ClassVar[type]
    _field: ClassVar[str]
    _set_parameter_names: ClassVar[tuple[str, ...]]

    @abc.abstractmethod
    def _rate(self, v, adaptation) -> Array:
        """d adaptation / dt, shape `(n, K)`, given `v` of shape `(n, 1)`."""

    @abc.abstractmethod
    def _jump(self, adaptation, fired) -> Array:
        """The adaptation right after the neurons in `fired` (shape `(n, 1)`) spiked."""

    def _current_offset(self, adaptation):
        return 0.0

    def _threshold_offset(self, adaptation):
        return 0.0

    def __check_init__(self):
        owner = type(self).__name__
        check_wrapped(owner, self.neuron)
        if getattr(self, "v_rest", 0.0) is None:
            _resting_potential(self.neuron)
        shapes = [jnp.shape(getattr(self, name)) for name in self._set_parameter_names]
        names = ", ".join(f"`{name}`" for name in self._set_parameter_names)
        if any(len(shape) > 2 for shape in shapes):
            raise ValueError(
                f"{owner}: {names} have shapes {shapes}; expected scalars, one value per "
                "parameter set (K,), or one per neuron and set (n, K)."
            )
        try:
            np.broadcast_shapes(*shapes)
        except ValueError:
            raise ValueError(
                f"{owner}: {names} have shapes {shapes}, which disagree on the number of "
                "parameter sets K (the last axis)."
            ) from None

    @property
    def num_sets(self) -> int:
        """`K`, the number of adaptation parameter sets."""
        shapes = [jnp.shape(getattr(self, name)) for name in self._set_parameter_names]
        shape = np.broadcast_shapes(*shapes)
        return shape[-1] if shape else 1

    def _v_rest(self):
        v_rest = getattr(self, "v_rest", None)
        return _resting_potential(self.neuron) if v_rest is None else v_rest

    def _adaptation(self, state) -> Float[Array, "n K"]:
        return getattr(state, self._field)

    def _state(self, inner, adaptation):
        return self._state_type(neuron=inner, **{self._field: adaptation})

    def _inner_current(self, state, current):
        return current - self._current_offset(self._adaptation(state))

    def refractory_mask(self, state) -> Bool[Array, " n"]:
        """Whether the wrapped neuron is refractory."""
        return _refractory(self.neuron, state.neuron)

    def init_state(self, n: int):
        inner = self.neuron.init_state(n)
        dtype = _voltage(self.neuron, inner).dtype
        return self._state(inner, jnp.zeros((n, self.num_sets), dtype))

    def dynamics(self, t, state, current):
        inner = self.neuron.dynamics(t, state.neuron, self._inner_current(state, current))
        v = _voltage(self.neuron, state.neuron)[..., None]
        rate = self._rate(v, self._adaptation(state))
        held = _refractory(self.neuron, state.neuron)[..., None]
        return self._state(inner, jnp.where(held, 0.0, rate))

    def shifted_spike_condition(self, t, state, current, shift):
        """The spike condition with the threshold raised by `shift` on top of this
        mechanism's own threshold adaptation."""
        shift = shift + self._threshold_offset(self._adaptation(state))
        return _shifted_spike_condition(
            self.neuron, t, state.neuron, self._inner_current(state, current), shift
        )

    def spike_condition(self, t, state, current):
        return self.shifted_spike_condition(t, state, current, 0.0)

    def rearm_condition(self, t, state, current):
        return self.neuron.rearm_condition(
            t, state.neuron, self._inner_current(state, current)
        )

    def reset(self, t, state, fired):
        inner = self.neuron.reset(t, state.neuron, fired)
        return self._state(inner, self._jump(self._adaptation(state), fired[..., None]))

    def receive(self, state, x):
        return self._state(self.neuron.receive(state.neuron, x), self._adaptation(state))

    def next_scheduled_time(self, state):
        return self.neuron.next_scheduled_time(state.neuron)

    def apply_scheduled(self, t, state):
        inner = self.neuron.apply_scheduled(t, state.neuron)
        return self._state(inner, self._adaptation(state))

    def validate(self, n: int) -> None:
        self.neuron.validate(n)
        owner = type(self).__name__
        for name in self._set_parameter_names:
            shape = jnp.shape(getattr(self, name))
            if len(shape) == 2 and shape[0] != n:
                raise ValueError(
                    f"{owner}: `{name}` has shape {shape}; per-neuron parameter sets need "
                    f"shape ({n}, K) for {n} neurons."
                )
        v_rest = getattr(self, "v_rest", None)
        if v_rest is not None:
            check_per_neuron(owner, "v_rest", v_rest, n)


class AdaptiveCurrent(AbstractAdaptation):
    r"""An adaptive current subtracted from the wrapped neuron's input (inferno's
    "adaptive current, linear").

    $$
    \tau_k \frac{dw_k}{dt} = a_k \bigl(v - v_\text{rest}\bigr) - w_k, \qquad
    I \to I - \sum_k w_k, \qquad w_k \leftarrow w_k + b_k \text{ at a spike},
    $$

    held while the wrapped neuron is refractory. With a LIF this is the adaptive LIF
    with subthreshold and spike-triggered adaptation; with `a_k = 0` it is pure
    spike-frequency adaptation.

    **Arguments** (inferno's names in brackets):

    - `neuron`: the wrapped neuron model.
    - `tau_adapt`: $\tau_k$, ms (> 0) [`time_constant`, `tc_adaptation`].
    - `voltage_coupling`: $a_k$, current per unit voltage [`voltage_coupling`].
    - `spike_increment`: $b_k$, in current units [`spike_increment`].
    - `v_rest`: $v_\text{rest}$ [`rest_v`]; default None: the wrapped neuron's resting
        potential (`v_rest`, or the LIF's `v_leak`).

    `tau_adapt`, `voltage_coupling`, `spike_increment` are scalars, `(K,)` or `(n, K)`
    arrays (K parameter sets, summed); inferno has no defaults for them, nor does this.
    The state is `AdaptiveCurrentState(neuron=..., w=(n, K))`, `w` starting at 0.

    **Example:**

    ```python
    import neurosim as ns
    from neurosim.neurons.adaptation import AdaptiveCurrent

    neuron = AdaptiveCurrent(ns.LIF(tau_mem=10.0), tau_adapt=100.0,
                             voltage_coupling=0.0, spike_increment=0.1)
    sol = ns.simulate(neuron, n=1, t1=300.0, current=2.0)   # the ISIs grow
    ```
    """

    tau_adapt: Float[Array, "..."] = eqx.field(converter=float_array)
    voltage_coupling: Float[Array, "..."] = eqx.field(converter=float_array)
    spike_increment: Float[Array, "..."] = eqx.field(converter=float_array)
    v_rest: Float[Array, "..."] | None = eqx.field(
        converter=_optional_float_array, default=None
    )

    _state_type: ClassVar[type] = AdaptiveCurrentState
    _field: ClassVar[str] = "w"
    _set_parameter_names: ClassVar[tuple[str, ...]] = (
        "tau_adapt",
        "voltage_coupling",
        "spike_increment",
    )

    def __check_init__(self):
        check_positive(type(self).__name__, "tau_adapt", self.tau_adapt)

    def _rate(self, v, adaptation):
        v_rest = jnp.expand_dims(self._v_rest(), -1)
        return (self.voltage_coupling * (v - v_rest) - adaptation) / self.tau_adapt

    def _jump(self, adaptation, fired):
        return jnp.where(fired, adaptation + self.spike_increment, adaptation)

    def _current_offset(self, adaptation):
        return jnp.sum(adaptation, axis=-1)


class VoltageAdaptiveThreshold(AbstractAdaptation):
    r"""A voltage-dependent adaptive threshold (inferno's "adaptive threshold, linear
    voltage-dependent").

    $$
    \frac{d\theta_k}{dt} = a_k \bigl(v - v_\text{rest}\bigr) - b_k \theta_k, \qquad
    v_\text{th} \to v_\text{th} + \sum_k \theta_k, \qquad
    \theta_k \leftarrow \max(\theta_k, \theta_\text{reset}) \text{ at a spike},
    $$

    held while the wrapped neuron is refractory.

    **Arguments** (inferno's names in brackets):

    - `neuron`: the wrapped neuron model.
    - `adapt_rate`: $a_k$, 1/ms [`adapt_rate`, `adaptation_rate`].
    - `rebound_rate`: $b_k$, 1/ms [`rebound_rate`].
    - `theta_reset`: $\theta_\text{reset}$, the lower bound applied to each $\theta_k$
        at a spike, voltage units (default `-inf`: no bound, inferno's `None`)
        [`adapt_reset_lb`, `adaptation_reset_min`].
    - `v_rest`: $v_\text{rest}$ [`rest_v`]; default None: the wrapped neuron's resting
        potential.

    `adapt_rate`, `rebound_rate`, `theta_reset` are scalars, `(K,)` or `(n, K)` arrays.
    The state is `AdaptiveThresholdState(neuron=..., theta=(n, K))`, starting at 0.

    **Example:**

    ```python
    import neurosim as ns
    from neurosim.neurons.adaptation import VoltageAdaptiveThreshold

    neuron = VoltageAdaptiveThreshold(ns.LIF(tau_mem=10.0), adapt_rate=0.01,
                                      rebound_rate=0.02, theta_reset=0.5)
    sol = ns.simulate(neuron, n=1, t1=300.0, current=2.0)
    ```
    """

    adapt_rate: Float[Array, "..."] = eqx.field(converter=float_array)
    rebound_rate: Float[Array, "..."] = eqx.field(converter=float_array)
    theta_reset: Float[Array, "..."] = eqx.field(converter=float_array, default=-jnp.inf)
    v_rest: Float[Array, "..."] | None = eqx.field(
        converter=_optional_float_array, default=None
    )

    _state_type: ClassVar[type] = AdaptiveThresholdState
    _field: ClassVar[str] = "theta"
    _set_parameter_names: ClassVar[tuple[str, ...]] = (
        "adapt_rate",
        "rebound_rate",
        "theta_reset",
    )

    def _rate(self, v, adaptation):
        v_rest = jnp.expand_dims(self._v_rest(), -1)
        return self.adapt_rate * (v - v_rest) - self.rebound_rate * adaptation

    def _jump(self, adaptation, fired):
        return jnp.where(fired, jnp.maximum(adaptation, self.theta_reset), adaptation)

    def _threshold_offset(self, adaptation):
        return jnp.sum(adaptation, axis=-1)


class SpikeAdaptiveThreshold(AbstractAdaptation):
    r"""A spike-dependent adaptive threshold (inferno's "adaptive threshold, linear
    spike-dependent", the threshold of its ALIF).

    $$
    \tau_k \frac{d\theta_k}{dt} = -\theta_k, \qquad
    v_\text{th} \to v_\text{th} + \sum_k \theta_k, \qquad
    \theta_k \leftarrow \theta_k + a_k \text{ at a spike},
    $$

    held while the wrapped neuron is refractory.

    **Arguments** (inferno's names in brackets):

    - `neuron`: the wrapped neuron model.
    - `tau_adapt`: $\tau_k$, ms (> 0) [`time_constant`, `tc_adaptation`].
    - `spike_increment`: $a_k$, voltage units [`spike_increment`,
        `spike_adapt_increment`].

    Scalars, `(K,)` or `(n, K)` arrays; no defaults (as in inferno). The state is
    `AdaptiveThresholdState(neuron=..., theta=(n, K))`, starting at 0.

    **Example:**

    ```python
    import neurosim as ns
    from neurosim.neurons.adaptation import SpikeAdaptiveThreshold

    neuron = SpikeAdaptiveThreshold(ns.LIF(tau_mem=10.0), tau_adapt=[30.0, 300.0],
                                    spike_increment=[0.2, 0.02])
    sol = ns.simulate(neuron, n=1, t1=300.0, current=2.0)
    ```
    """

    tau_adapt: Float[Array, "..."] = eqx.field(converter=float_array)
    spike_increment: Float[Array, "..."] = eqx.field(converter=float_array)

    _state_type: ClassVar[type] = AdaptiveThresholdState
    _field: ClassVar[str] = "theta"
    _set_parameter_names: ClassVar[tuple[str, ...]] = ("tau_adapt", "spike_increment")

    def __check_init__(self):
        check_positive(type(self).__name__, "tau_adapt", self.tau_adapt)

    def _rate(self, v, adaptation):
        return -adaptation / self.tau_adapt

    def _jump(self, adaptation, fired):
        return jnp.where(fired, adaptation + self.spike_increment, adaptation)

    def _threshold_offset(self, adaptation):
        return jnp.sum(adaptation, axis=-1)
