"""Scale-out on PostgreSQL: a real server (Debian's postgresql, initdb/pg_ctl in a temporary
directory on a free 127.0.0.1 port, as the postgres user when run as root), two worker
processes pulling trials of one study, one killed with SIGKILL in the middle of a trial: its
trial is marked failed and re-queued once, the other worker runs it, nothing is lost or run
twice. `make test` installs postgresql when it is missing (make system-deps); this test does
not skip without it, it fails."""
from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    initdb, pg_ctl, psql = _pg_bin("initdb"), _pg_bin("pg_ctl"), _pg_bin("psql")
    if not (initdb and pg_ctl and psql):
        pytest.fail("PostgreSQL is not installed: `make system-deps` installs Debian's "
                    "postgresql package")
    root = Path(tempfile.mkdtemp(prefix="nf-pg-"))
    as_pg: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_pg = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()

    def run(cmd):
        return subprocess.run(as_pg + cmd, capture_output=True, text=True, timeout=120,
                              cwd=root)

    r = run([initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"])
    assert r.returncode == 0, r.stderr
    r = run([pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60", "-o",
             f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"])
    assert r.returncode == 0, r.stderr + (root / "log").read_text()
    try:
        r = run([psql, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c",
                 "CREATE DATABASE nf"])
        assert r.returncode == 0, r.stderr
        yield f"postgresql://postgres@127.0.0.1:{port}/nf"
    finally:
        run([pg_ctl, "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_one_killed_nothing_lost_or_run_twice(postgres):
    import optuna

    import netfrontier.search.run as R
    from netfrontier.search.space import SearchSpace

    space = SearchSpace(family="convnet", channels=(8, 16, 24, 32), depths=(1, 2),
                        epochs=4, train_images=1000, deploy_resolution=32)
    cfg = R.SearchConfig(hw="img-series4-1core", data="digits", trials=5, sampler="random",
                         seed=7, space=space.to_json(), threads=1)
    st = R.open_storage(postgres)
    R.create_or_resume(st, "pg-scaleout", cfg)
    env = {**os.environ, "NETFRONTIER_SEARCH_HEARTBEAT": "1,4"}
    cmd = [sys.executable, "-c", "from netfrontier.cli import main; main()", "search",
           "--worker", "--study", "pg-scaleout", "--storage", postgres, "--threads", "1"]
    a = subprocess.Popen(cmd + ["--worker-index", "1"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    b = subprocess.Popen(cmd + ["--worker-index", "2"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    study = optuna.load_study(study_name="pg-scaleout", storage=st)
    victim = None
    try:
        deadline = time.time() + 240
        while victim is None and time.time() < deadline and a.poll() is None:
            for t in study.get_trials(deepcopy=False):
                if t.state == optuna.trial.TrialState.RUNNING and \
                        t.user_attrs.get("environment", {}).get("pid") == a.pid:
                    victim = t.number
                    a.send_signal(signal.SIGKILL)  # in the middle of its trial
                    break
            time.sleep(0.05)
        assert victim is not None, "worker 1 never ran a trial: " + (
            a.stdout.read().decode() if a.poll() is not None else "")
        a.wait(timeout=30)
        out, _ = b.communicate(timeout=400)
        assert b.returncode == 0, out.decode()
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
    states = optuna.trial.TrialState
    trials = optuna.load_study(study_name="pg-scaleout", storage=st).get_trials()
    by_number = {t.number: t for t in trials}
    assert by_number[victim].state == states.FAIL  # marked failed by the survivor's heartbeat
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim]
    assert len(retries) == 1 and retries[0].state == states.COMPLETE  # re-queued once, run once
    assert retries[0].params == by_number[victim].params
    assert not [t for t in trials if t.state in (states.RUNNING, states.WAITING)]
    measured = R.measured_trials(None, trials)
    assert len(measured) >= cfg.trials  # nothing lost
    fresh = [t.user_attrs["candidate_id"] for t in measured if "reused_from" not in t.user_attrs]
    assert len(fresh) == len(set(fresh))  # nothing measured twice
    assert {t.user_attrs["environment"]["pid"] for t in measured} >= {b.pid}
