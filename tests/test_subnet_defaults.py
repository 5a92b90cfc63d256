"""New subnets default to the consensus settings that make copying unprofitable.

The README promises: subnets created by the demo, `taoflow subnet create` and the simulator use
Yuma3 bonds with liquid alpha and commit-reveal, while the chain defaults (``YumaParams()``, as
subtensor has them) and subnets already in a ledger keep theirs.
"""

from __future__ import annotations

from taoflow.evaluation_sets import load_evaluation_set
from taoflow.ledger.config import SubnetConfig
from taoflow.network import NEW_SUBNET_YUMA, subnet_config
from taoflow.tasks.consensus.params import YumaParams
from taoflow.tasks.consensus.stage import yuma_params
from taoflow.tasks.simulate import SimulationSpec, subnet_payload


def test_a_new_subnet_uses_yuma3_liquid_alpha_and_commit_reveal() -> None:
    config = SubnetConfig.from_payload(subnet_config(load_evaluation_set("digits")))
    params = yuma_params(config)
    assert (params.yuma3, params.liquid_alpha, params.commit_reveal) == (True, True, True)
    assert params == NEW_SUBNET_YUMA


def test_a_simulated_subnet_uses_them_too() -> None:
    spec = SimulationSpec(subnet="sim", epochs=1, miners=4, validators=2, seed=1)
    params = yuma_params(SubnetConfig.from_payload(subnet_payload(spec)))
    assert params == NEW_SUBNET_YUMA


def test_the_chain_defaults_are_unchanged_and_a_stored_config_is_kept() -> None:
    chain = YumaParams()
    assert (chain.yuma3, chain.liquid_alpha, chain.commit_reveal) == (False, False, False)
    # A subnet created before the new defaults stored its own yuma object: it is read as stored.
    legacy = subnet_config(load_evaluation_set("digits"), yuma={})
    assert yuma_params(SubnetConfig.from_payload(legacy)) == chain
