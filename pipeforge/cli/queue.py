"""``pf-fit --queue`` and ``pf-grid-search --queue``: the script's work, done by a ``pf-worker``.

The script puts the job on the config's ``job_queue``, says so, follows its
state on stderr and prints what the local run would print once a worker
has finished it. Ctrl-C stops the waiting, not the job: its id is printed
first, so ``GET /jobs/<id>`` on any server can follow it further.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import PipeforgeError, UsageError

__all__ = ["fit_on_queue", "grid_search_on_queue", "run_on_queue", "print_fit_outcome"]


def _queue(config):
    from ..jobs import job_queue

    queue = job_queue(config)
    if queue is None:
        raise UsageError(
            "--queue needs a 'job_queue' entry in the configuration, such as "
            "{'__factory__': 'pipeforge.jobs.rq.RQJobQueue', 'url': 'redis://127.0.0.1:6379/0'} "
            "(see docs/scaling-out.md)"
        )
    return queue


def run_on_queue(config: Mapping[str, Any], func: Callable, name: str, **kwargs: Any) -> Any:
    """Queue ``func(config, **kwargs)``, wait for a worker to finish it and return its result."""
    from ..jobs import wait_for_job

    queue = _queue(config)
    job_id = queue.enqueue(func, config, name=name, **kwargs)
    where = getattr(queue, "name", type(queue).__name__)
    print(f"Queued job {job_id} on {where!r}; waiting for a worker", file=sys.stderr, flush=True)

    def show(record: dict) -> None:
        worker = f" on {record['worker']}" if record.get("worker") else ""
        print(f"job {job_id}: {record['status']}{worker}", file=sys.stderr, flush=True)

    try:
        record = wait_for_job(queue, job_id, on_change=show)
    except KeyboardInterrupt:
        print(f"Stopped waiting; job {job_id} goes on", file=sys.stderr, flush=True)
        raise
    if record is None:
        raise PipeforgeError(f"job {job_id} is no longer known to the queue")
    if record["status"] != "finished":
        raise PipeforgeError(f"job {job_id} failed: {record.get('error')}")
    return record.get("info")


def fit_on_queue(
    args: Mapping[str, Any], config: Mapping[str, Any], threshold: float | None
) -> int:
    """``pf-fit --queue``: the fit as a job; prints scores and the stored version like ``pf-fit``."""
    from ..jobs import fit_job

    persist = not args["--no-save"]
    result = run_on_queue(
        config,
        fit_job,
        "fit",
        persist=persist,
        activate=not args["--no-activate"],
        evaluate=bool(args["--evaluate"]),
        persist_if_better_than=threshold,
    )
    print_fit_outcome(
        result.get("scores") or {},
        result.get("model_version"),
        activated=not args["--no-activate"],
        persist=persist,
        threshold=threshold,
    )
    return 0


def print_fit_outcome(
    scores: Mapping[str, float],
    version: int | None,
    *,
    activated: bool,
    persist: bool,
    threshold: float | None,
) -> None:
    """What ``pf-fit`` prints when the fit is done, here or on a worker: scores, then the version."""
    for name, value in scores.items():
        print(f"{name}: {value:.4f}")
    if version is not None:
        note = "" if activated else " (not activated)"
        print(f"Wrote model with version {version}{note}")
    elif persist:
        print(f"Model not stored: its test score is not better than {threshold}")
    else:
        print("Model not stored (--no-save)")


def grid_search_on_queue(
    args: Mapping[str, Any], config: Mapping[str, Any], results_table: Callable[[Any], str]
) -> int:
    """``pf-grid-search --queue``: the search as a job; the results are printed and saved here."""
    from ..jobs import grid_search_job

    persist = bool(args["--persist-best"])
    result = run_on_queue(config, grid_search_job, "grid_search", persist_best=persist)
    search = types.SimpleNamespace(cv_results_=result["cv_results"])
    print(results_table(search))
    if "best_params" in result:
        print(f"Best parameters: {result['best_params']} (score {result['best_score']:.4f})")
    if args["--save-results"]:
        import pandas as pd

        pd.DataFrame(result["cv_results"]).to_csv(args["--save-results"], index=False)
        print(f"Saved results to {args['--save-results']}")
    if persist:
        print(f"Wrote model with version {result.get('model_version')}")
    return 0
