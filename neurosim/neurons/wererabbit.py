r"""The WereRabbit neuron of felice: a predator-prey pair whose roles swap with the
"moon phase".

Equations (time in ms, voltages dimensionless, as in felice's code):

$$
\begin{aligned}
z &= \tanh\big(\rho\,(u - v)\big), \\
\frac{du}{dt} &= z\left[1 - \alpha e^{\beta v}\big(1 + \gamma(0.5 - u)\big)\right]
    - \sigma + w_u I_\text{ext}(t), \\
\frac{dv}{dt} &= z\left[-1 + \alpha e^{\beta u}\big(1 + \gamma(0.5 - v)\big)\right]
    - \sigma + w_v I_\text{ext}(t),
\end{aligned}
$$

a dimensionless form of the circuit equations $C\,du/dt = z I_\text{bias} - I_{n0}
e^{\kappa v / U_t}[z + \gamma (0.5 - u) z] - \sigma I_\text{bias}$ (and the mirror
equation for `v`, whose exponential term enters with a plus) with
$\alpha = I_{n0} / I_\text{bias}$, $\beta = \kappa / U_t$ and time in units of
$C / I_\text{bias}$, which is 1 ms for felice's $C = 0.1$ pF, $I_\text{bias} = 100$ pA.
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_positive, float_array
from ._fixpoint import check_fixpoint_parameters, rearm_margin, spike_margin
from .base import AbstractNeuron

__all__ = [
    "WereRabbit",
    "WereRabbitState",
]

# felice switches to its diagonal rule where `jnp.allclose(z, 0)` holds, i.e.
# |z| <= 1e-8 (allclose's default atol); here the same threshold, per neuron.
_DIAGONAL_TOLERANCE = 1e-8


class WereRabbitState(eqx.Module):
    """State of a `WereRabbit` population: the two node voltages `u` and `v`."""

    u: Float[Array, " n"]
    v: Float[Array, " n"]


class WereRabbit(AbstractNeuron):
    r"""The WereRabbit neuron (felice): two coupled nodes in a predator-prey dynamic
    whose roles swap across the diagonal $u = v$, with fixpoint spikes.

    $$
    z = \tanh(\rho(u - v)), \quad
    \dot u = z\left[1 - \alpha e^{\beta v}(1 + \gamma(0.5 - u))\right] - \sigma
        + w_u I_\text{ext}, \quad
    \dot v = z\left[-1 + \alpha e^{\beta u}(1 + \gamma(0.5 - v))\right] - \sigma
        + w_v I_\text{ext}.
    $$

    felice's documentation puts a minus before the $\alpha e^{\beta u}$ term of
    $\dot v$; its code and the circuit equation have the plus used here.

    **The diagonal rule.** Where $|z| \le 10^{-8}$ (on the diagonal) felice multiplies
    the circuit terms of $\dot u$ and $\dot v$ by $\operatorname{sign}(u)$ and
    $\operatorname{sign}(v)$. This makes the origin an equilibrium, the rest state
    (`init_state` starts there), and makes the diagonal flow towards it. felice tests
    `jnp.allclose(z, 0)` over the whole population, so one neuron off the diagonal
    switches the rule off for all, and a neuron resting at the origin then slides away
    along the diagonal at speed $\sigma$. Here the test is made per neuron: neurons
    are independent. The rule applies to the input term too: a neuron resting at the
    origin stays there under any current. Adding the input after the rule instead
    would not help: for a current below `sigma` the field inside the band pushes the
    state back onto the diagonal (a sliding mode), and whether a solver escapes it
    would depend on its step size. Incoming spikes (`receive`) or an initial state off
    the origin move a neuron out of rest; from there a current acts as usual.

    **Fixpoints** with the defaults and no input: the rest state $(0, 0)$, repelling
    across the diagonal (eigenvalue 9.85 per ms), and two stable foci at
    $(0.31338, 0.14435)$ and $(0.14435, 0.31338)$ (eigenvalues $-0.142 \pm 8.73i$ per
    ms). An input that tips $u - v$ positive sends the neuron to the first focus, one
    that tips it negative to the second.

    **Spikes** are arrivals at a fixpoint: the spike condition turns positive when
    $\|f\| < \text{atol} + \text{rtol}\,\|y\|$ (RMS norms over the pair, see
    `neurosim.neurons._fixpoint`). There is no reset; the neuron is disarmed until
    $\|f\|$ exceeds `rearm_factor` times the tolerance, i.e. until an input has pushed
    it out of the fixpoint's neighbourhood, and it fires again on its next arrival.
    $f$ here is the vector field without the diagonal rule (the circuit's own field,
    input included): the rest state, a fixpoint only through the rule, is not a
    spike, so a population started at rest does not fire at $t_0$ (in felice, where
    the event needs a sign change, it does not either). felice's code takes both norms
    over all state components but the last, a remnant of an earlier
    `(u, v, has_spiked)` state that leaves out `v`; here both `u` and `v` count.
    Near a focus $\|f\|$ oscillates as it decays, so the spike is its first dip below
    the tolerance; when a parameter change makes an earlier dip touch the tolerance,
    the spike time jumps by a fraction of a turn (0.36 ms).

    **Input.** felice's model has no input term. Here `simulate`'s `current` enters
    $\dot u$ with weight `weight_u` and $\dot v$ with weight `weight_v` (a current
    injected into each node's capacitor, in units of $I_\text{bias}$), and an incoming
    spike of weight `x` jumps `u` by `weight_u * x` and `v` by `weight_v * x` (the
    charge it injects); a projection may also target `"u"` or `"v"` directly.

    **Arguments** (scalars or one value per neuron):

    - `alpha`: $I_{n0} / I_\text{bias}$ (default 0.0129).
    - `beta`: $\kappa / U_t$ (default 15.6).
    - `gamma`: coupling coefficient (default 0.26).
    - `rho`: steepness of the moon phase $z$ (default 5.0).
    - `sigma`: bias scaling, the distance between the fixpoints (default 0.6).
    - `atol`, `rtol`: tolerances of the fixpoint test (defaults 1e-3 and 1e-3). They
        are not the solver's tolerances, which must be much tighter for accurate spike
        times (`simulate(..., rtol=1e-8, atol=1e-8)` or tighter).
    - `weight_u`, `weight_v`: input weights of the two nodes (defaults 1.0 and 0.0;
        felice's documented `weight_u`, `weight_v`).
    - `rearm_factor`: the neuron re-arms once $\|f\|$ exceeds this multiple of the
        fixpoint tolerance (default 10; must exceed the oscillation of $\|f\|$ near
        the foci, a factor of about 4).

    **Solvers.** Near the rest state and the foci the eigenvalues are below 10 per ms
    and the default `diffrax.Tsit5()` is efficient. Large excursions (a strong input
    pushing `u` or `v` beyond about 0.6) make $\alpha\beta e^{\beta u}$ exceed
    $10^3$ per ms: the system is then stiff and `diffrax.Kvaerno5()` is the better
    choice.

    **Example:**

    ```python
    import jax.numpy as jnp
    import neurosim as ns
    from neurosim.neurons.wererabbit import WereRabbit

    # Neuron 0 stays at rest; neuron 1 is kicked into `u` at 0.5 ms, travels to
    # the focus with u > v and spikes on arrival.
    sol = ns.simulate(WereRabbit(), n=2, t1=60.0,
                      input_spikes=(jnp.array([0.5]), jnp.array([0])),
                      input_weights=jnp.array([[0.0, 0.1]]), rtol=1e-10, atol=1e-10)
    sol.spikes()   # one spike of neuron 1, at about 48.06 ms
    ```
    """

    disarms_on_spike = True
    # The arrival near a fixpoint is a slow crossing: solver errors move it far.
    float64_tolerance = 1e-11

    alpha: Float[Array, "..."] = eqx.field(converter=float_array, default=0.0129)
    beta: Float[Array, "..."] = eqx.field(converter=float_array, default=15.6)
    gamma: Float[Array, "..."] = eqx.field(converter=float_array, default=0.26)
    rho: Float[Array, "..."] = eqx.field(converter=float_array, default=5.0)
    sigma: Float[Array, "..."] = eqx.field(converter=float_array, default=0.6)
    atol: Float[Array, "..."] = eqx.field(converter=float_array, default=1e-3)
    rtol: Float[Array, "..."] = eqx.field(converter=float_array, default=1e-3)
    weight_u: Float[Array, "..."] = eqx.field(converter=float_array, default=1.0)
    weight_v: Float[Array, "..."] = eqx.field(converter=float_array, default=0.0)
    rearm_factor: Float[Array, "..."] = eqx.field(converter=float_array, default=10.0)

    def __check_init__(self):
        check_positive("WereRabbit", "rho", self.rho, unit="dimensionless")
        check_fixpoint_parameters("WereRabbit", self.atol, self.rtol, self.rearm_factor)

    def moon_phase(self, u, v):
        r"""$z = \tanh(\rho(u - v))$: positive where `u` is the predator."""
        return jnp.tanh(self.rho * (u - v))

    def circuit_field(self, u, v):
        """`(du/dt, dv/dt)` of the circuit, without input and without the diagonal rule."""
        z = self.moon_phase(u, v)
        du = z * (1 - self.alpha * jnp.exp(self.beta * v) * (1 + self.gamma * (0.5 - u)))
        dv = z * (-1 + self.alpha * jnp.exp(self.beta * u) * (1 + self.gamma * (0.5 - v)))
        return du - self.sigma, dv - self.sigma

    def init_state(self, n: int) -> WereRabbitState:
        zeros = jnp.zeros((n,), self.alpha.dtype)
        return WereRabbitState(u=zeros, v=zeros)

    def _driven_field(self, state: WereRabbitState, current):
        du, dv = self.circuit_field(state.u, state.v)
        return du + self.weight_u * current, dv + self.weight_v * current

    def dynamics(self, t, state: WereRabbitState, current) -> WereRabbitState:
        du, dv = self._driven_field(state, current)
        on_diagonal = jnp.abs(self.moon_phase(state.u, state.v)) <= _DIAGONAL_TOLERANCE
        du = jnp.where(on_diagonal, du * jnp.sign(state.u), du)
        dv = jnp.where(on_diagonal, dv * jnp.sign(state.v), dv)
        return WereRabbitState(u=du, v=dv)

    def spike_condition(self, t, state: WereRabbitState, current) -> Array:
        du, dv = self._driven_field(state, current)
        return spike_margin(du, dv, state.u, state.v, self.atol, self.rtol)

    def rearm_condition(self, t, state: WereRabbitState, current) -> Array:
        du, dv = self._driven_field(state, current)
        return rearm_margin(
            du, dv, state.u, state.v, self.atol, self.rtol, self.rearm_factor
        )

    def receive(self, state: WereRabbitState, x) -> WereRabbitState:
        return WereRabbitState(u=state.u + self.weight_u * x, v=state.v + self.weight_v * x)
