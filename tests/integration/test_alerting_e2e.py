"""End to end: the engine's /metrics -> a real Prometheus (the checked-in rules) -> a real
Alertmanager (the checked-in routes and receivers) -> a Slack-webhook sink and an SMTP sink.

Both sinks run in this test: the Slack one is a tiny aiohttp server, the SMTP one a minimal
asyncio SMTP server (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT) - no extra package. Prometheus and
Alertmanager run on spare loopback ports with temporary data directories. The configurations
are the committed ones with only the site-specific values replaced (ports, secret file paths,
TLS off for the local sink, timings shortened so the alert fires in seconds).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email
import email.policy
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from engine.config import Config, HttpSettings
from engine.observe import metrics
from engine.observe.http import HttpServer
from engine.source.breaker import BreakerState
from testkit import free_port
from tests.integration.test_http_support import (
    ROOT,
    FakeSource,
    process,
    require_binary,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SMTP_USER = "ingestion-alerts@example.com"
SMTP_PASSWORD = "s3cret-from-a-file"


def patch(text: str, pattern: str, repl: str) -> str:
    """Replace ``pattern`` exactly once (the committed file changed if it is not there)."""
    out, n = re.subn(pattern, repl, text, flags=re.M)
    assert n >= 1, f"pattern {pattern!r} not found: update this test with the config"
    return out


# ----------------------------------------------------------------------------------- sinks


@dataclass
class SmtpSink:
    """Just enough ESMTP for Alertmanager's Go client: EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    auth: list[tuple[str, str]] = field(default_factory=list)
    received: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mail: dict[str, Any] = {"rcpt": []}
        try:
            await self._reply(writer, "220 sink.local ESMTP test sink")
            while raw := await reader.readline():
                line = raw.decode().rstrip("\r\n")
                verb = line.split(" ", 1)[0].upper()
                if verb == "QUIT":
                    await self._reply(writer, "221 bye")
                    return
                answer = await self._command(verb, line, reader, writer, mail)
                await self._reply(writer, answer)
        finally:
            writer.close()

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, line: str) -> None:
        writer.write(line.encode() + b"\r\n")
        await writer.drain()

    async def _command(
        self,
        verb: str,
        line: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        mail: dict[str, Any],
    ) -> str:
        if verb == "EHLO":
            return "250-sink.local\r\n250-AUTH PLAIN\r\n250 8BITMIME"
        if verb in ("HELO", "NOOP", "RSET"):
            return "250 ok"
        if verb == "AUTH":
            parts = line.split(" ")
            token = parts[2] if len(parts) > 2 else ""
            if not token:
                await self._reply(writer, "334 ")
                token = (await reader.readline()).decode().strip()
            _, user, password = base64.b64decode(token).decode().split("\0")
            self.auth.append((user, password))
            return "235 2.7.0 authenticated"
        if verb == "MAIL":
            mail["from"] = line
            return "250 ok"
        if verb == "RCPT":
            mail["rcpt"].append(line)
            return "250 ok"
        if verb == "DATA":
            await self._reply(writer, "354 end with <CRLF>.<CRLF>")
            body = bytearray()
            while (chunk := await reader.readline()) not in (b".\r\n", b".\n", b""):
                body += chunk[1:] if chunk.startswith(b"..") else chunk
            mail["message"] = email.message_from_bytes(bytes(body), policy=email.policy.default)
            self.messages.append(dict(mail))
            mail["rcpt"] = []
            self.received.set()
            return "250 queued"
        return "502 not implemented"


@dataclass
class SlackSink:
    posts: list[dict[str, Any]] = field(default_factory=list)
    received: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append(await request.json())
        self.received.set()
        return web.Response(text="ok")


@contextlib.asynccontextmanager
async def slack_sink(port: int) -> AsyncIterator[SlackSink]:
    sink = SlackSink()
    app = web.Application()
    app.router.add_post("/services/T000/B000/XXXX", sink.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield sink
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- the services


def alertmanager_config(tmp: Path, smtp_port: int, slack_port: int) -> Path:
    secrets = tmp / "secrets"
    secrets.mkdir()
    (secrets / "slack_webhook_url").write_text(
        f"http://127.0.0.1:{slack_port}/services/T000/B000/XXXX\n"
    )
    # Alertmanager 0.25 trims the webhook URL file but sends the password file's bytes as they
    # are: the password file must not end with a newline (see deploy/alertmanager).
    (secrets / "smtp_password").write_text(SMTP_PASSWORD)
    for f in secrets.iterdir():
        f.chmod(0o400)
    text = (ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text()
    text = patch(text, r"^(\s+slack_api_url_file:).*$", rf"\1 {secrets / 'slack_webhook_url'}")
    text = patch(text, r"^(\s+smtp_auth_password_file:).*$", rf"\1 {secrets / 'smtp_password'}")
    text = patch(text, r"^(\s+smtp_smarthost:).*$", rf"\1 127.0.0.1:{smtp_port}")
    text = patch(text, r"^(\s+smtp_require_tls:).*$", r"\1 false")
    text = patch(text, r"^(\s+group_wait:).*$", r"\1 1s")
    text = patch(text, r"^(\s+group_interval:).*$", r"\1 1s")
    assert "example.com:587" not in text
    path = tmp / "alertmanager.yml"
    path.write_text(text)
    return path


def prometheus_config(tmp: Path, engine_port: int, am_port: int) -> Path:
    rules = (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()
    rules = patch(rules, r"^(\s+for:).*$", r"\1 0s")  # fire on the first evaluation
    (tmp / "alerts.yml").write_text(rules)
    text = (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
    text = patch(text, r"^(\s+scrape_interval:).*$", r"\1 1s")
    text = patch(text, r"^(\s+evaluation_interval:).*$", r"\1 1s")
    text = patch(text, r"^(\s+scrape_timeout:).*$", r"\1 1s")
    text = patch(text, r'"127\.0\.0\.1:9093"', f'"127.0.0.1:{am_port}"')
    text = patch(text, r'"127\.0\.0\.1:9108"', f'"127.0.0.1:{engine_port}"')
    path = tmp / "prometheus.yml"
    path.write_text(text)
    return path


async def test_breaker_alert_reaches_slack_and_email(tmp_path: Path) -> None:
    prometheus = require_binary("prometheus", package="prometheus")
    alertmanager = require_binary(
        "prometheus-alertmanager", "alertmanager", package="prometheus-alertmanager"
    )
    metrics.reset()
    source = FakeSource(cycles=2)
    source.breaker = BreakerState.OPEN
    smtp = SmtpSink()
    smtp_port, slack_port, am_port, prom_port = (free_port() for _ in range(4))
    smtp_server = await asyncio.start_server(smtp.handle, "127.0.0.1", smtp_port)
    config = Config(http=HttpSettings(port=0))
    try:
        async with (
            slack_sink(slack_port) as slack,
            HttpServer.serve(config, source, checks={}) as engine,
        ):
            am_cfg = alertmanager_config(tmp_path, smtp_port, slack_port)
            prom_cfg = prometheus_config(tmp_path, engine.port, am_port)
            am_argv = [
                alertmanager,
                f"--config.file={am_cfg}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ]
            prom_argv = [
                prometheus,
                f"--config.file={prom_cfg}",
                f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ]
            with (
                process(am_argv, tmp_path / "alertmanager.log"),
                process(prom_argv, tmp_path / "prometheus.log"),
            ):
                try:
                    async with asyncio.timeout(40):
                        await slack.received.wait()
                        await smtp.received.wait()
                except TimeoutError:
                    logs = "\n".join(
                        f"--- {n}\n{(tmp_path / n).read_text()[-3000:]}"
                        for n in ("alertmanager.log", "prometheus.log")
                    )
                    pytest.fail(
                        f"no notification in 40 s: slack={slack.posts} smtp={smtp.messages}\n{logs}"
                    )
    finally:
        smtp_server.close()
        await smtp_server.wait_closed()
        metrics.reset()

    post = slack.posts[0]
    assert post["channel"] == "#market-data-alerts"
    attachment = post["attachments"][0]
    assert attachment["title"] == "[FIRING] IngestionBreakerOpen (critical)"
    assert "Yahoo circuit breaker open on 127.0.0.1:" in attachment["text"]

    mail = smtp.messages[0]
    assert smtp.auth[0] == (SMTP_USER, SMTP_PASSWORD)  # the password came from the secret file
    assert mail["rcpt"] == ["RCPT TO:<market-data-oncall@example.com>"]
    msg = mail["message"]
    assert msg["Subject"].startswith("[FIRING] IngestionBreakerOpen on 127.0.0.1:")
    assert msg["To"] == "market-data-oncall@example.com"
    body = msg.get_body(preferencelist=("plain", "html"))
    assert body is not None and "IngestionBreakerOpen" in body.get_content()
