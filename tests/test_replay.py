"""Gradients from the replay of the exact loop's events (`neurosim._replay`) against
the checkpointed loop differentiated itself, on random recurrent networks; forward
mode against reverse mode; batched gradients; and the scope of the replay."""

import _random_networks as rn
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurosim as ns
from neurosim import _replay
from neurosim._system import NetworkSystem

# Every feature the replay covers at once: a CubaLIF and a LIF population, no delay,
# a scalar delay and per-synapse delays, a stepped current (jumps), input spikes.
STRUCTURE = rn.Structure(
    "replay",
    n_exc=40,
    n_inh=10,
    models=("cuba", "lif"),
    delays=(None, "scalar", None, "per_synapse"),
    fan_out=8,
    fan_out_inh=4,
    n_inputs=10,
    input_fan_out=6,
    input_slots=8,
    t1=60.0,
    max_spikes=200,
)
SEEDS = (0, 1, 2)


def _loss_fn(gradients):
    delay_table = rn._delay_table(STRUCTURE)

    def loss(arrays, spike_weights):
        with jax.ensure_compile_time_eval():
            network = rn.build(STRUCTURE, arrays, delay_table)
        sol = ns.simulate(
            network,
            y0=rn.initial_state(STRUCTURE, arrays),
            t1=STRUCTURE.t1,
            max_spikes=STRUCTURE.max_spikes,
            exact=True,
            gradients=gradients,
        )
        times = jnp.where(jnp.isfinite(sol.spike_times), sol.spike_times, 0.0)
        final = sum(
            jnp.sum(state.v) + jnp.sum(state.ge if hasattr(state, "ge") else 0.0)
            for state in sol.final_state.values()
        )
        return jnp.sum(spike_weights * times) + 0.1 * final, sol.num_spikes

    return loss


@pytest.fixture(scope="module")
def gradient_fns(float64):
    """One compiled value-and-gradient per path, shared by the seeds."""
    return {
        path: eqx.filter_jit(eqx.filter_value_and_grad(_loss_fn(path), has_aux=True))
        for path in (True, "checkpointed")
    }


def _differentiable(arrays):
    return {k: v for k, v in arrays.items() if jnp.issubdtype(v.dtype, jnp.floating)}


@pytest.mark.parametrize("seed", SEEDS)
def test_replay_matches_checkpointed_loop(gradient_fns, seed):
    """The replay's gradient with respect to every drawn value (weights, time
    constants, thresholds, refractory periods, the scalar delay, the current's levels
    and switching times, input spike times, initial potentials) is the checkpointed
    loop's, on the same spikes."""
    net = rn.draw(seed, STRUCTURE)
    # A stronger drive than the draw's: tens of spikes in 60 ms.
    net.arrays = dict(net.arrays)
    for key in ("drive_e", "drive_i", "step_e"):
        net.arrays[key] = net.arrays[key] + 0.2
    assert _replay.supported(NetworkSystem(net.network(), None, 16))
    spike_weights = jnp.asarray(
        np.random.default_rng(seed).uniform(-1.0, 1.0, STRUCTURE.max_spikes)
    )
    (value_r, count_r), grad_r = gradient_fns[True](net.arrays, spike_weights)
    (value_c, count_c), grad_c = gradient_fns["checkpointed"](net.arrays, spike_weights)
    assert int(count_r) == int(count_c) and int(count_r) > 30
    np.testing.assert_allclose(value_r, value_c, rtol=1e-12)
    for key in _differentiable(net.arrays):
        g_r, g_c = np.asarray(grad_r[key]), np.asarray(grad_c[key])
        assert np.all(np.isfinite(g_r)), key
        scale = max(np.max(np.abs(g_c)), 1e-3)
        np.testing.assert_allclose(g_r, g_c, rtol=0, atol=1e-7 * scale, err_msg=key)


def _small_network(p):
    lif = ns.LIF(tau_mem=p[0], tau_syn=p[1], t_ref=p[2], v_th=p[6])
    weights = jnp.array([[0.0, 0.5, -0.3], [0.2, 0.0, 0.4], [0.3, 0.3, 0.0]]) * p[4]
    return ns.Network(
        {"a": ns.Population(lif, 3, ns.inputs.Step(20.0, p[3], baseline=0.9))},
        [
            ns.Projection("a", "a", weights, delay=p[7]),
            ns.Projection("in", "a", jnp.array([[3.0, 1.0, 0.5], [0.5, 2.0, 1.0]])),
        ],
        inputs={
            "in": ns.SpikeTrains(jnp.array([1.0, 2.0, 5.0]) * p[5], jnp.array([0, 1, 0]), 2)
        },
    )


def _small_loss(p):
    record = jnp.linspace(0.0, 60.0, 7)
    sol = ns.simulate(_small_network(p), t1=60.0, max_spikes=40, record=record)
    times = jnp.where(jnp.isfinite(sol.spike_times), sol.spike_times, 0.0)
    return jnp.sum(times) + jnp.sum(sol.states["a"].v) + jnp.sum(sol.final_state["a"].i)


P = (10.0, 5.0, 2.0, 1.3, 1.0, 1.0, 1.0, 1.5)


def test_forward_mode_batches_and_finite_differences(x64):
    """For spike times, records and the final state: `jax.jacfwd` (forward mode
    through the replay) equals `jax.grad`, both equal central finite differences, and
    `vmap(grad)` gives each sample's own gradient."""
    p = jnp.asarray(P)

    def per_sample(p, scale):  # scale: the input spike times
        return _small_loss(p.at[5].multiply(scale))

    grad = jax.jit(jax.grad(per_sample))
    g = grad(p, 1.0)
    forward = jax.jacfwd(per_sample)(p, 1.0)
    np.testing.assert_allclose(forward, g, rtol=1e-10, atol=1e-10)
    h = 1e-6
    fd = np.array(
        [
            (_small_loss(p.at[i].add(h)) - _small_loss(p.at[i].add(-h))) / (2 * h)
            for i in range(p.shape[0])
        ]
    )
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6)
    scales = jnp.array([0.8, 1.0, 1.3])
    batched = jax.vmap(grad, (None, 0))(p, scales)
    alone = np.stack([grad(p, scale) for scale in scales])
    np.testing.assert_allclose(batched, alone, rtol=1e-10, atol=1e-10)


def test_scope_and_argument():
    """Delta synapses and pulse trains use the checkpointed loop; a bad `gradients`
    is refused by name."""
    lif = ns.LIF()
    pops = {"a": ns.Population(lif, 2)}
    exp = ns.Network(pops, [ns.Projection("a", "a", jnp.ones((2, 2)))])
    delta = ns.Network(pops, [ns.Projection("a", "a", jnp.ones((2, 2)), target="v")])
    pulses = ns.Network(
        {"a": ns.Population(lif, 2, ns.inputs.PulseTrain(1.0, 1.0, 5.0, 2.0))}, []
    )
    system = lambda net: NetworkSystem(net, None, 16)  # noqa: E731
    assert _replay.supported(system(exp))
    assert not _replay.supported(system(delta))
    assert not _replay.supported(system(pulses))
    with pytest.raises(
        ValueError, match="`gradients` must be True, False, 'whole', 'eventprop' or"
    ):
        ns.simulate(lif, n=1, t1=1.0, gradients="fast")


def test_undifferentiated_run_skips_the_replay():
    """A run that is not differentiated does not trace the replay at all."""
    calls = []
    saved = _replay.replay_carriers

    def spy(*args, **kwargs):
        calls.append(1)
        return saved(*args, **kwargs)

    _replay.replay_carriers = spy
    try:
        eqx.filter_jit(lambda c: ns.simulate(ns.LIF(), n=2, t1=20.0, current=c))(
            jnp.array([1.5, 2.0])
        )
        assert not calls
        jax.grad(
            lambda c: jnp.sum(
                ns.simulate(ns.LIF(), n=2, t1=20.0, current=c).first_spike_times()
            )
        )(jnp.array([1.5, 2.0]))
        assert calls
    finally:
        _replay.replay_carriers = saved


def test_reverse_mode_keeps_the_weights_once(float32):
    """Reverse mode through the replay keeps what its steps close over (here the dense
    weights of 300 LIF neurons, differentiated) once, not once per chunk of the log:
    the compiled value and gradient needs temporary memory of less than 16 times the
    weights (seen: 11.4 times with a log of 2000 spikes; 159 times when each chunk
    kept them, 1 GiB at 1000 neurons)."""
    n = 300
    rng = np.random.default_rng(0)
    weights = (rng.random((n, n)) < 0.05) * rng.normal(0.1, 0.05, (n, n))
    weights = jnp.asarray(weights, jnp.float32)
    drive = jnp.asarray(rng.uniform(1.0, 1.3, n), jnp.float32)

    def loss(weights):
        sol = ns.simulate(
            ns.LIF(), n=n, t1=50.0, current=drive, weights=weights, max_spikes=2000
        )
        return jnp.sum(sol.spike_times, where=jnp.isfinite(sol.spike_times))

    compiled = jax.jit(jax.value_and_grad(loss)).lower(weights).compile()
    memory = compiled.memory_analysis()
    assert memory.temp_size_in_bytes < 16 * weights.nbytes, (
        memory.temp_size_in_bytes / weights.nbytes
    )


@pytest.mark.parametrize(
    "structure, reference",
    [
        ("replay", "finite differences"),
        pytest.param("replay", "checkpointed", marks=pytest.mark.slow),
        pytest.param("cuba_small", "checkpointed", marks=pytest.mark.slow),
        pytest.param("lif_exp", "checkpointed", marks=pytest.mark.slow),
    ],
)
def test_synapse_lists_match_an_independent_derivative(structure, reference, x64):
    """Concrete weights are stored by their synapses (sparse rows, the replay's other
    delivery): the derivative of the spike times with respect to every neuron's time
    constants is the central finite difference of the forward runs (default) or the
    checkpointed loop's (slow)."""
    s = STRUCTURE if structure == "replay" else rn.STRUCTURES[structure]
    s = rn.Structure(**{**s.__dict__, "t1": 40.0, "max_spikes": 2000})
    net = rn.draw(0, s)
    if structure == "replay":  # a stronger drive than the draw's (as above)
        net.arrays = {
            k: v + 0.2 if k in ("drive_e", "drive_i", "step_e") else v
            for k, v in net.arrays.items()
        }
    network = net.network()
    assert any(conn.post_index is not None for conn in network.connections)

    def loss(scale, gradients):
        scaled = rn.scale_tau_mem(network, scale)
        sol = ns.simulate(
            scaled, y0=net.y0(), t1=s.t1, max_spikes=s.max_spikes, gradients=gradients
        )
        times = jnp.where(jnp.isfinite(sol.spike_times), sol.spike_times, 0.0)
        return jnp.sum(times * jnp.cos(jnp.arange(times.shape[0]))), sol.num_spikes

    scale = jnp.asarray(1.0)
    (_, count), replay = jax.value_and_grad(loss, has_aux=True)(scale, True)
    assert int(count) > 30
    if reference == "checkpointed":
        (_, count_c), checkpointed = jax.value_and_grad(loss, has_aux=True)(
            scale, "checkpointed"
        )
        assert int(count_c) == int(count)
        np.testing.assert_allclose(replay, checkpointed, rtol=1e-7)
    else:
        h = 1e-6
        forward = eqx.filter_jit(lambda x: loss(x, False))
        (up, count_up), (down, count_down) = forward(scale + h), forward(scale - h)
        assert int(count_up) == int(count_down) == int(count)
        np.testing.assert_allclose(replay, (up - down) / (2 * h), rtol=1e-5)
