"""`gradients="eventprop"` (`neurosim._eventprop`): the adjoint written out against the
replay's reverse mode (`gradients=True`, an independent derivation: autodiff of the
events replayed in closed form) on random networks, against central finite
differences, under `jax.vmap`, and its refusals."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _random_networks import DRIVE, RECURRENT, Structure, draw, record_times

import neurosim as ns

# Two populations with heterogeneous time constants, inputs, a few neurons above
# threshold at t0 (they fire there), refractory periods, constant currents and (in
# "lif") a stepped one; in "cuba_lif", scalar and per-synapse delays.
STRUCTURES = {
    "lif": Structure("ep_lif", n_exc=48, n_inh=12, fan_out=8, fan_out_inh=4, t1=80.0,
                     n_inputs=40, input_fan_out=12, input_slots=16, max_spikes=3000),
    "cuba_lif": Structure("ep_cuba_lif", n_exc=48, n_inh=12, models=("cuba", "lif"),
                          fan_out=8, fan_out_inh=4, t1=80.0, n_inputs=40,
                          input_fan_out=12, input_slots=16, max_spikes=3000,
                          stepped=False,
                          delays=("scalar", "per_synapse", None, "scalar")),
}  # fmt: skip
WEIGHTS = tuple(f"w_{name}" for name in RECURRENT + DRIVE)


def _no_refractory(net):
    arrays = dict(net.arrays)
    for pop in "ei":
        arrays[f"t_ref_{pop}"] = jnp.zeros_like(arrays[f"t_ref_{pop}"])
    return dataclasses.replace(net, arrays=arrays)


def _loss_fn(structure, gradients, slot_weights, final_weights, record=None):
    """A loss of the spike times (each slot weighted), of the final potentials and (with
    `record`, record times) of the recorded states' potentials and synaptic currents,
    as a function of `diff` (the rest of `arrays` fixed)."""

    def loss(diff, arrays, delay_table):
        arrays = {**arrays, **diff}
        net = draw_like(structure, arrays, delay_table)
        y0 = initial(structure, arrays)
        sol = ns.simulate(
            net, t1=structure.t1, y0=y0, max_spikes=structure.max_spikes,
            gradients=gradients, record=record,
        )  # fmt: skip
        times = jnp.where(jnp.isfinite(sol.spike_times), sol.spike_times, 0.0)
        final = jnp.concatenate([sol.final_state[p].v for p in "ei"])
        value = jnp.sum(slot_weights * times) + jnp.sum(final_weights * final)
        if record is not None:
            for p in "ei":
                fields = ("v", *net.populations[p].neuron.synapse_fields)
                for k, f in enumerate(fields):
                    recorded = getattr(sol.states[p], f)
                    value = value + jnp.sum(jnp.sin(recorded + k) * final_weights[:1])
        return value

    return loss


def draw_like(structure, arrays, delay_table):
    from _random_networks import build

    return build(structure, arrays, delay_table)


def initial(structure, arrays):
    from _random_networks import initial_state

    return initial_state(structure, arrays)


# Thresholds, resets, refractory periods, membrane time constants, currents (the
# stepped one's two levels), synaptic time constants and input spike times.
PARAMETERS = tuple(
    f"{p}_{pop}" for p in ("v_th", "v_reset", "t_ref", "tau_mem", "drive") for pop in "ei"
)
SYNAPSES = {"lif": ("tau_syn",), "cuba": ("tau_exc", "tau_inh")}


def _keys(structure):
    extra = ("step_e",) if structure.stepped else ()
    for model, pop in zip(structure.models, "ei", strict=True):
        extra += tuple(f"{p}_{pop}" for p in SYNAPSES[model])
    for name, delay in zip(RECURRENT, structure.delays, strict=True):
        extra += (f"delay_{name}",) if delay == "scalar" else ()
    return WEIGHTS + ("v0_e", "v0_i") + PARAMETERS + extra + ("input_times",)


def _split(net, keys=WEIGHTS + ("v0_e", "v0_i")):
    diff = {k: net.arrays[k] for k in keys}
    rest = {k: v for k, v in net.arrays.items() if k not in diff}
    return diff, rest


@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_the_adjoint_equals_the_replays_gradient_on_random_networks(name, x64):
    """Weights (recurrent and input, dense rows), initial potentials, every neuron
    parameter, currents and input spike times, of a loss of spike times, final and
    recorded states, float64, with and without refractory periods: the two
    derivations agree to 1e-7 relative on every seed."""
    structure = STRUCTURES[name]
    rng = np.random.default_rng(0)
    slot_weights = jnp.asarray(rng.uniform(0.5, 1.5, structure.max_spikes))
    final_weights = jnp.asarray(rng.normal(0.0, 1.0, structure.n))
    # Records at t0 (before the spikes there), inside the run and at t1.
    record = record_times(structure)
    grads = {
        g: jax.jit(
            jax.value_and_grad(_loss_fn(structure, g, slot_weights, final_weights, record))
        )
        for g in (True, "eventprop")
    }
    spikes = []
    for seed, refractory in ((0, True), (1, True), (2, True), (3, False)):
        net = draw(seed, structure)  # refractory periods of 0.2-1.1 ms (seeds 0-2)
        net = net if refractory else _no_refractory(net)
        diff, rest = _split(net, _keys(structure))
        (value_r, grad_r), (value_e, grad_e) = (
            grads[g](diff, rest, net.delay_table) for g in (True, "eventprop")
        )
        assert float(value_r) == float(value_e)
        for key in diff:
            if key.startswith("t_ref") and not refractory:
                # At t_ref = 0 the replay has no hold to differentiate (0); the adjoint
                # gives the derivative from the right (test_..._one_from_the_right).
                continue
            a, b = np.asarray(grad_r[key]), np.asarray(grad_e[key])
            scale = np.max(np.abs(a))
            assert scale > 0, key
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-7 * scale, err_msg=key)
        sol = ns.simulate(net.network(), t1=structure.t1, y0=net.y0(), gradients=False)
        spikes.append(int(sol.num_spikes))
    assert min(spikes) > 50, spikes  # networks that fire


def _chain(weights, params):
    """Three inputs into 6 LIF neurons into 2 CubaLIF neurons (synapse lists with
    traced values), one soft-reset population, one refractory; `params`: the hidden
    neurons' thresholds and current, the outputs' reset and resting potential, the
    input spike times, the hidden neurons' time constants and refractory period, the
    outputs' excitatory time constant."""
    w_in, w_h, w_o = weights
    v_th, current, v_reset, v_leak, times, tau_mem, tau_syn, t_ref, tau_exc = params
    pre_h, post_h = np.nonzero(np.ones((6, 2)))
    hidden = ns.LIF(tau_mem=tau_mem, tau_syn=tau_syn, t_ref=t_ref, v_th=v_th)
    out = ns.CubaLIF(
        tau_mem=10.0, tau_exc=tau_exc, reset_mode="soft", v_reset=v_reset, v_leak=v_leak
    )
    net = ns.Network(
        populations={
            "hidden": ns.Population(hidden, 6, current),
            "out": ns.Population(out, 2),
        },
        projections=[
            ns.Projection("in", "hidden", w_in),
            ns.Projection("hidden", "out", (pre_h, post_h, w_h)),
            ns.Projection("out", "hidden", w_o),
        ],
        inputs={
            "in": ns.SpikeTrains(times, jnp.asarray([0, 1, 2, 0, 1, 2, 0]), num_sources=3)
        },
    )
    return net


@pytest.mark.parametrize("until", [None, "out"])
def test_the_adjoint_matches_finite_differences(until, x64):
    """Central differences of the loss in every weight and parameter (float64), where
    the spikes do not change; also for a run that ends when the outputs have fired
    (`until_fired`: the end moves with the last of them, and so does the final
    state the loss reads)."""
    rng = np.random.default_rng(3)
    weights = (
        jnp.asarray(rng.uniform(2.0, 3.0, (3, 6))),
        jnp.asarray(rng.uniform(1.0, 2.0, 12)),
        jnp.asarray(rng.uniform(-0.6, -0.2, (2, 6))),
    )
    params = (
        jnp.asarray(rng.uniform(0.9, 1.1, 6)),
        jnp.asarray(rng.uniform(0.2, 0.4, 6)),
        jnp.asarray(-0.1),
        jnp.asarray(0.05),
        jnp.asarray([1.0, 3.0, 4.5, 9.0, 12.0, 20.0, 21.0]),
        jnp.asarray(rng.uniform(7.0, 9.0, 6)),
        jnp.asarray(3.0),
        jnp.asarray(1.0),
        jnp.asarray(4.0),
    )

    def loss(arrays):
        net = _chain(arrays[:3], arrays[3:])
        sol = ns.simulate(
            net, t1=40.0, max_spikes=200, gradients="eventprop", until_fired=until
        )
        times = jnp.where(jnp.isfinite(sol.spike_times), sol.spike_times, 0.0)
        k = jnp.arange(times.shape[0])
        hidden = sol.final_state["hidden"]
        final = jnp.sum(hidden.v * jnp.arange(6.0)) + jnp.sum(hidden.i)
        return jnp.sum(times * (1.0 + 0.1 * k)) + jnp.sum(sol.final_state["out"].ge) + final

    arrays = weights + params
    value, grads = jax.jit(jax.value_and_grad(loss))(arrays)
    sol = ns.simulate(_chain(weights, params), t1=40.0, max_spikes=200, until_fired=until)
    assert int(sol.num_spikes) >= 8
    assert (float(sol.t_final) < 40.0) == (until is not None)
    f = jax.jit(loss)
    eps = 1e-6
    for k, (w, g) in enumerate(zip(arrays, grads, strict=True)):
        # (Ended by the outputs' first spikes, the loss reads no output after a
        # reset: `v_reset` of the outputs, `params[2]`, moves nothing.)
        assert np.any(np.asarray(g) != 0) or (until and k == 5), k
        for index in np.ndindex(w.shape):
            up = [x.at[index].add(eps) if x is w else x for x in arrays]
            down = [x.at[index].add(-eps) if x is w else x for x in arrays]
            fd = (float(f(tuple(up))) - float(f(tuple(down)))) / (2 * eps)
            assert abs(float(g[index]) - fd) <= 1e-5 * (1.0 + abs(fd)), (index, fd, g)


def test_the_refractory_periods_derivative_at_zero_is_the_one_from_the_right(x64):
    """At `t_ref = 0` a refractory period can only grow: the derivative is the
    one-sided difference's (a hold of the reset potential delays the next spike)."""

    def loss(t_ref, gradients="eventprop"):
        neuron = ns.LIF(t_ref=t_ref, tau_mem=10.0, tau_syn=5.0)
        net = ns.Network({"a": ns.Population(neuron, 2, jnp.asarray([1.5, 2.0]))}, [])
        sol = ns.simulate(net, t1=30.0, max_spikes=20, gradients=gradients)
        times = jnp.where(jnp.isfinite(sol.spike_times), sol.spike_times, 0.0)
        return jnp.sum(times * jnp.arange(1.0, 21.0))

    grad = float(jax.grad(loss)(0.0))
    forward = jax.jit(lambda t_ref: loss(t_ref, False))
    eps = 1e-7
    right = (float(forward(eps)) - float(forward(0.0))) / eps
    assert right > 1.0
    assert abs(grad - right) <= 1e-5 * abs(right)


def test_batches_under_vmap_give_each_runs_gradient(x64):
    structure = STRUCTURES["lif"]
    nets = [_no_refractory(draw(seed, structure)) for seed in (0, 1)]
    parts = [_split(net) for net in nets]
    loss = _loss_fn(structure, "eventprop", 1.0, 0.0)
    grad = jax.jit(jax.grad(loss))
    one = [grad(diff, rest, nets[0].delay_table) for diff, rest in parts]
    stack = lambda *xs: jnp.stack(xs)  # noqa: E731
    batched = jax.jit(jax.vmap(jax.grad(loss), in_axes=(0, 0, None)))(
        jax.tree.map(stack, parts[0][0], parts[1][0]),
        jax.tree.map(stack, parts[0][1], parts[1][1]),
        nets[0].delay_table,
    )
    for b, g in enumerate(one):
        for key in g:
            np.testing.assert_allclose(
                np.asarray(batched[key][b]),
                np.asarray(g[key]),
                rtol=0,
                atol=1e-9 * float(np.max(np.abs(np.asarray(g[key])))),
            )


def _small(t_ref=0.0, delay=None, **kw):
    w = jnp.full((4, 4), 0.3)
    net = ns.Network(
        {"a": ns.Population(ns.LIF(t_ref=t_ref), 4, 1.2)},
        [ns.Projection("a", "a", w, delay=delay)],
    )
    return net


@pytest.mark.parametrize(
    "net, kwargs, match",
    [
        (ns.Network({"a": ns.Population(ns.Izhikevich(), 2, 10.0)}, []), {}, "closed form"),
        (
            ns.Network(
                {"a": ns.Population(ns.LIF(), 2, ns.inputs.PulseTrain(1.0, 1.0, 5.0, 2.0))},
                [],
            ),
            {},
            "piecewise constant",
        ),
    ],
)
def test_what_it_cannot_differentiate_is_refused_by_name(net, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ns.simulate(net, t1=20.0, gradients="eventprop", **kwargs)


def test_differentiating_other_parameters_is_refused_by_name():
    """A current's jump times, and the end of a refractory period in the initial or
    final state, are outside the adjoint's scope."""

    def switched_on_at(t_on):
        current = ns.inputs.Step(t_on, 1.5)
        net = ns.Network({"a": ns.Population(ns.LIF(), 4, current)}, [])
        sol = ns.simulate(net, t1=20.0, gradients="eventprop")
        return jnp.sum(sol.final_state["a"].v)

    with pytest.raises(ValueError, match=r"current\.times"):
        jax.grad(switched_on_at)(5.0)

    def held_until(ref_end):
        neuron = ns.LIF(t_ref=2.0)
        y0 = {"a": eqx.tree_at(lambda s: s.ref_end, neuron.init_state(4), ref_end)}
        y0["a"] = eqx.tree_at(lambda s: s.refractory, y0["a"], jnp.ones(4))
        net = ns.Network({"a": ns.Population(neuron, 4, 1.5)}, [])
        sol = ns.simulate(net, t1=20.0, y0=y0, gradients="eventprop")
        return jnp.sum(sol.final_state["a"].v)

    with pytest.raises(ValueError, match="ref_end"):
        jax.grad(held_until)(jnp.full(4, 1.0))

    def last_hold(w):
        net = ns.Network(
            {"a": ns.Population(ns.LIF(t_ref=2.0), 4, 1.5)}, [ns.Projection("a", "a", w)]
        )
        sol = ns.simulate(net, t1=20.0, gradients="eventprop")
        return jnp.sum(sol.final_state["a"].ref_end)

    with pytest.raises(ValueError, match="ref_end.*final state"):
        jax.grad(last_hold)(jnp.full((4, 4), 0.1))


def test_forward_mode_is_refused():
    w = jnp.full((4, 4), 0.3)

    def final(w):
        net = ns.Network(
            {"a": ns.Population(ns.LIF(), 4, 1.2)}, [ns.Projection("a", "a", w)]
        )
        return ns.simulate(net, t1=20.0, gradients="eventprop").final_state["a"].v

    with pytest.raises(TypeError):
        jax.jvp(final, (w,), (jnp.ones_like(w),))
    assert eqx.is_array(jax.grad(lambda w: jnp.sum(final(w)))(w))
