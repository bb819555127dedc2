r"""Closed-form solution of the LIF family between events.

Between events, with a constant external current `I`, the LIF-family models are linear:

$$
\tau_m \dot v = v_\infty - v + \sum_j g_j, \qquad \tau_j \dot g_j = -g_j, \qquad
v_\infty = v_\text{leak} + I .
$$

A neuron that is refractory until `r` ms after the segment start holds `v` until then
(its currents decay), and evolves freely after. For `s >= r`

$$
v(s) = v_\infty + (A + C s)\, e^{-s/\tau_m} + \sum_j B_j e^{-s/\tau_j},
\qquad B_j = g_j c_j, \quad c_j = \frac{\tau_j}{\tau_j - \tau_m},
$$

$$
A = (v_0 - v_\infty) e^{r/\tau_m} - \sum_j g_j c_j e^{r/\tau_m - r/\tau_j}
    - \sum_{j \in D} g_j \frac{r}{\tau_m}, \qquad
C = \sum_{j \in D} \frac{g_j}{\tau_m},
$$

where `D` holds the currents whose time constant equals `tau_mem` (within
$\sqrt{\epsilon}$ relative; their `c_j` is replaced by the limit $(s - r)/\tau_m
e^{-(s-r)/\tau_m}$ kernel). The coefficients are computed once per event; evaluating
`v` at a time `s` then costs a few scalar exponentials (for homogeneous time
constants) and multiply-adds per neuron, which is what makes the event loop fast.

The event loop that uses it is `neurosim._per_neuron`.
"""

import equinox as eqx
import jax.numpy as jnp


def _exp_scaled(s, tau):
    return jnp.exp(-s / tau)


class ClosedForm(eqx.Module):
    """The closed-form solution of one population from a segment start `t0` (a PyTree,
    so that `jax.tree.map(lax.stop_gradient, form)` freezes it)."""

    neuron: eqx.Module
    state: eqx.Module
    tau_m: jnp.ndarray
    taus: tuple
    g: tuple
    v_inf: jnp.ndarray
    r: jnp.ndarray
    a: jnp.ndarray
    b: tuple
    c: jnp.ndarray

    def __init__(self, neuron, state, current, t0, t0_lo=0.0):
        self.neuron, self.state = neuron, state
        tau_m = neuron.tau_mem
        self.tau_m = tau_m
        self.taus = neuron.synapse_time_constants()
        self.g = tuple(getattr(state, name) for name in neuron.synapse_fields)
        self.v_inf = neuron.v_leak + current
        refractory = getattr(state, "refractory", None)
        if refractory is None:
            self.r = jnp.zeros_like(state.v)
        else:
            remaining = (state.ref_end - t0) - t0_lo
            self.r = jnp.where(refractory > 0, jnp.maximum(remaining, 0.0), 0.0)
        tiny = jnp.sqrt(jnp.finfo(state.v.dtype).eps)
        grow_m = jnp.exp(self.r / tau_m)
        a = (state.v - self.v_inf) * grow_m
        c_total = jnp.zeros_like(state.v)
        b = []
        for g, tau in zip(self.g, self.taus, strict=True):
            degenerate = jnp.abs(tau - tau_m) <= tiny * tau_m
            c = jnp.where(degenerate, 0.0, tau / jnp.where(degenerate, 1.0, tau - tau_m))
            a = a - g * c * grow_m * jnp.exp(-self.r / tau)
            a = a - jnp.where(degenerate, g * self.r / tau_m, 0.0)
            c_total = c_total + jnp.where(degenerate, g / tau_m, 0.0)
            b.append(g * c)
        self.a, self.b, self.c = a, tuple(b), c_total

    def voltage(self, s):
        free = self.v_inf + (self.a + self.c * s) * _exp_scaled(s, self.tau_m)
        for b, tau in zip(self.b, self.taus, strict=True):
            free = free + b * _exp_scaled(s, tau)
        return jnp.where(s < self.r, self.state.v, free)

    def slope(self, s):
        """dv/ds."""
        decay = _exp_scaled(s, self.tau_m)
        free = (self.c - (self.a + self.c * s) / self.tau_m) * decay
        for b, tau in zip(self.b, self.taus, strict=True):
            free = free - b / tau * _exp_scaled(s, tau)
        return jnp.where(s < self.r, 0.0, free)

    def at(self, s):
        """The population's state `s` ms after the segment start (before any event)."""
        names = self.neuron.synapse_fields
        currents = tuple(
            g * _exp_scaled(s, tau) for g, tau in zip(self.g, self.taus, strict=True)
        )
        return eqx.tree_at(
            lambda st: (st.v,) + tuple(getattr(st, name) for name in names),
            self.state,
            (self.voltage(s),) + currents,
        )
