r"""Fixpoint spikes, shared by the two-variable felice circuit models (WereRabbit,
Boomerang).

A neuron with state $y = (u, v)$ and vector field $f(y)$ spikes when it *arrives* at a
fixpoint, that is when

$$
\|f(y)\| < \text{atol} + \text{rtol}\,\|y\|,
\qquad \|x\| = \sqrt{(x_u^2 + x_v^2) / 2}
$$

(the RMS norm of felice's `optimistix.rms_norm`, taken per neuron). The spike condition
is the margin $\text{atol} + \text{rtol}\|y\| - \|f(y)\|$, which crosses zero upwards
on arrival. A neuron sitting at its fixpoint would keep that margin positive, so the
models set `disarms_on_spike`: after a spike the neuron fires again only once it has
left the neighbourhood, when $\|f(y)\|$ has risen above
$\text{rearm\_factor}\,(\text{atol} + \text{rtol}\|y\|)$. Near a stable focus
$\|f\|$ does not decay monotonically: it oscillates within each turn (by a factor of
about 2 for the Boomerang's foci and 4 for the WereRabbit's with their defaults) while
its envelope decays, so `rearm_factor` must exceed that ratio or one arrival would be
counted several times.
"""

import jax.numpy as jnp
import numpy as np

from .._checks import is_concrete


def rms(a, b):
    """The RMS norm of the pair `(a, b)`, elementwise over neurons, with a zero (not
    NaN) derivative where both vanish: a neuron at rest has `f = 0` exactly, and the
    event condition is differentiated through every neuron's value."""
    square = 0.5 * (a * a + b * b)
    positive = square > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, square, 1.0)), 0.0)


def spike_margin(du, dv, u, v, atol, rtol):
    """Positive while the state is within the fixpoint tolerance."""
    return atol + rtol * rms(u, v) - rms(du, dv)


def rearm_margin(du, dv, u, v, atol, rtol, rearm_factor):
    """Positive once the state has left `rearm_factor` times the fixpoint tolerance."""
    return rms(du, dv) - rearm_factor * (atol + rtol * rms(u, v))


def check_fixpoint_parameters(owner: str, atol, rtol, rearm_factor):
    """Raise a ValueError for tolerances that can never be met or a re-arm threshold
    inside the spike neighbourhood (concrete values only)."""
    if not is_concrete((atol, rtol, rearm_factor)):
        return
    if np.any(np.asarray(atol) <= 0) or np.any(np.asarray(rtol) < 0):
        raise ValueError(
            f"{owner}: the fixpoint tolerances need `atol` > 0 and `rtol` >= 0; got "
            f"atol={np.asarray(atol).tolist()}, rtol={np.asarray(rtol).tolist()}."
        )
    if np.any(np.asarray(rearm_factor) <= 1):
        raise ValueError(
            f"{owner}: `rearm_factor` must be > 1 (the neuron re-arms once the vector "
            f"field exceeds rearm_factor times the spike tolerance); got "
            f"{np.asarray(rearm_factor).tolist()}."
        )
