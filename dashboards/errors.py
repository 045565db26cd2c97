"""Error pages for the HTML routes: what was wrong, in one line a person can act on, and where to
go next (a page a browser shows instead of a JSON body)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .html import document, esc_html, safe_href

TITLES = {400: "Bad request", 404: "Not found", 422: "Cannot show this page", 500: "Server error"}


def error_page(status: int, message: str, *, details: Sequence[Mapping[str, Any] | str] = (),
               links: Mapping[str, str] | None = None) -> str:
    """An error page: the status, ``message``, each detail (``{"field", "msg"}`` or text) and links
    (label -> URL; default: back to the sweeps)."""
    items = []
    for d in details:
        if isinstance(d, Mapping):
            field = d.get("field") or ".".join(str(p) for p in d.get("loc") or [] if p not in ("query", "path"))
            items.append(f'<li class="field-error">{f"<code>{esc_html(field)}</code>: " if field else ""}'
                         f'{esc_html(d.get("msg", ""))}</li>')
        else:
            items.append(f'<li class="field-error">{esc_html(d)}</li>')
    nav = "".join(f'<a href="{safe_href(u)}">{esc_html(k)}</a>' for k, u in (links or {"all sweeps": "/"}).items())
    body = (f'<div class="card error" data-status="{int(status)}"><h1>{int(status)} — '
            f'{esc_html(TITLES.get(status, "Error"))}</h1><p id="error-message">{esc_html(message)}</p>'
            + (f"<ul>{''.join(items)}</ul>" if items else "") + f'<nav class="links">{nav}</nav></div>')
    return document(f"{status} {TITLES.get(status, 'Error')} — mutransfer", body)
