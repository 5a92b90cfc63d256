"""Model families we implement ourselves and the safe (pickle-free) submission artifact format.

Imports only torch, safetensors and the standard library: this package runs on bare GPU workers
without prefect, dask or mlflow.
"""

from tasks.models.artifacts import (
    ArtifactRejected,
    artifact_digest,
    load_submission,
    save_submission,
    submission_bytes,
)
from tasks.models.families import (
    FamilyLimits,
    InvalidModelConfig,
    ModelConfig,
    build_model,
    count_parameters,
    expected_shapes,
    parse_config,
)

__all__ = [
    "ArtifactRejected",
    "FamilyLimits",
    "InvalidModelConfig",
    "ModelConfig",
    "artifact_digest",
    "build_model",
    "count_parameters",
    "expected_shapes",
    "load_submission",
    "parse_config",
    "save_submission",
    "submission_bytes",
]
