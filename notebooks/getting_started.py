# %% [markdown]
# # Getting started with neurosim
#
# Exact spike times, networks, and gradients through spike times. Time is in ms.
# Run as a script (`.venv/bin/python notebooks/getting_started.py`) or open it as a
# notebook (Jupyter with jupytext, or VS Code).

# %%
import jax
import jax.numpy as jnp
import numpy as np
import optax

import neurosim as ns

jax.config.update("jax_enable_x64", True)

# %% [markdown]
# ## One LIF neuron: spike times in closed form
# With `tau_mem = 10`, threshold 1 and a constant drive of 1.5, the neuron fires every
# `10 ln 3` ms. neurosim finds each crossing by root finding on the solver's dense
# output: no time grid.

# %%
sol = ns.simulate(ns.LIF(tau_mem=10.0), n=1, t1=100.0, current=1.5, rtol=1e-10, atol=1e-10)
times, _ = sol.spikes()
print("spike times:", np.round(times, 6))
print(
    "max error vs k * 10 ln 3:",
    np.max(np.abs(times - np.arange(1, len(times) + 1) * 10 * np.log(3))),
)

# %% [markdown]
# ## A small network: LIF hidden layer, leaky-integrator readout
# Populations and projections; the input is Poisson spike trains.

# %%
key = jax.random.PRNGKey(0)
k_in, k_w1, k_w2 = jax.random.split(key, 3)
times, sources = ns.inputs.poisson_spikes(k_in, 40.0, num_sources=20, t1=200.0)
w_in = 0.4 * jax.random.uniform(k_w1, (20, 50))
w_out = 0.2 * jax.random.normal(k_w2, (50, 2))
net = ns.Network(
    populations={
        "hidden": ns.Population(ns.LIF(tau_mem=10.0, tau_syn=5.0, t_ref=2.0), 50),
        "readout": ns.Population(ns.LI(tau_mem=20.0, tau_syn=5.0), 2),
    },
    projections=[
        ns.Projection("drive", "hidden", w_in),
        ns.Projection("hidden", "readout", w_out),
    ],
    inputs={"drive": ns.SpikeTrains(times, sources, num_sources=20)},
)
record = jnp.linspace(0.0, 200.0, 401)
sol = ns.simulate(
    net, t1=200.0, record=record, record_fields={"readout": ("v",)}, max_spikes=4000
)
print(
    "hidden spikes:",
    len(sol.spikes("hidden")[0]),
    "mean rate:",
    sol.rates("hidden").mean().round(1),
    "Hz",
)
print("readout v at 200 ms:", np.asarray(sol.states["readout"]["v"][-1]))

# %% [markdown]
# ## Gradient-based fitting through spike times
# Recover the membrane time constants of three neurons from their first three spike
# times. The loss is a smooth function of exact spike times, so `jax.grad` gives its
# gradient with respect to `tau_mem` (checked against finite differences in the test
# suite), and optax does the rest.

# %%
true_tau = jnp.array([8.0, 12.0, 15.0])
drive = jnp.array([1.4, 1.6, 2.0])


def first_spikes(tau):
    sol = ns.simulate(ns.LIF(tau_mem=tau), n=3, t1=120.0, current=drive, max_spikes=64)
    # The k-th spike of each neuron (spike buffers are sorted by time).
    per_neuron = jnp.where(
        sol.spike_neurons[None, :] == jnp.arange(3)[:, None],
        sol.spike_times[None, :],
        jnp.inf,
    )
    return jnp.sort(per_neuron, axis=1)[:, :3]


target = first_spikes(true_tau)


@jax.jit
def loss(log_tau):
    return jnp.mean((first_spikes(jnp.exp(log_tau)) - target) ** 2)


params = jnp.log(jnp.array([10.0, 10.0, 10.0]))
optimiser = optax.adam(0.05)
state = optimiser.init(params)
value_and_grad = jax.jit(jax.value_and_grad(loss))
for step in range(150):
    value, grad = value_and_grad(params)
    updates, state = optimiser.update(grad, state)
    params = optax.apply_updates(params, updates)
    if step % 50 == 0:
        print(f"step {step:3d}  loss {float(value):.3e}  tau {np.round(np.exp(params), 3)}")
print("fitted tau_mem:", np.round(np.exp(params), 3), " true:", np.asarray(true_tau))
