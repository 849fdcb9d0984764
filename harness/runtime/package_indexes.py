"""Which package indexes a build may reach: the ones the operator configured for uv (``UV_INDEX_URL`` and its
kin, uv.toml), pypi.org and files.pythonhosted.org when none replaces them, and ``limits.env_index_hosts``
(runtime.egress lets a build reach these and nothing else). Also: the same indexes as pip's variables, and the
local ones a build must see.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

from harness.core import setting_values

PYPI = ("pypi.org", 443), ("files.pythonhosted.org", 443)
INDEX_VARS = ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_INDEX", "UV_FIND_LINKS")
REPLACES_PYPI = ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "index-url", "default")
UV_CONFIGS = (Path.home() / ".config" / "uv" / "uv.toml", Path("/etc/uv/uv.toml"))


def address(url: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        return None
    host = parts.hostname.lower() if parts.hostname else ""
    return (f"[{host}]" if ":" in host else host, port) if host and port else None


def _configured(environ: dict[str, str]) -> list[tuple[str, str]]:
    """(where, url) of every index and find-links place the operator gave uv: its variables and uv.toml."""
    found = []
    for name in INDEX_VARS:
        for word in re.split(r"[\s,]+", environ.get(name, "")):
            if word:
                found.append((name, word.split("=", 1)[1] if re.match(r"[\w.-]+=", word) else word))
    for path in UV_CONFIGS:
        try:
            cfg = tomllib.loads(path.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        for table in (cfg, cfg.get("pip") if isinstance(cfg.get("pip"), dict) else {}):
            for key in ("index-url", "extra-index-url", "find-links"):
                values = table.get(key, [])
                found += [(key, v) for v in ([values] if isinstance(values, str) else values) if isinstance(v, str)]
        for index in cfg.get("index", []) if isinstance(cfg.get("index"), list) else []:
            if isinstance(index, dict) and isinstance(index.get("url"), str):
                found.append(("default" if index.get("default") else "index", index["url"]))
    return found


def index_hosts(environ: dict[str, str], extra=()) -> frozenset[tuple[str, int]]:
    """The (host, port) pairs a build may reach: the indexes uv is configured with, PyPI unless one replaces it,
    and EXTRA ("host:port" or "host", port 443: limits.env_index_hosts)."""
    configured = _configured(environ)
    hosts = {a for _, url in configured if (a := address(url))}
    if not any(where in REPLACES_PYPI for where, _ in configured):
        hosts.update(PYPI)
    return frozenset(hosts | {setting_values.host_port(word) for word in extra})


def pip_indexes(environ: dict[str, str]) -> dict[str, str]:
    """The indexes uv is configured with, as pip's variables (a docker build's installer is the image's pip):
    PIP_INDEX_URL where one replaces PyPI, PIP_EXTRA_INDEX_URL and PIP_FIND_LINKS (http and https ones: local
    folders are not in the image)."""
    found: dict[str, list[str]] = {}
    for where, url in _configured(environ):
        if not url.startswith(("http://", "https://")):
            continue
        name = ("PIP_FIND_LINKS" if "FIND_LINKS" in where.upper().replace("-", "_") else
                "PIP_INDEX_URL" if where in REPLACES_PYPI and "PIP_INDEX_URL" not in found else "PIP_EXTRA_INDEX_URL")
        found.setdefault(name, []).append(url)
    return {name: " ".join(urls) for name, urls in found.items()}


def index_paths(environ: dict[str, str]) -> list[str]:
    """Local indexes and wheel folders the operator gave uv (file:// URLs, paths): bound read-only in a build."""
    paths = []
    for _, url in _configured(environ):
        path = url[len("file://"):] if url.startswith("file://") else url
        if path.startswith("/") and Path(path).exists():
            paths.append(path)
    return paths
