"""A batch of simulations (trials of a Poisson-driven LIF layer with different time
constants) on one device versus sharded over several with `jax.sharding`.

On CPU the devices are host devices (`--xla_force_host_platform_device_count`), which
share the machine's cores: the speed-up is bounded by the number of cores. On a GPU
or TPU host the same code spreads the batch over the accelerators.

Usage: `python benchmarks/sharding.py [--devices 4] [--batch 64] [--n 100]`.
Prints the wall time of one jitted, vmapped call (median of 3 after a compile call) on
one device and sharded over all devices, and checks that both give the same spikes.
"""

import argparse
import os
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--t1", type=float, default=200.0)
    args = parser.parse_args()
    if "jax" in sys.modules:
        raise RuntimeError(
            "run this script directly: XLA flags must be set before JAX starts"
        )
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={args.devices}"
    )
    import statistics
    import time

    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import neurosim as ns

    n_in = 20

    def trial(key, tau_mem):
        times, sources = ns.inputs.poisson_spikes(
            key, 40.0, num_sources=n_in, t1=args.t1, max_per_source=64
        )
        weights = jax.random.uniform(jax.random.fold_in(key, 1), (n_in, args.n))
        sol = ns.simulate(
            ns.LIF(tau_mem=tau_mem),
            n=args.n,
            t1=args.t1,
            input_spikes=(times, sources),
            input_weights=weights,
            max_spikes=20_000,
            gradients=False,
        )
        return sol.spike_times, sol.num_spikes

    keys = jax.random.split(jax.random.PRNGKey(0), args.batch)
    taus = jnp.linspace(5.0, 20.0, args.batch)
    run = jax.jit(jax.vmap(trial))
    devices = jax.devices()
    mesh = Mesh(np.array(devices), ("batch",))
    sharded = NamedSharding(mesh, PartitionSpec("batch"))
    placements = {
        "1 device": (jax.device_put(keys, devices[0]), jax.device_put(taus, devices[0])),
        f"{len(devices)} devices": (
            jax.device_put(keys, sharded),
            jax.device_put(taus, sharded),
        ),
    }
    print(
        f"batch of {args.batch} trials, {args.n} LIF neurons, {args.t1} ms each; "
        f"jax {jax.__version__}, {len(devices)} {devices[0].platform} devices, "
        f"{os.cpu_count()} cores"
    )
    results, medians = {}, {}
    for label, inputs in placements.items():
        start = time.perf_counter()
        out = jax.block_until_ready(run(*inputs))
        first = time.perf_counter() - start
        walls = []
        for _ in range(3):
            start = time.perf_counter()
            out = jax.block_until_ready(run(*inputs))
            walls.append(time.perf_counter() - start)
        results[label], medians[label] = out, statistics.median(walls)
        spikes = int(jnp.sum(out[1]))
        print(
            f"  {label:>10}: {medians[label]:.3f} s per batch (first call {first:.2f} s), "
            f"{spikes} spikes, output on {len(out[0].sharding.device_set)} device(s)"
        )
    (one, many) = results.values()
    counts_one, counts_many = np.asarray(one[1]), np.asarray(many[1])
    ratio = list(medians.values())[0] / list(medians.values())[1]
    # float32: the batched programs differ in fusion and rounding, so a near-threshold
    # crossing can occasionally go the other way.
    print(
        f"  speed-up {ratio:.2f}x; spike counts identical in "
        f"{int(np.sum(counts_one == counts_many))} of {args.batch} trials "
        f"(largest difference {int(np.max(np.abs(counts_one - counts_many)))})"
    )


if __name__ == "__main__":
    main()
