"""The documentation cannot drift from the code.

* docs/errors.md names every rejection reason (``engine.quote.RejectReason``), the
  unpublishable reason, and every class of the error tree (subclass walk of ``IngestionError``);
* docs/configuration.md has a row for every key of every section of ``Config`` with its
  environment name and the code's default, and config.toml states every key with that default;
* docs/runbook.md has a section for every alert of deploy/prometheus/alerts.yml;
* docs/emulator.md has a row for every streamer knob of the emulator with its default;
* every relative link (and ``#anchor``) in docs/*.md and README.md resolves.
"""

from __future__ import annotations

import json
import re
import tomllib
import unicodedata
from pathlib import Path
from typing import Any

import msgspec
import pytest

from engine import errors
from engine.config import Config, Secret, env_name
from engine.quote import Quote, RejectReason
from engine.records import OutMessage, _letter_id, unpublishable

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(subclasses(sub))
    return out


# -- errors.md ---------------------------------------------------------------------------------


def _table_rows(text: str) -> dict[str, str]:
    """First-cell code name -> the whole row, for every markdown table row of ``text``."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^\|\s*`([^`]+)`\s*\|(.*)\|\s*$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def test_every_rejection_reason_is_documented() -> None:
    rows = _table_rows(read("errors.md"))
    missing = [r.label for r in RejectReason if r.label not in rows]
    assert not missing, f"docs/errors.md has no table row for rejection reasons {missing}"
    for r in RejectReason:
        cells = [c.strip() for c in rows[r.label].split("|")]
        assert len(cells) >= 2 and all(len(c) > 10 for c in cells), f"{r.label}: empty cells"


def test_the_unpublishable_reason_is_documented() -> None:
    m = OutMessage(False, "AAPL:1", b"{}", 1)
    reason = unpublishable(m, "data.market.quote", "x").reason
    assert reason in _table_rows(read("errors.md")), reason


def test_every_error_class_is_documented() -> None:
    rows = _table_rows(read("errors.md"))
    classes = [errors.IngestionError, *subclasses(errors.IngestionError)]
    assert len(classes) >= 14  # the tree as of this writing; a walk that finds none is a bug
    missing = [c.__name__ for c in classes if c.__name__ not in rows]
    assert not missing, f"docs/errors.md has no table row for error classes {missing}"


def test_documented_error_classes_exist() -> None:
    """No row for a class that was renamed or removed."""
    text = read("errors.md")
    section = text[text.index("## Error classes") :]
    section = section[: section.index("\n## ", 1)]
    names = {c.__name__ for c in [errors.IngestionError, *subclasses(errors.IngestionError)]}
    documented = set(_table_rows(section))
    assert documented <= names, f"documented but not in engine/errors.py: {documented - names}"


# -- configuration.md --------------------------------------------------------------------------


def _default(f: msgspec.structs.FieldInfo) -> Any:
    v = f.default if f.default is not msgspec.NODEFAULT else f.default_factory()
    if isinstance(v, Secret):
        v = v.reveal()
    return json.loads(msgspec.json.encode(v))  # tuples -> lists, as in TOML and JSON


def _config_sections() -> dict[str, dict[str, list[str]]]:
    """``## [section]`` -> key -> the row's cells (environment, default, meaning)."""
    out: dict[str, dict[str, list[str]]] = {}
    current: str | None = None
    for line in read("configuration.md").splitlines():
        h = re.match(r"^## \[([a-z_]+)\]\s*$", line)
        if h:
            current = h.group(1)
            out[current] = {}
            continue
        if line.startswith("## "):
            current = None
        m = re.match(r"^\|\s*`([a-z_0-9]+)`\s*\|(.*)\|\s*$", line)
        if m and current is not None:
            out[current][m.group(1)] = [c.strip() for c in m.group(2).split("|")]
    return out


def test_every_setting_is_documented_with_env_and_default() -> None:
    documented = _config_sections()
    problems = []
    for sf in msgspec.structs.fields(Config):
        section = sf.name
        rows = documented.get(section)
        if rows is None:
            problems.append(f"no '## [{section}]' table")
            continue
        keys = [f.name for f in msgspec.structs.fields(sf.type)]
        for f in msgspec.structs.fields(sf.type):
            row = rows.get(f.name)
            if row is None:
                problems.append(f"{section}.{f.name} missing")
                continue
            env, default, meaning = [*row, "", "", ""][:3]
            if env != f"`{env_name(section + '.' + f.name)}`":
                problems.append(f"{section}.{f.name}: environment {env}")
            m = re.fullmatch(r"`(.*)`", default)
            if m is None or json.loads(m.group(1)) != _default(f):
                problems.append(
                    f"{section}.{f.name}: documented default {default}, code {_default(f)!r}"
                )
            if len(meaning) < 8:
                problems.append(f"{section}.{f.name}: no meaning")
        extra = set(rows) - set(keys)
        if extra:
            problems.append(f"[{section}] documents unknown keys {sorted(extra)}")
    assert not problems, "docs/configuration.md: " + "; ".join(problems)


def test_every_streamer_knob_is_documented_with_its_default() -> None:
    from yahoo_emulator.config import EmulatorConfig

    rows = {k: v for k, v in _table_rows(read("emulator.md")).items() if k.startswith("stream_")}
    knobs = {f.name: f.default for f in msgspec.structs.fields(EmulatorConfig)}
    stream_knobs = {k: v for k, v in knobs.items() if k.startswith("stream_")}
    assert len(stream_knobs) >= 18
    assert set(rows) == set(stream_knobs), set(rows) ^ set(stream_knobs)
    for name, row in rows.items():
        default = row.split("|")[0].strip()
        assert json.loads(default) == stream_knobs[name], (name, default)


def test_config_toml_states_every_default_value_by_value() -> None:
    """config.toml says 'values shown are the defaults': every key of every section is there,
    with the Struct's default, and it has no key the Structs do not define."""
    toml = tomllib.loads((ROOT / "config.toml").read_text())
    problems = []
    for sf in msgspec.structs.fields(Config):
        section = toml.get(sf.name)
        if not isinstance(section, dict):
            problems.append(f"no [{sf.name}] table")
            continue
        keys = {f.name for f in msgspec.structs.fields(sf.type)}
        problems += [f"{sf.name}.{k} is not a setting" for k in sorted(set(section) - keys)]
        for f in msgspec.structs.fields(sf.type):
            if f.name not in section:
                problems.append(f"{sf.name}.{f.name} missing")
                continue
            got = json.loads(msgspec.json.encode(section[f.name]))
            if got != _default(f):
                problems.append(f"{sf.name}.{f.name} = {got!r}, default {_default(f)!r}")
    extra = set(toml) - {sf.name for sf in msgspec.structs.fields(Config)}
    problems += [f"[{name}] is not a section" for name in sorted(extra)]
    assert not problems, "config.toml: " + "; ".join(problems)


# -- runbook.md --------------------------------------------------------------------------------


def _alert_names() -> list[str]:
    text = (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()
    names = re.findall(r"^\s*-?\s*alert:\s*['\"]?([A-Za-z0-9_:]+)", text, re.M)
    assert names, "no alerts found in deploy/prometheus/alerts.yml"
    return names


def test_every_alert_has_a_runbook_section_with_three_checks() -> None:
    text = read("runbook.md")
    for name in _alert_names():
        m = re.search(rf"^### {re.escape(name)}\s*$(.*?)(?=^##|\Z)", text, re.M | re.S)
        assert m, f"docs/runbook.md has no '### {name}' section"
        steps = re.findall(r"^\d\. ", m.group(1), re.M)
        assert len(steps) >= 3, f"runbook section {name} lists {len(steps)} checks, want 3"


@pytest.mark.parametrize(
    "topic",
    ["SIGHUP", "dlq replay", "dlq list", "outbox", "spill", "Disk full", "Restart", "Upgrade",
     "NATS outage", "PostgreSQL outage", "Redis outage", "rate limit", "freshness"],
)  # fmt: skip
def test_runbook_covers_the_topics(topic: str) -> None:
    assert topic.lower() in read("runbook.md").lower()


# -- links -------------------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    s = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    s = "".join(c for c in s if c in " -" or unicodedata.category(c)[0] in "LN")
    return s.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def _links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return re.findall(r"\]\(([^)\s]+)\)", text)


DOC_FILES = sorted([ROOT / "README.md", *DOCS.glob("*.md")])


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for link in _links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", link):  # http:, https:, mailto:
            continue
        target, _, anchor = link.partition("#")
        path = (doc.parent / target).resolve() if target else doc
        if not path.exists() or (anchor and path.suffix == ".md" and anchor not in _anchors(path)):
            broken.append(link)
    assert not broken, f"{doc.relative_to(ROOT)}: broken links {broken}"


def test_link_checker_catches_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Title\n[ok](#title) [bad](missing.md) [x](#nope)\n")
    doc = tmp_path / "a.md"
    assert _links(doc) == ["#title", "missing.md", "#nope"]
    assert _anchors(doc) == {"title"}
    assert _slug("IngestionBreakerOpen") == "ingestionbreakeropen"
    assert _slug("Guarantees") == "guarantees"
    assert _slug("Versioning rules for consumers") == "versioning-rules-for-consumers"


# -- names of settings anywhere in the docs ----------------------------------------------------

_PROSE = [
    ROOT / "README.md", *sorted(DOCS.glob("*.md")), ROOT / "config.toml",
    ROOT / "docker-compose.yml", ROOT / "deploy" / "compose" / "env.example",
    ROOT / "bench" / "README.md", ROOT / "Dockerfile",
]  # fmt: skip


def _keys() -> set[str]:
    return {
        f"{sf.name}.{f.name}"
        for sf in msgspec.structs.fields(Config)
        for f in msgspec.structs.fields(sf.type)
    }


def test_every_environment_variable_named_exists() -> None:
    """An ``INGEST_*`` name in README, docs/, config.toml or the deployment files is a real
    variable (a renamed or removed setting is not still recommended)."""
    real = {env_name(k) for k in _keys()} | {"INGEST_CONFIG"}
    stale = sorted(
        f"{p.relative_to(ROOT)}: {m}"
        for p in _PROSE
        for m in re.findall(r"INGEST_[A-Z0-9_]*[A-Z0-9]", p.read_text(encoding="utf-8"))
        if m not in real
    )
    assert not stale, stale


def test_every_setting_named_exists() -> None:
    """A `` `section.key` `` (or `` `section.key = value` ``) in README and docs/ is a real key."""
    keys, sections = _keys(), {f.name for f in msgspec.structs.fields(Config)}
    stale = []
    for p in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for sec, key in re.findall(r"`([a-z]+)\.([a-z_0-9]+)(?:\s*=[^`]*)?`", p.read_text()):
            if sec in sections and f"{sec}.{key}" not in keys and key not in ("json", "py"):
                stale.append(f"{p.name}: {sec}.{key}")
    assert not stale, stale


def test_message_id_examples_have_the_current_form() -> None:
    """docs/messages.md showed ids of an older form: every example id now has the form the
    code builds (quote ``{symbol}:{market_time}:{volume}``; rejected letter
    ``{symbol}:{reason}:{market_time or i<ingest second>}``; ``unpublishable:{quote id}``)."""
    text = read("messages.md")
    quote = r"[A-Z][A-Z0-9.\-]*:\d+:\d+"
    reasons = "|".join(r.label for r in RejectReason)
    forms = {
        "quote": re.compile(rf"^{quote}$"),
        "rejected": re.compile(rf"^[A-Z][A-Z0-9.\-]*:({reasons}):(\d+|i\d+)$"),
        "unpublishable": re.compile(rf"^unpublishable:{quote}$"),
        "earnings": re.compile(r"^earnings:[a-z_]+:[A-Z][A-Z0-9.\-]*:\d{4}-\d\d-\d\d$"),
    }
    ids = re.findall(r"Nats-Msg-Id: ([^`\s]+)`", text)
    ids += re.findall(r'"original_msg_id": "([^"]+)"', text)
    ids += re.findall(r'"msg_id":"([^"]+)"', text)
    assert len(ids) >= 6, ids
    stale = [i for i in ids if not any(f.match(i) for f in forms.values())]
    assert not stale, f"ids in docs/messages.md of no current form: {stale}"
    q = Quote(symbol="AAPL", price=1.0, volume=7, change_percent=None, market_time=9,
              market_state="REGULAR", currency=None, exchange=None, source="yahoo_v7",
              ingest_time_ns=0, correlation_id="x")  # fmt: skip
    assert forms["quote"].match(q.msg_id), q.msg_id  # the regex is the code's form
    assert forms["rejected"].match(_letter_id("BRKS", "not_traded", 0, 5_000_000_000))
