"""Per-event cost: neurosim against the plain diffrax loop (`plain_diffrax.py`).

The same network for both: N LIF neurons (tau_mem = 20 ms, tau_syn = 5 ms, v_th = 1,
v_reset = 0), constant drives spread over [1.05, 1.5] so that the neurons fire
asynchronously, and sparse random recurrent weights (p = 0.02, 80% excitatory at
+0.02, 20% inhibitory at -0.08). Both are compiled first and timed on a second call;
events per second = spikes / wall time. Prints a table with the ratio.

Usage: `python benchmarks/per_event.py [N ...]` (default 10 100 1000 4000).
"""

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from plain_diffrax import run_plain

import neurosim as ns


def network(n, seed=0):
    rng = np.random.default_rng(seed)
    connected = rng.random((n, n)) < 0.02
    np.fill_diagonal(connected, False)
    sign = np.where(np.arange(n) < int(0.8 * n), 0.02, -0.08)
    weights = connected * sign[:, None]
    current = np.linspace(1.05, 1.5, n)
    v0 = rng.random(n)
    return weights, current, v0


def timed(fn):
    jax.block_until_ready(fn())
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - start


def main():
    sizes = [int(x) for x in sys.argv[1:]] or [10, 100, 1000, 4000]
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, float32")
    print(
        f"{'N':>6} {'t1 ms':>7} {'spikes':>7} {'neurosim s':>11} {'events/s':>9} "
        f"{'spikes':>7} {'plain s':>8} {'events/s':>9} {'speed-up':>8}"
    )
    for n in sizes:
        weights, current, v0 = network(n)
        t1 = float(max(20.0, 4000.0 / n * 20.0))
        pre, post = np.nonzero(weights)
        lif = ns.LIF(tau_mem=20.0, tau_syn=5.0)
        net = ns.Network(
            populations={"p": ns.Population(lif, n, jnp.asarray(current, jnp.float32))},
            projections=[ns.Projection("p", "p", (pre, post, weights[pre, post]))],
        )
        y0 = {"p": ns.LIF().init_state(n)}
        y0["p"] = type(y0["p"])(
            v=jnp.asarray(v0, jnp.float32),
            i=y0["p"].i,
            refractory=y0["p"].refractory,
            ref_end=y0["p"].ref_end,
        )
        sol, wall_ns = timed(lambda: ns.simulate(net, t1=t1, y0=y0, max_spikes=20_000))
        spikes = int(sol.num_spikes)
        (_, _, plain_spikes), wall_plain = timed(
            lambda: run_plain(
                jnp.asarray(weights, jnp.float32),
                jnp.asarray(current, jnp.float32),
                jnp.asarray(v0, jnp.float32),
                t1,
                max_spikes=20_000,
            )
        )
        plain_rate = int(plain_spikes) / wall_plain
        print(
            f"{n:>6} {t1:>7.0f} {spikes:>7} {wall_ns:>11.3f} {spikes / wall_ns:>9.0f} "
            f"{int(plain_spikes):>7} {wall_plain:>8.3f} {plain_rate:>9.0f} "
            f"{(spikes / wall_ns) / plain_rate:>8.2f}"
        )


if __name__ == "__main__":
    main()
