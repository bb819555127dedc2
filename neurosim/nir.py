r"""Networks in and out through NIR, the Neuromorphic Intermediate Representation.

`to_nir(network)` writes a `neurosim.Network` as a `nir.NIRGraph`; `from_nir(graph)`
reads one back as a `Network`. Save a graph with `nir.write(path, graph)` and read it
with `nir.read(path)`. Needs the optional extra: `pip install 'neurosim[nir]'`.

## Node by node

| NIR node | neurosim | projections into it jump |
| --- | --- | --- |
| `LIF(tau, r, v_leak, v_threshold, v_reset)` | `LIF` (hard reset, no refractory period) | `v` (`target="v"`) |
| `CubaLIF(tau_syn, tau_mem, r, v_leak, v_threshold, v_reset, w_in)` | `LIF` | `i` (`target="i"`) |
| `IF(r, v_threshold, v_reset)` | `LIF(tau_mem=inf)`: no leak, `v` held between inputs | `v` |
| `LI(tau, r, v_leak)` | `LI` | `v` |
| `CubaLI(tau_syn, tau_mem, r, v_leak, w_in)` | `LI` | `i` |
| `Affine(weight, bias)`, `Linear(weight)` | a `Projection`; a bias is a constant `current` | |
| `Delay(delay)` | the projection's `delay` | |
| `Input`, `Output` | `SpikeTrains` inputs; outputs mark populations only | |

A neurosim `CubaLIF` whose excitatory and inhibitory time constants are equal is
written as a NIR `CubaLIF` (and comes back as a `LIF`). Any other node or model raises
`UnsupportedNodeError`, which names it and its type. neurosim has no integrator
without leak other than `LIF(tau_mem=inf)`, whose constant drive has no effect, so a
NIR `IF` reached by a nonzero `Affine` bias is refused, as is a nonzero bias into a
`CubaLIF` or `CubaLI` (NIR feeds it through the synaptic filter, which starts at zero;
neurosim's `current` drives `v` directly).

## Units and conventions

- **Time.** NIR's time constants and delays are in seconds (`time_unit="s"`, the
  default, the convention of the frameworks that read and write NIR); neurosim's are
  in ms: `tau_mem [ms] = 1000 tau [s]`. Pass `time_unit="ms"` for a graph written
  in ms.
- **Voltages** (`v_leak`, `v_threshold`, `v_reset`) carry over unchanged.
- **Resistance.** NIR's input current `I` enters through `R`:
  $\tau\,\dot v = v_\text{leak} - v + R I$. neurosim's currents are already in voltage
  units (the drive $R I$): its synaptic current is `i = R I` and its `current` is
  $R b$ for an `Affine` bias `b`.
- **Spikes into a node.** A spike is a Dirac impulse of unit area (NIR's continuous
  time reading): through an `Affine` weight `W[post, pre]` it jumps the receiving
  neuron's state at once, by

  $$\Delta v = \frac{R\,W}{\tau} \;(\text{LIF, LI}), \qquad
  \Delta v = R\,W \;(\text{IF}), \qquad
  \Delta i = \frac{R\,w_\text{in}\,W}{\tau_\text{syn}} \;(\text{CubaLIF, CubaLI}),$$

  with `tau` in NIR's time unit. Time-stepped frameworks instead read a spike as a
  pulse of height 1 lasting one step `dt`, whose area is `dt`: pass their `dt` (in
  NIR's time unit) to multiply every jump by it. `to_nir` writes `R` so that these
  factors are exactly 1 (`R = tau / area`, `w_in = 1`): the weights go out unchanged
  and come back bit for bit.
- **Weights.** NIR's `weight` is `(out, in)`; neurosim's dense weights are
  `(pre, post)`: the matrix is transposed.
- **Delays.** A `Delay` before an `Affine` delays each presynaptic neuron's spikes, one
  after it each postsynaptic neuron's inputs; both become per-synapse delays (ms). A
  projection whose per-synapse delays are neither is refused.
- **Inputs.** Each NIR `Input` becomes a spike input of the network; pass its spikes to
  `from_nir(..., inputs={name: SpikeTrains(...)})` (times in ms). `to_nir` writes the
  network's inputs as `Input` nodes (their spike times are data, not part of a NIR
  graph) and, by default, an `Output` node for every population that projects nowhere.

Parameters round-trip exactly from float32 (NIR stores float64); in float64 the
conversion between ms and s may round in the last place.

**Example:**

```python
import nir
import neurosim as ns
from neurosim.nir import from_nir, to_nir

graph = to_nir(net)                       # net: a neurosim.Network
nir.write("net.nir", graph)
net2 = from_nir(nir.read("net.nir"), inputs={"drive": net.inputs["drive"]})
```
"""

from typing import NamedTuple

import numpy as np

try:
    import nir
except ImportError as error:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "neurosim.nir needs the `nir` package: pip install 'neurosim[nir]'"
    ) from error

import jax.numpy as jnp

from ._currents import Constant
from ._network import Network, Population, Projection, SpikeTrains
from .neurons.lif import LI, LIF, CubaLIF

__all__ = ["UnsupportedNodeError", "from_nir", "to_nir"]

_MS_PER_UNIT = {"s": 1000.0, "ms": 1.0}
_NEURON_NODES = (nir.LIF, nir.CubaLIF, nir.IF, nir.LI, nir.CubaLI)
_WIRE_NODES = (nir.Affine, nir.Linear, nir.Delay)


class UnsupportedNodeError(ValueError):
    """A NIR node, or a neurosim population, that the other side cannot represent."""


def _ms_per_unit(time_unit: str, owner: str) -> float:
    if time_unit not in _MS_PER_UNIT:
        raise ValueError(f"{owner}: `time_unit` must be 's' or 'ms', got {time_unit!r}.")
    return _MS_PER_UNIT[time_unit]


def _area(dt, owner: str) -> float:
    """The area of one spike in NIR's time unit: 1 (a Dirac) or the step `dt`."""
    if dt is None:
        return 1.0
    if not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"{owner}: `dt` must be a positive time step, got {dt!r}.")
    return float(dt)


def _flat(value, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, np.float64).reshape(-1), (n,)).copy()


# --------------------------------------------------------------------------- from_nir


def _size(node) -> int:
    """The number of neurons of a neuron node (its parameters' size)."""
    first = {
        nir.LIF: "tau",
        nir.CubaLIF: "tau_mem",
        nir.IF: "r",
        nir.LI: "tau",
        nir.CubaLI: "tau_mem",
    }[type(node)]
    return int(np.size(getattr(node, first)))


_PARAMS = ("tau", "tau_mem", "tau_syn", "r", "v_leak", "v_threshold", "v_reset", "w_in")


def _neuron(node, n: int, ms: float, area: float):
    """The neurosim model of a NIR neuron node, the state field its inputs jump, the
    factor from NIR weight to jump per neuron (see the module docstring), and `R`,
    which turns an `Affine` bias into neurosim's `current` (None where a bias is no
    constant drive of `v`)."""
    p = {name: _flat(getattr(node, name), n) for name in _PARAMS if hasattr(node, name)}
    if isinstance(node, nir.LIF):
        scale = p["tau"] / area
        model = LIF(
            tau_mem=p["tau"] * ms,
            v_th=p["v_threshold"],
            v_reset=p["v_reset"],
            v_leak=p["v_leak"],
        )
        return model, "v", p["r"] / scale, p["r"]
    if isinstance(node, nir.CubaLIF):
        scale = p["tau_syn"] / area
        model = LIF(
            tau_mem=p["tau_mem"] * ms,
            tau_syn=p["tau_syn"] * ms,
            v_th=p["v_threshold"],
            v_reset=p["v_reset"],
            v_leak=p["v_leak"],
        )
        return model, "i", p["r"] * p["w_in"] / scale, None
    if isinstance(node, nir.IF):
        scale = np.ones(n) / area
        model = LIF(tau_mem=jnp.inf, v_th=p["v_threshold"], v_reset=p["v_reset"])
        return model, "v", p["r"] / scale, None
    if isinstance(node, nir.LI):
        scale = p["tau"] / area
        model = LI(tau_mem=p["tau"] * ms, v_leak=p["v_leak"])
        return model, "v", p["r"] / scale, p["r"]
    scale = p["tau_syn"] / area
    model = LI(tau_mem=p["tau_mem"] * ms, tau_syn=p["tau_syn"] * ms, v_leak=p["v_leak"])
    return model, "i", p["r"] * p["w_in"] / scale, None


def _unsupported(name: str, node, why: str | None = None) -> UnsupportedNodeError:
    kind = type(node).__name__
    if why is not None:
        return UnsupportedNodeError(f"from_nir: node {name!r} of type {kind}: {why}.")
    supported = ", ".join(t.__name__ for t in (*_NEURON_NODES, *_WIRE_NODES))
    return UnsupportedNodeError(
        f"from_nir: node {name!r} of type {kind} has no neurosim equivalent "
        f"(supported: {supported}, Input, Output)."
    )


class _Path(NamedTuple):
    """What lies on a path of wire nodes from a source to a neuron node: the delays
    before and after the weight node, the weight node `(name, node)`, the nodes seen."""

    pre_delay: object = 0.0
    weight: tuple | None = None
    post_delay: object = 0.0
    seen: tuple = ()

    def through(self, name: str, node, n_pre: int) -> "_Path":
        seen = (*self.seen, name)
        if isinstance(node, nir.Delay) and self.weight is None:
            return self._replace(
                pre_delay=self.pre_delay + _flat(node.delay, n_pre), seen=seen
            )
        if isinstance(node, nir.Delay):
            delay = np.asarray(node.delay, np.float64).reshape(-1)
            return self._replace(post_delay=self.post_delay + delay, seen=seen)
        if self.weight is not None:
            raise _unsupported(
                name,
                node,
                f"it follows {self.weight[0]!r}, and two weight nodes in series have no "
                "neurosim equivalent (multiply them into one)",
            )
        return self._replace(weight=(name, node), seen=seen)


def from_nir(graph, *, inputs=None, time_unit: str = "s", dt=None) -> Network:
    r"""A `neurosim.Network` from a NIR graph (see the module docstring for the
    mapping of nodes, units and spikes).

    **Arguments:**

    - `graph`: a `nir.NIRGraph` (e.g. from `nir.read(path)`).
    - `inputs`: a dict from the names of the graph's `Input` nodes to
        `neurosim.SpikeTrains` (times in ms) with one source per input element. An
        input not given receives no spikes.
    - `time_unit`: the unit of the graph's time constants and delays, `"s"` (default)
        or `"ms"`.
    - `dt`: None (default) reads a spike as a Dirac impulse of unit area; a time step
        (in `time_unit`) reads it as a pulse of height 1 lasting `dt`, as time-stepped
        frameworks do.

    **Returns:** a `Network` with one population per neuron node and one input per
    `Input` node, named as in the graph; `Output` nodes are dropped.

    **Raises:** `UnsupportedNodeError` naming a node neurosim cannot represent.
    """
    ms = _ms_per_unit(time_unit, "from_nir")
    area = _area(dt, "from_nir")
    nodes, edges = graph.nodes, list(graph.edges)
    for name, node in nodes.items():
        if not isinstance(node, (*_NEURON_NODES, *_WIRE_NODES, nir.Input, nir.Output)):
            raise _unsupported(name, node)

    given = dict(inputs or {})
    sources, populations, targets = {}, {}, {}
    for name, node in nodes.items():
        if isinstance(node, nir.Input):
            size = int(np.prod(node.input_type["input"]))
            trains = given.pop(name, None)
            if trains is None:
                trains = SpikeTrains(jnp.zeros((0,)), jnp.zeros((0,), jnp.int32), size)
            elif trains.num_sources != size:
                raise ValueError(
                    f"from_nir: input {name!r} has {size} elements, but its SpikeTrains "
                    f"has num_sources={trains.num_sources}."
                )
            sources[name] = trains
        elif isinstance(node, _NEURON_NODES):
            n = _size(node)
            model, target, factor, r_bias = _neuron(node, n, ms, area)
            populations[name] = [model, n, np.zeros(n)]
            targets[name] = (target, factor, r_bias)
    if given:
        raise ValueError(
            f"from_nir: `inputs` names {sorted(given)}, which are not Input nodes of the "
            f"graph (its inputs: {sorted(sources)})."
        )

    outgoing = {}
    for pre, post in edges:
        outgoing.setdefault(pre, []).append(post)

    projections = []
    position = {name: k for k, name in enumerate(nodes)}

    def size_of(name):
        return sources[name].num_sources if name in sources else populations[name][1]

    def emit(source, post, path: _Path):
        target, factor, r_bias = targets[post]
        n_pre, n_post = size_of(source), populations[post][1]
        if path.weight is None:
            if n_pre != n_post:
                raise ValueError(
                    f"from_nir: edge {source!r} -> {post!r} joins {n_pre} to {n_post} "
                    "neurons without a weight node."
                )
            weight, bias = np.eye(n_pre), None
        else:
            wname, wnode = path.weight
            weight = np.asarray(wnode.weight, np.float64)
            if weight.shape != (n_post, n_pre):
                raise ValueError(
                    f"from_nir: {type(wnode).__name__} {wname!r} has weight shape "
                    f"{weight.shape}, expected ({n_post}, {n_pre}) for {source!r} -> {post!r}."
                )
            weight = weight.T
            bias = getattr(wnode, "bias", None)
        if bias is not None and np.any(np.asarray(bias) != 0):
            if r_bias is None:
                raise _unsupported(
                    path.weight[0],
                    path.weight[1],
                    f"its nonzero bias into {type(nodes[post]).__name__} {post!r} has no neurosim "
                    "equivalent (a bias is a constant drive of v in neurosim: into a LIF or "
                    "LI only)",
                )
            populations[post][2] = populations[post][2] + r_bias * _flat(bias, n_post)
        delay = (
            _flat(path.pre_delay, n_pre)[:, None] + _flat(path.post_delay, n_post)[None, :]
        ) * ms
        if np.any(delay != 0) and source in sources:
            raise ValueError(
                f"from_nir: a Delay lies between input {source!r} and {post!r}; neurosim "
                "delays only projections from populations: shift the input spike times."
            )
        if not np.any(delay != 0):
            delay = None
        elif np.all(delay == delay.flat[0]):
            delay = float(delay.flat[0])
        # In the order of the graph's weight nodes, which `to_nir` writes in the order
        # of the network's projections: a round trip rebuilds the same structure.
        order = position[path.weight[0] if path.weight else post]
        projections.append(
            (
                (order, len(projections)),
                Projection(
                    source, post, weight * factor[None, :], delay=delay, target=target
                ),
            )
        )

    def walk(name, source, path: _Path):
        for nxt in outgoing.get(name, ()):
            node = nodes[nxt]
            if isinstance(node, nir.Output):
                continue
            if isinstance(node, _NEURON_NODES):
                emit(source, nxt, path)
            elif isinstance(node, nir.Input):
                raise ValueError(
                    f"from_nir: edge {name!r} -> {nxt!r} enters an Input node."
                )
            elif nxt in path.seen:
                raise ValueError(
                    f"from_nir: a loop of edges through {nxt!r} holds no neuron."
                )
            else:
                walk(nxt, source, path.through(nxt, node, size_of(source)))

    for name in (*sources, *populations):
        if name in populations and isinstance(nodes[name], (nir.LI, nir.CubaLI)):
            onward = [
                post
                for post in outgoing.get(name, ())
                if not isinstance(nodes[post], nir.Output)
            ]
            if onward:
                raise _unsupported(
                    name,
                    nodes[name],
                    f"its output is a voltage, not spikes, yet it feeds {onward[0]!r} "
                    "(neurosim's LI is a readout)",
                )
            continue
        walk(name, name, _Path())

    return Network(
        populations={
            name: Population(model, n, current if np.any(current != 0) else None)
            for name, (model, n, current) in populations.items()
        },
        projections=[
            projection for _, projection in sorted(projections, key=lambda p: p[0])
        ],
        inputs=sources,
    )


# ----------------------------------------------------------------------------- to_nir


def _dense(conn):
    """A connection's weights as a dense `(n_pre, n_post)` matrix, and its delays as
    one per synapse (None when it has none), from its row storage."""
    weight = np.asarray(conn.weight, np.float64)
    n_pre, n_post = conn.n_pre, conn.n_post
    if conn.post_index is None:
        dense = weight
        delay = None if conn.delay is None else np.full((n_pre, n_post), float(conn.delay))
        return dense, delay, np.ones((n_pre, n_post), bool)
    post = np.asarray(conn.post_index)
    rows = np.broadcast_to(np.arange(n_pre)[:, None], post.shape)
    real = post < n_post
    dense = np.zeros((n_pre, n_post))
    np.add.at(dense, (rows[real], post[real]), weight[real])
    present = np.zeros((n_pre, n_post), bool)
    present[rows[real], post[real]] = True
    if conn.delay is None:
        return dense, None, present
    if not conn.per_synapse_delay:
        return dense, np.full((n_pre, n_post), float(conn.delay)), present
    delays = np.asarray(conn.delay, np.float64)
    delay = np.full((n_pre, n_post), np.nan)
    for r, c, d in zip(rows[real], post[real], delays[real]):
        if not np.isnan(delay[r, c]) and delay[r, c] != d:
            raise UnsupportedNodeError(
                f"to_nir: projection {conn.pre!r} -> {conn.post!r} reaches neuron {c} of "
                f"{conn.post!r} from neuron {r} twice with different delays; NIR has one "
                "weight per pair."
            )
        delay[r, c] = d
    return dense, delay, present


def _one_per(delay, present, axis):
    """The delay of each row (`axis=1`: presynaptic neuron) or column (`axis=0`), if
    all present synapses of each share one; else None. Rows without a synapse get 0."""
    shared = np.where(present, delay, -np.inf).max(axis=axis)
    shared = np.where(np.isfinite(shared), shared, 0.0)
    ok = (delay == np.expand_dims(shared, axis)) | ~present
    return shared if np.all(ok) else None


def _split_delay(delay, present, owner):
    """Per-synapse delays as `(pre, post)`: a delay per presynaptic neuron (a NIR Delay
    before the weights) or per postsynaptic neuron (after them); None where none."""
    if delay is None or not np.any(delay[present] != 0):
        return None, None
    post = _one_per(delay, present, 0)
    if post is not None:
        return None, post
    pre = _one_per(delay, present, 1)
    if pre is not None:
        return pre, None
    raise UnsupportedNodeError(
        f"to_nir: {owner} has per-synapse delays that depend on both the pre- and the "
        "postsynaptic neuron; NIR delays one side (a Delay before or after the weights)."
    )


def _param(model, name: str, n: int) -> np.ndarray:
    return _flat(getattr(model, name), n)


def _nir_neuron(name, pop, synaptic: bool, ms: float, area: float):
    """The NIR node of a population, and `r` (to turn a current into a bias)."""
    model, n = pop.neuron, pop.n
    kind = type(model).__name__
    if type(model) not in (LIF, CubaLIF, LI):
        raise UnsupportedNodeError(
            f"to_nir: population {name!r} is a {kind}, which NIR cannot represent "
            "(supported: LIF, CubaLIF with tau_exc == tau_inh, LI)."
        )
    if isinstance(model, (LIF, CubaLIF)):
        if model.reset_mode != "hard":
            raise UnsupportedNodeError(
                f"to_nir: population {name!r} ({kind}) has reset_mode={model.reset_mode!r}; "
                "NIR's neurons reset to v_reset (reset_mode='hard')."
            )
        if np.any(np.asarray(model.t_ref) != 0):
            raise UnsupportedNodeError(
                f"to_nir: population {name!r} ({kind}) has a refractory period t_ref; NIR's "
                "neurons have none (t_ref=0)."
            )
    p = {k: _param(model, k, n) for k in ("tau_mem", "v_leak")}
    tau = p["tau_mem"] / ms
    if isinstance(model, CubaLIF):
        if synaptic and np.any(np.asarray(model.tau_exc) != np.asarray(model.tau_inh)):
            raise UnsupportedNodeError(
                f"to_nir: population {name!r} is a CubaLIF with tau_exc != tau_inh; NIR's "
                "CubaLIF has one synaptic current (use equal time constants, or a LIF)."
            )
        tau_syn = _param(model, "tau_exc", n) / ms
    else:
        tau_syn = _param(model, "tau_syn", n) / ms
    spiking = isinstance(model, (LIF, CubaLIF))
    if spiking:
        p.update({k: _param(model, k, n) for k in ("v_th", "v_reset")})
    if np.any(np.isinf(tau)):
        if not spiking or synaptic:
            raise UnsupportedNodeError(
                f"to_nir: population {name!r} ({kind}) has tau_mem=inf"
                + (" and synaptic inputs" if spiking else "")
                + "; NIR's IF takes its inputs into v directly."
            )
        r = np.ones(n) / area
        return nir.IF(r=r, v_threshold=p["v_th"], v_reset=p["v_reset"]), None
    if synaptic:
        r = tau_syn / area
        if spiking:
            node = nir.CubaLIF(
                tau_syn=tau_syn,
                tau_mem=tau,
                r=r,
                v_leak=p["v_leak"],
                v_threshold=p["v_th"],
                v_reset=p["v_reset"],
                w_in=np.ones(n),
            )
        else:
            node = nir.CubaLI(
                tau_syn=tau_syn, tau_mem=tau, r=r, v_leak=p["v_leak"], w_in=np.ones(n)
            )
        return node, None
    r = tau / area
    if spiking:
        node = nir.LIF(
            tau=tau, r=r, v_leak=p["v_leak"], v_threshold=p["v_th"], v_reset=p["v_reset"]
        )
    else:
        node = nir.LI(tau=tau, r=r, v_leak=p["v_leak"])
    return node, r


def _synaptic(name, pop, conns) -> bool:
    """Whether the projections into a population jump its synaptic current (True) or
    `v` (False); a mix has no NIR node."""
    fields = {("v" if c.target == "v" else "synaptic") for c in conns}
    for conn in conns:
        if conn.target not in (None, "v", "i"):
            raise UnsupportedNodeError(
                f"to_nir: projection {conn.pre!r} -> {name!r} targets {conn.target!r}; NIR "
                "inputs enter a neuron's synaptic current or its v."
            )
    if len(fields) > 1:
        raise UnsupportedNodeError(
            f"to_nir: population {name!r} receives projections into both v and its "
            "synaptic current; a NIR neuron takes one kind of input."
        )
    return fields == {"synaptic"}


def to_nir(network: Network, *, outputs=None, time_unit: str = "s", dt=None):
    r"""A NIR graph of a `neurosim.Network` (see the module docstring for the mapping
    of models, units and spikes).

    **Arguments:**

    - `network`: a `neurosim.Network` of `LIF`, `LI` (and `CubaLIF` with
        `tau_exc == tau_inh`) populations with hard resets, no refractory period and
        constant (or no) external currents.
    - `outputs`: names of the populations to mark with an `Output` node; default: those
        that project nowhere.
    - `time_unit`: the unit written for time constants and delays, `"s"` (default) or
        `"ms"`.
    - `dt`: None (default) for spikes as Dirac impulses; a time step (in `time_unit`)
        for spikes read as pulses of height 1 lasting `dt` (see `from_nir`).

    **Returns:** a `nir.NIRGraph`: an `Input` node per network input and a node per
    population (named as in the network), an `Affine` node per projection (its
    `Delay` before or after it), and the `Output` nodes.

    **Raises:** `UnsupportedNodeError` naming a population, model or projection NIR
    cannot represent.
    """
    if not isinstance(network, Network):
        raise TypeError(
            f"to_nir: `network` must be a neurosim.Network, got {type(network).__name__}."
        )
    ms = _ms_per_unit(time_unit, "to_nir")
    area = _area(dt, "to_nir")
    nodes, edges = {}, []
    used = set(network.populations) | set(network.inputs)

    def fresh(base):
        name, k = base, 1
        while name in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name)
        return name

    for name, trains in network.inputs.items():
        nodes[name] = nir.Input(input_type={"input": np.array([trains.num_sources])})
    into = {name: [] for name in network.populations}
    for conn in network.connections:
        into[conn.post].append(conn)
    biases = {}
    for name, pop in network.populations.items():
        node, r = _nir_neuron(name, pop, _synaptic(name, pop, into[name]), ms, area)
        nodes[name] = node
        current = pop.current
        value = (
            np.asarray(current.value, np.float64) if isinstance(current, Constant) else None
        )
        if value is None:
            raise UnsupportedNodeError(
                f"to_nir: population {name!r} has a {type(current).__name__} current; NIR "
                "has constant currents only (an Affine bias)."
            )
        if np.any(value != 0):
            if r is None or not into[name]:
                raise UnsupportedNodeError(
                    f"to_nir: population {name!r} has a constant current; NIR writes it as "
                    "the bias of an Affine node into v, which this population "
                    + (
                        "does not have (no projection into it)."
                        if r is not None
                        else "lacks (its inputs enter a synaptic current)."
                    )
                )
            biases[name] = _flat(value, pop.n) / r

    for conn in network.connections:
        owner = f"projection {conn.pre!r} -> {conn.post!r}"
        weight, delay, present = _dense(conn)
        pre_delay, post_delay = _split_delay(delay, present, owner)
        bias = biases.pop(conn.post, np.zeros(conn.n_post))
        affine = fresh(f"{conn.pre}_to_{conn.post}")
        nodes[affine] = nir.Affine(weight=weight.T.copy(), bias=bias)
        chain = [conn.pre]
        if pre_delay is not None:
            chain.append(fresh(f"{affine}_delay_pre"))
            nodes[chain[-1]] = nir.Delay(delay=pre_delay / ms)
        chain.append(affine)
        if post_delay is not None:
            chain.append(fresh(f"{affine}_delay"))
            nodes[chain[-1]] = nir.Delay(delay=post_delay / ms)
        chain.append(conn.post)
        edges.extend(zip(chain[:-1], chain[1:]))

    if outputs is None:
        sources = {conn.pre for conn in network.connections}
        outputs = [name for name in network.populations if name not in sources]
    for name in outputs:
        if name not in network.populations:
            raise ValueError(
                f"to_nir: `outputs` names {name!r}, which is not a population "
                f"(populations: {sorted(network.populations)})."
            )
        out = fresh("output" if len(outputs) == 1 else f"{name}_output")
        nodes[out] = nir.Output(
            output_type={"output": np.array([network.populations[name].n])}
        )
        edges.append((name, out))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"source": "neurosim"})
