#!/usr/bin/env python3
"""Soak: generate N seeded random cases, validate them on a runtime, watch memory.

Prints generation time, validation throughput (cases/s), verdict counts, and the resident
memory of the parent and of the worker processes sampled through the run (peak, and the
mean of the first and last quarter of samples: RSS must not keep growing).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opref.cases import catalog  # noqa: E402
from opref.validate import validate  # noqa: E402
from opref.vectors import generate  # noqa: E402


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runtime", default="ort:cpu")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="opref-soak-") as tmp:
        t0 = time.perf_counter()
        summary = generate(Path(tmp) / "v", catalog(only=["random_*"], random=args.cases, seed=args.seed), {})
        print(f"{summary.line()}")
        samples: list[tuple[float, float, float]] = []  # (time, parent MiB, workers MiB)
        done = threading.Event()

        def sample():
            me = os.getpid()
            while not done.wait(0.5):
                workers = sum(rss_mib(c) for c in children(me))
                samples.append((time.perf_counter(), rss_mib(me), workers))

        watcher = threading.Thread(target=sample, daemon=True)
        watcher.start()
        t1 = time.perf_counter()
        result = validate(Path(tmp) / "v", [args.runtime], jobs=args.jobs)
        elapsed = time.perf_counter() - t1
        done.set()
        watcher.join()
    counts = Counter(r["verdict"] for r in result.records)
    print(
        f"validated {len(result.records)} cases on {args.runtime} with {args.jobs} jobs in {elapsed:.1f} s: "
        f"{len(result.records) / elapsed:.0f} cases/s"
    )
    print("verdicts: " + ", ".join(f"{v} {n}" for v, n in counts.most_common()))
    for label, idx in (("parent", 1), ("workers", 2)):
        seen = [s[idx] for s in samples if s[idx] > 0]  # workers appear a moment after the start
        if seen:
            q = max(1, len(seen) // 4)
            first, last, peak = sum(seen[:q]) / q, sum(seen[-q:]) / q, max(seen)
            print(
                f"{label} RSS: peak {peak:.0f} MiB; first-quarter mean {first:.0f} MiB, "
                f"last-quarter mean {last:.0f} MiB ({len(seen)} samples)"
            )
    print(f"total {time.perf_counter() - t0:.1f} s; unexpected normative failures: {len(result.unexpected)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
