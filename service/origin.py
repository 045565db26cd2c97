"""Who may write without a token: the policy against DNS rebinding and cross-site requests.

With no ``MUTRANSFER_API_TOKEN``, a write (POST/DELETE) is taken only when

* its ``Host`` names this server by a loopback name — ``127.0.0.1``, ``localhost`` or ``[::1]`` —
  with the server's port, or by a name the operator allowed (``MUTRANSFER_ALLOWED_HOSTS``,
  ``serve --allow-host``; ``name`` means on the server's port, ``name:port`` exactly that), and
* its ``Origin``, when there is one, is that same origin (``http(s)://<the Host>``); ``Origin: null``
  (sandboxed frames, file pages) is refused.

A page on a DNS-rebinding name (``attacker.example`` resolving to 127.0.0.1) is same-origin with
itself, not with ``127.0.0.1``: the browser sends ``Host: attacker.example``, refused here. A page
on another origin posting to ``http://127.0.0.1:PORT`` sends its own ``Origin``, refused here.
With a token set, the token is the only check (a web page cannot know it).
"""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def split_host(value: str) -> tuple[str, int | None] | None:
    """``name[:port]`` / ``[v6][:port]`` → (lower-case name, port or None); None when malformed."""
    value = value.strip().lower()
    if not value or any(c in value for c in "/@?# \t"):
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[:end + 1], value[end + 1:]
    else:
        name, _, port_s = value.partition(":")
        rest = f":{port_s}" if _ else ""
    if rest and not (rest.startswith(":") and rest[1:].isdigit() and 0 < int(rest[1:]) < 65536):
        return None
    return name, int(rest[1:]) if rest else None


def parse_allowed(raw: str | None) -> tuple[str, ...]:
    """``MUTRANSFER_ALLOWED_HOSTS``: names separated by commas or spaces (a bad one names itself)."""
    out = []
    for item in (raw or "").replace(",", " ").split():
        if split_host(item) is None:
            raise ValueError(f"MUTRANSFER_ALLOWED_HOSTS: {item!r} is not a host name (name or name:port)")
        out.append(item.lower())
    return tuple(out)


def host_allowed(host: str, server_port: int, allowed: tuple[str, ...] = ()) -> bool:
    parsed = split_host(host)
    if parsed is None:
        return False
    name, port = parsed
    port = port if port is not None else 80
    for entry in (*LOOPBACK_NAMES, *allowed):
        want_name, want_port = split_host(entry)
        if name == want_name and port == (want_port if want_port is not None else server_port):
            return True
    return False


def write_refusal(host: str | None, origin: str | None, server_port: int,
                  allowed: tuple[str, ...] = ()) -> str | None:
    """Why a token-less write with these headers is refused (one line), or None if it is taken."""
    fix = ("set MUTRANSFER_API_TOKEN (writes then need `Authorization: Bearer <token>`), or allow the name with "
           "MUTRANSFER_ALLOWED_HOSTS / `mutransfer serve --allow-host NAME`")
    names = ", ".join((*LOOPBACK_NAMES, *allowed))
    if not host or not host_allowed(host, server_port, allowed):
        return (f"writes without a token are taken only for Host {names} on port {server_port}, not "
                f"{host or '(none)'!r}; {fix}")
    if origin is not None:
        parts = urlsplit(origin.strip())
        default = {"http": 80, "https": 443}.get(parts.scheme)
        o = split_host(parts.netloc) if default and parts.path in ("", "/") and not parts.query else None
        h = split_host(host)
        if o is None or h is None or (o[0], o[1] or default) != (h[0], h[1] or default):
            return f"writes without a token are taken only from this server's own origin, not Origin {origin!r}; {fix}"
    return None
