"""Opening the shared SQL databases: store URLs normalised and checked before anything is
opened, one set of SQLAlchemy engine options for fusebench's own tables and the Optuna storage, the
Optuna storage itself from a URL, and URL passwords masked in printed lines."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path
from typing import Any

# The password of a URL's user info (``scheme://user:PASSWORD@host``), up to the last ``@`` before a
# slash, space or quote: storage URLs and tracking URIs (``https://user:pw@mlflow.example``) alike.
_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"]*:)[^\s/'\"]*@")


def mask_secrets(text: str) -> str:
    """``text`` (a URL, or a whole line that may hold several) with every URL password replaced by
    ``***``, as SQLAlchemy renders a URL with ``hide_password``: for every line fusebench prints."""
    return _PASSWORD.sub(lambda m: f"{m['head']}***@", text)



class StoreURLError(ValueError):
    """A storage URL or tracking URI that can never work (an unknown scheme, a driver that is not
    installed, a SQLite file that cannot be written): one line at once, never retried as an outage."""


DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")  # the SQLAlchemy ones MLflow also takes
STORAGE_FORMS = "sqlite:///PATH, postgresql://... (user and password before the host) or journal:PATH"


def normalise_url(url: str) -> str:
    """``postgresql://`` (and ``postgres://``) -> ``postgresql+psycopg2://``: psycopg2 is the
    PostgreSQL driver fusebench installs, while SQLAlchemy 2.1 maps a bare ``postgresql://`` to
    psycopg 3. Every other URL is returned unchanged."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql+psycopg2://{rest}" if sep and scheme in ("postgresql", "postgres") else url


def checked_storage_url(url: str | None, what: str = "--storage") -> str:
    """The Optuna storage URL ``url`` (None: $FUSEBENCH_OPTUNA_STORAGE or the default, in
    fusebench's state folder, made here) normalised (``normalise_url``) and checked before anything
    is opened: a SQLAlchemy database whose dialect and driver are installed (a SQLite file in a
    writable folder), or ``journal:PATH``. Raises StoreURLError naming ``what`` (the flag)."""
    if url is None:
        from benchmark.paths import default_optuna_storage, env_or, state_dir, writable_folder

        writable_folder(state_dir(), env_or("FUSEBENCH_HOME", "fusebench's state folder"))
        what = "$FUSEBENCH_OPTUNA_STORAGE" if os.environ.get("FUSEBENCH_OPTUNA_STORAGE") else "default storage"
        url = default_optuna_storage()
    url = normalise_url(url)
    if url.startswith("journal:"):
        _check_writable_file(Path(url[len("journal:"):]), what, url)
        return url
    return _checked_database(url, what, STORAGE_FORMS)


def checked_tracking_uri(uri: str | None, what: str = "--tracking-uri") -> str:
    """The MLflow tracking URI ``uri`` (None: $MLFLOW_TRACKING_URI or the default) normalised and
    checked before anything is opened: a scheme MLflow has a tracking store for (a database URI as
    for ``checked_storage_url``). Raises StoreURLError naming ``what``."""
    if uri is None:
        from benchmark.paths import default_tracking_uri

        what = "$MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else "default tracking store"
        uri = default_tracking_uri()
    uri = normalise_url(uri)
    if uri.partition("://")[0].split("+")[0] in DATABASE_SCHEMES:
        return _checked_database(uri, what, "sqlite:///PATH, postgresql://... or http(s)://HOST:PORT")
    if _is_folder_uri(uri):
        return _checked_folder_store(uri, what)
    # MLflow's own table of tracking-store schemes (private, but mlflow is pinned in pyproject.toml).
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    try:
        _tracking_store_registry.get_store_builder(uri)
    except Exception:  # noqa: BLE001 - MLflow raises its "unsupported URI" exception for an unknown scheme
        known = sorted(s for s in _tracking_store_registry._registry if s)
        raise StoreURLError(f"{what}: {mask_secrets(uri)}: unknown tracking URI scheme; expected one "
                            f"of {', '.join(f'{s}://' for s in known)}") from None
    return uri


def _is_folder_uri(uri: str) -> bool:
    """A tracking URI that names a folder (MLflow's file store): a plain path or ``file://``."""
    from urllib.parse import urlparse

    return urlparse(uri).scheme in ("", "file")


def _checked_folder_store(uri: str, what: str) -> str:
    """A folder tracking store: MLflow 3 refuses it (a traceback on first use) unless
    $MLFLOW_ALLOW_FILE_STORE is set; then the folder must exist and be writable, or be creatable."""
    from urllib.parse import urlparse

    from mlflow.environment_variables import MLFLOW_ALLOW_FILE_STORE

    if not MLFLOW_ALLOW_FILE_STORE.get():
        raise StoreURLError(f"{what}: {uri}: MLflow 3 no longer writes to folder stores; give sqlite:///PATH "
                            "(or set MLFLOW_ALLOW_FILE_STORE=true to use the folder anyway)")
    folder = Path(urlparse(uri).path if uri.startswith("file:") else uri).expanduser().absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    problem = (f"{existing} is not a folder" if not existing.is_dir() else _folder_write_problem(existing))
    if problem:
        raise StoreURLError(f"{what}: {uri}: {problem}")
    return uri


def _checked_database(url: str, what: str, forms: str) -> str:
    """``url`` when SQLAlchemy can open it here: a known dialect whose driver is installed; for
    SQLite, a file that exists and is writable or can be created."""
    import sqlalchemy as sa
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = sa.engine.make_url(url)
        dialect = parsed.get_dialect()
    except ArgumentError:  # also NoSuchModuleError: an unknown scheme or driver name
        raise StoreURLError(f"{what}: {mask_secrets(url)}: not a database URL fusebench can open; expected "
                            f"{forms}") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise StoreURLError(f"{what}: {mask_secrets(url)}: its driver is not installed ({exc}); for PostgreSQL "
                            "write postgresql:// or postgresql+psycopg2:// (psycopg2 is installed)") from None
    if dialect.name == "sqlite" and parsed.database not in (None, "", ":memory:"):
        _check_writable_file(Path(parsed.database), what, url)
    return url


def _check_writable_file(path: Path, what: str, url: str) -> None:
    """A store file fusebench writes: it exists and is writable, or its folder exists and is."""
    folder = path.parent
    if path.exists():
        problem = "" if path.is_file() and os.access(path, os.W_OK) and os.access(folder, os.W_OK) else \
            "the file (or its folder) is not writable, or is not a file"
    elif not folder.is_dir():
        problem = f"folder {folder} does not exist"
    else:
        problem = _folder_write_problem(folder)
    if problem:
        raise StoreURLError(f"{what}: {mask_secrets(url)}: {problem}")


def _folder_write_problem(folder: Path) -> str:
    """'' when a file can be created in ``folder``, else why not. A real probe (a nameless temporary
    file, gone when closed), not ``os.access``: for root, ``access`` says yes to folders nobody can
    create files in (``/proc``), and MLflow then retries opening the database for 100 s."""
    import tempfile

    if not os.access(folder, os.W_OK):
        return f"folder {folder} is not writable"
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".fusebench-probe-"):
            pass
    except OSError:
        return f"folder {folder} is not writable (no file can be created in it)"
    return ""


# (kind, URL) of the stores this process has already created or found (first_use_lock is then a no-op).
_READY: set[tuple[str, str]] = set()


@contextlib.contextmanager
def first_use_lock(url: str, kind: str):
    """Held while this process opens a store for the first time, which creates its tables when the
    store is new: Optuna's, fusebench's own (stores/matrix_registry.py), MLflow's (its tables, then some 50 alembic migrations).
    Two first-ever benches started together raced there ("table studies already exists", alembic's
    "expected to match one row ... in 'alembic_version'; 0 found"), as neither library guards its
    own creation across processes (MLflow's store does not take its own file lock on this path). So
    every process opening a store serialises on a lock of that store: an exclusive ``flock`` on a
    file next to a SQLite database (released by the kernel when a process dies, so a killed bench
    never leaves it held), a session advisory lock in a PostgreSQL database (workers on several
    machines). Other stores (journal files, MLflow servers, MySQL) guard themselves or are left as
    they are. Taken once per store and process; ``kind`` ("optuna", "fusebench ...", "mlflow") tells apart the
    stores that share one database (fusebench's tables live in the Optuna database)."""
    key = (kind, normalise_url(url))
    if key in _READY:
        yield
        return
    with _sqlite_file_lock(key[1]) or _postgres_advisory_lock(key[1]) or contextlib.nullcontext():
        yield
    _READY.add(key)


def _sqlite_file_lock(url: str):
    """An exclusive flock on ``.<name>.create-lock`` beside a SQLite database file; None for other URLs
    (or where no lock file can be made: the store's own open then names the problem)."""
    if not url.startswith("sqlite:"):
        return None
    import sqlalchemy as sa

    try:
        database = sa.engine.make_url(url).database
        import fcntl
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads, or no fcntl (Windows): no lock
        return None
    if database in (None, "", ":memory:") or database.startswith("file:"):
        return None
    path = Path(database)
    try:
        handle = open(path.parent / f".{path.name}.create-lock", "a")
    except OSError:
        return None

    @contextlib.contextmanager
    def held():
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    return held()


def _postgres_advisory_lock(url: str):
    """A session advisory lock (one fixed key) in the PostgreSQL database of ``url``; None for other
    URLs. An unreachable server raises OperationalError here, which the callers' retry rides out."""
    if not url.startswith("postgresql"):
        return None
    import sqlalchemy as sa

    lock_key = int.from_bytes(hashlib.sha256(b"fusebench: create store tables").digest()[:8], "big", signed=True)

    @contextlib.contextmanager
    def held():
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": lock_key})
                try:
                    yield
                finally:
                    connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key})
        finally:
            engine.dispose()

    return held()


def connect_once(url: str) -> None:
    """Open and close one connection to a server database (PostgreSQL, MySQL); nothing for SQLite
    (its file is checked by path). Run under ``retry`` before handing a tracking URI to MLflow: MLflow
    retries a database it cannot open for 100 s on its own, then raises a traceback, whether the
    server is down (worth waiting for, within fusebench's budget) or the database does not exist
    (one line at once, retry.PERMANENT_ERRORS)."""
    import sqlalchemy as sa

    url = normalise_url(url)
    if url.partition("://")[0].split("+")[0] not in DATABASE_SCHEMES or url.startswith("sqlite"):
        return
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


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

    url = normalise_url(url)
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(url[len("journal:"):]))
    with first_use_lock(url, "optuna"):  # creates Optuna's tables in a new database: one process at a time
        storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_options(url))
    fast_sqlite_commits(storage.engine)
    return storage


def fast_sqlite_commits(engine) -> None:
    """A SQLite store in write-ahead-log mode with ``synchronous=NORMAL``: a commit appends to the
    log without waiting for the disk (an fsync per checkpoint instead of per commit). Optuna commits
    every reported epoch of every trial; with the default rollback journal those commits took 12%
    of a tuning worker's time (py-spy, default profile, 2026-12). WAL is SQLite's documented
    setting for this: a killed process loses nothing, and a power failure may lose the last commits
    but never consistency (those units and trials are run again, as after a kill). No-op for servers."""
    import sqlalchemy as sa

    if engine.dialect.name != "sqlite":
        return

    @sa.event.listens_for(engine, "connect")
    def _pragmas(connection, _record) -> None:
        cursor = connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")  # kept in the file; another process may hold it: fine
        except Exception:  # noqa: BLE001 - a locked database keeps its mode for now; synchronous still applies
            pass
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    engine.dispose()  # connections opened before the listener get the pragmas when reopened
