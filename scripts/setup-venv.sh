#!/usr/bin/env bash
# Create .venv at the repo root (if missing) and install the project editable with its dev extras,
# every third-party package pinned by constraints.txt (pyproject.toml keeps the ranges).
#
# Idempotent and quick when nothing changed: .venv/.setup-stamp holds a hash of pyproject.toml,
# constraints.txt, the interpreter version and the repo path; while it matches (and the CLI is
# there) nothing is installed. A venv whose interpreter no longer runs is recreated.
#
# Environment: PYTHON (default python3, must be >= 3.11), VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
STAMP="$VENV/.setup-stamp"
export PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "run as root: $*"; fi
}

command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install Python >= 3.11 (Debian: apt-get install python3 python3-venv)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is $("$PYTHON" -V 2>&1); this project needs Python >= 3.11 (set PYTHON=...)"

if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    say "$VENV/bin/python does not run any more (interpreter moved or removed): recreating $VENV"
    rm -rf "$VENV"
fi

if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
        # Debian splits venv/ensurepip into python3-venv (python3.X-venv)
        command -v apt-get >/dev/null || die "$PYTHON cannot create virtual environments (no ensurepip); install its venv module"
        minor="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        say "installing python${minor}-venv from Debian (needed by python3 -m venv)"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
            || say "warning: apt-get update failed; trying with the package lists at hand"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "python${minor}-venv"
    fi
    say "creating $VENV with $("$PYTHON" -V 2>&1)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi

key="$(
    {
        cat pyproject.toml constraints.txt
        "$VENV/bin/python" -VV
        pwd -P
    } | sha256sum | cut -d' ' -f1
)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$key" ] && [ -x "$VENV/bin/ingestion-agent" ]; then
    say "$VENV is up to date"
    exit 0
fi

say "installing the project and its dev tools into $VENV (pinned by constraints.txt)"
rm -f "$STAMP"
"$VENV/bin/python" -m pip install --quiet --upgrade-strategy only-if-needed \
    -c constraints.txt -e '.[dev]'
"$VENV/bin/ingestion-agent" --version >/dev/null
printf '%s\n' "$key" >"$STAMP"
say "done: $VENV/bin/ingestion-agent is the CLI"
