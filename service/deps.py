"""Dependencies shared by the routers: settings/data access, write auth, and sweep lookup."""

from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.data import SweepData
from service.settings import Settings

_bearer = HTTPBearer(auto_error=False)


def get_data(request: Request) -> SweepData:
    return request.app.state.data


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def require_writer(creds: HTTPAuthorizationCredentials | None = Depends(_bearer),
                   settings: Settings = Depends(get_settings)) -> None:
    """Writes need ``Authorization: Bearer $MUTRANSFER_API_TOKEN`` when that is set; reads are open."""
    if not settings.api_token:
        return
    if creds is None or not hmac.compare_digest(creds.credentials.encode(), settings.api_token.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token (MUTRANSFER_API_TOKEN)",
                            headers={"WWW-Authenticate": "Bearer"})


def sweep_id(sweep_id: str, data: SweepData = Depends(get_data)) -> str:
    """A known sweep id, else 404 (ids are never used as paths)."""
    if not data.exists(sweep_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no sweep {sweep_id!r}")
    return sweep_id
