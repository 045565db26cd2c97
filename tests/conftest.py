import os

# Tests run on CPU with small shapes; keep XLA from grabbing every core's worth of threads twice.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
