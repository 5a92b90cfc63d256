"""taoflow: a decentralised AI incentive network run as an orchestrated data pipeline."""

__version__ = "0.1.0"
