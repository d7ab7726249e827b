"""engine.configload: each value checked on its own, cross-field rules by the key at fault."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from engine.config import Config, load_config
from engine.configload import SettingError, build, dec_hook, env_overrides
from engine.errors import ConfigError


def test_setting_error_names_its_field() -> None:
    """A cross-field rule raises a ValueError whose text starts with the field."""
    err = SettingError("max_price", "must be greater than min_price")
    assert isinstance(err, ValueError)
    assert (err.field, str(err)) == ("max_price", "max_price: must be greater than min_price")


def test_cross_field_rule_is_reported_by_key_and_origin() -> None:
    """The section's rule names the key and the environment variable it came from."""
    with pytest.raises(ConfigError) as ei:
        load_config(None, {"INGEST_EARNINGS__FLAG_KEY_PREFIX": "earnings_analysis:"})
    assert str(ei.value) == (
        "invalid configuration: earnings.flag_key_prefix "
        "(environment INGEST_EARNINGS__FLAG_KEY_PREFIX): must differ from analysis_key_prefix"
    )


def test_list_element_error_names_the_key() -> None:
    """A bad element of a list is reported under its key, with msgspec's path inside it."""
    with pytest.raises(ConfigError, match=r"earnings\.sync_times = \[1\] .*\$\[0\]"):
        load_config(None, {"INGEST_EARNINGS__SYNC_TIMES": "[1]"})


def test_secret_value_is_masked(tmp_path: Path) -> None:
    """A secret of the wrong type is shown as ***."""
    f = tmp_path / "c.toml"
    f.write_text("[postgres]\ndsn = 5\n")
    with pytest.raises(ConfigError) as ei:
        load_config(f, {})
    assert (
        str(ei.value) == "invalid configuration: postgres.dsn = *** (config file): Expected `str`"
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"nope": {}}, "invalid configuration: Object contains unknown field `nope`"),
        ({"yahoo": 5}, "invalid configuration section [yahoo]: Expected `object`, got `int`"),
        ({"http": {"port": 1, "bogus": 2}}, "unknown key http.bogus (config file)"),
    ],
)
def test_build_rejects_unknown_and_misshapen_sections(raw: dict[str, object], message: str) -> None:
    """Sections and keys are checked against the Structs before any value is converted."""
    with pytest.raises(ConfigError) as ei:
        build(raw, Config, set())
    assert message in str(ei.value)


def test_env_overrides_are_typed_per_field() -> None:
    """Lists come from JSON or comma lists; other values stay strings for msgspec to convert."""
    out = env_overrides(
        {"INGEST_EARNINGS__SYNC_TIMES": "09:30, 17:30", "INGEST_HTTP__PORT": "9000"}, Config
    )
    assert out == {"earnings": {"sync_times": ["09:30", "17:30"]}, "http": {"port": "9000"}}
    assert build(out, Config, set()).http.port == 9000


def test_dec_hook_only_knows_secret() -> None:
    """Other custom types are not converted silently."""
    with pytest.raises(NotImplementedError):
        dec_hook(msgspec.Struct, "x")


def test_rate_window_throttles_cannot_exceed_the_window() -> None:
    """More 429s than answers remembered could never mean congestion: refused, by its key."""
    env = {"INGEST_YAHOO__RATE_WINDOW": "4", "INGEST_YAHOO__RATE_WINDOW_THROTTLES": "5"}
    with pytest.raises(ConfigError, match=r"yahoo\.rate_window_throttles .*must be <= rate_window"):
        load_config(None, env)
    assert load_config(None, {**env, "INGEST_YAHOO__RATE_WINDOW": "5"}).yahoo.rate_window == 5
