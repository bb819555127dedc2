"""The same simulations on every backend JAX sees (CPU, and a GPU where there is one),
side by side in one process: first call, warm calls, spikes, and where the spike lists
of each backend part from the CPU's.

Workloads (float32, default tolerances, forward runs):

- `cuba`: `vogels_abbott_cuba` at `--n` neurons (exact loop, closed form);
- `coba`: `brette_coba` seed 1 at `--n` neurons (per-neuron clocks), weights scaled by
  4000 / n as in `run_all.py`;
- `layered`: the Yin-Yang 5-120-3 network of `examples/yinyang.py` on 256 points
  (`exact="layered"`, first spikes only: the batched path).

Each workload runs on one device at a time (`jax.default_device`); a workload that
takes longer than `--budget` seconds on its first call is not called again there.

Usage:
    python benchmarks/backends.py [--n 4000] [--t1 1000] [--workloads cuba coba layered]
        [--repeats 2] [--budget 120]
"""

import argparse
import os
import statistics
import sys
import time

import jax
import numpy as np

import neurosim as ns

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")
)


def cuba(n, t1):
    scale = 4000 / n
    net, y0 = ns.networks.vogels_abbott_cuba(
        0, n=n, we=60 * 0.27 / 10 * scale, wi=-20 * 4.5 / 10 * scale
    )
    return lambda: ns.simulate(net, t1=t1, y0=y0, max_spikes=100 * n, gradients=False)


def coba(n, t1):
    scale = 4000 / n
    net, y0 = ns.networks.brette_coba(1, n=n, we=0.6 * scale, wi=6.7 * scale)
    return lambda: ns.simulate(net, y0=y0, t1=t1, gradients=False, max_spikes=100 * n)


def layered(n, t1):
    """The Yin-Yang 5-120-3 network of `examples/yinyang.py` on 256 points, first
    spikes by the layered path (no event loop), as `gradients.py` runs it."""
    import yinyang as yy

    params = yy.init_params(jax.random.PRNGKey(0))
    points, _ = yy.yinyang(256, seed=42)

    def first_times(point):
        sol = ns.simulate(
            yy.network(params, point),
            t1=yy.T1,
            max_spikes=yy.MAX_SPIKES,
            gradients=False,
            exact="layered",
        )
        return sol.first_spike_times("out")

    run = jax.jit(jax.vmap(first_times))
    return lambda: run(points)


WORKLOADS = {"cuba": cuba, "coba": coba, "layered": layered}


def spike_list(out):
    """The (time, neuron) lists of a solution, or the first-spike array."""
    if isinstance(out, ns.Solution):
        t, i = out.spikes()
        return np.asarray(t), np.asarray(i)
    return np.asarray(out), None


def parting(a, b, atol=1e-2):
    """How many entries of two spike lists agree (same neuron, times within `atol`
    ms) before the first that does not, and the time there."""
    (ta, ia), (tb, ib) = a, b
    k = min(len(ta), len(tb))
    if ia is None:  # first-spike arrays: compared entry by entry
        ta, tb = ta.ravel(), tb.ravel()
        same = np.isclose(ta, tb, atol=atol, rtol=0) | (np.isinf(ta) & np.isinf(tb))
        return f"{int(same.sum())} of {same.size} first spikes within {atol} ms"
    same = (ia[:k] == ib[:k]) & (np.abs(ta[:k] - tb[:k]) <= atol)
    first = int(np.argmin(same)) if not same.all() else k
    where = f"parted at {float(tb[first]):.2f} ms" if first < len(tb) else "never parted"
    return f"{len(ta)} vs {len(tb)} spikes, the same {first} first; {where}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--t1", type=float, default=1000.0)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--budget", type=float, default=120.0)
    args = parser.parse_args()
    devices = {}
    for platform in ("cpu", "gpu", "tpu"):
        try:
            devices[platform] = jax.devices(platform)[0]
        except RuntimeError:
            pass
    print(f"JAX {jax.__version__}; devices: {', '.join(map(str, devices.values()))}")
    for name in args.workloads:
        reference = None
        for platform, device in devices.items():
            with jax.default_device(device):
                fn = WORKLOADS[name](args.n, args.t1)
                start = time.perf_counter()
                out = jax.block_until_ready(fn())
                first = time.perf_counter() - start
                warm = []
                for _ in range(args.repeats if first < args.budget else 0):
                    start = time.perf_counter()
                    out = jax.block_until_ready(fn())
                    warm.append(time.perf_counter() - start)
            spikes = spike_list(out)
            line = f"{name} on {platform}: first call {first:.2f} s"
            if warm:
                line += f", warm {min(warm):.3f} s (median {statistics.median(warm):.3f})"
            if reference is None:
                reference = spikes
                line += f"; {len(spikes[0])} spikes" if spikes[1] is not None else ""
            else:
                line += f"; against the CPU: {parting(spikes, reference)}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
