r"""Closed-form solution of the LIF family between events.

Between events, with a constant external current `I`, the LIF-family models are linear:

$$
\tau_m \dot v = v_\infty - v + \sum_j g_j, \qquad \tau_j \dot g_j = -g_j, \qquad
v_\infty = v_\text{leak} + I .
$$

A neuron that is refractory until `r` ms after the segment start holds `v` until then
(its currents decay), and evolves freely after: with $u = s - r \ge 0$,

$$
v(s) = v_\infty + (v_0 - v_\infty) e^{-u/\tau_m}
    + \sum_j g_j e^{-r/\tau_j} \frac{u}{\tau_m} K_j(u),
\qquad
K_j(u) = \frac{e^{-u/\tau_j} - e^{-u/\tau_m}}{u (1/\tau_m - 1/\tau_j)}
       = e^{-u \lambda_j} \varphi(-u \delta_j),
$$

with $\varphi(x) = (e^x - 1)/x$ ($\varphi(0) = 1$), $\lambda_j$ the smaller of the two
rates $1/\tau_m$, $1/\tau_j$ and $\delta_j \ge 0$ their difference. This form is
smooth through $\tau_j = \tau_m$ (where $K_j = e^{-u/\tau_m}$, the kernel
$u/\tau_m\, e^{-u/\tau_m}$): the value and its derivatives with respect to both time
constants are right at equality, near it and far from it, and no exponential grows (a
long refractory period cannot overflow). `voltage` and `at` use it; they are the
differentiable part.

The event loop's prediction (`neurosim._per_neuron._predict`) samples `v` at many
times from one start, and uses the sum of exponentials, for `s >= r`,

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
$\sqrt{\epsilon}$ relative; their `c_j` is replaced by the limit kernel). Its
exponentials of each time constant are shared by a population's samples, which is what
makes the prediction cheap. These coefficients carry no derivative (a predicted spike
time gets its derivative from `voltage`, by the implicit function theorem), and they
are only evaluated within the prediction horizon, a few time constants: `r` is capped
in their growth factors, so that they stay finite whatever the refractory period.

The event loop that uses it is `neurosim._per_neuron`.
"""

import math

import equinox as eqx
import jax.numpy as jnp
from jax import lax

# Beyond this many membrane time constants of refractoriness the prediction's
# coefficients are never evaluated after `r` (its horizon is shorter): the cap keeps
# their growth factor finite in float32.
_COEFFICIENT_GROWTH = 40.0


def _exp_scaled(s, tau):
    return jnp.exp(-s / tau)


def _phi_taylor_terms(dtype):
    """How many terms of `sum_k x^k / (k + 1)!` reach the precision of `dtype` on
    `|x| <= 1` (for the value and for its derivative)."""
    eps = float(jnp.finfo(dtype).eps)
    k = 1
    while (k + 1) / math.factorial(k + 2) > eps / 8:
        k += 1
    return k + 1


def phi(x):
    r"""$\varphi(x) = (e^x - 1)/x$, with $\varphi(0) = 1$, accurate in value and
    derivative for every `x`: `expm1(x) / x` for `|x| > 1`, its Taylor series below
    (where the derivative of `expm1(x) / x` cancels). The unused branch gets a safe
    input, so that neither branch leaks a NaN into a gradient."""
    x = jnp.asarray(x)
    small = jnp.abs(x) <= 1.0
    x_large = jnp.where(small, 2.0, x)
    large = jnp.expm1(x_large) / x_large
    x_small = jnp.where(small, x, 0.0)
    # Horner's scheme from the highest term. It starts from that term's coefficient,
    # not from `0 * x + c`: the same values, and no multiplication by a constant
    # zero, which (with other constant zeros of a folded network) sent LLVM's
    # instruction combiner into an endless loop in XLA's CPU compiler.
    terms = _phi_taylor_terms(x.dtype)
    series = jnp.full_like(x_small, 1.0 / math.factorial(terms + 1))
    for k in range(terms - 1, -1, -1):
        series = series * x_small + 1.0 / math.factorial(k + 1)
    return jnp.where(small, series, large)


def synaptic_kernel(u, tau_m, tau):
    r"""$K(u) = (e^{-u/\tau} - e^{-u/\tau_m}) / (u (1/\tau_m - 1/\tau))$ for `u >= 0`,
    smooth through `tau == tau_m` (see the module docstring)."""
    # 1/tau_m - 1/tau, with one rounding of the difference of the time constants;
    # -1/tau without leak (tau_m = inf, where the quotient would be inf/inf).
    no_leak = jnp.isinf(tau_m)
    finite_tau_m = jnp.where(no_leak, 1.0, tau_m)
    difference = jnp.where(no_leak, -1.0 / tau, (tau - finite_tau_m) / (finite_tau_m * tau))
    membrane_faster = difference >= 0
    slow = jnp.where(membrane_faster, 1.0 / tau, 1.0 / tau_m)
    gap = jnp.where(membrane_faster, difference, -difference)
    return jnp.exp(-u * slow) * phi(-u * gap)


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
        self.a, self.b, self.c = self._coefficients()

    def _coefficients(self):
        """`A`, `B_j`, `C` of the prediction's sum of exponentials (module docstring),
        without derivatives."""
        stop = lax.stop_gradient
        tau_m, v, v_inf = stop(self.tau_m), stop(self.state.v), stop(self.v_inf)
        r = jnp.minimum(stop(self.r), _COEFFICIENT_GROWTH * tau_m)
        tiny = jnp.sqrt(jnp.finfo(v.dtype).eps)
        grow_m = jnp.exp(r / tau_m)
        a = (v - v_inf) * grow_m
        c_total = jnp.zeros_like(v)
        b = []
        for g, tau in zip(self.g, self.taus, strict=True):
            g, tau = stop(g), stop(tau)
            degenerate = jnp.abs(tau - tau_m) <= tiny * tau_m
            c = jnp.where(degenerate, 0.0, tau / jnp.where(degenerate, 1.0, tau - tau_m))
            a = a - g * c * grow_m * jnp.exp(-r / tau)
            a = a - jnp.where(degenerate, g * r / tau_m, 0.0)
            c_total = c_total + jnp.where(degenerate, g / tau_m, 0.0)
            b.append(g * c)
        return a, tuple(b), c_total

    def voltage(self, s):
        """`v` at `s` ms after the segment start (differentiable, see the module
        docstring)."""
        held = s < self.r
        # Zero in the held branch (not used): a negative `u` would grow exponentials.
        u = jnp.where(held, 0.0, s - self.r)
        decay_m = _exp_scaled(u, self.tau_m)
        free = self.v_inf + (self.state.v - self.v_inf) * decay_m
        for g, tau in zip(self.g, self.taus, strict=True):
            kernel = synaptic_kernel(u, self.tau_m, tau)
            free = free + g * _exp_scaled(self.r, tau) * (u / self.tau_m) * kernel
        return jnp.where(held, self.state.v, free)

    def slope(self, s):
        """dv/ds, from the prediction's coefficients (no derivative)."""
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
