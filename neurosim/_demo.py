"""The demo: a small recurrent LIF network driven by Poisson input spikes.

200 LIF neurons (80% excitatory, 20% inhibitory, 10% random recurrent connectivity)
receive 100 Poisson input trains at 10 Hz for 1 s. Prints a summary, writes the spike
table to `out/spikes.csv` and, when matplotlib is installed, a raster to
`out/raster.png`.
"""

import csv
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from ._simulate import simulate
from ._spikes import poisson_spikes
from .neurons import LIF

N, N_EXC, N_INPUTS = 200, 160, 100
T1 = 1000.0


def build(seed: int):
    key_w, key_in, key_p, key_v = jax.random.split(jax.random.PRNGKey(seed), 4)
    connected = jax.random.bernoulli(key_w, 0.1, (N, N)) & ~jnp.eye(N, dtype=bool)
    sign = jnp.where(jnp.arange(N) < N_EXC, 1.0, -4.0)[:, None]
    weights = jnp.where(connected, 0.25 * sign, 0.0)
    input_weights = jnp.where(jax.random.bernoulli(key_in, 0.2, (N_INPUTS, N)), 1.2, 0.0)
    inputs = poisson_spikes(key_p, 10.0, num_sources=N_INPUTS, t1=T1)
    neuron = LIF(tau_mem=20.0, tau_syn=5.0, v_th=1.0, v_reset=0.0, t_ref=2.0)
    v0 = jax.random.uniform(key_v, (N,), minval=0.0, maxval=1.0)
    y0 = neuron.init_state(N)
    y0 = type(y0)(v=v0, i=y0.i, refractory=y0.refractory, ref_end=y0.ref_end)
    return neuron, weights, inputs, input_weights, y0


def simulate_demo(neuron, weights, inputs, input_weights, y0, **kwargs):
    """The demo's simulation (`build`'s outputs; extra `simulate` arguments)."""
    return simulate(
        neuron,
        n=N,
        t1=T1,
        weights=weights,
        input_spikes=inputs,
        input_weights=input_weights,
        y0=y0,
        max_spikes=20_000,
        **kwargs,
    )


def run_demo(out_dir: str = "out", seed: int = 0) -> None:
    neuron, weights, inputs, input_weights, y0 = build(seed)

    def run():
        return simulate_demo(neuron, weights, inputs, input_weights, y0)

    start = time.perf_counter()
    sol = jax.block_until_ready(run())
    first = time.perf_counter() - start
    start = time.perf_counter()
    sol = jax.block_until_ready(run())
    second = time.perf_counter() - start

    times, neurons = sol.spikes()
    rates = sol.rates(N)
    n_input_spikes = int(np.isfinite(np.asarray(inputs[0])).sum())
    print("neurosim demo: recurrent LIF network driven by Poisson inputs")
    print(
        f"  neurons: {N} ({N_EXC} excitatory, {N - N_EXC} inhibitory), inputs: {N_INPUTS} x 10 Hz"
    )
    print(
        f"  simulated: {T1:.0f} ms, input spikes: {n_input_spikes}, output spikes: {len(times)}"
    )
    print(
        f"  mean rate: {rates.mean():.2f} Hz (excitatory {rates[:N_EXC].mean():.2f} Hz, "
        f"inhibitory {rates[N_EXC:].mean():.2f} Hz)"
    )
    print(
        f"  wall time: first call {first:.2f} s (includes compilation), second call {second:.3f} s"
    )
    print(
        f"  event-loop iterations: {int(sol.iterations)}, segments or solver steps: "
        f"{int(sol.solver_steps)} (the LIF network is solved in closed form)"
    )

    os.makedirs(out_dir, exist_ok=True)
    table = os.path.join(out_dir, "spikes.csv")
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time_ms", "neuron"])
        writer.writerows(zip(np.round(times, 6).tolist(), neurons.tolist()))
    print(f"  wrote {table}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            "  matplotlib is not installed: no raster plot (pip install 'neurosim[plot]')"
        )
        return
    fig, ax = plt.subplots(figsize=(8, 4))
    exc = neurons < N_EXC
    ax.plot(
        times[exc], neurons[exc], "|", color="tab:blue", markersize=3, label="excitatory"
    )
    ax.plot(
        times[~exc], neurons[~exc], "|", color="tab:red", markersize=3, label="inhibitory"
    )
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("neuron")
    ax.set_title(f"{len(times)} spikes, mean rate {rates.mean():.1f} Hz")
    ax.legend(loc="upper right")
    fig.tight_layout()
    raster = os.path.join(out_dir, "raster.png")
    fig.savefig(raster, dpi=120)
    print(f"  wrote {raster}")
