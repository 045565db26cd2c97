"""The ``mutransfer`` console script: the sweeps CLI (run, report, data) plus ``serve``.

    mutransfer serve [--results DIR] [--address ADDR] [--host H] [--port P]   (--help: every option)

Lives here, not in ``sweeps``, so that dependencies point one way (service → sweeps).
"""

from __future__ import annotations

import os
import sys

from sweeps import cli as sweeps_cli


def cmd_serve(args) -> int:
    import uvicorn

    # The app reads its settings from the environment (see service/settings.py); the driver
    # processes it starts inherit them.
    from sweeps.ray_exec import absolute_root

    os.environ["MUTRANSFER_RESULTS"] = absolute_root(args.results)  # drivers run in other processes
    if args.address:
        os.environ["MUTRANSFER_RAY_ADDRESS"] = args.address
    if args.registry:
        os.environ["MUTRANSFER_REGISTRY"] = args.registry
    print(f"mutransfer: serving http://{args.host}:{args.port}/ (results: {args.results}; sweeps run on "
          f"{args.address or 'an embedded local Ray per sweep'})", file=sys.stderr)
    uvicorn.run("service.app:app", host=args.host, port=args.port, log_level=args.log_level,
                workers=args.workers)
    return 0


def build_parser():
    p = sweeps_cli.build_parser()
    sub = next(a for a in p._actions if a.dest == "command")
    s = sub.add_parser("serve", help="HTTP API and dashboards on http://HOST:PORT/",
                       formatter_class=sweeps_cli.HelpFormatter,
                       description="Serve the sweeps API (OpenAPI at /docs) and the dashboards (/) for the "
                                   "results under --results; sweeps submitted over HTTP run in detached drivers. "
                                   "Settings and limits: MUTRANSFER_* environment variables (README).")
    s.add_argument("--results", default=str(sweeps_cli.default_results_root()),
                   help="results root: a directory or a pyarrow filesystem URI")
    s.add_argument("--address", default=None, help="Ray cluster for sweeps (default: an embedded local Ray per sweep)")
    s.add_argument("--registry", default=None, help="sweep registry SQLite file (default: RESULTS/registry.sqlite)")
    s.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0: every interface)")
    s.add_argument("--port", type=int, default=sweeps_cli.DEFAULT_PORT, help="TCP port")
    s.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    s.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn log level")
    s.set_defaults(func=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    return sweeps_cli.main(argv, parser=build_parser())


if __name__ == "__main__":
    sys.exit(main())
