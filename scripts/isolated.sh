#!/usr/bin/env bash
# Runs a command in a private network namespace whose only interface is loopback, so nothing it starts (the
# Synapse, LiveKit and jwt-service of scripts/stack, Chromium, the tests) can send a packet anywhere but
# 127.0.0.1. The stack gets its own run dir there (run-netns), which is cleaned of leftovers first.
# Where no namespace can be made (not root, no unshare or ip), or MATRIXRTC_NO_NETNS=1, the command runs as it
# is, after a warning.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${MATRIXRTC_STACK_CACHE:-$HOME/.cache/matrixrtc-stack}"

if [ "${MATRIXRTC_NO_NETNS:-0}" != 1 ] && command -v ip >/dev/null && unshare -n true 2>/dev/null; then
  export STACK_RUN_DIR="${STACK_RUN_DIR:-$cache/run-netns}"
  # Services left by an interrupted run live in a namespace nobody can reach any more: stop them.
  if [ -d "$STACK_RUN_DIR/pids" ]; then "$here/stack/stack.sh" down >/dev/null 2>&1 || true; fi
  exec unshare -n -- sh -c 'ip link set lo up && exec "$@"' sh "$@"
fi
echo "isolated.sh: no network namespace available; running without one (traffic is still meant for 127.0.0.1)" >&2
exec "$@"
