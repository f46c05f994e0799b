"""One driver per matrix (benchmark/stores/driver_lock.py): a second bench on a matrix whose driver's
heartbeat is fresh is refused with one line and exit status 2; a driver whose heartbeat went stale
(it died) is taken over; two benches starting at the same moment cannot both win."""

from __future__ import annotations

import os
import threading
import time

import pytest

from tests.helpers_runs import write_tabular_card

BENCH = ["bench", "--datasets", "tab", "--strategies", "concat", "--seeds", "0", "--dropout", "0", "--trials", "0",
         "--epochs", "1", "--device", "cpu", "--no-report"]


def _storage() -> str:
    return os.environ["FUSEBENCH_OPTUNA_STORAGE"]


def test_a_live_driver_refuses_a_second_and_a_released_one_does_not(fusebench_home):
    from benchmark.stores.driver_lock import DriverLock, MatrixBusy, driver_of

    with DriverLock(_storage(), "m-1") as first:
        assert driver_of(_storage(), "m-1").driver == first.driver
        with pytest.raises(MatrixBusy) as refused:
            DriverLock(_storage(), "m-1").acquire()
        message = str(refused.value)
        assert "\n" not in message and "matrix m-1 is already driven by" in message and first.driver in message
        with DriverLock(_storage(), "m-2"):  # another matrix is not held by it
            pass
    assert driver_of(_storage(), "m-1") is None  # given up on exit
    with DriverLock(_storage(), "m-1") as again:
        assert again.took_over is None


def test_a_stale_driver_is_taken_over_and_a_live_one_keeps_its_heartbeat(fusebench_home):
    from benchmark.stores.driver_lock import DriverLock, MatrixBusy, driver_of

    dead = DriverLock(_storage(), "m", stale_s=0.8)
    dead.acquire()  # a driver that took the row and died: no heartbeat thread, never released
    with pytest.raises(MatrixBusy):
        DriverLock(_storage(), "m", stale_s=0.8).acquire()
    time.sleep(1.0)
    with DriverLock(_storage(), "m", stale_s=0.8) as heir:
        assert heir.took_over is not None and heir.took_over.driver == dead.driver
        time.sleep(1.2)  # longer than stale_s: only the heartbeat keeps the row fresh
        assert driver_of(_storage(), "m").age_s() < 0.8
        with pytest.raises(MatrixBusy):
            DriverLock(_storage(), "m", stale_s=0.8).acquire()
    dead.release()  # the dead driver's late release leaves the heir's row alone (already given up here)
    assert driver_of(_storage(), "m") is None


def test_two_drivers_starting_together_cannot_both_win(fusebench_home):
    from benchmark.stores.driver_lock import DriverLock, MatrixBusy
    from benchmark.stores.matrix_registry import METADATA, open_database

    open_database(_storage(), METADATA)  # the tables exist; the race is over the row
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def contender():
        lock = DriverLock(_storage(), "race")
        start.wait()
        try:
            lock.acquire()
            outcomes.append("won")
        except MatrixBusy:
            outcomes.append("refused")

    threads = [threading.Thread(target=contender) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["refused", "refused", "refused", "won"]


def test_a_second_bench_on_a_driven_matrix_is_refused_with_one_line(fusebench_home, capsys):
    from benchmark.cli import main
    from benchmark.run.status import format_status, matrix_status
    from benchmark.stores.driver_lock import DriverLock
    from benchmark.stores.matrix_registry import MatrixRegistry

    write_tabular_card(fusebench_home / "cards", "tab")
    assert main(BENCH + ["--workers", "0"]) == 0  # registers the matrix (and gives its driver row up)
    matrix_id = MatrixRegistry(_storage()).matrix(None)["matrix_id"]
    capsys.readouterr()
    with DriverLock(_storage(), matrix_id) as other:  # another bench drives it now
        assert "driver: " + other.driver in format_status(matrix_status(_storage(), matrix_id))
        assert main(BENCH) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and err[0].startswith(f"fusebench: error: matrix {matrix_id} is already driven by "), err
    status = matrix_status(_storage(), matrix_id)
    assert (status.driver, status.cells_done) == (None, 0)  # the refused bench ran nothing
    assert "driver: none" in format_status(status)
    assert main(BENCH) == 0
    assert "1 cells: 1 run now" in capsys.readouterr().out
