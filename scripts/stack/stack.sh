#!/usr/bin/env bash
# Bring a loopback MatrixRTC backend up/down: Synapse + LiveKit SFU(s) + lk-jwt-service(s).
# Everything binds to 127.0.0.1 only. Install first with ./install.sh.
#
# Usage: stack.sh up | down | status | clean
#   up      start all services (idempotent), wait until healthy, write $STACK_RUN_DIR/stack.json
#   down    stop every process recorded in $STACK_RUN_DIR/pids
#   status  show each service's pid and health
#   clean   down, then delete the run dir (Synapse DB, certs, logs)
#
# Instances ("variants"): each has its own LiveKit and its own lk-jwt-service pointing at it.
#   main        LiveKit room.auto_create=false; jwt full access for our homeserver (it creates the room)
#   restricted  LiveKit room.auto_create=false; jwt full access list EXCLUDES our homeserver
#               -> token issued, room never created -> LiveKit answers 404 "requested room does not exist"
#   full        LiveKit room.max_participants=$FULL_MAX_PARTICIPANTS (1); jwt full access
#   limited     LiveKit limit.num_tracks=$LIMITED_NUM_TRACKS (1); jwt full access -> 503 once the limit is hit
# Their jwt services speak today's protocol (lk-jwt-service a375b13: delay fields, /delegate_delayed_leave,
# /sfu_webhook); each LiveKit sends its webhooks to its jwt service's /sfu_webhook, and the jwt services reach
# Synapse's client-server API through LIVEKIT_CS_API_URL_OVERRIDES ($SERVER_NAME=http://127.0.0.1:$SYNAPSE_PORT).
# Older auth services, jwt service only (always the Node stand-in, LK_JWT_STANDIN_API), on main's LiveKit:
#   legacy      lk-jwt-service v0.3.0: only /sfu/get (404 for /get_token and /delegate_delayed_leave)
#   old         lk-jwt-service v0.4.3: no delay fields (/sfu/get -> 400 M_BAD_JSON, /get_token -> 400 M_NOT_JSON
#               for them) and no /delegate_delayed_leave (404)
# STACK_VARIANTS=0 starts only Synapse + main.
#
# Environment (defaults):
#   MATRIXRTC_STACK_CACHE  $HOME/.cache/matrixrtc-stack       (install dir; binaries in bin/, synapse in venv/)
#   STACK_RUN_DIR          $MATRIXRTC_STACK_CACHE/run
#   STACK_READY_TIMEOUT    90 (seconds per service)
#   STACK_KEEP_ON_FAIL     0  (1: do not stop the other services when one fails to come up)
#   SYNAPSE_PORT 8008  SYNAPSE_TLS_PORT 8448  SYNAPSE_SERVER_NAME localhost:$SYNAPSE_TLS_PORT
#   REGISTRATION_SHARED_SECRET  (random, kept in the run dir)
#   LIVEKIT_API_KEY devkey  LIVEKIT_API_SECRET devsecret-devsecret-devsecret-32chars
#   LK_MAIN_PORT 7880 LK_MAIN_UDP_PORT 7882 LK_MAIN_TCP_PORT 0 JWT_MAIN_PORT 8080
#   LK_RESTRICTED_PORT 7890 LK_RESTRICTED_UDP_PORT 7892 LK_RESTRICTED_TCP_PORT 0 JWT_RESTRICTED_PORT 8081
#   LK_FULL_PORT 7900 LK_FULL_UDP_PORT 7902 LK_FULL_TCP_PORT 0 JWT_FULL_PORT 8082
#   LK_LIMITED_PORT 7910 LK_LIMITED_UDP_PORT 7912 LK_LIMITED_TCP_PORT 0 JWT_LIMITED_PORT 8083
#   JWT_LEGACY_PORT 8084  JWT_OLD_PORT 8085
#   LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS 0  (given to the current jwt services; 0 = off, the real default)
#   MAX_EVENT_DELAY_DURATION 24h  (Synapse max_event_delay_duration: MSC4140 delayed events on)
#   RESTRICTED_FULL_ACCESS  not-this-server.invalid   FULL_MAX_PARTICIPANTS 1   LIMITED_NUM_TRACKS 1
#   LK_LOG_LEVEL info
#   LK_CLIENT_STUN 127.0.0.1:3478  (the only STUN server LiveKit advertises to clients; see below)
#   LK_JWT_IMPL  auto | go | node   auto: the Go lk-jwt-service binary if install.sh could build a version after
#                v0.5.0 (v0.5.0 has no delegation), else the Node stand-in lk-jwt-standin.mjs (the Go proxy
#                refuses lk-jwt-service here; see NOTES.md). Only for the current variants; legacy/old: stand-in.
#   (LK_*_TCP_PORT=0 disables ICE/TCP; a non-zero port is bound by LiveKit on the WILDCARD address.)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${MATRIXRTC_STACK_CACHE:-$HOME/.cache/matrixrtc-stack}"
RUN="${STACK_RUN_DIR:-$CACHE/run}"
BIN="$CACHE/bin"
VENV="$CACHE/venv"
READY_TIMEOUT="${STACK_READY_TIMEOUT:-90}"
VARIANTS="${STACK_VARIANTS:-1}"
LK_JWT_IMPL="${LK_JWT_IMPL:-auto}"
if [ "$LK_JWT_IMPL" = auto ]; then
  LK_JWT_IMPL=node
  if [ -x "$BIN/lk-jwt-service" ]; then
    case "$(cat "$BIN/.lk-jwt-service.version" 2>/dev/null)" in v0.[0-5].*|"") ;; *) LK_JWT_IMPL=go ;; esac
  fi
fi
STANDIN_CMD=(node "$SCRIPT_DIR/lk-jwt-standin.mjs")
case "$LK_JWT_IMPL" in
  go) JWT_CMD=("$BIN/lk-jwt-service"); JWT_DESC="lk-jwt-service $(cat "$BIN/.lk-jwt-service.version" 2>/dev/null) (Go)" ;;
  node) JWT_CMD=("${STANDIN_CMD[@]}"); JWT_DESC="lk-jwt-standin.mjs (Node stand-in for lk-jwt-service a375b13, after v0.5.0)" ;;
  *) echo "LK_JWT_IMPL must be auto, go or node" >&2; exit 2 ;;
esac

SYNAPSE_PORT="${SYNAPSE_PORT:-8008}"
SYNAPSE_TLS_PORT="${SYNAPSE_TLS_PORT:-8448}"
SERVER_NAME="${SYNAPSE_SERVER_NAME:-localhost:$SYNAPSE_TLS_PORT}"
LK_KEY="${LIVEKIT_API_KEY:-devkey}"
LK_SECRET="${LIVEKIT_API_SECRET:-devsecret-devsecret-devsecret-32chars}"
LK_LOG_LEVEL="${LK_LOG_LEVEL:-info}"
# LiveKit hands clients its DEFAULT PUBLIC STUN servers (twilio/google) in JoinResponse.ice_servers unless
# rtc.stun_servers (or TURN) is configured, even with node_ip set. Point clients at a loopback address instead.
# Nothing needs to listen there: the browser just gets no server-reflexive candidate.
LK_CLIENT_STUN="${LK_CLIENT_STUN:-127.0.0.1:3478}"
RESTRICTED_FULL_ACCESS="${RESTRICTED_FULL_ACCESS:-not-this-server.invalid}"
FULL_MAX_PARTICIPANTS="${FULL_MAX_PARTICIPANTS:-1}"
LIMITED_NUM_TRACKS="${LIMITED_NUM_TRACKS:-1}"
SANITY_CHECK="${LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS:-0}"
MAX_EVENT_DELAY="${MAX_EVENT_DELAY_DURATION:-24h}"

# name  lk_port  udp_port  tcp_port  jwt_port
INSTANCES=("main ${LK_MAIN_PORT:-7880} ${LK_MAIN_UDP_PORT:-7882} ${LK_MAIN_TCP_PORT:-0} ${JWT_MAIN_PORT:-8080}")
if [ "$VARIANTS" = 1 ]; then
  INSTANCES+=(
    "restricted ${LK_RESTRICTED_PORT:-7890} ${LK_RESTRICTED_UDP_PORT:-7892} ${LK_RESTRICTED_TCP_PORT:-0} ${JWT_RESTRICTED_PORT:-8081}"
    "full ${LK_FULL_PORT:-7900} ${LK_FULL_UDP_PORT:-7902} ${LK_FULL_TCP_PORT:-0} ${JWT_FULL_PORT:-8082}"
    "limited ${LK_LIMITED_PORT:-7910} ${LK_LIMITED_UDP_PORT:-7912} ${LK_LIMITED_TCP_PORT:-0} ${JWT_LIMITED_PORT:-8083}"
  )
fi
# jwt services: name  port  livekit-instance  api (LK_JWT_STANDIN_API; "current" = today's protocol)
JWTS=()
for _i in "${INSTANCES[@]}"; do
  read -r _n _p _u _t _j <<<"$_i"
  JWTS+=("$_n $_j $_n current")
done
if [ "$VARIANTS" = 1 ]; then
  JWTS+=("legacy ${JWT_LEGACY_PORT:-8084} main v0.3" "old ${JWT_OLD_PORT:-8085} main v0.4")
fi

PIDS="$RUN/pids"
LOGS="$RUN/logs"

log() { printf '[stack %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
err() { printf '[stack] ERROR: %s\n' "$*" >&2; }

# pid_alive PID: the process exists AND is one of ours (guards against a recycled PID after a reboot)
pid_alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qE 'livekit-server|lk-jwt|synapse\.app\.homeserver'
}
pid_of() { cat "$PIDS/$1.pid" 2>/dev/null || true; }

http_code() { # url [curl args...]
  local url="$1"; shift
  curl -s -o /dev/null -w '%{http_code}' --max-time 3 --noproxy '*' "$@" "$url" 2>/dev/null || true
}

# start NAME LOGFILE CMD... : start in its own session, record pid
start_proc() {
  local name="$1" logf="$2"; shift 2
  local pid
  pid=$(pid_of "$name")
  if pid_alive "$pid"; then
    log "$name already running (pid $pid)"
    return 0
  fi
  : >"$logf"
  setsid nohup "$@" >>"$logf" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
  log "$name started (pid $!), log $logf"
}

# wait_ready NAME LOGFILE URL [curl args...] : poll until 200, bounded
wait_ready() {
  local name="$1" logf="$2" url="$3"; shift 3
  local deadline=$(( $(date +%s) + READY_TIMEOUT )) code pid
  pid=$(pid_of "$name")
  while :; do
    code=$(http_code "$url" "$@")
    if [ "$code" = 200 ]; then
      log "$name ready ($url -> 200)"
      return 0
    fi
    if ! pid_alive "$pid"; then
      fail_service "$name" "$logf" "process $pid exited before becoming ready (last $url -> ${code:-none})"
      return 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      fail_service "$name" "$logf" "not ready after ${READY_TIMEOUT}s (last $url -> ${code:-none})"
      return 1
    fi
    sleep 0.5
  done
}

fail_service() {
  local name="$1" logf="$2" why="$3"
  err "service '$name' failed: $why"
  err "log file: $logf"
  err "---- last 40 lines of $logf ----"
  tail -n 40 "$logf" >&2 || true
  err "---- end of log ----"
}

# port_busy PROTO PORT: true if something already listens on 127.0.0.1/any:PORT (tcp or udp)
port_busy() {
  local flag=-Hltn; [ "$1" = udp ] && flag=-Hlun
  [ -n "$(ss $flag "sport = :$2" 2>/dev/null)" ]
}

# preflight: refuse to start when a port we need is taken (otherwise a health check could hit someone else's server)
preflight_ports() {
  local busy=() i name port udp tcp jport
  if ! pid_alive "$(pid_of synapse)"; then
    port_busy tcp "$SYNAPSE_PORT" && busy+=("synapse tcp/$SYNAPSE_PORT (SYNAPSE_PORT)")
    port_busy tcp "$SYNAPSE_TLS_PORT" && busy+=("synapse tcp/$SYNAPSE_TLS_PORT (SYNAPSE_TLS_PORT)")
  fi
  for i in "${INSTANCES[@]}"; do
    read -r name port udp tcp jport <<<"$i"
    local up=${name^^}
    if ! pid_alive "$(pid_of "livekit-$name")"; then
      port_busy tcp "$port" && busy+=("livekit-$name tcp/$port (LK_${up}_PORT)")
      port_busy udp "$udp" && busy+=("livekit-$name udp/$udp (LK_${up}_UDP_PORT)")
      [ "$tcp" != 0 ] && port_busy tcp "$tcp" && busy+=("livekit-$name tcp/$tcp (LK_${up}_TCP_PORT)")
    fi
  done
  local j api lk
  for j in "${JWTS[@]}"; do
    read -r name jport lk api <<<"$j"
    if ! pid_alive "$(pid_of "lk-jwt-$name")"; then
      port_busy tcp "$jport" && busy+=("lk-jwt-$name tcp/$jport (JWT_${name^^}_PORT)")
    fi
  done
  if [ ${#busy[@]} -gt 0 ]; then
    err "ports already in use (another stack or program?); set the named env vars to free ports:"
    printf '  %s\n' "${busy[@]}" >&2
    ss -Hltnup 2>/dev/null | grep -E "$(printf ':%s |' $(printf '%s\n' "${busy[@]}" | sed -E 's|.*/([0-9]+) .*|\1|') | sed 's/|$//')" >&2 || true
    return 1
  fi
}

# ------------------------------------------------------------------------------------------------ config
make_tls() {
  mkdir -p "$RUN/tls"
  if [ ! -s "$RUN/tls/hs.crt" ] || [ ! -s "$RUN/tls/hs.key" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
      -keyout "$RUN/tls/hs.key" -out "$RUN/tls/hs.crt" 2>/dev/null
    log "made self-signed cert $RUN/tls/hs.crt"
  fi
}

synapse_config() {
  local hs="$RUN/synapse"
  mkdir -p "$hs"
  if [ ! -s "$RUN/registration_shared_secret" ]; then
    if [ -n "${REGISTRATION_SHARED_SECRET:-}" ]; then
      printf '%s' "$REGISTRATION_SHARED_SECRET" >"$RUN/registration_shared_secret"
    else
      openssl rand -hex 24 | tr -d '\n' >"$RUN/registration_shared_secret"
    fi
  fi
  REG_SECRET=$(cat "$RUN/registration_shared_secret")
  if [ ! -s "$hs/homeserver.yaml" ]; then
    log "generating Synapse config for $SERVER_NAME"
    "$VENV/bin/python" -m synapse.app.homeserver --server-name "$SERVER_NAME" \
      --config-path "$hs/homeserver.yaml" --data-directory "$hs" \
      --generate-config --report-stats=no >"$LOGS/synapse-generate.log" 2>&1 || {
        fail_service synapse-generate "$LOGS/synapse-generate.log" "config generation failed"; return 1; }
  fi
  # Log only to stdout (our log file); the generated log config would also write homeserver.log.
  cat >"$hs/log.yaml" <<'EOF'
version: 1
formatters:
  precise: {format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'}
handlers:
  console: {class: logging.StreamHandler, formatter: precise}
loggers:
  synapse.storage.SQL: {level: INFO}
root: {level: INFO, handlers: [console]}
disable_existing_loggers: false
EOF
  local rl='{per_second: 10000, burst_count: 10000}'
  cat >"$hs/overrides.yaml" <<EOF
# Written by scripts/stack/stack.sh on every 'up'; merged over homeserver.yaml (top-level keys win).
server_name: "$SERVER_NAME"
public_baseurl: "http://127.0.0.1:$SYNAPSE_PORT/"
report_stats: false
log_config: "$hs/log.yaml"
pid_file: "$hs/homeserver.pid"
listeners:
  - {port: $SYNAPSE_PORT, type: http, tls: false, x_forwarded: false, bind_addresses: ['127.0.0.1'], resources: [{names: [client], compress: false}]}
  - {port: $SYNAPSE_TLS_PORT, type: http, tls: true, bind_addresses: ['127.0.0.1'], resources: [{names: [openid], compress: false}]}
tls_certificate_path: "$RUN/tls/hs.crt"
tls_private_key_path: "$RUN/tls/hs.key"
database: {name: sqlite3, args: {database: "$hs/homeserver.db"}}
media_store_path: "$hs/media_store"
trusted_key_servers: []
suppress_key_server_warning: true
federation_domain_whitelist: []
registration_shared_secret: "$REG_SECRET"
enable_registration: true
enable_registration_without_verification: true
experimental_features: {msc3266_enabled: true, msc4143_enabled: true, msc4222_enabled: true, msc4354_enabled: true}
# MSC4140 delayed events (the delayed leave the jwt services restart and send) are on when this is set
max_event_delay_duration: $MAX_EVENT_DELAY
matrix_rtc:
  transports:
    - {type: livekit, livekit_service_url: "http://127.0.0.1:$(jwt_port main)"}
rc_message: $rl
rc_delayed_event_mgmt: $rl
rc_registration: $rl
rc_login: {address: $rl, account: $rl, failed_attempts: $rl}
rc_joins: {local: $rl, remote: $rl}
rc_joins_per_room: $rl
rc_room_creation: $rl
rc_invites: {per_room: $rl, per_user: $rl, per_issuer: $rl}
rc_3pid_validation: $rl
rc_presence: {per_user: $rl}
rc_admin_redaction: $rl
EOF
}

jwt_port() { # jwt service name -> its port
  local i n p l a
  for i in "${JWTS[@]}"; do read -r n p l a <<<"$i"; [ "$n" = "$1" ] && { echo "$p"; return; }; done
}

lk_port() { # livekit instance -> its HTTP port
  local i n p u t j
  for i in "${INSTANCES[@]}"; do read -r n p u t j <<<"$i"; [ "$n" = "$1" ] && { echo "$p"; return; }; done
}

webhook_urls() { # livekit instance -> YAML flow list of the /sfu_webhook URLs of the current jwt services on it
  local i n p l a out=""
  for i in "${JWTS[@]}"; do
    read -r n p l a <<<"$i"
    if [ "$l" = "$1" ] && [ "$a" = current ]; then out+="${out:+, }\"http://127.0.0.1:$p/sfu_webhook\""; fi
  done
  echo "[$out]"
}

cs_api_overrides() { echo "$SERVER_NAME=http://127.0.0.1:$SYNAPSE_PORT"; }

livekit_config() { # name lk_port udp tcp
  local name="$1" port="$2" udp="$3" tcp="$4" extra=""
  case "$name" in
    main|restricted) extra=$'room:\n  auto_create: false' ;;
    full) extra=$'room:\n  auto_create: true\n  max_participants: '"$FULL_MAX_PARTICIPANTS" ;;
    limited) extra=$'room:\n  auto_create: true\nlimit:\n  num_tracks: '"$LIMITED_NUM_TRACKS" ;;
  esac
  cat >"$RUN/livekit-$name.yaml" <<EOF
# Written by scripts/stack/stack.sh ($name)
port: $port
bind_addresses: ["127.0.0.1"]
rtc:
  udp_port: $udp
  tcp_port: $tcp
  node_ip: 127.0.0.1
  use_external_ip: false
  stun_servers: ["$LK_CLIENT_STUN"]   # else clients are told to use public STUN servers
  enable_loopback_candidate: true
  interfaces:
    includes: [lo]
turn:
  enabled: false
keys:
  $LK_KEY: $LK_SECRET
logging:
  level: $LK_LOG_LEVEL
# participant_joined / participant_left go to the jwt service, which then sends the delegated delayed leave
webhook:
  api_key: $LK_KEY
  urls: $(webhook_urls "$name")
$extra
EOF
}

full_access_for() {
  case "$1" in restricted) echo "$RESTRICTED_FULL_ACCESS" ;; *) echo "$SERVER_NAME" ;; esac
}

write_stack_json() {
  local pybin=python3
  [ -x "$VENV/bin/python" ] && pybin="$VENV/bin/python"
  local inst_json=""
  local i
  for i in "${INSTANCES[@]}"; do inst_json+="$i;"; done
  local jwts_str=""
  for i in "${JWTS[@]}"; do jwts_str+="$i;"; done
  LK_CLIENT_STUN="$LK_CLIENT_STUN" STACK_JSON_OUT="$RUN/stack.json" RUN="$RUN" SERVER_NAME="$SERVER_NAME" SYNAPSE_PORT="$SYNAPSE_PORT" \
  SYNAPSE_TLS_PORT="$SYNAPSE_TLS_PORT" REG_SECRET="$REG_SECRET" LK_KEY="$LK_KEY" LK_SECRET="$LK_SECRET" \
  INSTANCES_STR="$inst_json" JWT_DESC="$JWT_DESC" RESTRICTED_FULL_ACCESS="$RESTRICTED_FULL_ACCESS" \
  FULL_MAX_PARTICIPANTS="$FULL_MAX_PARTICIPANTS" LIMITED_NUM_TRACKS="$LIMITED_NUM_TRACKS" \
  JWTS_STR="$jwts_str" CS_API_OVERRIDES="$(cs_api_overrides)" JWT_IMPL="$LK_JWT_IMPL" SANITY_CHECK="$SANITY_CHECK" \
  MAX_EVENT_DELAY="$MAX_EVENT_DELAY" "$pybin" - <<'PY'
import json, os
e = os.environ
run = e["RUN"]
def pid(n):
    try:
        return int(open(os.path.join(run, "pids", n + ".pid")).read().strip())
    except Exception:
        return None
out = {
    "run_dir": run,
    "homeserver": {
        "base_url": f"http://127.0.0.1:{e['SYNAPSE_PORT']}",
        "server_name": e["SERVER_NAME"],
        "federation_tls_url": f"https://127.0.0.1:{e['SYNAPSE_TLS_PORT']}",
        "tls_cert": os.path.join(run, "tls", "hs.crt"),
        "registration_shared_secret": e["REG_SECRET"],
        "pid": pid("synapse"),
        "log": os.path.join(run, "logs", "synapse.log"),
        # MSC4140 (Synapse 1.163.2 has only the unstable prefix): POST {endpoint}/{delay_id}/restart|send|cancel
        # (no access token needed) or POST {endpoint}/{delay_id} {"action": ...}; schedule a delayed state event
        # with PUT /_matrix/client/v3/rooms/{room}/state/{type}/{key}?org.matrix.msc4140.delay={ms}
        "delayed_events": {
            "max_event_delay_duration": e["MAX_EVENT_DELAY"],
            "endpoint": f"http://127.0.0.1:{e['SYNAPSE_PORT']}/_matrix/client/unstable/org.matrix.msc4140/delayed_events",
            "delay_query_param": "org.matrix.msc4140.delay",
        },
    },
    "jwt_service_impl": e["JWT_DESC"],
    "livekit_api_key": e["LK_KEY"],
    "livekit_api_secret": e["LK_SECRET"],
    "livekit": {},
    "jwt_services": {},
}
for spec in filter(None, e["INSTANCES_STR"].split(";")):
    name, lk, udp, tcp, jwt = spec.split()
    lkd = {
        "ws_url": f"ws://127.0.0.1:{lk}",
        "http_url": f"http://127.0.0.1:{lk}",
        "udp_port": int(udp),
        "tcp_port": int(tcp),
        "client_stun_servers": ["stun:" + e["LK_CLIENT_STUN"]],
        "auto_create": name not in ("main", "restricted"),
        "pid": pid("livekit-" + name),
        "log": os.path.join(run, "logs", f"livekit-{name}.log"),
        "config": os.path.join(run, f"livekit-{name}.yaml"),
    }
    if name == "full":
        lkd["max_participants"] = int(e["FULL_MAX_PARTICIPANTS"])
    if name == "limited":
        lkd["num_tracks_limit"] = int(e["LIMITED_NUM_TRACKS"])
    lkd["webhook_urls"] = []
    out["livekit"][name] = lkd
for spec in filter(None, e["JWTS_STR"].split(";")):
    name, port, lk, api = spec.split()
    url = f"http://127.0.0.1:{port}"
    current = api == "current"
    if current:
        out["livekit"][lk]["webhook_urls"].append(url + "/sfu_webhook")
    out["jwt_services"][name] = {
        "url": url,
        "livekit": lk,
        "livekit_ws_url": out["livekit"][lk]["ws_url"],
        "full_access_homeservers": e["RESTRICTED_FULL_ACCESS"] if name == "restricted" else e["SERVER_NAME"],
        # the lk-jwt-service it behaves as: "current" = a375b13 (today's protocol), "v0.4" = v0.4.3, "v0.3" = v0.3.0
        "api": api,
        "impl": ("go" if e["JWT_IMPL"] == "go" else "node") if current else "node",
        "endpoints": {
            "current": ["/get_token", "/sfu/get", "/delegate_delayed_leave", "/sfu_webhook"],
            "v0.4": ["/get_token", "/sfu/get"],
            "v0.3": ["/sfu/get"],
        }[api],
        # delay_id/delay_timeout in the token requests: accepted (and a job started), rejected (400), or ignored
        "delay_fields": {"current": "accepted", "v0.4": "rejected", "v0.3": "ignored"}[api],
        "delegation": current,
        "sfu_webhook": url + "/sfu_webhook" if current else None,
        "cs_api_url_overrides": e["CS_API_OVERRIDES"] if current else None,
        "sanity_check_interval_s": int(e["SANITY_CHECK"]) if current else None,
        "pid": pid("lk-jwt-" + name),
        "log": os.path.join(run, "logs", f"lk-jwt-{name}.log"),
    }
tmp = e["STACK_JSON_OUT"] + ".tmp"
with open(tmp, "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")
os.replace(tmp, e["STACK_JSON_OUT"])
PY
}

# ------------------------------------------------------------------------------------------------ commands
all_names() {
  local i; echo synapse
  for i in "${INSTANCES[@]}"; do set -- $i; echo "livekit-$1"; done
  for i in "${JWTS[@]}"; do set -- $i; echo "lk-jwt-$1"; done
}

cmd_up() {
  local t0; t0=$(date +%s)
  [ -x "$BIN/livekit-server" ] || { err "missing $BIN/livekit-server; run install.sh first"; exit 1; }
  if [ "$LK_JWT_IMPL" = go ] && [ ! -x "$BIN/lk-jwt-service" ]; then err "missing $BIN/lk-jwt-service (LK_JWT_IMPL=go)"; exit 1; fi
  log "jwt service implementation: $JWT_DESC"
  [ -x "$VENV/bin/python" ] || { err "missing Synapse venv $VENV; run install.sh first"; exit 1; }
  mkdir -p "$RUN" "$PIDS" "$LOGS"
  preflight_ports || exit 1
  make_tls
  synapse_config

  local hs="$RUN/synapse"
  start_proc synapse "$LOGS/synapse.log" \
    "$VENV/bin/python" -m synapse.app.homeserver -c "$hs/homeserver.yaml" -c "$hs/overrides.yaml"

  local i name port udp tcp jport
  for i in "${INSTANCES[@]}"; do
    read -r name port udp tcp jport <<<"$i"
    livekit_config "$name" "$port" "$udp" "$tcp"
    start_proc "livekit-$name" "$LOGS/livekit-$name.log" "$BIN/livekit-server" --config "$RUN/livekit-$name.yaml"
  done
  local j lk api cmd
  for j in "${JWTS[@]}"; do
    read -r name jport lk api <<<"$j"
    if [ "$api" = current ]; then cmd=("${JWT_CMD[@]}"); else cmd=("${STANDIN_CMD[@]}"); fi
    start_proc "lk-jwt-$name" "$LOGS/lk-jwt-$name.log" env \
      LIVEKIT_URL="ws://127.0.0.1:$(lk_port "$lk")" LIVEKIT_KEY="$LK_KEY" LIVEKIT_SECRET="$LK_SECRET" \
      LIVEKIT_JWT_BIND="127.0.0.1:$jport" LIVEKIT_FULL_ACCESS_HOMESERVERS="$(full_access_for "$name")" \
      LIVEKIT_INSECURE_SKIP_VERIFY_TLS=YES_I_KNOW_WHAT_I_AM_DOING \
      LIVEKIT_CS_API_URL_OVERRIDES="$(cs_api_overrides)" LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS="$SANITY_CHECK" \
      LK_JWT_STANDIN_API="$api" \
      "${cmd[@]}"
  done

  local ok=1
  for i in "${INSTANCES[@]}"; do
    read -r name port udp tcp jport <<<"$i"
    wait_ready "livekit-$name" "$LOGS/livekit-$name.log" "http://127.0.0.1:$port/" || { ok=0; break; }
  done
  if [ $ok = 1 ]; then
    for j in "${JWTS[@]}"; do
      read -r name jport lk api <<<"$j"
      wait_ready "lk-jwt-$name" "$LOGS/lk-jwt-$name.log" "http://127.0.0.1:$jport/healthz" || { ok=0; break; }
    done
  fi
  if [ $ok = 1 ]; then
    wait_ready synapse "$LOGS/synapse.log" "http://127.0.0.1:$SYNAPSE_PORT/health" || ok=0
  fi
  if [ $ok = 1 ]; then
    # the TLS (openid) listener must answer too; 401 M_MISSING_TOKEN proves it is up
    local c; c=$(http_code "https://127.0.0.1:$SYNAPSE_TLS_PORT/_matrix/federation/v1/openid/userinfo" -k)
    if [ "$c" != 401 ]; then
      fail_service synapse "$LOGS/synapse.log" "TLS openid listener 127.0.0.1:$SYNAPSE_TLS_PORT answered '$c', expected 401"
      ok=0
    else
      log "synapse TLS openid listener ready (https://127.0.0.1:$SYNAPSE_TLS_PORT -> 401 without token, as expected)"
    fi
  fi
  if [ $ok != 1 ]; then
    if [ "${STACK_KEEP_ON_FAIL:-0}" != 1 ]; then
      err "stopping the services that were started (set STACK_KEEP_ON_FAIL=1 to keep them)"
      cmd_down >&2
    fi
    exit 1
  fi
  write_stack_json
  log "stack up in $(( $(date +%s) - t0 )) s; $RUN/stack.json"
}

cmd_down() {
  local name pid any=0 pids=()
  [ -d "$PIDS" ] || { log "nothing to stop (no $PIDS)"; return 0; }
  for f in "$PIDS"/*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid); pid=$(cat "$f")
    if pid_alive "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$name:$pid"); any=1
    fi
  done
  local deadline=$(( $(date +%s) + 15 )) p
  for p in "${pids[@]}"; do
    name=${p%%:*}; pid=${p##*:}
    while pid_alive "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
    if pid_alive "$pid"; then
      log "$name (pid $pid) did not stop on TERM; sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "$name (pid $pid) stopped"
  done
  rm -f "$PIDS"/*.pid
  [ $any = 1 ] || log "nothing was running"
}

cmd_status() {
  local name pid state health i port udp tcp jport
  printf '%-22s %-8s %-6s %s\n' SERVICE PID ALIVE HEALTH
  pid=$(pid_of synapse); state=$(pid_alive "$pid" && echo yes || echo no)
  printf '%-22s %-8s %-6s %s\n' synapse "${pid:--}" "$state" \
    "/health=$(http_code "http://127.0.0.1:$SYNAPSE_PORT/health") tls-userinfo=$(http_code "https://127.0.0.1:$SYNAPSE_TLS_PORT/_matrix/federation/v1/openid/userinfo" -k)"
  for i in "${INSTANCES[@]}"; do
    read -r name port udp tcp jport <<<"$i"
    pid=$(pid_of "livekit-$name"); state=$(pid_alive "$pid" && echo yes || echo no)
    printf '%-22s %-8s %-6s %s\n' "livekit-$name" "${pid:--}" "$state" "GET :$port/=$(http_code "http://127.0.0.1:$port/")"
  done
  local j lk api
  for j in "${JWTS[@]}"; do
    read -r name jport lk api <<<"$j"
    pid=$(pid_of "lk-jwt-$name"); state=$(pid_alive "$pid" && echo yes || echo no)
    printf '%-22s %-8s %-6s %s\n' "lk-jwt-$name" "${pid:--}" "$state" "GET :$jport/healthz=$(http_code "http://127.0.0.1:$jport/healthz") ($api)"
  done
  [ -f "$RUN/stack.json" ] && echo "stack.json: $RUN/stack.json"
  return 0
}

cmd_clean() {
  cmd_down
  case "$RUN" in
    ""|/) err "refusing to delete '$RUN'"; exit 1 ;;
  esac
  rm -rf "$RUN"
  log "removed $RUN"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  clean) cmd_clean ;;
  *) echo "usage: $0 up|down|status|clean" >&2; exit 2 ;;
esac
