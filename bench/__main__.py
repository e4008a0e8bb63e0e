"""`python -m bench [--quick] [names...] [-- options]`: run the named measurements (all of
them when none is named), each writing its report. Options after `--` go to the one
measurement named (for example `python -m bench soak -- --images 200`).

bench/gc.py, bench/hotkeys.py and bench/proxycache.py run by name like the others.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

import bench

# In report order; `soak` (about 30 minutes) last.
OWN = (
    "calls",
    "latency",
    "coldstart",
    "sidebyside",
    "cost",
    "package",
    "uploads",
    "push",
    "soak",
)
OPTIONAL = ("gc", "hotkeys", "proxycache")


def available() -> list[str]:
    """Every measurement this checkout has."""
    present = [n for n in OPTIONAL if importlib.util.find_spec(f"bench.{n}") is not None]
    return [*OWN[:-1], *present, OWN[-1]]


def run(name: str, quick: bool, options: list[str]) -> None:
    """One measurement's main(), with its own command line."""
    module = importlib.import_module(f"bench.{name}")
    flags = ["--quick"] if quick and name in OWN else []
    saved = sys.argv
    sys.argv = [f"python -m bench {name}", *flags, *options]
    try:
        module.main()
    finally:
        sys.argv = saved


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, options = argv[:at], argv[at + 1 :]
    names = available()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the named measurements (all when none is named); options after "
        "`--` go to the one named.",
    )
    parser.add_argument("names", nargs="*", metavar="name", help=", ".join(names))
    parser.add_argument("--quick", action="store_true", help="fewer iterations and rounds")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in names]
    if unknown:
        parser.error(f"unknown measurement {', '.join(unknown)}; known: {', '.join(names)}")
    chosen = args.names or names
    bench.isolate_from_aws()
    if options and len(chosen) != 1:
        parser.error("options after -- go to exactly one named measurement")
    for name in chosen:
        print(f"== {name}", flush=True)
        run(name, args.quick, options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
