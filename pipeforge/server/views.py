"""The views of the web service: ``/predict``, ``/alive``, ``/list``, ``/jobs/<id>`` and the
lifecycle routes a config may add (``/fit``, ``/update-model-cache``, ``/activate``, ``/delete``).

Views find their components on the app's state (:func:`~.lifecycle.current_state`);
there is no module-level app or config. Every error a view raises is
answered by the app's handlers with the JSON error body of :mod:`pipeforge.web`.
The lifecycle views are marked as what they are (:func:`~.routes.lifecycle_view`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .. import __version__, guards, web
from ..errors import (
    ConfigError,
    JobQueueError,
    NoModelError,
    PersistenceError,
    RequestError,
    StoreUnavailableError,
    UnknownVersionError,
)
from ..jobs import fit_job, model_caches, refresh_model_caches, require
from ..release.aliases import release_listing
from ..web import error_body, json_response
from .fields import to_bool, to_float, to_int
from .lifecycle import AppState, current_state
from .routes import lifecycle_view

if TYPE_CHECKING:
    from flask import Response
    from werkzeug.wrappers import Request

__all__ = [
    "answer_predict",
    "predict_view",
    "alive",
    "job_view",
    "list_models",
    "fit",
    "update_model_cache",
    "activate",
    "delete",
]

logger = logging.getLogger(__name__)


# -- /predict ---------------------------------------------------------------------


def answer_predict(service: Any, state: AppState, request: Request) -> Response:
    """Answer one request to a predict service with the served model; never raises.

    Shared by the Flask view and the front door (:mod:`.front_door`), so both
    ways read the model and check its fit alike.
    """
    flow = getattr(service, "release_flow", None)  # aliases, canary, log: .release_flow
    if flow is not None:
        return flow.answer(request)
    try:
        model = state.model_persister.read()
        check = getattr(service, "check_model", None)
        if check is not None:
            check(model)
    except Exception as exc:
        return service.response_from_exception(exc)
    return service(model, request)


def predict_view(service: Any, state: AppState) -> Callable[[], Response]:
    """The Flask view of one predict service."""
    from flask import request

    def predict() -> Response:
        return answer_predict(service, state, request._get_current_object())  # type: ignore[attr-defined]

    return predict


# -- the service ------------------------------------------------------------------


def alive() -> Response:
    """Health check: versions, memory, the served model, jobs; 503 until ready."""
    state = current_state()
    store = state.process_store
    process_metadata = dict(store.get("process_metadata") or {})
    try:
        process_metadata["jobs"] = state.jobs.snapshot()
    except JobQueueError as exc:  # predictions still work without the job queue
        logger.warning("/alive cannot list the jobs: %s", exc)
        process_metadata["jobs"] = {}
        process_metadata["jobs_error"] = "the job queue cannot be reached; see the server log"
    body = {
        "pipeforge_version": __version__,
        "service_metadata": state.service_metadata,
        "memory_usage": state.memory_usage(),
        "model": {"updated": None, "metadata": None},
        "process_metadata": process_metadata,
    }
    problems = []
    if state.model_persister is not None:
        try:
            model = state.model_persister.read()
        except StoreUnavailableError as exc:  # its message is meant for clients
            problems.append(str(exc))
        except (NoModelError, UnknownVersionError) as exc:
            problems.append(f"no model available yet: {exc}")
        except PersistenceError as exc:  # the store's own words: for the log only
            logger.warning("/alive could not read the model: %s", exc)
            problems.append("the model could not be read; see the server log")
        except Exception:
            logger.exception("/alive could not read the model")
            problems.append("the model could not be read; see the server log")
        else:
            body["model"] = {
                "updated": _model_updated(store, model),
                "metadata": _metadata_shown(model),
            }
            problems.extend(_misfits(state.services, model))
    required = (state.config.get("alive") or {}).get("process_store_required") or []
    missing = (
        store.missing(required)
        if hasattr(store, "missing")
        else [name for name in required if name not in store]
    )
    if missing:
        problems.append(f"waiting for process store entries: {', '.join(missing)}")
    drift = _drift_brief()
    if drift is not None:  # a drifted model still serves: the flag is for people
        body["drift"] = drift
    if problems:
        body.update(error_body(state.service_metadata, "; ".join(problems)))
        return json_response(body, 503)
    return json_response(body)


def _drift_brief() -> dict | None:
    """The drift flag and its reasons for ``/alive`` (``None`` without a ``drift`` entry)."""
    from flask import current_app

    from ..release.drift import brief

    monitor = current_app.extensions.get("pipeforge_drift")
    return None if monitor is None else brief(monitor.report())


def _metadata_shown(model: Any) -> dict:
    """The served model's metadata for ``/alive``, without its training summary (pf-drift's)."""
    from ..release.summary import SUMMARY_KEY

    metadata = dict(getattr(model, "__metadata__", None) or {})
    metadata.pop(SUMMARY_KEY, None)
    return metadata


def _misfits(services: list[tuple[str, Any]], model: Any) -> list[str]:
    """Why predict services cannot use ``model`` (their ``check_model``), for ``/alive``."""
    problems = []
    for _, service in services:
        check = getattr(service, "check_model", None)
        if check is None:
            continue
        try:
            check(model)
        except ConfigError as exc:
            problems.append(str(exc))
    return problems


def _model_updated(store: Any, model: Any) -> str | None:
    """When the served model was put into the process store (the model cache)."""
    mtime = getattr(store, "mtime", {})
    if store.get("model") is model and "model" in mtime:
        return mtime["model"].isoformat()
    return None


def job_view(job_id: str) -> Response:
    """``GET /jobs/<job_id>``: one job's record (with a job queue: from any process or host)."""
    from werkzeug.exceptions import NotFound

    record = current_state().jobs.get(job_id)
    if record is None:
        raise NotFound(f"unknown job {job_id!r} (finished jobs are kept for a limited time)")
    return json_response(record)


def list_models() -> Response:
    """``/list``: the stored models' metadata and the store's properties (404 without a store)."""
    from werkzeug.exceptions import NotFound

    state = current_state()
    if state.model_persister is None:  # an online-only service: no model store to list
        raise NotFound("this service has no model store (no 'model_persister' in its config)")
    persister = state.model_persister
    models = [dict(m) for m in persister.list_models()]
    properties = persister.list_properties()
    release = release_listing(models, properties)
    for model in models:  # each version's aliases beside its tags (docs/releasing.md)
        model["aliases"] = release["by_version"].get(model.get("version"), [])
    return json_response(
        {
            "models": models,
            "properties": properties,
            "aliases": release["aliases"],
            "traffic": release["traffic"],
        }
    )


# -- the lifecycle routes ---------------------------------------------------------


def _flag(values: Mapping[str, Any], name: str, default: bool) -> bool:
    return default if name not in values else to_bool(name, values[name])


_FIT_PARAMS = ("persist", "activate", "evaluate", "persist_if_better_than")


@lifecycle_view("fit")
def fit() -> Response:
    """``/fit``: fit the configured model in a background job; answers the job id.

    Its flags come in a JSON body (a config in Palladium's form: also the
    query string or a form, see :func:`pipeforge.guards.action_params`).
    """
    state = current_state()
    values = guards.action_params(_FIT_PARAMS)
    persist = _flag(values, "persist", True)
    activate = _flag(values, "activate", persist)
    evaluate = _flag(values, "evaluate", False)
    raw = values.get("persist_if_better_than")
    better = None if raw is None else to_float("persist_if_better_than", raw)
    for key in ("dataset_loader_train", "model", "model_persister"):
        require(state.config, key)
    job_id = state.jobs.enqueue(
        fit_job,
        state.config,
        name="fit",
        persist=persist,
        activate=activate,
        evaluate=evaluate,
        persist_if_better_than=better,
    )
    return json_response({"job_id": job_id})


@lifecycle_view("update_model_cache")
def update_model_cache() -> Response:
    """``/update-model-cache``: refresh this process's model cache in a background job."""
    state = current_state()
    if not model_caches(state.config):
        return json_response(
            error_body(state.service_metadata, "no model cache is configured to update"), 503
        )
    job_id = state.jobs.enqueue(refresh_model_caches, state.config, name="update_model_cache")
    return json_response({"job_id": job_id})


def _model_version_param(values: Mapping[str, Any] | None = None) -> int:
    """``model_version`` from a JSON object body (Palladium's form: also the query or a form)."""
    if values is None:
        values = guards.action_params(("model_version",))
    raw = values.get("model_version")
    if raw is None:
        raise RequestError("missing request parameter 'model_version'")
    return to_int("model_version", raw)


@lifecycle_view("activate")
def activate() -> Response:
    """``/activate``: make ``model_version`` the active model and refresh the cache."""
    state = current_state()
    version = _model_version_param()
    require(state.config, "model_persister").activate(version)
    refresh_model_caches(state.config)
    return json_response(
        {"model_version": version, "metadata": web.ok_metadata(state.service_metadata)}
    )


@lifecycle_view("delete")
def delete() -> Response:
    """``/delete``: delete the stored model ``model_version`` (as ``pf-admin delete``).

    The active version only with ``"force": true`` (else 409 saying so).
    """
    from ..persistence.admin import delete_version

    state = current_state()
    values = guards.action_params(("model_version", "force"))
    version = _model_version_param(values)
    force = _flag(values, "force", False)
    delete_version(require(state.config, "model_persister"), version, force=force)
    return json_response(
        {"model_version": version, "metadata": web.ok_metadata(state.service_metadata)}
    )
