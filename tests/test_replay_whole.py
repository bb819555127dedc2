"""The replay compiled whole with its derivatives (`gradients="whole"`,
`neurosim._replay.compiled_whole`: on XLA's CPU backend, networks without delays or
jumping currents) against its usual form (the default), on random recurrent networks
with input spikes and records: reverse mode with respect to every drawn value in
float64 and float32, forward mode, a small batch under `vmap`, and the synapse lists of
concrete weights. Also: the default never compiles the replay whole (under `vmap` a
large batch could not be), nor `"whole"` a population too large for it."""

import contextlib

import _random_networks as rn
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import neurosim as ns
from neurosim import _replay
from neurosim._system import NetworkSystem

# Two LIF populations (the excitatory one larger than 128 neurons: the whole form's
# reductions are taken in rows of 128), constant drives, no delays.
STRUCTURE = rn.Structure(
    "replay_whole",
    n_exc=130,
    n_inh=10,
    fan_out=8,
    fan_out_inh=4,
    n_inputs=10,
    input_fan_out=8,
    input_slots=10,
    t1=40.0,
    max_spikes=300,
    stepped=False,
)
RECORD = np.linspace(0.0, 40.0, 9)


@contextlib.contextmanager
def _form(whole):
    """Trace the replay in its whole form (and count its marked calls) or in its usual
    form (no marked call allowed)."""
    calls = []
    saved_bytes, saved_kernel = _replay.WHOLE_BYTES, _replay.one_kernel
    GRADIENTS[0] = "whole" if whole else True

    def spy(fn, **kwargs):
        calls.append(kwargs)
        return saved_kernel(fn, **kwargs)

    _replay.one_kernel = spy
    if not whole:
        _replay.WHOLE_BYTES = -1
    try:
        yield calls
    finally:
        _replay.WHOLE_BYTES, _replay.one_kernel = saved_bytes, saved_kernel


GRADIENTS = [True]  # simulate's `gradients` while a function is traced (`_form`)


def _draw(seed):
    net = rn.draw(seed, STRUCTURE)
    # A stronger drive than the draw's: tens of spikes in 40 ms.
    net.arrays = {
        k: v + 0.3 if k in ("drive_e", "drive_i") else v for k, v in net.arrays.items()
    }
    return net


def _summary(sol, spike_weights):
    times = jnp.where(jnp.isfinite(sol.spike_times), sol.spike_times, 0.0)
    final = sum(jnp.sum(state.v) for state in sol.final_state.values())
    records = jnp.sum(sol.states["e"].v) + jnp.sum(sol.states["i"].i)
    return jnp.sum(spike_weights * times) + 0.1 * final + 0.01 * records


def _loss(arrays, spike_weights):
    with jax.ensure_compile_time_eval():
        network = rn.build(STRUCTURE, arrays, {})
    sol = ns.simulate(
        network,
        y0=rn.initial_state(STRUCTURE, arrays),
        t1=STRUCTURE.t1,
        max_spikes=STRUCTURE.max_spikes,
        record=RECORD,
        gradients=GRADIENTS[0],
    )
    return _summary(sol, spike_weights), sol.num_spikes


def _differentiable(arrays):
    return {k: v for k, v in arrays.items() if jnp.issubdtype(v.dtype, jnp.floating)}


def _spike_weights(seed):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.uniform(-1.0, 1.0, STRUCTURE.max_spikes))


MARKED = []  # the marked calls traced in the whole form


def _gradients(fn, whole, *args):
    """`fn(*args)` traced (where it is not yet) in the given form."""
    with _form(whole) as calls:
        out = fn(*args)
    if whole:
        MARKED.extend(calls)
        assert MARKED and all(c == {"differentiable": True} for c in MARKED)
    else:
        assert not calls
    return out


def _check_same(grad_w, grad_u, keys, rtol):
    for key in keys:
        g_w, g_u = np.asarray(grad_w[key]), np.asarray(grad_u[key])
        assert np.all(np.isfinite(g_w)), key
        scale = max(np.max(np.abs(g_u)), 1e-3)
        np.testing.assert_allclose(g_w, g_u, rtol=0, atol=rtol * scale, err_msg=key)


def _value_and_grad():
    return eqx.filter_jit(eqx.filter_value_and_grad(_loss, has_aux=True))


@pytest.fixture(scope="module")
def reverse(float64):
    """One compiled value-and-gradient per form, shared by the seeds."""
    return {True: _value_and_grad(), False: _value_and_grad()}


@pytest.mark.parametrize("seed", (0, 1))
def test_reverse_mode_matches_usual_form(reverse, seed):
    """float64: the same value and spikes, and the same gradient with respect to
    every drawn value (weights, time constants, thresholds, refractory periods,
    drives, input spike times, initial potentials), to rounding."""
    net = _draw(seed)
    assert _replay.compiled_whole(
        NetworkSystem(net.network(), None, 16), 4 * STRUCTURE.max_spikes, jnp.float64
    )
    weights = _spike_weights(seed)
    (value_w, count_w), grad_w = _gradients(reverse[True], True, net.arrays, weights)
    (value_u, count_u), grad_u = _gradients(reverse[False], False, net.arrays, weights)
    assert int(count_w) == int(count_u) and int(count_w) > 20
    np.testing.assert_allclose(value_w, value_u, rtol=1e-13)
    _check_same(grad_w, grad_u, _differentiable(net.arrays), 1e-9)


def test_float32_matches_usual_form(float32):
    """float32: the two forms' gradients agree to float32 rounding."""
    net = _draw(0)
    arrays = jax.tree_util.tree_map(
        lambda x: x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) else x,
        net.arrays,
    )
    weights = _spike_weights(0).astype(jnp.float32)
    (value_w, count_w), grad_w = _gradients(_value_and_grad(), True, arrays, weights)
    (value_u, count_u), grad_u = _gradients(_value_and_grad(), False, arrays, weights)
    assert int(count_w) == int(count_u) and int(count_w) > 20
    np.testing.assert_allclose(value_w, value_u, rtol=1e-6)
    _check_same(grad_w, grad_u, _differentiable(arrays), 1e-4)


def test_forward_mode_and_batch(reverse):
    """float64, whole form: a directional derivative by `jax.jvp` is the gradient's
    projection, and `vmap` over two networks gives each one's own gradient (under
    `vmap` the whole form holds no scatter either)."""
    nets = [_draw(seed) for seed in (0, 1)]
    weights = _spike_weights(0)
    diff = _differentiable(nets[0].arrays)
    rng = np.random.default_rng(7)
    direction = {k: jnp.asarray(rng.normal(size=np.shape(v))) for k, v in diff.items()}

    def along(arrays):
        def f(values):
            return _loss({**arrays, **values}, weights)[0]

        return jax.jvp(f, (diff,), (direction,))[1]

    tangent = _gradients(jax.jit(along), True, nets[0].arrays)
    _, grad = _gradients(reverse[True], True, nets[0].arrays, weights)
    projection = sum(jnp.sum(grad[k] * direction[k]) for k in diff)
    np.testing.assert_allclose(tangent, projection, rtol=1e-9)

    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *(n.arrays for n in nets))
    batched_fn = eqx.filter_jit(
        jax.vmap(lambda a: eqx.filter_value_and_grad(_loss, has_aux=True)(a, weights))
    )
    (_, counts), batched = _gradients(batched_fn, True, stacked)
    for b, net in enumerate(nets):
        (_, count), alone = _gradients(reverse[True], True, net.arrays, weights)
        assert int(counts[b]) == int(count)
        alone_b = {k: v for k, v in alone.items() if v is not None}
        _check_same(
            jax.tree_util.tree_map(lambda x: x[b], {k: batched[k] for k in alone_b}),
            alone_b,
            diff,
            1e-9,
        )


def test_synapse_lists_match_usual_form(x64):
    """Concrete weights are stored by their synapses (sparse rows, gathered before the
    whole form's loop): the derivative with respect to the time constants of both
    populations is the usual form's."""
    net = _draw(0)
    network = net.network()
    assert any(conn.post_index is not None for conn in network.connections)
    weights = _spike_weights(0)

    def loss(scale):
        scaled = rn.scale_tau_mem(network, scale)
        sol = ns.simulate(
            scaled,
            y0=net.y0(),
            t1=STRUCTURE.t1,
            max_spikes=STRUCTURE.max_spikes,
            record=RECORD,
            gradients=GRADIENTS[0],
        )
        return _summary(sol, weights)

    scale = jnp.asarray(1.0)
    whole = _gradients(jax.jit(jax.grad(loss)), True, scale)
    usual = _gradients(jax.jit(jax.grad(loss)), False, scale)
    assert np.isfinite(whole) and abs(usual) > 0
    np.testing.assert_allclose(whole, usual, rtol=1e-9)


def test_the_default_replay_and_large_populations_are_not_compiled_whole():
    """Under `jax.vmap` a batch multiplies a step's reductions, and XLA cannot compile
    one of 4096 entries or more into a function compiled whole (a batch of 35 networks
    of 120 neurons failed to compile): the default replay (`gradients=True`) is never
    compiled whole, and `"whole"` leaves populations above `MAX_ROW` to the usual
    form."""
    calls = []
    saved = _replay.one_kernel
    _replay.one_kernel = lambda fn, **kwargs: calls.append(kwargs) or saved(fn, **kwargs)
    try:

        def first(current, gradients, n=20):
            sol = ns.simulate(
                ns.LIF(),
                n=n,
                t1=20.0,
                current=current,
                max_spikes=4 * n,
                gradients=gradients,
            )
            return jnp.sum(jnp.where(jnp.isfinite(sol.spike_times), sol.spike_times, 0))

        batch = jnp.linspace(1.2, 2.0, 3)
        jax.make_jaxpr(jax.grad(lambda c: jnp.sum(jax.vmap(first, (0, None))(c, True))))(
            batch
        )
        jax.make_jaxpr(jax.grad(first), static_argnums=(1, 2))(1.5, True, 20)
        assert not calls
        jax.make_jaxpr(jax.grad(first), static_argnums=(1, 2))(1.5, "whole", 20)
        assert calls  # the check above can fail
        calls.clear()
        n = _replay.MAX_ROW + 1
        jax.make_jaxpr(jax.grad(first), static_argnums=(1, 2))(1.5, "whole", n)
        assert not calls
    finally:
        _replay.one_kernel = saved
