#!/usr/bin/env bash
# Offline demo: start the bundled Yahoo emulator, then run the engine against it.
#
#   scripts/demo.sh run            # until Ctrl-C
#   scripts/demo.sh run --once     # one cycle, print its summary, exit
#
# Arguments are passed to `ingestion-agent`. The emulator listens on
# $EMULATOR_HOST:$EMULATOR_PORT (default 127.0.0.1:8765; port 0 = any free port) with a REGULAR
# market session; its log goes to var/demo/yahoo-emulator.log. The engine gets
# INGEST_YAHOO__BASE_URL pointing at it and INGEST_YAHOO__MAX_IN_FLIGHT=16 (unless already set);
# everything else comes from config.toml and the INGEST_* environment as usual.
#
# Signals: SIGINT (Ctrl-C) and SIGTERM are passed to the engine, which finishes the cycle in flight
# and shuts down gracefully (a second one is harmless); SIGHUP to this script (terminal closed)
# stops the engine too. The emulator is stopped whenever this script exits, however it exits.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
HOST="${EMULATOR_HOST:-127.0.0.1}"
PORT="${EMULATOR_PORT:-8765}"
WAIT_S="${EMULATOR_WAIT_S:-30}"
LOG_DIR="var/demo"
LOG="$LOG_DIR/yahoo-emulator.log"

[ "$#" -gt 0 ] || set -- run
for tool in yahoo-emulator ingestion-agent; do
    [ -x "$VENV/bin/$tool" ] || { echo "demo: $VENV/bin/$tool missing: run 'make setup' first" >&2; exit 1; }
done

mkdir -p "$LOG_DIR"
: >"$LOG"
"$VENV/bin/yahoo-emulator" --host "$HOST" --port "$PORT" --market-state REGULAR >>"$LOG" 2>&1 &
emulator=$!

# shellcheck disable=SC2317  # called by the EXIT trap
stop_emulator() {
    if kill -0 "$emulator" 2>/dev/null; then
        kill -TERM "$emulator" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$emulator" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$emulator" 2>/dev/null || true
    fi
    wait "$emulator" 2>/dev/null || true
}
trap stop_emulator EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

url=""
deadline=$((SECONDS + WAIT_S))
while [ -z "$url" ]; do
    url="$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$LOG" | head -n1)"
    [ -n "$url" ] && break
    if ! kill -0 "$emulator" 2>/dev/null; then
        echo "demo: the emulator exited before listening (port $PORT taken? set EMULATOR_PORT):" >&2
        cat "$LOG" >&2
        exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "demo: the emulator did not report 'listening' within ${WAIT_S}s; its log:" >&2
        cat "$LOG" >&2
        exit 1
    fi
    sleep 0.1
done
echo "demo: Yahoo emulator at $url (log: $LOG)"

export INGEST_YAHOO__BASE_URL="$url"
export INGEST_YAHOO__MAX_IN_FLIGHT="${INGEST_YAHOO__MAX_IN_FLIGHT:-16}"
echo "demo: $VENV/bin/ingestion-agent $*"
# In the background so that signals reach this script at once (bash defers traps while a
# foreground command runs) and are forwarded; `wait` returns early on a trapped signal, so loop
# until the engine has really exited.
"$VENV/bin/ingestion-agent" "$@" &
agent=$!
trap 'kill -INT "$agent" 2>/dev/null || true' INT
trap 'kill -TERM "$agent" 2>/dev/null || true' TERM HUP
status=0
while :; do
    if wait "$agent"; then status=0; else status=$?; fi
    kill -0 "$agent" 2>/dev/null || break
done
exit "$status"
