r"""The Boomerang neuron of felice: a two-node circuit resting at a saddle, between two
stable foci.

Equations (time in ms, voltages dimensionless, as in felice's code):

$$
\begin{aligned}
z &= \tanh\big(\rho\,(v - u)\big), \\
g_u(u, v) &= 1 - \alpha e^{\beta v}\big(1 - \gamma(0.3 - u)\big) + \sigma z, \\
g_v(u, v) &= -1 + \alpha e^{\beta u}\big(1 + \gamma(0.3 - v)\big) + \sigma z,
\end{aligned}
$$

with the circuit parameters of the WereRabbit ($\alpha = I_{n0} / I_\text{bias}$,
$\beta = \kappa / U_t$, time in units of $C / I_\text{bias}$, 1 ms).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Float

from .._checks import check_positive, float_array
from ._fixpoint import check_fixpoint_parameters, rearm_margin, rms, spike_margin
from .base import AbstractNeuron

__all__ = [
    "Boomerang",
    "BoomerangState",
]

# felice searches for the rest point with Newton's method from here.
_REST_GUESS = 0.3


def _circuit_field(u, v, alpha, beta, gamma, rho, sigma):
    z = jnp.tanh(rho * (v - u))
    du = 1 - alpha * jnp.exp(beta * v) * (1 - gamma * (0.3 - u))
    dv = -1 + alpha * jnp.exp(beta * u) * (1 + gamma * (0.3 - v))
    return du + sigma * z, dv + sigma * z


def _field_at(y, params):
    """`_circuit_field` as a root-finding target: one function (not a new closure per
    call), so that the compiled root finder is reused."""
    return _circuit_field(*y, *params)


class BoomerangState(eqx.Module):
    """State of a `Boomerang` population: the node voltages `u`, `v`, and the rest
    point `u_rest`, `v_rest` (constant in time; see `Boomerang`)."""

    u: Float[Array, " n"]
    v: Float[Array, " n"]
    u_rest: Float[Array, " n"]
    v_rest: Float[Array, " n"]


class Boomerang(AbstractNeuron):
    r"""The Boomerang neuron (felice), with fixpoint spikes.

    $z = \tanh(\rho(v - u))$,
    $g_u = 1 - \alpha e^{\beta v}(1 - \gamma(0.3 - u)) + \sigma z$,
    $g_v = -1 + \alpha e^{\beta u}(1 + \gamma(0.3 - v)) + \sigma z$ (felice's vector
    field, `circuit_field`).

    **The rest point is a saddle.** felice's rest point is the root of $(g_u, g_v)$
    that Newton's method finds from $(0.3, 0.3)$; with the defaults it is
    $y_r \approx (0.279143, 0.278604)$, a saddle (eigenvalues -18.1 and +17.6 per
    ms), between two stable foci near $(0.3074, 0.2211)$ and $(0.2212, 0.3101)$
    (eigenvalues about $-0.26 \pm 12.1i$ per ms). A root found numerically is a root
    only up to round-off, and a trajectory started there leaves the saddle on that
    residual alone, after about 2 ms in float64 and 1 ms in float32, towards whichever
    focus the rounding favours: integrated as it is, a neuron at rest would spike at a
    time and towards a focus chosen by float rounding. This model therefore
    integrates

    $$
    \dot u = g_u(u, v) - g_u(u_r, v_r) + w_u I_\text{ext}(t), \qquad
    \dot v = g_v(u, v) - g_v(u_r, v_r) + w_v I_\text{ext}(t),
    $$

    which differs from felice's field by the root finder's residual (below $10^{-15}$
    in float64, $10^{-6}$ in float32) and has $y_r$ as an *exact* equilibrium. The
    differences are evaluated in a form that vanishes identically at $y_r$
    ($\alpha e^{\beta v} - \alpha e^{\beta v_r} = \alpha e^{\beta v_r}
    \operatorname{expm1}(\beta(v - v_r))$, and $\tanh(a + b) - \tanh a =
    \tanh b\,(1 - \tanh^2 a) / (1 + \tanh a \tanh b)$), so the cancellation is exact
    in floating point too. A neuron at rest stays at rest, bit for bit, until an input
    moves it; which side of the saddle's stable manifold the input pushes it to decides
    which focus it falls into.

    The rest point is found with `optimistix.Newton` from $(0.3, 0.3)$ (`rest_state`),
    once per simulation by `init_state`, and carried in the state as `u_rest`, `v_rest`
    (time derivative zero). It thus follows the parameters wherever they change:
    under `jax.grad` (through the root find's implicit derivative), `jax.vmap` and
    `eqx.tree_at`; a value computed once at construction and stored in the module
    would go stale there.

    **Spikes** are arrivals at a fixpoint other than the rest point: the spike
    condition turns positive when $\|f\| < \text{atol} + \text{rtol}\,\|y\|$ (RMS
    norms over the pair, $f$ the integrated field including the input; see
    `neurosim.neurons._fixpoint`) while the state is more than `rest_radius` (RMS)
    away from $y_r$. The saddle is where the neuron waits, not an arrival: a
    population started at rest does not fire. In practice a spike is the arrival at
    one of the stable foci (moved by a constant input). There is no reset: the
    neuron stays where it arrived, disarmed until $\|f\|$ exceeds `rearm_factor`
    times the tolerance, i.e. until an input has pushed it out of the focus's
    neighbourhood; it fires again when it comes back (to the same focus, or across
    the saddle's stable manifold to the other). A constant input therefore gives one
    spike, a train of input pulses one spike per pulse strong enough to dislodge it.
    Near a focus $\|f\|$ oscillates as it decays (by a factor of about 2 per turn),
    so the spike is its first dip below the tolerance; when a parameter change makes
    an earlier dip touch the tolerance, the spike time jumps by a fraction of a turn
    (0.26 ms).

    **Input.** felice's model has no input term. Here `simulate`'s `current` enters
    $\dot u$ with weight `weight_u` and $\dot v$ with weight `weight_v`, and an
    incoming spike of weight `x` jumps `u` by `weight_u * x` and `v` by
    `weight_v * x`; a projection may also target `"u"` or `"v"` directly. With the
    defaults a positive input sends the neuron to the focus with $u > v$.

    **Arguments** (scalars or one value per neuron):

    - `alpha`: $I_{n0} / I_\text{bias}$ (default 0.0129).
    - `beta`: $\kappa / U_t$ (default 15.6).
    - `gamma`: coupling coefficient (default 0.26).
    - `rho`: steepness of $z$ (default 30.0, felice's code; its docstring says 5).
    - `sigma`: bias scaling (default 0.6).
    - `atol`, `rtol`: tolerances of the fixpoint test (defaults 1e-6 and 1e-4). They
        are not the solver's tolerances, which must be much tighter for accurate spike
        times (`simulate(..., rtol=1e-10, atol=1e-10)` or tighter).
    - `weight_u`, `weight_v`: input weights of the two nodes (defaults 1.0 and 0.0).
    - `rearm_factor`: the neuron re-arms once $\|f\|$ exceeds this multiple of the
        fixpoint tolerance (default 10).
    - `rest_radius`: RMS distance from the rest point within which a fixpoint is not
        a spike (default 0.01; the foci are about 0.047 away).

    **Solvers.** The saddle's eigenvalues (about $\pm 18$ per ms) and the foci's
    rotation (12 rad/ms) are handled well by the default `diffrax.Tsit5()`. The
    exponentials are steep ($\beta = 15.6$): inputs that drive `u` or `v` well beyond
    the foci (above about 0.6) raise the eigenvalues past $10^3$ per ms, and then an
    implicit solver such as `diffrax.Kvaerno5()` is the better choice; so it is for
    large `rho` or `beta`.

    **Example:**

    ```python
    import jax.numpy as jnp
    import neurosim as ns
    from neurosim.neurons.boomerang import Boomerang

    # Neuron 0 has no input and stays at the saddle; neuron 1 falls into a focus.
    sol = ns.simulate(Boomerang(), n=2, t1=60.0, current=jnp.array([0.0, 0.05]),
                      rtol=1e-10, atol=1e-10)
    sol.spikes()   # one spike of neuron 1, on arrival at the focus
    ```
    """

    disarms_on_spike = True
    # The arrival near a fixpoint is a slow crossing: solver errors move it far.
    float64_tolerance = 1e-11

    alpha: Float[Array, "..."] = eqx.field(converter=float_array, default=0.0129)
    beta: Float[Array, "..."] = eqx.field(converter=float_array, default=15.6)
    gamma: Float[Array, "..."] = eqx.field(converter=float_array, default=0.26)
    rho: Float[Array, "..."] = eqx.field(converter=float_array, default=30.0)
    sigma: Float[Array, "..."] = eqx.field(converter=float_array, default=0.6)
    atol: Float[Array, "..."] = eqx.field(converter=float_array, default=1e-6)
    rtol: Float[Array, "..."] = eqx.field(converter=float_array, default=1e-4)
    weight_u: Float[Array, "..."] = eqx.field(converter=float_array, default=1.0)
    weight_v: Float[Array, "..."] = eqx.field(converter=float_array, default=0.0)
    rearm_factor: Float[Array, "..."] = eqx.field(converter=float_array, default=10.0)
    rest_radius: Float[Array, "..."] = eqx.field(converter=float_array, default=0.01)

    def __check_init__(self):
        check_positive("Boomerang", "rho", self.rho, unit="dimensionless")
        check_positive("Boomerang", "rest_radius", self.rest_radius, unit="dimensionless")
        check_fixpoint_parameters("Boomerang", self.atol, self.rtol, self.rearm_factor)

    def circuit_field(self, u, v):
        """felice's vector field $(g_u, g_v)$, without input."""
        return _circuit_field(u, v, self.alpha, self.beta, self.gamma, self.rho, self.sigma)

    def rest_state(self):
        """The rest point `(u_rest, v_rest)`: the root of `circuit_field` found by
        `optimistix.Newton` from (0.3, 0.3), one per parameter set (arrays of the
        parameters' broadcast shape). Raises an error when Newton's method fails."""
        params = (self.alpha, self.beta, self.gamma, self.rho, self.sigma)
        shape = jnp.broadcast_shapes(*(jnp.shape(p) for p in params))
        flat = tuple(jnp.broadcast_to(p, shape).reshape(-1) for p in params)
        dtype = self.alpha.dtype
        # Newton converges quadratically: a step below sqrt(eps) leaves an error near eps.
        tol = float(jnp.finfo(dtype).eps) ** 0.5
        solver = optx.Newton(rtol=tol, atol=tol)

        def solve(p):
            guess = (jnp.asarray(_REST_GUESS, dtype), jnp.asarray(_REST_GUESS, dtype))
            sol = optx.root_find(_field_at, solver, guess, args=p, throw=False)
            return sol.value, sol.result

        (u_rest, v_rest), result = jax.vmap(solve)(flat)
        u_rest = eqx.error_if(
            u_rest,
            result != optx.RESULTS.successful,
            "Boomerang: Newton's method found no rest point from (0.3, 0.3) for these "
            "parameters.",
        )
        return u_rest.reshape(shape), v_rest.reshape(shape)

    def init_state(self, n: int) -> BoomerangState:
        u_rest, v_rest = self.rest_state()
        u_rest = jnp.broadcast_to(u_rest, (n,))
        v_rest = jnp.broadcast_to(v_rest, (n,))
        return BoomerangState(u=u_rest, v=v_rest, u_rest=u_rest, v_rest=v_rest)

    def _offset_field(self, state: BoomerangState):
        """$g(y) - g(y_r)$ in a form that is exactly zero at $y = y_r$."""
        du_rest = state.u - state.u_rest
        dv_rest = state.v - state.v_rest
        exp_v_rest = self.alpha * jnp.exp(self.beta * state.v_rest)
        exp_u_rest = self.alpha * jnp.exp(self.beta * state.u_rest)
        tanh_rest = jnp.tanh(self.rho * (state.v_rest - state.u_rest))
        tanh_step = jnp.tanh(self.rho * (dv_rest - du_rest))
        dz = tanh_step * (1 - tanh_rest**2) / (1 + tanh_rest * tanh_step)
        gain_u = 1 - self.gamma * (0.3 - state.u)
        gain_v = 1 + self.gamma * (0.3 - state.v)
        du = -exp_v_rest * (jnp.expm1(self.beta * dv_rest) * gain_u + self.gamma * du_rest)
        dv = exp_u_rest * (jnp.expm1(self.beta * du_rest) * gain_v - self.gamma * dv_rest)
        return du + self.sigma * dz, dv + self.sigma * dz

    def _driven_field(self, state: BoomerangState, current):
        du, dv = self._offset_field(state)
        return du + self.weight_u * current, dv + self.weight_v * current

    def dynamics(self, t, state: BoomerangState, current) -> BoomerangState:
        du, dv = self._driven_field(state, current)
        zeros = jnp.zeros_like(du)
        return BoomerangState(u=du, v=dv, u_rest=zeros, v_rest=zeros)

    def spike_condition(self, t, state: BoomerangState, current) -> Array:
        du, dv = self._driven_field(state, current)
        arrived = spike_margin(du, dv, state.u, state.v, self.atol, self.rtol)
        away_from_rest = (
            rms(state.u - state.u_rest, state.v - state.v_rest) - self.rest_radius
        )
        return jnp.minimum(arrived, away_from_rest)

    def rearm_condition(self, t, state: BoomerangState, current) -> Array:
        du, dv = self._driven_field(state, current)
        return rearm_margin(
            du, dv, state.u, state.v, self.atol, self.rtol, self.rearm_factor
        )

    def receive(self, state: BoomerangState, x) -> BoomerangState:
        return eqx.tree_at(
            lambda s: (s.u, s.v),
            state,
            (state.u + self.weight_u * x, state.v + self.weight_v * x),
        )
