"""The venv's Jupyter kernel starts here: ``python -m pgsom.jupyter_kernel <ipykernel args>``.

Importing :mod:`pgsom` sets the portable numerics mode (or leaves the environment alone under
``PGSOM_NUMERICS=native``), then this process becomes ``python <ipykernel args>`` by ``exec``,
so numpy, torch and MKL start in the mode. ``make`` writes this into the venv's ``kernel.json``
(:func:`pgsom.numerics.install_kernel_env`); papermill and JupyterLab use that kernel.
"""

import sys

from pgsom.numerics import exec_kernel

if __name__ == "__main__":  # pragma: no cover - replaces the process
    exec_kernel(sys.argv[1:])
