"""Random recurrent E/I networks of the LIF family, drawn from an integer seed, for
the path-against-path tests (tests/test_agreement.py, benchmarks/agreement.py).

A network's *structure* (`Structure`: sizes, fan-outs, models, synapse kinds, delays,
run length) fixes every array shape and every static choice of the simulator, so one
compiled program serves every seed of a structure. The seed draws the values: the
connectivity (each neuron reaches `fan_out / 2` to `fan_out` targets in each
population, neuron 0 exactly `fan_out`, so the synapse lists, padded to the largest
fan-out, have the same shape for every seed), the weights, time constants,
refractory period (uniform in 0-2 ms, exactly 0 for about a quarter of the seeds), the
drive, the initial potentials, the Poisson input trains (a fixed number of slots per
source, padded with `+inf`) and a stepped current switched on and off at random times.
The parameters keep the networks active but not runaway: a few to ~50 Hz, hundreds to
thousands of spikes per run.

Two populations, `"e"` (excitatory, global indices `0..n_exc-1`) and `"i"`
(inhibitory), and one external input, `"drive"`. Recurrent projections `ee`, `ei`,
`ie`, `ii`; drive projections `de`, `di`. `draw(seed, structure)` gives a
`RandomNetwork`; `network()` builds it with concrete weights (stored by their synapses,
rows padded to `fan_out` entries), `network(arrays)` from arrays passed through
`jax.jit` (traced weights stay dense).
"""

import contextlib
import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import neurosim as ns
from neurosim import _engine, _per_neuron
from neurosim.inputs import Step, poisson_spikes

RECURRENT = ("ee", "ei", "ie", "ii")
DRIVE = ("de", "di")
_POP = {"e": "e", "i": "i", "d": "drive"}


@dataclasses.dataclass(frozen=True)
class Structure:
    """What is the same for every seed of a structure (shapes and static choices).

    - `models`: the model of `"e"` and of `"i"`: `"lif"` (`LIF`, one exponential
      synaptic current) or `"cuba"` (`CubaLIF`, separate excitatory and inhibitory
      currents).
    - `targets`: per recurrent projection (`ee, ei, ie, ii`), `"exp"` (a spike jumps
      the synaptic current, the model's `receive`) or `"delta"` (it jumps `v`:
      `Projection(..., target="v")`).
    - `delays`: per recurrent projection, None, `"scalar"` (one delay, drawn per seed
      in 0.5-2.5 ms) or `"per_synapse"` (one per synapse, from a table fixed per
      structure in 0.3-3 ms: per-synapse delays must be concrete, also where the
      weights are traced and pass through `jax.jit`).
    - `stepped`: the excitatory drive steps up and back down (`Step`, two jumps), or
      stays at its baseline (a constant current).
    """

    name: str
    # A population of more than 128 neurons whose size is not a multiple of 128 has
    # padding in the exact loop's key grid (where bugs have hidden).
    n_exc: int = 160
    n_inh: int = 40
    models: tuple = ("lif", "lif")
    targets: tuple = ("exp", "exp", "exp", "exp")
    delays: tuple = (None, None, None, None)
    fan_out: int = 20  # most recurrent targets of a neuron among the excitatory ones
    fan_out_inh: int = 10  # among the inhibitory ones
    n_inputs: int = 40
    input_fan_out: int = 12
    input_slots: int = 48  # Poisson spikes per source (padded with +inf)
    t1: float = 200.0
    max_spikes: int = 16_000
    stepped: bool = True

    @property
    def n(self) -> int:
        return self.n_exc + self.n_inh

    def sizes(self, projection: str) -> tuple[int, int]:
        size = {"e": self.n_exc, "i": self.n_inh, "d": self.n_inputs}
        return size[projection[0]], size[projection[1]]

    def describe(self) -> str:
        parts = [
            f"{p}:{t}" + (f"+{d}" if d else "")
            for p, t, d in zip(RECURRENT, self.targets, self.delays)
        ]
        return (
            f"{self.name} (n={self.n_exc}+{self.n_inh}, e={self.models[0]}, "
            f"i={self.models[1]}, {' '.join(parts)}, t1={self.t1:g} ms)"
        )


# The structure CI runs: every feature at once (a CubaLIF and a LIF population,
# exponential and delta synapses, no delay, scalar and per-synapse delays). No
# instantaneous delta synapse joins two neurons that one event can push over
# threshold at the same instant (see test_agreement's simultaneous-crossing test).
MIXED = Structure(
    "mixed",
    models=("cuba", "lif"),
    targets=("exp", "delta", "delta", "exp"),
    delays=(None, "scalar", None, "per_synapse"),
)

STRUCTURES = {
    s.name: s
    for s in (
        MIXED,
        Structure("lif_exp"),
        Structure("cuba_scalar_delay", models=("cuba", "cuba"), delays=("scalar",) * 4),
        Structure(
            "lif_delta_per_synapse_delay",
            targets=("delta",) * 4,
            delays=("per_synapse", "scalar", "per_synapse", "scalar"),
        ),
        # Delta synapses without delay within the inhibitory population: one delayed
        # E -> I spike can push two inhibitory neurons over threshold at one instant,
        # one of which inhibits the other at once (test_agreement's xfail).
        Structure(
            "delta_ties",
            models=("cuba", "lif"),
            targets=("delta",) * 4,
            delays=(None, "scalar", None, None),
        ),
        Structure("lif_exp_large", n_exc=320, n_inh=80, fan_out=32, fan_out_inh=16),
        Structure(
            "cuba_small",
            n_exc=80,
            n_inh=20,
            models=("cuba", "cuba"),
            delays=(None, "scalar", None, "scalar"),
            fan_out=10,
            fan_out_inh=5,
        ),
    )
}


@dataclasses.dataclass
class RandomNetwork:
    """One drawn network. `arrays` holds every value the seed draws (so that one
    jitted function of `arrays` serves every seed of a structure); `delay_table` the
    per-synapse delays (concrete, fixed per structure)."""

    seed: int
    structure: Structure
    params: dict  # the scalars the seed drew, for reports
    arrays: dict
    delay_table: dict

    @property
    def t1(self) -> float:
        return self.structure.t1

    def network(self, arrays=None) -> ns.Network:
        """The `Network` with `arrays` (default: the drawn, concrete values)."""
        return build(
            self.structure, self.arrays if arrays is None else arrays, self.delay_table
        )

    def y0(self, arrays=None):
        """The initial state (a dict population -> state)."""
        return initial_state(self.structure, self.arrays if arrays is None else arrays)

    def describe(self) -> str:
        items = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in self.params.items()
        )
        return f"seed {self.seed}, {self.structure.describe()}: {items}"


def _neuron(model: str, arrays, pop: str):
    common = dict(
        tau_mem=arrays[f"tau_mem_{pop}"],
        v_th=arrays[f"v_th_{pop}"],
        v_reset=arrays[f"v_reset_{pop}"],
        t_ref=arrays[f"t_ref_{pop}"],
    )
    if model == "lif":
        return ns.LIF(tau_syn=arrays[f"tau_syn_{pop}"], **common)
    return ns.CubaLIF(
        tau_exc=arrays[f"tau_exc_{pop}"], tau_inh=arrays[f"tau_inh_{pop}"], **common
    )


def build(structure: Structure, arrays, delay_table) -> ns.Network:
    """The network of `structure` with the values `arrays` (concrete or traced)."""
    s = structure
    current = arrays["drive_e"]
    if s.stepped:
        current = Step(
            arrays["t_on"], arrays["step_e"], t_off=arrays["t_off"], baseline=current
        )
    populations = {
        "e": ns.Population(_neuron(s.models[0], arrays, "e"), s.n_exc, current),
        "i": ns.Population(_neuron(s.models[1], arrays, "i"), s.n_inh, arrays["drive_i"]),
    }
    projections = []
    for name, target, delay in zip(RECURRENT, s.targets, s.delays):
        if delay == "scalar":
            delay = arrays[f"delay_{name}"]
        elif delay == "per_synapse":
            delay = delay_table[name]
        projections.append(
            ns.Projection(
                _POP[name[0]],
                _POP[name[1]],
                arrays[f"w_{name}"],
                delay=delay,
                target="v" if target == "delta" else None,
            )
        )
    for name in DRIVE:
        projections.append(ns.Projection("drive", _POP[name[1]], arrays[f"w_{name}"]))
    inputs = {
        "drive": ns.SpikeTrains(
            arrays["input_times"], arrays["input_sources"], num_sources=s.n_inputs
        )
    }
    return ns.Network(populations, projections, inputs)


def scale_tau_mem(network: ns.Network, scale) -> ns.Network:
    """`network` with the membrane time constants of both populations times `scale`
    (a derivative with respect to `scale` where the weights stay concrete, stored by
    their synapses)."""
    return eqx.tree_at(
        lambda m: (m.populations["e"].neuron.tau_mem, m.populations["i"].neuron.tau_mem),
        network,
        replace_fn=lambda tau: tau * scale,
    )


def initial_state(structure: Structure, arrays):
    state = {}
    for pop, model, n in zip("ei", structure.models, (structure.n_exc, structure.n_inh)):
        y = _neuron(model, arrays, pop).init_state(n)
        state[pop] = eqx.tree_at(lambda s: s.v, y, arrays[f"v0_{pop}"])
    return state


def _fan_out(rng, n_pre, n_post, k, no_self):
    """A boolean (n_pre, n_post) mask with `k // 2` to `k` targets per row, exactly `k`
    in row 0: rows stored by their synapses are padded to `k` entries, for every
    seed."""
    mask = np.zeros((n_pre, n_post), bool)
    for row in range(n_pre):
        choices = np.arange(n_post)
        if no_self:
            choices = choices[choices != row]
        size = k if row == 0 else rng.integers(k // 2, k + 1)
        mask[row, rng.choice(choices, size=size, replace=False)] = True
    return mask


def _delay_table(structure: Structure) -> dict:
    """The per-synapse delays (ms) of a structure (see `Structure`)."""
    rng = np.random.default_rng(12345)
    return {
        name: rng.uniform(0.3, 3.0, structure.sizes(name))
        for name, delay in zip(RECURRENT, structure.delays)
        if delay == "per_synapse"
    }


def draw(seed: int, structure: Structure) -> RandomNetwork:
    """The network of `structure` drawn from `seed`, in the current default float
    precision (float64 when `jax_enable_x64` is on). The values are drawn in float64
    (the Poisson trains by `poisson_spikes` in the default precision) and rounded."""
    s = structure
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    rng = np.random.default_rng([seed, 7919])
    p, a = {}, {}
    p["tau_mem"] = float(rng.uniform(10.0, 20.0))
    p["t_ref"] = 0.0 if rng.random() < 0.25 else float(rng.uniform(0.0, 2.0))
    sizes = {"e": s.n_exc, "i": s.n_inh}
    for pop, n in sizes.items():
        a[f"tau_mem_{pop}"] = p["tau_mem"] * rng.uniform(0.9, 1.1, n)
        a[f"t_ref_{pop}"] = np.full(n, p["t_ref"])
        a[f"v_th_{pop}"] = np.ones(n)
        a[f"v_reset_{pop}"] = np.zeros(n)
        a[f"tau_syn_{pop}"] = rng.uniform(2.0, 8.0, n)
        a[f"tau_exc_{pop}"] = rng.uniform(2.0, 6.0, n)
        a[f"tau_inh_{pop}"] = rng.uniform(5.0, 12.0, n)
        # A few neurons start above threshold: they fire at t0.
        a[f"v0_{pop}"] = rng.uniform(0.0, 1.05, n)
    # Recurrent weights: up to `fan_out` targets per presynaptic neuron; a delta
    # synapse jumps v by about a third of an exponential one's peak effect.
    p["w_exc"] = float(rng.uniform(0.08, 0.2))
    p["g"] = float(rng.uniform(3.0, 5.0))
    fan = {"e": s.fan_out, "i": s.fan_out_inh}
    for name, target in zip(RECURRENT, s.targets):
        n_pre, n_post = s.sizes(name)
        mask = _fan_out(rng, n_pre, n_post, fan[name[1]], name[0] == name[1])
        scale = p["w_exc"] if name[0] == "e" else -p["g"] * p["w_exc"]
        if target == "delta":
            scale = 0.4 * scale
        a[f"w_{name}"] = np.where(mask, scale * rng.uniform(0.5, 1.5, mask.shape), 0.0)
        a[f"delay_{name}"] = np.asarray(rng.uniform(0.5, 2.5))
    # Drive: Poisson input spikes and currents (a step on the excitatory population).
    p["input_rate"] = float(rng.uniform(10.0, 25.0))
    p["w_in"] = float(rng.uniform(0.3, 0.6))
    for name in DRIVE:
        n_pre, n_post = s.sizes(name)
        k = min(s.input_fan_out, n_post // 2)
        mask = _fan_out(rng, n_pre, n_post, k, False)
        a[f"w_{name}"] = np.where(mask, p["w_in"] * rng.uniform(0.5, 1.5, mask.shape), 0.0)
    p["drive"] = float(rng.uniform(0.6, 0.95))
    p["step"] = float(rng.uniform(0.1, 0.4))
    a["drive_e"] = p["drive"] + 0.1 * rng.uniform(-1.0, 1.0, s.n_exc)
    a["drive_i"] = p["drive"] + 0.1 * rng.uniform(-1.0, 1.0, s.n_inh)
    a["step_e"] = a["drive_e"] + p["step"] * rng.uniform(0.5, 1.5, s.n_exc)
    p["t_on"] = float(rng.uniform(0.1, 0.4) * s.t1)
    p["t_off"] = float(rng.uniform(0.6, 0.9) * s.t1)
    a["t_on"], a["t_off"] = np.asarray(p["t_on"]), np.asarray(p["t_off"])
    times, sources = poisson_spikes(
        jax.random.PRNGKey(seed),
        p["input_rate"],
        num_sources=s.n_inputs,
        t1=s.t1,
        max_per_source=s.input_slots,
    )
    a["input_times"] = np.asarray(times)
    a["input_sources"] = np.asarray(sources)
    arrays = {
        key: jnp.asarray(value, jnp.int32 if np.asarray(value).dtype.kind == "i" else dtype)
        for key, value in a.items()
    }
    delays = {k: np.asarray(v, np.dtype(dtype)) for k, v in _delay_table(s).items()}
    return RandomNetwork(seed, s, p, arrays, delays)


# ----- the paths ------------------------------------------------------------------

PATHS = (
    "synapses",  # concrete weights (synapse lists), exact loop compiled whole (CPU)
    "synapses_usual",  # the same, the exact loop in its usual form (kernel per op)
    "synapses_grad",  # concrete weights, gradients=True (checkpointed loop)
    "dense",  # weights traced through jax.jit (dense rows), compiled whole
    "dense_usual",  # traced weights, usual form
    "dense_grad",  # traced weights, gradients=True
    "ode",  # the ODE-solver path, exact=False (Tsit5, rtol = atol = ODE_TOL), compiled whole
    "ode_usual",  # the same, the network clock's loop in its usual form
    "ode_grad",  # the same, gradients=True (each segment a diffeqsolve)
    "clocks",  # each neuron solved alone, exact=False, clocks="neuron" (ODE_TOL)
)
ODE_TOL = {"float32": 1e-6, "float64": 1e-10}


def precision() -> str:
    return "float64" if jax.config.jax_enable_x64 else "float32"


@contextlib.contextmanager
def loop_form(whole: bool):
    """Trace the event loops (the exact loop and the network clock's) compiled whole
    (True, the CPU default) or in their usual form (False), as tests/test_cpu.py does:
    patches `compiles_whole` of `_per_neuron` and `_engine`, and checks through their
    `one_kernel` that the usual form is not compiled whole."""
    calls = []
    modules = (_per_neuron, _engine)
    saved = [(m.compiles_whole, m.one_kernel) for m in modules]

    for module, (compiles, kernel) in zip(modules, saved):

        def spy(fn, kernel=kernel):
            calls.append(fn)
            return kernel(fn)

        module.compiles_whole = lambda compiles=compiles: whole and compiles()
        module.one_kernel = spy
    try:
        yield
    finally:
        for module, (compiles, kernel) in zip(modules, saved):
            module.compiles_whole, module.one_kernel = compiles, kernel
    if not whole:
        assert not calls, "the usual form of the loop was compiled whole"


def _kwargs(structure: Structure, path: str) -> dict:
    """`simulate`'s arguments for `path`. The usual form gets its own
    `max_iterations` (a static argument): its trace is then never one cached for the
    other form."""
    kwargs = dict(
        t1=structure.t1,
        max_spikes=structure.max_spikes,
        gradients=path.endswith("_grad"),
        throw=False,
        record=record_times(structure),
    )
    if path in ("ode", "ode_usual", "ode_grad", "clocks"):
        tol = ODE_TOL[precision()]
        clocks = "neuron" if path == "clocks" else "network"
        kwargs = dict(kwargs, exact=False, clocks=clocks, rtol=tol, atol=tol)
        if path == "ode_usual":  # a static argument of its own: a trace of its own
            kwargs["max_iterations"] = 1_000_001
        return kwargs
    iterations = 8 * structure.max_spikes + 2 * structure.n_inputs * structure.input_slots
    iterations += 200_000 + (1 if path.endswith("_usual") else 0)
    return dict(kwargs, exact=True, max_iterations=iterations)


@functools.cache
def _dense_runner(structure: Structure, path: str, delay_key):
    """One jitted function of a network's `arrays` per structure and path: the
    weights (and every other drawn value) are traced."""
    delay_table = {name: frozen.array for name, frozen in delay_key}

    @jax.jit
    def run(arrays):
        # Under jit (JAX >= 0.7?) `jnp.asarray` of a numpy array gives a tracer, which
        # `Projection` refuses as a per-synapse delay: evaluate those concretely.
        with jax.ensure_compile_time_eval():
            network = build(structure, arrays, delay_table)
        sol = ns.simulate(
            network, y0=initial_state(structure, arrays), **_kwargs(structure, path)
        )
        return _spikes_only(sol)

    return run


def record_times(structure: Structure):
    """The record times of every run: `t0` (neurons above threshold fire there; the
    record is the state before), three inside the run, and `t1`."""
    fractions = np.asarray([0.0, 0.2, 0.5, 0.77, 1.0])
    return jnp.asarray(
        fractions * structure.t1 + np.asarray([0, 0.0123, 0.0456, 0.0789, 0])
    )


def _spikes_only(sol):
    """The spikes, status and counts, and `v` of every neuron (populations in order) at
    the record times and at the end."""
    names = sorted(sol.states)
    return dict(
        spike_times=sol.spike_times,
        spike_neurons=sol.spike_neurons,
        num_spikes=sol.num_spikes,
        status=sol.status,
        t_final=sol.t_final,
        iterations=sol.iterations,
        records=jnp.concatenate([sol.states[name].v for name in names], axis=1),
        final=jnp.concatenate([sol.final_state[name].v for name in names]),
    )


def run(net: RandomNetwork, path: str) -> dict:
    """Simulate `net` along `path` (one of `PATHS`); returns numpy arrays
    `spike_times`, `spike_neurons` (the first `num_spikes`), `num_spikes`, `status`
    (1: finished), `t_final`, `iterations`."""
    s = net.structure
    with loop_form(whole=not path.endswith("_usual")):
        if path.startswith("dense"):
            key = tuple(sorted((k, _Frozen(v)) for k, v in net.delay_table.items()))
            out = _dense_runner(s, path, key)(net.arrays)
        else:
            out = _spikes_only(ns.simulate(net.network(), y0=net.y0(), **_kwargs(s, path)))
    out = {k: np.asarray(v) for k, v in out.items()}
    count = int(out["num_spikes"])
    out["spike_times"] = out["spike_times"][:count]
    out["spike_neurons"] = out["spike_neurons"][:count]
    return out


class _Frozen:
    """A concrete array as part of a cache key: equal when the arrays are equal."""

    def __init__(self, array):
        self.array = np.asarray(array)
        self._hash = hash((self.array.shape, self.array.dtype.str, self.array.tobytes()))

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return isinstance(other, _Frozen) and np.array_equal(self.array, other.array)

    def __lt__(self, other):
        return False
