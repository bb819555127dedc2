"""Per-neuron clocks for models without a closed form (`simulate(..., clocks="neuron")`,
neurosim/_clock.py): each neuron solved alone inside the exact event loop.

- Every model of the zoo, in a sparse random recurrent population, gives the same
  spikes on its own clock (float64, rtol = atol = 1e-10) as the network's clock
  (`clocks="network"`, one solve of all neurons, stopped at every spike) at 1e-13:
  same neurons in the same order, times within 5e-5 ms. Seen: AdEx 5.5e-6 ms and
  EIF 2.0e-5 ms (a first spike near the saddle-node is sensitive), where the network
  clock at 1e-10 is 7.2e-5 and 1.4e-4 ms off the same reference; 1e-8 to 6e-7 ms for
  the others.
- A neuron that receives nothing takes the same solver steps whatever the rest of the
  network does (on the network's clock every spike anywhere stops its solve).
- Gradients through the per-neuron solves match central finite differences
  (Izhikevich, a small recurrent network), and the forward-only run (the lean
  stepper) gives the same spikes as the differentiable one (diffrax's solves).
- Bad arguments are refused by name.

Random E/I networks with delays, delta synapses, input spikes and stepped currents,
solved per neuron (the LIF family without its closed form), are compared with the
other paths in tests/test_agreement.py.
"""

import functools

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _compare import first_divergence

import neurosim as ns
from neurosim import _clock

TIGHT = dict(rtol=1e-10, atol=1e-10)
# `_clock`'s trace-time switches (set by `clock_flags`) at their defaults.
CLOCK_DEFAULTS = {
    name: getattr(_clock, name)
    for name in ("LAZY_CHANGES", "PROPAGATE", "NARROW_CHECKS", "START_WITH_CHECKS")
}
REFERENCE_TOL = 1e-13


@pytest.fixture
def clock_flags():
    """A setter of `_clock`'s trace-time switches (`PROPAGATE`, `LAZY_CHANGES`, ...).
    JAX's compiled programs are dropped when a switch changes, and again at the end
    if any did (they were traced with other values); runs that read none of them keep
    theirs in between."""
    defaults = {}

    def set_flags(**flags):
        changed = False
        for name, value in flags.items():
            defaults.setdefault(name, getattr(_clock, name))
            changed |= getattr(_clock, name) != value
            setattr(_clock, name, value)
        if changed:
            jax.clear_caches()

    yield set_flags
    if any(getattr(_clock, name) != value for name, value in defaults.items()):
        set_flags(**defaults)


N, T1 = 80, 80.0

# Each model with a drive (`current`, times a uniform 0.6-1.2 per neuron) and a weight
# scale (weights N(w, w) on 5% of the pairs) that keep it firing.
ZOO = {
    "Izhikevich": (lambda: ns.Izhikevich(), 10.0, 3.0),
    "AdEx": (lambda: ns.AdEx(), 25.0, 5.0),
    "EIF": (lambda: ns.EIF(), 20.0, 5.0),
    "CobaLIF": (lambda: ns.CobaLIF(), 15.0, 0.3),
    "AdaptiveCurrent": (
        lambda: ns.AdaptiveCurrent(
            ns.LIF(),
            tau_adapt=jnp.array([100.0, 20.0]),
            voltage_coupling=0.0,
            spike_increment=0.1,
        ),
        2.0,
        0.3,
    ),
    "SpikeAdaptiveThreshold": (
        lambda: ns.SpikeAdaptiveThreshold(ns.LIF(), tau_adapt=50.0, spike_increment=0.2),
        2.0,
        0.3,
    ),
    "VoltageAdaptiveThreshold": (
        lambda: ns.VoltageAdaptiveThreshold(ns.LIF(), adapt_rate=0.02, rebound_rate=0.05),
        2.0,
        0.3,
    ),
    "Refractory": (lambda: ns.Refractory(ns.Izhikevich(), t_ref=2.0), 10.0, 3.0),
}
# In CI: a wrapper whose state has an (n, K) field (refractoriness, a scheduled
# change, is covered by the random networks of tests/test_agreement.py). The rest:
# `pytest -m slow`.
FAST = ("AdaptiveCurrent",)


def _population(name, seed=0):
    make, drive, w = ZOO[name]
    rng = np.random.default_rng(seed)
    current = drive * rng.uniform(0.6, 1.2, N)
    weights = (rng.random((N, N)) < 0.05) * rng.normal(w, w, (N, N))
    return make(), current, weights


@pytest.mark.parametrize(
    "name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in ZOO]
)
def test_every_model_gives_the_same_spikes_on_its_own_clock(name, x64):
    model, current, weights = _population(name)
    spikes = {}
    for clocks, tol in (("network", REFERENCE_TOL), ("neuron", TIGHT["rtol"])):
        sol = ns.simulate(
            model,
            n=N,
            t1=T1,
            current=current,
            weights=weights,
            clocks=clocks,
            max_spikes=4000,
            gradients=False,
            rtol=tol,
            atol=tol,
        )
        assert int(sol.status) == 1
        spikes[clocks] = sol.spikes()
    assert len(spikes["neuron"][0]) >= 100
    agreement = first_divergence(spikes["network"], spikes["neuron"], atol=5e-5, t1=T1)
    assert agreement.agree, str(agreement)


def test_a_neuron_that_receives_nothing_takes_the_same_steps_whatever_the_others_do(x64):
    """Neuron 0 fires on its own (or not) and receives no synapse; neurons 1.. form a
    recurrent population that is busy or silent. On per-neuron clocks the steps of
    neuron 0 (the difference its drive makes to the run's total) are the same in both
    cases; on the network's clock they are not."""
    n = 40
    rng = np.random.default_rng(1)
    weights = (rng.random((n, n)) < 0.1) * rng.normal(2.0, 1.0, (n, n))
    weights[:, 0] = 0.0
    weights[0, :] = 0.0
    busy = 10.0 * rng.uniform(0.8, 1.2, n)
    model = ns.Izhikevich()

    def steps(clocks, alone, others):
        current = np.where(np.arange(n) == 0, alone, others)
        sol = ns.simulate(
            model,
            n=n,
            t1=100.0,
            current=current,
            weights=weights,
            clocks=clocks,
            max_spikes=4000,
            gradients=False,
            **TIGHT,
        )
        assert int(sol.status) == 1
        return int(sol.solver_steps), int(sol.num_spikes)

    own = {}
    for others, label in ((busy, "busy"), (np.zeros(n), "silent")):
        firing, spikes = steps("neuron", 10.0, others)
        quiet, _ = steps("neuron", 0.0, others)
        own[label] = firing - quiet
        if label == "busy":
            assert spikes > 100
    assert own["busy"] == own["silent"] > 0
    firing, _ = steps("network", 10.0, busy)
    quiet, _ = steps("network", 0.0, busy)
    alone, _ = steps("network", 10.0, np.zeros(n))
    silent, _ = steps("network", 0.0, np.zeros(n))
    assert firing - quiet != alone - silent


def _izhikevich_net(scale, gradients=True):
    rng = np.random.default_rng(3)
    n = 4
    weights = jnp.asarray(rng.uniform(2.0, 6.0, (n, n)) * (1 - np.eye(n))) * scale
    current = jnp.asarray([14.0, 12.0, 10.0, 8.0])
    sol = ns.simulate(
        ns.Izhikevich(),
        n=n,
        t1=50.0,
        current=current,
        weights=weights,
        clocks="neuron",
        max_spikes=64,
        gradients=gradients,
        **TIGHT,
    )
    times = jnp.where(jnp.arange(64) < sol.num_spikes, sol.spike_times, 0.0)
    return jnp.sum(times), sol


def test_gradients_through_per_neuron_solves_match_finite_differences(x64):
    (value, sol), grad = jax.value_and_grad(_izhikevich_net, has_aux=True)(1.0)
    assert int(sol.num_spikes) >= 8
    h = 1e-6
    up, s_up = _izhikevich_net(1.0 + h)
    down, s_down = _izhikevich_net(1.0 - h)
    assert int(s_up.num_spikes) == int(s_down.num_spikes) == int(sol.num_spikes)
    fd = (float(up) - float(down)) / (2 * h)
    assert abs(fd) > 1.0
    np.testing.assert_allclose(float(grad), fd, rtol=1e-4)
    # The forward-only run (the lean stepper) gives the same spikes.
    _, forward = _izhikevich_net(1.0, gradients=False)
    assert int(forward.num_spikes) == int(sol.num_spikes)
    np.testing.assert_array_equal(forward.spike_neurons, sol.spike_neurons)
    np.testing.assert_allclose(forward.spike_times, sol.spike_times, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(clocks="each"), "clocks"),
        (dict(clocks="neuron", locate_spikes=False), "locate_spikes"),
        (dict(clocks="neuron", solver=None, dt0=0.1, stepsize_controller=None), None),
    ],
)
def test_bad_clock_arguments_are_refused_by_name(kwargs, match):
    if match is None:
        import diffrax as dfx

        kwargs = dict(kwargs, solver=dfx.Euler())
        match = "clocks"
    with pytest.raises(ValueError, match=match):
        ns.simulate(ns.Izhikevich(), n=2, t1=10.0, current=10.0, **kwargs)


def test_the_lif_family_keeps_its_closed_form_on_per_neuron_clocks():
    """`clocks="neuron"` on a LIF network is the exact loop itself (the closed form
    already runs per neuron): the same spikes, bit for bit, and the same gradient."""
    rng = np.random.default_rng(2)
    weights = jnp.asarray((rng.random((20, 20)) < 0.2) * rng.normal(0.3, 0.2, (20, 20)))
    current = jnp.asarray(rng.uniform(1.1, 1.6, 20))

    def run(scale, **kwargs):
        sol = ns.simulate(
            ns.LIF(tau_mem=10.0, tau_syn=5.0),
            n=20,
            t1=50.0,
            current=current,
            weights=weights * scale,
            max_spikes=256,
            **kwargs,
        )
        return jnp.sum(jnp.where(jnp.isfinite(sol.spike_times), sol.spike_times, 0.0)), sol

    (value, own), grad = jax.value_and_grad(run, has_aux=True)(1.0, clocks="neuron")
    (expected, exact), expected_grad = jax.value_and_grad(run, has_aux=True)(1.0)
    assert int(own.num_spikes) == int(exact.num_spikes) >= 20
    np.testing.assert_array_equal(own.spike_times, exact.spike_times)
    np.testing.assert_array_equal(own.spike_neurons, exact.spike_neurons)
    assert float(grad) == float(expected_grad) != 0.0


def test_models_that_disarm_run_on_the_network_clock_only():
    with pytest.raises(ValueError, match="disarms"):
        ns.simulate(ns.Boomerang(), n=2, t1=10.0, clocks="neuron")


class _WaveState(eqx.Module):
    v: jax.Array
    w: jax.Array


class _Wave(ns.AbstractNeuron):
    """v = sin(t) (a harmonic oscillator), firing where v rises above `v_th`."""

    v_th: jax.Array = ns.parameter(0.999)

    def init_state(self, n):
        return _WaveState(v=jnp.zeros((n,)), w=jnp.ones((n,)))

    def dynamics(self, t, s, current):
        return _WaveState(v=s.w, w=-s.v)

    def spike_condition(self, t, s, current):
        return s.v - self.v_th

    def reset(self, t, s, fired):
        return _WaveState(v=jnp.where(fired, 0.0, s.v), w=jnp.where(fired, 0.0, s.w))

    def receive(self, s, x):
        return s


def _sine_step(v_th, t_a, t_b):
    """One step of the lean stepper over `[t_a, t_b]` of v = sin(t) (a `_Wave` with
    threshold `v_th`, Tsit5 at 1e-10; local times from t_abs = 0): the stepper, its
    arguments, the step's start and end and what they hold."""
    neuron = _Wave(v_th=v_th)
    clock = _clock.OdeClock(
        dfx.Tsit5(), dfx.PIDController(rtol=1e-10, atol=1e-10), 64, 20.0
    )
    lean = _clock.Lean(clock, neuron, _clock.per_neuron_mask(neuron, 1), jnp.float64)
    t_a, t_b = jnp.asarray([t_a]), jnp.asarray([t_b])
    y_a = _WaveState(v=jnp.sin(t_a), w=jnp.cos(t_a))
    current, t_abs = jnp.zeros((1,)), jnp.zeros((1,))
    state, f_a = lean.init(current, t_abs, y_a, t_b - t_a)
    y_b, _, dense, state_b = lean.step(current, t_abs, t_a, t_b, y_a, state)
    c_a = lean.condition(current, t_abs, t_a, y_a)
    c_b = lean.condition(current, t_abs, t_b, y_b)
    assert float(c_a[0]) < 0 and float(c_b[0]) < 0
    return dict(
        lean=lean, current=current, t_abs=t_abs, t_a=t_a, t_b=t_b, y_a=y_a, f_a=f_a,
        state=state, y_b=y_b, state_b=state_b, dense=dense, c_a=c_a, c_b=c_b,
    )  # fmt: skip


def _crossed(step, *slopes):
    """`Lean.crossed` on `_sine_step`'s step (with the ends' slopes, if given)."""
    s = step
    return s["lean"].crossed(
        s["current"], s["t_abs"], s["t_a"], s["t_b"], s["c_a"], s["c_b"], s["dense"],
        jnp.asarray([True]), *slopes,
    )  # fmt: skip


def _located(step, crossed, t_hi):
    """The crossing located inside `_sine_step`'s step (bracket end `t_hi`)."""
    s = step
    root, _ = s["lean"].crossing(
        s["current"], s["t_abs"], s["t_a"], s["t_b"], s["c_a"], s["y_a"], s["state"],
        s["dense"], crossed, t_hi=t_hi,
    )  # fmt: skip
    return float(root[0])


@pytest.mark.parametrize("interior", [True, False], ids=["midpoint", "ends-only"])
def test_a_graze_inside_one_step_is_found_at_its_crossing(interior, monkeypatch, x64):
    """A step of the lean stepper over [pi/2 - 0.1, pi/2 + 0.1] of v = sin(t), with
    v_th = 0.999: the condition is below 0 at both ends (cos 0.1 = 0.995) and above
    it in between (the bump lasts 0.089). Read at the midpoint too, the step holds a
    crossing, located at arcsin(0.999); read at its ends only (as before), the spike
    would be missed."""
    if not interior:
        monkeypatch.setattr(_clock, "INTERIOR", ())
    s = _sine_step(0.999, np.pi / 2 - 0.1, np.pi / 2 + 0.1)
    crossed, t_hi = _crossed(s)
    assert bool(crossed[0]) is interior
    if interior:
        np.testing.assert_allclose(_located(s, crossed, t_hi), np.arcsin(0.999), atol=1e-8)


@pytest.mark.parametrize("slopes", [True, False], ids=["cubic", "midpoint"])
def test_an_off_centre_graze_is_read_at_the_cubics_maximum(slopes, x64):
    """v = sin(t) over one step [pi/2 - 0.06, pi/2 + 0.14], v_th = 0.9995: below the
    threshold at both ends (cos 0.06, cos 0.14) and at the midpoint (cos 0.04 =
    0.9992), above it for 0.063 around pi/2, 30% into the step. With the condition's
    slopes at the step's ends, it is read at the maximum of the cubic through the
    ends' values and slopes (within 6e-5 of pi/2): the step holds a crossing, located
    at arcsin(0.9995). Read at the midpoint (as before), the spike would be missed."""
    s = _sine_step(0.9995, np.pi / 2 - 0.06, np.pi / 2 + 0.14)
    lean, current, t_abs = s["lean"], s["current"], s["t_abs"]
    # The slopes: the derivative of sin at the ends (from the state's derivative at
    # the start, the solver's last stage at the end).
    m_a = lean.slope(current, t_abs, s["t_a"], s["y_a"], s["f_a"])
    m_b = lean.end_slope(current, t_abs, s["t_b"], s["y_b"], s["state_b"])
    np.testing.assert_allclose(
        [float(m_a[0]), float(m_b[0])], np.cos([float(s["t_a"][0]), float(s["t_b"][0])])
    )
    slope_args = (m_a, m_b) if slopes else ()
    crossed, t_hi = _crossed(s, *slope_args)
    assert bool(crossed[0]) is slopes
    if slopes:
        assert abs(float(t_hi[0]) - np.pi / 2) < 6e-5
        np.testing.assert_allclose(_located(s, crossed, t_hi), np.arcsin(0.9995), atol=1e-8)


def test_the_default_takes_per_neuron_clocks_for_sparse_networks_in_forward_runs():
    """`clocks=None` takes per-neuron clocks for a forward run of a network with more
    than 50 neurons per target of a spike (120 Izhikevich neurons in a ring, each
    reaching its 2 neighbours: the same steps and spikes as `clocks="neuron"`), and
    the network's clock where a spike reaches every neuron, or for a
    differentiable run."""
    n = 120
    ring = np.zeros((n, n))
    for i in range(n):
        ring[i, (i + 1) % n] = ring[i, (i - 1) % n] = 4.0
    drive = jnp.linspace(8.0, 12.0, n)

    def network(weights):
        return ns.Network(
            populations={"a": ns.Population(ns.Izhikevich(), n, drive)},
            projections=[ns.Projection("a", "a", jnp.asarray(weights))],
        )

    def run(net, clocks, gradients=False):
        sol = ns.simulate(net, t1=30.0, clocks=clocks, max_spikes=2000, gradients=gradients)
        return int(sol.num_spikes), int(sol.solver_steps), np.asarray(sol.spike_times)

    sparse, dense = network(ring), network(np.full((n, n), 0.02))
    default, own, shared = (run(sparse, c) for c in (None, "neuron", "network"))
    assert default[0] > 20 and default[1] == own[1] != shared[1]
    np.testing.assert_array_equal(default[2], own[2])
    assert run(dense, None)[1] == run(dense, "network")[1]
    assert run(sparse, None, gradients=True)[1] == run(sparse, "network", True)[1]


class _NoQuietTime(ns.CobaLIF):
    """`CobaLIF` without its quiet time (integrated ahead after every touch)."""

    def quiet_time(self, t, state, current):
        return None


class _AllIntegrated(ns.CobaLIF):
    """`CobaLIF` with its refractory fields integrated (as fields that move)."""

    constant_fields = ()


def test_quiet_times_skip_solves_and_change_no_spike(clock_flags, x64):
    """The COBA network (`brette_coba`, 150 neurons, weights scaled to its size) on
    per-neuron clocks: with `CobaLIF.quiet_time` a neuron is integrated ahead only
    when it can fire before its next input. The spikes are those of the run without
    quiet times and of the network's clock at 1e-13 (same neurons in the same order,
    within 5e-5 ms), and the solver steps are fewer. Leaving the constant fields out
    of the solves (`constant_fields`) changes neither spikes nor steps. Bringing the
    targets of a spike to its time by solves instead of `CobaLIF.propagate` changes
    no spike either (within 5e-5 ms)."""
    n = 150
    net, y0 = ns.networks.brette_coba(2, n=n, we=0.6 * 4000 / n, wi=6.7 * 4000 / n)
    plain, moving = (
        eqx.tree_at(lambda m: m.populations["coba"].neuron, net, neuron)
        for neuron in (_NoQuietTime(), _AllIntegrated())
    )
    runs = {}
    for label, model, clocks, tol in (
        ("quiet", net, "neuron", TIGHT["rtol"]),
        ("moving", moving, "neuron", TIGHT["rtol"]),
        ("plain", plain, "neuron", TIGHT["rtol"]),
        ("network", net, "network", REFERENCE_TOL),
        ("solved", net, "neuron", TIGHT["rtol"]),
    ):
        clock_flags(PROPAGATE=label != "solved")
        sol = ns.simulate(
            model, y0=y0, t1=60.0, clocks=clocks, max_spikes=4000, gradients=False,
            rtol=tol, atol=tol,
        )  # fmt: skip
        assert int(sol.status) == 1
        runs[label] = (sol.spikes(), int(sol.solver_steps))
    assert len(runs["quiet"][0][0]) >= 100
    np.testing.assert_allclose(runs["moving"][0][0], runs["quiet"][0][0], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(runs["moving"][0][1], runs["quiet"][0][1])
    assert abs(runs["moving"][1] - runs["quiet"][1]) <= 0.001 * runs["quiet"][1]
    for other in ("plain", "network", "solved"):
        agreement = first_divergence(runs[other][0], runs["quiet"][0], atol=5e-5, t1=60.0)
        assert agreement.agree, (other, str(agreement))
    assert runs["quiet"][1] < 0.5 * runs["plain"][1], (runs["quiet"][1], runs["plain"][1])


def _small_coba():
    """COBA (`brette_coba`, 100 neurons, weights scaled to its size) on per-neuron
    clocks, 40 ms: `(y0, run)`, `run(y0)` a forward run from the states `y0`."""
    n = 100
    net, y0 = ns.networks.brette_coba(3, n=n, we=0.6 * 4000 / n, wi=6.7 * 4000 / n)

    def run(y0):
        return ns.simulate(
            net, y0=y0, t1=40.0, clocks="neuron", max_spikes=2000, gradients=False,
            **TIGHT,
        )  # fmt: skip

    return y0, run


@functools.cache
def _small_coba_defaults():
    """`_small_coba` with `_clock`'s switches at their defaults (the two tests below
    share these runs, so that their programs are compiled once): `(y0, run, runs)`,
    `runs` the solutions from `y0` and from `y0` with the neurons' states swapped,
    each alone, and of the batch of the two under `jax.vmap`."""
    for name, value in CLOCK_DEFAULTS.items():
        assert getattr(_clock, name) == value, f"{name} is not at its default"
    y0, run = _small_coba()
    other = jax.tree_util.tree_map(lambda x: x[::-1], y0)
    batch = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), y0, other)
    return y0, run, (run(y0), run(other), jax.vmap(run)(batch))


def _assert_batch_equals_runs(batched, runs):
    """Each run of a `jax.vmap` batch equals its run alone (spikes within 1e-9 ms)."""
    for i, single in enumerate(runs):
        assert int(batched.num_spikes[i]) == int(single.num_spikes)
        np.testing.assert_array_equal(batched.spike_neurons[i], single.spike_neurons)
        np.testing.assert_allclose(
            batched.spike_times[i], single.spike_times, rtol=0, atol=1e-9
        )


def test_checks_on_their_neuron_alone_change_nothing(clock_flags, x64):
    """Forward runs take a check (a key that is not a spike) in a branch that works on
    the checked neuron alone (`NARROW_CHECKS`). COBA (`brette_coba`, 100 neurons) on
    per-neuron clocks: the same spikes (within 1e-9 ms), iterations and final states
    as with every lane worked on; under `jax.vmap` (two initial states, where runs of
    the batch are in a check at different iterations) each run equals its own."""
    y0, run, (narrow, narrow_other, batched) = _small_coba_defaults()
    clock_flags(NARROW_CHECKS=False)
    wide = run(y0)
    assert int(narrow.num_spikes) >= 40
    assert int(narrow.iterations) > int(narrow.num_spikes) + 20  # checks were taken
    assert int(narrow.iterations) == int(wide.iterations)
    np.testing.assert_array_equal(narrow.spike_neurons, wide.spike_neurons)
    np.testing.assert_allclose(narrow.spike_times, wide.spike_times, rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        narrow.final_state["coba"].v, wide.final_state["coba"].v, rtol=0, atol=1e-9
    )
    _assert_batch_equals_runs(batched, (narrow, narrow_other))


def test_neurons_solved_per_neuron_start_with_checks(clock_flags, x64):
    """Forward runs on per-neuron clocks start each neuron with a check due at t0
    (`START_WITH_CHECKS`), not a prediction of the whole population: the same spikes
    (within 1e-9 ms) and final states (relative 1e-9) as predicted at the start, in
    one more iteration per neuron (or fewer). COBA (`brette_coba`, 100 neurons), alone
    and under `jax.vmap` (each run of the batch equals its own); and a sparse
    Izhikevich ring whose spikes jump `v` at once, with three neurons above threshold
    at t0 (one reached by another's jump there): they fire at t0, in the same order
    and waves either way."""
    y0, coba, (checked_coba, checked_other, batched) = _small_coba_defaults()
    n = y0["coba"].v.shape[0]
    m = 30
    ring = np.zeros((m, m))
    for i in range(m):
        ring[i, (i + 1) % m] = ring[i, (i + 7) % m] = 6.0
    izh = ns.Network(
        populations={"a": ns.Population(ns.Izhikevich(), m, jnp.linspace(4.0, 12.0, m))},
        projections=[ns.Projection("a", "a", jnp.asarray(ring))],
    )
    v0 = np.full(m, -65.0)
    v0[[3, 4, 20]] = 31.0, 35.0, 40.0  # 3 reaches 4 at t0
    izh_y0 = {
        "a": eqx.tree_at(lambda s: s.v, ns.Izhikevich().init_state(m), jnp.asarray(v0))
    }

    def ring_run():
        return ns.simulate(
            izh, y0=izh_y0, t1=60.0, clocks="neuron", max_spikes=2000, gradients=False,
            **TIGHT,
        )  # fmt: skip

    runs = {True: (checked_coba, ring_run())}
    clock_flags(START_WITH_CHECKS=False)
    runs[False] = (coba(y0), ring_run())
    for k, size in ((0, n), (1, m)):
        predicted, checked = runs[False][k], runs[True][k]
        assert int(checked.status) == int(predicted.status) == 1
        assert int(checked.num_spikes) == int(predicted.num_spikes) >= 40
        # (Fewer where a neuron fires at t0 or another's spike reaches it first.)
        extra = int(checked.iterations) - int(predicted.iterations)
        assert extra == size if k == 0 else 0 < extra <= size
        np.testing.assert_array_equal(checked.spike_neurons, predicted.spike_neurons)
        np.testing.assert_allclose(
            checked.spike_times, predicted.spike_times, rtol=0, atol=1e-9
        )
        for a, b in zip(
            jax.tree_util.tree_leaves(checked.final_state),
            jax.tree_util.tree_leaves(predicted.final_state),
            strict=True,
        ):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    ring = runs[True][1]
    at_start = np.asarray(ring.spike_times) == 0.0
    assert np.asarray(ring.spike_neurons)[at_start].tolist() == [3, 4, 20]
    # The batch starts with checks too: each of its runs equals its own run alone.
    _assert_batch_equals_runs(batched, (checked_coba, checked_other))


def test_the_default_counts_quiet_times_in_its_choice():
    """`clocks=None` takes per-neuron clocks from 10 neurons per lane of a spike's
    row where the models have quiet times (COBA: 20 targets each, rows padded to 24
    lanes: 300 neurons, not 150), and from 50 for the same model without them (1300,
    not 1100). (That the default runs what this rule picks is checked above.)"""
    from neurosim._simulate import _neuron_clocks_pay
    from neurosim._system import NetworkSystem

    clock = _clock.OdeClock(
        dfx.Tsit5(), dfx.PIDController(rtol=1e-6, atol=1e-6), 16, _clock.CLOCK_HORIZON
    )

    def picks_neuron(n, fan_out, neuron=None):
        net, _ = ns.networks.brette_coba(0, n=n, fan_out=fan_out)
        if neuron is not None:
            net = eqx.tree_at(lambda m: m.populations["coba"].neuron, net, neuron)
        return _neuron_clocks_pay(NetworkSystem(net, None, 8), clock)

    assert picks_neuron(300, 20) and not picks_neuron(150, 20)
    assert not picks_neuron(300, 20, _NoQuietTime())
    assert not picks_neuron(1100, 20, _NoQuietTime())
    assert picks_neuron(1300, 20, _NoQuietTime())


def test_refractory_ends_of_quiet_neurons_are_applied_inside_their_next_solve(
    clock_flags, x64
):
    """A `CobaLIF` neuron quiet past the end of its refractory period (tonic drive,
    recurrent inhibition) is not checked there: its next advance (an input, a record)
    ends a step (or, with `propagate`, a piece of `CobaLIF.propagate`) at that time
    and applies the end. Records every ms (some fall just after an end, before any
    input) and spikes equal those of the run with a check at every end (within 1e-9
    mV and ms) and of the network's clock at 1e-13; the loop runs fewer
    iterations. Both ways of bringing neurons forward (solves, and `propagate`)."""
    n = 40
    rng = np.random.default_rng(0)
    weights = (rng.random((n, n)) < 0.3) * -1.5
    current = 14.0 * rng.uniform(0.9, 1.2, n)
    record = jnp.linspace(1.0, 60.0, 60)

    def run(clocks, tol):
        return ns.simulate(
            ns.CobaLIF(), n=n, t1=60.0, current=current, weights=weights,
            clocks=clocks, max_spikes=4000, gradients=False, rtol=tol, atol=tol,
            record=record,
        )  # fmt: skip

    network = run("network", REFERENCE_TOL)  # (reads neither switch)
    for propagate in (False, True):
        runs = {}
        for label, lazy in (("lazy", True), ("checked", False)):
            clock_flags(PROPAGATE=propagate, LAZY_CHANGES=lazy)
            runs[label] = run("neuron", TIGHT["rtol"])
        lazy, checked = runs["lazy"], runs["checked"]
        assert int(lazy.num_spikes) >= 8
        assert int(lazy.iterations) < int(checked.iterations)
        for other, atol in ((checked, 1e-9), (network, 1e-6)):
            np.testing.assert_allclose(
                lazy.spike_times, other.spike_times, rtol=0, atol=atol
            )
            np.testing.assert_array_equal(lazy.spike_neurons, other.spike_neurons)
            np.testing.assert_allclose(lazy.states.v, other.states.v, rtol=0, atol=atol)


@pytest.mark.parametrize("solver", [dfx.Tsit5(), dfx.Dopri5(), dfx.Dopri8()])
def test_written_out_steps_equal_the_solvers_steps(x64, solver):
    """The lean stepper's own explicit Runge-Kutta step (its stages written out, no
    loop) gives diffrax's step: solution, error estimate, dense output and the stored
    last stage, on a first step and on the step after it (from the stored stage), to
    rounding. Other solvers keep diffrax's step."""

    def field(t, y, args):
        return {"v": -y["v"] * y["g"] + jnp.sin(3 * t), "g": -y["g"] / 3 + y["v"] ** 2}

    term = dfx.ODETerm(field)
    y = {"v": jnp.array([0.3, -1.2]), "g": jnp.array([1.5, 0.2])}
    state = solver.init(term, 0.2, 0.5, y, None)
    for t0, t1 in ((0.2, 0.5), (0.5, 0.65)):
        theirs = solver.step(term, t0, t1, y, None, state, False)
        ours = _clock._erk_step(solver.tableau, term, t0, t1, y, state)
        for a, b in zip(
            jax.tree_util.tree_leaves(theirs[:4]), jax.tree_util.tree_leaves(ours)
        ):
            np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-15)
        y, state = theirs[0], theirs[3]
    assert _clock.unrolled(solver)
    assert not any(_clock.unrolled(s) for s in (dfx.Euler(), dfx.Heun(), dfx.Kvaerno5()))
