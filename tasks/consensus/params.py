"""Yuma consensus hyper-parameters: defined with the network's rules in ``ledger.yuma_params``
(a subnet's config is checked against them when it is created or changed by governance)."""

from taoflow.ledger.yuma_params import (
    ALPHA_LOW_MIN_U16,
    BONDS_MOVING_AVERAGE_OWNER_MAX_PPM,
    PPM_ONE,
    U16_MAX,
    InvalidHyperparameter,
    YumaParams,
)

__all__ = [
    "ALPHA_LOW_MIN_U16",
    "BONDS_MOVING_AVERAGE_OWNER_MAX_PPM",
    "PPM_ONE",
    "U16_MAX",
    "InvalidHyperparameter",
    "YumaParams",
]
