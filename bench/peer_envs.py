"""The virtual environments of ``bench/peers.py``, built once under ``~/.cache/pipeforge-envs/``.

Each gets this environment's scikit-learn, numpy and joblib, so that one model
file loads in all of them. MLServer's and MLflow's are the ones the test
fixtures build (``tests/fixtures/mlserver.py``, ``tests/fixtures/mlflow.py``):
one build serves both.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ENVS = Path.home() / ".cache" / "pipeforge-envs"
BENTOML_VERSION = "1.4.40"


@dataclass(frozen=True)
class EnvSpec:
    name: str
    requirements: tuple[str, ...]
    executable: str  # in bin/: present once the build is complete
    builder: str = "pip"  # or "mlserver" / "mlflow": the test fixtures' own builders


def _same(*names: str) -> tuple[str, ...]:
    return tuple(f"{name}=={metadata.version(name)}" for name in names)


def flask_env() -> EnvSpec:
    """The hand-written Flask app's (and the constant floor's) environment."""
    return EnvSpec(
        "flask",
        ("flask", "gunicorn", *_same("scikit-learn", "numpy", "joblib", "scipy")),
        "gunicorn",
    )


def peer_envs() -> dict[str, EnvSpec]:
    """The server name of ``bench/peer_servers.py`` -> its environment."""
    return {
        "bentoml": EnvSpec(
            "bentoml",
            (f"bentoml=={BENTOML_VERSION}", *_same("scikit-learn", "numpy", "joblib", "scipy")),
            "bentoml",
        ),
        "mlserver": EnvSpec("mlserver", (), "mlserver", builder="mlserver"),
        "mlflow": EnvSpec("mlflow", (), "mlflow", builder="mlflow"),
    }


def build_env(spec: EnvSpec) -> Path:
    """The environment's folder, built now unless an earlier run left a complete one."""
    if spec.builder == "mlserver":
        from tests.fixtures import mlserver

        folder = mlserver.CACHE / f"mlserver-{mlserver.MLSERVER_VERSION}-{mlserver._key()}"
        return mlserver.build_mlserver_venv(folder).folder
    if spec.builder == "mlflow":
        from tests.fixtures import mlflow

        return mlflow.build_mlflow_venv(mlflow.ENVS / f"mlflow-{mlflow.MLFLOW_VERSION}").folder
    text = "\n".join([f"python{sys.version_info[0]}.{sys.version_info[1]}", *spec.requirements])
    folder = ENVS / f"bench-{spec.name}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"
    marker = folder / "ready.json"
    ENVS.mkdir(parents=True, exist_ok=True)
    with open(ENVS / f"{folder.name}.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be building it right now
        if marker.exists() and (folder / "bin" / spec.executable).exists():
            return folder
        shutil.rmtree(folder, ignore_errors=True)  # a build that was cut short
        log = ENVS / f"{folder.name}.log"
        print(f"building {folder} (log: {log}) ...", flush=True)
        python = str(folder / "bin" / "python")
        steps = [
            [sys.executable, "-m", "venv", str(folder)],
            [
                python,
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                *spec.requirements,
            ],
        ]
        with open(log, "w") as out:
            for step in steps:
                done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, timeout=1800)
                if done.returncode != 0:
                    tail = log.read_text(errors="replace")[-3000:]
                    raise SystemExit(f"building {folder} failed; see {log}:\n{tail}")
        marker.write_text(json.dumps({"requirements": spec.requirements}))
    return folder
