"""How fast the persisters store a large model, and how much memory reading it costs.

Run from the repository root::

    .venv/bin/python bench/persistence.py [--size-mb 70] [--rounds 3]

It fits a RandomForest whose pickle is about ``--size-mb`` MB, then compares,
over several rounds (median shown):

* baseline: ``pickle.dumps`` + writing the bytes to a file (and reading back),
* ``Database`` on SQLite and ``File`` with their defaults (and a few options),

printing seconds, the ratio to the baseline, the stored size, and the RSS
growth of reading the model in a fresh process, as a multiple of the
pickled size (Palladium: 14 s to write a 73 MB forest, +2.5x to read it).
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VARIANTS = {
    "baseline pickle": None,
    "Database sqlite": ("sqlite", {}),
    "Database sqlite pickler=joblib": ("sqlite", {"pickler": "joblib"}),
    "Database sqlite compress=0": ("sqlite", {"compress": 0}),
    "File": ("file", {}),
    "File pickler=joblib": ("file", {"pickler": "joblib"}),
}


def build_model(size_mb: float):
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_classification(n_samples=20000, n_features=20, flip_y=0.2, random_state=0)
    trees = 10
    model = RandomForestClassifier(n_estimators=trees, n_jobs=-1, random_state=0).fit(X, y)
    per_tree = len(pickle.dumps(model, protocol=5)) / trees
    trees = max(1, int(size_mb * 1e6 / per_tree))
    return RandomForestClassifier(n_estimators=trees, n_jobs=-1, random_state=0).fit(X, y)


def make_persister(kind: str, options: dict, folder: str):
    from pipeforge.persistence import Database, File

    if kind == "sqlite":
        return Database(f"sqlite:///{folder}/models.db", **options)
    return File(f"{folder}/model-{{version}}.pickle", **options)


def stored_size(kind: str, folder: str, version: int) -> int:
    if kind == "file":
        return os.path.getsize(f"{folder}/model-{version}.pickle")
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{folder}/models.db")
    with engine.connect() as conn:
        size = conn.execute(
            sa.text("SELECT stored_bytes FROM pipeforge_models WHERE version = :v"), {"v": version}
        ).scalar_one()
    engine.dispose()
    return size


def read_rss(kind: str, folder: str, version: int) -> tuple[int, float]:
    """Read the model in a fresh interpreter; return (RSS growth in bytes, seconds)."""
    out = subprocess.run(
        [sys.executable, __file__, "--read-in-child", kind, folder, str(version)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0]), float(out[1])


def child_read(kind: str, folder: str, version: str) -> None:
    import gc

    import psutil
    import sklearn.ensemble  # noqa: F401  (imports are not part of the cost)

    if kind == "baseline":
        before = psutil.Process().memory_info().rss
        start = time.perf_counter()
        with open(f"{folder}/baseline.pickle", "rb") as handle:
            model = pickle.load(handle)
    else:
        persister = make_persister(kind, {}, folder)
        persister.list_models()  # connect and import joblib before measuring
        import joblib  # noqa: F401

        gc.collect()
        before = psutil.Process().memory_info().rss
        start = time.perf_counter()
        model = persister.read(int(version))
    seconds = time.perf_counter() - start
    after = psutil.Process().memory_info().rss
    assert model is not None
    print(after - before, seconds)


def run_round(model, folder: str) -> dict[str, dict]:
    figures = {}
    for name, spec in VARIANTS.items():
        if spec is None:
            start = time.perf_counter()
            data = pickle.dumps(model, protocol=5)
            with open(f"{folder}/baseline.pickle", "wb") as handle:
                handle.write(data)
                handle.flush()
            write = time.perf_counter() - start
            size = len(data)
            del data
            rss, read = read_rss("baseline", folder, 0)
        else:
            kind, options = spec
            sub = tempfile.mkdtemp(dir=folder)
            persister = make_persister(kind, options, sub)
            persister.list_models()  # create the tables outside the timing
            start = time.perf_counter()
            version = persister.write(model)
            write = time.perf_counter() - start
            size = stored_size(kind, sub, version)
            rss, read = read_rss(kind, sub, version)
            if hasattr(persister, "close"):
                persister.close()
        figures[name] = {"write": write, "read": read, "size": size, "rss": rss}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=float, default=70)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--read-in-child", nargs=3, metavar=("KIND", "FOLDER", "VERSION"))
    args = parser.parse_args()
    if args.read_in_child:
        child_read(*args.read_in_child)
        return
    started = time.perf_counter()
    model = build_model(args.size_mb)
    pickled = len(pickle.dumps(model, protocol=5))
    print(
        f"model: RandomForestClassifier({model.n_estimators} trees), pickled {pickled / 1e6:.1f} MB"
        f" (fitted in {time.perf_counter() - started:.1f} s)"
    )
    rounds = []
    with tempfile.TemporaryDirectory(prefix="pf-bench-") as folder:
        for _ in range(args.rounds):
            rounds.append(run_round(model, folder))
    base = rounds[0]["baseline pickle"]
    base_write = statistics.median(r["baseline pickle"]["write"] for r in rounds)
    base_read = statistics.median(r["baseline pickle"]["read"] for r in rounds)
    print(f"median of {args.rounds} rounds; RSS growth measured in a fresh process per read")
    header = f"{'variant':32} {'write s':>8} {'x base':>7} {'read s':>7} {'x base':>7} {'stored MB':>10} {'read RSS / pickle':>18}"
    print(header)
    print("-" * len(header))
    for name in VARIANTS:
        med = {k: statistics.median(r[name][k] for r in rounds) for k in base}
        rss = f"{med['rss'] / pickled:.2f}x"
        read = f"{med['read']:7.2f} {med['read'] / base_read:6.2f}x"
        print(
            f"{name:32} {med['write']:8.2f} {med['write'] / base_write:6.2f}x {read} "
            f"{med['size'] / 1e6:10.1f} {rss:>18}"
        )


if __name__ == "__main__":
    main()
