"""What the online API does, independent of HTTP: predict, learn and replay.

:class:`OnlineService` checks each request's body (every bad input is a
:class:`~pipeforge.errors.RequestError` or one of
:mod:`pipeforge.online.errors`, and leaves the store unchanged), runs the
model on this process's copy (:mod:`pipeforge.online.replicas`) and writes
through the shared store (:mod:`pipeforge.online.store`). The HTTP routes
(:mod:`pipeforge.online.http`) and ``pf-online`` both call it.

The service is one object made of one part per concern: its state, setup
and ``/api/init`` (:mod:`pipeforge.online.service_setup`), managing models
(:mod:`pipeforge.online.model_admin`), metrics and statistics
(:mod:`pipeforge.online.monitoring`), and, here, the requests that run a
model: predict, learn, and the replay of history by ``pf-online replay``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import pickle
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from ..errors import RequestError
from . import bodies
from . import flavors as fl
from . import metrics as mt
from .errors import UnknownModelError
from .model_admin import ModelAdmin
from .monitoring import Monitoring, humanize_ns, metrics_event
from .safety import refuse_non_finite
from .store import Event, ModelInfo, Pending

if TYPE_CHECKING:
    from ..progress import Progress

__all__ = ["OnlineService", "humanize_ns"]

logger = logging.getLogger(__name__)


class OnlineService(ModelAdmin, Monitoring):
    """The online API of one app (or one ``pf-online`` run) over a shared store."""

    # -- predict ------------------------------------------------------------------------------
    def predict(self, body: Any, started_ns: int | None = None) -> tuple[dict, int]:
        """``(answer, status)``: 201 when the features were kept under the body's ``id``."""
        started_ns = time.perf_counter_ns() if started_ns is None else started_ns
        if not isinstance(body, dict):
            raise RequestError("the body must be a JSON object with 'features'")
        limits = self.settings.limits
        features = cast(dict, bodies.features(body, required=True, limits=limits))  # never None
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

    def _predict_and_keep(
        self, info: ModelInfo, listening: bool, key: str | None, features: dict, body: dict
    ) -> Any:
        """Predict with the copy brought up to ``info``, then keep the id; the prediction."""
        text = json.dumps(features) if key is not None or listening else None
        replica = self.replicas.slot(info.name)
        with replica.lock:
            self.catch_up_copy(replica, info, lambda uid, v: self.store.catch_up(info.name, uid, v))
            book = self.book(info.name)
            may_add = book.check(replica.model, features)
            try:
                # a copy: the features are kept (text) and announced as they were sent
                prediction = fl.predict(replica.model, info.flavor, dict(features))
            except Exception as exc:
                raise bodies.model_failed(info.name, "predict from", exc) from None
            finally:
                if may_add:  # some models keep state for what they were asked about
                    book.forget()
        plain = bodies.plain(prediction)
        pending = None
        if key is not None and text is not None:
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
        if guess is None:
            return None
        replica = self.replicas.get(guess)
        if replica is None:
            return None
        with replica.lock:
            uid, version, flavor = replica.uid, replica.version, replica.flavor
            if uid is None or version < 0 or flavor is None:
                return None
            book = self.book(guess)
            may_add = book.check(replica.model, features)  # a copy behind knows fewer names
            try:
                prediction = fl.predict(replica.model, flavor, dict(features))
            except Exception:
                return None  # perhaps the copy is behind: the usual path will tell
            finally:
                if may_add:
                    book.forget()
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
    def _predict_event(info: ModelInfo, features: dict, plain: Any, body: dict) -> Event:
        data = {"model": info.name, "features": features, "prediction": plain}
        if "id" in body:
            data["id"] = body["id"]
        return Event("predict", json.dumps(data))

    # -- learn ----------------------------------------------------------------------------------
    def learn(self, body: Any, started_ns: int | None = None) -> dict:
        """``POST /api/learn``: learn the ground truth of an earlier ``id`` or of features."""
        started_ns = time.perf_counter_ns() if started_ns is None else started_ns
        if not isinstance(body, dict):
            raise RequestError(
                "the body must be a JSON object with 'ground_truth' and 'id' or 'features'"
            )
        key = bodies.request_id(body)
        features = bodies.features(body, required=False, limits=self.settings.limits)
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
                self.catch_up_copy(replica, txn.model, txn.catch_up)
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
        """Learn one sample on the (current) copy and store it in ``txn``; the new version.

        A learn that would take the model past ``max_model_features`` names,
        or after which the model's answer for the sample is not finite, raises
        :class:`~pipeforge.online.safety.UnsafeInputError` (422) before
        ``txn.commit``: the store is left as it was and the copy forgotten.
        """
        model = replica.model
        limits = self.settings.limits
        y = fl.ground_truth(model, info.flavor, body["ground_truth"], limits)
        book = self.book(info.name)
        if txn.pending is not None:
            text = txn.pending.features
            prediction = bodies.decode_prediction(txn.pending.prediction)
            may_add = book.check(model, json.loads(text))  # the model may have grown since
        else:
            text = json.dumps(features)
            prediction = bodies.prediction(body, info.flavor, limits)
            may_add = book.check(model, features)
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
        self._check_learnt(info, model, json.loads(text))
        if may_add:
            book.after_learn(model)
        change = mt.delta(info.flavor, y, prediction, fl.positive_label(model))
        drift = self.error_drift.observe(info.name, info.uid, info.flavor, change)
        snapshot = state = None
        if info.version + 1 - info.snapshot_version >= self.settings.snapshot_every:
            snapshot = pickle.dumps(model, protocol=5)
        if snapshot is not None or txn.listening:
            state = mt.merge(txn.metrics(), change)
        events = self._learn_events(info, text, prediction, y, state) if txn.listening else []
        if drift is not None:
            logger.warning("online model %r: its error rose: %s", info.name, drift.data)
            if txn.listening:
                events.append(drift)
        return txn.commit(
            entries=[(text, json.dumps(y), None if change is None else json.dumps(change))],
            learnt=1,
            snapshot=snapshot,
            metrics=state,
            keep_log=self.settings.snapshot_every,
            events=events,
        )

    @staticmethod
    def _check_learnt(info: ModelInfo, model: Any, sample: dict) -> None:
        """Refuse (422) a learn after which ``model`` answers ``sample`` with a non-finite number."""
        try:
            answer = fl.predict(model, info.flavor, sample)
        except Exception as exc:
            raise bodies.model_failed(info.name, "predict after learning", exc) from None
        if not fl.finite_answer(answer):
            raise refuse_non_finite(info.name, answer)

    def _learn_events(self, info: ModelInfo, text: str, prediction, y, state) -> list[Event]:
        learn = {
            "model": info.name,
            "features": json.loads(text),
            "prediction": bodies.plain(prediction),
            "ground_truth": bodies.plain(y),
        }
        return [Event("learn", json.dumps(learn)), metrics_event(info, state)]

    # -- replay ---------------------------------------------------------------------------------
    def replay(
        self,
        name: str,
        rows: Iterable[tuple[dict, Any]],
        *,
        chunk: int = 500,
        progress: Progress | None = None,
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
                    y = fl.ground_truth(model, info.flavor, raw_y, self.settings.limits)
                    prediction = fl.predict(model, info.flavor, dict(features))
                    model.learn_one(dict(features), y)
                    self._check_learnt(info, model, dict(features))
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
                events=[metrics_event(info, state)],
            )
        return info.flavor, own
