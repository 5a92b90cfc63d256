"""Model families we implement ourselves and the safe (pickle-free) submission artifact format.

Families (the allow-list): ``mlp`` and ``cnn`` take ``float32`` features, ``embedding_bag``
takes ``int64`` token ids; a subnet narrows the list with ``FamilyLimits.families``.

Imports only torch, safetensors and the standard library: this package runs on bare GPU workers
without prefect, dask or mlflow.
"""

from taoflow.tasks.models.artifacts import (
    ArtifactRejected,
    artifact_digest,
    load_submission,
    load_submission_with_config,
    save_submission,
    submission_bytes,
)
from taoflow.tasks.models.families import (
    CNN_FAMILY,
    EMBEDDING_BAG_FAMILY,
    FAMILIES,
    MLP_FAMILY,
    FamilyLimits,
    InvalidModelConfig,
    ModelConfig,
    build_model,
    config_from_dict,
    count_parameters,
    expected_shapes,
    families_for,
    parse_config,
)

__all__ = [
    "CNN_FAMILY",
    "EMBEDDING_BAG_FAMILY",
    "FAMILIES",
    "MLP_FAMILY",
    "ArtifactRejected",
    "FamilyLimits",
    "InvalidModelConfig",
    "ModelConfig",
    "artifact_digest",
    "build_model",
    "config_from_dict",
    "count_parameters",
    "expected_shapes",
    "families_for",
    "load_submission",
    "load_submission_with_config",
    "parse_config",
    "save_submission",
    "submission_bytes",
]
