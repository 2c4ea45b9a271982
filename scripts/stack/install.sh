#!/usr/bin/env bash
# Install a loopback MatrixRTC backend (LiveKit SFU + lk-jwt-service + Synapse) into a cache dir.
# Idempotent: every step is skipped when its result is already there with the pinned version.
#
#   MATRIXRTC_STACK_CACHE   cache dir (default: $HOME/.cache/matrixrtc-stack)
#   LIVEKIT_VERSION         default v1.13.5   (later tags carry replace directives: go install refuses them)
#   LK_JWT_VERSION          default v0.5.0
#   SYNAPSE_VERSION         default 1.163.2
#   SKIP_APT=1              skip the apt step (chromium/openssl)
#
# Needs: go >= 1.26, python3 >= 3.10 with venv, apt-get (root or sudo) for chromium/openssl.
set -euo pipefail

CACHE="${MATRIXRTC_STACK_CACHE:-$HOME/.cache/matrixrtc-stack}"
LIVEKIT_VERSION="${LIVEKIT_VERSION:-v1.13.5}"
LK_JWT_VERSION="${LK_JWT_VERSION:-v0.5.0}"
SYNAPSE_VERSION="${SYNAPSE_VERSION:-1.163.2}"
BIN="$CACHE/bin"
TIMES="$CACHE/install-times.log"

mkdir -p "$BIN" "$CACHE/src"

log() { printf '[install %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }

# step NAME CHECK_FN DO_FN: skip if CHECK_FN succeeds, otherwise time DO_FN.
step() {
  local name="$1" check="$2" doit="$3" t0 t1
  if "$check"; then
    log "$name: already installed, skipping"
    return 0
  fi
  log "$name: installing ..."
  t0=$(date +%s)
  "$doit"
  t1=$(date +%s)
  "$check" || die "$name: installed but the check still fails"
  log "$name: done in $((t1 - t0)) s"
  printf '%s\t%s\t%ss\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$name" "$((t1 - t0))" >>"$TIMES"
}

command -v go >/dev/null || die "go not found on PATH (need Go >= 1.26)"
command -v python3 >/dev/null || die "python3 not found on PATH (need Python >= 3.10)"

# ---------------------------------------------------------------- apt: chromium, openssl
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
APT_UPDATED=""
apt_install() {
  if [ -z "$APT_UPDATED" ]; then
    log "apt-get update"
    $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
check_openssl() { command -v openssl >/dev/null; }
do_openssl() { apt_install openssl; }
check_chromium() { command -v chromium >/dev/null; }
# fonts-liberation: so headless screenshots have a font; recommends are skipped (dbus/upower/printing bits).
do_chromium() { apt_install chromium fonts-liberation; }

if [ "${SKIP_APT:-}" = 1 ]; then
  log "apt: skipped (SKIP_APT=1)"
else
  step "openssl (apt)" check_openssl do_openssl
  step "chromium (apt)" check_chromium do_chromium
fi

# ---------------------------------------------------------------- livekit-server
check_livekit() {
  [ -x "$BIN/livekit-server" ] && "$BIN/livekit-server" --version 2>/dev/null | grep -q "${LIVEKIT_VERSION#v}"
}
do_livekit() {
  # go install names the binary after the package dir ("server"); rename it.
  CGO_ENABLED=0 GOBIN="$BIN" go install "github.com/livekit/livekit-server/cmd/server@${LIVEKIT_VERSION}"
  mv -f "$BIN/server" "$BIN/livekit-server"
}
step "livekit-server ${LIVEKIT_VERSION}" check_livekit do_livekit

# ---------------------------------------------------------------- lk-jwt-service
# Its go.mod says `module lk-jwt-service` (no domain), so `go install github.com/element-hq/lk-jwt-service@...`
# is refused. A wrapper module requires the dotless path and replaces it with the GitHub path.
# Observed here (2026): the Go module proxy answers "403 This module version is not available" for every
# github.com/element-hq/lk-jwt-service version, so this build fails and stack.sh falls back to the
# Node stand-in scripts/stack/lk-jwt-standin.mjs. A refusal is remembered in $REFUSED, so later runs make no
# request at all (tests run in a network namespace without a route out); LK_JWT_RETRY=1 tries again.
LKJWT_DIR="$CACHE/src/lkjwt-${LK_JWT_VERSION}"
REFUSED="$CACHE/.lk-jwt-service-${LK_JWT_VERSION}.refused"
check_lkjwt() { [ -x "$BIN/lk-jwt-service" ] && [ "$(cat "$BIN/.lk-jwt-service.version" 2>/dev/null)" = "$LK_JWT_VERSION" ]; }
do_lkjwt() {
  mkdir -p "$LKJWT_DIR"
  printf 'module matrixrtc-stack.local/lkjwt\n\ngo 1.26\n\nrequire lk-jwt-service v0.0.0-00010101000000-000000000000\n\nreplace lk-jwt-service => github.com/element-hq/lk-jwt-service %s\n' \
    "$LK_JWT_VERSION" >"$LKJWT_DIR/go.mod"
  rm -f "$LKJWT_DIR/go.sum"
  if (cd "$LKJWT_DIR" && CGO_ENABLED=0 GOFLAGS=-mod=mod timeout 900 go build -o "$BIN/lk-jwt-service" lk-jwt-service) \
      >"$CACHE/lk-jwt-build.log" 2>&1; then
    echo "$LK_JWT_VERSION" >"$BIN/.lk-jwt-service.version"
  else
    log "lk-jwt-service ${LK_JWT_VERSION}: Go build FAILED (log: $CACHE/lk-jwt-build.log):"
    sed 's/^/    /' "$CACHE/lk-jwt-build.log" | head -5
    log "lk-jwt-service: stack.sh will use the Node stand-in scripts/stack/lk-jwt-standin.mjs instead"
    if grep -q "not available\|403 Forbidden\|404 Not Found" "$CACHE/lk-jwt-build.log"; then date -u >"$REFUSED"; fi
  fi
}
if check_lkjwt; then
  log "lk-jwt-service ${LK_JWT_VERSION}: already installed, skipping"
elif [ -f "$REFUSED" ] && [ "${LK_JWT_RETRY:-0}" != 1 ]; then
  log "lk-jwt-service ${LK_JWT_VERSION}: the Go proxy refused it on $(cat "$REFUSED"); not asking again (LK_JWT_RETRY=1 to retry)"
else
  log "lk-jwt-service ${LK_JWT_VERSION}: trying the wrapper-module build ..."
  t0=$(date +%s); do_lkjwt; t1=$(date +%s)
  if check_lkjwt; then
    log "lk-jwt-service ${LK_JWT_VERSION}: done in $((t1 - t0)) s"
    printf '%s\t%s\t%ss\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "lk-jwt-service ${LK_JWT_VERSION}" "$((t1 - t0))" >>"$TIMES"
  fi
fi

# ---------------------------------------------------------------- synapse
VENV="$CACHE/venv"
check_synapse() {
  [ -x "$VENV/bin/python" ] &&
    [ "$("$VENV/bin/python" -c 'import synapse; print(synapse.__version__)' 2>/dev/null)" = "$SYNAPSE_VERSION" ]
}
do_synapse() {
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "matrix-synapse==${SYNAPSE_VERSION}"
}
step "synapse ${SYNAPSE_VERSION}" check_synapse do_synapse

log "all done. cache: $CACHE"
log "  $("$BIN/livekit-server" --version 2>&1 | head -1)"
if check_lkjwt; then log "  lk-jwt-service $(cat "$BIN/.lk-jwt-service.version") (Go build)"
else log "  lk-jwt-service: NOT installable (Go proxy refuses it); stack.sh uses scripts/stack/lk-jwt-standin.mjs"; fi
log "  synapse $("$VENV/bin/python" -c 'import synapse; print(synapse.__version__)')"
log "  chromium: $(command -v chromium || echo missing)   openssl: $(command -v openssl || echo missing)"
