"""``make bench``: every bench in turn, then one table of the cluster benches against targets.

``python -m bench`` runs them all; ``python -m bench NAME ...`` only those named. Each writes
its JSON under bench/results/ and prints its own table (measurement, same-run baseline, target);
the summary at the end repeats the cluster benches' rows. A bench that fails is reported and the
others still run; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback

from bench.common import RESULTS, Row, print_table

# Model-engine benches first, then the cluster benches (issues 8, 12 and 15), which have targets
# and whose rows the summary repeats.
ENGINE_BENCHES = ("agent_throughput", "prompt_cache", "embeddings")
SUMMARIZED = (
    "balancer_relay",
    "cluster_load",
    "end_to_end",
    "memory",
    "monitor_subscriber",
    "chat_sessions",
)
BENCHES = ENGINE_BENCHES + SUMMARIZED


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benches to run (default: all): {', '.join(BENCHES)}",
    )
    names = parser.parse_args(argv).names or list(BENCHES)
    unknown = sorted(set(names) - set(BENCHES))
    if unknown:
        print(f"unknown benches: {', '.join(unknown)}; known: {', '.join(BENCHES)}")
        return 2
    failed: list[str] = []
    for name in names:
        print(f"\n=== bench {name} ===", flush=True)
        started = time.monotonic()
        try:
            code = importlib.import_module(f"bench.{name}").main([])
        except Exception:
            traceback.print_exc()
            code = 1
        if code:
            failed.append(name)
        print(f"=== {name}: {'failed' if code else 'done'} in {time.monotonic() - started:.0f} s")
    rows = [
        Row(**row)
        for name in SUMMARIZED
        if name in names and name not in failed
        for row in json.loads((RESULTS / f"{name}.json").read_text())["table"]
    ]
    if rows:
        print_table("summary (value vs same-run baseline and target)", rows)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
