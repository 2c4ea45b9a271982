#!/usr/bin/env bash
# Runs a command in a private network namespace whose only interface is loopback, so nothing it starts (the
# Synapse, LiveKit and jwt-service of scripts/stack, Chromium, the tests) can send a packet anywhere but
# 127.0.0.1. The stack gets its own run dir there (run-netns), which is cleaned of leftovers first.
# Where no namespace can be made (not root, no unshare or ip), or MATRIXRTC_NO_NETNS=1, the command runs as it
# is, after a warning.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${MATRIXRTC_STACK_CACHE:-$HOME/.cache/matrixrtc-stack}"

if [ "${MATRIXRTC_NO_NETNS:-0}" != 1 ] && command -v ip flock >/dev/null && unshare -n true 2>/dev/null; then
  export STACK_RUN_DIR="${STACK_RUN_DIR:-$cache/run-netns}"
  mkdir -p "$(dirname "$STACK_RUN_DIR")"
  # One run at a time per run dir: a second one waits for the first (the lock is held by flock itself, -o, so
  # the stack's services do not inherit it). Then services left by an interrupted run, in a namespace nobody
  # can reach any more, are stopped.
  exec flock -o "$STACK_RUN_DIR.lock" sh -c '
    if [ -d "$STACK_RUN_DIR/pids" ]; then "$0/stack/stack.sh" down >/dev/null 2>&1 || true; fi
    exec unshare -n -- sh -c "ip link set lo up && exec \"\$@\"" sh "$@"' "$here" "$@"
fi
echo "isolated.sh: no network namespace available; running without one (traffic is still meant for 127.0.0.1)" >&2
exec "$@"
