"""Long runs: does the exact loop keep the resolution of the absolute time?

One LIF (tau_mem = 10 ms, tau_syn = 5 ms, threshold 1, reset 0, constant input 1.5)
fires every 10 ln 3 ms. Its k-th spike is compared with k * 10 ln 3 (float64) for
k = 1e3, 1e4, 1e5 (t up to 1.1e6 ms), in the precision enabled: the largest error in
ms and in spacings of the precision at t_k, and the spikes lost or gained.

Usage: `python benchmarks/drift.py [--x64] [--json] [--ks 1000 10000 100000]`.
"""

import argparse
import json
import math
import time

import jax
import numpy as np

PERIOD = 10.0 * math.log(3.0)


def drift(k):
    """One run of k spikes in the precision enabled; its figures."""
    import neurosim as ns

    start = time.perf_counter()
    sol = ns.simulate(
        ns.LIF(tau_mem=10.0, tau_syn=5.0, v_th=1.0, v_reset=0.0),
        n=1,
        t1=(k + 0.5) * PERIOD,
        current=1.5,
        max_spikes=k + 100,
        gradients=False,
    )
    times = np.asarray(jax.block_until_ready(sol.spike_times), np.float64)
    wall = time.perf_counter() - start
    count = int(sol.num_spikes)
    times = times[: min(count, k)]
    expected = PERIOD * np.arange(1, len(times) + 1)
    dtype = np.float64 if jax.config.jax_enable_x64 else np.float32
    spacing = np.spacing(expected.astype(dtype)).astype(np.float64)
    error = np.abs(times - expected)
    return {
        "dtype": np.dtype(dtype).name,
        "k": k,
        "t_k_ms": float(k * PERIOD),
        "spikes": count,
        "lost_or_gained": count - k,
        "max_abs_error_ms": float(error.max()),
        "error_at_k_ms": float(error[-1]),
        "max_error_spacings": float((error / spacing).max()),
        "wall_s": wall,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--x64", action="store_true", help="float64")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--ks", type=int, nargs="+", default=[1000, 10_000, 100_000])
    args = parser.parse_args()
    if args.x64:
        jax.config.update("jax_enable_x64", True)
    rows = [drift(k) for k in args.ks]
    if args.json:
        print(json.dumps(rows))
        return
    for r in rows:
        print(
            f"{r['dtype']} k={r['k']}: {r['spikes']} spikes, max error "
            f"{r['max_abs_error_ms']:.3g} ms = {r['max_error_spacings']:.2f} spacings, "
            f"{r['wall_s']:.2f} s"
        )


if __name__ == "__main__":
    main()
