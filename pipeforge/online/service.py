"""What the online API does, independent of HTTP: init, predict, learn, models, metrics, stats.

:class:`OnlineService` checks each request's body (every bad input is a
:class:`~pipeforge.errors.RequestError` or one of
:mod:`pipeforge.online.errors`, and leaves the store unchanged), runs the
model on this process's copy (:mod:`pipeforge.online.replicas`) and writes
through the shared store (:mod:`pipeforge.online.store`). The HTTP routes
(:mod:`pipeforge.online.http`) and ``pf-online`` both call it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

from ..errors import RequestError
from . import bodies
from . import flavors as fl
from . import metrics as mt
from .config import OnlineSettings, check_name
from .errors import UnknownModelError, UploadDisabledError
from .partial_fit import as_online_model
from .replicas import Replicas
from .store import Event, ModelInfo, Pending, Seed

__all__ = ["OnlineService", "humanize_ns"]

logger = logging.getLogger(__name__)


def humanize_ns(ns: int) -> str:
    """A duration in ns as chantilly writes it: ``3ms408μs682ns``."""
    if ns <= 0:
        return "0ns"
    parts = []
    for unit, size in (
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("μs", 1_000),
    ):
        count, ns = divmod(ns, size)
        if count:
            parts.append(f"{count}{unit}")
    if ns:
        parts.append(f"{ns}ns")
    return "".join(parts)


class OnlineService:
    """The online API of one app (or one ``pf-online`` run) over a shared store."""

    def __init__(self, settings: OnlineSettings):
        self.settings = settings
        self.store = settings.store
        self.replicas = Replicas()
        self._default_name: str | None = None  # the default model's name, as last seen
        self._ready_pid: int | None = None
        self._ready_lock = threading.Lock()

    # -- setup ------------------------------------------------------------------------------
    def seeds(self) -> list[Seed]:
        return [
            Seed(
                spec.name,
                spec.flavor,
                pickle.dumps(spec.model, protocol=5),
                spec.default,
                mt.new_state(spec.flavor),
            )
            for spec in self.settings.models
        ]

    def ensure_ready(self) -> None:
        """Put the config's models into the store, once per process (first request, not import)."""
        if self._ready_pid == os.getpid():
            return
        with self._ready_lock:
            if self._ready_pid != os.getpid():
                self.store.ready(self.seeds(), self.settings.flavor)
                self._ready_pid = os.getpid()

    # -- init ---------------------------------------------------------------------------------
    def get_init(self) -> dict:
        self.ensure_ready()
        flavor = self.store.flavor()
        if flavor is None:
            raise RequestError(
                'no flavor has been set; POST /api/init with {"flavor": ...} '
                "(or declare online_models in the config)"
            )
        return {"flavor": flavor, "storage": self.store.kind, **_versions()}

    def init(self, body: Any) -> dict:
        if not isinstance(body, dict) or "flavor" not in body:
            raise RequestError("the body needs 'flavor': one of " + ", ".join(fl.FLAVORS))
        try:
            flavor = fl.check_flavor(body["flavor"])
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        self.store.reset(flavor, self.seeds())
        self.replicas.clear()
        self._ready_pid = os.getpid()
        logger.info("online store erased; flavor is now %r", flavor)
        return {"flavor": flavor, "storage": self.store.kind, **_versions()}

    # -- predict ------------------------------------------------------------------------------
    def predict(self, body: Any, started_ns: int | None = None) -> tuple[dict, int]:
        """``(answer, status)``: 201 when the features were kept under the body's ``id``."""
        started_ns = time.perf_counter_ns() if started_ns is None else started_ns
        if not isinstance(body, dict):
            raise RequestError("the body must be a JSON object with 'features'")
        features = bodies.features(body, required=True)
        key = bodies.request_id(body)
        name = bodies.model_name(body)
        self.ensure_ready()
        found = None
        if key is not None and self.store.one_step_predict():
            found = self._predict_kept(name, key, features, body)
        if found is None or isinstance(found[0], ModelInfo):
            info, listening = found if found is not None else self.store.lookup(name)
            plain = self._predict_and_keep(info, listening, key, features, body)
        else:
            plain, info = found
        if name is None:
            self._default_name = info.name
        self.store.record_stat("predict", time.perf_counter_ns() - started_ns)
        return {"model": info.name, "prediction": plain}, (201 if key is not None else 200)

    def _predict_and_keep(self, info: ModelInfo, listening: bool, key, features, body) -> Any:
        """Predict with the copy brought up to ``info``, then keep the id; the prediction."""
        text = json.dumps(features) if key is not None or listening else None
        replica = self.replicas.slot(info.name)
        with replica.lock:
            self.replicas.sync(replica, info, lambda uid, v: self.store.catch_up(info.name, uid, v))
            try:
                # a copy: the features are kept (text) and announced as they were sent
                prediction = fl.predict(replica.model, info.flavor, dict(features))
            except Exception as exc:
                raise bodies.model_failed(info.name, "predict from", exc) from None
        plain = bodies.plain(prediction)
        pending = None
        if key is not None:
            pending = (key, Pending(info.name, text, bodies.encode_prediction(prediction)))
        events = [self._predict_event(info, features, plain, body)] if listening else []
        self.store.after_predict(pending, events)
        return plain

    def _predict_kept(self, name: str | None, key: str, features: dict, body: dict):
        """Predict with this process's copy, then look up and keep in one round trip.

        ``(prediction, record)`` when the copy was current and the id is kept;
        ``(record, listening)`` when the store has a newer model (nothing was
        kept); ``None`` when there is no copy to try.
        """
        guess = name if name is not None else self._default_name
        replica = self.replicas.get(guess) if guess is not None else None
        if replica is None:
            return None
        with replica.lock:
            uid, version, flavor = replica.uid, replica.version, replica.flavor
            if uid is None or version < 0 or flavor is None:
                return None
            try:
                prediction = fl.predict(replica.model, flavor, dict(features))
            except Exception:
                return None  # perhaps the copy is behind: the usual path will tell
        text = json.dumps(features)
        pending = Pending(guess, text, bodies.encode_prediction(prediction))
        info, listening, kept = self.store.keep_current(name, uid, version, (key, pending))
        if not kept:
            return info, listening
        plain = bodies.plain(prediction)
        if listening:
            self.store.after_predict(None, [self._predict_event(info, features, plain, body)])
        return plain, info

    @staticmethod
    def _predict_event(info: ModelInfo, features: dict, plain, body: dict) -> Event:
        data = {"model": info.name, "features": features, "prediction": plain}
        if "id" in body:
            data["id"] = body["id"]
        return Event("predict", json.dumps(data))

    # -- learn ----------------------------------------------------------------------------------
    def learn(self, body: Any, started_ns: int | None = None) -> dict:
        started_ns = time.perf_counter_ns() if started_ns is None else started_ns
        if not isinstance(body, dict):
            raise RequestError(
                "the body must be a JSON object with 'ground_truth' and 'id' or 'features'"
            )
        key = bodies.request_id(body)
        features = bodies.features(body, required=False)
        if key is None and features is None:
            raise RequestError("the body needs 'id' (of an earlier /api/predict) or 'features'")
        if "ground_truth" not in body:
            raise RequestError("the body needs 'ground_truth'")
        name = bodies.model_name(body)
        self.ensure_ready()
        with self._learning(key, name) as (txn, replica, stored):
            info = txn.model
            stored["version"] = self._learn_locked(txn, info, replica, body, features)
        self.store.record_stat("learn", time.perf_counter_ns() - started_ns)
        return {"model": info.name}

    @contextlib.contextmanager
    def _learning(self, key: str | None, name: str | None):
        """The store's learn transaction and this process's copy of its model, locked and current.

        Yields ``(txn, replica, stored)``. The body learns on ``replica.model``
        (marking the copy ``version = -1`` while its learning is not stored)
        and puts the version ``txn.commit`` returned in ``stored["version"]``;
        once the transaction has committed, the copy takes that version. If
        anything fails, a copy left half-learnt is forgotten.
        """
        replica = None
        stored: dict = {}
        try:
            with self.store.learning(key, name) as txn:
                replica = self.replicas.slot(txn.model.name)
                replica.lock.acquire()
                self.replicas.sync(replica, txn.model, txn.catch_up)
                yield txn, replica, stored
            replica.version = stored["version"]
        except BaseException:
            if replica is not None and replica.version == -1:
                replica.invalidate()
            raise
        finally:
            if replica is not None:
                replica.lock.release()

    def _learn_locked(self, txn, info: ModelInfo, replica, body: dict, features) -> int:
        """Learn one sample on the (current) copy and store it in ``txn``; the new version."""
        model = replica.model
        y = fl.ground_truth(model, info.flavor, body["ground_truth"])
        if txn.pending is not None:
            text = txn.pending.features
            prediction = bodies.decode_prediction(txn.pending.prediction)
        else:
            text = json.dumps(features)
            prediction = body.get("prediction")
            if prediction is None:
                try:
                    prediction = fl.predict(model, info.flavor, json.loads(text))
                except Exception as exc:
                    raise bodies.model_failed(info.name, "predict from", exc) from None
        try:
            model.learn_one(json.loads(text), y)
        except Exception as exc:
            replica.invalidate()
            raise bodies.model_failed(info.name, "learn from", exc) from None
        replica.version = -1  # learnt but not stored: nobody may take this copy as current
        change = mt.delta(info.flavor, y, prediction, fl.positive_label(model))
        snapshot = state = None
        if info.version + 1 - info.snapshot_version >= self.settings.snapshot_every:
            snapshot = pickle.dumps(model, protocol=5)
        if snapshot is not None or txn.listening:
            state = mt.merge(txn.metrics(), change)
        events = self._learn_events(info, text, prediction, y, state) if txn.listening else []
        return txn.commit(
            entries=[(text, json.dumps(y), None if change is None else json.dumps(change))],
            learnt=1,
            snapshot=snapshot,
            metrics=state,
            keep_log=self.settings.snapshot_every,
            events=events,
        )

    def _learn_events(self, info: ModelInfo, text: str, prediction, y, state) -> list[Event]:
        learn = {
            "model": info.name,
            "features": json.loads(text),
            "prediction": bodies.plain(prediction),
            "ground_truth": bodies.plain(y),
        }
        return [Event("learn", json.dumps(learn)), _metrics_event(info, state)]

    # -- models ---------------------------------------------------------------------------------
    def check_upload(self) -> None:
        """Raise the 403 that says how to turn uploads on, unless they are on."""
        if not self.settings.allow_upload:
            raise UploadDisabledError(
                "uploading models is off: it runs the uploaded code on the server. To turn it on, "
                "set online: {allow_upload: true} in the config and guard it with "
                "online_admin_decorators (e.g. a token check)"
            )

    def upload(self, data: bytes, name: str | None = None, flavor: str | None = None) -> dict:
        """Store a pickled model (``POST /api/model``); it becomes the default."""
        self.check_upload()
        return self.add_model(data, name=name, flavor=flavor, source="upload")

    def add_model(self, data: bytes, *, name: str | None, flavor: str | None, source: str) -> dict:
        self.ensure_ready()
        if name is not None and check_name(name):
            raise RequestError(check_name(name))
        if flavor is not None:
            try:
                flavor = fl.check_flavor(flavor)
            except ValueError as exc:
                raise RequestError(str(exc)) from None
        flavor = flavor or self.store.flavor()
        if flavor is None:
            raise RequestError(
                'no flavor has been set; POST /api/init with {"flavor": ...} first (or pass ?flavor=)'
            )
        if not data:
            raise RequestError("the body must be a pickled model; got an empty body")
        try:
            model = pickle.loads(data)
        except Exception as exc:
            raise RequestError(f"the body is not a pickled model ({type(exc).__name__})") from None
        try:
            model = as_online_model(model)
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        problem = fl.model_problem(model, flavor)
        if problem:
            raise RequestError(f"the model does not fit flavor {flavor!r}: {problem}")
        name = name or f"model-{uuid.uuid4().hex[:8]}"
        blob = pickle.dumps(model, protocol=5)
        self.store.put_model(
            name, flavor, blob, source=source, make_default=True, metrics=mt.new_state(flavor)
        )
        self.replicas.drop(name)
        logger.info("stored online model %r (%s, %d bytes)", name, flavor, len(blob))
        return {"name": name}

    def download(self, name: str | None) -> bytes:
        self.ensure_ready()
        info, _ = self.store.lookup(name)
        replica = self.replicas.slot(info.name)
        with replica.lock:
            self.replicas.sync(replica, info, lambda uid, v: self.store.catch_up(info.name, uid, v))
            return pickle.dumps(replica.model, protocol=5)

    def delete(self, name: str) -> None:
        self.ensure_ready()
        if not self.store.delete_model(name):
            raise UnknownModelError(f"no online model named {name!r}")
        self.replicas.drop(name)

    def models(self) -> dict:
        self.ensure_ready()
        infos = self.store.models()
        return {
            "models": sorted(info.name for info in infos),
            "default": self.store.default(),
            "info": {
                info.name: {
                    "flavor": info.flavor,
                    "n_learnt": info.n_learnt,
                    "n_scored": mt.count(info.metrics),
                    "version": info.version,
                    "source": info.source,
                    "created": info.created,
                }
                for info in infos
            },
        }

    def metrics(self, name: str | None = None) -> dict:
        self.ensure_ready()
        if name is None:
            name = self.store.default()
            if name is None:
                if self.store.flavor() is None:
                    raise RequestError(
                        'no flavor has been set; POST /api/init with {"flavor": ...}'
                    )
                raise UnknownModelError(
                    "no default online model; name one with ?model= or upload one"
                )
        info = self.store.model(name)
        if info is None:
            raise UnknownModelError(f"no online model named {name!r}")
        return mt.values(info.metrics, info.flavor)

    def stats(self) -> dict:
        self.ensure_ready()
        rows = self.store.stats()
        recent = time.time() - 60.0
        answer = {}
        for endpoint in ("predict", "learn"):
            mine = [r for r in rows if r["endpoint"] == endpoint]
            n = sum(int(r["n"]) for r in mine)
            mean = int(sum(float(r["total"]) for r in mine) / n) if n else 0
            live = [r for r in mine if float(r["at"]) >= recent] or sorted(
                mine, key=lambda r: r["at"]
            )[-1:]
            weight = sum(int(r["n"]) for r in live)
            ewm = int(sum(float(r["ewm"]) * int(r["n"]) for r in live) / weight) if weight else 0
            answer[endpoint] = {
                "n_calls": n,
                "mean_duration": mean,
                "mean_duration_human": humanize_ns(mean),
                "ewm_duration": ewm,
                "ewm_duration_human": humanize_ns(ewm),
            }
        return answer

    # -- replay ---------------------------------------------------------------------------------
    def replay(
        self, name: str, rows: Iterable[tuple[dict, Any]], *, chunk: int = 500, progress=None
    ) -> dict:
        """Predict then learn each ``(features, ground truth)`` row; the run's metrics by name.

        Rows are learnt ``chunk`` at a time under the model's lock, each chunk
        stored as one snapshot (not as log entries), so a replay of history
        is fast and the served model picks the result up at its next request.
        """
        self.ensure_ready()
        run_state = None
        batch: list = []
        for row in rows:
            batch.append(row)
            if len(batch) >= chunk:
                run_state = self._replay_chunk(name, batch, run_state)
                if progress is not None:
                    progress.advance(len(batch))
                batch = []
        if batch:
            run_state = self._replay_chunk(name, batch, run_state)
            if progress is not None:
                progress.advance(len(batch))
        if run_state is None:
            info = self.store.model(name)
            if info is None:
                raise UnknownModelError(f"no online model named {name!r}")
            return mt.values(mt.new_state(info.flavor), info.flavor)
        flavor, state = run_state
        return {**mt.values(state, flavor), "n": mt.count(state)}

    def _replay_chunk(self, name: str, batch: list, run_state):
        with self._learning(None, name) as (txn, replica, stored):
            info = txn.model
            model = replica.model
            state = txn.metrics()
            own = run_state[1] if run_state else mt.new_state(info.flavor)
            positive = fl.positive_label(model)
            replica.version = -1
            for number, (features, raw_y) in enumerate(batch):
                try:
                    y = fl.ground_truth(model, info.flavor, raw_y)
                    prediction = fl.predict(model, info.flavor, dict(features))
                    model.learn_one(dict(features), y)
                except RequestError as exc:
                    raise RequestError(f"row {number + 1} of the chunk: {exc}") from None
                except Exception as exc:
                    raise bodies.model_failed(info.name, "learn from", exc) from None
                change = mt.delta(info.flavor, y, prediction, positive)
                state = mt.merge(state, change)
                own = mt.merge(own, change)
            stored["version"] = txn.commit(
                entries=[],
                learnt=len(batch),
                snapshot=pickle.dumps(model, protocol=5),
                metrics=state,
                keep_log=0,
                events=[_metrics_event(info, state)],
            )
        return info.flavor, own


def _metrics_event(info: ModelInfo, state) -> Event:
    """The ``metrics`` SSE event of a model after a learn (its metrics and their count)."""
    data = {"model": info.name, "metrics": mt.values(state, info.flavor), "n": mt.count(state)}
    return Event("metrics", json.dumps(data))


def _versions() -> dict:
    versions = {}
    for module in ("river", "sklearn"):
        try:
            versions[f"{module}_version"] = __import__(module).__version__
        except ImportError:
            versions[f"{module}_version"] = None
    return versions
