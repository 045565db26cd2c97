"""Builds mutransfer/native/libmutransfer_bmm.so, the XLA FFI batched matmul on OpenBLAS
(bmm.cc; loaded by :mod:`mutransfer.cpu_gemm`), with the system C++ compiler against jaxlib's
XLA FFI headers (``jax.ffi.include_dir()``) and the scipy-openblas32 wheel's headers and library
(linked with its directory as the run path). ``make setup`` runs it; so can a user:

    python -m mutransfer.native.build

Prints one line saying what it did; exit status 0 even when it cannot build (no compiler, no
scipy-openblas32): the trainer then keeps XLA's dots and says so once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "bmm.cc"
LIBRARY = HERE / "libmutransfer_bmm.so"


def command() -> list[str]:
    """The compiler command line (raises ImportError / FileNotFoundError naming what is missing)."""
    import jax.ffi
    import scipy_openblas32 as ob

    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not cxx:
        raise FileNotFoundError("no C++ compiler (g++) on PATH: install it (apt-get install g++) or set CXX")
    lib_dir = ob.get_lib_dir()
    return [cxx, "-O3", "-std=c++17", "-shared", "-fPIC",
            f"-I{jax.ffi.include_dir()}", f"-I{ob.get_include_dir()}", str(SOURCE),
            f"-L{lib_dir}", f"-l{ob.get_library()}", f"-Wl,-rpath,{lib_dir}", "-o", str(LIBRARY)]


def build(quiet: bool = False) -> bool:
    """Compile :data:`LIBRARY` (when missing or older than its source); True if it is there."""
    if LIBRARY.exists() and LIBRARY.stat().st_mtime >= SOURCE.stat().st_mtime:
        return True
    try:
        cmd = command()
    except (ImportError, FileNotFoundError) as e:
        print(f"mutransfer.native.build: not built ({e}); CPU products stay on XLA's dots", file=sys.stderr)
        return False
    tmp = LIBRARY.with_suffix(".so.tmp")
    proc = subprocess.run(cmd[:-1] + [str(tmp)], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"mutransfer.native.build: the compiler failed; CPU products stay on XLA's dots:\n"
              f"{proc.stderr[-1500:]}", file=sys.stderr)
        return False
    tmp.replace(LIBRARY)
    if not quiet:
        print(f"mutransfer.native.build: built {LIBRARY}")
    return True


if __name__ == "__main__":
    build()
