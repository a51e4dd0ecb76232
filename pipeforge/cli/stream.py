"""``pf-stream`` (and ``pld-stream``): predictions for JSON lines read from stdin.

Each input line is one batch of samples, answered by one output line. The
samples become model input by the predict service's own rules, exactly as a
``POST /predict`` of the same JSON list would: the line is handed to the
configured :class:`~pipeforge.server.PredictService` as such a request (its
:meth:`~pipeforge.server.PredictService.do`), so field conversion, the
array-or-DataFrame decision and ``predict_proba`` labels cannot drift apart
between the server and the stream. Without a predict service, samples must
be rows of feature values and go to ``model.predict`` as an array.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from .run import model_version_option, run_script

__all__ = ["stream_main", "predict_stream"]

logger = logging.getLogger(__name__)

STREAM_DOC = """Predict samples read from stdin, one JSON list of samples per line.

Each input line is a JSON list of samples (objects with the fields of the
'predict_service' mapping, or lists of feature values); each output line is
the JSON list of their predictions. The line 'exit' (or end of input) ends
the stream. A bad line gets an error object as its output line
({"metadata": {"status": "ERROR", "error_message": ...}}), also reported
on stderr, and the stream goes on: output line N always answers input line N.
Uses 'model_persister' and 'predict_service' from the configuration.

Usage:
  pf-stream [options]

Options:
  --model-version=<version>   Predict with this model version; default:
                              the active model.
  --debug                     Show tracebacks of errors.
  -h --help                   Show this screen.
"""


def _service_for_stream(service: Any) -> Any:
    """The PredictService whose rules turn samples into model input, or ``None`` for rows.

    A service that is not pipeforge's (an object with a ``mapping``) lends
    its mapping to a plain :class:`~pipeforge.server.PredictService`.
    """
    from ..server.predict_service import PredictService

    if service is None or isinstance(service, PredictService):
        return service
    mapping = getattr(service, "mapping", None)
    if not mapping:
        return None
    return PredictService(mapping=mapping, predict_proba=getattr(service, "predict_proba", False))


def _model_failed(exc: Exception) -> Exception:
    from ..errors import PipeforgeError, PredictError

    if isinstance(exc, PipeforgeError):
        return exc
    return PredictError(f"the model failed to predict: {type(exc).__name__}: {exc}")


def _predict_rows(samples: list, model: Any) -> list:
    """Rows of feature values straight to ``model.predict`` (no predict service configured)."""
    import numpy as np

    from ..errors import RequestError

    if not all(isinstance(s, list) for s in samples):
        raise RequestError(
            "samples must be lists of feature values unless the config has a "
            "'predict_service' with a 'mapping'"
        )
    try:
        y = model.predict(np.asarray(samples))
    except Exception as exc:
        raise _model_failed(exc) from exc
    return y.tolist() if hasattr(y, "tolist") else list(y)


def _predict_samples(line: str, service: Any, model: Any) -> Any:
    """The predictions of the service for ``line``, as a ``POST`` of it would get them."""
    from werkzeug.wrappers import Request

    request = Request.from_values(
        method="POST", data=line.encode("utf-8"), content_type="application/json"
    )
    check = getattr(service, "check_model", None)
    if check is not None:
        check(model)
    try:
        response = service.do(model, request)
    except Exception as exc:
        raise _model_failed(exc) from exc
    body = json.loads(response.get_data())
    return body["result"] if isinstance(body, dict) and "result" in body else body


def _samples(line: str) -> list:
    """The JSON list of samples on one input line."""
    from ..errors import RequestError

    if not line:
        raise RequestError("empty line; expected a JSON list of samples")
    try:
        samples = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RequestError(f"not valid JSON: {exc}") from None
    if not isinstance(samples, list):
        raise RequestError(f"expected a JSON list of samples; got {type(samples).__name__}")
    return samples


def predict_stream(
    config: Mapping[str, Any], *, model_version: int | None = None, prog: str = "pf-stream"
) -> int:
    """Answer the lines of stdin on stdout until ``exit`` or the end of input; return 0.

    ``model_version``: predict with that version; by default with the active
    model, read again for each line (a model cache may hold a newer one by
    then). ``prog`` names the script in the error lines on stderr.
    """
    from ..errors import PipeforgeError, PredictError
    from ..web import error_body

    persister = config["model_persister"]
    service = _service_for_stream(config.get("predict_service"))
    model = persister.read(version=model_version)
    for number, line in enumerate(sys.stdin, start=1):
        line = line.strip()
        if line.lower() == "exit":
            break
        try:
            samples = _samples(line)
            if model_version is None:  # the cache may hold a newer model by now
                model = persister.read()
            if service is None:
                answer = _predict_rows(samples, model)
            else:
                answer = _predict_samples(line, service, model)
            print(json.dumps(answer), flush=True)
        except Exception as exc:  # one bad line must not end the stream
            if isinstance(exc, PredictError):
                message = exc.error_message
            elif isinstance(exc, PipeforgeError):
                message = str(exc)
            else:
                logger.exception("line %d failed", number)
                message = f"{type(exc).__name__}: {exc}"
            print(f"{prog}: error: line {number}: {message}", file=sys.stderr, flush=True)
            code = getattr(exc, "error_code", -1)
            body = error_body(
                config.get("service_metadata"),
                f"line {number}: {message}",
                code if isinstance(code, int) else -1,
            )
            print(json.dumps(body, default=str), flush=True)
    return 0


def _stream(args: Mapping[str, Any], config: Mapping[str, Any]) -> int:
    version = model_version_option(args["--model-version"], "--model-version")
    return predict_stream(config, model_version=version)


def stream_main(argv: Sequence[str] | None = None) -> int:
    """``pf-stream``: predict the JSON lines of stdin, one output line per input line."""
    return run_script(
        STREAM_DOC, argv, _stream, mode="predict", entries=("model_persister", "predict_service")
    )
