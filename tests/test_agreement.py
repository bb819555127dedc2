"""Path against path: random recurrent E/I networks (tests/_random_networks.py) must
give the same spikes on every path of the simulator (DESIGN.md, "Trust before speed").

Paths (`_random_networks.PATHS`): the exact loop with concrete weights (synapse lists)
compiled whole (`synapses`, the CPU default) and in its usual form (`synapses_usual`),
with `gradients=True` (`synapses_grad`); with weights traced through `jax.jit` (dense
rows, `dense`); the ODE-solver path (`ode`, `exact=False`, Tsit5 with rtol = atol =
1e-10 in float64, 1e-6 in float32). Every pair must agree: the same spikes (neuron by
neuron, in time order) at times within

- float64: 1e-9 ms between exact paths (seen: up to ~1e-11), 1e-6 ms against the ODE
  path (seen: up to ~2e-8). `synapses`, `synapses_usual` and `synapses_grad` run the
  same operations, but compiled whole or kernel by kernel XLA fuses them differently
  (a fused multiply-add rounds once), so they agree to a few ulps, not bit for bit;
- float32: 5e-3 ms for every pair (seen: up to ~1.6e-3 ms at 200 ms; a crossing with
  a small slope turns an ulp of `v` into many ulps of time), 1e-2 ms for the demo's
  1 s run (seen: up to ~5e-3 ms).

Where the spikes agree, `v` must agree too, at the record times (`t0`, where a few
neurons start above threshold and fire, three times inside the run, and `t1`) and at
the end: within 1e-10 between exact paths and 1e-7 against the ODE path in float64
(seen: 5e-14 and 2e-9), 1e-3 in float32 (seen: 2.4e-5).

`_compare.first_divergence` walks two spike lists and reports the first time they
differ. The random networks agree throughout their 200 ms (full agreement is
asserted); only the demo (1 s) may diverge, after 500 ms and after every earlier spike
agreed (amplified rounding).

CI runs 6 seeds (0-5) of the `MIXED` structure (200 neurons: a 160-neuron CubaLIF
population whose key grid has padding and a 40-neuron LIF one; exponential and delta
synapses; no delay, a scalar delay, per-synapse delays; synapse lists with padded
rows; t_ref 0-2 ms; Poisson inputs and a stepped current; ~80-1100 spikes each in
200 ms) in float64 on all 5 paths, and the demo's network (seed 0, float32, 1 s, ~7200
spikes) on `synapses`, `dense` and `ode`: 10 compiled programs (compilation dominates),
about 2.5 minutes on 2 cores. Marked slow (`pytest -m slow tests/test_agreement.py`):
the same seeds in float32 (3 paths), and 30 seeds of every structure in
`_random_networks.STRUCTURES` on all 7 paths in both precisions (long);
benchmarks/agreement.py sweeps hundreds of seeds.

On commit c1e634a (before be52174) CI fails on both bugs found there:
(1) the float32 stall of the synapse-list path (the demo stops at 746.8 ms with
status 5: `test_demo_network_float32`), and (2) the dense path's surplus spikes (extra
spikes of global neuron 160, "neuron n" of the padded 160-neuron population: seeds 2,
3, 4 of `test_random_networks_agree_float64`; seeds 2 and 4 of the float32 test, and
the demo's dense path). The rheobase case (3) is not covered here.

Also found by these networks: at one instant, a jump that puts two neurons above
threshold, one of which inhibits the other through an instantaneous delta synapse,
fired both on the ODE path and only the first on the exact path (fixed:
`test_simultaneous_crossings_by_a_jump`). Cascades through zero-delay delta synapses
(structure `delta_ties`) are fired in waves on both paths; 5 of seeds 0-5 agree, seed 5 (dense
synchronous bursts) parts at 63.6 ms (xfail in the sweep:
`benchmarks/agreement.py --structures delta_ties --seeds 6 --x64`).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _compare import first_divergence
from _random_networks import MIXED, STRUCTURES, draw, run

import neurosim as ns

SEEDS = range(6)
SLOW_SEEDS = range(6, 30)
PATHS_64 = ("synapses", "synapses_usual", "synapses_grad", "dense", "ode")
PATHS_32 = ("synapses", "dense", "ode")
BIT_FOR_BIT_64 = ()  # see the module docstring
TOLERANCE = {  # ms: (between exact paths, against the ODE path)
    "float64": (1e-9, 1e-6),
    "float32": (5e-3, 5e-3),
}
MIN_SPIKES = 50
# `v` (threshold 1) at the record times and at the end: (between exact paths, against
# the ODE path). Seen in float64: 5e-14 and 2e-9; in float32: 2.4e-5.
STATE_TOLERANCE = {"float64": (1e-10, 1e-7), "float32": (1e-3, 1e-3)}


ODE_PATHS = {"ode", "ode_usual", "ode_grad", "clocks"}
# The network clock's loop compiled whole and in its usual form take the same steps:
# they agree as closely as the exact paths do.
SAME_STEPS = {"ode", "ode_usual"}


def tolerance(precision: str, a: str, b: str) -> float:
    exact, ode = TOLERANCE[precision]
    return ode if ODE_PATHS & {a, b} and {a, b} != SAME_STEPS else exact


def compare_paths(net, paths, precision, bit_for_bit=()):
    """Runs `net` on `paths`; returns the failures (empty when every pair agrees),
    each pair's `first_divergence` result `(a, b, agreement)` and the spike counts."""
    outs = {path: run(net, path) for path in paths}
    failures, pairs = [], []
    for path, out in outs.items():
        if int(out["status"]) != 1:
            failures.append(
                f"{path}: status {int(out['status'])} at t={float(out['t_final']):.6g} ms "
                f"after {int(out['iterations'])} iterations"
            )
    counts = {path: int(out["num_spikes"]) for path, out in outs.items()}
    if min(counts.values()) < MIN_SPIKES:
        failures.append(f"too few spikes to compare: {counts}")
    for a, b in itertools.combinations(paths, 2):
        atol = tolerance(precision, a, b)
        agreement = first_divergence(
            (outs[a]["spike_times"], outs[a]["spike_neurons"]),
            (outs[b]["spike_times"], outs[b]["spike_neurons"]),
            atol=atol,
            t1=net.t1,
        )
        pairs.append((a, b, agreement))
        if not agreement.agree:
            failures.append(f"{a} vs {b} (atol {atol:g} ms): {agreement}")
            continue
        exact, ode = STATE_TOLERANCE[precision]
        state_atol = ode if ODE_PATHS & {a, b} and {a, b} != SAME_STEPS else exact
        for key in ("records", "final"):
            gap = float(np.max(np.abs(outs[a][key] - outs[b][key])))
            if not gap <= state_atol:
                failures.append(
                    f"{a} vs {b}: `v` {key} differ by {gap:.3g} > {state_atol:g}"
                )
    for a, b in itertools.combinations(bit_for_bit, 2):
        same = all(
            np.array_equal(outs[a][key], outs[b][key])
            for key in ("spike_times", "spike_neurons")
        )
        if not same:
            failures.append(f"{a} vs {b}: not bit for bit")
    return failures, pairs, counts


def _assert_agree(net, paths, precision, bit_for_bit=()):
    failures, _, _ = compare_paths(net, paths, precision, bit_for_bit)
    assert not failures, f"{net.describe()}\n" + "\n".join(failures)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_networks_agree_float64(seed, x64):
    _assert_agree(draw(seed, MIXED), PATHS_64, "float64", BIT_FOR_BIT_64)


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_random_networks_agree_on_per_neuron_clocks(seed, x64):
    """Every neuron solved alone by the ODE solver (`clocks="neuron"`, the LIF family
    without its closed form: delays, delta synapses, input spikes, stepped currents
    and refractory ends per neuron) against the closed form and the network's clock."""
    _assert_agree(draw(seed, MIXED), ("synapses", "ode", "clocks"), "float64")


@pytest.mark.parametrize("seed", SEEDS[1:3])
def test_random_networks_agree_on_per_neuron_clocks_float32(seed, float32):
    """The same in float32 against the closed form. Seed 1 held a shallow excursion
    (neuron 173, 4.4e-4 above the threshold for 1.3 ms at 40.54 ms) inside one step
    of the lean stepper, missed where the condition was read at the step's ends and
    midpoint only; it is read at the maximum of the cubic through the condition's
    values and slopes at the ends now (`neurosim._clock.Lean.crossed`)."""
    _assert_agree(draw(seed, MIXED), ("synapses", "clocks"), "float32")


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_random_networks_agree_on_the_network_clock_with_and_without_diffeqsolve(seed, x64):
    """The network clock's segments in a forward run (`neurosim._segment`: the
    solver's steps in a plain loop), its loop compiled whole (the default) and in its
    usual form, against `diffeqsolve`'s (`gradients=True`), and all against the closed
    form: spikes, records and final states."""
    paths = ("synapses", "ode", "ode_usual", "ode_grad")
    _assert_agree(draw(seed, MIXED), paths, "float64")


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_random_networks_agree_float32(seed, float32):
    """In CI, float32 is covered by the demo's network (`test_demo_network_float32`);
    these compile three more programs (about a minute)."""
    _assert_agree(draw(seed, MIXED), PATHS_32, "float32")


# Cascades at one instant through instantaneous delta synapses onto `v` (160
# neurons firing at 36.43 ms in seed 4): fired in waves on both paths since they were
# found (5 of seeds 0-5 agree), but seed 5, a dense synchronous burst regime, still
# parts at 63.6 ms. See "Simultaneous spikes" in neurosim/_per_neuron.py.
_CASCADES = pytest.mark.xfail(
    strict=False, reason="dense synchronous cascades of zero-delay delta synapses"
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "structure",
    [
        pytest.param(name, marks=_CASCADES) if name == "delta_ties" else name
        for name in sorted(STRUCTURES)
    ],
)
@pytest.mark.parametrize("x64_mode", [True, False], ids=["float64", "float32"])
def test_random_networks_agree_sweep(structure, x64_mode):
    """More structures and seeds, every path (`pytest -m slow`)."""
    from _random_networks import PATHS

    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", x64_mode)
    try:
        precision = "float64" if x64_mode else "float32"
        bit = BIT_FOR_BIT_64 if x64_mode else ()
        failures = []
        for seed in (*SEEDS, *SLOW_SEEDS):
            net = draw(seed, STRUCTURES[structure])
            found, _, _ = compare_paths(net, PATHS, precision, bit)
            if found:
                failures.append(f"{net.describe()}\n  " + "\n  ".join(found))
        assert not failures, "\n".join(failures)
    finally:
        jax.config.update("jax_enable_x64", previous)


DEMO_TOLERANCE = 1e-2  # ms, float32, 1 s
DEMO_DIVERGE_AFTER = 500.0  # ms


def test_demo_network_float32(float32):
    """The demo's network (seed 0) with concrete float32 weights, stored by their
    synapses, once stalled at 746.8 ms (status 5). It must finish and agree with the
    dense path (weights traced) and the ODE path, up to a divergence (if any) after
    500 ms that every earlier spike agreed on."""
    from neurosim._demo import T1, build, simulate_demo

    neuron, weights, inputs, input_weights, y0 = build(0)

    def demo(weights, **kwargs):
        return simulate_demo(
            neuron,
            weights,
            inputs,
            input_weights,
            y0,
            gradients=False,
            throw=False,
            **kwargs,
        )

    runs = {
        "synapses": demo(weights),
        "dense": jax.jit(demo)(weights),
        "ode": demo(weights, exact=False, rtol=1e-6, atol=1e-6),
    }
    for name, sol in runs.items():
        assert int(sol.status) == 1, (
            f"{name}: status {int(sol.status)} at t={float(sol.t_final):.6g} ms"
        )
        assert int(sol.num_spikes) > 5000
    spikes = {name: sol.spikes() for name, sol in runs.items()}
    failures = []
    for a, b in itertools.combinations(runs, 2):
        agreement = first_divergence(spikes[a], spikes[b], atol=DEMO_TOLERANCE, t1=T1)
        if not agreement.agree and agreement.divergence < DEMO_DIVERGE_AFTER:
            failures.append(f"{a} vs {b}: {agreement}")
    assert not failures, "\n".join(failures)


def test_simultaneous_crossings_by_a_jump(x64):
    """An input spike jumps `v` of neurons 0 and 1 from 0.6 to 1.1 (threshold 1);
    neuron 0 inhibits neuron 1 through a delta synapse without delay. Both paths must
    give the same spikes (found by the random networks: a delayed delta synapse E -> I
    pushing two inhibitory neurons over threshold, with instantaneous I -> I delta
    synapses)."""
    lif = ns.LIF(tau_mem=10.0)
    net = ns.Network(
        populations={"p": ns.Population(lif, 2, 0.6)},
        projections=[
            ns.Projection("drive", "p", jnp.array([[0.5, 0.5]]), target="v"),
            ns.Projection("p", "p", jnp.array([[0.0, -0.5], [0.0, 0.0]]), target="v"),
        ],
        inputs={"drive": ns.SpikeTrains(jnp.array([5.0]), jnp.array([0]), num_sources=1)},
    )
    y0 = {"p": ns.LIF(tau_mem=10.0).init_state(2)}
    y0["p"] = type(y0["p"])(
        v=jnp.full(2, 0.6), i=jnp.zeros(2), refractory=jnp.zeros(2), ref_end=jnp.zeros(2)
    )
    exact = ns.simulate(net, t1=10.0, y0=y0, exact=True, max_spikes=8)
    ode = ns.simulate(
        net, t1=10.0, y0=y0, exact=False, max_spikes=8, rtol=1e-10, atol=1e-10
    )
    agreement = first_divergence(exact.spikes(), ode.spikes(), atol=1e-9, t1=10.0)
    assert agreement.agree, str(agreement)
    # Both fire at 5 ms; neuron 1's inhibition from neuron 0 comes after its reset:
    # v = -0.5, relaxing towards 0.6 for 5 ms.
    np.testing.assert_allclose(exact.spikes()[0], [5.0, 5.0], rtol=0, atol=1e-12)
    expected = 0.6 + (np.array([0.0, -0.5]) - 0.6) * np.exp(-0.5)
    for sol in (exact, ode):
        np.testing.assert_allclose(sol.final_state["p"].v, expected, rtol=0, atol=1e-9)


def test_a_record_at_t0_is_the_state_before_neurons_above_threshold_fire():
    """Neurons that start above threshold fire at `t0`; a record at `t0` is the left
    limit there (before the spike and reset) on every path: the closed form, the
    network's clock, each neuron on its own clock in the event loop and as lanes.
    The network's clock once stored the state after the reset."""
    lif = ns.LIF(tau_mem=10.0, t_ref=2.0)
    y0 = lif.init_state(3)
    y0 = type(y0)(**{**vars(y0), "v": jnp.asarray([1.5, 0.2, 1.0])})
    options = dict(
        n=3, t0=50.0, t1=70.0, current=jnp.asarray([1.2, 1.5, 0.5]), y0=y0,
        record=jnp.asarray([50.0, 61.0]), max_spikes=50,
    )  # fmt: skip
    paths = {
        "closed form": dict(exact=True),
        "network clock": dict(exact=False),
        "own clocks, event loop": dict(exact=False, clocks="neuron"),
        "own clocks, lanes": dict(exact=False, clocks="neuron", gradients=False),
    }
    runs = {name: ns.simulate(lif, **options, **kw) for name, kw in paths.items()}
    for name, sol in runs.items():
        np.testing.assert_allclose(sol.states.v[0], y0.v, atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(sol.states.refractory[0], 0.0, err_msg=name)
        assert float(sol.spike_times[0]) == 50.0 and int(sol.spike_neurons[0]) == 0, name
        reference = runs["closed form"]
        np.testing.assert_allclose(sol.states.v[1], reference.states.v[1], atol=1e-4)
