"""The vectorised NumPy Yuma epoch, timed against DuckDB by ``benchmarks/consensus.py``.

It lives in the package (``taoflow.tasks.consensus.vectorised``) because ``taoflow whatif`` runs
it over long ranges of stored epochs; this module keeps the benchmark's import path.
"""

from taoflow.tasks.consensus.vectorised import (
    DENSE_MIN_DENSITY,
    Layout,
    choose_layout,
    numpy_epoch,
)

__all__ = ["DENSE_MIN_DENSITY", "Layout", "choose_layout", "numpy_epoch"]
