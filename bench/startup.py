"""How fast the scripts start and how much memory they take.

Runs each command several times in fresh processes, interleaved with a
baseline (``python -c pass`` in the same interpreter), and prints the median
wall time, peak RSS and the ratio to the baseline. The scripts run on a copy
of the iris example (with one model fitted first) so the repository stays
clean. ``pf-list``, ``pf-admin`` and ``pf-upgrade`` build only the
``model_persister`` entry, so they must not pay for importing scikit-learn
and pandas: target ≤ 0.3 s each.

    .venv/bin/python bench/startup.py [--rounds=5]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


# What any script reading an SQLite model store pays before doing anything of
# its own: start Python, import SQLAlchemy, open the database. pf-list and
# pf-admin cannot start faster than this.
SQLALCHEMY_FLOOR = (
    "import sqlalchemy as sa\n"
    "engine = sa.create_engine('sqlite:///iris-model.db')\n"
    "with engine.connect() as connection:\n"
    "    connection.exec_driver_sql('select 1').all()\n"
)


def run(argv, cwd, env):
    """Wall seconds, CPU seconds and peak RSS (MB) of one command in a fresh process.

    On a shared machine the CPU time (user + system) says more than the wall
    time, which grows with everybody else's load.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, _, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = 0  # reaped by wait4 above
    if proc.stderr:
        proc.stderr.close()
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main(rounds: int = 5) -> None:
    work = tempfile.mkdtemp(prefix="pf-bench-startup-")
    try:
        shutil.copytree(os.path.join(ROOT, "examples", "iris"), os.path.join(work, "iris"))
        cwd = os.path.join(work, "iris")
        env = dict(
            os.environ, PIPEFORGE_CONFIG="config.py", PATH=BIN + os.pathsep + os.environ["PATH"]
        )
        subprocess.run(
            [os.path.join(BIN, "pf-fit")], cwd=cwd, env=env, check=True, capture_output=True
        )
        commands = {
            "python -c pass (baseline)": [sys.executable, "-c", "pass"],
            "SQLAlchemy connect (floor)": [sys.executable, "-c", SQLALCHEMY_FLOOR],
            "pf-version": [os.path.join(BIN, "pf-version")],
            "pf-list": [os.path.join(BIN, "pf-list")],
            "pf-admin activate 1": [os.path.join(BIN, "pf-admin"), "activate", "1"],
            "pf-upgrade": [os.path.join(BIN, "pf-upgrade")],
            "pf-fit (iris)": [os.path.join(BIN, "pf-fit")],
        }
        results = {name: [] for name in commands}
        for _ in range(rounds):
            for name, argv in commands.items():
                results[name].append(run(argv, cwd, env))
        baseline = results["python -c pass (baseline)"]
        base_wall = statistics.median(wall for wall, _, _ in baseline)
        base_cpu = statistics.median(cpu for _, cpu, _ in baseline)
        print(
            f"{'command':<28} {'wall s':>8} {'x baseline':>11} {'cpu s':>8} {'x baseline':>11}"
            f" {'peak RSS MB':>12}"
        )
        for name, samples in results.items():
            wall = statistics.median(w for w, _, _ in samples)
            cpu = statistics.median(c for _, c, _ in samples)
            rss = statistics.median(m for _, _, m in samples)
            print(
                f"{name:<28} {wall:>8.3f} {wall / base_wall:>11.1f} {cpu:>8.3f}"
                f" {cpu / base_cpu:>11.1f} {rss:>12.1f}"
            )
        floor = statistics.median(w for w, _, _ in results["SQLAlchemy connect (floor)"])
        print(
            f"({rounds} interleaved rounds, medians; target: pf-list, pf-admin, pf-upgrade <= 0.3 s)"
        )
        for name in ("pf-list", "pf-admin activate 1", "pf-upgrade"):
            wall = statistics.median(w for w, _, _ in results[name])
            print(f"{name} / SQLAlchemy floor: {wall / floor:.2f} ({wall - floor:+.3f} s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    rounds = 5
    for arg in sys.argv[1:]:
        if arg.startswith("--rounds="):
            rounds = int(arg.split("=", 1)[1])
    main(rounds)
