"""Configuration: defaults, file, environment overrides and errors that name the culprit."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import Config, Secret, describe, env_name, load_config, redact_url
from engine.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


class TestLoadConfig:
    def test_repo_config_matches_defaults(self) -> None:
        """The documented config.toml states exactly the code's defaults."""
        assert load_config(ROOT / "config.toml", {}) == Config()

    def test_env_overrides_file(self, tmp_path: Path) -> None:
        """INGEST_<SECTION>__<KEY> wins over the file and is converted to the field's type."""
        f = tmp_path / "c.toml"
        f.write_text("[scheduler]\ninterval_s = 10.0\n[workers]\ncount = 2\n")
        c = load_config(
            f,
            {
                "INGEST_SCHEDULER__INTERVAL_S": "2.5",
                "INGEST_WORKERS__COUNT": "3",
                "INGEST_SCHEDULER__SPREAD": "true",
                "INGEST_YAHOO__BASE_URL": "http://127.0.0.1:8765",
                "INGEST_HTTP__PORT": "9000",
                "INGEST_SYMBOLS__FILE": "other.csv",
            },
        )
        assert c.scheduler.interval_s == 2.5
        assert c.workers.count == 3
        assert c.scheduler.spread is True
        assert c.yahoo.base_url == "http://127.0.0.1:8765"
        assert c.http.port == 9000
        assert c.symbols.file == "other.csv"

    def test_unrelated_env_ignored(self) -> None:
        """Variables without the prefix are not configuration."""
        assert load_config(None, {"PATH": "/bin", "NATS_URL": "x"}) == Config()

    @pytest.mark.parametrize(
        ("env", "needle"),
        [
            ({"INGEST_SCHEDULER__INTERVAL_S": "abc"}, "scheduler.interval_s = 'abc'"),
            ({"INGEST_SCHEDULER__INTERVAL_S": "0.1"}, ">= 0.5"),
            ({"INGEST_YAHOO__BATCH_SIZE": "0"}, "yahoo.batch_size"),
            ({"INGEST_YAHOO__TRANSPORT": "requests"}, "'curl_cffi', 'aiohttp'"),
            ({"INGEST_YAHOO__BASE_URL": "http://h:1/path"}, "yahoo.base_url"),
            ({"INGEST_HTTP__PORT": "70000"}, "http.port"),
            ({"INGEST_NOPE__X": "1"}, "unknown section 'nope'"),
            ({"INGEST_NATS__URLL": "1"}, "unknown key 'urll'"),
            ({"INGEST_NATSURL": "1"}, "INGEST_<SECTION>__<KEY>"),
        ],
    )
    def test_bad_values_name_key_value_and_rule(self, env: dict[str, str], needle: str) -> None:
        """Each invalid value fails with a message naming the key and what is allowed."""
        with pytest.raises(ConfigError) as ei:
            load_config(None, env)
        assert needle in str(ei.value)

    def test_env_origin_is_named(self) -> None:
        """The message says the bad value came from the environment, by variable name."""
        with pytest.raises(ConfigError, match="INGEST_WORKERS__SHARDS"):
            load_config(None, {"INGEST_WORKERS__SHARDS": "-1"})

    def test_unknown_key_in_file(self, tmp_path: Path) -> None:
        """A typo in the file is reported with the allowed keys."""
        f = tmp_path / "c.toml"
        f.write_text("[scheduler]\ninterval = 5\n")
        with pytest.raises(ConfigError, match=r"unknown key scheduler\.interval"):
            load_config(f, {})

    def test_missing_and_broken_file(self, tmp_path: Path) -> None:
        """A missing or non-TOML file is a clear error."""
        with pytest.raises(ConfigError, match="not found"):
            load_config(tmp_path / "nope.toml", {})
        bad = tmp_path / "bad.toml"
        bad.write_text("[scheduler\n")
        with pytest.raises(ConfigError, match="not valid TOML"):
            load_config(bad, {})

    def test_cross_field_rule(self) -> None:
        """max_price must exceed min_price."""
        with pytest.raises(ConfigError, match=r"validation\.max_price"):
            load_config(None, {"INGEST_VALIDATION__MAX_PRICE": "0.00001"})


class TestSecrets:
    def test_secret_never_printed(self) -> None:
        """Secrets stay out of repr, str, errors and describe()."""
        c = load_config(None, {"INGEST_POSTGRES__DSN": "postgresql://u:hunter2@db:5432/x"})
        assert "hunter2" not in repr(c)
        assert "hunter2" not in str(describe(c))
        assert describe(c)["postgres"]["dsn"] == "postgresql://***@db:5432/x"
        assert c.postgres.dsn.reveal().endswith("hunter2@db:5432/x")

    def test_secret_value_not_in_error(self) -> None:
        """A bad secret value is not echoed in the error."""
        with pytest.raises(ConfigError) as ei:
            load_config(
                None, {"INGEST_NATS__CONNECT_TIMEOUT_S": "x", "INGEST_NATS__URL": "nats://a:pw@h"}
            )
        assert "pw" not in str(ei.value)

    def test_redact_url(self) -> None:
        """Credentials are replaced, other URLs untouched."""
        assert redact_url("redis://:pw@h:6379/0") == "redis://***@h:6379/0"
        assert redact_url("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"
        assert repr(Secret("x")) == "Secret('***')"

    def test_env_name(self) -> None:
        """Keys map to their environment variable names."""
        assert env_name("scheduler.interval_s") == "INGEST_SCHEDULER__INTERVAL_S"


PASSWORD = "Sup3rS3cret"
DSN_FORMS = {
    "url_userinfo": f"postgresql://ingest:{PASSWORD}@db.internal:5432/quotes",
    "url_query": f"postgresql://db.internal:5432/quotes?user=ingest&password={PASSWORD}",
    "url_query_first": f"postgresql://db.internal/quotes?password={PASSWORD}&sslmode=require",
    "url_sslpassword": f"postgresql://db.internal/quotes?sslpassword={PASSWORD}",
    "url_passwd": f"postgresql://db.internal/quotes?passwd={PASSWORD}",
    "url_token": f"nats://127.0.0.1:4222?token={PASSWORD}",
    "url_both": f"redis://u:{PASSWORD}@h:6379/0?password={PASSWORD}",
    "keyword": f"host=db.internal port=5432 user=ingest password={PASSWORD} dbname=quotes",
    "keyword_spaced": f"host=db.internal password = {PASSWORD} dbname=quotes",
    "keyword_quoted": f"host=db.internal password='{PASSWORD} x' dbname=quotes",
    "userinfo_with_at": f"postgresql://ingest:{PASSWORD}@x@db.internal/quotes",
}


class TestRedaction:
    """One redaction for every DSN form: URL userinfo, query parameters, libpq keywords."""

    @pytest.mark.parametrize("form", sorted(DSN_FORMS))
    def test_password_never_shown(self, form: str) -> None:
        dsn = DSN_FORMS[form]
        for shown in (redact_url(dsn), Secret(dsn).redacted(), redact_url(f"at {dsn}: boom")):
            assert PASSWORD not in shown, shown
            assert "***" in shown

    @pytest.mark.parametrize("form", sorted(DSN_FORMS))
    @pytest.mark.parametrize(
        "key", ["INGEST_POSTGRES__DSN", "INGEST_NATS__URL", "INGEST_REDIS__URL"]
    )
    def test_config_show_hides_password(self, form: str, key: str) -> None:
        """Loaded (config show) or refused as not of the service's form, the value's
        password shows nowhere."""
        try:
            c = load_config(None, {key: DSN_FORMS[form]})
        except ConfigError as exc:
            assert PASSWORD not in str(exc)
            assert "must start with" in str(exc)  # another service's URL, or libpq keywords
            return
        assert PASSWORD not in str(describe(c))

    def test_keeps_what_is_not_secret(self) -> None:
        assert redact_url("host=db port=5432 dbname=q") == "host=db port=5432 dbname=q"
        assert (
            redact_url("postgresql://db/q?sslmode=require") == "postgresql://db/q?sslmode=require"
        )
        kw = redact_url(f"host=db password={PASSWORD} dbname=q")
        assert kw == "host=db password=*** dbname=q"
        assert redact_url(f"postgresql://db/q?password={PASSWORD}&sslmode=require") == (
            "postgresql://db/q?password=***&sslmode=require"
        )


class TestLifecycleSettings:
    def test_fetch_bound_defaults_to_twice_the_interval(self) -> None:
        from engine.config import SchedulerSettings

        assert SchedulerSettings(interval_s=20.0).fetch_bound_s() == 40.0
        assert SchedulerSettings(interval_s=1.0).fetch_bound_s() == 30.0  # the floor
        assert SchedulerSettings(interval_s=10.0, fetch_timeout_s=7.5).fetch_bound_s() == 7.5

    def test_shutdown_deadline_is_below_the_stop_timeouts(self) -> None:
        """``shutdown_grace_s`` is the TOTAL: compose's 30 s stop grace must exceed it."""
        from engine.config import SchedulerSettings

        assert SchedulerSettings().shutdown_grace_s < 30.0
