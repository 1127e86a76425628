"""Server configuration: flags override environment variables, which override defaults."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from numrep.core.errors import InvalidArgument
from numrep.store.verdict_cache import DEFAULT_ENTRIES as DEFAULT_VERDICT_CACHE

SERVICES = ("lookup", "publish", "flags", "sync", "registry", "consent", "cases")
DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
SECRET_FILE = "pseudonym.key"


def default_data_dir() -> Path:
    return Path(os.environ.get("NUMREP_DATA_DIR") or Path.home() / ".local" / "share" / "numrep")


@dataclass(frozen=True)
class ServerConfig:
    listen: str = DEFAULT_LISTEN
    data_dir: Path = Path(".")
    store: str = "sqlite"
    services: tuple[str, ...] = SERVICES
    default_region: str = "US"
    audience: str = "numrep"
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    grace_seconds: float = 10.0
    health_interval_seconds: float = 5.0
    reconciler: str = "trust"            # "trust" (learned trust engine) or "v1" (role-weighted)
    trust_refit_seconds: float = 6 * 3600  # scheduled full refit; 0 = only on demand (numrep trust refit)
    trust_reload_seconds: float = 60.0     # how often to pick up an epoch another replica stored
    verdict_cache_entries: int = DEFAULT_VERDICT_CACHE  # BatchLookup's in-memory verdicts (SQLite only: numrep.store.verdict_cache); 0 = none
    shaken_anchors: Path | None = None      # directory of PEM STI-CA roots
    shaken_cert_cache: Path | None = None   # JSON index {x5u URL: PEM file}, refreshed out of band
    tls_cert: Path | None = None       # PEM certificate chain: serve TLS
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # PEM CA bundle: require client certificates (mutual TLS)
    http_listen: str = ""  # HOST:PORT of the public web page (numrep.web); "" = no web page
    calling_hours: str = ""  # default calling window for marketing calls (see numrep.core.consent); "" = 8:00-21:00 every day
    rate_limits: str = ""  # per-participant rates in place of the defaults, e.g. "carrier.batch=200/400" (numrep.limits.parse_rates)
    # Keepalive (numrep.server.keepalive_options): a connection that stays quiet this long is
    # pinged, and closed, its calls ended, if the ping goes unanswered that long.
    keepalive_seconds: float = 60.0
    keepalive_timeout_seconds: float = 20.0
    min_client_ping_seconds: float = 4.0  # clients may ping this often (the carrier SDK: after 5 s of quiet)

    def __post_init__(self) -> None:
        for name in ("keepalive_seconds", "keepalive_timeout_seconds", "min_client_ping_seconds"):
            value = getattr(self, name)
            if not 1.0 <= value <= 24 * 3600:  # NaN too
                raise InvalidArgument(f"{name} must be 1 to 86400 seconds, not {value!r}")
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise InvalidArgument(f"the data directory {self.data_dir} is a file, not a directory")

    @classmethod
    def from_env(cls, **overrides: object) -> "ServerConfig":
        env = os.environ
        values: dict[str, object] = {
            "listen": env.get("NUMREP_LISTEN", DEFAULT_LISTEN),
            "data_dir": default_data_dir(),
            "store": env.get("NUMREP_STORE", "sqlite"),
            "services": parse_services(env.get("NUMREP_SERVICES", ",".join(SERVICES))),
            "default_region": env.get("NUMREP_REGION", "US"),
            "audience": env.get("NUMREP_AUDIENCE", "numrep"),
            "max_message_bytes": int(env.get("NUMREP_MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES)),
            "tls_cert": _path(env.get("NUMREP_TLS_CERT")),
            "tls_key": _path(env.get("NUMREP_TLS_KEY")),
            "tls_client_ca": _path(env.get("NUMREP_TLS_CLIENT_CA")),
            "http_listen": env.get("NUMREP_HTTP_LISTEN", ""),
            "shaken_anchors": _path(env.get("NUMREP_SHAKEN_ANCHORS")),
            "shaken_cert_cache": _path(env.get("NUMREP_SHAKEN_CERT_CACHE")),
            "calling_hours": env.get("NUMREP_CALLING_HOURS", ""),
            "reconciler": env.get("NUMREP_RECONCILER", "trust"),
            "trust_refit_seconds": float(env.get("NUMREP_TRUST_REFIT_SECONDS", 6 * 3600)),
            "trust_reload_seconds": float(env.get("NUMREP_TRUST_RELOAD_SECONDS", 60)),
            "verdict_cache_entries": int(env.get("NUMREP_VERDICT_CACHE", DEFAULT_VERDICT_CACHE)),
            "rate_limits": env.get("NUMREP_RATE_LIMITS", ""),
            "keepalive_seconds": float(env.get("NUMREP_KEEPALIVE_SECONDS", 60)),
            "keepalive_timeout_seconds": float(env.get("NUMREP_KEEPALIVE_TIMEOUT_SECONDS", 20)),
            "min_client_ping_seconds": float(env.get("NUMREP_MIN_CLIENT_PING_SECONDS", 4)),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def parse_services(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [n for n in names if n not in SERVICES]
    if unknown or not names:
        raise InvalidArgument(f"unknown service(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(SERVICES)}")
    return names


def pseudonym_secret(data_dir: Path) -> bytes:
    """The exchange's pseudonymisation secret: NUMREP_PSEUDONYM_SECRET (hex) or a
    file created once in the data directory (shared by every replica using it)."""
    from_env = os.environ.get("NUMREP_PSEUDONYM_SECRET")
    if from_env:
        return bytes.fromhex(from_env)
    path = data_dir / SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())
