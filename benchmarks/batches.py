"""Batches of event-loop runs on the CPU: `jax.vmap` against `neurosim.batch_map` (the
runs one after another, each compiled as a single run), side by side in one process.

Workloads (float32): trials of a 20-neuron LIF layer driven by Poisson spikes, each
with its own time constant (tests/_sharded_run.py's `trial`, 100 ms); populations of
50 Izhikevich neurons with different reset increments `d` (200 ms, constant current);
and the value and gradient of the trials' summed spike times with respect to the time
constants. Prints the first call (compilation and run) and the best of the warm calls,
and checks that both forms give the same spike counts.

Usage: `python benchmarks/batches.py [--batch 32] [--repeats 7]`.
"""

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import neurosim as ns

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _sharded_run import trial  # noqa: E402
from gradients import _time  # noqa: E402  (benchmarks/gradients.py)


def _timed(fn, args, repeats):
    first, best = _time(fn, *args, repeats=repeats)
    return first, best, fn(*args)


def _izhikevich(d):
    sol = ns.simulate(
        ns.Izhikevich(d=d), n=50, t1=200.0, current=10.0, max_spikes=2000, gradients=False
    )
    return sol.num_spikes


def _trial_loss(tau, key):
    times, _ = trial(key, tau)
    return jnp.sum(jnp.where(jnp.isfinite(times), times, 0.0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    b = args.batch
    keys = jax.random.split(jax.random.PRNGKey(0), b)
    taus = jnp.linspace(5.0, 20.0, b)
    ds = jnp.linspace(2.0, 8.0, b)

    def counts(out):
        return int(np.sum(np.asarray(out[1] if isinstance(out, tuple) else out)))

    workloads = [
        (f"{b} trials, 20 LIF + Poisson inputs, forward", trial, (keys, taus), counts),
        (f"{b} populations of 50 Izhikevich, forward", _izhikevich, (ds,), counts),
    ]
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, batch {b}")
    print(f"{'workload':<52} {'form':<10} {'first s':>8} {'best ms':>9}  check")
    for name, fn, fargs, check in workloads:
        results = {}
        for form, batched in (("vmap", jax.vmap(fn)), ("batch_map", ns.batch_map(fn))):
            first, warm, out = _timed(jax.jit(batched), fargs, args.repeats)
            results[form] = (warm, check(out))
            print(
                f"{name:<52} {form:<10} {first:8.1f} {warm * 1e3:9.1f}  spikes {check(out)}"
            )
        ratio = results["batch_map"][0] / results["vmap"][0]
        same = results["batch_map"][1] == results["vmap"][1]
        print(f"{'':<52} ratio batch_map / vmap {ratio:.2f}, same spike count: {same}")
    name = f"{b} trials, value and gradient w.r.t. tau_mem"
    results = {}
    for form, batched in (("vmap", jax.vmap), ("batch_map", ns.batch_map)):
        grad = jax.jit(
            jax.value_and_grad(lambda t, f=batched: jnp.sum(f(_trial_loss)(t, keys)))
        )
        first, warm, (value, g) = _timed(grad, (taus,), max(3, args.repeats // 2))
        results[form] = warm
        print(
            f"{name:<52} {form:<10} {first:8.1f} {warm * 1e3:9.1f}  loss {float(value):.2f}"
        )
    ratio = results["batch_map"] / results["vmap"]
    print(f"{'':<52} ratio batch_map / vmap {ratio:.2f}")


if __name__ == "__main__":
    main()
