"""The Open Inference Protocol's REST routes (``/v2``, KServe's "V2" protocol), off by default.

The protocol that KServe, Triton, MLServer and TorchServe speak, for every
predict service and every online model, so that their clients
(``tritonclient``, MLServer's), load balancers and Kubernetes probes talk
to pipeforge as they are. docs/protocols.md is the user's page. The rooms:

- :mod:`.settings`: the ``inference_protocol`` config entry, model names;
- :mod:`.tensors`: input tensors read and checked, output tensors written;
- :mod:`.samples`: input tensors as a predict service's samples;
- :mod:`.metadata`: the server's and the models' metadata objects;
- :mod:`.versions`: the one place a version in a path is resolved;
- :mod:`.service_model`, :mod:`.online_model`: a predict service and the
  online models as protocol models (metadata, readiness, inference);
- :mod:`.answers`: JSON answers and the protocol's error object;
- :mod:`.routes`: the Flask rules; :mod:`.openapi_ops`: their OpenAPI entries.
"""

from .routes import register_inference_protocol
from .settings import ProtocolSettings, read_settings

__all__ = ["register_inference_protocol", "ProtocolSettings", "read_settings"]
