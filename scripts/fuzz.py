#!/usr/bin/env python3
"""Fuzz the reference: N hypothesis examples of arbitrary attributes, shapes, dtypes, opsets.

Every example must end in a result or a SpecError; the script prints the counts per outcome
(SpecError grouped by the attribute named) and exits 1 on anything else, with the example.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from strategies import configurations, outcome_of  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--examples", type=int, default=10_000)
    args = ap.parse_args()
    counts: Counter[str] = Counter()

    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(configurations())
    def run(config):
        counts[outcome_of(*config)] += 1

    t0 = time.perf_counter()
    try:
        run()
    except Exception as exc:  # hypothesis re-raises the shrunk failing example
        print(f"FAILED: {type(exc).__name__}: {exc}")
        return 1
    total = sum(counts.values())
    print(f"{total} examples in {time.perf_counter() - t0:.1f} s; nothing but results and SpecError")
    for label, n in counts.most_common():
        print(f"  {n:6d}  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
