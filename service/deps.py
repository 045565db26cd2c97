"""Dependencies shared by the routers: settings/data access, write auth, and sweep lookup."""

from __future__ import annotations

import hmac
import threading

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.data import SWEEP_ID, SweepData
from service.errors import ApiError
from service.origin import write_refusal
from service.settings import Settings

_bearer = HTTPBearer(auto_error=False)


def get_data(request: Request) -> SweepData:
    return request.app.state.data


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def require_writer(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer),
                   settings: Settings = Depends(get_settings)) -> None:
    """Writes need ``Authorization: Bearer $MUTRANSFER_API_TOKEN`` when that is set; without a token
    they are taken only with a loopback (or allowed) ``Host`` and a same-origin ``Origin``
    (``service/origin.py``: 403 otherwise). Reads are open."""
    if not settings.api_token:
        server = request.scope.get("server") or (None, None)
        why = write_refusal(request.headers.get("host"), request.headers.get("origin"), server[1] or 80,
                            settings.allowed_hosts)
        if why:
            raise HTTPException(status.HTTP_403_FORBIDDEN, why)
        return
    if creds is None or not hmac.compare_digest(creds.credentials.encode(), settings.api_token.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token (MUTRANSFER_API_TOKEN)",
                            headers={"WWW-Authenticate": "Bearer"})


def sweep_id(sweep_id: str, data: SweepData = Depends(get_data)) -> str:
    """A known sweep id, else 404 (ids are never used as paths; the whole id must match, so a
    trailing newline or slash is not an id)."""
    if not SWEEP_ID.fullmatch(sweep_id) or not data.exists(sweep_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no sweep {sweep_id!r}")
    return sweep_id


_ACCEPTED: dict[int, tuple[str, ...]] = {}


def _accepted_query(route) -> tuple[str, ...]:
    """Query parameter names a route takes (its own and its dependencies'), computed once per route."""
    key = id(route)
    if key not in _ACCEPTED:
        names, todo = set(), [route.dependant]
        while todo:
            dep = todo.pop()
            names |= {p.alias for p in dep.query_params}
            todo.extend(dep.dependencies)
        _ACCEPTED[key] = tuple(sorted(names))
    return _ACCEPTED[key]


def strict_query(request: Request) -> None:
    """422 for a query parameter the route does not take (``?widht=128`` must not silently match
    everything), naming it and the ones it accepts."""
    route = request.scope.get("route")
    if route is None or not hasattr(route, "dependant"):
        return
    accepted = _accepted_query(route)
    unknown = sorted({k for k in request.query_params.keys() if k not in accepted})
    if unknown:
        takes = ", ".join(accepted) if accepted else "no query parameters"
        raise ApiError(422, [(k, f"unknown query parameter; {route.path} accepts: {takes}", "unknown_query")
                             for k in unknown])


# Set when the server is asked to stop (service/cli.py): open event streams end at once, so that a
# connected client never holds up shutdown.
shutting_down = threading.Event()
