"""One driver per matrix: the `fusebench bench` process that submits a matrix's units holds a row
in the matrix registry's database (host, pid, start time, and after how many seconds without a
heartbeat it counts as dead: ``FUSEBENCH_DRIVER_STALE_S`` of that driver, default 30) and refreshes
its heartbeat four times in that span while it runs. A second bench on the same matrix finds a fresh
heartbeat and is refused; a stale one means the driver died, and the next bench takes the row over
and resumes from the stores. The row only says who drives: which units are done is
read from the stores (benchmark/run/store_progress.py), and Ray runs the units.

Taking the row is one conditional UPDATE (or an INSERT that fails when another bench inserted first),
so two benches started at the same moment cannot both win."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from benchmark.stores.matrix_registry import StoreDatabase, open_database
from benchmark.stores.retry import StoreUnavailable

METADATA = sa.MetaData()
DRIVERS = sa.Table(
    "fusebench_drivers", METADATA,
    sa.Column("matrix_id", sa.String(128), primary_key=True),
    sa.Column("driver", sa.String(256), nullable=False),
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("heartbeat", sa.Float, nullable=False),
    sa.Column("stale_s", sa.Float, nullable=False),
)


RECORD_COLUMNS = (DRIVERS.c.driver, DRIVERS.c.started, DRIVERS.c.heartbeat, DRIVERS.c.stale_s)


def stale_after_s() -> float:
    """Seconds without a heartbeat after which a driver counts as dead (``FUSEBENCH_DRIVER_STALE_S``)."""
    return float(os.environ.get("FUSEBENCH_DRIVER_STALE_S", "30"))


def this_driver() -> str:
    """This process as a driver: host, pid and a random tag (a pid is reused after a restart)."""
    return f"{socket.gethostname()} pid {os.getpid()} ({uuid.uuid4().hex[:6]})"


class MatrixBusy(RuntimeError):
    """Another live driver runs the matrix."""


@dataclass(frozen=True)
class DriverRecord:
    """The driver row of a matrix: who, since when, its last heartbeat (epoch s), and after how many
    seconds without one it counts as dead."""

    driver: str
    started: float
    heartbeat: float
    stale_s: float

    def age_s(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.heartbeat

    @property
    def alive(self) -> bool:
        return self.age_s() < self.stale_s


def driver_of(storage_url: str, matrix_id: str) -> DriverRecord | None:
    """The matrix's driver row (for `fusebench status`), or None when no bench drives it now."""
    return driver_of_database(open_database(storage_url, METADATA), matrix_id)


class DriverLock:
    """Held by the one bench that drives ``matrix_id``: ``with DriverLock(url, id):`` takes the row
    (raising MatrixBusy with a one-line reason when a live driver holds it), refreshes its heartbeat
    in a background thread, and gives the row up on exit."""

    def __init__(self, storage_url: str, matrix_id: str, stale_s: float | None = None,
                 database: StoreDatabase | None = None) -> None:
        self.matrix_id, self.driver = matrix_id, this_driver()
        self.stale_s = stale_after_s() if stale_s is None else stale_s
        self.database = database or open_database(storage_url, METADATA)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.took_over: DriverRecord | None = None  # the dead driver whose row this one took

    def __enter__(self) -> DriverLock:
        self.acquire()
        self._thread = threading.Thread(target=self._beat, name=f"driver-{self.matrix_id}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.release()

    def acquire(self) -> None:
        now = time.time()

        def fn(conn):
            before = conn.execute(sa.select(*RECORD_COLUMNS).where(DRIVERS.c.matrix_id == self.matrix_id)).first()
            if before is None:
                conn.execute(DRIVERS.insert().values(matrix_id=self.matrix_id, driver=self.driver, started=now,
                                                     heartbeat=now, stale_s=self.stale_s))
                return None, True
            # stale by the holder's own measure; the same holder, so two benches cannot both take it over
            taken = conn.execute(DRIVERS.update().where(DRIVERS.c.matrix_id == self.matrix_id,
                                                        DRIVERS.c.heartbeat + DRIVERS.c.stale_s < now,
                                                        DRIVERS.c.driver == before.driver)
                                 .values(driver=self.driver, started=now, heartbeat=now, stale_s=self.stale_s)).rowcount
            return DriverRecord(*before), bool(taken)

        try:
            before, taken = self.database.run("take the matrix's driver row", fn)
        except IntegrityError:  # another bench inserted the row first
            before, taken = driver_of_database(self.database, self.matrix_id), False
        if not taken:
            raise MatrixBusy(busy_message(self.matrix_id, before))
        self.took_over = before

    def release(self) -> None:
        try:
            self.database.run("give up the matrix's driver row", lambda conn: conn.execute(
                DRIVERS.delete().where(DRIVERS.c.matrix_id == self.matrix_id, DRIVERS.c.driver == self.driver)))
        except StoreUnavailable:
            pass  # the row goes stale and the next bench takes it over

    def _beat(self) -> None:
        while not self._stop.wait(self.stale_s / 4):
            try:
                self.database.run("refresh the driver's heartbeat", lambda conn: conn.execute(
                    DRIVERS.update().where(DRIVERS.c.matrix_id == self.matrix_id, DRIVERS.c.driver == self.driver)
                    .values(heartbeat=time.time())))
            except StoreUnavailable:
                pass  # retried at the next beat; the units' own checks keep work from being done twice


def driver_of_database(database: StoreDatabase, matrix_id: str) -> DriverRecord | None:
    row = database.run("read the matrix's driver", lambda conn: conn.execute(
        sa.select(*RECORD_COLUMNS).where(DRIVERS.c.matrix_id == matrix_id)).first())
    return None if row is None else DriverRecord(*row)


def busy_message(matrix_id: str, holder: DriverRecord | None) -> str:
    """The one line a refused second bench prints."""
    if holder is None:
        return f"matrix {matrix_id} is being started by another bench at this moment; run `fusebench status` to see it"
    age = holder.age_s()
    return (f"matrix {matrix_id} is already driven by {holder.driver} (heartbeat {age:.0f}s ago); a second bench is "
            f"refused: wait for it, or if that process is gone re-run after its heartbeat is {holder.stale_s:.0f}s old")
