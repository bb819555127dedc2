"""The network clock's event loop compiled into one function on the CPU (`neurosim._cpu`,
`neurosim._engine`): its scatter-free updates against the jnp operations they stand
for, the segment's stage loop against diffrax's step, and whole runs against the loop
in its usual form (random networks of every kind: tests/test_agreement.py)."""

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _whole import blockers_of_the_loop

import neurosim as ns
from neurosim import _cpu, _engine, _segment

# The whole form is the CPU backend's (`_cpu.compiles_whole`): elsewhere the loops take
# their usual form and these checks do not apply.
pytestmark = pytest.mark.skipif(
    jax.default_backend() != "cpu", reason="the whole form is compiled on the CPU only"
)

# ----- the scatter-free updates, compiled whole ------------------------------------


def _whole(fn):
    """`fn` jitted as one function compiled whole (fails to compile on a scatter)."""
    compiled = jax.jit(_cpu.one_kernel(fn))
    return compiled


@pytest.mark.parametrize("n", [5, 128, 1000, 4096])
def test_scatter_free_updates_match_jnp(n):
    rng = np.random.default_rng(n)
    for density in (0.0, 0.002, 0.3):
        mask = jnp.asarray(rng.random(n) < density)
        for size in (1, 8):
            got = _whole(lambda m, size=size: _cpu.nonzero(m, size, n))(mask)
            want = jnp.nonzero(mask, size=size, fill_value=n)[0]
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    x = jnp.asarray(rng.standard_normal(n), jnp.float32)
    for combine, reference, fill in (
        (jnp.minimum, jnp.min, jnp.inf),
        (jnp.maximum, jnp.max, -jnp.inf),
        (jnp.add, jnp.sum, 0.0),
    ):
        got = _whole(lambda x, c=combine, f=fill: _cpu.reduce(c, x, f))(x)
        np.testing.assert_allclose(float(got), float(reference(x)), rtol=1e-5, atol=1e-4)
    # Entries out of range (n) are dropped; `add_at` adds repeated indices in turn.
    idx = jnp.asarray(rng.integers(0, n + 1, 3 * n), jnp.int32)
    values = jnp.asarray(rng.standard_normal(3 * n), jnp.float32)
    got = _whole(lambda t, i, v: _cpu.add_at(t, i, v))(x, idx, values)
    want = x.at[idx].add(values, mode="drop")
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
    distinct = jnp.asarray(rng.permutation(n + 3)[:8], jnp.int32)
    rows = jnp.asarray(rng.standard_normal(8), jnp.float32)
    got = _whole(lambda a, i, r: _cpu.set_rows(a, i, r))(x, distinct, rows)
    np.testing.assert_array_equal(
        np.asarray(got), np.asarray(x.at[distinct].set(rows, mode="drop"))
    )
    got = _whole(lambda a, i, r: _cpu.set_rows(a, i, r, 3))(x, distinct, rows)
    np.testing.assert_array_equal(
        np.asarray(got), np.asarray(x.at[distinct[:3]].set(rows[:3], mode="drop"))
    )


@pytest.mark.parametrize("solver", [dfx.Tsit5(), dfx.Dopri5(), dfx.Dopri8()])
def test_stage_loop_step_matches_diffrax_step(solver, x64):
    """The segment's step with its stages in a loop of dynamic updates gives diffrax's
    step: the new state, the error estimate, the dense output (read at four points)
    and the first stage of the next step, on a random nonlinear system, from a first
    step and from a step that reuses the last stage."""
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.uniform(0.01, 0.1, 50))

    def field(t, y, args):
        v, u = y
        return (0.04 * v**2 + 5 * v + 140 - u + 10 * jnp.sin(t), a * (0.2 * v - u))

    term = dfx.ODETerm(field)
    y = (jnp.asarray(rng.uniform(-70, -50, 50)), jnp.asarray(rng.uniform(-15, -10, 50)))
    state = solver.init(term, 0.0, 0.05, y, None)
    for t0, t1 in ((0.0, 0.05), (0.05, 0.12)):
        want = solver.step(term, t0, t1, y, None, state, False)
        got = _segment._stage_loop_step(
            solver.tableau, lambda s, y: field(s, y, None), t0, t1, y, state
        )
        for x, w in zip(
            jax.tree_util.tree_leaves(got[:2]), jax.tree_util.tree_leaves(want[:2])
        ):
            np.testing.assert_allclose(np.asarray(x), np.asarray(w), rtol=1e-13, atol=1e-12)
        at = jnp.asarray([t0, t0 + 0.3 * (t1 - t0), t0 + 0.9 * (t1 - t0), t1])
        dense = [solver.interpolation_cls(t0=t0, t1=t1, **d) for d in (got[2], want[2])]
        for x, w in zip(
            jax.tree_util.tree_leaves(jax.vmap(dense[0].evaluate)(at)),
            jax.tree_util.tree_leaves(jax.vmap(dense[1].evaluate)(at)),
        ):
            np.testing.assert_allclose(np.asarray(x), np.asarray(w), rtol=1e-13, atol=1e-12)
        for x, w in zip(
            jax.tree_util.tree_leaves(got[3]), jax.tree_util.tree_leaves(want[3])
        ):
            np.testing.assert_allclose(np.asarray(x), np.asarray(w), rtol=1e-13, atol=1e-12)
        y, state = want[0], want[3]


def test_only_forward_runs_on_explicit_runge_kutta_solvers_compile_whole():
    pid = dfx.PIDController(rtol=1e-6, atol=1e-6)
    assert _engine.compilable_whole(dfx.Tsit5(), pid, True, True, False)
    assert _engine.compilable_whole(dfx.Dopri5(), pid, True, True, False)
    assert not _engine.compilable_whole(dfx.Tsit5(), pid, True, True, True)  # gradients
    assert not _engine.compilable_whole(dfx.Heun(), pid, True, True, False)  # not FSAL
    assert not _engine.compilable_whole(
        dfx.Euler(), dfx.ConstantStepSize(), False, True, False
    )


# ----- whole runs against the usual loop --------------------------------------------


def _loop_compiled_whole(text):
    """Whether the compiled program `text` holds `one_kernel`'s call (its function is
    named `call`) marked to be compiled whole. XLA marks small loops of its own (such
    as `searchsorted`'s) too: the mark alone does not tell."""
    return any(
        'xla_cpu_small_call="true"' in line and '/jit(call)"' in line
        for line in text.splitlines()
    )


def _forms(monkeypatch, make):
    """`make()` with the network clock's loop compiled whole (the CPU default) and in
    its usual form, each traced afresh; checks that each form is the one asked for."""
    marked = []

    def spy(fn):
        marked.append(fn)
        return _cpu.one_kernel(fn)

    monkeypatch.setattr(_engine, "one_kernel", spy)
    jax.clear_caches()
    whole = make()
    assert len(marked) == 1
    monkeypatch.setattr(_engine, "compiles_whole", lambda: False)
    jax.clear_caches()
    usual = make()
    assert len(marked) == 1
    jax.clear_caches()
    return whole, usual


@pytest.mark.parametrize("delay", [None, 1.0], ids=["no delay", "1 ms delays"])
def test_izhikevich_network_compiled_whole_equals_the_usual_loop(monkeypatch, delay, x64):
    """Izhikevich (2003) at a fifth of its size (all to all, thalamic noise as a
    piecewise-constant current, delayed deliveries through the queue), on the network
    clock, with records: the same spikes (a chaotic network: within 1e-9 ms over
    100 ms in float64), records and final states in both forms."""
    net, y0 = ns.networks.izhikevich_2003(3, n_exc=160, n_inh=40, t1=100.0, delay=delay)

    def make():
        sol = ns.simulate(
            net,
            y0=y0,
            t1=100.0,
            max_spikes=4000,
            gradients=False,
            rtol=1e-10,
            atol=1e-10,
            record=jnp.linspace(0.0, 100.0, 11),
        )
        return (
            int(sol.num_spikes),
            np.asarray(sol.spike_times),
            np.asarray(sol.spike_neurons),
            np.asarray(sol.states["izhikevich"].v),
            np.asarray(sol.final_state["izhikevich"].u),
        )

    whole, usual = _forms(monkeypatch, make)
    assert whole[0] == usual[0] > 80
    count = whole[0]
    np.testing.assert_array_equal(whole[2][:count], usual[2][:count])
    np.testing.assert_allclose(whole[1][:count], usual[1][:count], rtol=0, atol=1e-9)
    np.testing.assert_allclose(whole[3], usual[3], rtol=0, atol=1e-7)
    np.testing.assert_allclose(whole[4], usual[4], rtol=0, atol=1e-7)


def test_vmap_of_the_network_clock_runs_the_usual_loop_with_the_same_results(x64):
    """A batched call takes the usual form (batched indices would make the updates
    scatters) and agrees with separate calls, each compiled whole."""
    net, y0 = ns.networks.izhikevich_2003(1, n_exc=80, n_inh=20, t1=80.0, delay=0.5)
    shifts = jnp.asarray([0.0, 2.0, -3.0])

    def spikes(shift):
        state = y0["izhikevich"]
        start = {"izhikevich": eqx.tree_at(lambda s: s.v, state, state.v + shift)}
        sol = ns.simulate(net, y0=start, t1=80.0, max_spikes=2000, gradients=False)
        return sol.num_spikes, sol.spike_times, sol.spike_neurons

    batched = jax.jit(jax.vmap(spikes)).lower(shifts).compile()
    assert not _loop_compiled_whole(batched.as_text())
    assert _loop_compiled_whole(jax.jit(spikes).lower(shifts[0]).compile().as_text())
    counts, times, neurons = batched(shifts)
    assert len(set(np.asarray(counts).tolist())) > 1  # the shifts matter
    for k, shift in enumerate(shifts):
        count, ref_times, ref_neurons = spikes(shift)
        count = int(count)
        assert int(counts[k]) == count > 20
        np.testing.assert_array_equal(np.asarray(neurons[k]), np.asarray(ref_neurons))
        np.testing.assert_allclose(
            np.asarray(times[k])[:count], np.asarray(ref_times)[:count], atol=1e-8
        )


def test_populations_of_4096_neurons_compile_whole(monkeypatch):
    """XLA's CPU backend takes a floating-point reduction of 4096 entries or more out
    of a function compiled whole, and the compilation then fails (`_cpu.REDUCE_LIMIT`;
    an Izhikevich (2003) network of 5000 neurons did, when the loop's error norm and
    its maxima of the spike conditions reduced over every neuron at once). They are
    folded now (`_cpu.fold`): the loop of 4096 neurons is compiled whole, with nothing
    that would keep it from it (`_cpu.blockers`), and its spikes are those of the same
    neurons on their own clocks (they do not reach each other)."""
    n = _cpu.REDUCE_LIMIT
    currents = jnp.asarray(np.random.default_rng(0).uniform(5.0, 15.0, n), jnp.float32)

    def simulate(clocks):
        return ns.simulate(
            ns.Izhikevich(),
            n=n,
            t1=5.0,
            current=currents,
            max_spikes=2 * n,
            gradients=False,
            clocks=clocks,
        )

    def run(clocks):
        sol = simulate(clocks)
        return int(sol.num_spikes), np.asarray(sol.spike_neurons), sol.spike_times

    found = blockers_of_the_loop(
        monkeypatch, lambda: simulate("network").num_spikes, _engine
    )
    assert found == []
    count, neurons, times = run("network")
    ref_count, ref_neurons, ref_times = run("neuron")
    assert count == ref_count > n // 2
    got = neurons[:count], np.asarray(times)[:count]
    ref = ref_neurons[:count], np.asarray(ref_times)[:count]
    order, ref_order = np.lexsort(got[::-1]), np.lexsort(ref[::-1])
    np.testing.assert_array_equal(got[0][order], ref[0][ref_order])
    np.testing.assert_allclose(got[1][order], ref[1][ref_order], atol=1e-3)
