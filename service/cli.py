"""The ``mutransfer`` console script: the sweeps CLI (run, report, data, schema) plus ``serve``.

    mutransfer serve [--results DIR] [--address ADDR] [--host H] [--port P]   (--help: every option)

Lives here, not in ``sweeps``, so that dependencies point one way (service → sweeps).
"""

from __future__ import annotations

import os
import sys

from sweeps import cli as sweeps_cli

SHUTDOWN_GRACE_S = 5  # open requests get this long after SIGTERM/SIGINT; event streams end at once


def cmd_serve(args) -> int:
    import uvicorn

    from mutransfer.results import ResultsStore
    from sweeps.ray_exec import absolute_root

    root = absolute_root(args.results)  # drivers run in other processes
    ResultsStore(root).check_writable()  # a file or an unwritable directory: one error line, now
    # The app reads its settings from the environment (see service/settings.py); the driver
    # processes it starts inherit them.
    os.environ["MUTRANSFER_RESULTS"] = root
    if args.address:
        os.environ["MUTRANSFER_RAY_ADDRESS"] = args.address
    if args.registry:
        os.environ["MUTRANSFER_REGISTRY"] = args.registry
    if args.allow_host:
        os.environ["MUTRANSFER_ALLOWED_HOSTS"] = ",".join(
            [*filter(None, [os.environ.get("MUTRANSFER_ALLOWED_HOSTS")]), *args.allow_host])
    from service.settings import from_env

    try:
        settings = from_env()  # a bad MUTRANSFER_* value fails here, as one line
    except ValueError as e:
        raise sweeps_cli.UserError(str(e)) from None
    _check_port_free(args.host, args.port)  # a busy port: one error line, before "serving"
    print(f"mutransfer: serving http://{args.host}:{args.port}/ (results: {root}; sweeps run on "
          f"{args.address or 'an embedded local Ray per sweep'})", file=sys.stderr)
    if not settings.api_token:
        print(write_warning(settings, args.host, args.port), file=sys.stderr)
    from service.guard import TimedH11Protocol

    lim = settings.limits
    guards = dict(http=TimedH11Protocol, limit_concurrency=lim.max_connections,
                  timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    if args.workers > 1:  # uvicorn's worker processes: open streams are cut after the grace period
        uvicorn.run("service.app:app", host=args.host, port=args.port, log_level=args.log_level,
                    workers=args.workers, **guards)
        return 0
    config = uvicorn.Config("service.app:app", host=args.host, port=args.port, log_level=args.log_level, **guards)
    _server(config).run()
    return 0


def _port(text: str) -> int:
    """A TCP port number (argparse type): 1..65535, else one usage-error line."""
    import argparse

    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port


def _check_port_free(host: str, port: int) -> None:
    """Bind HOST:PORT once (as uvicorn will, with SO_REUSEADDR) so a busy port fails as one line."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise sweeps_cli.UserError(f"--host {host}: cannot resolve it ({e.strerror})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            raise sweeps_cli.UserError(f"--port {port}: cannot listen on {host}:{port} ({e.strerror}); another "
                                       "server may hold it — stop it or pick another --port") from None


def write_warning(settings, host: str, port: int) -> str:
    """The line `serve` prints when writes need no token."""
    from service.origin import LOOPBACK_NAMES

    names = ", ".join((*LOOPBACK_NAMES, *settings.allowed_hosts))
    return (f"mutransfer: warning: writes are open: MUTRANSFER_API_TOKEN is not set, so any client that can reach "
            f"{host}:{port} and sends Host {names} (port {port}) with no other Origin can submit and cancel "
            "sweeps; set MUTRANSFER_API_TOKEN to require a bearer token")


def _server(config):
    """uvicorn's server, which also tells open event streams to end when asked to stop (uvicorn
    waits for open connections to close, and an event stream would otherwise stay open)."""
    import uvicorn

    from service.deps import shutting_down

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            shutting_down.set()
            super().handle_exit(sig, frame)

    return Server(config)


def build_parser():
    p = sweeps_cli.build_parser()
    sub = next(a for a in p._actions if a.dest == "command")
    s = sub.add_parser("serve", help="HTTP API and dashboards on http://HOST:PORT/",
                       formatter_class=sweeps_cli.HelpFormatter,
                       description="Serve the sweeps API (OpenAPI at /docs) and the dashboards (/) for the "
                                   "results under --results; sweeps submitted over HTTP run in detached drivers. "
                                   "Settings and limits: MUTRANSFER_* environment variables (README).")
    s.add_argument("--results", **sweeps_cli.RESULTS_ARG)
    s.add_argument("--address", default=None, help="Ray cluster for sweeps (default: an embedded local Ray per sweep)")
    s.add_argument("--registry", default=None, help="sweep registry SQLite file (default: RESULTS/registry.sqlite)")
    s.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0: every interface)")
    s.add_argument("--port", type=_port, default=sweeps_cli.DEFAULT_PORT, help="TCP port (1-65535)")
    s.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    s.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a Host name (NAME or NAME:PORT) token-less writes are also taken for, besides "
                        "127.0.0.1/localhost/[::1] (repeatable; adds to MUTRANSFER_ALLOWED_HOSTS)")
    s.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn log level")
    s.set_defaults(func=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    return sweeps_cli.main(argv, parser=build_parser())


if __name__ == "__main__":
    sys.exit(main())
