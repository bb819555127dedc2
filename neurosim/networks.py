"""Ready-made networks from the literature."""

# Imported under private names, so that the module's public names are its networks.
import jax.numpy as _jnp
import numpy as _np

from ._network import Network as _Network
from ._network import Population as _Population
from ._network import Projection as _Projection
from .neurons.lif import CubaLIF as _CubaLIF

__all__ = ["vogels_abbott_cuba"]


def vogels_abbott_cuba(
    seed: int = 0,
    *,
    n: int = 4000,
    exc_fraction: float = 0.8,
    p: float = 0.02,
    we: float | None = None,
    wi: float | None = None,
    delay: float | None = None,
):
    r"""The current-based (CUBA) network of Vogels & Abbott (2005), as in Brian2's
    example: `n` `CubaLIF` neurons (80% excitatory), random connections with
    probability `p` (self-connections allowed, as in Brian2's example),
    taum = 20 ms, taue = 5 ms, taui = 10 ms, Vt = -50 mV, Vr = -60 mV, El = -49 mV,
    refractory period 5 ms, we = 60 * 0.27 / 10 mV, wi = -20 * 4.5 / 10 mV, and
    initial voltages uniform in [Vr, Vt].

    At reduced sizes, pass `we` and `wi` scaled by `4000 / n` to keep the input per
    neuron, or accept a different regime. `delay` (ms) delays every connection by that
    much; None (default) delivers at once, as in Brian2's example.

    **Returns:** `(network, y0)` for `simulate(network, t1=..., y0=y0)`; the
    population is named `"cuba"`, excitatory neurons first.
    """
    we = 60 * 0.27 / 10 if we is None else we
    wi = -20 * 4.5 / 10 if wi is None else wi
    n_exc = int(round(exc_fraction * n))
    rng = _np.random.default_rng(seed)
    connected = rng.random((n, n)) < p
    pre, post = _np.nonzero(connected)
    values = _np.where(pre < n_exc, we, wi)
    excitatory = pre < n_exc
    neuron = _CubaLIF(
        tau_mem=20.0,
        tau_exc=5.0,
        tau_inh=10.0,
        v_th=-50.0,
        v_reset=-60.0,
        v_leak=-49.0,
        t_ref=5.0,
    )
    network = _Network(
        populations={"cuba": _Population(neuron, n)},
        projections=[
            _Projection(
                "cuba",
                "cuba",
                (pre[excitatory], post[excitatory], values[excitatory]),
                target="ge",
                delay=delay,
            ),
            _Projection(
                "cuba",
                "cuba",
                (pre[~excitatory], post[~excitatory], values[~excitatory]),
                target="gi",
                delay=delay,
            ),
        ],
    )
    y0 = neuron.init_state(n)
    v0 = _jnp.asarray(-60.0 + rng.random(n) * 10.0, y0.v.dtype)
    y0 = type(y0)(v=v0, ge=y0.ge, gi=y0.gi, refractory=y0.refractory, ref_end=y0.ref_end)
    return network, {"cuba": y0}
