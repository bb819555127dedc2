r"""Leaky integrate-and-fire neurons with exponential current-based synapses.

Equations (time in ms, voltages in mV or any unit shared by all voltage parameters):

$$
\tau_\text{mem} \frac{dv}{dt} = v_\text{leak} - v + i + I_\text{ext}(t), \qquad
\tau_\text{syn} \frac{di}{dt} = -i .
$$

The synaptic current `i` and the external current `I_ext` are expressed in voltage
units (they are the drive $R I$). Incoming spikes jump `i` by their weight.
"""

from typing import ClassVar, Literal

import equinox as eqx
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .. import _cpu
from .._checks import check_below, check_positive, float_array
from . import _linear
from .base import AbstractNeuron

__all__ = [
    "CobaLIF",
    "CobaLIFState",
    "CubaLIF",
    "CubaLIFState",
    "LI",
    "LIF",
    "LIFState",
    "LIState",
]


class LIFState(eqx.Module):
    """State of a LIF population: membrane potential `v`, synaptic current `i`,
    `refractory` (1.0 while refractory, else 0.0) and `ref_end`, the time (ms) at which
    the current refractory period ends."""

    v: Float[Array, " n"]
    i: Float[Array, " n"]
    refractory: Float[Array, " n"]
    ref_end: Float[Array, " n"]


# The methods whose behaviour the closed form (`neurosim.neurons._linear`) assumes.
_EQUATIONS = (
    "dynamics",
    "spike_condition",
    "reset",
    "receive",
    "init_state",
    "apply_scheduled",
    "next_scheduled_time",
    "synapse_time_constants",
    "closed_form",
    "_dv",
)


def _own_equations(neuron, names) -> bool:
    """Whether every method of `names` that `neuron`'s class has is neurosim's own
    (not overridden by a subclass written elsewhere)."""
    for name in names:
        owner = next((k for k in type(neuron).__mro__ if name in vars(k)), None)
        if owner is not None and owner.__module__.split(".")[0] != "neurosim":
            return False
    return True


class _Linear(AbstractNeuron):
    """Models that are linear between events (the LIF family): exact propagation with a
    constant external current, see `neurosim.neurons._linear`. Subclasses name their
    exponential synaptic currents and the fields holding their time constants."""

    synapse_fields: ClassVar[tuple[str, ...]] = ()
    _synapse_taus: ClassVar[tuple[str, ...]] = ()

    def synapse_time_constants(self):
        return tuple(getattr(self, name) for name in self._synapse_taus)

    def has_closed_form(self) -> bool:
        """Whether this model's equations are those its closed form solves: every
        method that defines them is neurosim's own. A subclass that overrides one (a
        conductance-based model written on top of `CubaLIF`, say) is integrated by the
        ODE solver instead."""
        return _own_equations(self, _EQUATIONS)

    def closed_form(self, state, current, t0, t0_lo=0.0) -> _linear.ClosedForm:
        """The exact solution from `state` at time `t0 + t0_lo` (ms; `t0_lo` the low
        part of a time kept as a pair) under a constant `current` while no event
        occurs, including the end of a refractory period."""
        return _linear.ClosedForm(self, state, current, t0, t0_lo)


class _ThresholdLIF(AbstractNeuron):
    """The threshold, reset and refractory behaviour shared by the LIF models (with a
    closed form or not): state fields `v`, `refractory`, `ref_end`; subclasses add
    their synaptic currents or conductances."""

    tau_mem: Float[Array, "..."] = eqx.field(converter=float_array, default=10.0)
    v_th: Float[Array, "..."] = eqx.field(converter=float_array, default=1.0)
    v_reset: Float[Array, "..."] = eqx.field(converter=float_array, default=0.0)
    v_leak: Float[Array, "..."] = eqx.field(converter=float_array, default=0.0)
    t_ref: Float[Array, "..."] = eqx.field(converter=float_array, default=0.0)
    reset_mode: Literal["hard", "soft"] = eqx.field(static=True, default="hard")
    constant_fields: ClassVar[tuple[str, ...]] = ("refractory", "ref_end")

    def __check_init__(self):
        owner = type(self).__name__
        check_positive(owner, "tau_mem", self.tau_mem)
        check_positive(owner, "t_ref", self.t_ref, allow_zero=True)
        check_below(owner, "v_reset", self.v_reset, "v_th", self.v_th)
        if self.reset_mode not in ("hard", "soft"):
            raise ValueError(
                f"{owner}: `reset_mode` must be 'hard' or 'soft', got {self.reset_mode!r}."
            )

    def _dv(self, state, drive, current):
        """dv/dt, held at zero while refractory."""
        dv = (self.v_leak - state.v + drive + current) / self.tau_mem
        return jnp.where(state.refractory > 0, 0.0, dv)

    def spike_condition(self, t, state, current) -> Array:
        """`v - v_th`; while refractory at most -1 (no spike before the refractory
        period ends, a spike at its end if `v` is still above threshold)."""
        above = state.v - self.v_th
        return jnp.where(state.refractory > 0, jnp.minimum(above, -1.0), above)

    def reset(self, t, state, fired):
        if self.reset_mode == "hard":
            v_after = jnp.broadcast_to(self.v_reset, state.v.shape)
        else:
            v_after = state.v - (self.v_th - self.v_reset)
        starts = fired & (self.t_ref > 0)
        return eqx.tree_at(
            lambda s: (s.v, s.refractory, s.ref_end),
            state,
            (
                jnp.where(fired, v_after, state.v),
                jnp.where(starts, 1.0, state.refractory),
                jnp.where(fired, t + self.t_ref, state.ref_end),
            ),
        )

    def next_scheduled_time(self, state) -> Array:
        return jnp.min(jnp.where(state.refractory > 0, state.ref_end, jnp.inf))

    def apply_scheduled(self, t, state):
        ended = (state.refractory > 0) & (state.ref_end <= t)
        return eqx.tree_at(
            lambda s: s.refractory, state, jnp.where(ended, 0.0, state.refractory)
        )


class _AbstractLIF(_ThresholdLIF, _Linear):
    """The LIF models that are linear between events (closed form)."""


class LIF(_AbstractLIF):
    r"""Current-based leaky integrate-and-fire neuron.

    $\tau_\text{mem}\,\dot v = v_\text{leak} - v + i + I_\text{ext}$,
    $\tau_\text{syn}\,\dot i = -i$; a spike when `v` crosses `v_th` upwards. Then
    `v <- v_reset` (hard reset) or `v <- v - (v_th - v_reset)` (soft reset, which with
    `v_reset = 0` is the "subtract threshold" reset of norse and inferno). For `t_ref`
    ms after a spike the neuron is refractory: `v` is held at its reset value while `i`
    keeps evolving and receiving input.

    **Arguments** (scalars or one value per neuron):

    - `tau_mem`: membrane time constant, ms (default 10).
    - `tau_syn`: synaptic time constant, ms (default 5).
    - `v_th`: threshold (default 1.0).
    - `v_reset`: reset potential (default 0.0).
    - `v_leak`: resting potential (default 0.0).
    - `t_ref`: absolute refractory period, ms (default 0).
    - `reset_mode`: `"hard"` (default) or `"soft"`.

    **Example:**

    ```python
    import neurosim as ns
    sol = ns.simulate(ns.LIF(tau_mem=10.0), n=1, t1=100.0, current=1.5)
    print(sol.spike_times[: sol.num_spikes])   # k * 10 ln 3 ms
    ```
    """

    tau_syn: Float[Array, "..."] = eqx.field(converter=float_array, default=5.0)

    synapse_fields: ClassVar[tuple[str, ...]] = ("i",)
    _synapse_taus: ClassVar[tuple[str, ...]] = ("tau_syn",)

    def __check_init__(self):
        check_positive("LIF", "tau_syn", self.tau_syn)

    def init_state(self, n: int) -> LIFState:
        zeros = jnp.zeros((n,), self.tau_mem.dtype)
        return LIFState(v=zeros + self.v_leak, i=zeros, refractory=zeros, ref_end=zeros)

    def dynamics(self, t, state: LIFState, current) -> LIFState:
        zeros = jnp.zeros_like(state.v)
        return LIFState(
            v=self._dv(state, state.i, current),
            i=-state.i / self.tau_syn,
            refractory=zeros,
            ref_end=zeros,
        )

    def receive(self, state: LIFState, x) -> LIFState:
        return eqx.tree_at(lambda s: s.i, state, state.i + x)


class CubaLIFState(eqx.Module):
    """State of a `CubaLIF`: `v`, excitatory and inhibitory currents `ge`, `gi`, and
    the refractory fields as in `LIFState`."""

    v: Float[Array, " n"]
    ge: Float[Array, " n"]
    gi: Float[Array, " n"]
    refractory: Float[Array, " n"]
    ref_end: Float[Array, " n"]


class CubaLIF(_AbstractLIF):
    r"""LIF with separate excitatory and inhibitory exponential currents, as in the
    Vogels-Abbott CUBA benchmark.

    $\tau_\text{mem}\,\dot v = v_\text{leak} - v + g_e + g_i + I_\text{ext}$,
    $\tau_e\,\dot g_e = -g_e$, $\tau_i\,\dot g_i = -g_i$ (voltage units; inhibitory
    weights are negative). Threshold, reset and refractoriness as in `LIF`. Incoming
    spikes jump `ge` when positive and `gi` when negative (`receive`); a projection
    can also name its target (`"ge"` or `"gi"`) explicitly.

    **Arguments:** those of `LIF` without `tau_syn`, plus `tau_exc` (ms, default 5) and
    `tau_inh` (ms, default 10).
    """

    tau_exc: Float[Array, "..."] = eqx.field(converter=float_array, default=5.0)
    tau_inh: Float[Array, "..."] = eqx.field(converter=float_array, default=10.0)

    synapse_fields: ClassVar[tuple[str, ...]] = ("ge", "gi")
    _synapse_taus: ClassVar[tuple[str, ...]] = ("tau_exc", "tau_inh")

    def __check_init__(self):
        check_positive("CubaLIF", "tau_exc", self.tau_exc)
        check_positive("CubaLIF", "tau_inh", self.tau_inh)

    def init_state(self, n: int) -> CubaLIFState:
        zeros = jnp.zeros((n,), self.tau_mem.dtype)
        return CubaLIFState(
            v=zeros + self.v_leak, ge=zeros, gi=zeros, refractory=zeros, ref_end=zeros
        )

    def dynamics(self, t, state: CubaLIFState, current) -> CubaLIFState:
        zeros = jnp.zeros_like(state.v)
        return CubaLIFState(
            v=self._dv(state, state.ge + state.gi, current),
            ge=-state.ge / self.tau_exc,
            gi=-state.gi / self.tau_inh,
            refractory=zeros,
            ref_end=zeros,
        )

    def receive(self, state: CubaLIFState, x) -> CubaLIFState:
        return eqx.tree_at(
            lambda s: (s.ge, s.gi),
            state,
            (state.ge + jnp.maximum(x, 0.0), state.gi + jnp.minimum(x, 0.0)),
        )


# `CobaLIF.propagate`'s Gauss-Legendre quadrature by float width: (nodes, panels no
# longer than `reach / rate`). Measured in float64 against 14 nodes at reach 1, over
# the random cases of tests/neurons/test_coba.py (2000 neurons: time constants 1-15
# ms, reversal potentials swapped, currents -5 to 25, lengths up to 100 ms), the
# largest relative error of `v`: 5 nodes at reach 3, 2.4e-9; at reach 6, 7.9e-7;
# 6 nodes at reach 6, 3.3e-8; 7 nodes at reach 6, 3.3e-9; 8 nodes at reach 4,
# 4.3e-13. float32 takes 7 nodes at reach 6: as accurate as 5 at reach 3, with panels
# twice as long for the same number of exponentials per panel (the nodes' decays
# take one per pair of nodes). On the COBA benchmark (0.7 ms between a neuron's
# inputs on average) most advances then take one panel, where the longest of an
# event's 80 targets needed two before, which all lanes waited for.
QUADRATURE = {4: (7, 6.0), 8: (8, 4.0)}


def _quadrature(dtype):
    count, reach = QUADRATURE[jnp.dtype(dtype).itemsize]
    nodes, weights = np.polynomial.legendre.leggauss(count)
    return jnp.asarray(nodes, dtype), jnp.asarray(weights, dtype), reach


# The methods whose equations `CobaLIF.quiet_time` and `CobaLIF.propagate` assume.
_COBA_EQUATIONS = (
    "dynamics",
    "spike_condition",
    "_dv",
    "next_scheduled_time",
    "apply_scheduled",
)


class CobaLIFState(eqx.Module):
    """State of a `CobaLIF`: `v` (mV), the excitatory and inhibitory conductances
    `g_e`, `g_i` (in units of the leak conductance), and the refractory fields as in
    `LIFState`."""

    v: Float[Array, " n"]
    g_e: Float[Array, " n"]
    g_i: Float[Array, " n"]
    refractory: Float[Array, " n"]
    ref_end: Float[Array, " n"]


class CobaLIF(_ThresholdLIF):
    r"""Conductance-based LIF, as in the COBA benchmark of Brette et al. (2007).

    $$
    \tau_\text{mem}\,\dot v = v_\text{leak} - v + g_e (E_e - v) + g_i (E_i - v)
        + I_\text{ext}, \qquad
    \tau_e\,\dot g_e = -g_e, \qquad \tau_i\,\dot g_i = -g_i .
    $$

    The conductances are in units of the leak conductance (dimensionless: `g_e = 1`
    doubles the membrane's conductance); voltages in mV; `I_ext` in voltage units (the
    drive $R I$, as for `LIF`). A spike when `v` crosses `v_th` upwards; then
    `v <- v_reset`, held there for `t_ref` ms while `g_e` and `g_i` keep decaying and
    receiving spikes (soft reset with `reset_mode="soft"`, as for `LIF`).

    Incoming spikes: a projection with `target="g_e"` or `target="g_i"` adds its
    weight to that conductance (weights >= 0); without a target, positive weights go
    to `g_e` and negative weights add their magnitude to `g_i`.

    The equations have no closed form: `simulate` integrates them with its ODE solver.
    On per-neuron clocks, a forward run brings a neuron to the time of an input by
    `propagate` (a quadrature, exact to the float's precision) and solves only to find
    its spikes, and `quiet_time` spares the solves of neurons that cannot fire before
    their next input.

    **Arguments** (scalars or one value per neuron; defaults are the benchmark's):

    - `tau_mem`: membrane time constant, ms (default 20).
    - `v_leak`: resting potential, mV (default -60).
    - `v_th`: threshold, mV (default -50).
    - `v_reset`: reset potential, mV (default -60).
    - `t_ref`: absolute refractory period, ms (default 5).
    - `E_e`, `E_i`: excitatory and inhibitory reversal potentials, mV (default 0 and
        -80).
    - `tau_e`, `tau_i`: conductance time constants, ms (default 5 and 10).
    - `reset_mode`: `"hard"` (default) or `"soft"`.

    The benchmark's synaptic weights, 6 nS and 67 nS with a leak conductance of 10 nS,
    are `0.6` and `6.7` here.

    **Example:**

    ```python
    import neurosim as ns
    sol = ns.simulate(ns.CobaLIF(), n=1, t1=100.0, current=15.0)  # 15 mV above rest
    print(sol.spike_times[: sol.num_spikes])
    ```
    """

    tau_mem: Float[Array, "..."] = eqx.field(converter=float_array, default=20.0)
    v_th: Float[Array, "..."] = eqx.field(converter=float_array, default=-50.0)
    v_reset: Float[Array, "..."] = eqx.field(converter=float_array, default=-60.0)
    v_leak: Float[Array, "..."] = eqx.field(converter=float_array, default=-60.0)
    t_ref: Float[Array, "..."] = eqx.field(converter=float_array, default=5.0)
    E_e: Float[Array, "..."] = eqx.field(converter=float_array, default=0.0)
    E_i: Float[Array, "..."] = eqx.field(converter=float_array, default=-80.0)
    tau_e: Float[Array, "..."] = eqx.field(converter=float_array, default=5.0)
    tau_i: Float[Array, "..."] = eqx.field(converter=float_array, default=10.0)

    propagates_across_changes: ClassVar[bool] = True

    def __check_init__(self):
        check_positive("CobaLIF", "tau_e", self.tau_e)
        check_positive("CobaLIF", "tau_i", self.tau_i)

    def init_state(self, n: int) -> CobaLIFState:
        zeros = jnp.zeros((n,), self.tau_mem.dtype)
        return CobaLIFState(
            v=zeros + self.v_leak, g_e=zeros, g_i=zeros, refractory=zeros, ref_end=zeros
        )

    def dynamics(self, t, state: CobaLIFState, current) -> CobaLIFState:
        zeros = jnp.zeros_like(state.v)
        synaptic = state.g_e * (self.E_e - state.v) + state.g_i * (self.E_i - state.v)
        return CobaLIFState(
            v=self._dv(state, synaptic, current),
            g_e=-state.g_e / self.tau_e,
            g_i=-state.g_i / self.tau_i,
            refractory=zeros,
            ref_end=zeros,
        )

    def quiet_time(self, t, state: CobaLIFState, current) -> Array | None:
        r"""A time during which no spike can come if nothing reaches the neurons.

        At a first crossing, `v = v_th` and $\dot v \ge 0$, so the drive at threshold
        $D(s) = v_\text{leak} + I - v_\text{th} + g_e(s)(E_e - v_\text{th})
        + g_i(s)(E_i - v_\text{th})$ is $\ge 0$ there: no crossing comes while
        $D < 0$. With $a = v_\text{leak} + I - v_\text{th}$ and the conductance
        terms $b e^{-s/\tau_e}$, $c e^{-s/\tau_i}$, upper bounds of $D$ give the
        time (the longest that one of them allows):

        - $a + \max(b, 0) + \max(c, 0)$, a constant (always): quiet for ever where
          it is negative;
        - $a + (b + c) e^{-s/\tau}$ with $\tau$ the faster time constant, when the
          slower term is the negative one (inhibition that outlasts excitation:
          $c \le 0$ and $\tau_i \ge \tau_e$, as in the benchmark). A neuron whose
          instantaneous equilibrium is below threshold now ($D(0) < 0$), and without
          inputs too ($a < 0$), then stays quiet until something reaches it (`inf`);
          with $a > 0$ it is quiet until that bound's zero;
        - where that bound falls from positive to zero at $S$ ($a < 0 < a + b + c$,
          as just after excitation), a crossing can only come before $S$, and
          $v - v_\text{th}$ stays below
          $(v - v_\text{th}) e^{-\Lambda(S)} + \int_0^S (a + (b + c) e^{-r/\tau})
          \, dr / \tau_\text{mem}$ until then ($\Lambda$ as in `propagate`): where
          that is negative, quiet until something reaches it. COBA 4000, 100 ms:
          61.6 k solver steps against 74.8 k without this bound.

        While refractory, no spike comes before the period ends, and `v` is held
        there while the conductances decay: the bounds are read from the state at
        its end, and the time to it added. A neuron at or above threshold is quiet
        only until the end of its refractory period. None when a subclass written
        elsewhere changes the equations."""
        if not _own_equations(self, _COBA_EQUATIONS):
            return None
        inf = jnp.asarray(jnp.inf, state.v.dtype)
        # No spike before the end of a refractory period, and `v` is held until then
        # while the conductances decay: the bounds are read from its end on.
        held = jnp.where(state.refractory > 0, jnp.maximum(state.ref_end - t, 0.0), 0.0)
        a = self.v_leak + current - self.v_th
        g_e = state.g_e * jnp.exp(-held / self.tau_e)
        g_i = state.g_i * jnp.exp(-held / self.tau_i)
        b = g_e * (self.E_e - self.v_th)
        c = g_i * (self.E_i - self.v_th)
        constant = jnp.where(a + jnp.maximum(b, 0.0) + jnp.maximum(c, 0.0) < 0, inf, 0.0)
        # The first zero of a + k exp(-s / tau): 0 where it is not negative at s = 0,
        # inf where it stays negative (a <= 0), else tau log(-k / a).
        k = b + c
        inhibition_slower = (c <= 0) & (self.tau_i >= self.tau_e)
        excitation_slower = (b <= 0) & (self.tau_e >= self.tau_i)
        tau = jnp.where(inhibition_slower, self.tau_e, self.tau_i)
        ratio = jnp.where((a > 0) & (a + k < 0), -k / jnp.where(a > 0, a, 1.0), 1.0)
        decaying = jnp.where(a + k >= 0, 0.0, jnp.where(a > 0, tau * jnp.log(ratio), inf))
        # Where that bound falls from positive (a < 0 < a + k) to zero at S, a
        # crossing can come before S only: v - v_th stays below
        # (v - v_th) exp(-Lambda(S)) + int_0^S (a + k exp(-r / tau)) dr / tau_mem,
        # and where that is negative the neuron is quiet for ever.
        falling = (a < 0) & (a + k > 0)
        ratio = jnp.where(falling, k / jnp.where(falling, -a, 1.0), 1.0)
        end = tau * jnp.log(ratio)
        push = (a * end + tau * (a + k)) / self.tau_mem
        spent = (
            end
            - self.tau_e * g_e * jnp.expm1(-end / self.tau_e)
            - self.tau_i * g_i * jnp.expm1(-end / self.tau_i)
        ) / self.tau_mem
        below_then = (state.v - self.v_th) * jnp.exp(-spent) + push < 0
        decaying = jnp.where(falling & below_then, inf, decaying)
        decaying = jnp.where(inhibition_slower | excitation_slower, decaying, 0.0)
        # Only below threshold (`v` above it while refractory fires at the end).
        below = state.v < self.v_th
        return held + jnp.where(below, jnp.maximum(constant, decaying), 0.0)

    def propagate(self, t, state: CobaLIFState, length, current) -> CobaLIFState | None:
        r"""The state `length` ms after `t` without inputs, by quadrature.

        The conductances decay exactly, and `v` is linear in itself:
        $\tau_\text{mem}\dot v = \beta(s) - \gamma(s) v$ with
        $\gamma = 1 + g_e + g_i$ and $\beta = v_\text{leak} + I + g_e E_e + g_i E_i$.
        With $\Lambda(s) = \int_0^s \gamma / \tau_\text{mem}$, a closed form,
        $$
        v(h) = e^{-\Lambda(h)} v(0) + \int_0^h e^{-(\Lambda(h) - \Lambda(s))}
            \frac{\beta(s)}{\tau_\text{mem}}\, ds ,
        $$
        whose integrand is smooth and bounded: Gauss-Legendre quadrature on panels
        no longer than `reach / r`, where r bounds its rates of change
        ($\gamma / \tau_\text{mem} + 1/\tau_e + 1/\tau_i$; `QUADRATURE`: 7 nodes
        and reach 6 in float32, 8 and 4 in float64), is exact to about 3e-9 and
        4e-13 relative (measured), below the float's precision. The conductances'
        decays at the nodes take one exponential per pair of nodes (the nodes are
        symmetric about the panel's midpoint). `v` is held while refractory, and
        integrated from the end of the period where that falls inside the interval
        (`propagates_across_changes`: the caller clears the flag at the interval's
        end). None when a subclass written elsewhere changes the equations."""
        if not _own_equations(self, _COBA_EQUATIONS):
            return None
        dtype = state.v.dtype
        nodes, weights, reach = _quadrature(dtype)
        upper = nodes[nodes.shape[0] - nodes.shape[0] // 2 :]  # the positive nodes
        length = jnp.broadcast_to(jnp.asarray(length, dtype), state.v.shape)
        tau_m, tau_e, tau_i, drive = (
            jnp.broadcast_to(x, state.v.shape)
            for x in (self.tau_mem, self.tau_e, self.tau_i, self.v_leak + current)
        )

        def decays(half, tau):
            # exp(-s / tau) at the nodes s = half (1 + x) (trailing axis), and at the
            # panel's end: the midpoint's decay times exp(-half x / tau), one
            # exponential per pair of nodes +-x (Gauss-Legendre nodes are symmetric).
            mid = jnp.exp(-half / tau)
            pair = jnp.exp(-(half / tau)[..., None] * upper)
            after = mid[..., None] * pair
            before = mid[..., None] / pair[..., ::-1]
            middle = [mid[..., None]] if nodes.shape[0] % 2 else []
            return jnp.concatenate([before, *middle, after], axis=-1), mid * mid

        def panel(v, g_e, g_i, h):
            # Quadrature nodes s in [0, h] (trailing axis), from the panel's start.
            s = 0.5 * h[..., None] * (1.0 + nodes)
            decay_e, end_e = decays(0.5 * h, tau_e)
            decay_i, end_i = decays(0.5 * h, tau_i)
            # Lambda(h) - Lambda(s), exactly: its conductance parts
            # tau g (exp(-s / tau) - exp(-h / tau)) lose at most tau g eps to rounding.
            gap = (
                h[..., None]
                - s
                + (tau_e * g_e)[..., None] * (decay_e - end_e[..., None])
                + (tau_i * g_i)[..., None] * (decay_i - end_i[..., None])
            ) / tau_m[..., None]
            beta = (
                drive[..., None]
                + (g_e * self.E_e)[..., None] * decay_e
                + (g_i * self.E_i)[..., None] * decay_i
            )
            # (A whole population's nodes, at a record or a current's jump, are summed
            # in a form that a loop compiled whole can hold: `_cpu.fold`.)
            forced = 0.5 * h * _cpu.fold(jnp.add, weights * jnp.exp(-gap) * beta) / tau_m
            whole = (h + tau_e * g_e * (1.0 - end_e) + tau_i * g_i * (1.0 - end_i)) / tau_m
            return jnp.exp(-whole) * v + forced

        def body(carry):
            s, v = carry
            g_e = state.g_e * jnp.exp(-s / tau_e)
            g_i = state.g_i * jnp.exp(-s / tau_i)
            rate = (1.0 + jnp.abs(g_e) + jnp.abs(g_i)) / tau_m + 1.0 / tau_e + 1.0 / tau_i
            rest = length - s
            last = rest <= reach / rate
            h = jnp.where(s < length, jnp.where(last, rest, reach / rate), 0.0)
            v = jnp.where(h > 0, panel(v, g_e, g_i, h), v)
            return jnp.where(last, length, s + h), v

        # `v` held until the refractory period ends (inside the interval, or after).
        refractory = state.refractory > 0
        s0 = jnp.where(refractory, jnp.clip(state.ref_end - t, 0.0, length), 0.0)
        _, v = lax.while_loop(lambda c: jnp.any(c[0] < length), body, (s0, state.v))
        return eqx.tree_at(
            lambda s: (s.v, s.g_e, s.g_i),
            state,
            (
                jnp.where(refractory & (s0 >= length), state.v, v),
                state.g_e * jnp.exp(-length / tau_e),
                state.g_i * jnp.exp(-length / tau_i),
            ),
        )

    def receive(self, state: CobaLIFState, x) -> CobaLIFState:
        return eqx.tree_at(
            lambda s: (s.g_e, s.g_i),
            state,
            (state.g_e + jnp.maximum(x, 0.0), state.g_i - jnp.minimum(x, 0.0)),
        )


class LIState(eqx.Module):
    """State of a leaky integrator: membrane potential `v`, synaptic current `i`."""

    v: Float[Array, " n"]
    i: Float[Array, " n"]


class LI(_Linear):
    r"""Leaky integrator: the LIF's sub-threshold equations without spikes, used as a
    readout.

    $\tau_\text{mem}\,\dot v = v_\text{leak} - v + i + I_\text{ext}$,
    $\tau_\text{syn}\,\dot i = -i$; incoming spikes jump `i`.

    **Arguments:** `tau_mem` (ms, default 10), `tau_syn` (ms, default 5), `v_leak`
    (default 0).
    """

    spiking = False
    synapse_fields: ClassVar[tuple[str, ...]] = ("i",)
    _synapse_taus: ClassVar[tuple[str, ...]] = ("tau_syn",)

    tau_mem: Float[Array, "..."] = eqx.field(converter=float_array, default=10.0)
    tau_syn: Float[Array, "..."] = eqx.field(converter=float_array, default=5.0)
    v_leak: Float[Array, "..."] = eqx.field(converter=float_array, default=0.0)

    def __check_init__(self):
        check_positive("LI", "tau_mem", self.tau_mem)
        check_positive("LI", "tau_syn", self.tau_syn)

    def init_state(self, n: int) -> LIState:
        zeros = jnp.zeros((n,), self.tau_mem.dtype)
        return LIState(v=zeros + self.v_leak, i=zeros)

    def dynamics(self, t, state: LIState, current) -> LIState:
        dv = (self.v_leak - state.v + state.i + current) / self.tau_mem
        return LIState(v=dv, i=-state.i / self.tau_syn)

    def receive(self, state: LIState, x) -> LIState:
        return eqx.tree_at(lambda s: s.i, state, state.i + x)
