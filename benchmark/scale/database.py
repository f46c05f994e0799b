"""Opening the shared SQL databases: one set of SQLAlchemy engine options for the work queue
and the Optuna storage, and the Optuna storage itself from a URL."""

from __future__ import annotations

from typing import Any


def engine_options(url: str) -> dict[str, Any]:
    """SQLite waits up to 60 s for a lock held by another worker; server databases check a
    pooled connection before use, so a restarted server is reconnected to."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}


def open_storage(url: str):
    """An Optuna storage from a URL: ``sqlite:///...`` / ``postgresql://...`` (RDB) or
    ``journal:<file>`` (JournalStorage)."""
    import optuna

    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(url[len("journal:"):]))
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_options(url))
