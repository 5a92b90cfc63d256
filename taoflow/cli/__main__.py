"""``python -m taoflow.cli``."""

from taoflow.cli.app import main

main()
