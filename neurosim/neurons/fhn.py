r"""The FitzHugh-Nagumo neuron in the circuit form of Ribar and Sepulchre (felice's
`FHNRS`).

Equations (time in ms; voltages and currents dimensionless, as in felice):

$$
\begin{aligned}
C \frac{dv}{dt} &= i_\text{app} + I_\text{ext}(t) - I_\text{passive}(v)
    - I_\text{fast}(v) - I_\text{slow}(v_\text{slow}), \\
\frac{dv_\text{slow}}{dt} &= \frac{v - v_\text{slow}}{\tau_\text{slow}}, \qquad
\frac{di_\text{app}}{dt} = -\frac{i_\text{app}}{t_\text{syn}},
\end{aligned}
$$

$$
I_\text{passive} = g_\text{max}\,(v - E_\text{rev}), \qquad
I_\text{fast} = a_\text{fast} \tanh(v - v_\text{off,fast}), \qquad
I_\text{slow} = a_\text{slow} \tanh(v_\text{slow} - v_\text{off,slow}).
$$

Reference: L. Ribar and R. Sepulchre (2019), Neuromodulation of neuromorphic
circuits, IEEE Trans. Circuits Syst. I 66(8), 3028-3040.
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_positive, float_array
from .base import AbstractNeuron

__all__ = [
    "FHNRS",
    "FHNRSState",
]


class FHNRSState(eqx.Module):
    """State of an `FHNRS` population: membrane voltage `v`, slow voltage `v_slow` and
    synaptic current `i_app` (felice's columns `[v, v_slow, i_app]`)."""

    v: Float[Array, " n"]
    v_slow: Float[Array, " n"]
    i_app: Float[Array, " n"]


class FHNRS(AbstractNeuron):
    r"""FitzHugh-Nagumo neuron, Ribar-Sepulchre circuit form, with felice's equations,
    parameters and defaults.

    $$
    C\,\dot v = i_\text{app} + I_\text{ext} - g_\text{max}(v - E_\text{rev})
        - a_\text{fast}\tanh(v - v_\text{off,fast})
        - a_\text{slow}\tanh(v_\text{slow} - v_\text{off,slow}),
    $$

    $\dot v_\text{slow} = (v - v_\text{slow})/\tau_\text{slow}$,
    $\dot i_\text{app} = -i_\text{app}/t_\text{syn}$. With $a_\text{fast} < 0$ the fast
    current is a negative conductance (fast positive feedback) and with
    $a_\text{slow} > 0$ the slow one is slow negative feedback: for suitable inputs the
    neuron is a relaxation oscillator. Time in ms, everything else dimensionless.

    **Spikes.** A spike is an upward crossing of `vthr`. There is no reset: the state
    is left as it is, and the neuron is disarmed until `v` has fallen back below
    `vthr - rearm_margin`, so it fires exactly once per upstroke, however long it stays
    above threshold. `simulate`'s `current` is $I_\text{ext}$, added beside $i_\text{app}$;
    incoming spikes jump `i_app` by their weight (a projection may also target `"v"`).

    **Behaviour with the defaults.** With no input the zero state is an equilibrium,
    unstable (the $(v, v_\text{slow})$ Jacobian has trace $1 - 1/\tau_\text{slow} > 0$):
    a neuron started exactly there stays there, any perturbation sets it oscillating.
    A constant $I_\text{ext} = 0.5$ gives a relaxation oscillation of period about
    56.42 ms, `v` swinging between about -2.28 and 2.42, one spike per cycle.

    **Arguments** (scalars or one value per neuron; felice's name where it differs):

    - `gmax_passive`: passive conductance $g_\text{max}$ (default 1.0; felice
        `gmax_pasive`).
    - `erev_passive`: passive reversal potential $E_\text{rev}$ (default 0.0; felice
        `Erev_pasive`).
    - `a_fast`: amplitude of the fast current (default -2.0).
    - `voff_fast`: voltage offset of the fast current (default 0.0).
    - `a_slow`: amplitude of the slow current (default 2.0).
    - `voff_slow`: voltage offset of the slow current (default 0.0).
    - `tau_slow`: time constant of `v_slow`, ms (default 50.0).
    - `vthr`: spike threshold (default 2.0).
    - `C`: membrane capacitance (default 1.0); $C / g_\text{max}$ is the membrane time
        constant in ms.
    - `tsyn`: time constant of `i_app`, ms (default 1.0).
    - `rearm_margin`: hysteresis below `vthr` that `v` must reach before the neuron
        can spike again (default 0.1; not in felice, whose solver stops at the first
        spike).

    felice also takes `tau_fast` (default 0), which its equations never use: the fast
    current is instantaneous. It is not a parameter here.

    **Solvers.** With the defaults the dynamics are not stiff and the default
    `diffrax.Tsit5()` is the right choice. When the fast time scale $C / g_\text{max}$
    is much shorter than $\tau_\text{slow}$ (say $C \lesssim 0.01$ with
    $\tau_\text{slow} = 50$) the oscillation becomes stiff: an explicit solver then
    crawls along the slow branches with steps limited by stability, and an implicit one
    such as `diffrax.Kvaerno5()` is faster.

    **Example:**

    ```python
    import neurosim as ns
    from neurosim.neurons.fhn import FHNRS

    sol = ns.simulate(FHNRS(), n=1, t1=300.0, current=0.5, rtol=1e-8, atol=1e-8)
    times = sol.spike_train(0)   # 2.733, 56.635, 113.055, ...: period 56.42 ms
    ```
    """

    disarms_on_spike = True

    gmax_passive: Float[Array, "..."] = eqx.field(converter=float_array, default=1.0)
    erev_passive: Float[Array, "..."] = eqx.field(converter=float_array, default=0.0)
    a_fast: Float[Array, "..."] = eqx.field(converter=float_array, default=-2.0)
    voff_fast: Float[Array, "..."] = eqx.field(converter=float_array, default=0.0)
    a_slow: Float[Array, "..."] = eqx.field(converter=float_array, default=2.0)
    voff_slow: Float[Array, "..."] = eqx.field(converter=float_array, default=0.0)
    tau_slow: Float[Array, "..."] = eqx.field(converter=float_array, default=50.0)
    vthr: Float[Array, "..."] = eqx.field(converter=float_array, default=2.0)
    C: Float[Array, "..."] = eqx.field(converter=float_array, default=1.0)
    tsyn: Float[Array, "..."] = eqx.field(converter=float_array, default=1.0)
    rearm_margin: Float[Array, "..."] = eqx.field(converter=float_array, default=0.1)

    def __check_init__(self):
        check_positive("FHNRS", "tau_slow", self.tau_slow)
        check_positive("FHNRS", "tsyn", self.tsyn)
        check_positive("FHNRS", "C", self.C, unit="dimensionless")
        check_positive("FHNRS", "rearm_margin", self.rearm_margin, unit="dimensionless")

    def passive_current(self, v):
        r"""$I_\text{passive}(v) = g_\text{max}(v - E_\text{rev})$."""
        return self.gmax_passive * (v - self.erev_passive)

    def fast_current(self, v):
        r"""$I_\text{fast}(v) = a_\text{fast}\tanh(v - v_\text{off,fast})$."""
        return self.a_fast * jnp.tanh(v - self.voff_fast)

    def slow_current(self, v_slow):
        r"""$I_\text{slow}(v_\text{slow}) = a_\text{slow}\tanh(v_\text{slow} -
        v_\text{off,slow})$."""
        return self.a_slow * jnp.tanh(v_slow - self.voff_slow)

    def iv_instantaneous(self, v, v_rest=0.0):
        r"""The instantaneous I-V curve: the membrane current at voltage `v` right after
        a step from `v_rest`, before the fast and slow currents have moved:
        $I_\text{passive}(v) + I_\text{fast}(v_\text{rest}) +
        I_\text{slow}(v_\text{rest})$ (felice's `IV_inst`). `v` broadcasts against the
        parameters."""
        return (
            self.passive_current(v) + self.fast_current(v_rest) + self.slow_current(v_rest)
        )

    def iv_fast(self, v, v_rest=0.0):
        r"""The fast I-V curve: passive and fast currents at `v`, the slow one still at
        `v_rest`: $I_\text{passive}(v) + I_\text{fast}(v) +
        I_\text{slow}(v_\text{rest})$ (felice's `IV_fast`). Its negative-slope region
        is what makes the upstroke regenerative."""
        return self.passive_current(v) + self.fast_current(v) + self.slow_current(v_rest)

    def iv_slow(self, v):
        r"""The slow (steady-state) I-V curve, all currents at `v`:
        $I_\text{passive}(v) + I_\text{fast}(v) + I_\text{slow}(v)$ (felice's
        `IV_slow`, whose `Vrest` argument is unused). A constant input `I` has its
        equilibria where `iv_slow(v) = I`."""
        return self.passive_current(v) + self.fast_current(v) + self.slow_current(v)

    def init_state(self, n: int) -> FHNRSState:
        zeros = jnp.zeros((n,), self.vthr.dtype)
        return FHNRSState(v=zeros, v_slow=zeros, i_app=zeros)

    def dynamics(self, t, state: FHNRSState, current) -> FHNRSState:
        membrane = (
            self.passive_current(state.v)
            + self.fast_current(state.v)
            + self.slow_current(state.v_slow)
        )
        return FHNRSState(
            v=(state.i_app + current - membrane) / self.C,
            v_slow=(state.v - state.v_slow) / self.tau_slow,
            i_app=-state.i_app / self.tsyn,
        )

    def spike_condition(self, t, state: FHNRSState, current) -> Array:
        return state.v - self.vthr

    def rearm_condition(self, t, state: FHNRSState, current) -> Array:
        return (self.vthr - self.rearm_margin) - state.v

    def receive(self, state: FHNRSState, x) -> FHNRSState:
        return eqx.tree_at(lambda s: s.i_app, state, state.i_app + x)
