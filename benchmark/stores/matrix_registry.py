"""The record of each matrix a bench started: its configuration and the tracking URI it writes to,
kept in the Optuna database (or, for a journal storage, a SQLite file in the state folder). It lets
`fusebench status --storage URL` show a matrix from any machine that reaches that database, without
the configuration or flags of the bench that started it. The driver lock (driver_lock.py) keeps its
row in the same database."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from benchmark import paths
from benchmark.stores.database import engine_options, fast_sqlite_commits, first_use_lock, mask_secrets, normalise_url
from benchmark.stores.retry import retry, retry_budget

METADATA = sa.MetaData()
MATRICES = sa.Table(
    "fusebench_matrices", METADATA,
    sa.Column("matrix_id", sa.String(128), primary_key=True),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("tracking_uri", sa.Text, nullable=False),
    sa.Column("optuna_storage", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
)


def registry_url(optuna_storage: str, state_dir: str) -> str:
    """The database of the records: the Optuna RDB itself, or a SQLite file for a journal storage."""
    if optuna_storage.startswith("journal:"):
        return f"sqlite:///{os.path.join(state_dir, 'matrices.db')}"
    return normalise_url(optuna_storage)


@dataclass
class StoreDatabase:
    """One SQL database fusebench keeps its own small tables in, created on first use, every access
    retried through a store outage (stores/retry.py)."""

    url: str
    metadata: sa.MetaData
    retry_budget_s: float = field(default_factory=retry_budget)

    def __post_init__(self) -> None:
        self.engine = sa.create_engine(self.url, **engine_options(self.url))
        fast_sqlite_commits(self.engine)
        retry(self._create_tables, f"create fusebench tables in {mask_secrets(self.url)}", self.retry_budget_s)

    def _create_tables(self) -> None:
        # two first-ever benches: one creates the tables, the other finds them
        with first_use_lock(self.url, "fusebench " + ",".join(sorted(self.metadata.tables))):
            self.metadata.create_all(self.engine)

    def run(self, what: str, fn):
        """``fn(connection)`` in one transaction, retried while the store is out."""
        def action():
            with self.engine.begin() as conn:
                return fn(conn)

        return retry(action, f"{what} ({mask_secrets(self.url)})", self.retry_budget_s)


def open_database(storage_url: str, metadata: sa.MetaData, state_dir: str | None = None) -> StoreDatabase:
    """The database of fusebench's own tables for the Optuna storage ``storage_url`` (registry_url)."""
    state_dir = str(state_dir or paths.state_dir())
    os.makedirs(state_dir, exist_ok=True)
    return StoreDatabase(registry_url(storage_url, state_dir), metadata)


class MatrixRegistry:
    """The matrices registered in one Optuna storage's database."""

    def __init__(self, storage_url: str, state_dir: str | None = None) -> None:
        self.database = open_database(storage_url, METADATA, state_dir)

    def register(self, matrix_id: str, config: dict, tracking_uri: str, optuna_storage: str) -> None:
        """Record the matrix once (a re-run of the same bench leaves the first record)."""
        def fn(conn):
            exists = conn.execute(sa.select(MATRICES.c.matrix_id).where(MATRICES.c.matrix_id == matrix_id)).first()
            if not exists:
                conn.execute(MATRICES.insert().values(matrix_id=matrix_id, config=json.dumps(config),
                                                      tracking_uri=tracking_uri, optuna_storage=optuna_storage,
                                                      created=time.time()))

        try:
            self.database.run("register matrix", fn)
        except IntegrityError:
            pass  # registered at the same moment by another process

    def matrix(self, matrix_id: str | None) -> dict:
        """The registered matrix (the newest one when no id is given): matrix_id, config (a dict),
        tracking_uri, optuna_storage, created (epoch s). Raises LookupError when there is none."""
        rows = self.matrices(matrix_id, limit=1)
        if not rows:
            raise LookupError(f"no matrix {'with id ' + matrix_id if matrix_id else 'registered'} in "
                              f"{mask_secrets(self.database.url)}; start one with `fusebench bench --storage <same URL>`")
        return rows[0]

    def matrices(self, matrix_id: str | None = None, limit: int | None = None) -> list[dict]:
        """Registered matrices, newest first (only ``matrix_id`` when given)."""
        query = sa.select(MATRICES).order_by(MATRICES.c.created.desc())
        if matrix_id:
            query = query.where(MATRICES.c.matrix_id == matrix_id)
        if limit:
            query = query.limit(limit)
        rows = self.database.run("read matrices", lambda conn: conn.execute(query).mappings().all())
        return [{**row, "config": json.loads(row["config"])} for row in rows]
