"""Ready-made networks from the literature."""

# Imported under private names, so that the module's public names are its networks.
import jax.numpy as _jnp
import numpy as _np
from equinox import tree_at as _tree_at

from ._currents import PiecewiseConstant as _PiecewiseConstant
from ._network import Network as _Network
from ._network import Population as _Population
from ._network import Projection as _Projection
from .neurons.izhikevich import Izhikevich as _Izhikevich
from .neurons.lif import CobaLIF as _CobaLIF
from .neurons.lif import CubaLIF as _CubaLIF

__all__ = ["brette_coba", "izhikevich_2003", "random_connections", "vogels_abbott_cuba"]


def vogels_abbott_cuba(
    seed: int = 0,
    *,
    n: int = 4000,
    exc_fraction: float = 0.8,
    p: float = 0.02,
    we: float | None = None,
    wi: float | None = None,
    delay: float | None = None,
    fan_out: int | None = None,
):
    r"""The current-based (CUBA) network of Vogels & Abbott (2005), as in Brian2's
    example: `n` `CubaLIF` neurons (80% excitatory), random connections with
    probability `p` (self-connections allowed, as in Brian2's example),
    taum = 20 ms, taue = 5 ms, taui = 10 ms, Vt = -50 mV, Vr = -60 mV, El = -49 mV,
    refractory period 5 ms, we = 60 * 0.27 / 10 mV, wi = -20 * 4.5 / 10 mV, and
    initial voltages uniform in [Vr, Vt].

    At reduced sizes, pass `we` and `wi` scaled by `4000 / n` to keep the input per
    neuron, or accept a different regime. `delay` (ms) delays every connection by that
    much; None (default) delivers at once, as in Brian2's example. `fan_out`, if given,
    replaces `p`: every neuron then projects to exactly `fan_out` distinct targets
    (80 matches p = 0.02 at n = 4000, and keeps the input per neuron at any `n`, with
    the default weights). Connections are drawn sparsely: building a 64 000-neuron
    network takes memory for its synapses only.

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
        "cuba", neuron, rng, n, exc_fraction, p, (we, wi), ("ge", "gi"), delay, fan_out
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
    fan_out: int | None = None,
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

    It has no closed form: `simulate` integrates each neuron with its ODE solver on
    its own clock (forward runs; `CobaLIF.quiet_time` spares the solves of neurons
    that cannot fire before their next input), or all of them together on the
    network's clock (differentiable runs, whose cost grows with the network size per
    spike: start those with a few hundred neurons, `we` and `wi` scaled by
    `4000 / n`). `delay` (ms) delays every connection. `fan_out`, if
    given, replaces `p`: every neuron projects to exactly `fan_out` distinct targets.

    **Returns:** `(network, y0)`; the population is named `"coba"`, excitatory neurons
    first.
    """
    we = 0.6 if we is None else we
    wi = 6.7 if wi is None else wi
    rng = _np.random.default_rng(seed)
    neuron = _CobaLIF()
    network = _excitatory_inhibitory(
        "coba", neuron, rng, n, exc_fraction, p, (we, wi), ("g_e", "g_i"), delay, fan_out
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


def izhikevich_2003(
    seed: int = 0,
    *,
    n_exc: int = 800,
    n_inh: int = 200,
    t1: float = 1000.0,
    delay: float | None = None,
    noise_exc: float = 5.0,
    noise_inh: float = 2.0,
):
    r"""The network of Izhikevich (2003), "Simple model of spiking neurons", Fig. 3:
    `n_exc` excitatory and `n_inh` inhibitory `Izhikevich` neurons, all to all (self
    connections included), with the paper's heterogeneity (r uniform in [0, 1) per
    neuron):

    - excitatory: a = 0.02, b = 0.2, c = -65 + 15 r², d = 8 - 6 r²;
    - inhibitory: a = 0.02 + 0.08 r, b = 0.25 - 0.05 r, c = -65, d = 2;
    - weights: 0.5 u from each excitatory neuron, -u from each inhibitory one (u
      uniform in [0, 1) per synapse); a spike jumps its targets' `v` by the weight (mV),
      the event-driven form of the paper's one-step synaptic current;
    - thalamic input: a current redrawn every 1 ms, normal with standard deviation
      `noise_exc` (5) or `noise_inh` (2) mV/ms, as a `PiecewiseConstant` with one
      value per ms of `[0, t1)` (the last one holds after `t1`);
    - initial state v = -65 mV, u = b v.

    The paper integrates with a 1 ms Euler scheme (two 0.5 ms steps for `v`); this is
    the same model in continuous time, so spike times differ from a clock-driven run,
    and the network is chaotic: any two integrations part after some tens of ms.
    `delay` (ms), if given, delays every connection.

    **Returns:** `(network, y0)`; one population `"izhikevich"`, excitatory first.
    """
    n = n_exc + n_inh
    rng = _np.random.default_rng(seed)
    r_exc, r_inh = rng.random(n_exc), rng.random(n_inh)
    neuron = _Izhikevich(
        a=_np.concatenate([_np.full(n_exc, 0.02), 0.02 + 0.08 * r_inh]),
        b=_np.concatenate([_np.full(n_exc, 0.2), 0.25 - 0.05 * r_inh]),
        c=_np.concatenate([-65.0 + 15.0 * r_exc**2, _np.full(n_inh, -65.0)]),
        d=_np.concatenate([8.0 - 6.0 * r_exc**2, _np.full(n_inh, 2.0)]),
    )
    weights = rng.random((n, n))  # [pre, post]
    weights[:n_exc] *= 0.5
    weights[n_exc:] *= -1.0
    steps = max(int(_np.ceil(t1)), 1)
    scale = _np.concatenate([_np.full(n_exc, noise_exc), _np.full(n_inh, noise_inh)])
    values = rng.standard_normal((steps, n)) * scale
    current = _PiecewiseConstant(_np.arange(1.0, steps, dtype=_np.float64), values)
    name = "izhikevich"
    network = _Network(
        populations={name: _Population(neuron, n, current)},
        projections=[_Projection(name, name, _jnp.asarray(weights), delay=delay)],
    )
    return network, {name: neuron.init_state(n)}


def _excitatory_inhibitory(
    name, neuron, rng, n, exc_fraction, p, weights, targets, delay, fan_out=None
):
    """One population of `n` neurons, excitatory ones first, connected at random (with
    probability `p` per pair, or `fan_out` distinct targets per neuron): one projection
    from the excitatory neurons to `targets[0]` with weight `weights[0]`, one from the
    inhibitory ones to `targets[1]`."""
    if not 0.0 < exc_fraction <= 1.0:
        raise ValueError(f"`exc_fraction` must lie in (0, 1], got {exc_fraction}.")
    n_exc = int(round(exc_fraction * n))
    pre, post = random_connections(
        rng, n, n, p=p if fan_out is None else None, fan_out=fan_out
    )
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


def random_connections(rng, n_pre: int, n_post: int, *, p=None, fan_out=None):
    """Random synapses as index arrays `(pre, post)`, sorted by `pre` then `post`,
    drawn without ever forming the `n_pre x n_post` matrix (memory and time grow
    with the number of synapses, not with the number of pairs).

    - `p`: every pair `(pre, post)` is connected independently with probability `p`
      (self-pairs included). The gaps between connected pairs, in row-major order, are
      geometric: drawing them gives exactly the same distribution as one Bernoulli
      draw per pair.
    - `fan_out`: every presynaptic neuron gets exactly `fan_out` distinct targets,
      uniform over the subsets of that size (duplicates are redrawn, which keeps every
      subset equally likely).

    `rng` is a `numpy.random.Generator` (e.g. `numpy.random.default_rng(seed)`).
    """
    if (p is None) == (fan_out is None):
        raise ValueError("Pass exactly one of `p` (a probability) or `fan_out` (a count).")
    if fan_out is not None:
        return _fixed_fan_out(rng, n_pre, n_post, fan_out)
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"`p` is a connection probability in [0, 1], got {p}.")
    pairs = n_pre * n_post
    if p == 0.0 or pairs == 0:
        empty = _np.zeros(0, _np.int64)
        return empty, empty
    positions = []
    end = -1  # the last connected position so far
    while True:
        expected = (pairs - end - 1) * p
        draws = int(expected + 8.0 * _np.sqrt(expected + 1.0) + 16)
        found = end + _np.cumsum(rng.geometric(p, size=draws))
        positions.append(found[found < pairs])
        if found[-1] >= pairs:
            break
        end = int(found[-1])
    flat = _np.concatenate(positions)
    index = _index_dtype(max(n_pre, n_post))
    return (flat // n_post).astype(index), (flat % n_post).astype(index)


def _index_dtype(n):
    return _np.int32 if n < 2**31 else _np.int64


def _fixed_fan_out(rng, n_pre, n_post, fan_out):
    fan_out = int(fan_out)
    if not 0 <= fan_out <= n_post:
        raise ValueError(
            f"`fan_out` must lie in [0, n_post = {n_post}] (distinct targets per neuron), "
            f"got {fan_out}."
        )
    if fan_out > n_post // 2:
        # Dense enough: a random permutation per row (n_pre x n_post keys).
        post = _np.argsort(rng.random((n_pre, n_post)), axis=1)[:, :fan_out]
        post = _np.sort(post, axis=1)
    else:
        post = _np.sort(rng.integers(0, n_post, size=(n_pre, fan_out)), axis=1)
        while True:
            repeated = _np.zeros_like(post, dtype=bool)
            repeated[:, 1:] = post[:, 1:] == post[:, :-1]
            count = int(repeated.sum())
            if count == 0:
                break
            post[repeated] = rng.integers(0, n_post, size=count)
            post = _np.sort(post, axis=1)
    index = _index_dtype(max(n_pre, n_post))
    pre = _np.repeat(_np.arange(n_pre, dtype=index), fan_out)
    return pre, post.reshape(-1).astype(index)
