"""pipeforge against the servers its users would pick instead: the table of docs/performance.md.

One model (iris LogisticRegression, then a 500-tree random forest), served by
each of these on 127.0.0.1 with 2 workers:

- ``flask+model``: a hand-written Flask app calling the model, ``gunicorn -w 2``
  (sync): **the baseline**, every req/s figure is a ratio of its own in the
  same round;
- ``floor``: a constant-answer WSGI app (no Flask, no model) under the same
  gunicorn: what the HTTP server alone costs;
- ``floor-granian``: the same constant app under ``granian --workers 2``
  (pipeforge's environment): the floor of ``pf-serve``;
- ``pf-gunicorn``: pipeforge, ``gunicorn -w 2`` (sync);
- ``pf-threads``: pipeforge, ``gunicorn -w 2 -k gthread --threads 8`` with batching;
- ``pf-serve``: pipeforge under ``pf-serve -w 2`` (granian when installed),
  or ``granian --interface wsgi --workers 2`` when there is no ``pf-serve``;
- ``bentoml``: ``bentoml serve`` (``workers=2``), JSON in and out;
- ``mlserver``: MLServer + mlserver-sklearn, Open Inference Protocol (V2)
  REST (one process: ``parallel_workers: 0``, as its parallel workers fail to start
  with the uvloop it installs);
- ``mlflow``: ``mlflow models serve --workers 2`` (uvicorn).

The peers and the hand-written app run in virtual environments of their own,
built on first use under ``~/.cache/pipeforge-envs/`` (minutes; later runs
reuse them), each with this environment's scikit-learn, numpy and joblib so
that the same model file loads everywhere. Every server's answers are checked
against the model's own predictions before anything is timed.

Load: ``wrk`` (installed with apt-get when missing), 16 connections, the
servers taking turns case by case in interleaved rounds. Printed per case:
requests/s and its ratio to ``flask+model`` in the same round (median over
rounds), p50 and p99 latency, CPU per request of all the server's processes,
and the servers' memory (PSS of all their processes, divided by 2 workers).

    .venv/bin/python bench/peers.py                  # the full table: ~9 minutes once built
    .venv/bin/python bench/peers.py --build-only     # build the environments only
    .venv/bin/python bench/peers.py --duration 2 --rounds 1 --only flask+model,pf-gunicorn

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peer_envs import build_env, flask_env, peer_envs  # noqa: E402
from bench.peer_servers import SERVERS, Server, start_server  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ["sepal length", "sepal width", "petal length", "petal width"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
CONNECTIONS = 16
#: (case, model, samples per request, method)
CASES = [
    ("1 sample GET", "iris", 1, "GET"),
    ("1 sample POST", "iris", 1, "POST"),
    ("100 samples POST", "iris", 100, "POST"),
    ("forest, 1 sample POST", "forest", 1, "POST"),
    ("forest, 100 samples POST", "forest", 100, "POST"),
]


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        print("installing wrk with apt-get ...", flush=True)
        subprocess.run(["apt-get", "update"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
        wrk = shutil.which("wrk")
    return wrk


def fit_models(folder: Path) -> dict[str, Path]:
    """The iris LogisticRegression and a 500-tree random forest, as joblib files."""
    import joblib
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    data = np.genfromtxt(ROOT / "examples" / "iris" / "iris.data", delimiter=",", dtype=str)
    X, y = data[:, :4].astype(float), data[:, 4]
    models = {
        "iris": LogisticRegression(C=0.3, max_iter=1000).fit(X, y),
        "forest": RandomForestClassifier(n_estimators=500, random_state=0).fit(X, y),
    }
    paths = {}
    for name, model in models.items():
        paths[name] = folder / f"{name}.joblib"
        joblib.dump(model, paths[name])
    return paths


def expected(model_path: Path, rows: list[list[float]]) -> list:
    import joblib
    import numpy as np

    return joblib.load(model_path).predict(np.array(rows)).tolist()


def wrk_script(folder: Path, name: str, method: str, body: bytes | None, headers: dict) -> Path:
    lines = [f'wrk.method = "{method}"']
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(body.decode())}")
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path = folder / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_wrk(wrk: str, url: str, lua: Path, duration: float) -> dict[str, float]:
    command = [
        wrk,
        "-t",
        "2",
        "-c",
        str(CONNECTIONS),
        "-d",
        f"{max(1, round(duration))}s",
        "--latency",
    ]
    out = subprocess.run(
        [*command, "-s", str(lua), url], capture_output=True, text=True, check=True
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"errors while loading {url}:\n{out}")

    def latency(label: str) -> float:
        for line in out.splitlines():
            parts = line.split()
            if parts[:1] == [label]:
                value = parts[1]
                for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
                    if value.endswith(unit):
                        return float(value[: -len(unit)]) * scale
        return float("nan")

    lines = out.splitlines()
    rate = float(next(line.split()[1] for line in lines if line.startswith("Requests/sec")))
    count = int(next(line.split()[0] for line in lines if " requests in " in line))
    return {"rate": rate, "p50": latency("50%"), "p99": latency("99%"), "count": count}


def tree(proc: subprocess.Popen) -> list[psutil.Process]:
    try:
        root = psutil.Process(proc.pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_seconds(proc: subprocess.Popen) -> float:
    total = 0.0
    for process in tree(proc):
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def pss_mb(proc: subprocess.Popen) -> float:
    total = 0
    for process in tree(proc):
        try:
            total += process.memory_full_info().pss
        except psutil.Error:
            pass
    return total / 2**20


def check_answers(server: Server, running: dict, rows_expected: dict) -> None:
    """Every case a server takes answers the model's own predictions (else stop here)."""
    for rows, want in rows_expected.items():
        for method in server.methods:
            if method == "GET" and len(rows) > 1:
                continue  # a GET carries one sample
            got = server.ask(running["url"], [list(r) for r in rows], method)
            if got is None:  # the constant floor: a well-formed answer is all it gives
                continue
            if [str(g) for g in got] != [str(w) for w in want]:
                raise SystemExit(
                    f"{server.name} answered {got!r} for {method} of {len(rows)} rows; "
                    f"the model says {want!r}"
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--only", help="comma-separated server names (default: all)")
    parser.add_argument("--cases", help="comma-separated case numbers, 1-5 (default: all)")
    parser.add_argument("--build-only", action="store_true", help="build the environments, stop")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(SERVERS)
    if "flask+model" not in names:
        names.insert(0, "flask+model")  # the baseline of every ratio
    envs = {"flask": build_env(flask_env())}
    for name, spec in peer_envs().items():
        if name in names or args.build_only:
            envs[name] = build_env(spec)
    if args.build_only:
        print("\n".join(f"{name}: {path}" for name, path in envs.items()))
        return 0
    wrk = ensure_wrk()
    cases = CASES
    if args.cases:
        cases = [CASES[int(n) - 1] for n in args.cases.split(",")]
    machine = f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"
    print(f"machine: {machine}; load average {os.getloadavg()[0]:.1f}; wrk -c{CONNECTIONS}")
    with tempfile.TemporaryDirectory(prefix="pf-bench-peers-") as tmp:
        folder = Path(tmp)
        models = fit_models(folder)
        figures: dict = {}
        memory: dict = {}
        for model in ("iris", "forest"):
            model_cases = [c for c in cases if c[1] == model]
            if not model_cases:
                continue
            servers = {
                n: SERVERS[n]
                for n in names
                if n in SERVERS and (model == "iris" or not n.startswith("floor"))
            }
            running = {}
            try:
                for name, server in list(servers.items()):
                    print(f"starting {name} ({model}) ...", flush=True)
                    try:
                        running[name] = start_server(server, envs, models[model], folder, FEATURES)
                    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
                        detail = getattr(exc, "stderr", b"") or b""
                        tail = detail.decode(errors="replace").strip().splitlines()[-1:]
                        print(f"  {name} did not start, left out: {exc} {' '.join(tail)}")
                        del servers[name]
                        continue
                    check_answers(
                        server,
                        running[name],
                        {
                            tuple(map(tuple, r)): expected(models[model], r)
                            for r in (ROWS[:1], ROWS)
                        },
                    )
                time.sleep(1)
                memory[model] = {n: pss_mb(r["proc"]) / 2 for n, r in running.items()}
                for round_ in range(args.rounds):
                    for case, _, samples, method in model_cases:
                        rows = (ROWS * 34)[:samples]
                        for name, server in servers.items():
                            if method not in server.methods:
                                continue
                            url, body, headers = server.request(running[name]["url"], rows, method)
                            lua = wrk_script(
                                folder, f"{name}-{samples}-{method}", method, body, headers
                            )
                            before = cpu_seconds(running[name]["proc"])
                            result = run_wrk(wrk, url, lua, args.duration)
                            used = cpu_seconds(running[name]["proc"]) - before
                            result["cpu_ms"] = used / max(result["count"], 1) * 1000
                            figures.setdefault((case, name), []).append(result)
                    print(f"{model}: round {round_ + 1}/{args.rounds} done", flush=True)
            finally:
                for entry in running.values():
                    entry["stop"]()
    report(figures, memory, cases, names, args)
    return 0


def report(figures: dict, memory: dict, cases: list, names: list, args) -> None:
    print(
        f"\n{args.rounds} interleaved rounds x {args.duration:g} s per server and case; "
        "ratio = req/s / flask+model's req/s in the same round (median over rounds); "
        "cpu = CPU ms per request of all the server's processes"
    )
    for case, model, _, _ in cases:
        base = figures.get((case, "flask+model"))
        print(f"\n{case} ({model})")
        print(f"{'server':<14}{'req/s':>8}{'ratio':>7}{'p50 ms':>8}{'p99 ms':>8}{'cpu ms':>8}")
        for name in names:
            runs = figures.get((case, name))
            if not runs:
                continue
            ratios = [r["rate"] / b["rate"] for r, b in zip(runs, base or runs, strict=False)]

            def med(key: str, runs: list = runs) -> float:
                return statistics.median(r[key] for r in runs)

            print(
                f"{name:<14}{med('rate'):>8.0f}{statistics.median(ratios):>7.2f}"
                f"{med('p50'):>8.2f}{med('p99'):>8.2f}{med('cpu_ms'):>8.3f}"
            )
    for model, table in memory.items():
        shown = ", ".join(f"{name} {mb:.0f}" for name, mb in table.items())
        print(f"\nmemory per worker ({model}), MB of PSS: {shown}")
    versions = {}
    for name in ("scikit-learn", "numpy", "flask", "gunicorn", "granian", "orjson"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    print("pipeforge's environment: " + ", ".join(f"{k} {v}" for k, v in versions.items()))


if __name__ == "__main__":
    raise SystemExit(main())
