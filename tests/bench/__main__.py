"""`make bench`: python -m tests.bench [--only memory|cost] [--repeats N] [--jobs N]."""

from __future__ import annotations

import argparse
import time

import tests.bench  # noqa: F401 - the safe AWS environment, before anything builds a client
from tests.bench.bench_job_cost import run_job_cost_bench
from tests.bench.bench_store_memory import run_store_memory_bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--only", choices=("memory", "cost"), default=None)
    parser.add_argument("--repeats", type=int, default=5, help="side-by-side memory runs")
    parser.add_argument("--jobs", type=int, default=5, help="jobs per cost scenario")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.only in (None, "memory"):
        run_store_memory_bench(repeats=args.repeats)
    if args.only in (None, "cost"):
        run_job_cost_bench(jobs=args.jobs)
    print(f"\nbench finished in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
