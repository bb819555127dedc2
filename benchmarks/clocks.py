"""The network's clock against per-neuron clocks, on models without a closed form.

`simulate(..., clocks="network")` (the default) solves all neurons together and stops
every one of them at each spike: its cost per simulated second grows as N x spikes.
`clocks="neuron"` solves each neuron alone inside the exact event loop: an event costs
the solves of the neurons it reaches. This script runs both, side by side in one
process, on

- `coba`: the COBA network of Brette et al. (2007) (`neurosim.networks.brette_coba`,
  p = 0.02, weights scaled by 4000 / N so that every size has the published input per
  neuron), and
- `izhikevich`: N independent Izhikevich neurons (one population, no synapses,
  heterogeneous a, b, c, d as in `run_all.py`'s sweep, current 10),

float32 at the default tolerances, forward runs (`gradients=False`). Printed per size:
first call (compilation included) and warm time of each, spikes, loop iterations,
solver steps, and where the two spike lists first differ (float32: 1e-2 ms).

Printed too: the clock that `clocks=None` takes in a forward run (per-neuron clocks
for a network with more than 50 neurons per target of a spike, 10 where its models
have quiet times, as `CobaLIF`).

Usage:
    python benchmarks/clocks.py [--sizes 250 500 1000] [--t1 100] [--workloads coba]
        [--seed 0] [--fan-out 80]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import neurosim as ns

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from _compare import first_divergence  # noqa: E402


def _izhikevich(n, seed=0, fan_out=None):
    sys.path.insert(0, str(HERE))
    from run_all import izhikevich_params

    params = izhikevich_params(n)
    model = ns.Izhikevich(**{k: jnp.asarray(params[k], jnp.float32) for k in "abcd"})
    return dict(model=model, n=n, current=10.0)


def _coba(n, seed=0, fan_out=None):
    if fan_out is None:  # p = 0.02, weights scaled to the input of 4000 neurons
        net, y0 = ns.networks.brette_coba(seed, n=n, we=0.6 * 4000 / n, wi=6.7 * 4000 / n)
    else:  # `fan_out` targets per neuron, the weights of 4000 neurons
        net, y0 = ns.networks.brette_coba(seed, n=n, fan_out=fan_out)
    return dict(model=net, y0=y0)


WORKLOADS = {"coba": _coba, "izhikevich": _izhikevich}


def _timed(fn):
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - start


def default_clock(model):
    """The clock `simulate(..., clocks=None, gradients=False)` takes for a network."""
    from neurosim._clock import OdeClock
    from neurosim._simulate import CLOCK_HORIZON, _neuron_clocks_pay
    from neurosim._system import NetworkSystem

    if not isinstance(model, ns.Network):
        return "lanes or network"
    clock = OdeClock(
        diffrax.Tsit5(), diffrax.PIDController(rtol=1e-6, atol=1e-6), 16, CLOCK_HORIZON
    )
    return (
        "neuron" if _neuron_clocks_pay(NetworkSystem(model, None, 8), clock) else "network"
    )


def compare(workload, n, t1, seed=0, fan_out=None):
    kwargs = WORKLOADS[workload](n, seed=seed, fan_out=fan_out)
    model = kwargs.pop("model")
    row = {"workload": workload, "n": n, "t1": t1, "seed": seed, "fan_out": fan_out}
    row["default"] = default_clock(model)
    spikes = {}
    for clocks in ("network", "neuron"):

        def run(clocks=clocks):
            return ns.simulate(
                model,
                t1=t1,
                clocks=clocks,
                max_spikes=int(n * t1 / 1000 * 100) + 1000,
                gradients=False,
                **kwargs,
            )

        _, first = _timed(run)
        sol, warm = _timed(run)
        spikes[clocks] = sol.spikes()
        row[clocks] = {
            "first_s": first,
            "warm_s": warm,
            "spikes": int(sol.num_spikes),
            "iterations": int(sol.iterations),
            "solver_steps": int(sol.solver_steps),
            "status": int(sol.status),
        }
    agreement = first_divergence(spikes["network"], spikes["neuron"], atol=1e-2, t1=t1)
    row["agreement"] = str(agreement)
    row["ratio_neuron_to_network"] = row["neuron"]["warm_s"] / row["network"]["warm_s"]
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000])
    parser.add_argument("--t1", type=float, default=100.0)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fan-out",
        type=int,
        help="COBA: this many targets per neuron (the weights of 4000 neurons) "
        "instead of p = 0.02",
    )
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    rows = []
    for workload in args.workloads:
        for n in args.sizes:
            row = compare(workload, n, args.t1, args.seed, args.fan_out)
            rows.append(row)
            net, own = row["network"], row["neuron"]
            print(
                f"{workload} N={n} t1={args.t1:g} ms: network {net['warm_s']:.2f} s "
                f"(first {net['first_s']:.1f} s, {net['spikes']} spikes, "
                f"{net['iterations']} iterations, {net['solver_steps']} steps); "
                f"per-neuron {own['warm_s']:.2f} s (first {own['first_s']:.1f} s, "
                f"{own['spikes']} spikes, {own['iterations']} iterations, "
                f"{own['solver_steps']} steps); ratio {row['ratio_neuron_to_network']:.2f}; "
                f"default: {row['default']}; {row['agreement']}",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
