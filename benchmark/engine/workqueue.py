"""Work claims shared by every worker of a matrix: one SQL table of leases.

A unit of work is either one tuning-trial slot of a study or one final cell. A worker
claims a unit by taking its lease (an atomic UPDATE/INSERT that only succeeds when the unit
is free or its lease has expired), renews the lease while it works, and marks the unit done
at the end. A killed worker's lease expires and another worker takes the unit over. The
table lives in the same database as the Optuna storage (PostgreSQL for several machines) or
in a SQLite file next to it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from benchmark import paths
from benchmark.stores.database import engine_options, fast_sqlite_commits, first_use_lock, mask_secrets, normalise_url
from benchmark.stores.retry import StoreUnavailable, retry, retry_budget

METADATA = sa.MetaData()
MATRICES = sa.Table(
    "fusebench_matrices", METADATA,
    sa.Column("matrix_id", sa.String(128), primary_key=True),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("tracking_uri", sa.Text, nullable=False),
    sa.Column("optuna_storage", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
)
LEASES = sa.Table(
    "fusebench_leases", METADATA,
    sa.Column("matrix_id", sa.String(128), primary_key=True),
    sa.Column("unit", sa.String(256), primary_key=True),
    sa.Column("worker", sa.String(128)),
    sa.Column("expires", sa.Float, nullable=False, default=0.0),
    sa.Column("done", sa.Boolean, nullable=False, default=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
)


def queue_url(optuna_storage: str, state_dir: str) -> str:
    """The database for leases: the Optuna RDB itself, or a SQLite file for journal storage."""
    if optuna_storage.startswith("journal:"):
        return f"sqlite:///{os.path.join(state_dir, 'queue.db')}"
    return normalise_url(optuna_storage)


def open_queue(storage_url: str, state_dir: str | None = None, lease_s: float | None = None) -> WorkQueue:
    """The work queue of the matrices registered in ``storage_url`` (for a journal storage, a
    SQLite file in ``state_dir``, default the fusebench state folder); lease ``FUSEBENCH_LEASE_S``
    seconds, default 120."""
    state_dir = str(state_dir or paths.state_dir())
    os.makedirs(state_dir, exist_ok=True)
    lease_s = float(os.environ.get("FUSEBENCH_LEASE_S", "120")) if lease_s is None else lease_s
    return WorkQueue(queue_url(storage_url, state_dir), lease_s=lease_s)


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class WorkQueue:
    url: str
    lease_s: float = 120.0
    retry_budget_s: float = field(default_factory=retry_budget)

    def __post_init__(self) -> None:
        self.engine = sa.create_engine(self.url, **engine_options(self.url))
        fast_sqlite_commits(self.engine)
        retry(self._create_tables, f"create work tables in {mask_secrets(self.url)}", self.retry_budget_s)

    def _create_tables(self) -> None:
        with first_use_lock(self.url, "queue"):  # two first-ever benches: one creates the tables, the other finds them
            METADATA.create_all(self.engine)

    def _run(self, what: str, fn):
        def action():
            with self.engine.begin() as conn:
                return fn(conn)

        return retry(action, f"{what} ({mask_secrets(self.url)})", self.retry_budget_s)

    # ------------------------------------------------------------ matrices
    def register_matrix(self, matrix_id: str, config: dict, tracking_uri: str, optuna_storage: str) -> None:
        def fn(conn):
            exists = conn.execute(sa.select(MATRICES.c.matrix_id).where(MATRICES.c.matrix_id == matrix_id)).first()
            if not exists:
                conn.execute(MATRICES.insert().values(matrix_id=matrix_id, config=json.dumps(config),
                                                      tracking_uri=tracking_uri, optuna_storage=optuna_storage,
                                                      created=time.time()))

        try:
            self._run("register matrix", fn)
        except IntegrityError:
            pass  # registered concurrently by another process

    def matrix(self, matrix_id: str | None) -> dict:
        """The registered matrix (the newest one when no id is given)."""
        def fn(conn):
            query = sa.select(MATRICES)
            query = query.where(MATRICES.c.matrix_id == matrix_id) if matrix_id else query.order_by(MATRICES.c.created.desc())
            return conn.execute(query.limit(1)).mappings().first()

        row = self._run("read matrix", fn)
        if row is None:
            raise LookupError(f"no matrix {'with id ' + matrix_id if matrix_id else 'registered'} in {mask_secrets(self.url)}; "
                              "start one with `fusebench bench --storage <same URL>`")
        return {**row, "config": json.loads(row["config"])}

    # ------------------------------------------------------------ leases
    def claim(self, matrix_id: str, unit: str, worker: str) -> bool:
        """Take the lease on ``unit`` if it is not done and free or expired. True when taken."""
        now = time.time()

        def fn(conn):
            updated = conn.execute(
                LEASES.update()
                .where(LEASES.c.matrix_id == matrix_id, LEASES.c.unit == unit, LEASES.c.done == sa.false(),
                       sa.or_(LEASES.c.expires < now, LEASES.c.worker == worker))
                .values(worker=worker, expires=now + self.lease_s, attempts=LEASES.c.attempts + 1))
            if updated.rowcount:
                return True
            present = conn.execute(sa.select(LEASES.c.unit).where(LEASES.c.matrix_id == matrix_id, LEASES.c.unit == unit)).first()
            if present:
                return False
            conn.execute(LEASES.insert().values(matrix_id=matrix_id, unit=unit, worker=worker,
                                                expires=now + self.lease_s, done=False, attempts=1))
            return True

        try:
            return self._run(f"claim {unit}", fn)
        except IntegrityError:
            return False  # another worker inserted the same lease first

    def holds(self, matrix_id: str, unit: str, worker: str) -> bool:
        """Whether ``worker`` still holds the lease on ``unit`` (nobody took it over after a lapse)."""
        row = self._run(f"check lease on {unit}", lambda conn: conn.execute(
            sa.select(LEASES.c.worker).where(LEASES.c.matrix_id == matrix_id, LEASES.c.unit == unit)).first())
        return row is not None and row[0] == worker

    def renew(self, matrix_id: str, unit: str, worker: str) -> None:
        self._run(f"renew {unit}", lambda conn: conn.execute(
            LEASES.update().where(LEASES.c.matrix_id == matrix_id, LEASES.c.unit == unit, LEASES.c.worker == worker)
            .values(expires=time.time() + self.lease_s)))

    def mark_done(self, matrix_id: str, unit: str) -> None:
        def fn(conn):
            updated = conn.execute(LEASES.update().where(LEASES.c.matrix_id == matrix_id, LEASES.c.unit == unit)
                                   .values(done=True, expires=0.0))
            if not updated.rowcount:
                conn.execute(LEASES.insert().values(matrix_id=matrix_id, unit=unit, worker=None, expires=0.0,
                                                    done=True, attempts=0))

        try:
            self._run(f"mark {unit} done", fn)
        except IntegrityError:
            self._run(f"mark {unit} done", lambda conn: conn.execute(
                LEASES.update().where(LEASES.c.matrix_id == matrix_id, LEASES.c.unit == unit).values(done=True)))

    def reopen(self, matrix_id: str, units: list[str]) -> int:
        """Mark done units as not done again (to retry failed cells). Returns how many."""
        if not units:
            return 0
        return self._run("reopen units", lambda conn: conn.execute(
            LEASES.update().where(LEASES.c.matrix_id == matrix_id, LEASES.c.unit.in_(units))
            .values(done=False, expires=0.0)).rowcount)

    def leases(self, matrix_id: str) -> list[dict]:
        """Every lease row of the matrix: unit, worker, expires (epoch s), done, attempts."""
        rows = self._run("read leases", lambda conn: conn.execute(
            sa.select(LEASES.c.unit, LEASES.c.worker, LEASES.c.expires, LEASES.c.done, LEASES.c.attempts)
            .where(LEASES.c.matrix_id == matrix_id)).mappings().all())
        return [dict(r) for r in rows]

    def done_units(self, matrix_id: str) -> set[str]:
        rows = self._run("read leases", lambda conn: conn.execute(
            sa.select(LEASES.c.unit).where(LEASES.c.matrix_id == matrix_id, LEASES.c.done == sa.true())).all())
        return {r[0] for r in rows}

    def attempts(self, matrix_id: str) -> dict[str, int]:
        rows = self._run("read leases", lambda conn: conn.execute(
            sa.select(LEASES.c.unit, LEASES.c.attempts).where(LEASES.c.matrix_id == matrix_id)).all())
        return {r[0]: r[1] for r in rows}

    def release_dead_local(self, matrix_id: str) -> int:
        """Expire leases held by worker processes of this host that no longer exist, so a
        re-run after a kill resumes at once instead of waiting for the lease timeout."""
        if os.environ.get("FUSEBENCH_NO_LOCAL_RELEASE") == "1":
            return 0
        rows = self._run("read leases", lambda conn: conn.execute(
            sa.select(LEASES.c.unit, LEASES.c.worker).where(
                LEASES.c.matrix_id == matrix_id, LEASES.c.done == sa.false(), LEASES.c.expires > time.time())).all())
        released = 0
        for unit, worker in rows:
            if worker and worker_process_gone(worker):
                self._run("release lease", lambda conn: conn.execute(
                    LEASES.update().where(LEASES.c.matrix_id == matrix_id, LEASES.c.unit == unit,
                                          LEASES.c.worker == worker).values(expires=0.0)))
                released += 1
        return released

    @contextlib.contextmanager
    def holding(self, matrix_id: str, unit: str, worker: str):
        """Keep renewing the lease on ``unit`` in a background thread while the body runs."""
        stop = threading.Event()

        def renew_loop():
            while not stop.wait(self.lease_s / 3):
                try:
                    self.renew(matrix_id, unit, worker)
                except StoreUnavailable:
                    pass  # the lease may lapse; the unit's own checks keep work from being duplicated

        thread = threading.Thread(target=renew_loop, name=f"lease-{unit}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)


def worker_process_gone(worker: str) -> bool:
    """True when ``worker`` (an id from new_worker_id) ran on this host and its process is gone.
    Workers of other hosts are never judged from here: their leases expire instead."""
    host = socket.gethostname()
    if not worker.startswith(host + "-"):
        return False
    try:
        return not _pid_alive(int(worker[len(host) + 1:].split("-")[0]))
    except ValueError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed child not yet reaped) counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True
