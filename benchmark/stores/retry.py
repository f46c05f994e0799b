"""The retry policy for the shared stores (fusebench's tables, Optuna storage, MLflow
tracking server): what counts as an outage, and bounded exponential backoff around an action."""

from __future__ import annotations

import logging
import os
import random
import re
import time
from typing import Callable, TypeVar

from sqlalchemy.exc import OperationalError

from benchmark.stores.database import StoreURLError, mask_secrets

T = TypeVar("T")
LOG = logging.getLogger("fusebench.store")


# Database errors that no wait cures: not retried, one line at once (StoreURLError). A SQLite file that
# cannot be opened or written; a PostgreSQL database or user that does not exist, or credentials the
# server refuses (libpq gives these no SQLSTATE at connection time, so their text is matched).
PERMANENT_ERRORS = re.compile(r"unable to open database file|readonly database|(database|role) \"[^\"]*\" does not "
                              r"exist|password authentication failed|no pg_hba\.conf entry")


class StoreUnavailable(RuntimeError):
    """The coordination database could not be reached within the retry budget."""


def retry_budget() -> float:
    """Seconds a store operation is retried before giving up (``FUSEBENCH_RETRY_S``, default 120)."""
    return float(os.environ.get("FUSEBENCH_RETRY_S", "120"))


def _outage_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [OperationalError]
    try:
        import requests

        # RetryError: the MLflow client's own retries on 5xx answers (a server whose database is gone) ran out.
        types += [requests.exceptions.ConnectionError, requests.exceptions.Timeout, requests.exceptions.RetryError]
    except ImportError:
        pass
    return tuple(types)


def is_store_outage(exc: BaseException) -> bool:
    """True when ``exc`` means 'a store (database or tracking server) is unreachable right now':
    a refused connection, a timeout, a lock; not a file that cannot be written (PERMANENT_ERRORS).

    The MLflow REST client re-raises connection errors as a plain MlflowException, so the
    exception's chain (``__cause__`` and ``__context__``) is searched, not only its type."""
    types = _outage_types()
    return not is_permanent_store_error(exc) and any(isinstance(e, types) for e in _chain(exc))


def is_permanent_store_error(exc: BaseException) -> bool:
    """True when ``exc`` (or an error in its chain) is one of PERMANENT_ERRORS."""
    return any(isinstance(e, OperationalError) and PERMANENT_ERRORS.search(str(e)) for e in _chain(exc))


def _chain(exc: BaseException | None):
    """``exc`` and the errors it was raised from or while handling (``__cause__``, ``__context__``)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        yield exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__


def retry(action: Callable[[], T], what: str, budget_s: float | None = None, first_wait: float = 0.5) -> T:
    """Run ``action``; on connection errors wait with exponential backoff and jitter, up to
    ``budget_s`` seconds in total, then raise StoreUnavailable naming what failed."""
    budget_s = retry_budget() if budget_s is None else budget_s
    what = mask_secrets(what)  # a store's URL in ``what`` or in the error: its password never printed
    deadline = time.monotonic() + budget_s
    wait = first_wait
    warned = False
    while True:
        try:
            result = action()
            if warned:
                LOG.warning("fusebench: %s: store reachable again, going on", what)
            return result
        except Exception as exc:  # noqa: BLE001 - only outages are retried; everything else is re-raised
            if is_permanent_store_error(exc):
                reason = next(str(getattr(e, "orig", None) or e) for e in _chain(exc) if isinstance(e, OperationalError))
                reason = " ".join(reason.replace("FATAL:", "").split())  # libpq's text spans lines
                raise StoreURLError(mask_secrets(f"{what}: {reason} (no wait cures this: not retried)")) from exc
            if not is_store_outage(exc):
                raise
            if not warned:
                LOG.warning("fusebench: %s: store unreachable (%s); retrying with backoff for up to %.0fs",
                            what, type(exc).__name__, budget_s)
                warned = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reason = getattr(exc, "orig", None) or exc
                raise StoreUnavailable(mask_secrets(f"{what}: unreachable for {budget_s:.0f}s, giving up: {reason!r}")) from exc
            # Jittered backoff, but never past the deadline: the last try lands at the deadline,
            # so "unreachable for N s" is true whatever the jitter drew.
            time.sleep(min(wait * (0.5 + random.random()), remaining))
            wait = min(wait * 2, 15.0)


def reached(url: str, what: str) -> str:
    """``url`` once a server database in it has answered one connection (database.connect_once): a
    missing database or a refused user is one line naming ``what`` (a flag, an API argument) at once;
    a server that is down is waited for within the retry budget (for a tracking URI, instead of
    MLflow's own 100 s of retries and a traceback). The CLI and the Python API both use it."""
    from benchmark.stores.database import connect_once

    retry(lambda: connect_once(url), f"{what}: {mask_secrets(url)}")
    return url
