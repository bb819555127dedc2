"""Ready-made networks from the literature."""

# Imported under private names, so that the module's public names are its networks.
import jax.numpy as _jnp
import numpy as _np
from equinox import tree_at as _tree_at

from ._network import Network as _Network
from ._network import Population as _Population
from ._network import Projection as _Projection
from .neurons.lif import CobaLIF as _CobaLIF
from .neurons.lif import CubaLIF as _CubaLIF

__all__ = ["brette_coba", "vogels_abbott_cuba"]


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
    rng = _np.random.default_rng(seed)
    neuron = _CubaLIF(
        tau_mem=20.0,
        tau_exc=5.0,
        tau_inh=10.0,
        v_th=-50.0,
        v_reset=-60.0,
        v_leak=-49.0,
        t_ref=5.0,
    )
    network = _excitatory_inhibitory(
        "cuba", neuron, rng, n, exc_fraction, p, (we, wi), ("ge", "gi"), delay
    )
    y0 = neuron.init_state(n)
    v0 = _jnp.asarray(-60.0 + rng.random(n) * 10.0, y0.v.dtype)
    return network, {"cuba": _replace(y0, v=v0)}


def _replace(state, **fields):
    return _tree_at(
        lambda s: tuple(getattr(s, name) for name in fields), state, tuple(fields.values())
    )


def brette_coba(
    seed: int = 0,
    *,
    n: int = 4000,
    exc_fraction: float = 0.8,
    p: float = 0.02,
    we: float | None = None,
    wi: float | None = None,
    delay: float | None = None,
):
    r"""The conductance-based (COBA) network of Brette et al. (2007), benchmark 1 (after
    Vogels & Abbott 2005), as in Brian2's example: `n` `CobaLIF` neurons (80%
    excitatory) at the model's defaults (taum = 20 ms, El = Vr = -60 mV, Vt = -50 mV,
    Ee = 0 mV, Ei = -80 mV, taue = 5 ms, taui = 10 ms, refractory period 5 ms), random
    connections with probability `p` (self-connections allowed), conductance jumps
    we = 0.6 and wi = 6.7 (6 nS and 67 nS over the leak conductance of 10 nS), and
    initial states as in Brian2's example: `v` uniform in [-60, -50] mV,
    `g_e` normal with mean 4 and sd 1.5, `g_i` normal with mean 20 and sd 12 (in units
    of the leak conductance; negative draws clipped at 0).

    It has no closed form: `simulate` integrates it with its ODE solver, whose cost
    grows with the network size per spike; start with a few hundred neurons, `we` and
    `wi` scaled by `4000 / n`. `delay` (ms) delays every connection.

    **Returns:** `(network, y0)`; the population is named `"coba"`, excitatory neurons
    first.
    """
    we = 0.6 if we is None else we
    wi = 6.7 if wi is None else wi
    rng = _np.random.default_rng(seed)
    neuron = _CobaLIF()
    network = _excitatory_inhibitory(
        "coba", neuron, rng, n, exc_fraction, p, (we, wi), ("g_e", "g_i"), delay
    )
    y0 = neuron.init_state(n)
    dtype = y0.v.dtype
    y0 = _replace(
        y0,
        v=_jnp.asarray(-60.0 + rng.random(n) * 10.0, dtype),
        g_e=_jnp.asarray(_np.maximum(rng.normal(4.0, 1.5, n), 0.0), dtype),
        g_i=_jnp.asarray(_np.maximum(rng.normal(20.0, 12.0, n), 0.0), dtype),
    )
    return network, {"coba": y0}


def _excitatory_inhibitory(name, neuron, rng, n, exc_fraction, p, weights, targets, delay):
    """One population of `n` neurons, excitatory ones first, connected at random with
    probability `p`: one projection from the excitatory neurons to `targets[0]` with
    weight `weights[0]`, one from the inhibitory ones to `targets[1]`."""
    n_exc = int(round(exc_fraction * n))
    connected = rng.random((n, n)) < p
    pre, post = _np.nonzero(connected)
    excitatory = pre < n_exc
    projections = [
        _Projection(
            name,
            name,
            (pre[rows], post[rows], _np.full(int(rows.sum()), weight)),
            target=target,
            delay=delay,
        )
        for rows, weight, target in zip(
            (excitatory, ~excitatory), weights, targets, strict=True
        )
    ]
    return _Network(populations={name: _Population(neuron, n)}, projections=projections)
