"""Memory of pf-serve's workers serving a large model: loaded once and shared, or one copy each.

Fits a RandomForest whose pickle is about ``--size-mb`` MB (70 by default),
stores it in an SQLite ``Database``, then serves it with ``pf-serve`` for each
server (granian, gunicorn) and worker count, with the app loaded once before
the workers fork (the default) and with ``--no-preload`` (each worker loads
its own copy). After a few predictions on fresh connections it sums the
proportional set size (PSS: shared pages split among the processes sharing
them) of the master and its workers, and prints it against one worker's.

    python bench/memory.py                      # granian and gunicorn, 1 and 4 workers
    python bench/memory.py --workers 1,2,4 --servers granian --size-mb 70

Not part of the test suite (it fits a large model and starts several servers).
"""

from __future__ import annotations

import argparse
import os
import pickle
import pprint
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FEATURES = 20


def build_model(size_mb: float):
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_classification(n_samples=20000, n_features=FEATURES, flip_y=0.2, random_state=0)
    trees = 10
    model = RandomForestClassifier(n_estimators=trees, n_jobs=-1, random_state=0).fit(X, y)
    per_tree = len(pickle.dumps(model, protocol=5)) / trees
    trees = max(1, int(size_mb * 1e6 / per_tree))
    return RandomForestClassifier(n_estimators=trees, n_jobs=-1, random_state=0).fit(X, y)


def write_config(folder: Path) -> Path:
    config = {
        "service_metadata": {"service_name": "forest", "service_version": "0.1"},
        "model_persister": {
            "__factory__": "pipeforge.persistence.CachedUpdatePersister",
            "update_cache_rrule": {"freq": "MINUTELY", "interval": 10},
            "impl": {
                "__factory__": "pipeforge.persistence.Database",
                "url": f"sqlite:///{folder}/models.db",
            },
        },
        "predict_service": {
            "__factory__": "pipeforge.server.PredictService",
            "mapping": [[f"f{i}", "float"] for i in range(FEATURES)],
        },
    }
    path = folder / "config.py"
    path.write_text(pprint.pformat(config, sort_dicts=False))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pss_mb(proc: psutil.Process) -> float:
    """PSS of ``proc`` and its children, in MB."""
    total = 0
    for one in [proc, *proc.children(recursive=True)]:
        try:
            total += one.memory_full_info().pss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def measure(config: Path, server: str, workers: int, preload: bool) -> tuple[float, float]:
    """(PSS of master + workers, PSS of the workers alone) in MB once they served."""
    port = free_port()
    command = [str(BIN / "pf-serve"), f"--server={server}", f"--workers={workers}"]
    command += [f"--bind=127.0.0.1:{port}", "--threads=2"]
    if not preload:
        command.append("--no-preload")
    env = {**os.environ, "PIPEFORGE_CONFIG": str(config), "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        master = psutil.Process(proc.pid)
        query = "&".join(f"f{i}=0.5" for i in range(FEATURES))
        deadline = time.monotonic() + 300
        answered = 0
        while answered < 8 * workers:  # fresh connections: every worker answers some
            assert proc.poll() is None, f"pf-serve exited with {proc.returncode}"
            assert time.monotonic() < deadline, "the server never answered"
            try:
                url = f"http://127.0.0.1:{port}/predict?{query}"
                urllib.request.urlopen(url, timeout=60).close()
                answered += 1
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        while len(master.children()) < workers:
            time.sleep(0.1)
        time.sleep(1.0)  # let the workers settle (threads started, pages touched)
        everything = pss_mb(master)
        alone = sum(pss_mb(child) for child in master.children())
        return everything, alone
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=70.0)
    parser.add_argument("--workers", default="1,4", help="comma-separated worker counts")
    parser.add_argument("--servers", default="granian,gunicorn")
    options = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="pipeforge-memory-"))
    config = write_config(folder)
    sys.path.insert(0, str(ROOT))
    from pipeforge.config import load_config

    model = build_model(options.size_mb)
    persister = load_config([str(config)])["model_persister"]
    persister.activate(persister.write(model))
    size = len(pickle.dumps(model, protocol=5)) / 2**20
    print(f"model: RandomForestClassifier({model.n_estimators} trees), pickled {size:.0f} MB")
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print()
    print("| server | workers | loaded | PSS master + workers | workers only | ÷ one worker's |")
    print("|---|---|---|---|---|---|")
    counts = [int(n) for n in options.workers.split(",")]
    for server in options.servers.split(","):
        for preload in (True, False):
            one = None
            for workers in counts:
                total, alone = measure(config, server, workers, preload)
                if workers == 1:
                    one = total
                ratio = f"{total / one:.2f}" if one else "-"
                loaded = "once, before fork" if preload else "by each worker"
                print(
                    f"| {server} | {workers} | {loaded} | {total:.0f} MB | {alone:.0f} MB "
                    f"| {ratio} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
