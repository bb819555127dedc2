"""The baseline: a straightforward event-driven LIF network written directly with diffrax.

One `diffeqsolve` per spike (Tsit5, PID controller, `diffrax.Event` on the maximum of
`v - v_th` with `optimistix.Newton`), then the reset and a dense synaptic jump
`i += fired @ W`, inside an `equinox.internal.while_loop`, with `dt0=None` (diffrax
picks the first step of every solve). This is the loop a user writes first; `per_event.py` measures neurosim against it on the same network.
"""

import diffrax as dfx
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import optimistix as optx


class PlainState(eqx.Module):
    t: jax.Array
    v: jax.Array
    i: jax.Array
    spike_times: jax.Array
    spike_neurons: jax.Array
    num_spikes: jax.Array


def _vector_field(t, y, args):
    v, i = y
    tau_mem, tau_syn, current = args
    return (-v + i + current) / tau_mem, -i / tau_syn


def _cond(t, y, args, **kwargs):
    v, _ = y
    return jnp.max(v) - 1.0


@eqx.filter_jit
def run_plain(weights, current, v0, t1, tau_mem=20.0, tau_syn=5.0, max_spikes=10_000):
    """Simulate LIF neurons (v_th = 1, v_reset = 0, v_leak = 0) with dense recurrent
    `weights` (row = presynaptic); returns spike times and neurons."""
    n = v0.shape[0]
    event = dfx.Event(_cond, root_finder=optx.Newton(rtol=1e-6, atol=1e-6), direction=True)

    def body(state: PlainState):
        sol = dfx.diffeqsolve(
            dfx.ODETerm(_vector_field),
            dfx.Tsit5(),
            state.t,
            t1,
            None,
            (state.v, state.i),
            args=(tau_mem, tau_syn, current),
            event=event,
            stepsize_controller=dfx.PIDController(rtol=1e-6, atol=1e-6),
            max_steps=100_000,
            # In float32, Newton at these tolerances on absolute time often hits its
            # iteration cap; the plain loop carries on with the last iterate.
            throw=False,
        )
        t = sol.ts[-1]
        v, i = sol.ys[0][-1], sol.ys[1][-1]
        hit = sol.result == dfx.RESULTS.event_occurred
        fired = hit & (v >= jnp.max(v))
        slot = jnp.where(fired, state.num_spikes, max_spikes)
        i = i + fired.astype(v.dtype) @ weights
        v = jnp.where(fired, 0.0, v)
        return PlainState(
            t=t,
            v=v,
            i=i,
            spike_times=state.spike_times.at[slot].set(t, mode="drop"),
            spike_neurons=state.spike_neurons.at[slot].set(jnp.arange(n), mode="drop"),
            num_spikes=state.num_spikes + jnp.sum(fired),
        )

    def cond(state):
        return (state.t < t1) & (state.num_spikes < max_spikes)

    init = PlainState(
        t=jnp.asarray(0.0, v0.dtype),
        v=v0,
        i=jnp.zeros_like(v0),
        spike_times=jnp.full((max_spikes,), jnp.inf, v0.dtype),
        spike_neurons=jnp.full((max_spikes,), -1, jnp.int32),
        num_spikes=jnp.asarray(0, jnp.int32),
    )
    final = eqxi.while_loop(cond, body, init, max_steps=4 * max_spikes, kind="checkpointed")
    return final.spike_times, final.spike_neurons, final.num_spikes
