"""Make sure NATS (with JetStream), PostgreSQL and Redis answer where the engine will look.

Run with the project's venv, as ``make services`` does:
``.venv/bin/python scripts/ensure_services.py [--check] [--service KIND] ...``.

The URLs are the ones the engine itself will use: :func:`engine.config.load_config` on
``--config`` / ``$INGEST_CONFIG`` / ``./config.toml``, with the ``INGEST_*`` environment overrides
(``INGEST_NATS__URL``, ``INGEST_POSTGRES__DSN``, ``INGEST_REDIS__URL``). A disabled store
(``postgres.enabled = false``) is skipped.

For each service the script loops *probe -> decide -> act* until the service answers or nothing is
left to try. Probes are real client round trips (NATS connect + JetStream account info,
PostgreSQL login to the DSN's database, Redis PING). :func:`decide` is pure: given the endpoint,
the probe and the actions already tried it returns the next action, each action at most once:

* ``install`` - the server is not installed: ``apt-get update`` (once) + ``apt-get install``;
* ``start`` - start a local server bound to the URL's loopback address and port, then wait
  (bounded) until it answers;
* ``create`` - PostgreSQL answers but the DSN's role or database does not exist: create them
  (as the cluster owner, over the local socket);
* ``trust`` - only for a PostgreSQL cluster installed from Debian by this script (this run, or
  an earlier one whose section is in its ``pg_hba.conf``), whose stock ``pg_hba.conf`` wants a
  password the DSN does not carry: let the DSN's role in from loopback without a password (the
  usual local-development set-up, marked with a comment), then reload.

Only loopback URLs (``127.0.0.0/8``, ``::1``, ``localhost``, a Unix socket) are ever acted on; a
remote URL that does not answer is reported, naming the URL with its credentials redacted. A
server that answers is never stopped, restarted or reconfigured. Root is needed to install or
start servers: as another user the script uses ``sudo`` when present, else prints the command to
run. ``--check`` only probes and says what it would do. Exit codes: 0 all services answer,
1 at least one does not, 2 bad configuration or arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import ipaddress
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from engine.config import Config, load_config, redact_url
from engine.errors import ConfigError

Kind = Literal["nats", "postgres", "redis"]
Status = Literal["ok", "down", "no_role", "no_database", "auth", "broken"]
Action = Literal["done", "install", "start", "create", "trust", "fail"]

KINDS: Final[tuple[Kind, ...]] = ("nats", "postgres", "redis")
ENV_NAMES: Final[dict[Kind, str]] = {
    "nats": "INGEST_NATS__URL",
    "postgres": "INGEST_POSTGRES__DSN",
    "redis": "INGEST_REDIS__URL",
}
DEBIAN_PACKAGES: Final[dict[Kind, str]] = {
    "nats": "nats-server",
    "postgres": "postgresql",
    "redis": "redis-server",
}
DEFAULT_PORTS: Final[dict[Kind, int]] = {"nats": 4222, "postgres": 5432, "redis": 6379}
PROBE_TIMEOUT_S: Final = 3.0
POLL_S: Final = 0.25
HBA_MARK: Final = "# ingestion-agent local development (scripts/ensure_services.py)"


# --------------------------------------------------------------------------- endpoints


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One service URL, parsed. ``url`` is secret: show :attr:`shown` instead."""

    kind: Kind
    url: str
    host: str
    """Host name or address; ``""`` or an absolute path for a Unix socket."""
    port: int
    user: str
    password: str
    database: str
    single_host: bool = True

    @property
    def shown(self) -> str:
        return redact_url(self.url)

    @property
    def local(self) -> bool:
        """True when the server would run on this machine (loopback or Unix socket)."""
        return self.single_host and is_local_host(self.host)

    @property
    def socket(self) -> bool:
        return self.host == "" or self.host.startswith("/")


def is_local_host(host: str) -> bool:
    if host == "" or host.startswith("/") or host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_endpoint(kind: Kind, url: str) -> Endpoint:
    """Parse a service URL the way its client library will; raises ``ValueError`` if invalid."""
    parts = urlsplit(url)
    netloc_hosts = parts.netloc.rpartition("@")[2]
    if "," in netloc_hosts or ("," in url and kind == "nats"):
        # several servers: the client tries them all; this script only probes
        return Endpoint(kind, url, netloc_hosts, 0, "", "", "", single_host=False)
    port = parts.port or DEFAULT_PORTS[kind]
    user = unquote(parts.username or "")
    password = unquote(parts.password or "")
    host = parts.hostname or ""
    database = ""
    if kind == "postgres":
        if parts.scheme not in ("postgres", "postgresql"):
            raise ValueError("a PostgreSQL DSN starts with postgresql:// or postgres://")
        query = parse_qs(parts.query)
        host = query.get("host", [host])[0]
        if "port" in query:
            port = int(query["port"][0])
        user = query.get("user", [user])[0] or _os_user()
        database = unquote(parts.path.lstrip("/")) or query.get("dbname", [""])[0] or user
    elif kind == "redis":
        if parts.scheme == "unix":
            host, port = parts.path, 0
        elif parts.scheme not in ("redis", "rediss"):
            raise ValueError("a Redis URL starts with redis://, rediss:// or unix://")
        database = parts.path.lstrip("/") or "0"
    elif parts.scheme not in ("nats", "tls", "ws", "wss"):
        raise ValueError("a NATS URL starts with nats:// (or tls://, ws://, wss://)")
    return Endpoint(kind, url, host, port, user, password, database)


def _os_user() -> str:
    import getpass

    return getpass.getuser()


# --------------------------------------------------------------------------- probes


@dataclass(frozen=True, slots=True)
class Probe:
    status: Status
    detail: str
    """Server version when ``ok``, else why not (never credentials)."""


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text and text[0] else type(exc).__name__


async def probe_nats(ep: Endpoint, limit_s: float) -> Probe:
    import nats
    import nats.errors

    async def quiet(exc: Exception) -> None:
        return None

    try:
        nc = await asyncio.wait_for(
            nats.connect(
                ep.url,
                connect_timeout=limit_s,
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.1,
                error_cb=quiet,
            ),
            limit_s * 3,
        )
    except (nats.errors.NoServersError, OSError, TimeoutError) as exc:
        return Probe("down", _why(exc))
    except nats.errors.Error as exc:
        low = str(exc).lower()
        return Probe("auth" if "authoriz" in low else "broken", _why(exc))
    try:
        v = nc.connected_server_version
        version = f"{v.major}.{v.minor}.{v.patch}"
        try:
            await nc.jetstream(timeout=limit_s).account_info()
        except Exception as exc:  # JetStream off: no responders / service unavailable
            return Probe(
                "broken",
                f"nats-server {version} answers but JetStream is not enabled ({_why(exc)}); "
                "it must run with -js (this script never restarts a running server)",
            )
        return Probe("ok", f"nats-server {version}, JetStream enabled")
    finally:
        await nc.close()


async def probe_postgres(ep: Endpoint, limit_s: float) -> Probe:
    import asyncpg

    try:
        conn = await asyncpg.connect(ep.url, timeout=limit_s)
    except asyncpg.InvalidCatalogNameError as exc:
        return Probe("no_database", _why(exc))
    except asyncpg.InvalidPasswordError as exc:
        return Probe("auth", _why(exc))
    except asyncpg.InvalidAuthorizationSpecificationError as exc:
        missing_role = "role" in str(exc) and "does not exist" in str(exc)
        return Probe("no_role" if missing_role else "auth", _why(exc))
    except asyncpg.CannotConnectNowError as exc:  # starting up / shutting down
        return Probe("down", _why(exc))
    except asyncpg.PostgresError as exc:
        return Probe("broken", _why(exc))
    except (OSError, TimeoutError) as exc:
        return Probe("down", _why(exc))
    try:
        version = conn.get_settings().server_version.split()[0]
        return Probe("ok", f"PostgreSQL {version}")
    finally:
        await conn.close(timeout=limit_s)


async def probe_redis(ep: Endpoint, limit_s: float) -> Probe:
    from redis import asyncio as aredis
    from redis import exceptions as rex

    client = aredis.from_url(ep.url, socket_connect_timeout=limit_s, socket_timeout=limit_s)
    try:
        await client.ping()
        try:
            info = await client.info("server")
            version = f"Redis {info.get('redis_version', '?')}"
        except rex.ResponseError:  # INFO not allowed by an ACL: PING was enough
            version = "Redis"
        return Probe("ok", version)
    except (rex.AuthenticationError, rex.AuthorizationError) as exc:
        return Probe("auth", _why(exc))
    except (rex.BusyLoadingError, rex.ConnectionError, rex.TimeoutError, OSError) as exc:
        return Probe("down", _why(exc))
    except rex.ResponseError as exc:
        return Probe("auth" if "NOAUTH" in str(exc) else "broken", _why(exc))
    finally:
        await client.aclose()


async def probe(ep: Endpoint, limit_s: float = PROBE_TIMEOUT_S) -> Probe:
    fn = {"nats": probe_nats, "postgres": probe_postgres, "redis": probe_redis}[ep.kind]
    try:
        result = await fn(ep, limit_s)
    except Exception as exc:  # a client library's surprise must not hide the other services
        result = Probe("broken", f"probe failed: {_why(exc)}")
    if ep.password and ep.password in result.detail:
        result = Probe(result.status, result.detail.replace(ep.password, "***"))
    return result


# --------------------------------------------------------------------------- decisions


def decide(
    ep: Endpoint,
    pr: Probe,
    *,
    installed: bool,
    tried: frozenset[Action],
    ours: bool = False,
) -> Action:
    """The next thing to do for ``ep`` after probe ``pr``; pure, each action at most once.

    ``installed``: the server software is on this machine; ``ours``: the local PostgreSQL
    cluster's pg_hba.conf already carries this script's loopback section (so it was installed
    by an earlier run, and relaxing it for one more role is what its owner asked for then).
    """
    if pr.status == "ok":
        return "done"
    if not ep.local:
        return "fail"
    if pr.status == "down":
        if ep.socket and ep.kind != "postgres":
            return "fail"  # we start NATS/Redis on TCP only
        if not installed and "install" not in tried:
            return "install"
        return "start" if installed and "start" not in tried else "fail"
    if pr.status in ("no_role", "no_database") and ep.kind == "postgres":
        return "create" if "create" not in tried else "fail"
    if pr.status == "auth" and ep.kind == "postgres" and ("install" in tried or ours):
        return "trust" if "trust" not in tried else "fail"
    return "fail"


def failure_message(ep: Endpoint, pr: Probe, tried: frozenset[Action], log_hint: str) -> str:
    """One sentence saying what is wrong and what to do; the URL is redacted."""
    env = ENV_NAMES[ep.kind]
    where = f"{ep.kind} at {ep.shown}"
    if pr.status == "down" and not ep.local:
        return (
            f"{where} does not answer ({pr.detail}); it is not on this machine, so start it "
            f"there or point {env} at a server that runs"
        )
    if pr.status == "down" and "start" in tried:
        return f"{where} still does not answer after starting it ({pr.detail}); {log_hint}"
    if pr.status == "down":
        return f"{where} does not answer ({pr.detail}); {log_hint or 'start it by hand'}"
    if pr.status == "auth":
        hint = (
            "; for a local cluster allow it in pg_hba.conf, e.g. "
            f"'host {ep.database} {ep.user} 127.0.0.1/32 trust'"
            if ep.kind == "postgres" and ep.local
            else ""
        )
        return f"{where} rejected the credentials ({pr.detail}); fix them in {env}{hint}"
    if pr.status in ("no_role", "no_database"):
        return f"{where}: {pr.detail}; create the role/database or fix {env}"
    return f"{where}: {pr.detail}"


# --------------------------------------------------------------------------- actions


class StepError(Exception):
    """An action could not be carried out; the message says what to do."""


class Runner:
    """Runs commands, as root when needed (directly, via sudo, or by asking the user)."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.is_root = os.geteuid() == 0
        self.sudo = shutil.which("sudo")
        self.apt_updated = False

    def root_argv(self, argv: Sequence[str], user: str | None = None) -> list[str]:
        if self.is_root:
            return ["runuser", "-u", user, "--", *argv] if user else list(argv)
        if self.sudo is None:
            raise StepError(
                "this needs root and sudo is not installed; run as root: " + shlex.join(argv)
            )
        prefix = [self.sudo] + ([] if sys.stdin.isatty() else ["-n"])
        return prefix + (["-u", user] if user else []) + list(argv)

    def run(
        self,
        argv: Sequence[str],
        *,
        root: bool = True,
        user: str | None = None,
        stdin: str | None = None,
        timeout: float = 120.0,
        quiet: bool = False,
    ) -> str:
        cmd = self.root_argv(argv, user) if root else list(argv)
        if not quiet:
            self.echo(f"  $ {shlex.join(cmd)}")
        try:
            proc = subprocess.run(
                cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StepError(f"{shlex.join(cmd)} failed: {_why(exc)}") from exc
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise StepError(f"{shlex.join(cmd)} exited with {proc.returncode}: " + " | ".join(tail))
        return proc.stdout

    def apt_install(self, package: str) -> None:
        if shutil.which("apt-get") is None:
            raise StepError(f"{package} is not installed and apt-get is not available; install it")
        env = ["env", "DEBIAN_FRONTEND=noninteractive"]
        if not self.apt_updated:
            self.apt_updated = True
            try:
                self.run([*env, "apt-get", "update", "-qq"], timeout=600)
            except StepError as exc:  # a stale index may still do: let the install decide
                self.echo(f"  warning: {exc}; trying with the package lists at hand")
        self.run(
            [*env, "apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
            timeout=900,
        )

    def write_file(self, path: str, content: str, mode: str = "600", owner: str = "") -> None:
        """Write ``content`` to ``path`` as root (through stdin, so secrets stay off argv)."""
        own = ["-o", owner, "-g", owner] if owner else []
        self.run(["install", "-m", mode, *own, "/dev/stdin", path], stdin=content)


def find_binary(name: str) -> str | None:
    for cand in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def is_installed(kind: Kind) -> bool:
    if kind == "postgres":
        servers = glob.glob("/usr/lib/postgresql/*/bin/postgres")
        return bool(find_binary("pg_ctlcluster") and servers)
    return find_binary(DEBIAN_PACKAGES[kind]) is not None


def bind_addresses(host: str) -> list[str]:
    """Where a local server for ``host`` listens: both loopbacks for localhost/127.0.0.1."""
    if host in ("", "localhost", "localhost.", "127.0.0.1"):
        return ["127.0.0.1", "-::1"]
    return [host.strip("[]")]


@dataclass(frozen=True, slots=True)
class Cluster:
    version: str
    name: str
    port: int
    online: bool
    owner: str
    log: str


def pg_clusters(runner: Runner) -> list[Cluster]:
    tool = find_binary("pg_lsclusters")
    if tool is None:
        return []
    out = runner.run([tool, "--no-header"], root=False, quiet=True)
    clusters = []
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 6 and f[2].isdigit():
            online = f[3].startswith("online")
            clusters.append(Cluster(f[0], f[1], int(f[2]), online, f[4], f[-1]))
    return clusters


def pg_cluster_for(runner: Runner, ep: Endpoint) -> Cluster:
    clusters = pg_clusters(runner)
    for c in clusters:
        if c.port == ep.port:
            return c
    known = ", ".join(f"{c.version}/{c.name} on port {c.port}" for c in clusters) or "none"
    raise StepError(
        f"no local PostgreSQL cluster is configured on port {ep.port} (clusters: {known}); "
        f"create one (pg_createcluster) or point {ENV_NAMES['postgres']} at a running server"
    )


def start_postgres(runner: Runner, ep: Endpoint) -> str:
    c = pg_cluster_for(runner, ep)
    if c.online:
        raise StepError(
            f"cluster {c.version}/{c.name} runs on port {c.port} but does not answer at "
            f"{ep.shown}: check its listen_addresses (see {c.log})"
        )
    runner.run(["pg_ctlcluster", "--skip-systemctl-redirect", c.version, c.name, "start"])
    return f"see {c.log}"


def start_redis(runner: Runner, ep: Endpoint) -> str:
    suffix = "" if ep.port == 6379 else f"-{ep.port}"
    log = f"/var/log/redis/ci{suffix}.log"
    for d in ("/var/lib/redis", "/var/log/redis"):
        if not os.path.isdir(d):
            runner.run(["mkdir", "-p", d])
    config = _redis_auth_config(ep.user, ep.password)  # via stdin: never on a command line
    argv = ["redis-server", "-"] if config else ["redis-server"]
    argv += ["--daemonize", "yes", "--bind", *bind_addresses(ep.host), "--port", str(ep.port)]
    argv += ["--save", "", "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", log]
    runner.run(argv, stdin=config)
    return f"see {log}"


def _redis_auth_config(user: str, password: str) -> str:
    if not password:
        return ""
    quoted = '"' + password.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if user in ("", "default"):
        return f"requirepass {quoted}\n"
    secret = '">' + password.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"user {user} on {secret} ~* &* +@all\nuser default off\n"


def start_nats(runner: Runner, ep: Endpoint) -> str:
    binary = find_binary("nats-server") or "/usr/sbin/nats-server"
    default = ep.port == 4222
    store = "/var/lib/nats-server" if default else f"/var/lib/nats-server-{ep.port}"
    log = "/var/log/nats-server.log" if default else f"/var/log/nats-server-{ep.port}.log"
    pidfile = f"/run/nats-server-{ep.port}.pid"
    runner.run(["mkdir", "-p", store])
    args = ["-a", bind_addresses(ep.host)[0], "-p", str(ep.port), "-js", "-sd", store, "-l", log]
    if ep.password or ep.user:
        conf = f"{store}/auth.conf"
        runner.write_file(conf, _nats_auth_config(ep.user, ep.password))
        args += ["-c", conf]
    runner.run(
        [
            *("start-stop-daemon", "--start", "--oknodo", "--background", "--make-pidfile"),
            *("--pidfile", pidfile, "--exec", binary, "--", *args),
        ]
    )
    return f"see {log}"


def _nats_auth_config(user: str, password: str) -> str:
    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    if user and not password:  # nats://TOKEN@host
        return f"authorization {{ token: {q(user)} }}\n"
    return f"authorization {{ user: {q(user)}, password: {q(password)} }}\n"


PG_CREATE_SQL: Final = """\
SELECT format('CREATE ROLE %I LOGIN', :'u')
       || CASE WHEN :'pw' = '' THEN '' ELSE format(' PASSWORD %L', :'pw') END
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'u')\\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'u')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\\gexec
"""


def create_pg_role_db(runner: Runner, ep: Endpoint) -> None:
    """Create the DSN's role (with its password, if any) and database, as the cluster owner.

    Names and the password travel as psql variables, quoted by psql itself (``:'u'``); the
    password goes through stdin so it never appears on a command line.
    """
    c = pg_cluster_for(runner, ep)
    runner.run(
        [
            *("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-p", str(c.port), "-d", "postgres"),
            *("-v", f"u={ep.user}", "-v", f"db={ep.database}", "-f", "-"),
        ],
        user=c.owner,
        stdin=f"\\set pw {_psql_quote(ep.password)}\n{PG_CREATE_SQL}",
    )


def _psql_quote(s: str) -> str:
    """A psql meta-command argument in single quotes (backslash escapes, '' for ')."""
    return "'" + s.replace("\\", "\\\\").replace("'", "''") + "'"


def hba_path(c: Cluster) -> str:
    return f"/etc/postgresql/{c.version}/{c.name}/pg_hba.conf"


def hba_is_ours(ep: Endpoint) -> bool:
    """Whether the local cluster for ``ep`` has this script's pg_hba.conf section (root only)."""
    if ep.kind != "postgres" or not ep.local:
        return False
    for path in glob.glob("/etc/postgresql/*/*/pg_hba.conf"):
        try:
            if HBA_MARK in Path(path).read_text(encoding="utf-8"):
                return True
        except OSError:  # not readable without root: then it is not ours to change either
            continue
    return False


def with_trust_lines(hba: str, user: str) -> str:
    """``hba`` with loopback ``trust`` for ``user`` (all databases) in this script's section.

    pg_hba.conf is first-match, so the section goes first; lines already there are kept once.
    """
    wanted = [f"host    all    {user}    {net}    trust" for net in ("127.0.0.1/32", "::1/128")]
    lines = hba.splitlines()
    if HBA_MARK not in lines:
        lines = [HBA_MARK, *lines]
    at = lines.index(HBA_MARK) + 1
    missing = [w for w in wanted if w not in lines]
    return "\n".join(lines[:at] + missing + lines[at:]) + "\n"


def trust_loopback(runner: Runner, ep: Endpoint) -> None:
    """Let the DSN's role in from loopback without a password, then reload the cluster."""
    c = pg_cluster_for(runner, ep)
    hba = hba_path(c)
    try:
        current = Path(hba).read_text(encoding="utf-8")
    except OSError:
        current = runner.run(["cat", hba], quiet=True)
    updated = with_trust_lines(current, ep.user)
    if updated != current:
        runner.write_file(hba, updated, mode="640", owner=c.owner)
    runner.run(["pg_ctlcluster", "--skip-systemctl-redirect", c.version, c.name, "reload"])


STARTERS: Final[dict[Kind, Callable[[Runner, Endpoint], str]]] = {
    "nats": start_nats,
    "postgres": start_postgres,
    "redis": start_redis,
}


# --------------------------------------------------------------------------- driver


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    word: str
    detail: str


async def probe_while(ep: Endpoint, status: Status, wait_s: float) -> Probe:
    """Probe until the status is no longer ``status`` or ``wait_s`` seconds have passed."""
    deadline = time.monotonic() + wait_s
    pr = await probe(ep)
    while pr.status == status and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
        pr = await probe(ep)
    return pr


async def ensure(ep: Endpoint, runner: Runner, *, check: bool, start_timeout: float) -> Outcome:
    pr = await probe(ep)
    tried: set[Action] = set()
    log_hint = ""
    done_word = "ok"
    while True:
        action = decide(
            ep,
            pr,
            installed=is_installed(ep.kind),
            tried=frozenset(tried),
            ours=pr.status == "auth" and hba_is_ours(ep),
        )
        if action == "done":
            return Outcome(True, done_word, pr.detail)
        if action == "fail":
            return Outcome(False, "FAILED", failure_message(ep, pr, frozenset(tried), log_hint))
        if check:
            return Outcome(False, "FAILED", f"{pr.detail}; would {action} (without --check)")
        tried.add(action)
        try:
            if action == "install":
                runner.echo(f"{ep.kind}: installing {DEBIAN_PACKAGES[ep.kind]} from Debian")
                runner.apt_install(DEBIAN_PACKAGES[ep.kind])
            elif action == "start":
                runner.echo(f"{ep.kind}: starting a local server for {ep.shown}")
                log_hint = STARTERS[ep.kind](runner, ep)
                done_word = "started"
            elif action == "create":
                runner.echo(f"{ep.kind}: creating role {ep.user!r} / database {ep.database!r}")
                create_pg_role_db(runner, ep)
                done_word = "created" if done_word == "ok" else done_word
            else:
                runner.echo(
                    f"{ep.kind}: letting {ep.user!r} in from loopback (cluster set up here)"
                )
                trust_loopback(runner, ep)
        except StepError as exc:
            return Outcome(False, "FAILED", str(exc))
        if action == "start":
            pr = await probe_while(ep, "down", start_timeout)
        elif action == "trust":  # the reload is asynchronous
            pr = await probe_while(ep, "auth", 5.0)
        else:
            pr = await probe(ep)


def endpoints_for(config: Config, kinds: Sequence[Kind], extra_pg: Sequence[str]) -> list[Endpoint]:
    out: list[Endpoint] = []
    for kind in kinds:
        if kind == "nats":
            out.append(parse_endpoint("nats", config.nats.url.reveal()))
        elif kind == "postgres" and config.postgres.enabled:
            out.append(parse_endpoint("postgres", config.postgres.dsn.reveal()))
        elif kind == "redis" and config.redis.enabled:
            out.append(parse_endpoint("redis", config.redis.url.reveal()))
    if "postgres" in kinds:
        out += [parse_endpoint("postgres", dsn) for dsn in extra_pg]
    return out


def _config_path(arg: str | None) -> str | None:
    path = arg or os.environ.get("INGEST_CONFIG")
    if path:
        return path
    return "config.toml" if Path("config.toml").is_file() else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Make sure NATS (JetStream), PostgreSQL and Redis answer on the engine's URLs."
    )
    p.add_argument("--config", help="TOML config (default: $INGEST_CONFIG, else ./config.toml)")
    p.add_argument(
        "--service",
        action="append",
        choices=KINDS,
        help="only this service (repeatable; default: all the engine uses)",
    )
    p.add_argument(
        "--also-postgres",
        action="append",
        default=[],
        metavar="DSN",
        help="another PostgreSQL DSN to ensure (e.g. the tests' database)",
    )
    p.add_argument("--check", action="store_true", help="only probe; change nothing")
    p.add_argument(
        "--start-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for a started server to answer (default 60)",
    )
    return p


def _print(line: str) -> None:
    print(line, flush=True)


async def amain(args: argparse.Namespace) -> int:
    try:
        config = load_config(_config_path(args.config))
        kinds: list[Kind] = args.service or list(KINDS)
        endpoints = endpoints_for(config, kinds, args.also_postgres)
    except (ConfigError, ValueError) as exc:
        print(f"ensure-services: {exc}", file=sys.stderr)
        return 2
    runner = Runner(_print)
    failed = 0
    for ep in endpoints:
        out = await ensure(ep, runner, check=args.check, start_timeout=args.start_timeout)
        _print(f"{ep.kind:<8} {out.word:<7} {ep.shown}  ({out.detail})")
        failed += not out.ok
    for kind in kinds:
        if kind not in {ep.kind for ep in endpoints}:
            _print(f"{kind:<8} skipped (disabled in the configuration)")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
