"""Where the daemon is and what token to send: arguments, then AIRLOCK_URL and
AIRLOCK_TOKEN, then the daemon's own token file (as the CLI finds it)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:7711"
DEFAULT_HOME = "/var/lib/airlock"


@dataclass(frozen=True)
class Config:
    """How to reach one daemon."""

    url: str
    token: str
    timeout: float = 60.0


def discover(
    url: str | None = None,
    token: str | None = None,
    timeout: float | None = None,
) -> Config:
    """The daemon's address and token, from the arguments or the environment."""
    url = url or os.environ.get("AIRLOCK_URL") or DEFAULT_URL
    token = token or os.environ.get("AIRLOCK_TOKEN") or _token_file()
    if not token:
        raise ValueError(
            "no token: pass token=, set AIRLOCK_TOKEN, or run where the daemon's "
            "home (AIRLOCK_HOME, default /var/lib/airlock) holds its `token` file"
        )
    return Config(url=url.rstrip("/"), token=token, timeout=timeout or 60.0)


def _token_file() -> str:
    home = Path(os.environ.get("AIRLOCK_HOME") or DEFAULT_HOME)
    try:
        return (home / "token").read_text().strip()
    except OSError:
        return ""
