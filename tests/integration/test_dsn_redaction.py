"""A DSN password, in any form, never appears in ``db stats`` error output or ``config show``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from testkit import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

PASSWORD = "Sup3rS3cret"


def _forms(port: int) -> dict[str, str]:
    return {
        "url_userinfo": f"postgresql://ingest:{PASSWORD}@127.0.0.1:{port}/test",
        "url_query": f"postgresql://127.0.0.1:{port}/test?user=ingest&password={PASSWORD}",
        "keyword": f"host=127.0.0.1 port={port} user=ingest password={PASSWORD} dbname=test",
        "keyword_quoted": f"host=127.0.0.1 port={port} password='{PASSWORD}' dbname=test",
    }


def _cli(*args: str, dsn: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INGEST_POSTGRES__DSN": dsn, "INGEST_POSTGRES__COMMAND_TIMEOUT_S": "2"}
    env["INGEST_LOG__FORMAT"] = "json"
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("form", ["url_userinfo", "url_query", "keyword", "keyword_quoted"])
def test_db_stats_error_and_config_show_hide_password(form: str) -> None:
    dsn = _forms(free_port())[form]
    stats = _cli("db", "stats", dsn=dsn)
    assert stats.returncode != 0
    assert stats.stderr.strip()
    assert PASSWORD not in stats.stdout + stats.stderr, stats.stderr
    show = _cli("config", "show", dsn=dsn)
    # asyncpg takes URIs only: a libpq keyword DSN is refused when the configuration loads
    assert show.returncode == (2 if form.startswith("keyword") else 0), show.stderr
    assert PASSWORD not in show.stdout + show.stderr
