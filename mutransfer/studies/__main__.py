"""``python -m mutransfer.studies --results RESULTS --out docs/science``: regenerate every study page
and the summary index from the results on disk (see mutransfer/studies/pages.py)."""

from __future__ import annotations

import argparse
import sys

from .pages import generate
from .table import STUDIES


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mutransfer.studies", description=__doc__.split("\n")[0])
    ap.add_argument("--results", required=True, help="results root (a directory of Parquet runs/curves)")
    ap.add_argument("--out", default="docs/science", help="where the pages go (default docs/science)")
    ap.add_argument("--only", nargs="*", default=None, help="study keys (claim-1 …); default: all")
    ap.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    a = ap.parse_args(argv)
    keys = {s.key for s in STUDIES}
    if a.only and set(a.only) - keys:
        print(f"--only: unknown study {sorted(set(a.only) - keys)}; choose from {sorted(keys)}", file=sys.stderr)
        return 2
    studies = [s for s in STUDIES if not a.only or s.key in a.only]
    try:
        rows = generate(a.results, a.out, studies, figures=not a.no_figures)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for study, status, verdict in rows:
        print(f"{study.key}: {status}" + (f" — {verdict}" if verdict else ""))
    print(f"wrote {a.out}/index.md and {len(rows)} study pages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
