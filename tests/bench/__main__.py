"""`make bench`: python -m tests.bench [--only delay|coldstart|copy|memory|cost|day] [--repeats N]
[--jobs N] [--delay-jobs N] [--import-runs N]."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import tests.bench  # noqa: F401 - the safe AWS environment, before anything builds a client
from tests.bench.bench_cold_start import run_cold_start_bench
from tests.bench.bench_copy_parallel import run_copy_bench
from tests.bench.bench_detection_delay import run_detection_delay_bench
from tests.bench.bench_job_cost import MeasuredParts, run_job_cost_bench
from tests.bench.bench_simulated_day import run_simulated_day_bench
from tests.bench.bench_store_memory import run_store_memory_bench

SECTIONS = ("memory", "cost", "delay", "coldstart", "copy", "day")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--only", choices=SECTIONS, default=None)
    parser.add_argument("--repeats", type=int, default=5, help="side-by-side memory/copy runs")
    parser.add_argument("--jobs", type=int, default=5, help="jobs per cost scenario")
    parser.add_argument(
        "--delay-jobs", type=int, default=4, help="concurrent jobs per upstream duration (delay)"
    )
    parser.add_argument(
        "--import-runs", type=int, default=7, help="alternating cold-import runs (coldstart)"
    )
    args = parser.parse_args(argv)
    print(f"load average at the start: {_load()} (this machine: {os.cpu_count()} CPUs)")
    started = time.perf_counter()
    timings: list[tuple[str, float]] = []

    def section(name: str, run: Callable[[], None]) -> None:
        if args.only in (None, name):
            began = time.perf_counter()
            run()
            timings.append((name, time.perf_counter() - began))

    measured: list[MeasuredParts] = []
    section("memory", lambda: run_store_memory_bench(repeats=args.repeats))
    section("cost", lambda: measured.append(run_job_cost_bench(jobs=args.jobs)))
    section("delay", lambda: run_detection_delay_bench(jobs=args.delay_jobs))
    section("coldstart", lambda: run_cold_start_bench(repeats=args.import_runs))
    section("copy", lambda: run_copy_bench(repeats=args.repeats))
    # The day scales the cost section's measured parts (measured again when run alone).
    section("day", lambda: run_simulated_day_bench(measured[0] if measured else None))
    print(
        f"\nbench finished in {time.perf_counter() - started:.1f} s ("
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings)
        + f"); load average at the end: {_load()}"
    )
    return 0


def _load() -> str:
    """1, 5 and 15 minute load averages: how busy the machine was (other work skews figures)."""
    try:
        return " / ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
