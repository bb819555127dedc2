"""The Vogels-Abbott CUBA network (Brian2's example), simulated event by event.

4000 LIF neurons (3200 excitatory, 800 inhibitory), p = 0.02, taum = 20 ms,
taue = 5 ms, taui = 10 ms, Vt = -50 mV, Vr = -60 mV, El = -49 mV, 5 ms refractory
period, we = 60*0.27/10 mV, wi = -20*4.5/10 mV, v0 uniform in [Vr, Vt], 1 s.

Usage: `python benchmarks/cuba.py [--n 4000] [--t1 1000] [--seeds 0 1 2 3]`.
Prints spikes, mean rate, compile and run wall time for each seed.
"""

import argparse
import time

import jax

import neurosim as ns


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--t1", type=float, default=1000.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--gradients",
        action="store_true",
        help="run the differentiable (checkpointed) loop",
    )
    args = parser.parse_args()
    scale = 4000 / args.n  # keep the input per neuron when the network is smaller
    print(
        f"CUBA: n={args.n}, t1={args.t1} ms, jax {jax.__version__} on {jax.devices()[0].platform}"
    )
    for seed in args.seeds:
        net, y0 = ns.networks.vogels_abbott_cuba(
            seed, n=args.n, we=60 * 0.27 / 10 * scale, wi=-20 * 4.5 / 10 * scale
        )

        def run():
            return jax.block_until_ready(
                ns.simulate(
                    net, t1=args.t1, y0=y0, max_spikes=400_000, gradients=args.gradients
                )
            )

        start = time.perf_counter()
        run()
        first = time.perf_counter() - start
        start = time.perf_counter()
        sol = run()
        wall = time.perf_counter() - start
        spikes = int(sol.num_spikes)
        rate = spikes / args.n / (args.t1 / 1000.0)
        print(
            f"  seed {seed}: {spikes} spikes, mean rate {rate:.2f} Hz, run {wall:.2f} s "
            f"(first call {first:.2f} s incl. compile), {int(sol.iterations)} loop iterations"
        )


if __name__ == "__main__":
    main()
