"""Managing the online models: upload, add, download, delete and list them.

These are the admin side of the online API (``POST``/``GET``/``DELETE
/api/model``, ``GET /api/models``) and of ``pf-online add-model`` and
``models``. Uploading runs the uploaded pickle's code on the server, so it
is off unless the config turns it on; a model is checked against the
store's flavor before it is stored, and every stored model replaces this
process's copy of that name.
"""

from __future__ import annotations

import logging
import pickle
import uuid
from typing import cast

from ..errors import RequestError
from . import flavors as fl
from . import metrics as mt
from .config import check_name
from .errors import UnknownModelError, UploadDisabledError
from .partial_fit import as_online_model
from .service_setup import ServiceSetup

__all__ = ["ModelAdmin"]

logger = logging.getLogger(__name__)


class ModelAdmin(ServiceSetup):
    """The model-management part of :class:`~pipeforge.online.service.OnlineService`."""

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
        """Store the pickled model ``data`` as the default (checked against the flavor first)."""
        self.ensure_ready()
        if name is not None:
            problem = check_name(name)
            if problem:
                raise RequestError(problem)
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
        """The pickle of model ``name`` (the default for ``None``) as it is now."""
        self.ensure_ready()
        info, _ = self.store.lookup(name)
        replica = self.replicas.slot(info.name)
        with replica.lock:
            self.catch_up_copy(replica, info, lambda uid, v: self.store.catch_up(info.name, uid, v))
            return pickle.dumps(replica.model, protocol=5)

    def delete(self, name: str) -> None:
        """Drop model ``name`` with its log (a 404 when there is none)."""
        self.ensure_ready()
        if not self.store.delete_model(name):
            raise UnknownModelError(f"no online model named {name!r}")
        self.replicas.drop(name)

    def models(self) -> dict:
        """``GET /api/models``: the names, the default and each model's record."""
        self.ensure_ready()
        infos = self.store.models()
        return {
            "models": sorted(info.name for info in infos),
            "default": self.store.default(),
            "info": {
                info.name: {
                    "flavor": info.flavor,
                    "n_learnt": info.n_learnt,
                    "n_scored": mt.count(cast(dict, info.metrics)),  # models() reads them
                    "version": info.version,
                    "source": info.source,
                    "created": info.created,
                }
                for info in infos
            },
        }
