"""Versioned ops and pipelines, declared in the config (chariots' ideas).

See docs/pipelines.md for the config format, the version rules and the
HTTP routes.
"""

from .build import build_op_store, build_pipelines
from .callbacks import OpCallback, PipelineCallback, TimingCallback
from .graph import PIPELINE_INPUT, PIPELINE_OUTPUT, Node
from .ops import DataOp, EstimatorOp, FunctionOp, Op, OpError, TrainableOp
from .pipeline import NodeError, Pipeline
from .runners import BaseRunner, SequentialRunner, ThreadRunner
from .store import OpStore
from .versioning import Version, VersionType

__all__ = [
    "PIPELINE_INPUT",
    "PIPELINE_OUTPUT",
    "BaseRunner",
    "DataOp",
    "EstimatorOp",
    "FunctionOp",
    "Node",
    "NodeError",
    "Op",
    "OpCallback",
    "OpError",
    "OpStore",
    "Pipeline",
    "PipelineCallback",
    "SequentialRunner",
    "ThreadRunner",
    "TimingCallback",
    "TrainableOp",
    "Version",
    "VersionType",
    "build_op_store",
    "build_pipelines",
]
