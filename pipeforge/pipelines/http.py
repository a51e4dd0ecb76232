"""The pipelines' HTTP routes, added to the service's Flask app.

=========================================  ======  ===========================================
route                                      method  answer
=========================================  ======  ===========================================
``/pipelines/<name>/main``                 POST    ``{"pipeline_output", "versions", "job_id",
                                                   "job_status"}`` (202 and a job id with
                                                   ``"use_worker": true``)
``/pipelines/<name>/load``                 POST    ``{"pipeline", "is_loaded", "versions"}``
``/pipelines/<name>/save``                 POST    ``{"pipeline", "saved", "versions"}``
``/pipelines/<name>/versions``             POST    ``{node name: version}``
``/pipelines/<name>/health_check``         GET     ``{"is_loaded"}``, 503 when not loaded
``/pipelines/<name>/graph``                GET     the DAG, op versions loaded and current,
                                                   "trained on" links, and ``"svg"`` (its
                                                   picture); ``?svg=false`` leaves it out
``/pipelines/jobs/<job_id>``               GET     the job, from the op store's job table
``/health_check``                          GET     ``{name: is_loaded}``
``/available_pipelines``                   GET     ``[name, ...]``
=========================================  ======  ===========================================

Every route is wrapped in the ``pipelines_decorators`` list of the config.
``/load`` and ``/save`` change what is served and stored: they are off
(404) unless ``pipelines_admin`` switches them on (``allow_load``,
``allow_save``), and then pass :func:`pipeforge.guards.gate` (guarded by
``pipelines_admin_decorators``, no cross-site writes). So does a run of
``/main`` with ``"save": true`` (403 while saving is off).

Errors answer ``{"metadata": {..., "status": "ERROR", "error_code", "error_message"}}``:
404 unknown pipeline or job, 400 bad request body or input an op rejects,
409 :class:`~pipeforge.errors.VersionError`, 500 anything else (logged).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import guards, web
from ..errors import PipeforgeError, RequestError, VersionError
from ..web import to_jsonable
from .build import build_op_store, build_pipelines
from .pipeline import NodeError, Pipeline
from .store import OpStore
from .sync import PipelineSync

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from flask import Flask

__all__ = ["register_routes", "PipelinesService", "to_jsonable"]

logger = logging.getLogger(__name__)

EXTENSION = "pipeforge_pipelines"


class _HTTPError(Exception):
    def __init__(self, status: int, message: str):
        self.http_status = status  # answered with this status by pipeforge.web
        super().__init__(message)


class PipelinesService:
    """The pipelines, their op store and background jobs of one app."""

    def __init__(
        self,
        pipelines: dict[str, Pipeline],
        store: OpStore,
        service_metadata: Mapping | None = None,
        max_workers: int = 2,
    ):
        self.pipelines = pipelines
        self.store = store
        self.service_metadata = dict(service_metadata or {})
        self.max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.sync = PipelineSync(
            pipelines, store, refresh=None
        )  # register_routes sets the config's
        #: how a run that saves is guarded; ``None``: saving over HTTP is off
        self.save_gate: guards.Gate | None = None

    def pipeline(self, name: str) -> Pipeline:
        pipeline = self.pipelines.get(name)
        if pipeline is None:
            known = ", ".join(sorted(self.pipelines)) or "none"
            raise _HTTPError(404, f"unknown pipeline {name!r} (available: {known})")
        return pipeline

    def ensure_loaded(self, pipeline: Pipeline) -> None:
        """Load a pipeline not loaded yet (first request, or after a refused load)."""
        self.sync.ensure_loaded(pipeline)

    def submit(self, pipeline: Pipeline, pipeline_input: Any, save: bool) -> str:
        from concurrent.futures import ThreadPoolExecutor

        job_id = self.store.create_job(pipeline.name)
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.max_workers, thread_name_prefix="pf-pipeline-job"
                )
            self._pool.submit(self._job, job_id, pipeline, pipeline_input, save)
        return job_id

    def _job(self, job_id: str, pipeline: Pipeline, pipeline_input: Any, save: bool) -> None:
        try:
            self.store.update_job(job_id, "running")
            output = pipeline.run(pipeline_input)
            result = {"pipeline_output": to_jsonable(output), "versions": pipeline.versions()}
            if save:
                result["saved"] = pipeline.save(self.store)
            self.store.update_job(job_id, "done", result=result)
        except Exception as exc:
            logger.error("background run of pipeline %r failed", pipeline.name, exc_info=exc)
            message = (
                str(exc)
                if isinstance(exc, PipeforgeError)
                else f"{type(exc).__name__}: see the server log"
            )
            self.store.update_job(job_id, "failed", error=message)

    def shutdown(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None


def _service() -> PipelinesService:
    from flask import current_app

    return current_app.extensions[EXTENSION]


def _respond(body: Any, status: int = 200):
    return web.json_response(body, status)


def _request_json() -> dict:
    body = web.read_json(default={})
    if not isinstance(body, dict):
        raise RequestError(
            'the request body must be a JSON object like {"pipeline_input": ...}; '
            f"got a JSON {web.json_kind(body)}"
        )
    return body


def _view(func):
    """Answer errors through :mod:`pipeforge.web`; input an op rejects is a 400."""

    def view(**kwargs):
        service = _service()
        try:
            return func(service, **kwargs)
        except NodeError as exc:
            if isinstance(exc.original, ValueError | TypeError | KeyError | IndexError):
                error = RequestError(str(exc))
            else:
                logger.error("pipeline run failed", exc_info=exc)
                error = _HTTPError(
                    500, f"pipeline {exc.pipeline!r}, node {exc.node!r} failed; see the server log"
                )
            return web.error_response(error, service.service_metadata)
        except Exception as exc:
            return web.error_response(exc, service.service_metadata)

    view.__name__ = func.__name__
    return view


def _main(service: PipelinesService, name: str):
    pipeline = service.pipeline(name)
    body = _request_json()
    use_worker = body.get("use_worker")
    save = body.get("save", False)
    if not isinstance(use_worker, bool | None) or not isinstance(save, bool):
        raise RequestError("'use_worker' and 'save' must be true or false")
    if save:
        if service.save_gate is None:
            raise _HTTPError(
                403,
                'a run with "save": true writes op versions: it is off unless the config sets '
                "pipelines_admin: {allow_save: true} (guarded by pipelines_admin_decorators)",
            )
        refused = service.save_gate.admit()
        if refused is not None:
            return refused
    service.ensure_loaded(pipeline)
    if service.sync.wants_worker(pipeline, use_worker):
        pipeline_input = body.get("pipeline_input")
        job_id = service.sync.submit(pipeline, pipeline_input, save) or service.submit(
            pipeline, pipeline_input, save
        )
        return _respond(
            {
                "pipeline_output": None,
                "versions": pipeline.versions(),
                "job_id": job_id,
                "job_status": "queued",
            },
            202,
        )
    output = pipeline.run(body.get("pipeline_input"))
    result = {
        "pipeline_output": output,
        "versions": pipeline.versions(),
        "job_id": None,
        "job_status": "done",
    }
    if save:
        result["saved"] = pipeline.save(service.store)
    return _respond(result)


def _load(service: PipelinesService, name: str):
    pipeline = service.pipeline(name)
    versions = service.sync.load(pipeline)
    return _respond({"pipeline": name, "is_loaded": True, "versions": versions})


def _save(service: PipelinesService, name: str):
    pipeline = service.pipeline(name)
    return _respond(
        {"pipeline": name, "saved": pipeline.save(service.store), "versions": pipeline.versions()}
    )


def _versions(service: PipelinesService, name: str):
    return _respond(service.pipeline(name).versions())


def _pipeline_health(service: PipelinesService, name: str):
    pipeline = service.pipeline(name)
    try:
        service.ensure_loaded(pipeline)
    except VersionError as exc:
        logger.info("pipeline %r is not loaded: %s", name, exc)
    return _respond({"is_loaded": pipeline.is_loaded}, 200 if pipeline.is_loaded else 503)


def _graph(service: PipelinesService, name: str):
    from flask import request

    from .describe import describe

    pipeline = service.pipeline(name)
    load_error = None
    try:
        service.ensure_loaded(pipeline)
    except VersionError as exc:
        load_error = str(exc)
    description = describe(pipeline, service.store, load_error=load_error)
    if web.parse_flag("svg", request.args.get("svg", "true")):
        from .svg import render_svg

        description["svg"] = render_svg(description, standalone=False)
    return _respond(description)


def _health(service: PipelinesService):
    return _respond({name: p.is_loaded for name, p in service.pipelines.items()})


def _available(service: PipelinesService):
    return _respond(sorted(service.pipelines))


def _job(service: PipelinesService, job_id: str):
    job = service.store.get_job(job_id)
    if job is None:
        queued = service.sync.job(job_id)
        if queued is not None:
            return _respond(queued)
        raise _HTTPError(404, f"unknown job {job_id!r}")
    result = job["result"] or {}
    return _respond(
        {
            "job_id": job["job_id"],
            "pipeline": job["pipeline"],
            "job_status": job["status"],
            "pipeline_output": result.get("pipeline_output"),
            "versions": result.get("versions"),
            "saved": result.get("saved"),
            "error_message": job["error"],
            "created": job["created"],
            "updated": job["updated"],
        }
    )


def register_routes(
    app: Flask,
    config: Mapping,
    *,
    pipelines: dict[str, Pipeline] | None = None,
    store: OpStore | None = None,
) -> PipelinesService:
    """Add the pipelines routes to ``app`` for the config's pipelines (ConfigError if invalid)."""
    if pipelines is None:
        pipelines = build_pipelines(config)
    if store is None:
        store = build_op_store(config)
    service = PipelinesService(pipelines, store, config.get("service_metadata"))
    service.sync = PipelineSync.from_config(config, pipelines, store)
    app.extensions[EXTENSION] = service
    rules = [
        ("/pipelines/<name>/main", _main, ["POST"], None),
        ("/pipelines/<name>/load", _load, ["POST"], "pipelines.load"),
        ("/pipelines/<name>/save", _save, ["POST"], "pipelines.save"),
        ("/pipelines/<name>/versions", _versions, ["POST", "GET"], None),
        ("/pipelines/<name>/health_check", _pipeline_health, ["GET"], None),
        ("/pipelines/<name>/graph", _graph, ["GET"], None),
        ("/pipelines/jobs/<job_id>", _job, ["GET"], None),
        ("/health_check", _health, ["GET"], None),
        ("/available_pipelines", _available, ["GET"], None),
    ]
    from ..factory import decorate

    gates = {
        name: guards.gate(config, name)
        for name in ("pipelines.load", "pipelines.save")
        if guards.switched_on(config, name)
    }
    service.save_gate = gates.get("pipelines.save")
    for rule, func, methods, guarded in rules:
        view = _view(func)
        if guarded is not None:
            if guarded not in gates:
                continue  # off: 404
            view = gates[guarded].wrap(view)
        view = decorate(view, config, "pipelines_decorators")
        app.add_url_rule(
            rule, endpoint=f"pipelines{func.__name__}", view_func=view, methods=methods
        )
    return service
