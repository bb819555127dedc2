"""Command line: `python -m neurosim {demo,gallery} [options]` (`--help` lists them)."""

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m neurosim",
        description="neurosim's command line: a demo network and the model gallery.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    demo = sub.add_parser("demo", help="simulate a small recurrent LIF network")
    demo.add_argument("--out", default="out", help="output folder (default ./out)")
    demo.add_argument("--seed", type=int, default=0)
    gallery = sub.add_parser(
        "gallery",
        help="the 20 Izhikevich (2004) behaviours and the circuit models' phase "
        "portraits, one PNG each",
    )
    gallery.add_argument("--out", default="out", help="output folder (default ./out)")
    gallery.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="draw only these (behaviour names such as tonic_spiking, or fhn, "
        "wererabbit, boomerang)",
    )
    gallery.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        run_demo(out_dir=args.out, seed=args.seed)
    elif args.command == "gallery":
        from ._gallery import NAMES, run_gallery

        unknown = [name for name in args.only or () if name not in NAMES]
        if unknown:
            parser.error(
                f"gallery --only: unknown name {unknown[0]!r}; valid names: "
                + ", ".join(NAMES)
            )
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("gallery needs matplotlib: pip install 'neurosim[plot]'")
        written = run_gallery(out_dir=args.out, only=args.only, quiet=args.quiet)
        print(f"wrote {len(written)} figures to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
