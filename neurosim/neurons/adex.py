r"""Adaptive exponential integrate-and-fire neurons (AdEx), and the exponential
integrate-and-fire neuron (EIF), with the equations, names and defaults of ngc-learn's
`AdExCell` (Brette and Gerstner, 2005).

Equations (time in ms, voltages in mV, `w` and `j` in the current unit that `R_m` turns
into mV):

$$
\tau_m \frac{dv}{dt} = -(v - v_\text{rest})
    + \Delta_T \exp\!\left(\frac{v - v_T}{\Delta_T}\right) - R_m w + R_m j(t),
\qquad
\tau_w \frac{dw}{dt} = -w + a (v - v_\text{rest}),
$$

with $\Delta_T$ = `sharpV`. A spike when `v` reaches `thr`; then $v \leftarrow
v_\text{reset}$, $w \leftarrow w + b$ (what ngc-learn's code does; its docstring writes
$w + s(w + b)$), and the spike time is stored in `t_last_spike` (ngc-learn's `tols`).
The current `j` is `simulate`'s `current`.

**The blow-up.** Above $v_T$ the exponential takes over and `v` diverges in finite time:
with the defaults, `dv/dt` is about $10^{12}$ mV/ms at `thr` = 5 mV, and `v` goes from
`thr` to infinity in about $10^{-12}$ ms. An adaptive solver that integrates `v` must
shrink its step to about $10^{-13}$ ms before every spike (it crawls, or hits its step
limit), and a step that overshoots overflows. So the state does not hold `v` but the
soft minimum of `v` and $v_T$,

$$
y = v_T - \Delta_T \log\!\left(1 + e^{-(v - v_T)/\Delta_T}\right),
\qquad
v = v_T - \Delta_T \left(z + \log g\right),
\quad z = \frac{v_T - y}{\Delta_T},\ g = 1 - e^{-z},
$$

a smooth one-to-one map of $v \in (-\infty, \infty)$ onto $y \in (-\infty, v_T)$, with
$y = v$ up to $\Delta_T e^{-(v_T - v)/\Delta_T}$ below $v_T$ (0.03 mV at rest). The
exact equation for `y` (chain rule, $dy/dv = g$) is

$$
\tau_m \frac{dy}{dt} = g D + \Delta_T e^{-z}, \qquad
D = v_\text{rest} - v - R_m w + R_m j,
$$

whose right-hand side stays bounded and tends to $\Delta_T$ as `v` diverges: the
exponential term of `dv/dt` becomes the bounded $\Delta_T e^{-z}$. The spike is the
crossing of $y_\text{thr}$, the image of `thr`, which `y` reaches with the slope
$\approx \Delta_T/\tau_m$: the root finder locates it as easily as a LIF crossing.
No approximation is made below `thr`. Past `thr` (after the spike, which resets the
state) the right-hand side is continued linearly in `z` from its value and slope at
`thr`, so that a solver step that straddles the spike sees a smooth, finite field
rather than the singularity at $v = \infty$.

`w` needs care too: its drive $a (v - v_\text{rest})$ grows like $-a \Delta_T \log(t_*
- t)$ before the blow-up at $t_*$, which the solver's polynomial steps follow poorly.
The state therefore holds

$$
\tilde w = w - k \left(e^{-z} + g \log g\right), \qquad
k = \frac{a \Delta_T \tau_m}{\tau_w},
$$

whose equation (again exact) has that logarithm multiplied by $g$, which vanishes at
the blow-up. The correction is below $10^{-8}$ at rest and tends to $k$ (0.0075 with
the defaults) at the spike. `AdEx.voltage(state)` and `AdEx.adaptation(state)` give
`v` and `w` of any state, also of recorded states (with their leading time axis).

Why this and not the alternatives: integrating with `v` as the independent variable
over the last stretch is exact too but needs an integration outside the event loop;
$u = -e^{-(v - v_T)/\Delta_T}$ is exact too but overflows float32 for hyperpolarized
neurons ($v < v_T - 88 \Delta_T$, -99 mV for $\Delta_T = 0.5$) and spans 30 orders of
magnitude, whereas `y` stays in mV, so `rtol` and `atol` mean what they mean for the
LIF.

**Accuracy** (measured against an independent integration of the original equations,
`j = 25`, 23 spikes in 1 s). Float64: the largest spike-time error is $2 \cdot 10^{-6}$ ms
at `rtol = atol = 1e-10` and $7 \cdot 10^{-8}$ ms at `1e-12`. Float32 with the default
tolerances (`1e-6`): 0.07 ms after 23 spikes, as for float64 at the same tolerances
(the tolerance dominates). In float32, `y` near $v_T$ is resolved to about
$4 \cdot 10^{-6}$ mV: every threshold above about $v_T + 13 \Delta_T$ rounds to $v_T$
and the spike is found at the blow-up, within about $3 \cdot 10^{-5}$ ms of the exact
time; `voltage` then resolves `v` to about 1 mV at -30 mV and not at all above -29 mV
(which costs nothing in time: `v` spends less than $10^{-4}$ ms there).

**Gradients.** Spike times are differentiable, but less accurately than the spike
times themselves: even in these coordinates the leak term $-(v - v_\text{rest})$ makes
the Jacobian of the right-hand side grow like $\log(t_* - t)$ near the spike, and
reverse-mode differentiation through the adaptive steps (which the step-size controller
sizes for the solution, not for its derivative) gives the derivative of a spike time to
a relative $10^{-3}$ at `rtol = atol = 1e-10` and $10^{-5}$ to $10^{-4}$ at `1e-12` in
float64 (against $10^{-8}$ for a LIF), and to about $10^{-2}$ in unlucky cases where
the solver crosses the spike with a long step. Central finite differences of simulated
spike times (step `1e-5`, tolerances `1e-12`) match the exact derivative to about
$10^{-7}$.

**Which solver.** `diffrax.Tsit5()`, the default. ngc-learn's `"euler"` and `"rk2"`
integration types correspond to `diffrax.Euler()` and `diffrax.Midpoint()` with a
constant `dt0`, but here they step the transformed equations and locate the crossing
within the step, so they do not reproduce ngc-learn's step-by-step values (its Euler
step overshoots `thr` by far and fires at the end of the step).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_below, check_positive, float_array
from .base import AbstractNeuron

__all__ = [
    "AdEx",
    "AdExState",
    "EIF",
]


class AdExState(eqx.Module):
    """State of an AdEx population (see the module docstring for the transforms).

    - `v_bounded`: $y$, the soft minimum of the membrane potential and `vT` (mV);
        `AdEx.voltage(state)` gives `v`.
    - `w_smooth`: $\\tilde w$, the adaptation current with a correction that removes
        its logarithmic singularity at the spike; `AdEx.adaptation(state)` gives `w`.
    - `t_last_spike`: the time (ms) of each neuron's last spike, 0 before the first
        (ngc-learn's `tols`).
    """

    v_bounded: Float[Array, " n"]
    w_smooth: Float[Array, " n"]
    t_last_spike: Float[Array, " n"]


class _Terms(eqx.Module):
    """Functions of `z` used by the equations, evaluated at `z` capped at the threshold;
    `past` is how far (in `z`) a state lies beyond the threshold (0 or negative)."""

    z: Array
    past: Array
    gain: Array
    decay: Array
    log_gain: Array
    v: Array


class AdEx(AbstractNeuron):
    r"""Adaptive exponential integrate-and-fire neuron (ngc-learn's `AdExCell`).

    $\tau_m \dot v = -(v - v_\text{rest}) + \Delta_T e^{(v - v_T)/\Delta_T} - R_m w
    + R_m j$, $\tau_w \dot w = -w + a (v - v_\text{rest})$; a spike when `v` reaches
    `thr`, then $v \leftarrow v_\text{reset}$, $w \leftarrow w + b$, and
    `t_last_spike` records the spike time. The state holds smooth, bounded transforms of
    `v` and `w`, so that the blow-up of `v` before each spike is integrated exactly,
    without overflow; see the module docstring of `neurosim.neurons.adex`. There is no
    refractory period (as in ngc-learn).

    **Arguments** (scalars or one value per neuron; ngc-learn's constructor names in
    brackets where they differ):

    - `tau_m`: membrane time constant, ms (default 15).
    - `R_m`: membrane resistance (default 1) [`resist_m`].
    - `tau_w`: adaptation time constant, ms (default 400).
    - `sharpV`: slope factor $\Delta_T$, mV (default 2) [`v_sharpness`].
    - `vT`: intrinsic threshold $v_T$, where the exponential takes over, mV
        (default -55) [`intrinsic_mem_thr`].
    - `thr`: spike threshold, mV (default 5) [`v_thr`].
    - `v_rest`: resting potential, mV (default -72).
    - `v_reset`: reset potential, mV (default -75).
    - `a`: adaptation coupling, current per mV (default 0.1).
    - `b`: increment of `w` at each spike (default 0.75).
    - `v0`, `w0`: initial `v` (mV, default -70) and `w` (default 0).

    The external current of `simulate` is `j`. Incoming spikes (`receive`) jump `v` by
    their weight in mV.

    With the defaults the rheobase (the smallest constant `j` without a stable rest
    state) is $(1 + R_m a)\bigl(v_T - v_\text{rest} + \Delta_T \log(1 + R_m a) -
    \Delta_T\bigr) / R_m \approx 16.71$, and `j = 25` gives 23 spikes in 1 s.

    **Example:**

    ```python
    import neurosim as ns
    from neurosim.neurons.adex import AdEx

    neuron = AdEx()
    sol = ns.simulate(neuron, n=1, t1=1000.0, current=25.0)
    print(sol.num_spikes)                        # 23
    sol = ns.simulate(neuron, n=1, t1=100.0, current=25.0, record=[10.0, 20.0])
    print(neuron.voltage(sol.states))            # v (mV) at 10 and 20 ms
    print(neuron.adaptation(sol.final_state))    # w at 100 ms
    ```
    """

    tau_m: Float[Array, "..."] = eqx.field(converter=float_array, default=15.0)
    R_m: Float[Array, "..."] = eqx.field(converter=float_array, default=1.0)
    tau_w: Float[Array, "..."] = eqx.field(converter=float_array, default=400.0)
    sharpV: Float[Array, "..."] = eqx.field(converter=float_array, default=2.0)
    vT: Float[Array, "..."] = eqx.field(converter=float_array, default=-55.0)
    thr: Float[Array, "..."] = eqx.field(converter=float_array, default=5.0)
    v_rest: Float[Array, "..."] = eqx.field(converter=float_array, default=-72.0)
    v_reset: Float[Array, "..."] = eqx.field(converter=float_array, default=-75.0)
    a: Float[Array, "..."] = eqx.field(converter=float_array, default=0.1)
    b: Float[Array, "..."] = eqx.field(converter=float_array, default=0.75)
    v0: Float[Array, "..."] = eqx.field(converter=float_array, default=-70.0)
    w0: Float[Array, "..."] = eqx.field(converter=float_array, default=0.0)

    def __check_init__(self):
        owner = type(self).__name__
        check_positive(owner, "tau_m", self.tau_m)
        check_positive(owner, "tau_w", self.tau_w)
        check_positive(owner, "sharpV", self.sharpV, unit="mV")
        check_below(owner, "v_reset", self.v_reset, "thr", self.thr)

    def _z_of_voltage(self, v):
        return jax.nn.softplus((self.vT - v) / self.sharpV)

    def _z_threshold(self, shift=0.0):
        # Floored at the smallest normal number: a threshold so far above vT that its
        # z underflows is reached at the blow-up itself, within tau_m * 1e-38 ms.
        z = self._z_of_voltage(self.thr + shift)
        return jnp.maximum(z, jnp.finfo(z.dtype).tiny)

    def _terms(self, v_bounded) -> _Terms:
        z = (self.vT - v_bounded) / self.sharpV
        z_thr = self._z_threshold()
        capped = jnp.maximum(z, z_thr)
        gain = -jnp.expm1(-capped)
        log_gain = jnp.log(gain)
        return _Terms(
            z=capped,
            past=jnp.minimum(z, z_thr) - z_thr,
            gain=gain,
            decay=jnp.exp(-capped),
            log_gain=log_gain,
            v=self.vT - self.sharpV * (capped + log_gain),
        )

    def _w_correction(self, terms: _Terms):
        """w_smooth - w, continued linearly past the threshold."""
        k = self.a * self.sharpV * self.tau_m / self.tau_w
        at_capped = -k * (terms.decay + terms.gain * terms.log_gain)
        slope = -k * terms.decay * terms.log_gain
        return at_capped + slope * terms.past

    def bounded(self, v: Float[Array, "..."]) -> Float[Array, "..."]:
        """The state variable `v_bounded` (mV) of a membrane potential `v` (mV)."""
        return self.vT - self.sharpV * self._z_of_voltage(v)

    def voltage(self, state: AdExState) -> Float[Array, "..."]:
        """The membrane potential `v` (mV) of a state (also of recorded states, with
        their leading time axis); at most `thr`."""
        return self._terms(state.v_bounded).v

    def adaptation(self, state: AdExState) -> Float[Array, "..."]:
        """The adaptation current `w` of a state (also of recorded states)."""
        return state.w_smooth - self._w_correction(self._terms(state.v_bounded))

    def state_at(self, v, w, t_last_spike=0.0) -> AdExState:
        """The state with membrane potential `v` (mV, at most `thr`), adaptation `w` and
        last spike time `t_last_spike` (ms); arrays of shape `(n,)`."""
        v = jnp.asarray(v, self.tau_m.dtype)
        v_bounded = self.bounded(v)
        w = jnp.broadcast_to(jnp.asarray(w, v.dtype), v.shape)
        return AdExState(
            v_bounded=v_bounded,
            w_smooth=w + self._w_correction(self._terms(v_bounded)),
            t_last_spike=jnp.broadcast_to(jnp.asarray(t_last_spike, v.dtype), v.shape),
        )

    def init_state(self, n: int) -> AdExState:
        zeros = jnp.zeros((n,), self.tau_m.dtype)
        return self.state_at(zeros + self.v0, zeros + self.w0, zeros)

    def dynamics(self, t, state: AdExState, current) -> AdExState:
        terms = self._terms(state.v_bounded)
        w = state.w_smooth - self._w_correction(terms)
        drive = self.v_rest - terms.v - self.R_m * w + self.R_m * current
        # d(tau_m dy/dt)/dz at the threshold, for the continuation past it.
        slope = terms.decay * drive + self.sharpV * terms.gain
        dy = (
            terms.gain * drive + self.sharpV * terms.decay + slope * terms.past
        ) / self.tau_m
        # tau_m e^{-z} dy/dt - sharpV, written so that it visibly carries a factor g
        # (or lies past the threshold): it multiplies log g below.
        damping = (
            terms.gain * (terms.decay * drive - self.sharpV * (1 + terms.decay))
            + terms.decay * slope * terms.past
        )
        smooth_v = self.vT - self.sharpV * terms.z
        dw = (
            self.a * (smooth_v - self.v_rest) - w + self.a * terms.log_gain * damping
        ) / self.tau_w
        return AdExState(v_bounded=dy, w_smooth=dw, t_last_spike=jnp.zeros_like(dy))

    def spike_condition(self, t, state: AdExState, current) -> Array:
        return self.shifted_spike_condition(t, state, current, 0.0)

    def shifted_spike_condition(self, t, state: AdExState, current, shift) -> Array:
        """The spike condition for the threshold `thr + shift` (mV), used by the
        adaptive thresholds of `neurosim.neurons.adaptation`: `y - y_thr`, in mV."""
        z = (self.vT - state.v_bounded) / self.sharpV
        return self.sharpV * (self._z_threshold(shift) - z)

    def reset(self, t, state: AdExState, fired) -> AdExState:
        after = self.state_at(
            jnp.broadcast_to(self.v_reset, fired.shape), self.adaptation(state) + self.b, t
        )
        return jax.tree.map(lambda new, old: jnp.where(fired, new, old), after, state)

    def receive(self, state: AdExState, x) -> AdExState:
        moved = self.state_at(self.voltage(state) + x, self.adaptation(state))
        return eqx.tree_at(
            lambda s: (s.v_bounded, s.w_smooth), state, (moved.v_bounded, moved.w_smooth)
        )


class EIF(AdEx):
    r"""Exponential integrate-and-fire neuron: `AdEx` with `a = b = 0`.

    $\tau_m \dot v = -(v - v_\text{rest}) + \Delta_T e^{(v - v_T)/\Delta_T} - R_m w
    + R_m j$ with $\tau_w \dot w = -w$ (so `w` stays 0 from the default `w0 = 0`); a
    spike when `v` reaches `thr`, then $v \leftarrow v_\text{reset}$. Arguments and
    defaults as `AdEx` (`tau_m` 15 ms, `R_m` 1, `tau_w` 400 ms, `sharpV` 2 mV, `vT`
    -55 mV, `thr` 5 mV, `v_rest` -72 mV, `v_reset` -75 mV, `v0` -70 mV, `w0` 0), with
    `a` and `b` defaulting to 0. Its rheobase is $(v_T - v_\text{rest} - \Delta_T) /
    R_m = 15$.

    **Example:**

    ```python
    import neurosim as ns
    from neurosim.neurons.adex import EIF

    sol = ns.simulate(EIF(), n=1, t1=200.0, current=20.0)   # regular spiking
    ```
    """

    a: Float[Array, "..."] = eqx.field(converter=float_array, default=0.0)
    b: Float[Array, "..."] = eqx.field(converter=float_array, default=0.0)
