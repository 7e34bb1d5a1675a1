#!/usr/bin/env bash
# The two emoji tables (class-conditional and text-to-image) in the background, one (row, seed) run of
# each in turn (a text-to-image run reuses the class table's tokenizer of the same row and seed), at low
# priority, until both are complete; what a sitting of several hours does beside its other work.
#   scripts/tables.sh            # start (log: runs/tables.log); returns at once
#   scripts/tables.sh --status   # running or not, the last lines of the log, what is complete
#   scripts/tables.sh --stop     # stop the runs (resumable) and carry their checkpoints
#                                # (scripts/carry.py) into docs/results/emoji*/carry: commit them
# A killed run resumes from its last checkpoint (every 100 steps); finished runs are never redone.
# BIN=path runs another tessera-train binary (a copy keeps a rebuild from changing the running one).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
PIDFILE=runs/tables.pid
LOG=runs/tables.log
mkdir -p runs

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }
complete() { [ -f "docs/results/$1/table.md" ] && ! grep -q '^\*\*In progress' "docs/results/$1/table.md"; }

case "${1:-}" in
  --status)
    if running; then echo "tables: running (process group $(cat "$PIDFILE"))"; else echo "tables: not running"; fi
    for t in emoji emoji-t2i; do complete "$t" && echo "docs/results/$t: complete" || echo "docs/results/$t: in progress"; done
    [ -f "$LOG" ] && tail -n 3 "$LOG"
    exit 0 ;;
  --stop)
    if running; then
      kill -TERM -- "-$(cat "$PIDFILE")" 2>/dev/null || true
      for _ in $(seq 30); do running || break; sleep 1; done
      running && kill -KILL -- "-$(cat "$PIDFILE")" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    python3 scripts/carry.py save runs/table-emoji docs/results/emoji --t2i docs/results/emoji-t2i
    python3 scripts/carry.py save runs/table-emoji-t2i docs/results/emoji-t2i
    echo "tables: stopped; commit docs/results/emoji docs/results/emoji-t2i (results and carry)"
    exit 0 ;;
  "") ;;
  *) echo "usage: scripts/tables.sh [--status|--stop]" >&2; exit 2 ;;
esac

if running; then
  echo "tables: already running (process group $(cat "$PIDFILE")); scripts/tables.sh --status" >&2
  exit 1
fi
bash scripts/setup.sh
tessera_train_bin
if [ "$BIN" = "$CARGO_TARGET_DIR/release/tessera-train" ]; then
  # a rebuild during the hours this runs must not swap the binary under the table
  cp "$BIN" runs/tessera-train-tables
  BIN="$ROOT/runs/tessera-train-tables"
fi
export BIN
export -f complete
# its own process group (setsid), so that --stop ends the loop and the run it is in together
setsid nice -n 15 bash -c '
  # each pass rewrites both tables (a finished run is not redone), so a table whose rows or seeds grew
  # since it last read complete is taken up again
  while true; do
    DATA=emoji bash scripts/reproduce.sh --max-runs 1 || exit 1
    DATA=emoji-t2i bash scripts/reproduce.sh --max-runs 1 || exit 1
    complete emoji && complete emoji-t2i && break
  done
  echo "tables: both complete"' >> "$LOG" 2>&1 < /dev/null &
echo $! > "$PIDFILE"
echo "tables: started (process group $!, log $LOG, binary $BIN); scripts/tables.sh --status / --stop"
