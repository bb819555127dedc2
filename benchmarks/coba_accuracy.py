"""COBA (Brette et al. 2007, benchmark 1) at equal accuracy: neurosim's exact spike
times and Brian2's clock-driven runs, each against one float64 reference.

    .venv/bin/python benchmarks/coba_accuracy.py
    .venv/bin/python benchmarks/coba_accuracy.py --t1 300 --dts 0.1 0.01

The network is `neurosim.networks.brette_coba(seed)` (4000 neurons, 1 s by default),
drawn once in float64 and handed to Brian2 as it is (synapses, initial states:
`brian2_reference.py coba_network`), so the two simulate the same network. COBA is
chaotic: any two integrations part after a while. Each run is compared with neurosim in
float64 at rtol = atol = 1e-12: divergence = the first time at which a spike is more
than 0.1 ms away from the reference's or missing (`first_divergence` of
tests/_compare.py), with the spikes matched before it. Where the reference itself is
trustworthy is the divergence of float64 at 1e-10 from it. neurosim runs in float64
in a child process (x64 must be set before any array), float32 in this one; wall time:
neurosim's best warm call of `--repeats` (a float64 run's single first call, compile
included), Brian2's `run()` (Euler, cython, after a run that fills its cache; one run
only at dt below 0.01 ms).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
from _child import child_json  # noqa: E402
from _compare import first_divergence  # noqa: E402

OUT = ROOT / "out" / "bench"
REFERENCE_TOL = 1e-12
ATOL_MS = 0.1  # how far a spike may move before the runs count as parted


def simulate(seed, t1, tol, repeats):
    """neurosim's COBA at rtol = atol = `tol` (None: the defaults) in this process's
    precision: spikes, figures and the wall time (first call, then the best of
    `repeats` warm calls)."""
    import jax

    import neurosim as ns

    net, y0 = ns.networks.brette_coba(seed)
    kwargs = {} if tol is None else {"rtol": tol, "atol": tol}

    def run():
        return ns.simulate(
            net, y0=y0, t1=t1, gradients=False, max_spikes=int(100 * t1 * 4), **kwargs
        )

    start = time.perf_counter()
    sol = jax.block_until_ready(run())
    first, warm = time.perf_counter() - start, []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(run())
        warm.append(time.perf_counter() - start)
    times, neurons = sol.spikes()
    return (np.asarray(times, np.float64), np.asarray(neurons)), {
        "spikes": int(sol.num_spikes),
        "iterations": int(sol.iterations),
        "overflow": bool(sol.overflow),
        "first_s": first,
        "warm_s": min(warm) if warm else None,
    }


def export(seed, t1, path):
    """The float64 network of `brette_coba(seed)` as Brian2's `coba_network` reads it."""
    import neurosim as ns

    net, y0 = ns.networks.brette_coba(seed)
    out = {}
    for conn, kind in zip(net.connections, ("exc", "inh"), strict=True):
        index = np.asarray(conn.post_index)
        keep = index < conn.n_post
        weight = np.unique(np.asarray(conn.weight)[keep])
        assert weight.size == 1, "brette_coba has one weight per projection"
        rows = np.broadcast_to(np.arange(conn.n_pre)[:, None], index.shape)
        out[f"pre_{kind}"], out[f"post_{kind}"] = rows[keep], index[keep]
        out["we" if kind == "exc" else "wi"] = float(weight[0])
    state = y0["coba"]
    np.savez(
        path,
        **out,
        v0=np.asarray(state.v),
        ge0=np.asarray(state.g_e),
        gi0=np.asarray(state.g_i),
        t1=t1,
    )


def float64_child(seed, t1):
    """The float64 runs (x64 on): the network for Brian2, the reference and the runs at
    1e-10 and at the default tolerances; spikes to an .npz, figures as JSON."""
    import jax

    jax.config.update("jax_enable_x64", True)
    OUT.mkdir(parents=True, exist_ok=True)
    export(seed, t1, OUT / "coba_network.npz")
    spikes, rows = {}, {}
    for name, tol in (("reference", REFERENCE_TOL), ("1e-10", 1e-10), ("default", None)):
        (times, neurons), rows[name] = simulate(seed, t1, tol, repeats=0)
        spikes[f"times_{name}"], spikes[f"neurons_{name}"] = times, neurons
    np.savez(OUT / "coba_float64_spikes.npz", **spikes)
    print(json.dumps(rows))


def divergence(spikes, reference, t1):
    found = first_divergence(spikes, reference, atol=ATOL_MS, t1=t1)
    return None if found.agree else float(found.divergence), found.matched


def measure(seed, t1, dts, repeats, brian2_python):
    """Every run of the comparison: a list of rows (`run`, `spikes`, `divergence_ms`:
    None where the run keeps every spike to `t1`, `matched`, `wall_s`, `first_call`:
    whether `wall_s` is a first call), the reference first."""
    print(f"float64 runs (child process), seed {seed}, {t1:g} ms", file=sys.stderr)
    child = [
        sys.executable,
        __file__,
        "--float64-child",
        "--seed",
        str(seed),
        "--t1",
        str(t1),
    ]
    rows64 = child_json(child)
    with np.load(OUT / "coba_float64_spikes.npz") as data:
        runs64 = {k: np.asarray(data[k]) for k in data.files}
    reference = runs64["times_reference"], runs64["neurons_reference"]

    def row(label, figures, spikes=None):
        parted, matched = (
            (None, None) if spikes is None else divergence(spikes, reference, t1)
        )
        warm = figures.get("warm_s")
        return {
            "run": label,
            "spikes": figures["spikes"],
            "divergence_ms": parted,
            "matched": matched,
            "wall_s": figures["first_s"] if warm is None else warm,
            "first_call": warm is None,
        }

    rows = [
        row(
            f"neurosim float64, rtol = atol = {REFERENCE_TOL:g} (reference)",
            rows64["reference"],
        )
    ]
    for name, label in (
        ("1e-10", "rtol = atol = 1e-10"),
        ("default", "default tolerances"),
    ):
        spikes = runs64[f"times_{name}"], runs64[f"neurons_{name}"]
        rows.append(row(f"neurosim float64, {label}", rows64[name], spikes))
    print("float32 run", file=sys.stderr)
    spikes, figures = simulate(seed, t1, None, repeats)
    rows.append(row("neurosim float32, default tolerances", figures, spikes))
    print(f"Brian2 at dt = {dts}", file=sys.stderr)
    brian2 = child_json(
        [
            brian2_python,
            str(HERE / "brian2_reference.py"),
            "coba_network",
            "--network",
            str(OUT / "coba_network.npz"),
            "--dts",
            *map(str, dts),
            "--repeats",
            str(repeats),
        ]
    )
    version = brian2["versions"]["brian2"]
    for r in brian2["result"]:
        spikes = np.asarray(r.pop("times")), np.asarray(r.pop("neurons"))
        figures = {"spikes": r["spikes"], "warm_s": min(r["warm_s"]), "first_s": None}
        rows.append(row(f"Brian2 {version}, Euler dt = {r['dt']:g} ms", figures, spikes))
    return rows


def table(rows, t1):
    """The rows as a markdown table."""
    lines = [
        "| run | spikes | divergence ms (spikes matched) | wall s |",
        "|---|---|---|---|",
    ]
    for r in rows:
        if r["matched"] is None:
            parted = "-"
        elif r["divergence_ms"] is None:
            parted = f"none to {t1:g} ({r['matched']})"
        else:
            parted = f"{r['divergence_ms']:.2f} ({r['matched']})"
        note = " (first call)" if r["first_call"] else ""
        lines.append(f"| {r['run']} | {r['spikes']} | {parted} | {r['wall_s']:.3f}{note} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--t1", type=float, default=1000.0)
    parser.add_argument("--dts", type=float, nargs="+", default=[0.1, 0.01, 0.001])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--brian2-python", default=str(ROOT / ".venv-bench/bin/python"))
    parser.add_argument("--json", action="store_true", help="the rows as JSON, last line")
    parser.add_argument("--float64-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.float64_child:
        float64_child(args.seed, args.t1)
        return
    rows = measure(args.seed, args.t1, args.dts, args.repeats, args.brian2_python)
    print(json.dumps(rows) if args.json else "\n".join(table(rows, args.t1)))


if __name__ == "__main__":
    main()
