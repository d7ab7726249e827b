"""The set-up tooling: scripts/ensure_services.py, scripts/setup-venv.sh, scripts/demo.sh, Makefile.

The decision logic of ensure_services is tested as pure functions. The actions run for real
against servers this test starts itself on spare loopback ports (Redis, NATS) or against the
shared PostgreSQL with a unique role/database, and everything is removed afterwards; the shared
servers on their standard ports are only probed. Tests that start servers need root (as in CI).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from testkit import delete_streams, free_port, load_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "ensure_services.py"
IS_ROOT = os.geteuid() == 0


def _load() -> ModuleType:
    return load_script(SCRIPT, "ensure_services")


es = _load()


def command_lines() -> list[str]:
    """Every process's command line (from /proc: no procps needed)."""
    out = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            raw = path.read_bytes()
        except OSError:  # exited meanwhile
            continue
        out.append(raw.replace(b"\0", b" ").decode(errors="replace").strip())
    return out


def clean_env(**extra: str) -> dict[str, str]:
    # a nested make must not join our jobserver, nor take the variables given to `make test`
    # (make exports them to the environment: PYTEST_WORKERS=3 would be the nested default)
    drop = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "PYTEST_WORKERS", "PYTEST_ARGS")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_") and k not in drop}
    env["INGEST_CONFIG"] = str(ROOT / "config.toml")
    env.update(extra)
    return env


def run_script(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


needs_root = pytest.mark.skipif(not IS_ROOT, reason="starts servers: needs root (as in CI)")


# --------------------------------------------------------------------------- pure logic


class TestParseEndpoint:
    def test_defaults_and_credentials(self) -> None:
        ep = es.parse_endpoint("postgres", "postgresql://u:p%40ss@127.0.0.1/db")
        assert (ep.host, ep.port, ep.user, ep.password, ep.database) == (
            "127.0.0.1",
            5432,
            "u",
            "p@ss",
            "db",
        )
        assert ep.local and "p@ss" not in ep.shown and "p%40ss" not in ep.shown

    def test_postgres_database_defaults_to_user_and_socket_host_is_local(self) -> None:
        ep = es.parse_endpoint("postgres", "postgresql://alice@/?host=/var/run/postgresql")
        assert ep.database == "alice" and ep.host == "/var/run/postgresql"
        assert ep.local and ep.socket

    def test_redis_and_nats(self) -> None:
        r = es.parse_endpoint("redis", "redis://:pw@[::1]:6380/2")
        assert (r.host, r.port, r.password, r.database, r.local) == ("::1", 6380, "pw", "2", True)
        n = es.parse_endpoint("nats", "nats://localhost")
        assert (n.port, n.local) == (4222, True)

    def test_several_servers_are_never_acted_on(self) -> None:
        ep = es.parse_endpoint("nats", "nats://127.0.0.1:4222,nats://127.0.0.1:4223")
        assert not ep.single_host and not ep.local

    def test_remote_hosts(self) -> None:
        for host in ("db.example.com", "10.0.0.5", "192.168.1.2", "[2001:db8::1]"):
            assert not es.parse_endpoint("redis", f"redis://{host}:6379/0").local, host
        for host in ("127.0.0.1", "127.1.2.3", "localhost", "[::1]"):
            assert es.parse_endpoint("redis", f"redis://{host}:6379/0").local, host

    def test_bad_scheme(self) -> None:
        with pytest.raises(ValueError, match="postgresql://"):
            es.parse_endpoint("postgres", "mysql://x@127.0.0.1/x")


class TestDecide:
    def ep(self, kind: str = "redis", host: str = "127.0.0.1") -> object:
        urls = {
            "redis": f"redis://{host}:6379/0",
            "nats": f"nats://{host}:4222",
            "postgres": f"postgresql://u@{host}:5432/d",
        }
        return es.parse_endpoint(kind, urls[kind])

    def decide(self, ep: object, status: str, installed: bool = True, tried: tuple = ()) -> str:
        action: str = es.decide(
            ep, es.Probe(status, "x"), installed=installed, tried=frozenset(tried)
        )
        return action

    def test_answering_service_is_left_alone(self) -> None:
        for kind in ("redis", "nats", "postgres"):
            assert self.decide(self.ep(kind), "ok") == "done"

    def test_remote_down_fails_without_acting(self) -> None:
        for status in ("down", "no_role", "auth", "broken"):
            assert self.decide(self.ep("postgres", "db.internal"), status) == "fail"

    def test_local_down_installs_then_starts_once(self) -> None:
        ep = self.ep("nats")
        assert self.decide(ep, "down", installed=False) == "install"
        assert self.decide(ep, "down", installed=False, tried=("install",)) == "fail"
        assert self.decide(ep, "down", installed=True, tried=("install",)) == "start"
        assert self.decide(ep, "down", tried=("start",)) == "fail"

    def test_missing_role_or_database_is_created_once(self) -> None:
        ep = self.ep("postgres")
        assert self.decide(ep, "no_role") == "create"
        assert self.decide(ep, "no_database") == "create"
        assert self.decide(ep, "no_database", tried=("create",)) == "fail"

    def test_auth_is_relaxed_only_on_a_cluster_installed_by_this_run(self) -> None:
        ep = self.ep("postgres")
        assert self.decide(ep, "auth") == "fail"
        assert self.decide(ep, "auth", tried=("install", "start")) == "trust"
        assert self.decide(ep, "auth", tried=("install", "trust")) == "fail"
        assert self.decide(self.ep("redis"), "auth", tried=("install",)) == "fail"
        ours = es.decide(
            self.ep("postgres"), es.Probe("auth", "x"), installed=True, tried=frozenset(), ours=True
        )
        assert ours == "trust"

    def test_running_nats_without_jetstream_is_not_restarted(self) -> None:
        assert self.decide(self.ep("nats"), "broken") == "fail"

    def test_redis_on_a_unix_socket_is_not_started(self) -> None:
        ep = es.parse_endpoint("redis", "unix:///run/redis/redis.sock")
        assert ep.local and self.decide(ep, "down") == "fail"

    def test_failure_messages_name_the_env_var_and_hide_secrets(self) -> None:
        ep = es.parse_endpoint("postgres", "postgresql://u:hunter2@db.internal:5432/d")
        msg = es.failure_message(ep, es.Probe("down", "refused"), frozenset(), "")
        assert "INGEST_POSTGRES__DSN" in msg and "db.internal" in msg
        assert "hunter2" not in msg and "not on this machine" in msg


class TestQuoting:
    def test_psql_quote(self) -> None:
        assert es._psql_quote("it's \\ x") == "'it''s \\\\ x'"

    def test_server_auth_configs_quote_secrets(self) -> None:
        assert es._redis_auth_config("", 'a"b') == 'requirepass "a\\"b"\n'
        assert es._redis_auth_config("", "") == ""
        assert 'user bob on ">a b"' in es._redis_auth_config("bob", "a b")
        assert es._nats_auth_config("al", 'p"w') == (
            'authorization { user: "al", password: "p\\"w" }\n'
        )
        assert "token" in es._nats_auth_config("tok", "")

    def test_bind_addresses(self) -> None:
        assert es.bind_addresses("localhost") == ["127.0.0.1", "-::1"]
        assert es.bind_addresses("::1") == ["::1"]
        assert es.bind_addresses("127.0.0.2") == ["127.0.0.2"]


# --------------------------------------------------------------------------- real services


@pytest.mark.integration
def test_check_reports_the_running_shared_services() -> None:
    out = run_script("--check")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    for kind in ("nats", "postgres", "redis"):
        assert any(line.split()[:2] == [kind, "ok"] for line in lines), out.stdout
    assert "JetStream enabled" in out.stdout


@pytest.mark.integration
def test_check_changes_nothing_and_never_prints_a_password() -> None:
    port = free_port()
    out = run_script(
        "--check", "--service", "redis", INGEST_REDIS__URL=f"redis://:s3cret@127.0.0.1:{port}/0"
    )
    assert out.returncode == 1
    assert "would start" in out.stdout or "would install" in out.stdout
    assert "s3cret" not in out.stdout + out.stderr
    assert f"redis://***@127.0.0.1:{port}/0" in out.stdout


@pytest.mark.integration
def test_disabled_store_is_skipped() -> None:
    out = run_script(
        "--check",
        "--service",
        "redis",
        INGEST_REDIS__ENABLED="false",
        INGEST_REDIS__URL="redis://127.0.0.1:1/0",
    )
    assert out.returncode == 0 and "skipped" in out.stdout


@pytest.mark.integration
def test_bad_configuration_exits_2() -> None:
    out = run_script("--check", INGEST_REDIS__TTL_S="zero")
    assert out.returncode == 2 and "INGEST_REDIS__TTL_S" in out.stderr


@pytest.fixture
def redis_port() -> Iterator[int]:
    port = free_port()
    yield port
    subprocess.run(
        ["redis-cli", "-p", str(port), "--no-auth-warning", "-a", "pw-test", "shutdown", "nosave"],
        capture_output=True,
        check=False,
        timeout=10,
    )
    Path(f"/var/log/redis/ci-{port}.log").unlink(missing_ok=True)


@pytest.mark.integration
@needs_root
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_starts_a_local_redis_with_the_urls_password_then_leaves_it_alone(redis_port: int) -> None:
    url = f"redis://:pw-test@127.0.0.1:{redis_port}/0"
    first = run_script("--service", "redis", INGEST_REDIS__URL=url)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "redis    started" in first.stdout and "pw-test" not in first.stdout
    second = run_script("--service", "redis", INGEST_REDIS__URL=url)
    assert second.returncode == 0 and "redis    ok" in second.stdout
    assert "$ redis-server" not in second.stdout
    # the password is enforced: without it the server refuses
    anon = run_script(
        "--check", "--service", "redis", INGEST_REDIS__URL=url.replace(":pw-test", "")
    )
    assert anon.returncode == 1 and "rejected the credentials" in anon.stdout


@pytest.fixture
def nats_port() -> Iterator[int]:
    port = free_port()
    yield port
    subprocess.run(
        [
            *("start-stop-daemon", "--stop", "--quiet", "--retry", "5", "--remove-pidfile"),
            *("--pidfile", f"/run/nats-server-{port}.pid"),
        ],
        capture_output=True,
        check=False,
        timeout=30,
    )
    shutil.rmtree(f"/var/lib/nats-server-{port}", ignore_errors=True)
    Path(f"/var/log/nats-server-{port}.log").unlink(missing_ok=True)


@pytest.mark.integration
@needs_root
@pytest.mark.skipif(es.find_binary("nats-server") is None, reason="nats-server not installed")
def test_starts_a_local_nats_with_jetstream(nats_port: int) -> None:
    url = f"nats://127.0.0.1:{nats_port}"
    out = run_script("--service", "nats", INGEST_NATS__URL=url)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "nats     started" in out.stdout and "JetStream enabled" in out.stdout
    again = run_script("--service", "nats", INGEST_NATS__URL=url)
    assert "nats     ok" in again.stdout and "start-stop-daemon" not in again.stdout


@pytest.fixture
def pg_names() -> Iterator[tuple[str, str]]:
    uid = uuid.uuid4().hex[:8]
    role, db = f"ia_setup_{uid}", f"ia_setup_db_{uid}"
    yield role, db
    for sql in (f'DROP DATABASE IF EXISTS "{db}"', f'DROP ROLE IF EXISTS "{role}"'):
        subprocess.run(
            ["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-d", "postgres", "-c", sql],
            capture_output=True,
            check=False,
            timeout=30,
        )


@pytest.mark.integration
@needs_root
def test_creates_the_dsn_role_and_database_on_a_local_cluster(pg_names: tuple[str, str]) -> None:
    import asyncpg

    role, db = pg_names
    dsn = f"postgresql://{role}:it's%20secret@127.0.0.1:5432/{db}"
    out = run_script("--service", "postgres", "--also-postgres", dsn)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "postgres created" in out.stdout and "secret" not in out.stdout

    async def whoami() -> tuple[str, str]:
        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow("SELECT current_user, current_database()")
            assert row is not None
            return row[0], row[1]
        finally:
            await conn.close()

    assert asyncio.run(whoami()) == (role, db)


@pytest.mark.integration
@needs_root
def test_no_cluster_on_the_dsn_port_is_a_clear_failure() -> None:
    port = free_port()
    out = run_script(
        "--service",
        "postgres",
        INGEST_POSTGRES__DSN=f"postgresql://postgres:pw@127.0.0.1:{port}/postgres",
    )
    assert out.returncode == 1
    assert f"no local PostgreSQL cluster is configured on port {port}" in out.stdout
    assert "pw@" not in out.stdout


# --------------------------------------------------------------------------- shell tooling


STAMPED = (ROOT / ".venv" / ".setup-stamp").is_file() and Path(sys.prefix) == ROOT / ".venv"


@pytest.mark.skipif(not STAMPED, reason="needs a .venv made by `make setup`")
def test_setup_is_a_quick_no_op_when_up_to_date() -> None:
    out = subprocess.run(
        ["bash", "scripts/setup-venv.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0 and "up to date" in out.stdout, out.stdout + out.stderr


@pytest.mark.integration
@pytest.mark.skipif(not STAMPED, reason="needs a .venv made by `make setup`")
def test_make_test_fails_when_pytest_collects_nothing() -> None:
    out = subprocess.run(
        ["make", "test", "PYTEST_ARGS=-k no_such_test_xyz -p no:cacheprovider"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode != 0
    assert "collected no tests" in out.stderr


@pytest.mark.integration
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_missing_service_stops_the_run_naming_it(workers: list[str]) -> None:
    """Integration tests selected and NATS not answering: pytest stops before any test (exit 4)
    with the line naming it, run serially or by pytest-xdist workers (a worker's exit would
    only crash it: the controller checks)."""
    port = free_port()
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *workers,
         "tests/integration/test_deps.py"],
        cwd=ROOT,
        env=clean_env(IA_TEST_NATS_URL=f"nats://127.0.0.1:{port}"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == pytest.ExitCode.USAGE_ERROR, text[-3000:]
    assert f"services not answering: NATS at nats://127.0.0.1:{port}" in text
    assert "INTERNALERROR" not in text and " passed" not in text, text[-3000:]


def make_dry_run(*targets: str) -> str:
    out = subprocess.run(
        ["make", "-n", *targets],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_makefile_targets() -> None:
    out = make_dry_run("lint", "demo")
    for needle in ("setup-venv.sh", "ensure_services.py", "ruff check", "demo.sh"):
        assert needle in out, needle


def test_make_setup_makes_the_venv_the_services_and_the_test_database() -> None:
    out = make_dry_run("setup")
    assert "setup-venv.sh" in out
    assert 'ensure_services.py --also-postgres "$TEST_POSTGRES_DSN"' in out


def test_make_test_only_runs_pytest() -> None:
    out = make_dry_run("test")
    assert "bin/pytest" in out
    for setup in ("setup-venv.sh", "ensure_services.py", "pip ", "apt-get"):
        assert setup not in out, setup


def test_make_test_runs_pytest_xdist_workers_and_pytest_args_win() -> None:
    """Parallel by default (pytest-xdist, tests handed out one by one, xdist_group honoured);
    PYTEST_ARGS come after the worker options, so PYTEST_ARGS=-n0 runs serially."""
    (line,) = [x for x in make_dry_run("test").splitlines() if x.startswith("rc=0;")]
    assert "bin/pytest -n 4 --dist loadgroup " in line, line
    serial = make_dry_run("test", "PYTEST_ARGS=-n0", "PYTEST_WORKERS=3")
    assert "bin/pytest -n 3 --dist loadgroup -n0 " in serial, serial


def test_ci_runs_setup_then_lint_and_test() -> None:
    """.ci/run does the set-up with `make setup`, then the README's `make lint` and `make test`."""
    text = (ROOT / ".ci" / "run").read_text()
    made = re.findall(r"^(?:timeout [^\n]*?)?make (\w+)", text, flags=re.MULTILINE)
    assert made == ["setup", "lint", "test"], made


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shell_scripts_pass_shellcheck() -> None:
    files = [".ci/run", *(str(p.relative_to(ROOT)) for p in (ROOT / "scripts").glob("*.sh"))]
    out = subprocess.run(
        ["shellcheck", "-x", *files], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout


def demo_env(uid: str, **extra: str) -> dict[str, str]:
    return clean_env(
        VENV=sys.prefix,
        EMULATOR_PORT="0",
        INGEST_NATS__STREAM=f"T_{uid}_DEMO",
        INGEST_NATS__SUBJECT=f"test.{uid}.demo.quote",
        INGEST_NATS__DLQ_STREAM=f"T_{uid}_DEMODLQ",
        INGEST_NATS__DLQ_SUBJECT=f"test.{uid}.demo.dlq",
        INGEST_POSTGRES__ENABLED="false",
        INGEST_REDIS__ENABLED="false",
        INGEST_HTTP__ENABLED="false",
        INGEST_EARNINGS__ENABLED="false",
        INGEST_WORKERS__COUNT="2",
        INGEST_LOG__FORMAT="json",
        **extra,
    )


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, Path, list[subprocess.Popen[bytes]]]]:
    """A unique id, the demo's output file, and the started demo processes (killed at the end).

    The demo logs to the repo's fixed var/demo/yahoo-emulator.log (and reads its emulator's URL
    back from it) and its tests look for emulators among all processes: the tests that run it
    are in xdist_group "demo", so parallel runs (`make test`) never start two demos at once."""
    uid = uuid.uuid4().hex[:8]
    procs: list[subprocess.Popen[bytes]] = []
    yield uid, tmp_path / "demo.out", procs
    for proc in procs:  # its own session: the emulator and the engine go with it
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    delete_streams("nats://127.0.0.1:4222", [f"T_{uid}_DEMO", f"T_{uid}_DEMODLQ"])


def start_demo(out: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    with out.open("wb") as sink:
        return subprocess.Popen(
            ["bash", "scripts/demo.sh", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def demo_emulators(uid: str) -> list[int]:
    """The pids of the emulators this test's demo started: this venv's ``yahoo-emulator`` with
    the demo's environment (its unique stream name). Matching the command line alone also
    caught the emulators other tests start at the same time (the suite runs in parallel)."""
    marker = f"INGEST_NATS__STREAM=T_{uid}_DEMO".encode()
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:  # exited meanwhile
            continue
        if f"{sys.prefix}/bin/yahoo-emulator" in cmd and marker in env:
            pids.append(int(proc.name))
    return pids


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.xdist_group("demo")
def test_demo_once_runs_a_cycle_against_the_emulator_and_stops_it(
    demo: tuple[str, Path, list[subprocess.Popen[bytes]]],
) -> None:
    uid, out, procs = demo
    procs.append(start_demo(out, demo_env(uid), "run", "--once"))
    rc = procs[0].wait(90)
    text = out.read_text(errors="replace")
    assert rc == 0, text[-3000:]
    assert "demo: Yahoo emulator at http://127.0.0.1:" in text
    assert "requested=5000" in text
    assert not demo_emulators(uid), "the demo left its emulator running"


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.xdist_group("demo")
def test_demo_passes_sigterm_to_the_engine_and_stops_the_emulator(
    demo: tuple[str, Path, list[subprocess.Popen[bytes]]],
) -> None:
    import time

    uid, out, procs = demo
    procs.append(start_demo(out, demo_env(uid, INGEST_SCHEDULER__INTERVAL_S="1"), "run"))
    deadline = time.monotonic() + 60
    while "cycle_completed" not in out.read_text(errors="replace"):
        assert procs[0].poll() is None, out.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, "no cycle within 60 s"
        time.sleep(0.1)
    assert demo_emulators(uid), "the demo's emulator is not found while it runs"
    procs[0].send_signal(signal.SIGTERM)  # to the script only, not its process group
    rc = procs[0].wait(60)
    text = out.read_text(errors="replace")
    assert '"signal":"SIGTERM"' in text and "shutdown_complete" in text, text[-3000:]
    assert rc == 0, text[-3000:]
    assert not demo_emulators(uid), "the demo left its emulator running"


def test_trust_lines_go_first_once_per_role() -> None:
    stock = "# comment\nlocal all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n"
    once = es.with_trust_lines(stock, "postgres")
    lines = once.splitlines()
    assert lines[0] == es.HBA_MARK
    assert lines[1] == "host    all    postgres    127.0.0.1/32    trust"
    assert lines[2] == "host    all    postgres    ::1/128    trust"
    assert lines[3:] == stock.splitlines()
    assert es.with_trust_lines(once, "postgres") == once
    twice = es.with_trust_lines(once, "app").splitlines()
    assert twice.count(es.HBA_MARK) == 1 and "host    all    app    ::1/128    trust" in twice[:5]


def test_constraints_pin_exactly_what_the_venv_has() -> None:
    """constraints.txt is the venv's `pip freeze`: a package added without a pin fails here."""
    import importlib.metadata as md

    from packaging.markers import Marker
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    for raw in (ROOT / "constraints.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        req, _, marker = line.partition(";")
        name, sep, version = req.strip().partition("==")
        assert sep, f"not an exact pin: {raw!r}"
        if not marker.strip() or Marker(marker).evaluate():
            pins[canonicalize_name(name)] = version.strip()
    unpinned = {"ingestion-agent", "pip", "setuptools", "wheel"}  # the project, venv tooling
    installed = {
        canonicalize_name(d.metadata["Name"]): d.version
        for d in md.distributions()
        if canonicalize_name(d.metadata["Name"]) not in unpinned
    }
    unpinned_or_changed = {n: v for n, v in installed.items() if pins.get(n) != v}
    assert unpinned_or_changed == {}, "installed in the venv: pin these in constraints.txt"
    assert sorted(set(pins) - set(installed)) == [], (
        "pinned in constraints.txt but not installed: add them to pyproject.toml (a dependency "
        "the code needs) or drop the pins"
    )
