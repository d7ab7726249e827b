"""How ``config.toml`` and ``INGEST_*`` environment variables become settings Structs.

The machinery behind :func:`engine.config.load_config`, generic over the root Struct (one field
per ``[section]``, each a Struct of settings). Environment values are strings; they are converted
to the field's type (``"true"``/``"1"`` for booleans, JSON for lists). Every value is checked on
its own against its field's type and constraints, so an error names the key, where it came from
(file or environment variable), the offending value (``***`` for secrets) and the rule; a
cross-field rule of a section (its ``__post_init__``) raises :class:`SettingError` naming the key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeVar

import msgspec

from engine.errors import ConfigError

ENV_PREFIX: Final = "INGEST_"
RESERVED_ENV: Final = frozenset({"INGEST_CONFIG"})  # the config file path (read by the CLI)
_ENV_RE: Final = re.compile(r"^INGEST_([A-Z0-9_]+?)__([A-Z0-9_]+)$")

Root = TypeVar("Root", bound=msgspec.Struct)


class Secret:
    """A string that never shows itself in repr/str/logs. Use :meth:`reveal` at the point of use."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def redacted(self) -> str:
        """The value with every credential replaced by ``***`` (:func:`redact_url`)."""
        return redact_url(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


SECRET_PARAMS: Final = (
    "password", "passwd", "pwd", "sslpassword", "token", "auth_token", "access_token",
    "secret", "api_key", "apikey", "sslkey_password",
)  # fmt: skip
"""Names of DSN query parameters and libpq keywords whose value is a secret."""

_USERINFO: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^\s/?#]*@")
_SECRET_PARAM: Final = re.compile(
    r"(?i)(?<![A-Za-z0-9_])(" + "|".join(SECRET_PARAMS) + r")(\s*=\s*)"
    r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&;,'\"]*)"
)


def redact_url(url: str) -> str:
    """THE redaction of credentials in a DSN, URL or any text quoting one: URL userinfo
    (``scheme://user:pass@host`` -> ``scheme://***@host``), secret query parameters
    (``?password=x&...`` -> ``?password=***&...``) and libpq keyword form
    (``host=h password='x y'`` -> ``host=h password=***``). Everything else is kept.
    Config (:meth:`Secret.redacted`, ``describe``), logs and error messages all use it."""
    text = _USERINFO.sub(r"\1***@", url)
    return _SECRET_PARAM.sub(r"\1=***", text)


redact = redact_url


class SettingError(ValueError):
    """A cross-field rule of a settings section broken, naming the ``field`` at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def env_name(key: str) -> str:
    """``scheduler.interval_s`` -> ``INGEST_SCHEDULER__INTERVAL_S``."""
    section, _, field = key.partition(".")
    return f"{ENV_PREFIX}{section.upper()}__{field.upper()}"


def dec_hook(tp: type, obj: Any) -> Any:
    if tp is Secret:
        if isinstance(obj, str):
            return Secret(obj)
        raise ValueError("Expected `str`")
    raise NotImplementedError


def section_types(root: type[msgspec.Struct]) -> dict[str, type[msgspec.Struct]]:
    out: dict[str, type[msgspec.Struct]] = {}
    for f in msgspec.structs.fields(root):
        tp = f.type
        assert isinstance(tp, type) and issubclass(tp, msgspec.Struct)
        out[f.name] = tp
    return out


def env_overrides(
    environ: Mapping[str, str], root: type[msgspec.Struct]
) -> dict[str, dict[str, Any]]:
    """``INGEST_<SECTION>__<KEY>`` variables as ``{section: {key: value}}``."""
    sections = section_types(root)
    out: dict[str, dict[str, Any]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        m = _ENV_RE.match(name)
        if not m:
            raise ConfigError(
                f"environment variable {name} is not of the form INGEST_<SECTION>__<KEY> "
                "(two underscores between section and key); unset it or fix its name",
                key=name,
            )
        section, field = m.group(1).lower(), m.group(2).lower()
        if section not in sections:
            raise ConfigError(
                f"environment variable {name}: unknown section {section!r}; "
                f"allowed sections: {', '.join(sorted(sections))}",
                key=name,
            )
        fields = {f.name: f for f in msgspec.structs.fields(sections[section])}
        if field not in fields:
            raise ConfigError(
                f"environment variable {name}: unknown key {field!r} in [{section}]; "
                f"allowed keys: {', '.join(sorted(fields))}",
                key=name,
            )
        out.setdefault(section, {})[field] = _parse_env_value(value, fields[field].type)
    return out


def _parse_env_value(value: str, tp: Any) -> Any:
    """Env strings -> something msgspec.convert(strict=False) accepts for ``tp``."""
    origin = getattr(tp, "__origin__", None)
    if origin in (list, tuple) or (isinstance(tp, type) and issubclass(tp, (list, tuple))):
        try:
            return msgspec.json.decode(value)
        except msgspec.DecodeError:
            return [v.strip() for v in value.split(",") if v.strip()]
    return value


def build(raw: Mapping[str, Any], root: type[Root], env_keys: set[str]) -> Root:
    """``raw`` (``{section: {key: value}}``, environment overrides merged in) as ``root``."""
    sections = section_types(root)
    built: dict[str, Any] = {}
    for name, values in raw.items():
        tp = sections.get(name)
        if tp is None:
            raise ConfigError(f"invalid configuration: Object contains unknown field `{name}`")
        if not isinstance(values, dict):
            raise ConfigError(
                f"invalid configuration section [{name}]: {_type_error(values, dict)}; "
                f"allowed sections: {', '.join(sorted(sections))}"
            )
        built[name] = _build_section(name, tp, values, env_keys)
    return root(**built)


def _type_error(value: Any, tp: Any) -> str:
    """What msgspec says of ``value`` as a ``tp`` ("" if it converts)."""
    try:
        msgspec.convert(value, tp, strict=False, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        return str(exc)
    return ""


def _not_finite(value: Any, tp: Any) -> str:
    """A float that is infinite or NaN ("" otherwise): msgspec's bounds let ``inf`` through
    (and TOML writes both as literals), but no setting means "forever" by it."""
    try:
        v = msgspec.convert(value, tp, strict=False, dec_hook=dec_hook)
    except msgspec.ValidationError:
        return ""
    if isinstance(v, float) and not math.isfinite(v):
        return "must be a finite number (inf and nan are not allowed)"
    return ""


def _origin(key: str, env_keys: set[str]) -> str:
    return f"environment {env_name(key)}" if key in env_keys else "config file"


def _build_section(
    section: str, tp: type[msgspec.Struct], values: dict[str, Any], env_keys: set[str]
) -> msgspec.Struct:
    fields = {f.name: f for f in msgspec.structs.fields(tp)}
    for field, value in values.items():
        key = f"{section}.{field}"
        info = fields.get(field)
        if info is None:
            raise ConfigError(
                f"invalid configuration: unknown key {key} ({_origin(key, env_keys)}); "
                f"allowed keys in [{section}]: {', '.join(fields)}"
            )
        problem = _type_error(value, info.type) or _not_finite(value, info.type)
        if problem:
            shown = "***" if info.type is Secret else repr(value)
            raise ConfigError(
                f"invalid configuration: {key} = {shown} ({_origin(key, env_keys)}): "
                f"{problem}{_allowed(info.type)}"
            )
    try:
        return msgspec.convert(values, tp, strict=False, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        cause = exc.__cause__
        if not isinstance(cause, SettingError):
            raise ConfigError(f"invalid configuration section [{section}]: {exc}") from None
        key = f"{section}.{cause.field}"
        raise ConfigError(
            f"invalid configuration: {key} ({_origin(key, env_keys)}): {cause.reason}"
        ) from None


def _allowed(tp: Any) -> str:
    """``; allowed: 'a', 'b'`` for Literal types (msgspec only says "Invalid enum value")."""
    if getattr(tp, "__origin__", None) is Literal:
        return "; allowed: " + ", ".join(repr(a) for a in tp.__args__)
    return ""
