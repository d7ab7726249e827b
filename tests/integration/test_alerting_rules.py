"""The checked-in Prometheus and Alertmanager configurations are valid, and every alert fires
when it should and stays quiet when it should not (promtool test rules)."""

from __future__ import annotations

import subprocess

import pytest

from tests.integration.test_http_support import ROOT, require_binary

pytestmark = pytest.mark.integration

PROM = ROOT / "deploy" / "prometheus"
AM = ROOT / "deploy" / "alertmanager"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_prometheus_config_and_rules_are_valid() -> None:
    promtool = require_binary("promtool", package="prometheus")
    res = run(promtool, "check", "config", str(PROM / "prometheus.yml"))
    assert res.returncode == 0, res.stdout + res.stderr
    res = run(promtool, "check", "rules", str(PROM / "alerts.yml"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 9 rules found" in res.stdout


def test_alert_rules_unit_tests() -> None:
    promtool = require_binary("promtool", package="prometheus")
    res = run(promtool, "test", "rules", str(PROM / "tests" / "alerts_test.yml"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_alert_has_a_unit_test() -> None:
    import re

    alerts = set(re.findall(r"- alert: (\w+)", (PROM / "alerts.yml").read_text()))
    tested = set(re.findall(r"alertname: (\w+)", (PROM / "tests" / "alerts_test.yml").read_text()))
    assert alerts == tested
    assert {
        "IngestionEngineDown",
        "IngestionNoData",
        "IngestionErrorRateHigh",
        "IngestionRateLimited",
        "IngestionSymbolsMissing",
        "IngestionDataStale",
        "IngestionBreakerOpen",
        "IngestionSymbolFailureRateHigh",
    } <= alerts


def test_alertmanager_config_is_valid() -> None:
    amtool = require_binary("amtool", package="prometheus-alertmanager")
    res = run(amtool, "check-config", str(AM / "alertmanager.yml"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 receivers" in res.stdout


def test_alertmanager_routes_critical_to_email_and_slack() -> None:
    amtool = require_binary("amtool", package="prometheus-alertmanager")
    cfg = str(AM / "alertmanager.yml")
    for labels, expected in (
        (["alertname=IngestionBreakerOpen", "severity=critical"], "email,slack"),
        (["alertname=IngestionDataStale", "severity=warning"], "slack"),
        (["alertname=Other"], "slack"),
    ):
        res = run(amtool, "config", "routes", "test", f"--config.file={cfg}", *labels)
        assert res.returncode == 0, res.stdout + res.stderr
        assert res.stdout.strip() == expected, (labels, res.stdout)


def test_no_secret_is_committed() -> None:
    text = (AM / "alertmanager.yml").read_text()
    assert "hooks.slack.com" not in text
    assert "slack_api_url:" not in text and "auth_password:" not in text
    assert "slack_api_url_file:" in text and "smtp_auth_password_file:" in text
