"""Model-call time of a scikit-learn model unpickled against its ONNX copy (pipeforge.onnx_model).

Two models: a 500-tree random forest (synthetic data, 20 features) and the iris
example's logistic regression. Each is stored as a pickle and as an
``OnnxModel`` (compiled and checked at fit time), both loaded back, then
called with one row and with a batch of rows, the two taking turns call
batch by call batch (interleaved rounds), so the ratio ONNX/pickle within one
run is what counts. Not part of the test suite.

    python bench/onnx.py [--rounds 5] [--calls 200] [--batch 100]
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import time
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
# this file is named onnx.py: its folder must not shadow the onnx package skl2onnx imports
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from pipeforge.onnx_model import OnnxModel  # noqa: E402

IRIS = Path(__file__).resolve().parent.parent / "examples" / "iris" / "iris.data"


def _models():
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(n_samples=2000, n_features=20, random_state=0)
    forest = RandomForestClassifier(n_estimators=500, n_jobs=1, random_state=0)
    iris = pd.read_csv(IRIS, header=None)
    iris_X, iris_y = iris.iloc[:, :4].to_numpy(), iris.iloc[:, 4].to_numpy()
    logistic = LogisticRegression(C=0.3, max_iter=1000)
    return [("random forest, 500 trees", forest, X, y), ("iris model", logistic, iris_X, iris_y)]


def _time(call, X, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call(X)
    return (time.perf_counter() - start) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200, help="model calls per round and side")
    parser.add_argument("--batch", type=int, default=100, help="rows of the batch call")
    args = parser.parse_args(argv)
    print(f"{args.rounds} interleaved rounds of {args.calls} calls; median time per call")
    print(f"{'model':26} {'rows':>5} {'pickle':>10} {'onnx':>10} {'onnx/pickle':>12}")
    for name, estimator, X, y in _models():
        plain = pickle.loads(pickle.dumps(estimator.fit(X, y)))
        compiled = pickle.loads(pickle.dumps(OnnxModel(estimator).fit(X, y)))
        if not compiled.uses_onnx:
            print(f"{name}: no ONNX copy ({compiled.onnx_status_})")
            continue
        for rows in (1, args.batch):
            batch = np.ascontiguousarray(X[:rows])
            times: dict[str, list[float]] = {"pickle": [], "onnx": []}
            for _ in range(args.rounds):
                times["pickle"].append(_time(plain.predict, batch, args.calls))
                times["onnx"].append(_time(compiled.predict, batch, args.calls))
            p, o = statistics.median(times["pickle"]), statistics.median(times["onnx"])
            print(f"{name:26} {rows:>5} {p * 1e3:>8.3f}ms {o * 1e3:>8.3f}ms {o / p:>11.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
