"""Path against path over many random networks (the sweep behind
tests/test_agreement.py): every pair of paths must give the same spikes.

    .venv/bin/python benchmarks/agreement.py --seeds 200
    .venv/bin/python benchmarks/agreement.py --seeds 50 --start 1000 --precision float32 \\
        --structures mixed lif_exp --paths synapses dense ode

Prints, per precision, how many networks were checked, how many agreed on every pair,
the worst disagreement (pair, seed, first divergence time, time difference) and every
failure with a reproduction command. Networks: tests/_random_networks.py (structures
in `STRUCTURES`; one compiled program per structure, path and precision serves every
seed, so the first seed of each pays the compilation). Tolerances: those of
tests/test_agreement.py.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import jax  # noqa: E402
from _random_networks import PATHS, STRUCTURES, draw  # noqa: E402
from test_agreement import BIT_FOR_BIT_64, compare_paths, tolerance  # noqa: E402


def check(net, paths, precision):
    """Every pair of `paths` on `net` (`test_agreement.compare_paths`; in float64
    the exact paths that must match bit for bit do): failures, pairs, counts."""
    bit = [p for p in BIT_FOR_BIT_64 if p in paths] if precision == "float64" else ()
    return compare_paths(net, paths, precision, bit)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="networks per structure")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument(
        "--precision", choices=["float32", "float64", "both"], default="both"
    )
    parser.add_argument("--x64", action="store_true", help="same as --precision float64")
    parser.add_argument(
        "--structures",
        nargs="+",
        default=["mixed"],
        choices=sorted(STRUCTURES),
        help="structures to draw (default: mixed, the one CI runs)",
    )
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--quiet", action="store_true", help="no line per network")
    parser.add_argument(
        "--json", action="store_true", help="end with one JSON line of the figures"
    )
    args = parser.parse_args()
    precisions = ["float32", "float64"] if args.precision == "both" else [args.precision]
    if args.x64:
        precisions = ["float64"]
    seeds = range(args.start, args.start + args.seeds)
    exit_code = 0
    summary = []
    for precision in precisions:
        jax.config.update("jax_enable_x64", precision == "float64")
        checked = agreed = 0
        worst = None  # (divergence time, pair, seed, structure, agreement)
        largest = None  # (max |dt| among agreeing pairs relative to atol, ...)
        failures = []
        start = time.perf_counter()
        for name in args.structures:
            for seed in seeds:
                net = draw(seed, STRUCTURES[name])
                found, pairs, counts = check(net, args.paths, precision)
                checked += 1
                agreed += not found
                for a, b, agreement in pairs:
                    if not agreement.agree and (
                        worst is None or agreement.divergence < worst[0]
                    ):
                        worst = (agreement.divergence, f"{a} vs {b}", seed, name, agreement)
                    ratio = agreement.max_dt / tolerance(precision, a, b)
                    if largest is None or ratio > largest[0]:
                        largest = (ratio, f"{a} vs {b}", seed, name, agreement)
                if found:
                    flag = "--x64" if precision == "float64" else "--precision float32"
                    failures.append(
                        f"{net.describe()}\n    "
                        + "\n    ".join(found)
                        + f"\n    reproduce: .venv/bin/python benchmarks/agreement.py "
                        f"--structures {name} --start {seed} --seeds 1 {flag}"
                    )
                if not args.quiet:
                    status = "agree" if not found else f"{len(found)} FAILURES"
                    print(
                        f"[{precision}] {name} seed {seed}: {status}; spikes {counts} "
                        f"({time.perf_counter() - start:.0f} s)",
                        flush=True,
                    )
            # A structure's compiled programs serve its seeds only. Kept for the whole
            # sweep, they exhausted LLVM's code memory: six structures in both
            # precisions stopped after 32 min with "Unable to allocate section memory".
            jax.clear_caches()
        print(
            f"\n=== {precision}: {checked} networks checked ({', '.join(args.structures)}; "
            f"paths {', '.join(args.paths)}), {agreed} agreed on every pair"
        )
        if largest is not None:
            ratio, pair, seed, name, agreement = largest
            print(
                f"largest time difference before any divergence, relative to the "
                f"tolerance: {ratio:.3g} ({pair}, {name} seed {seed}: {agreement})"
            )
        if worst is not None:
            _, pair, seed, name, agreement = worst
            print(
                f"worst disagreement (earliest divergence): {pair}, {name} seed {seed}: "
                f"{agreement}"
            )
        if failures:
            exit_code = 1
            print(f"{len(failures)} failures:")
            for failure in failures:
                print("  " + failure)
        summary.append(
            {
                "precision": precision,
                "structures": args.structures,
                "paths": args.paths,
                "checked": checked,
                "agreed": agreed,
                "largest_ratio": None if largest is None else float(largest[0]),
                "largest": None if largest is None else f"{largest[1]}, seed {largest[2]}",
                "worst": None
                if worst is None
                else f"{worst[1]}, {worst[3]} seed {worst[2]}: {worst[4]}",
                "wall_s": time.perf_counter() - start,
            }
        )
    if args.json:
        print(json.dumps(summary))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
