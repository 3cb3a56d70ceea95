"""Ctrl-C stops a cold zoo run at once (exit 130) keeping what finished; workers die with
their parent, even when it is killed with SIGKILL (issue 10, item 5)."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

TESTS = str(Path(__file__).parent)
SCRIPT = ("import sys; sys.path.insert(0, %r); import _slow_capture, netfrontier.zoo as z; "
          "z._capture_worker = _slow_capture.capture; from netfrontier.cli import main; main()"
          % TESTS)


def start(tmp_path):
    store = tmp_path / "s.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, "zoo", "--filter", "resnet*",
                             "--store", str(store), "--out", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_terminal_sigint)
    return proc, store


def _terminal_sigint() -> None:
    """Ctrl-C as on a terminal: a process started with SIGINT ignored (as a test runner's
    worker may be) keeps it ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def children(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def costs(store: Path) -> int:
    try:
        return sqlite3.connect(store).execute("SELECT COUNT(*) FROM costs").fetchone()[0]
    except sqlite3.Error:
        return 0


def wait_for(cond, timeout: float) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.2)
    return False


def test_ctrl_c_stops_at_once_with_130_and_keeps_finished_results(tmp_path):
    inherited = signal.getsignal(signal.SIGINT)
    proc, store = start(tmp_path)
    try:
        assert wait_for(lambda: costs(store) >= 6, 240), proc.stderr.read() if \
            proc.poll() is not None else "no result in time"
        workers = children(proc.pid)
        t0 = time.time()
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        _, err = proc.communicate(timeout=30)
        assert time.time() - t0 < 10, f"SIGINT in the test process: {inherited}"  # not the minutes the hanging captures would take
        assert proc.returncode == 130, err
        assert "interrupted; completed results are kept" in err and "Traceback" not in err
        assert costs(store) == 6  # the six finished models, nothing half-written
        assert wait_for(lambda: not any(Path(f"/proc/{w}").exists() for w in workers), 10)
        assert not (tmp_path / "out" / "results.csv").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_workers_die_with_a_killed_parent(tmp_path):
    proc, store = start(tmp_path)
    try:
        assert wait_for(lambda: costs(store) >= 6, 240)
        workers = children(proc.pid)
        assert workers
        proc.kill()  # SIGKILL: no handler runs in the parent
        proc.wait(timeout=10)
        assert wait_for(lambda: not any(Path(f"/proc/{w}").exists() for w in workers), 10), \
            [w for w in workers if Path(f"/proc/{w}").exists()]
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
