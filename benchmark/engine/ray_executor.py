"""Ray as the executor of a matrix's parallel runs: each task runs one or more units, the order
between units is expressed as Ray dependencies (a task receives the ObjectRefs of the tasks it waits
for, so Ray starts it only once they have finished), each task declares the resources it needs, and a
task whose node died is run again (``max_retries``).

The executor knows nothing of what a unit is: it takes tasks (unit ids and the tasks they wait for)
and a picklable ``run_units`` callable that runs a tuple of unit ids in a Ray worker process and
returns a small summary. That callable must be idempotent (it checks the stores and returns at once
for units already done), because Ray may run a task again: after a node death, or to rebuild a lost
result of a finished task that a later task still needs. Store URLs and credentials are never task
arguments (Ray's dashboard and state API show arguments): ``run_units`` reads them from the
environment of the process it runs in. Ray itself is imported only here, and only when used."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

DEFAULT_MAX_RETRIES = 3  # runs of a task after the first, on node or worker-process death
# A local instance's object store: tasks pass only unit ids and small summaries (results go to the
# stores), so Ray's default of 30% of the machine's memory would only reserve shared memory for nothing.
OBJECT_STORE_BYTES = 128 * 1024 ** 2


@dataclass(frozen=True)
class Task:
    """``units``: the unit ids one Ray task runs (a trial slot, or the cells of one stacked group);
    ``after``: the keys of the tasks it waits for. ``key`` names it in errors."""

    key: str
    units: tuple[str, ...]
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class Resources:
    """What each task declares to Ray's scheduler: CPUs and GPUs (fractions allowed: 0.25 GPU packs
    four units on one GPU)."""

    cpus: float = 1.0
    gpus: float = 0.0

    def describe(self) -> str:
        return f"{self.cpus:g} CPU" + (f", {self.gpus:g} GPU" if self.gpus else "") + " per unit"


@dataclass
class ExecutionResult:
    """Each finished task's summary (what ``run_units`` returned), by task key, and the tasks that
    did not finish: key -> the first line of their error (a task whose dependency failed fails too)."""

    summaries: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RaySession:
    """A connection to Ray: ``address`` as Ray reports it, whether this process started the instance,
    and the seconds ``ray.init`` took."""

    address: str
    local: bool
    start_seconds: float


@contextlib.contextmanager
def ray_session(workers: int | None = None, address: str | None = None,
                environment: Mapping[str, str] | None = None) -> Iterator[RaySession]:
    """Start a local Ray instance with ``workers`` CPUs (no dashboard, bound to 127.0.0.1, quiet
    logs), or connect to the cluster at ``address`` (``auto``: the one this machine runs a node of);
    shut down or disconnect on exit. ``environment``: variables set in this process while Ray starts,
    so the local instance's worker processes inherit them (store URLs stay out of task arguments);
    this process's own environment is restored on exit. Cluster nodes read their own environment."""
    import ray

    saved = {name: os.environ.get(name) for name in (environment or {})}
    os.environ.update(environment or {})
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = time.perf_counter()
    try:
        if address:
            info = ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                            namespace="fusebench")
        else:
            # "local": a new instance, even where this machine runs a cluster node (`ray start`), which a
            # bare ray.init() would join instead
            info = ray.init(address="local", num_cpus=workers, include_dashboard=False, logging_level=logging.ERROR,
                            log_to_driver=False, _node_ip_address="127.0.0.1", namespace="fusebench",
                            object_store_memory=OBJECT_STORE_BYTES)
        session = RaySession(getattr(info, "address_info", {}).get("address", address or "local"), not address,
                             time.perf_counter() - started)
        yield session
    finally:
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_after(run_units: Callable[[tuple[str, ...]], Any], units: tuple[str, ...], *after: Any) -> Any:
    """The body of every task: ``after`` are the results of the tasks it waited for (Ray passes a
    task's ObjectRef arguments as their values, once they exist); only the wait matters."""
    return run_units(units)


def run_tasks(tasks: list[Task], run_units: Callable[[tuple[str, ...]], Any], resources: Resources,
              on_done: Callable[[Task, Any], None] = lambda task, summary: None,
              max_retries: int = DEFAULT_MAX_RETRIES) -> ExecutionResult:
    """Submit ``tasks`` (each after the tasks it waits for: a task's ``after`` must name tasks earlier
    in the list) to the connected Ray instance and wait for all of them, calling ``on_done`` on this
    process as each finishes. A task that raises is not retried (its error is the unit's own, which
    ``run_units`` records where it belongs); a task whose process or node died is, up to
    ``max_retries`` times. Ctrl-C cancels the tasks still pending (each sees KeyboardInterrupt)."""
    import ray

    seen: set[str] = set()
    for task in tasks:  # checked before anything is submitted
        missing = [key for key in task.after if key not in seen]
        if missing:
            raise ValueError(f"task {task.key} waits for {missing}, which come later or not at all")
        seen.add(task.key)
    if not ray.is_initialized():  # never Ray's implicit start with default settings
        raise RuntimeError("run_tasks needs a Ray connection: call it inside ray_session()")
    remote = ray.remote(_run_after).options(num_cpus=resources.cpus, num_gpus=resources.gpus,
                                            max_retries=max_retries, retry_exceptions=False)
    runner = ray.put(run_units)  # shipped once, not with every task
    refs: dict[str, Any] = {}
    for task in tasks:
        refs[task.key] = remote.remote(runner, task.units, *(refs[key] for key in task.after))
    by_ref = {ref: task for task, ref in zip(tasks, refs.values())}
    result, pending = ExecutionResult(), list(refs.values())
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=None)
            for ref in ready:
                task = by_ref[ref]
                try:
                    summary = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the task's error, reported with the others
                    result.errors[task.key] = _first_line(exc)
                    continue
                result.summaries[task.key] = summary
                on_done(task, summary)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)
        raise
    return result


def _first_line(exc: BaseException) -> str:
    """A task's error in one line: the cause's type and message, not Ray's wrapper and traceback."""
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}"
