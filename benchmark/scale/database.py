"""Opening the shared SQL databases: one set of SQLAlchemy engine options for the work queue
and the Optuna storage, and the Optuna storage itself from a URL."""

from __future__ import annotations

import re
from typing import Any

# The password of a URL's user info (``scheme://user:PASSWORD@host``), up to the last ``@`` before a
# slash, space or quote: storage URLs and tracking URIs (``https://user:pw@mlflow.example``) alike.
_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"]*:)[^\s/'\"]*@")


def mask_secrets(text: str) -> str:
    """``text`` (a URL, or a whole line that may hold several) with every URL password replaced by
    ``***``, as SQLAlchemy renders a URL with ``hide_password``: for every line fusebench prints."""
    return _PASSWORD.sub(lambda m: f"{m['head']}***@", text)



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
