r"""The Izhikevich neuron and the 20 behaviours of Izhikevich (2004), Fig. 1.

Equations (time in ms, voltages in mV, currents in mV/ms, as in Izhikevich 2003):

$$
\frac{dv}{dt} = \text{sq}\, v^2 + \text{mn}\, v + \text{bias} - u + I(t), \qquad
\frac{du}{dt} = a \bigl(b\,(v - v_u) - k_u\, u\bigr),
$$

a spike when `v` crosses `v_th` upwards, then $v \leftarrow c$, $u \leftarrow u + d$.
With the defaults $v_u = 0$, $k_u = 1$ the recovery equation is the published
$\dot u = a (b v - u)$; the figure script draws accommodation with
$\dot u = a b (v + 65)$ instead ($v_u = -65$, $k_u = 0$).

**Units and norse.** norse (`norse.torch.functional.izhikevich`) steps
`v += tau_inv * dt * (...)` with `dt = 1e-3`. Its `tau_inv` is documented in 1/ms, but
`tau_inv * dt` is simply the Euler step in ms of the figure script (`tau_inv = 250` is
the 0.25 ms step). Written in ms, as here, the equations need no time scale: there is no
`tau_inv`. norse's step is explicit Euler (`u` from the old `v`); to compare with it
step by step, use `diffrax.Euler()` with `dt0 = tau_inv * 1e-3`. norse's presets are the
figure's, except for the steps of spike latency (0.25 ms; figure 0.2) and of the two
inhibition-induced behaviours (0.25 ms; figure 0.5), and for accommodation, where norse
keeps $\dot u = a (b v - u)$ (see below).

**Exact model versus the figure.** The figure script (izhikevich.org, `figure1.m`)
takes fixed Euler steps of 0.1 to 0.5 ms, updates `u` from the already updated `v`, and
tests the threshold only at the end of a step: the step that crosses it overshoots (to
30-150 mV) and that overshoot drives `u` before the reset. The exact continuous-time
model (an adaptive solver) with the published values therefore differs: mostly by
shifted spike times, and in three panels by its behaviour.

- DAP: after the pulse the neuron keeps firing tonically (the depolarizing
  after-potential reaches threshold again). With `d = -18` instead of -21 the exact
  model fires once and shows the after-potential, a bump to about -54 mV.
- bistability: the exact model fires with a period of 38.8 ms (40.6 ms in the figure),
  so the second pulse at 216 ms meets the cycle at another phase and does not switch
  spiking off. A second pulse at 206.5 ms does (any onset in about 205-208 ms).
- inhibition-induced bursting: with `d = -2` the exact model, once it fires, never
  stops. In the figure the crossing step overshoots to about 150 mV and its `u`-update
  adds about 2.7 to `u` besides `d`: that is what ends each burst. With `d = -0.6`
  (any value in about -0.8..-0.4) the exact model fires two bursts during the
  inhibition and none outside it.

norse's explicit Euler step does not show these three behaviours with the published
values either; it takes the figure's update order and its end-of-step reset.

Accommodation needs the script's recovery equation $\dot u = a b (v + 65)$, which the
preset uses: with $\dot u = a(bv - u)$ and $b = 1$ the model has no rest state at
$I = 0$ ($0.04 v^2 + 4 v + 140$ has no real root) and fires spontaneously.
Inhibition-induced spiking shows in the exact model too, with one more spike 4.6 ms
after the inhibition ends (finishing the cycle under way).

`izhikevich_behaviour(name)` returns the published values with their stimulus;
`izhikevich_behaviour(name, continuous=True)` returns the variant that shows the
behaviour in the exact model (the published values for the other 17).

**Which solver.**

- `diffrax.Tsit5()` (the default of `simulate`) for the model itself: it is not stiff
  between spikes, and spike times are accurate to the tolerance (use
  `rtol = atol = 1e-10` or tighter in float64 for sub-microsecond spike times).
  Implicit solvers bring nothing here.
- `SequentialEuler()` with `dt0` = the figure's step (`IzhikevichBehaviour.dt`): the
  figure script's update order (`v`, then `u` from the new `v`), for side-by-side
  comparison with the figure.
- `diffrax.Euler()` with `dt0 = tau_inv * 1e-3`: norse's clock-driven step.

Neither Euler scheme is an accurate integrator of this model: at 0.25 ms the spike times
of tonic spiking drift by 0.3 to 3.5 ms within 100 ms. The figure script and norse
reset at the end of the crossing step, after the overshoot has acted on `u`; pass
`locate_spikes=False` to `simulate` for that convention (by default `simulate` locates
each crossing within the step and resets there).
`IzhikevichBehaviour.simulate(figure_step=True)` sets all three (SequentialEuler, the
figure's step, `locate_spikes=False`) and reproduces all 20 panels with the published
values.
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_below, check_positive, float_array
from .._currents import PiecewiseLinear
from .._solvers import SequentialEuler
from .base import AbstractNeuron

__all__ = [
    "IZHIKEVICH_BEHAVIOURS",
    "Izhikevich",
    "IzhikevichBehaviour",
    "IzhikevichState",
    "izhikevich_behaviour",
]


def _optional_float_array(x):
    return None if x is None else float_array(x)


class IzhikevichState(eqx.Module):
    """State of an Izhikevich population: membrane potential `v` (mV) and recovery
    variable `u` (mV/ms, the units of the input current)."""

    v: Float[Array, " n"]
    u: Float[Array, " n"]


class Izhikevich(AbstractNeuron):
    r"""The Izhikevich (2003) simple spiking neuron.

    $\dot v = \text{sq}\,v^2 + \text{mn}\,v + \text{bias} - u + I$,
    $\dot u = a\,(b\,(v - v_u) - k_u\,u)$; a spike when `v` crosses `v_th` upwards, then
    `v <- c`, `u <- u + d`. Time in ms, `v` in mV; `u`, `bias` and the input current
    `I` in mV/ms. The external `current` of `simulate` is `I`. Incoming spikes jump `v`
    by their weight (mV): a synaptic input delivered within one step, as in Izhikevich
    (2003)'s network.

    **Arguments** (scalars or one value per neuron; `a` to `v_th` named as in norse):

    - `a`: rate of the recovery variable, 1/ms (default 0.02).
    - `b`: sensitivity of `u` to `v`, 1/ms (default 0.2).
    - `c`: reset potential, mV (default -65). Must be below `v_th`.
    - `d`: jump of `u` at a spike, mV/ms (default 8).
    - `sq`: quadratic coefficient, 1/(mV ms) (default 0.04).
    - `mn`: linear coefficient, 1/ms (default 5).
    - `bias`: constant drive, mV/ms (default 140).
    - `v_th`: spike threshold (the spike peak of the published model), mV (default 30).
    - `v_u`: voltage offset of the recovery drive, mV (default 0; -65 in the figure's
        accommodation).
    - `k_u`: self-decay coefficient of `u` (default 1; 0 in the figure's accommodation).
    - `v0`: initial membrane potential, mV (default -65).
    - `u0`: initial recovery variable, mV/ms (default None: `b * v0`).

    The defaults of `a, b, c, d` are the regular-spiking cortical neuron of Izhikevich
    (2003). For the 20 behaviours of Izhikevich (2004), Fig. 1, use
    `Izhikevich.preset(name)`, or `izhikevich_behaviour(name)` for the preset with the
    figure's stimulus; see the module docstring for how the exact model differs from the
    figure.

    **Example:**

    ```python
    import neurosim as ns
    neuron = ns.Izhikevich.preset("tonic_spiking")
    sol = ns.simulate(neuron, n=1, t1=100.0, current=ns.inputs.Step(10.0, 14.0))
    print(sol.spike_train(0))      # tonic spiking after a short adaptation
    ```
    """

    a: Float[Array, "..."] = eqx.field(converter=float_array, default=0.02)
    b: Float[Array, "..."] = eqx.field(converter=float_array, default=0.2)
    c: Float[Array, "..."] = eqx.field(converter=float_array, default=-65.0)
    d: Float[Array, "..."] = eqx.field(converter=float_array, default=8.0)
    sq: Float[Array, "..."] = eqx.field(converter=float_array, default=0.04)
    mn: Float[Array, "..."] = eqx.field(converter=float_array, default=5.0)
    bias: Float[Array, "..."] = eqx.field(converter=float_array, default=140.0)
    v_th: Float[Array, "..."] = eqx.field(converter=float_array, default=30.0)
    v_u: Float[Array, "..."] = eqx.field(converter=float_array, default=0.0)
    k_u: Float[Array, "..."] = eqx.field(converter=float_array, default=1.0)
    v0: Float[Array, "..."] = eqx.field(converter=float_array, default=-65.0)
    u0: Float[Array, "..."] | None = eqx.field(
        converter=_optional_float_array, default=None
    )

    def __check_init__(self):
        check_below("Izhikevich", "c", self.c, "v_th", self.v_th)
        check_positive("Izhikevich", "sq", self.sq, unit="1/(mV ms)", allow_zero=True)

    @classmethod
    def preset(cls, name: str, *, continuous: bool = False) -> "Izhikevich":
        """The neuron (parameters and initial state) of one of the 20 behaviours of
        Izhikevich (2004), Fig. 1; see `izhikevich_behaviour` for the names and for
        `continuous`."""
        return izhikevich_behaviour(name, continuous=continuous).neuron

    def init_state(self, n: int) -> IzhikevichState:
        zeros = jnp.zeros((n,), self.v0.dtype)
        u0 = self.b * self.v0 if self.u0 is None else self.u0
        return IzhikevichState(v=zeros + self.v0, u=zeros + u0)

    def dynamics(self, t, state: IzhikevichState, current) -> IzhikevichState:
        v, u = state.v, state.u
        dv = self.sq * v * v + self.mn * v + self.bias - u + current
        du = self.a * (self.b * (v - self.v_u) - self.k_u * u)
        return IzhikevichState(v=dv, u=du)

    def spike_condition(self, t, state: IzhikevichState, current) -> Array:
        return state.v - self.v_th

    def reset(self, t, state: IzhikevichState, fired) -> IzhikevichState:
        return IzhikevichState(
            v=jnp.where(fired, self.c, state.v),
            u=jnp.where(fired, state.u + self.d, state.u),
        )

    def receive(self, state: IzhikevichState, x) -> IzhikevichState:
        return eqx.tree_at(lambda s: s.v, state, state.v + x)


# Every protocol is padded to this many knots, so that all 20 behaviours share one
# compiled simulation.
_KNOTS = 8


def _protocol(pieces, base: float = 0.0) -> PiecewiseLinear:
    """`pieces`: `(t_start, level, slope)` in time order; `base` before the first."""
    pad = _KNOTS - len(pieces)
    times = [p[0] for p in pieces] + [jnp.inf] * pad
    levels = [base] + [p[1] for p in pieces] + [0.0] * pad
    slopes = [0.0] + [p[2] for p in pieces] + [0.0] * pad
    return PiecewiseLinear(jnp.asarray(times), jnp.asarray(levels), jnp.asarray(slopes))


def _pulses(windows, amplitude: float, base: float = 0.0) -> dict:
    """Rectangular pulses of `amplitude` on the `[start, stop)` windows (ms)."""
    pieces = []
    for start, stop in windows:
        pieces += [(start, amplitude, 0.0), (stop, base, 0.0)]
    return dict(pieces=pieces, base=base)


def _pieces(*pieces, base: float = 0.0) -> dict:
    """Pieces `(t_start, level, slope)` in time order; `base` before the first."""
    return dict(pieces=list(pieces), base=base)


class IzhikevichBehaviour(eqx.Module):
    """One panel of Izhikevich (2004), Fig. 1: the neuron and its stimulus.

    **Fields:**

    - `name`: the behaviour's name (see `IZHIKEVICH_BEHAVIOURS`).
    - `neuron`: an `Izhikevich` with the panel's parameters and initial state.
    - `current`: the stimulus protocol `I(t)` in mV/ms (a `PiecewiseLinear`).
    - `t1`: the duration of the panel, ms.
    - `dt`: the Euler step of the figure script, ms (norse's `tau_inv * 1e-3`).
    - `shown_by_exact_model`: True when the exact model (an adaptive solver) shows the
        behaviour with these values; False for the published values of DAP,
        bistability and inhibition-induced bursting (see `continuous=True`).
    - `description`: the behaviour, what defines it, and what the exact model does.
    """

    name: str = eqx.field(static=True)
    neuron: Izhikevich
    current: PiecewiseLinear
    t1: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    shown_by_exact_model: bool = eqx.field(static=True)
    description: str = eqx.field(static=True)

    def simulate(self, *, figure_step: bool = False, n: int = 1, **kwargs):
        """Run the panel: `neurosim.simulate(self.neuron, n=n, t1=self.t1,
        current=self.current, **kwargs)`. With `figure_step=True` the defaults become
        the figure script's scheme: `solver=SequentialEuler()` with `dt0=self.dt`, and
        `locate_spikes=False` (reset at the end of the step that crosses threshold)."""
        from .._simulate import simulate

        if figure_step:
            kwargs = (
                dict(solver=SequentialEuler(), dt0=self.dt, locate_spikes=False) | kwargs
            )
        return simulate(self.neuron, n=n, t1=self.t1, current=self.current, **kwargs)


_T_INTEGRATOR = 100.0 / 11.0

# Parameters, initial state and stimulus of each panel of the figure script
# (izhikevich.org, figure1.m). `u0` defaults to b * v0; the script's strict inequalities
# (`t > T1`) become right-continuous steps at T1.
_FIGURE = {
    "tonic_spiking": dict(
        a=0.02,
        b=0.2,
        c=-65.0,
        d=6.0,
        v0=-70.0,
        dt=0.25,
        t1=100.0,
        stimulus=_pieces((10.0, 14.0, 0.0)),
        text="(A) Tonic spiking: a step of 14 at 10 ms; regular firing for as long as "
        "the input lasts.",
    ),
    "phasic_spiking": dict(
        a=0.02,
        b=0.25,
        c=-65.0,
        d=6.0,
        v0=-64.0,
        dt=0.25,
        t1=200.0,
        stimulus=_pieces((20.0, 0.5, 0.0)),
        text="(B) Phasic spiking: a step of 0.5 at 20 ms; a single spike at its onset, "
        "then silence.",
    ),
    "tonic_bursting": dict(
        a=0.02,
        b=0.2,
        c=-50.0,
        d=2.0,
        v0=-70.0,
        dt=0.25,
        t1=220.0,
        stimulus=_pieces((22.0, 15.0, 0.0)),
        text="(C) Tonic bursting: a step of 15 at 22 ms; periodic bursts of spikes.",
    ),
    "phasic_bursting": dict(
        a=0.02,
        b=0.25,
        c=-55.0,
        d=0.05,
        v0=-64.0,
        dt=0.2,
        t1=200.0,
        stimulus=_pieces((20.0, 0.6, 0.0)),
        text="(D) Phasic bursting: a step of 0.6 at 20 ms; one burst at its onset, "
        "then silence.",
    ),
    "mixed_mode": dict(
        a=0.02,
        b=0.2,
        c=-55.0,
        d=4.0,
        v0=-70.0,
        dt=0.25,
        t1=160.0,
        stimulus=_pieces((16.0, 10.0, 0.0)),
        text="(E) Mixed mode: a step of 10 at 16 ms; a burst at its onset, then single "
        "spikes.",
    ),
    "spike_frequency_adaptation": dict(
        a=0.01,
        b=0.2,
        c=-65.0,
        d=8.0,
        v0=-70.0,
        dt=0.25,
        t1=85.0,
        stimulus=_pieces((8.5, 30.0, 0.0)),
        text="(F) Spike frequency adaptation: a step of 30 at 8.5 ms; the inter-spike "
        "intervals lengthen.",
    ),
    "class_1_exc": dict(
        a=0.02,
        b=-0.1,
        c=-55.0,
        d=6.0,
        v0=-60.0,
        mn=4.1,
        bias=108.0,
        dt=0.25,
        t1=300.0,
        stimulus=_pieces((30.0, 0.0, 0.075)),
        text="(G) Class 1 excitability: a ramp of slope 0.075 per ms from 30 ms; firing "
        "starts at a low rate that grows with the input (the figure's sq v^2 + 4.1 v + "
        "108).",
    ),
    "class_2_exc": dict(
        a=0.2,
        b=0.26,
        c=-65.0,
        d=0.0,
        v0=-64.0,
        dt=0.25,
        t1=300.0,
        stimulus=_pieces((30.0, -0.5, 0.015), base=-0.5),
        text="(H) Class 2 excitability: a ramp of slope 0.015 per ms from -0.5 at 30 ms; "
        "firing starts abruptly at a high rate.",
    ),
    "spike_latency": dict(
        a=0.02,
        b=0.2,
        c=-65.0,
        d=6.0,
        v0=-70.0,
        dt=0.2,
        t1=100.0,
        stimulus=_pulses([(10.0, 13.0)], 7.04),
        text="(I) Spike latency: a 3 ms pulse of 7.04 at 10 ms, just above threshold; "
        "the spike comes after the pulse has ended (16.6 ms in the exact model; 26.6 ms "
        "in the figure, whose Euler step lets the pulse act for 2.8 ms only).",
    ),
    "subthreshold_oscillation": dict(
        a=0.05,
        b=0.26,
        c=-60.0,
        d=0.0,
        v0=-62.0,
        dt=0.25,
        t1=200.0,
        stimulus=_pulses([(20.0, 25.0)], 2.0),
        text="(J) Subthreshold oscillations: a 5 ms pulse of 2 at 20 ms; one spike, "
        "then damped oscillations of v around rest.",
    ),
    "resonator": dict(
        a=0.1,
        b=0.26,
        c=-60.0,
        d=-1.0,
        v0=-62.0,
        dt=0.25,
        t1=400.0,
        stimulus=_pulses(
            [(40.0, 44.0), (60.0, 64.0), (280.0, 284.0), (320.0, 324.0)], 0.65
        ),
        text="(K) Resonator: pairs of 4 ms pulses of 0.65; the pair 20 ms apart does "
        "nothing, the pair 40 ms apart (the resonant interval) elicits a spike.",
    ),
    "integrator": dict(
        a=0.02,
        b=-0.1,
        c=-55.0,
        d=6.0,
        v0=-60.0,
        mn=4.1,
        bias=108.0,
        dt=0.25,
        t1=100.0,
        stimulus=_pulses(
            [
                (_T_INTEGRATOR, _T_INTEGRATOR + 2.0),
                (_T_INTEGRATOR + 5.0, _T_INTEGRATOR + 7.0),
                (70.0, 72.0),
                (80.0, 82.0),
            ],
            9.0,
        ),
        text="(L) Integrator: pairs of 2 ms pulses of 9; the pair 5 ms apart sums to a "
        "spike, the pair 10 ms apart does not.",
    ),
    "rebound_spike": dict(
        a=0.03,
        b=0.25,
        c=-60.0,
        d=4.0,
        v0=-64.0,
        dt=0.2,
        t1=200.0,
        stimulus=_pulses([(20.0, 25.0)], -15.0),
        text="(M) Rebound spike: a 5 ms inhibitory pulse of -15 at 20 ms; one spike "
        "after its end.",
    ),
    "rebound_burst": dict(
        a=0.03,
        b=0.25,
        c=-52.0,
        d=0.0,
        v0=-64.0,
        dt=0.2,
        t1=200.0,
        stimulus=_pulses([(20.0, 25.0)], -15.0),
        text="(N) Rebound burst: a 5 ms inhibitory pulse of -15 at 20 ms; a burst after "
        "its end.",
    ),
    "threshold_variability": dict(
        a=0.03,
        b=0.25,
        c=-60.0,
        d=4.0,
        v0=-64.0,
        dt=0.25,
        t1=100.0,
        stimulus=_pieces(
            (10.0, 1.0, 0.0),
            (15.0, 0.0, 0.0),
            (70.0, -6.0, 0.0),
            (75.0, 0.0, 0.0),
            (80.0, 1.0, 0.0),
            (85.0, 0.0, 0.0),
        ),
        text="(O) Threshold variability: a 5 ms pulse of 1 at 10 ms does not fire; the "
        "same pulse at 80 ms, 5 ms after an inhibitory pulse, does.",
    ),
    "bistability": dict(
        a=0.1,
        b=0.26,
        c=-60.0,
        d=0.0,
        v0=-61.0,
        dt=0.25,
        t1=300.0,
        stimulus=_pulses([(37.5, 42.5), (216.0, 221.0)], 1.24, base=0.24),
        text="(P) Bistability: on a holding current of 0.24, a 5 ms pulse of 1.24 at "
        "37.5 ms switches tonic spiking on and a second one at 216 ms switches it off. "
        "The exact model's period differs (38.8 ms, not 40.6), so the second pulse must "
        "come at about 205-208 ms (continuous=True: 206.5 ms).",
    ),
    "dap": dict(
        a=1.0,
        b=0.2,
        c=-60.0,
        d=-21.0,
        v0=-70.0,
        dt=0.1,
        t1=50.0,
        stimulus=_pulses([(9.0, 11.0)], 20.0),
        text="(Q) Depolarizing after-potential: a 2 ms pulse of 20 at 9 ms; one spike "
        "followed by a depolarizing bump of v. With d = -21 the exact model fires "
        "tonically after the pulse (continuous=True: d = -18).",
    ),
    "accomodation": dict(
        a=0.02,
        b=1.0,
        c=-55.0,
        d=4.0,
        v0=-65.0,
        u0=-16.0,
        v_u=-65.0,
        k_u=0.0,
        dt=0.5,
        t1=400.0,
        stimulus=_pieces(
            (0.0, 0.0, 1.0 / 25.0),
            (200.0, 0.0, 0.0),
            (300.0, 0.0, 4.0 / 12.5),
            (312.5, 0.0, 0.0),
        ),
        text="(R) Accommodation: a slow ramp to 8 over 200 ms does not fire, a fast ramp "
        "to 4 over 12.5 ms does. Uses the figure script's du/dt = a b (v + 65) "
        "(v_u = -65, k_u = 0): with du/dt = a (b v - u) and b = 1 there is no rest "
        "state and the neuron fires spontaneously.",
    ),
    "inhibition_induced_spiking": dict(
        a=-0.02,
        b=-1.0,
        c=-60.0,
        d=8.0,
        v0=-63.8,
        dt=0.5,
        t1=350.0,
        stimulus=_pulses([(50.0, 250.0)], 75.0, base=80.0),
        text="(S) Inhibition-induced spiking: silent at a current of 80, tonic spiking "
        "while it is lowered to 75 (50-250 ms). The exact model fires a last spike "
        "4.6 ms after the inhibition ends.",
    ),
    "inhibition_induced_bursting": dict(
        a=-0.026,
        b=-1.0,
        c=-45.0,
        d=-2.0,
        v0=-63.8,
        dt=0.5,
        t1=350.0,
        stimulus=_pulses([(50.0, 250.0)], 75.0, base=80.0),
        text="(T) Inhibition-induced bursting: silent at a current of 80, bursts while "
        "it is lowered to 75 (50-250 ms). With d = -2 the exact model never stops "
        "firing once it starts (continuous=True: d = -0.6).",
    ),
}

# Changes that make the exact continuous-time model show the behaviour.
_CONTINUOUS = {
    "bistability": dict(stimulus=_pulses([(37.5, 42.5), (206.5, 211.5)], 1.24, base=0.24)),
    "dap": dict(d=-18.0),
    "inhibition_induced_bursting": dict(d=-0.6),
}

_ALIASES = {
    "accommodation": "accomodation",
    "threshhold_variability": "threshold_variability",
}

IZHIKEVICH_BEHAVIOURS: tuple[str, ...] = tuple(_FIGURE)
"""The names of the 20 behaviours of Izhikevich (2004), Fig. 1, in the figure's order
(A to T). "accommodation" and norse's "threshhold_variability" are accepted too."""


def izhikevich_behaviour(name: str, *, continuous: bool = False) -> IzhikevichBehaviour:
    """One of the 20 behaviours of Izhikevich (2004), Fig. 1: the neuron with its
    parameters and initial state, the stimulus protocol, the panel's duration and the
    figure's Euler step.

    **Arguments:**

    - `name`: one of `IZHIKEVICH_BEHAVIOURS` ("accommodation" is accepted too).
    - `continuous`: False (default) for the published values. True for the variant
        that the exact continuous-time model reproduces with an adaptive solver; it
        differs for "dap" (`d = -18`), "bistability" (second pulse at 206.5 ms) and
        "inhibition_induced_bursting" (`d = -0.6`), see the module docstring.

    **Returns:** an `IzhikevichBehaviour`.

    **Example:**

    ```python
    import neurosim as ns
    panel = ns.izhikevich_behaviour("tonic_bursting")
    exact = panel.simulate(rtol=1e-8, atol=1e-8)     # the continuous-time model
    steps = panel.simulate(figure_step=True)         # the figure's Euler scheme, 0.25 ms
    dap = ns.izhikevich_behaviour("dap", continuous=True).simulate()   # d = -18
    ```
    """
    key = _ALIASES.get(name, name)
    if key not in _FIGURE:
        raise ValueError(
            f"izhikevich_behaviour: unknown behaviour {name!r}. Valid names: "
            + ", ".join(IZHIKEVICH_BEHAVIOURS)
            + " (and 'accommodation', 'threshhold_variability')."
        )
    spec = dict(_FIGURE[key])
    if continuous:
        spec |= _CONTINUOUS.get(key, {})
    stimulus, t1, dt, text = (spec.pop(k) for k in ("stimulus", "t1", "dt", "text"))
    spec.setdefault("u0", spec["b"] * spec["v0"])
    return IzhikevichBehaviour(
        name=key,
        neuron=Izhikevich(**spec),
        current=_protocol(**stimulus),
        t1=t1,
        dt=dt,
        shown_by_exact_model=continuous or key not in _CONTINUOUS,
        description=text,
    )
