"""The exact event loop compiled into one function on the CPU (`neurosim._cpu`): the
same spikes, states and records as the loop in its usual form, bit for bit (with delay
queues too); batched calls (`jax.vmap`) fall back to the usual form; loops that hold
scatters are refused."""

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _compare import first_divergence
from _whole import blockers_of_the_loop

import neurosim as ns
from neurosim import _cpu, _per_neuron
from neurosim._clock import OdeClock
from neurosim._cpu import one_kernel
from neurosim._system import NetworkSystem

# The whole form is the CPU backend's (`_cpu.compiles_whole`): elsewhere the loops take
# their usual form and these checks do not apply.
pytestmark = pytest.mark.skipif(
    jax.default_backend() != "cpu", reason="the whole form is compiled on the CPU only"
)

MARK = 'xla_cpu_small_call="true"'  # in a compiled program


def _both(monkeypatch, make):
    """`make()` with the loop compiled whole (the default on the CPU) and in its usual
    form, each traced afresh; checks that each form is the one asked for."""
    marked = []

    def spy(fn):
        marked.append(fn)
        return one_kernel(fn)

    monkeypatch.setattr(_per_neuron, "one_kernel", spy)
    jax.clear_caches()  # trace `simulate`'s jitted core again
    whole = make()
    assert len(marked) == 1
    monkeypatch.setattr(_per_neuron, "compiles_whole", lambda: False)
    jax.clear_caches()
    usual = make()
    assert len(marked) == 1
    jax.clear_caches()
    return whole, usual


def _assert_forms_agree(monkeypatch, run, at_least, tol=None):
    """`run()` (a `simulate` call) gives the same spikes (at least `at_least`), records,
    final states and iteration count in both forms of the loop: counts, neurons and
    iterations equal, times and states within a few ulps (XLA fuses the two forms
    differently, and a fused multiply-add rounds once), or within `tol` (relative and
    absolute) where an adaptive solver's step sizes follow those roundings."""

    def make():
        sol = run()
        return (
            sol.num_spikes,
            sol.spike_times,
            sol.spike_neurons,
            sol.states,
            sol.final_state,
            sol.iterations,
        )

    whole, usual = _both(monkeypatch, make)
    assert int(whole[0]) >= at_least
    leaves = zip(
        jax.tree_util.tree_leaves(whole), jax.tree_util.tree_leaves(usual), strict=True
    )
    for x, y in leaves:
        x, y = np.asarray(x), np.asarray(y)
        if np.issubdtype(x.dtype, np.floating):
            ulps = 16 * np.finfo(x.dtype).eps if tol is None else tol
            np.testing.assert_allclose(x, y, rtol=ulps, atol=ulps)
        else:
            np.testing.assert_array_equal(x, y)


@pytest.mark.default_compile
def test_reduced_cuba_compiled_whole_equals_the_usual_loop(monkeypatch):
    """Merged excitatory/inhibitory delivery, self-connections, records."""
    n = 400
    net, y0 = ns.networks.vogels_abbott_cuba(2, n=n, we=1.62 * 4000 / n, wi=-9.0 * 4000 / n)

    def run():
        return ns.simulate(
            net,
            t1=100.0,
            y0=y0,
            max_spikes=5000,
            gradients=False,
            record=jnp.linspace(0.0, 100.0, 11),
        )

    _assert_forms_agree(monkeypatch, run, at_least=500)


@pytest.mark.default_compile
def test_layer_with_stepped_current_and_inputs_compiled_whole_equals_the_usual_loop(
    monkeypatch,
):
    """Current jumps of the whole population, input spikes, recurrent weights, records."""
    rng = np.random.default_rng(0)
    times = jnp.asarray(np.sort(rng.uniform(0.0, 100.0, 300)))
    sources = jnp.asarray(rng.integers(0, 10, 300))
    weights = jnp.asarray(rng.normal(0.0, 0.3, (30, 30)) * (rng.random((30, 30)) < 0.2))
    input_weights = jnp.asarray(rng.uniform(0.0, 0.6, (10, 30)))

    def run():
        return ns.simulate(
            ns.LIF(tau_mem=10.0, t_ref=1.0),
            n=30,
            t1=100.0,
            current=ns.inputs.Step(20.0, 0.8, t_off=70.0),
            weights=weights,
            input_spikes=(times, sources),
            input_weights=input_weights,
            max_spikes=2000,
            gradients=False,
            record=jnp.linspace(0.0, 100.0, 21),
        )

    _assert_forms_agree(monkeypatch, run, at_least=50)


def test_ode_neurons_on_their_own_clocks_compiled_whole_equal_the_usual_loop(monkeypatch):
    """Models without a closed form on per-neuron clocks (`clocks="neuron"`, the lean
    stepper of forward runs): a small COBA network with refractory ends and records,
    in both forms, float32. A rounding apart changes a step size here and there, so
    times and states agree to the solver's tolerance (seen: 4e-6 relative on 4 of
    1050 recorded potentials), not to the ulp."""
    n = 150
    net, y0 = ns.networks.brette_coba(1, n=n, we=0.6 * 4000 / n, wi=6.7 * 4000 / n)

    def run():
        return ns.simulate(
            net,
            t1=30.0,
            y0=y0,
            clocks="neuron",
            max_spikes=3000,
            gradients=False,
            record=jnp.linspace(0.0, 30.0, 7),
        )

    _assert_forms_agree(monkeypatch, run, at_least=100, tol=1e-4)


def test_network_closed_over_by_an_outer_jit_compiles_whole():
    """Under an outer `jit` that closes over the network, its arrays are constants
    there, and XLA aborts the process when it folds a constant into an operand of a
    call compiled whole (fails, by aborting, when the operands are passed as they
    are). The loop is still compiled whole, and gives the spikes of a call that
    takes the network as an argument."""
    n = 500  # (at 200, XLA happened not to fold them)
    net, y0 = ns.networks.vogels_abbott_cuba(0, n=n, we=1.62 * 4000 / n, wi=-9.0 * 4000 / n)

    def run(net, y0):
        sol = ns.simulate(net, t1=40.0, y0=y0, max_spikes=2000, gradients=False)
        return sol.num_spikes, sol.spike_times, sol.spike_neurons

    closed = jax.jit(lambda: run(net, y0))
    assert MARK in closed.lower().compile().as_text()
    count, times, neurons = closed()
    ref_count, ref_times, ref_neurons = jax.jit(run)(net, y0)
    assert int(count) == int(ref_count) > 50
    np.testing.assert_array_equal(np.asarray(neurons), np.asarray(ref_neurons))
    np.testing.assert_allclose(np.asarray(times), np.asarray(ref_times), rtol=1e-6)


def test_vmap_runs_the_usual_loop_with_the_same_results():
    """Batched indices would make the row updates scatters, which a loop compiled whole
    cannot hold: a batched call takes the usual form, and agrees with separate calls
    (each compiled whole) to float32 rounding (batched kernels round a few spike times
    differently in the last bits)."""
    weights = 0.6 * (jax.random.uniform(jax.random.PRNGKey(0), (20, 20)) - 0.5)
    currents = jnp.asarray([1.1, 1.3, 1.6])

    def spikes(current):
        sol = ns.simulate(
            ns.LIF(tau_mem=10.0),
            n=20,
            t1=60.0,
            current=current * jnp.linspace(1.0, 1.4, 20),  # no simultaneous spikes
            weights=weights,
            max_spikes=1024,
            gradients=False,
        )
        return sol.num_spikes, sol.spike_times, sol.spike_neurons

    batched = jax.jit(jax.vmap(spikes)).lower(currents).compile()
    assert MARK not in batched.as_text()
    assert MARK in jax.jit(spikes).lower(currents[0]).compile().as_text()
    counts, times, neurons = batched(currents)
    assert len(set(np.asarray(counts).tolist())) == 3  # the currents matter
    for k, current in enumerate(currents):
        count, ref_times, ref_neurons = spikes(current)
        assert int(counts[k]) == int(count) > 0
        np.testing.assert_array_equal(np.asarray(neurons[k]), np.asarray(ref_neurons))
        np.testing.assert_allclose(np.asarray(times[k]), np.asarray(ref_times), rtol=1e-5)


@pytest.mark.default_compile
def test_delayed_network_compiled_whole_equals_the_usual_loop(monkeypatch):
    """Delay queues (per-synapse delays within a population, one delay between two)
    written without scatters, against the usual form."""
    rng = np.random.default_rng(1)
    n = 30
    weights = rng.normal(0.2, 0.4, (n, n)) * (rng.random((n, n)) < 0.2)
    delays = rng.uniform(0.5, 3.0, (n, n))
    net = ns.Network(
        populations={
            "a": ns.Population(
                ns.LIF(tau_mem=10.0, t_ref=1.0), n, jnp.linspace(1.1, 1.5, n)
            ),
            "b": ns.Population(ns.LIF(tau_mem=15.0), 10, 0.8),
        },
        projections=[
            ns.Projection("a", "a", jnp.asarray(weights), delay=jnp.asarray(delays)),
            ns.Projection("a", "b", jnp.asarray(rng.uniform(0.0, 0.3, (n, 10))), delay=2.0),
        ],
    )

    def run():
        return ns.simulate(
            net,
            t1=100.0,
            max_spikes=2000,
            gradients=False,
            record=jnp.linspace(0.0, 100.0, 11),
        )

    _assert_forms_agree(monkeypatch, run, at_least=200)


def test_loops_with_scatters_are_not_compiled_whole():
    """The checkpointed loop (`gradients="checkpointed"`) and repeated targets (summed
    by a scatter-add) keep the usual form, and asking for the whole form says why not.
    (With `gradients=True` the loop itself runs forward, see tests/test_replay.py.)"""
    pop = {"a": ns.Population(ns.LIF(tau_mem=10.0), 4)}
    w = jnp.full((4, 4), 0.2)
    plain = ns.Network(populations=pop, projections=[ns.Projection("a", "a", w)])
    twice = ns.Network(
        populations=pop,
        projections=[ns.Projection("a", "a", w), ns.Projection("a", "a", 2 * w)],
    )
    assert _per_neuron.compilable_whole(NetworkSystem(plain, None, 8), gradients=False)
    izhikevich = ns.Network(populations={"a": ns.Population(ns.Izhikevich(), 4)})
    system = NetworkSystem(izhikevich, None, 8)
    assert not _per_neuron.compilable_whole(system, gradients=False)  # no clock given
    clock = OdeClock(dfx.Tsit5(), dfx.PIDController(rtol=1e-6, atol=1e-6), 100, 20.0)
    assert _per_neuron.compilable_whole(system, gradients=False, clock=clock)
    assert not _per_neuron.compilable_whole(system, gradients=True, clock=clock)
    assert not _per_neuron.compilable_whole(NetworkSystem(plain, None, 8), gradients=True)
    assert not _per_neuron.compilable_whole(NetworkSystem(twice, None, 8), gradients=False)
    y0 = {"a": ns.LIF(tau_mem=10.0).init_state(4)}
    with pytest.raises(ValueError, match="gradients=False, without projections that"):
        _per_neuron.run(
            NetworkSystem(plain, None, 8),
            t0=0.0,
            t1=10.0,
            y0=y0,
            input_times=jnp.zeros((0,)),
            input_sources=jnp.zeros((0,), jnp.int32),
            record_times=jnp.zeros((0,)),
            max_spikes=8,
            max_iterations=100,
            gradients="checkpointed",
            whole=True,
        )


def test_forward_mode_through_the_loop_compiled_whole():
    """`jax.jvp` of a forward run (the loop compiled whole) against the closed form
    t_k = k tau ln(I / (I - 1)) of a LIF with v_th = 1; the overflow warning names no
    time it cannot print (the time is traced by the jvp, the status is not)."""
    tau, current = 10.0, 1.5

    def spikes(current):
        sol = ns.simulate(
            ns.LIF(tau_mem=tau),
            n=1,
            t1=100.0,
            current=current,
            max_spikes=2,
            gradients=False,
        )
        return sol.spike_times

    with pytest.warns(UserWarning, match="filled at a traced time"):
        times, tangents = jax.jvp(spikes, (jnp.asarray(current),), (jnp.asarray(1.0),))
    k = np.arange(1, 3)
    np.testing.assert_allclose(times, k * tau * np.log(current / (current - 1)), rtol=1e-6)
    slope = tau * (1 / current - 1 / (current - 1))
    np.testing.assert_allclose(tangents, k * slope, rtol=1e-5)


@pytest.mark.parametrize("whole", [True, False], ids=["whole", "usual"])
def test_key_grid_row_minima_and_earliest_key_match_numpy(whole):
    """The key grid's row minima, kept up to date write by write (`_write_keys`), and
    the earliest key found from them (`_earliest_key`), against NumPy's minimum and
    first index of the minimum over the whole array, through random sequences of
    writes: keys from a small set (ties), inf, raised and lowered minima, writes that
    are dropped, and a NaN (which the earliest key reports) overwritten next."""
    rng = np.random.default_rng(0)
    values = np.array([0.5, 1.0, 1.0, 2.0, 3.0, np.inf], np.float32)

    @jax.jit
    def step(keys, idx, new):
        flat = keys.grid.reshape(-1)
        old = flat.at[idx].get(mode="clip")
        keys = _per_neuron._write_keys(keys, idx, old, new, whole)
        return keys, _per_neuron._earliest_key(keys)

    for n in (1, 5, 65, 1000):
        keys = _per_neuron._keys_of(jnp.asarray(rng.choice(values, n)))
        rows, cols = keys.grid.shape
        assert rows * cols >= n and cols % 8 == 0 and rows <= cols
        reference = np.asarray(keys.grid).reshape(-1)[:n].copy()
        touched, nan_at = min(n, 9), None
        for i in range(40):
            idx = rng.choice(n, touched, replace=False)
            new = rng.choice(values, touched).astype(np.float32)
            dropped = rng.random(touched) < 0.2
            if i == 30:
                new[0], dropped[0] = np.nan, False
                nan_at = idx[:1]
            if i == 31:  # the NaN written over
                idx = np.concatenate([nan_at, idx[idx != nan_at[0]]])[:touched]
                dropped[0] = False
            reference[idx[~dropped]] = new[~dropped]
            written = np.where(dropped, rows * cols, idx).astype(np.int32)
            keys, (low, k) = step(keys, jnp.asarray(written), jnp.asarray(new))
            grid = np.asarray(keys.grid).reshape(-1)
            np.testing.assert_array_equal(grid[:n], reference)
            assert np.all(np.isposinf(grid[n:]))
            np.testing.assert_array_equal(
                np.asarray(keys.rowmin), np.min(np.asarray(keys.grid), axis=1)
            )
            if i == 30:
                assert np.isnan(low) and int(k) == rows * cols
            else:
                assert float(low) == reference.min()
                assert int(k) == int(np.argmin(reference))


@pytest.mark.parametrize("shape", [(7,), (5, 7), (700, 7), (70, 72), (4099,), (3, 2048)])
@pytest.mark.parametrize("combine", [jnp.add, jnp.minimum, jnp.maximum])
def test_fold_over_the_last_axis_equals_numpy(shape, combine):
    """`_cpu.fold` (XLA's reduction below `REDUCE_LIMIT` entries, halving above it, odd
    lengths included) against NumPy's reduction of the last axis."""
    x = np.random.default_rng(sum(shape)).normal(size=shape)
    reference = {jnp.add: np.sum, jnp.minimum: np.min, jnp.maximum: np.max}[combine]
    got = jax.jit(lambda x: _cpu.fold(combine, x))(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(np.asarray(got), reference(x, axis=-1), rtol=1e-5, atol=1e-4)


def test_programs_xla_cannot_compile_whole_run_as_usual_kernels():
    """A sum of `REDUCE_LIMIT` floats, a sort and a matrix product inside a call marked
    to be compiled whole made XLA's compilation fail ("Fusion kind not implemented on
    CPU", "Failed to materialize symbols"). `blockers` names them, and `one_kernel`
    runs such a program as usual kernels, with the same values."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=_cpu.REDUCE_LIMIT), jnp.float32)
    cases = {
        "reduce_sum": lambda x: jnp.sum(x),
        "sort": lambda x: jnp.sort(x[:100]),
        "dot_general": lambda x: x[:64].reshape(8, 8) @ x[64:128].reshape(8, 8),
    }
    for name, fn in cases.items():
        assert [b.split("(")[0] for b in _cpu.blockers(jax.make_jaxpr(fn)(x).jaxpr)] == [
            name
        ]
        looped = jax.jit(
            one_kernel(lambda x, fn=fn: jax.lax.fori_loop(0, 2, lambda i, y: y, fn(x)))
        )
        np.testing.assert_allclose(np.asarray(looped(x)), np.asarray(fn(x)), rtol=1e-6)

    # What the loops hold and XLA compiles whole is not listed: shorter or integer
    # reductions, products with a vector, batched or not.
    def fine(x):
        return (
            jnp.sum(x[:4095]),
            jnp.min(x.astype(jnp.int32)),
            x.reshape(64, 64) @ x[:64],
            jnp.einsum("bk,bk->b", x[:112].reshape(16, 7), x[112:224].reshape(16, 7)),
        )

    assert _cpu.blockers(jax.make_jaxpr(fine)(x).jaxpr) == []


def _large_networks():
    """Populations past `REDUCE_LIMIT` neurons (`CobaLIF` past it with its quadrature
    nodes), each with a recurrent projection, records (states of the whole population)
    and a stepped current (jumps of the whole population)."""
    rng = np.random.default_rng(0)
    times = np.arange(2.0, 20.0, 2.0)

    def network(neuron, n, level, target, weight):
        pre, post = ns.networks.random_connections(rng, n, n, fan_out=10)
        values = level * (1.0 + 0.2 * rng.random((times.size + 1, n)))
        current = ns.inputs.PiecewiseConstant(times=times, values=values)
        return ns.Network(
            populations={"p": ns.Population(neuron, n, current)},
            projections=[
                ns.Projection(
                    "p", "p", (pre, post, np.full(pre.shape, weight)), target=target
                )
            ],
        )

    n = _cpu.REDUCE_LIMIT + 4
    return {
        "LIF, delta synapses": network(ns.LIF(tau_mem=10.0), n, 1.2, "v", 0.05),
        "CubaLIF": network(ns.CubaLIF(), n, 1.2, None, 0.2),
        "Izhikevich": network(ns.Izhikevich(), n, 10.0, "v", 2.0),
        "CobaLIF": network(ns.CobaLIF(), 600, 0.0, None, 0.5),
    }


def _buffered(count, times, neurons):
    """The spikes of a run's buffers, as `first_divergence` takes them."""
    return np.asarray(times[: int(count)]), np.asarray(neurons[: int(count)])


def test_large_populations_with_records_and_stepped_currents_compile_whole(monkeypatch):
    """Every population-wide operation of the loop (records, current jumps, the earliest
    of simultaneous keys) stays compilable whole past `REDUCE_LIMIT` neurons: the
    program of the marked call holds nothing `blockers` lists. Each of these networks
    made XLA's compilation fail before (a minimum over the population, the key grid's
    row minima, the solver's norm, the solver's dense output over every lane,
    `CobaLIF.propagate`'s sum over its nodes). Traced only; the LIF network runs in
    both forms below, and an Izhikevich one against the network clock."""
    record = jnp.linspace(1.0, 19.0, 4)
    for name, net in _large_networks().items():

        def run(net=net):
            sol = ns.simulate(
                net, t1=20.0, max_spikes=50_000, gradients=False, record=record
            )
            return sol.num_spikes

        assert blockers_of_the_loop(monkeypatch, run) == [], name


def test_a_jump_of_a_large_population_solved_per_neuron_agrees_with_the_network_clock(
    monkeypatch,
):
    """Izhikevich neurons on their own clocks whose stepped current jumps for all 2100
    of them at once, predicted again in slices of lanes (`_clock._in_slices`: the dense
    output over every lane at once is a batched product that XLA cannot compile whole;
    1000 such neurons failed to compile before). The loop is compiled whole and gives
    the spikes of the network's clock (an independent integration) to float32
    precision."""
    rng = np.random.default_rng(3)
    n, times = 2100, np.arange(2.0, 20.0, 2.0)
    values = 10.0 * (1.0 + 0.2 * rng.random((times.size + 1, n)))
    pre, post = ns.networks.random_connections(rng, n, n, fan_out=10)
    current = ns.inputs.PiecewiseConstant(times=times, values=values)
    net = ns.Network(
        populations={"p": ns.Population(ns.Izhikevich(), n, current)},
        projections=[
            ns.Projection("p", "p", (pre, post, np.full(pre.shape, 0.5)), target="v")
        ],
    )

    def run(clocks=None):
        sol = ns.simulate(net, t1=20.0, max_spikes=20_000, gradients=False, clocks=clocks)
        return sol.num_spikes, sol.spike_times, sol.spike_neurons

    assert blockers_of_the_loop(monkeypatch, lambda: run()[0]) == []
    (count, *spikes), ref = run(), run("network")
    assert int(count) > 1000
    found = first_divergence(_buffered(count, *spikes), _buffered(*ref), atol=5e-3, t1=20.0)
    assert found.agree, found


class _SortingIzhikevich(ns.Izhikevich):
    """Izhikevich's equations with `v` passed through a sort (of two equal values): the
    same numbers, and a program XLA cannot compile whole."""

    def dynamics(self, t, state, current):
        v = jnp.sort(jnp.stack([state.v, state.v]), axis=0)[0]
        return super().dynamics(t, eqx.tree_at(lambda s: s.v, state, v), current)


def test_a_model_xla_cannot_compile_whole_runs_as_usual_kernels(monkeypatch):
    """A user's model whose dynamics sort (XLA's compilation of the loop compiled whole
    failed: "Failed to materialize symbols"), on per-neuron clocks: the loop runs as
    usual kernels instead, and gives the spikes of the same equations without the
    sort, compiled whole, to float32 precision (the two forms round differently, and
    the adaptive steps follow: seen 1.5e-3 ms at most)."""
    rng = np.random.default_rng(4)
    n = 60
    pre, post = ns.networks.random_connections(rng, n, n, fan_out=6)
    drive = jnp.asarray(rng.uniform(8.0, 14.0, n))

    def network(neuron):  # (built outside the traced calls: its plans read the indices)
        projection = ns.Projection(
            "p", "p", (pre, post, np.full(pre.shape, 1.0)), target="v"
        )
        return ns.Network(
            populations={"p": ns.Population(neuron, n, drive)}, projections=[projection]
        )

    def run(net):
        sol = ns.simulate(net, t1=100.0, max_spikes=5000, gradients=False, clocks="neuron")
        return sol.num_spikes, sol.spike_times, sol.spike_neurons

    sorting, plain = network(_SortingIzhikevich()), network(ns.Izhikevich())
    found = blockers_of_the_loop(monkeypatch, lambda: run(sorting)[0])
    assert found and {b.split("(")[0] for b in found} == {"sort"}
    assert blockers_of_the_loop(monkeypatch, lambda: run(plain)[0]) == []
    (count, *spikes), ref = run(sorting), run(plain)
    assert int(count) > 200
    found = first_divergence(
        _buffered(count, *spikes), _buffered(*ref), atol=5e-3, t1=100.0
    )
    assert found.agree, found


@pytest.mark.default_compile
def test_large_population_compiled_whole_equals_the_usual_loop(monkeypatch):
    """The LIF network of `_large_networks` (4100 neurons, delta synapses, a stepped
    current, records) run in both forms of the loop: the same spikes and records."""
    net = _large_networks()["LIF, delta synapses"]

    def run():
        return ns.simulate(
            net,
            t1=20.0,
            max_spikes=100_000,
            gradients=False,
            record=jnp.linspace(1.0, 19.0, 4),
        )

    _assert_forms_agree(monkeypatch, run, at_least=5000)
