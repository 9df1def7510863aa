"""``intake.toml``, parsed once into frozen dataclasses.

Rules:
- Every key has a default here; the file only says what differs. The template that
  ``intake init`` writes is ``TEMPLATE`` below, so the two never drift.
- An unknown section or key, a value of the wrong type or out of range is a
  ``ConfigError`` naming the file and the key (``intake.toml: sftp.listen: ...``).
- Relative paths in the file are relative to the instance folder (the file's folder).
- Nothing here opens a socket or reads anything but the one file.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from intake.core.config_values import (
    FreeSpace,
    is_loopback,
    parse_address,
    parse_digest_time,
    parse_free_space,
)
from intake.core.errors import ConfigError
from intake.core.messages import DEFAULT_BANNER

GIB = 1024**3
MAX_WORKERS = 64  # [server] workers: more processes than this is a mistake, not a plan


@dataclass(frozen=True)
class Listen:
    """A listening address; ``enabled`` is False for ``listen = ""``."""

    host: str = ""
    port: int = 0

    @property
    def enabled(self) -> bool:
        return bool(self.host)

    def __str__(self) -> str:
        if not self.enabled:
            return "off"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class ServerSection:
    hostname: str = "localhost"  # the name in the TLS certificate and on connection cards
    public_sftp_port: int = 0  # the SFTP port members use, behind NAT (0: the listen port)
    public_ftps_port: int = 0  # the FTPS port members use, behind NAT (0: the listen port)
    organisation: str = ""  # who runs the service, on connection cards
    contact: str = ""  # how members reach the agency (phone, e-mail), on connection cards
    banner: str = DEFAULT_BANNER  # SSH pre-login banner and FTPS welcome (lines: "\n")
    lang: str = "fr"  # what members read from the server (FTPS replies, SFTP statuses)
    workers: int = 0  # serving processes; 0: one per core (``ServerSection.worker_count``)

    def worker_count(self) -> int:
        """The number of processes serving sessions: ``workers``, else one per core."""
        return self.workers or max(1, min(MAX_WORKERS, os.cpu_count() or 1))


@dataclass(frozen=True)
class SftpSection:
    listen: Listen = Listen("127.0.0.1", 2222)
    login_timeout: int = 30  # seconds from accept to authenticated
    max_prelogin_bytes: int = 256 * 1024
    idle_timeout: int = 900  # seconds without a request after login


@dataclass(frozen=True)
class FtpsSection:
    listen: Listen = Listen("127.0.0.1", 2121)
    passive_ports: tuple[int, int] = (60000, 60099)
    masquerade_address: str = ""
    require_session_reuse: bool = True
    login_timeout: int = 30
    idle_timeout: int = 900


@dataclass(frozen=True)
class LimitsSection:
    max_connections: int = 200
    max_connections_per_ip: int = 20
    # Failures from one address within ban_window that block it: a wrong password (or a
    # login that never succeeded) at an existing account is 1, at an unknown account 2, a
    # connection that tried no password or key 0.1, an eviction 0 (services.access.guard).
    max_login_failures: int = 10
    ban_window: int = 600  # seconds
    first_ban_time: int = 60  # seconds: a first block; each further one doubles ...
    ban_time: int = 600  # ... up to this (seconds); a source's record is kept for a day
    max_concurrent_hashes: int = 2  # password hashes computed at once
    max_open_handles: int = 64  # files and folders one session holds open at once
    max_account_open_files: int = 256  # files one account holds open over all its sessions
    max_file_size: int = 64 * GIB  # bytes in one uploaded file
    account_quota: int = 0  # bytes in one account's area (received + arriving); 0 = off
    # Unauthenticated connections (OpenSSH's MaxStartups "start:rate:full"): past ``start``
    # a new one from a network already holding one is dropped with probability ``rate`` %,
    # rising to 100 % at ``full``; at ``full`` a first one from a network evicts the
    # oldest of the network holding most.
    max_startups: tuple[int, int, int] = (10, 30, 100)
    max_startups_per_network: int = 10  # unauthenticated connections of one network at once
    ipv4_network_prefix: int = 24  # what one "network" is (OpenSSH's PerSourceNetBlockSize)
    ipv6_network_prefix: int = 64
    max_network_failures: int = 30  # per network within ban_window, from 3+ of its addresses
    prelogin_wait: int = 10  # seconds a connection over the startup caps waits for a slot
    trusted_networks: tuple[str, ...] = ()  # addresses or networks never blocked
    account_attack_failures: int = 20  # wrong passwords at one account within ban_window ...
    account_attack_delay: int = 2  # ... then each attempt at it waits this long (seconds)
    min_free_space: FreeSpace = field(default_factory=FreeSpace)  # uploads stop below it


@dataclass(frozen=True)
class VendorSection:
    host: str = ""
    port: int = 22
    user: str = ""
    key: str = ""
    known_hosts: str = ""
    remote_dir: str = "/"
    password_file: str = ""  # the vendor's password; ${CREDENTIALS_DIRECTORY} is expanded


@dataclass(frozen=True)
class AlertsSection:
    """``[alerts]``: off while neither ``smtp_host`` nor ``command`` is set."""

    smtp_host: str = ""
    smtp_port: int = 0  # 0: 587 for starttls, 465 for tls, 25 for none
    smtp_tls: str = "starttls"  # starttls | tls | none (loopback relay only)
    smtp_user: str = ""
    smtp_password_file: str = ""
    smtp_ca_file: str = ""  # CA certificates to verify the server with ("" = the system's)
    smtp_timeout: int = 30
    sender: str = ""  # "" = intake@<server.hostname>
    recipients: tuple[str, ...] = ()
    command: str = ""  # a hook: the alert's JSON on stdin, exit 0 = delivered
    command_timeout: int = 30
    throttle: int = 900  # seconds: one mail per kind (and subject) per throttle
    retry: int = 60  # seconds before an undelivered alert is tried again
    forward_failing: int = 3600  # seconds a forward may keep failing before an alert
    digest: str = ""  # "HH:MM" (UTC) or "HH:MM Area/City": a daily summary; "" = none

    @property
    def enabled(self) -> bool:
        return bool((self.smtp_host and self.recipients) or self.command)

    @property
    def port(self) -> int:
        if self.smtp_port:
            return self.smtp_port
        return {"starttls": 587, "tls": 465}.get(self.smtp_tls, 25)


@dataclass(frozen=True)
class SweeperSection:
    interval: int = 0  # seconds between sweeps inside serve; 0 (written "") = off
    forward_verify: str = "size"  # "size" | "sha256" (read the vendor's copy back)
    forward_timeout: int = 30  # seconds to connect or wait on the vendor
    retry_after: int = 300  # seconds before a failed forward is tried again, doubled ...
    retry_max: int = 21600  # ... up to this


@dataclass(frozen=True)
class MetricsSection:
    listen: Listen = Listen()  # the HTTP endpoint (GET /metrics); off by default
    textfile: str = ""  # a file for node_exporter's textfile collector; "" = off
    allow_remote: bool = False  # listen may name a non-loopback address only when true


@dataclass(frozen=True)
class AuditSection:
    checkpoint_every: int = 1000  # records between two signed checkpoints
    checkpoint_interval: int = 300  # seconds a record may wait for its checkpoint; 0 = off
    tsa_url: str = ""  # an RFC 3161 time-stamping authority (http/https); "" = off
    tsa_ca_file: str = ""  # its CA certificate(s), PEM: serve checks each token it gets
    timestamp_interval: int = 3600  # seconds between two time-stamps of the signed head
    head_recipients: tuple[str, ...] = ()  # mailed the signed head each month ([alerts] SMTP)


@dataclass(frozen=True)
class ReportsSection:
    monthly: bool = True  # each sweep writes last month's reports into log/reports/
    lang: str = "fr"  # "fr" | "en"


@dataclass(frozen=True)
class Config:
    """A whole instance's configuration, with its folder layout."""

    root: Path
    file: Path
    server: ServerSection = field(default_factory=ServerSection)
    sftp: SftpSection = field(default_factory=SftpSection)
    ftps: FtpsSection = field(default_factory=FtpsSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    vendor: VendorSection = field(default_factory=VendorSection)
    sweeper: SweeperSection = field(default_factory=SweeperSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    audit: AuditSection = field(default_factory=AuditSection)
    alerts: AlertsSection = field(default_factory=AlertsSection)
    reports: ReportsSection = field(default_factory=ReportsSection)

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def policies_dir(self) -> Path:
        return self.root / "policies"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    def resolve(self, value: str) -> Path:
        """A path from the file, made absolute against the instance folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path


TEMPLATE = """\
# intake instance configuration. Relative paths are relative to this file's folder.
# Every key is optional; the values below are the defaults.

[server]
hostname = "localhost"            # the host name in the self-signed TLS certificate,
                                  # and the address printed on members' connection cards
public_sftp_port = 0              # the ports members connect to when the service is
public_ftps_port = 0              # published behind NAT on other ports (0: the listen port)
organisation = ""                 # who runs the service, e.g. "Agence technique départementale"
contact = ""                      # e.g. "04 70 00 00 00 - assistance@example.fr"
lang = "fr"                       # the language of every reply members read: "fr" or "en"
# workers = 2                     # processes serving sessions (default: one per core);
                                  # 1 serves everything from one process
# banner = "..."                  # shown before login (SSH banner, FTPS 220 welcome); lines
                                  # split by "\\n". Default: a French text saying who runs
                                  # the service and that every access is traced.

[sftp]
listen = "127.0.0.1:2222"         # "" turns SFTP off; "0.0.0.0:22" to serve the network
login_timeout = 30                # seconds from connection to successful login
max_prelogin_bytes = 262144       # bytes a client may send before it has logged in
idle_timeout = 900                # seconds without a request before a session is closed

[ftps]
listen = "127.0.0.1:2121"         # explicit FTPS (AUTH TLS); "" turns FTPS off
passive_ports = "60000-60099"
masquerade_address = ""           # the public address to announce in PASV behind NAT
require_session_reuse = true      # data connections must resume the control TLS session
login_timeout = 30
idle_timeout = 900

[limits]
max_connections = 200             # sessions at once, both protocols together
max_connections_per_ip = 20
max_login_failures = 10           # failures from one address within ban_window (a wrong
                                  # password 1, an unknown account 2, a connection that
                                  # tried nothing 0.1) ...
ban_window = 600                  # ... (seconds) block that address ...
first_ban_time = 60               # ... for this many seconds the first time, doubled
ban_time = 600                    # at each further block up to this (seconds)
max_concurrent_hashes = 2         # password checks computed at once (each costs 16 MiB)
max_open_handles = 64             # files and folders one session may hold open at once
max_account_open_files = 256      # files one account may hold open over all its sessions
max_file_size = "64 GiB"          # one uploaded file; a size in bytes or "N KiB|MiB|GiB|TiB"
account_quota = ""                # bytes one account's area may hold, e.g. "500 GiB"; "" = off
max_startups = "10:30:100"        # unauthenticated connections: start:rate:full (see README)
max_startups_per_network = 10     # unauthenticated connections from one network at once
ipv4_network_prefix = 24          # one "network" for the rules above and below: an IPv4 /24 ...
ipv6_network_prefix = 64          # ... and an IPv6 /64
max_network_failures = 30         # failures from 3 or more addresses of one network
                                  # within ban_window block the network
prelogin_wait = 10                # seconds a connection over max_startups waits for a slot
trusted_networks = []             # never blocked, e.g. ["192.0.2.0/24"] (the agency's own)
account_attack_failures = 20      # wrong passwords at one account within ban_window, from
account_attack_delay = 2          # anywhere: audited account.attacked, each try waits 2 s
min_free_space = "5% or 2 GiB"    # uploads are refused below this free space on data/
                                  # (the smaller of the two; "10%", "500 MiB"; "0" = off)

[vendor]                          # the vendor's SFTP server, for forwarding
host = ""                         # empty: forwarding is off, outbox files wait
port = 22
user = ""
key = ""                          # private key file
known_hosts = ""                  # OpenSSH known_hosts file pinning the vendor's host key
remote_dir = "/"
password_file = ""                # the vendor's password (file mode 0600), when it issues
                                  # a login and password; "${CREDENTIALS_DIRECTORY}/NAME"
                                  # reads a systemd credential (LoadCredential=)

[sweeper]                         # retention policies (policies/*.toml) and forwarding
interval = ""                     # e.g. "15 minutes": serve sweeps that often; "" = off
                                  # (the systemd timer intake-sweep.timer runs it nightly)
forward_verify = "size"           # "size", or "sha256" to read the vendor's copy back
forward_timeout = 30              # seconds to connect to or wait on the vendor
retry_after = "5 minutes"         # a failed forward waits this long before it is retried,
retry_max = "6 hours"             # doubled at each failure up to this

[metrics]                         # Prometheus text format (intake status needs neither)
listen = ""                       # e.g. "127.0.0.1:9464": serve answers GET /metrics there
textfile = ""                     # e.g. "/var/lib/prometheus/node-exporter/intake.prom":
                                  # serve rewrites it every 15 s (node_exporter textfile)
allow_remote = false              # listen refuses a non-loopback address unless true

[audit]                           # the hash-chained audit log (log/) and its signed checkpoints
checkpoint_every = 1000           # a signed checkpoint after this many records ...
checkpoint_interval = "5 minutes" # ... or once a record waited this long ("" = only by count)
tsa_url = ""                      # an RFC 3161 time-stamping authority, e.g. a qualified
                                  # eIDAS one: serve has the signed head time-stamped
tsa_ca_file = ""                  # its CA certificate(s), PEM ("" = tokens not checked)
timestamp_interval = "1 hour"     # how often the head is time-stamped
head_recipients = []              # e.g. ["dpo@agence.example.fr"]: the signed head is
                                  # mailed each month (through [alerts]' SMTP settings)
[alerts]                          # e-mails to the on-call address; off while smtp_host
smtp_host = ""                    # and command are both empty
smtp_port = 0                     # 0: 587 for starttls, 465 for tls, 25 for none
smtp_tls = "starttls"             # "starttls", "tls" (implicit), "none" (loopback relay only)
smtp_user = ""                    # "" = no authentication
smtp_password_file = ""           # file mode 0600, or "${CREDENTIALS_DIRECTORY}/NAME"
smtp_ca_file = ""                 # CA certificates for the server ("" = the system's)
sender = ""                       # "" = intake@<server.hostname>
recipients = []                   # e.g. ["astreinte@agence.example.fr"]
command = ""                      # a program given each alert's JSON on stdin (exit 0 = done)
throttle = "15 minutes"           # at most one mail per kind of alert in this time
retry = "1 minute"                # an undelivered alert is tried again after this
forward_failing = "1 hour"        # alert when a forward has been failing this long
digest = ""                       # "08:00" (UTC) or "08:00 Europe/Paris": a daily summary

[reports]                         # the auditor's reports (intake report)
monthly = true                    # each sweep writes last month's report per member into
                                  # log/reports/YYYY-MM/ (the auditor's /audit/reports/)
lang = "fr"                       # "fr" or "en"
"""


def parse_listen(text: str, file: str, key: str) -> Listen:
    """``"host:port"``, ``"[v6]:port"`` or ``""`` (off); port 0 asks for a free port."""
    text = text.strip()
    if not text:
        return Listen()
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(file, key, f'expected "host:port" or "", got {text!r}')
    return Listen(host, int(port_text))


def parse_startups(text: str, file: str, key: str) -> tuple[int, int, int]:
    """OpenSSH's MaxStartups: ``"start:rate:full"``, or ``"N"`` (no early drop below N)."""
    parts = text.split(":")
    if len(parts) == 1 and parts[0].strip().isdigit():
        full = int(parts[0])
        parts = [str(full), "100", str(full)]
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(file, key, f'expected "start:rate:full" like "10:30:100", got {text!r}')
    start, rate, full = (int(p) for p in parts)
    if not (1 <= start <= full and 1 <= rate <= 100):
        raise ConfigError(file, key, "expected 1 <= start <= full and a rate of 1-100 (%)")
    return start, rate, full


def parse_network(value: object, file: str, key: str) -> str:
    """An address or a network (``192.0.2.0/24``, ``2001:db8::/48``), as its network text."""
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise ConfigError(file, key, f"expected an address or a network, got {value!r}") from None


_PREFIX_BITS = {"ipv4_network_prefix": 32, "ipv6_network_prefix": 128}


def parse_port_range(text: str, file: str, key: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    if not (sep and low.strip().isdigit() and high.strip().isdigit()):
        raise ConfigError(file, key, f'expected "LOW-HIGH", got {text!r}')
    lo, hi = int(low), int(high)
    if not 1024 <= lo <= hi <= 65535:
        raise ConfigError(file, key, "expected 1024 <= LOW <= HIGH <= 65535")
    return lo, hi


_SECTIONS: dict[str, type] = {
    "server": ServerSection,
    "sftp": SftpSection,
    "ftps": FtpsSection,
    "limits": LimitsSection,
    "vendor": VendorSection,
    "sweeper": SweeperSection,
    "metrics": MetricsSection,
    "audit": AuditSection,
    "alerts": AlertsSection,
    "reports": ReportsSection,
}
_SIZE_KEYS = frozenset({"limits.max_file_size", "limits.account_quota"})
_SIZE_UNITS = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": GIB, "tib": 1024**4}
_MAY_BE_OFF = frozenset({"limits.account_quota"})


def parse_size(value: object, file: str, key: str) -> int:
    """A byte count: a whole number, ``"N KiB|MiB|GiB|TiB"`` (or ``B``); ``""`` is 0 (off)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        words = value.split()
        if not words:
            number = 0
        elif (
            len(words) <= 2
            and words[0].isdigit()
            and (len(words) == 1 or words[1].lower() in _SIZE_UNITS)
        ):
            number = int(words[0]) * (_SIZE_UNITS[words[1].lower()] if len(words) == 2 else 1)
        else:
            raise ConfigError(file, key, f'expected a size like "64 GiB", got {value!r}')
    else:
        raise ConfigError(file, key, 'expected a size like "64 GiB" or a number of bytes')
    if number < 0 or (number == 0 and key not in _MAY_BE_OFF):
        raise ConfigError(file, key, "expected a positive size")
    return number


_INTERVAL_KEYS = frozenset(
    {
        "sweeper.interval",
        "sweeper.retry_after",
        "sweeper.retry_max",
        "alerts.throttle",
        "alerts.retry",
        "alerts.forward_failing",
        "audit.checkpoint_interval",
        "audit.timestamp_interval",
    }
)
_ZERO_INTERVALS = frozenset({"alerts.throttle", "alerts.forward_failing"})  # "0 minutes" ok
_INTERVAL_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_CHOICES = {
    "sweeper.forward_verify": ("size", "sha256"),
    "alerts.smtp_tls": ("starttls", "tls", "none"),
    "reports.lang": ("fr", "en"),
    "server.lang": ("fr", "en"),
}


def parse_interval(text: str, file: str, key: str) -> int:
    """``"15 minutes"`` → 900 (seconds, also hours, days, seconds); ``""`` → 0 (off)."""
    words = text.split()
    if not words or (key in _ZERO_INTERVALS and words == ["0"]):
        return 0
    unit = words[-1].lower().removesuffix("s") if len(words) == 2 else ""
    if len(words) != 2 or not words[0].isdigit() or unit not in _INTERVAL_UNITS:
        raise ConfigError(file, key, f'expected "N seconds|minutes|hours|days" or "", got {text!r}')
    seconds = int(words[0]) * _INTERVAL_UNITS[unit]
    if seconds <= 0 and key not in _ZERO_INTERVALS:
        raise ConfigError(file, key, 'expected a positive interval (or "" for off)')
    return seconds


def _convert(name: str, default: Any, value: Any, file: str, key: str) -> Any:
    if key in _SIZE_KEYS:
        return parse_size(value, file, key)
    if key in _INTERVAL_KEYS:
        if not isinstance(value, str):
            raise ConfigError(file, key, 'expected a string like "15 minutes"')
        return parse_interval(value, file, key)
    if key in _CHOICES and value not in _CHOICES[key]:
        raise ConfigError(file, key, f"expected one of {', '.join(_CHOICES[key])}")
    if isinstance(default, FreeSpace):
        if not isinstance(value, str):
            raise ConfigError(file, key, 'expected a string like "5% or 2 GiB"')
        return parse_free_space(value, file, key)
    if key in ("alerts.recipients", "audit.head_recipients"):
        if not isinstance(value, list):
            raise ConfigError(file, key, 'expected a list like ["astreinte@example.fr"]')
        return tuple(parse_address(v, file, key) for v in value)
    if (
        key == "audit.tsa_url"
        and value != ""
        and (not isinstance(value, str) or not value.startswith(("http://", "https://")))
    ):
        raise ConfigError(
            file, key, f'expected an http:// or https:// URL (or "" for off), got {value!r}'
        )
    if key == "limits.trusted_networks":
        if not isinstance(value, list):
            raise ConfigError(file, key, 'expected a list like ["192.0.2.0/24", "2001:db8::1"]')
        return tuple(parse_network(v, file, key) for v in value)
    if key == "alerts.sender" and value != "":
        return parse_address(value, file, key)
    if key == "server.workers":
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_WORKERS:
            raise ConfigError(file, key, f"expected a number of processes (1-{MAX_WORKERS})")
        return value
    if key == "alerts.smtp_port":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
            raise ConfigError(file, key, "expected a port number (1-65535, or 0)")
        return value
    if key == "alerts.digest":
        try:
            parse_digest_time(str(value))
        except ValueError:
            raise ConfigError(
                file, key, f'expected "HH:MM" or "HH:MM Area/City" or "", got {value!r}'
            ) from None
    if isinstance(default, Listen):
        if not isinstance(value, str):
            raise ConfigError(file, key, "expected a string")
        return parse_listen(value, file, key)
    if name == "passive_ports":
        if not isinstance(value, str):
            raise ConfigError(file, key, 'expected a string like "60000-60099"')
        return parse_port_range(value, file, key)
    if name == "max_startups":
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ConfigError(file, key, 'expected a string like "10:30:100"')
        return parse_startups(value, file, key)
    if name in _PREFIX_BITS and isinstance(value, int) and not 1 <= value <= _PREFIX_BITS[name]:
        raise ConfigError(file, key, f"expected a prefix length of 1-{_PREFIX_BITS[name]}")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(file, key, "expected true or false")
        return value
    if isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(file, key, "expected a whole number")
        if value < 0 or (value == 0 and not name.endswith("port")):
            raise ConfigError(file, key, "expected a positive number")
        if name.endswith("port") and value > 65535:
            raise ConfigError(file, key, "expected a port number (1-65535)")
        return value
    if not isinstance(value, str):
        raise ConfigError(file, key, "expected a string")
    return value


def parse(text: str, file: Path) -> Config:
    """Parse the text of ``file`` (already read) into a ``Config``."""
    name = str(file)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(name, None, f"not valid TOML ({exc})") from None
    sections: dict[str, Any] = {}
    for section_name, body in raw.items():
        if section_name not in _SECTIONS:
            raise ConfigError(name, section_name, "unknown section")
        if not isinstance(body, dict):
            raise ConfigError(name, section_name, "expected a [section]")
        cls = _SECTIONS[section_name]
        defaults = cls()
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in body.items():
            dotted = f"{section_name}.{key}"
            if key not in known:
                raise ConfigError(name, dotted, "unknown key")
            values[key] = _convert(key, getattr(defaults, key), value, name, dotted)
        sections[section_name] = cls(**values)
    _check_metrics(sections.get("metrics", MetricsSection()), name)
    alerts: AlertsSection = sections.get("alerts", AlertsSection())
    if alerts.smtp_host and not alerts.recipients:
        raise ConfigError(name, "alerts.recipients", "needed when alerts.smtp_host is set")
    audit: AuditSection = sections.get("audit", AuditSection())
    if audit.head_recipients and not alerts.smtp_host:
        raise ConfigError(
            name, "audit.head_recipients", "needs [alerts] smtp_host (the head goes by mail)"
        )
    if audit.tsa_url and audit.timestamp_interval == 0:
        raise ConfigError(name, "audit.timestamp_interval", "needed when audit.tsa_url is set")
    if alerts.smtp_tls == "none" and alerts.smtp_host and not is_loopback(alerts.smtp_host):
        raise ConfigError(
            name,
            "alerts.smtp_tls",
            f'"none" sends mail in clear: only to a loopback relay, not {alerts.smtp_host!r}',
        )
    return Config(root=file.resolve().parent, file=file.resolve(), **sections)


def _check_metrics(metrics: MetricsSection, file: str) -> None:
    """The metrics endpoint stays on this host unless the operator says otherwise."""
    if metrics.listen.enabled and not metrics.allow_remote and not is_loopback(metrics.listen.host):
        raise ConfigError(
            file,
            "metrics.listen",
            f"{metrics.listen} is not a loopback address; metrics tell anyone who can read"
            " them about your members' activity: use 127.0.0.1 (or set"
            " metrics.allow_remote = true and firewall it)",
        )


def load(file: Path) -> Config:
    """Read and parse one config file; an unreadable file is a ``ConfigError``."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(file), None, f"cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(str(file), None, "not UTF-8 text") from None
    return parse(text, file)
