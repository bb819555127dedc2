# %% [markdown]
# # The 20 Izhikevich behaviours, exact and as published
#
# Izhikevich (2004), Fig. 1, drew 20 firing behaviours with fixed Euler steps of 0.1 to
# 0.5 ms. neurosim integrates the same equations in continuous time with exact spike
# times, and can also reproduce the figure's scheme (`figure_step=True`:
# `SequentialEuler` at the published step, reset at the end of the crossing step).
#
# Run as a script (`.venv/bin/python notebooks/izhikevich_gallery.py`) or open it as a
# notebook (Jupyter with jupytext, or VS Code). It writes
# `out/izhikevich_gallery.png`.

# %%
import os

import matplotlib

matplotlib.use("Agg")
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import neurosim as ns

jax.config.update("jax_enable_x64", True)

# %% [markdown]
# Each behaviour comes with its neuron, its stimulus protocol (a `PiecewiseLinear`
# current that announces its jumps to the solver) and the figure's step. Where the exact
# model does not show the behaviour with the published values (DAP, bistability,
# inhibition-induced bursting), `continuous=True` gives a documented variant that does.

# %%
names = ns.IZHIKEVICH_BEHAVIOURS
fig, axes = plt.subplots(5, 4, figsize=(16, 14))
for ax, name in zip(axes.ravel(), names):
    figure_panel = ns.izhikevich_behaviour(name)
    exact_panel = ns.izhikevich_behaviour(name, continuous=True)
    ts = jnp.linspace(0.0, figure_panel.t1, 2001)
    figure = figure_panel.simulate(figure_step=True, record=ts, max_spikes=256)
    exact = exact_panel.simulate(record=ts, rtol=1e-8, atol=1e-8, max_spikes=256)
    t = np.asarray(ts)
    ax.plot(
        t, np.asarray(figure.states.v[:, 0]), lw=0.8, color="0.6", label="figure scheme"
    )
    ax.plot(t, np.asarray(exact.states.v[:, 0]), lw=0.8, color="tab:blue", label="exact")
    for s in exact.spike_train(0):
        ax.axvline(s, ymin=0.93, ymax=1.0, color="tab:blue", lw=0.8)
    stimulus = np.asarray(jax.vmap(exact_panel.current)(ts))
    span = np.ptp(stimulus)
    scaled = -95 + 10 * (stimulus - stimulus.min()) / (span if span > 0 else 1.0)
    ax.plot(t, scaled, color="black", lw=0.8)
    tag = "" if figure_panel.shown_by_exact_model else " (variant)"
    ax.set_title(name.replace("_", " ") + tag, fontsize=10)
    ax.set_ylim(-100, 40)
    ax.set_xticks([])
    ax.set_yticks([])
axes[0, 0].legend(loc="lower right", fontsize=7)
fig.suptitle(
    "Izhikevich (2004) behaviours: exact continuous-time model (blue) and the figure's Euler scheme (grey)"
)
fig.tight_layout()
os.makedirs("out", exist_ok=True)
fig.savefig("out/izhikevich_gallery.png", dpi=90)
print("wrote out/izhikevich_gallery.png")

# %% [markdown]
# What the exact model does differently, and why, is in the docstring of
# `neurosim.neurons.izhikevich` and in each behaviour's `description`:

# %%
for name in names:
    panel = ns.izhikevich_behaviour(name)
    if not panel.shown_by_exact_model:
        print(f"{name}: {panel.description}\n")
