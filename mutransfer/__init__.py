"""mutransfer: hyperparameter-transfer sweeps for local learning algorithms (the science package).

Importing it turns on the CPU fast path for matrix products (:mod:`mutransfer.cpu_dots`) before
JAX starts a backend; it changes nothing on accelerators.
"""

from mutransfer import cpu_dots as _cpu_dots

_cpu_dots.enable()
