"""Independent neurons on per-neuron clocks run as lanes of one loop
(neurosim/_lanes.py: a population with no projections and no input spikes,
`clocks="neuron"`, `gradients=False`).

Each check compares the lanes with another path on random parameters, initial states
and currents (float64):

- LIF with a refractory period, solved by ODE per neuron (`exact=False`), against the
  closed form (`exact=True`): spikes, records at random times, final state;
- Izhikevich with random parameters, and Izhikevich with a refractory period (a
  scheduled change per spike), against the network's clock at 1e-13;
- the same neurons through the event loop (`gradients=True`: each neuron solved by
  diffrax when differentiated), which the lanes must reproduce;
- runs that stop early (the spike buffer, the iteration limit) against a full run:
  the same first spikes and the state at the time they stopped; a neuron that goes
  non-finite is named;
- a batch under `jax.vmap`, against the runs one by one.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _compare import assert_same_spikes

import neurosim as ns

TIGHT = dict(rtol=1e-10, atol=1e-10)
N, T1 = 30, 120.0


def _izhikevich(seed, refractory=False):
    """Random regular-spiking to chattering and fast-spiking neurons and currents
    (some below rheobase)."""
    rng = np.random.default_rng(seed)
    model = ns.Izhikevich(
        a=jnp.asarray(rng.uniform(0.02, 0.1, N)),
        b=jnp.asarray(rng.uniform(0.2, 0.25, N)),
        c=jnp.asarray(rng.uniform(-65.0, -50.0, N)),
        d=jnp.asarray(rng.uniform(2.0, 8.0, N)),
    )
    if refractory:
        model = ns.Refractory(model, t_ref=jnp.asarray(rng.uniform(0.5, 4.0, N)))
    current = jnp.asarray(rng.uniform(0.0, 15.0, N))
    return model, current


def _run(model, current, **kwargs):
    options = dict(n=N, t1=T1, current=current, max_spikes=4000, gradients=False)
    options.update(TIGHT)
    options.update(kwargs)
    return ns.simulate(model, **options)


@pytest.mark.parametrize("seed", [0, 1])
def test_lif_lanes_match_the_closed_form(seed, x64):
    rng = np.random.default_rng(seed)
    model = ns.LIF(
        tau_mem=jnp.asarray(rng.uniform(5.0, 20.0, N)),
        tau_syn=5.0,
        t_ref=jnp.asarray(rng.uniform(0.0, 3.0, N)),
    )
    current = jnp.asarray(rng.uniform(0.8, 2.0, N))
    if seed == 1:  # a current that jumps: a step of its own per neuron, and pulses
        amplitude = jnp.asarray(rng.uniform(-0.5, 0.8, N))
        current = ns.inputs.Step(40.0, amplitude, t_off=90.0, baseline=current)
        current = current + ns.inputs.PulseTrain(5.0, 2.0, 17.0, amplitude=0.7)
    record = jnp.sort(jnp.asarray(rng.uniform(0.0, T1, 7)))
    y0 = model.init_state(N)
    y0 = type(y0)(**{**vars(y0), "v": jnp.asarray(rng.uniform(-0.5, 0.99, N))})
    lanes = _run(model, current, clocks="neuron", exact=False, record=record, y0=y0)
    closed = _run(model, current, exact=True, record=record, y0=y0)
    assert int(lanes.status) == int(closed.status) == 1
    assert_same_spikes(lanes, closed, at_least=100, atol=1e-7)
    np.testing.assert_allclose(lanes.states.v, closed.states.v, rtol=0, atol=1e-8)
    np.testing.assert_allclose(lanes.final_state.v, closed.final_state.v, atol=1e-8)
    # Solved per neuron: a solver step per lane per iteration, far fewer iterations
    # than steps.
    assert int(lanes.solver_steps) > 5 * int(lanes.iterations)


@pytest.mark.parametrize("refractory", [pytest.param(False, marks=pytest.mark.slow), True])
def test_izhikevich_lanes_match_the_network_clock(refractory, x64):
    model, current = _izhikevich(3, refractory)
    lanes = _run(model, current, clocks="neuron")
    reference = _run(model, current, clocks="network", rtol=1e-13, atol=1e-13)
    assert int(lanes.status) == int(reference.status) == 1
    assert_same_spikes(lanes, reference, at_least=200, atol=1e-5)
    np.testing.assert_allclose(
        lanes.final_state.v if not refractory else lanes.final_state.neuron.v,
        reference.final_state.v if not refractory else reference.final_state.neuron.v,
        rtol=0,
        atol=1e-4,
    )


def test_lanes_reproduce_the_event_loop(x64):
    """`gradients=True` takes the event loop (each neuron solved by diffrax): the
    same neurons' spikes to the solver's tolerance."""
    model, current = _izhikevich(4)
    lanes = _run(model, current, clocks="neuron")
    loop = _run(model, current, clocks="neuron", gradients=True, max_spikes=1000, t1=60.0)
    count = int(loop.num_spikes)
    assert count >= 50
    head = np.asarray(lanes.spike_times) < 60.0
    np.testing.assert_array_equal(
        np.asarray(lanes.spike_neurons)[head], loop.spike_neurons[:count]
    )
    np.testing.assert_allclose(
        np.asarray(lanes.spike_times)[head], loop.spike_times[:count], rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("limit", ["max_spikes", "max_iterations"])
def test_a_run_stopped_early_keeps_the_first_spikes_and_the_state_then(limit, x64):
    model, current = _izhikevich(5)
    full = _run(model, current, clocks="neuron")
    assert int(full.num_spikes) > 200
    stop = dict(max_spikes=150) if limit == "max_spikes" else dict(max_iterations=400)
    early = _run(model, current, clocks="neuron", throw=False, **stop)
    assert int(early.status) == (2 if limit == "max_spikes" else 5)
    t_final = float(early.t_final)
    assert 0.0 < t_final < T1
    k = int(early.num_spikes)
    assert k == int(np.sum(np.asarray(full.spike_times) < t_final)) > 0
    np.testing.assert_array_equal(early.spike_neurons[:k], full.spike_neurons[:k])
    np.testing.assert_allclose(
        early.spike_times[:k], full.spike_times[:k], rtol=0, atol=1e-9
    )
    # The state at the time it stopped: that of a run recording there.
    there = _run(model, current, clocks="neuron", record=jnp.asarray([t_final]))
    np.testing.assert_allclose(early.final_state.v, there.states.v[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(early.final_state.u, there.states.u[0], rtol=0, atol=1e-6)


def test_a_neuron_that_goes_non_finite_is_named():
    current = jnp.asarray([10.0, jnp.nan, 10.0])
    sol = ns.simulate(
        ns.Izhikevich(), n=3, t1=50.0, current=current, clocks="neuron", gradients=False,
        throw=False,
    )  # fmt: skip
    assert int(sol.status) == 4
    assert "neuron 1" in sol.message


def test_a_batch_of_lane_runs_under_vmap():
    model, current = _izhikevich(6)
    scales = jnp.asarray([0.5, 1.0])

    def run(scale):
        sol = ns.simulate(
            model, n=N, t1=60.0, current=current * scale, clocks="neuron",
            gradients=False, max_spikes=2000,
        )  # fmt: skip
        return sol.spike_times, sol.num_spikes

    times, counts = jax.jit(jax.vmap(run))(scales)
    for i, scale in enumerate(scales):
        one, count = run(scale)
        assert int(counts[i]) == int(count) > 0
        # The batched program rounds differently (fused multiply-adds inside the
        # written-out solver steps): equal to the float32 accuracy of the spike times
        # (each run within 1.2e-3 ms of float64 at 1e-12).
        np.testing.assert_allclose(times[i], one, rtol=0, atol=3e-3)


def test_forward_runs_of_independent_neurons_take_the_lanes_by_default():
    """`clocks=None` with `gradients=False`: neurons that never reach each other are
    each on their own clock, as with `clocks="neuron"` (the same spikes, bit for bit;
    a solver step per lane per iteration). Differentiated runs keep the network's
    clock (an iteration per event: far more iterations than per lane)."""
    model, current = _izhikevich(7)
    model = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), model)
    options = dict(n=N, t1=60.0, current=jnp.asarray(current, jnp.float32), max_spikes=1000)
    default = ns.simulate(model, gradients=False, **options)
    own = ns.simulate(model, gradients=False, clocks="neuron", **options)
    network = ns.simulate(model, **options)
    assert int(default.num_spikes) == int(own.num_spikes) > 50
    np.testing.assert_array_equal(default.spike_times, own.spike_times)
    np.testing.assert_array_equal(default.spike_neurons, own.spike_neurons)
    assert 3 * int(default.iterations) < int(default.solver_steps)
    assert int(network.iterations) >= int(network.num_spikes)
    # Neuron by neuron (two spikes 1e-4 ms apart may swap places in float32).
    trains = []
    for sol in (network, default):
        k = int(sol.num_spikes)
        times, neurons = np.asarray(sol.spike_times[:k]), np.asarray(sol.spike_neurons[:k])
        order = np.lexsort((times, neurons))
        trains.append((neurons[order], times[order]))
    np.testing.assert_array_equal(trains[0][0], trains[1][0])
    np.testing.assert_allclose(trains[0][1], trains[1][1], rtol=0, atol=5e-3)
