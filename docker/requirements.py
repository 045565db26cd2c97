"""Print the project's requirements from pyproject.toml, one a line, for `pip install -r`:
the dependencies, plus those of the extras named in the optional argument (e.g. "[gpu]").

docker/Dockerfile installs these in a layer of their own before it copies the code, so a change
to the code rebuilds only the thin layers after it."""

import re
import sys
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = re.findall(r"[A-Za-z0-9_.-]+", sys.argv[1] if len(sys.argv) > 1 else "")
unknown = [e for e in extras if e not in project.get("optional-dependencies", {})]
if unknown:
    sys.exit(f"EXTRAS: no extra {unknown[0]!r} in pyproject.toml's [project.optional-dependencies]")
print("\n".join([*project["dependencies"], *(d for e in extras for d in project["optional-dependencies"][e])]))
