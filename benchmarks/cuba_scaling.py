"""CUBA at growing size with a fixed fan-out: cost per spike, build time, peak memory.

`vogels_abbott_cuba(n=N, fan_out=80)`: every neuron projects to 80 distinct targets
with the weights of the 4000-neuron network, so the input per neuron (and the rate)
stays the same at every N, and the work per spike is the same 80 deliveries. An
event-driven simulator whose cost per event does not grow with N shows a flat cost
per spike; a clock-driven one pays per neuron and per step instead.

Each size runs alone in a child process, so that its peak resident memory is that
size's: the build (Python side), the first call (compilation included) and one warm
call of `simulate`, float32, exact spike times. With `--brian2-python`, Brian2's
`cuba_fan_out` workload (`brian2_reference.py`, dt = 0.1 ms) runs beside each size,
also in its own process.

Usage:
    python benchmarks/cuba_scaling.py [--sizes 1000 4000 16000 64000] [--t1 1000]
        [--brian2-python .venv-bench/bin/python]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _peak import peak_rss_mib

HERE = Path(__file__).resolve().parent
FAN_OUT = 80


def one_size(n, t1, seed=0):
    """Build, compile and run one size in this process; its figures as a dict."""
    import jax

    import neurosim as ns

    start = time.perf_counter()
    net, y0 = ns.networks.vogels_abbott_cuba(seed, n=n, fan_out=FAN_OUT)
    build = time.perf_counter() - start
    rss_built = peak_rss_mib()

    def run():
        return jax.block_until_ready(
            ns.simulate(net, t1=t1, y0=y0, max_spikes=int(n * t1 / 1000 * 40) + 1000)
        )

    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    start = time.perf_counter()
    sol = run()
    warm = time.perf_counter() - start
    spikes = int(sol.num_spikes)
    return {
        "n": n,
        "t1": t1,
        "fan_out": FAN_OUT,
        "build_s": build,
        "first_s": first,
        "warm_s": warm,
        "compile_s": first - warm,
        "spikes": spikes,
        "rate_hz": spikes / n / (t1 / 1000.0),
        "us_per_spike": 1e6 * warm / max(spikes, 1),
        "overflow": bool(sol.overflow),
        "peak_rss_built_mib": rss_built,
        "peak_rss_mib": peak_rss_mib(),
    }


def _child(command):
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = [line for line in done.stderr.splitlines() if line.strip()][-1:]
        return {"error": f"exited {done.returncode}: {tail}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def sweep(sizes, t1, brian2_python=None, log=print):
    """Each size in its own process, neurosim then Brian2; a list of rows."""
    rows = []
    for n in sizes:
        ours = _child(
            [sys.executable, __file__, "--child", "--sizes", str(n), "--t1", str(t1)]
        )
        row = {"n": n, "neurosim": ours}
        if brian2_python:
            out = _child(
                [
                    str(brian2_python),
                    str(HERE / "brian2_reference.py"),
                    "cuba_fan_out",
                    "--n",
                    str(n),
                    "--fan-out",
                    str(FAN_OUT),
                    "--t1",
                    str(t1),
                ]
            )
            row["brian2"] = out.get("result", out)
        log(describe(row))
        rows.append(row)
    return rows


def describe(row):
    ours, b2 = row["neurosim"], row.get("brian2")
    if "error" in ours:
        text = f"N = {row['n']}: neurosim failed: {ours['error']}"
    else:
        text = (
            f"N = {row['n']}: neurosim {ours['spikes']} spikes, build {ours['build_s']:.2f} s, "
            f"compile {ours['compile_s']:.1f} s, run {ours['warm_s']:.3f} s "
            f"({ours['us_per_spike']:.1f} us/spike), peak {ours['peak_rss_mib']:.0f} MiB"
        )
    if b2 and "error" not in b2:
        text += (
            f"; Brian2 {b2['spikes']} spikes, build {b2['setup_s']:.2f} s, "
            f"run {b2['run_s']:.3f} s ({1e6 * b2['run_s'] / max(b2['spikes'], 1):.1f} "
            f"us/spike), peak {b2['peak_rss_mib']:.0f} MiB"
        )
        if "error" not in ours:
            text += f"; run ratio {ours['warm_s'] / b2['run_s']:.2f}"
    elif b2:
        text += f"; Brian2 failed: {b2['error']}"
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000, 64000])
    parser.add_argument("--t1", type=float, default=1000.0)
    parser.add_argument("--brian2-python", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_size(args.sizes[0], args.t1)))
        return
    sweep(args.sizes, args.t1, args.brian2_python)


if __name__ == "__main__":
    main()
