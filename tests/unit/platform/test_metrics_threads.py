"""Metrics from handlers running side by side in one process, as the local stack runs them (in
Lambda a process serves one invocation at a time): one handler's flush must not break
another's."""

from __future__ import annotations

import contextlib
import io
import threading
import warnings

from imagegateway.platform.observability import metrics


def test_concurrent_handlers_add_and_flush_metrics_without_errors() -> None:
    # Given four handlers that each add a metric and flush, over and over, at the same time
    errors: list[str] = []

    def handler_runs() -> None:
        for _ in range(2000):
            try:
                metrics.add_metric(name="JobsAccepted", unit="Count", value=1)
                metrics.flush_metrics()
            except Exception as exc:
                errors.append(repr(exc))

    # When they run
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no application metrics": another flush took them
        threads = [threading.Thread(target=handler_runs) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    # Then no flush found its set emptied or changed under it by another
    assert errors == []
