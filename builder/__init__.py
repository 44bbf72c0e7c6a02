"""prewheel: pre-build the wheels multi-arch Docker images would otherwise compile under QEMU.

The pipeline, one module or subpackage per stage:
requirements -> targets -> plan -> build -> wheelhouse -> index -> consume.
The CLI (:mod:`builder.cli`) is a thin layer over these library functions.
"""

__version__ = "0.1.0"
