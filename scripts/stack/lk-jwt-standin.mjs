#!/usr/bin/env node
// Stand-in for element-hq/lk-jwt-service (the MatrixRTC authorisation service for LiveKit). Node 20 built-ins only.
//
// WHY: the real service cannot be installed here: the Go module proxy answers
// `403 This module version is not available` for every github.com/element-hq/lk-jwt-service version
// (its go.mod declares the dotless module path `lk-jwt-service`), and it is on no other registry.
// install.sh still tries the real build first; stack.sh prefers the real binary for the `current` variants.
//
// Re-implemented (not copied) from the behaviour of the real service's source, read at
// github.com/element-hq/lk-jwt-service commit a375b130a43f (2026-07-23, HEAD after v0.5.0): handler.go,
// requests.go, config.go, helper.go, delayedEventManager.go; the older APIs from the tags v0.5.0, v0.4.3 and
// v0.3.0. NOTES.md lists every place where the stand-in differs, and why.
//
// LK_JWT_STANDIN_API chooses which real version's HTTP API is served (stand-in only; default `current`):
//   current  a375b13: POST /get_token and /sfu/get with the optional delay fields (delay_id, delay_timeout,
//            delay_cs_api_url), POST /delegate_delayed_leave, /sfu_webhook (LiveKit webhooks), and the
//            delayed-leave jobs (MSC4140 restart while the participant is on the SFU, send when it left)
//   v0.5     v0.4.4–v0.5.0: /get_token parses the delay fields but ignores them; /sfu/get takes the legacy or the
//            /get_token body, anything else (e.g. legacy + delay fields) -> 400 M_BAD_JSON; no delegation
//   v0.4     v0.4.0–v0.4.3: as v0.5, but /get_token knows no delay fields (it has `delayed_event_id`), so the
//            delay fields are unknown fields: /get_token -> 400 M_NOT_JSON, /sfu/get -> 400 M_BAD_JSON
//   v0.3     v0.3.0: only /sfu/get (/get_token -> 404), lenient decoding (unknown fields ignored), the Matrix
//            room id is the LiveKit room name, identity "<user>:<device>"
//
// env (as the real service): LIVEKIT_URL, LIVEKIT_KEY/LIVEKIT_SECRET (or *_FROM_FILE, or LIVEKIT_KEY_FILE
//   "key:secret"), LIVEKIT_FULL_ACCESS_HOMESERVERS (required; "*" = everyone), LIVEKIT_JWT_BIND (default ":8080"),
//   LIVEKIT_JWT_PORT (deprecated), LIVEKIT_INSECURE_SKIP_VERIFY_TLS=YES_I_KNOW_WHAT_I_AM_DOING,
//   LIVEKIT_CS_API_URL_OVERRIDES "server_name=url,…", LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS (0 = off).
//   LIVEKIT_REDIS_URL is not supported (jobs are kept in memory, as the real service does without it).
//
// Deliberate difference (loopback safety): the OpenID userinfo lookup and the .well-known client discovery only
// go to IP literals, `localhost`, or `*.localhost`; a server name without an explicit port uses port 8448 for the
// userinfo lookup. The real service does .well-known and DNS SRV lookups for any name.
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { posix } from "node:path";

function fatal(msg) {
  console.error(`lk-jwt-standin: ${msg}`);
  process.exit(1);
}
const log = (msg, extra = {}) => console.log(JSON.stringify({ time: new Date().toISOString(), msg, ...extra }));

// ------------------------------------------------------------------------------------------ config
const APIS = ["current", "v0.5", "v0.4", "v0.3"];

function readFileOrDie(path) {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    fatal(`cannot read ${path}: ${e.message}`);
  }
}
const trimKey = (s) => s.replace(/^[ \r\n]+|[ \r\n]+$/g, ""); // Go: strings.Trim(s, " \r\n")

function parseCsApiUrlOverrides(raw) {
  const m = new Map();
  if (!raw) return m;
  for (const entry of raw.split(",")) {
    const i = entry.indexOf("=");
    const server = i < 0 ? "" : entry.slice(0, i).trim();
    const url = i < 0 ? "" : entry.slice(i + 1).trim();
    if (!server || !url)
      fatal(
        `failed parsing LIVEKIT_CS_API_URL_OVERRIDES: invalid entry ${JSON.stringify(entry)}, expected server_name=url`,
      );
    m.set(server, url);
  }
  return m;
}

function parseConfig(env) {
  const api = env.LK_JWT_STANDIN_API || "current";
  if (!APIS.includes(api)) fatal(`LK_JWT_STANDIN_API must be one of ${APIS.join(", ")}`);
  let key = env.LIVEKIT_KEY ?? "";
  let secret = env.LIVEKIT_SECRET ?? "";
  if (env.LIVEKIT_KEY_FILE) {
    const parts = readFileOrDie(env.LIVEKIT_KEY_FILE).split(":");
    if (parts.length !== 2) fatal("invalid key secret file format!");
    [key, secret] = parts;
  } else {
    if (env.LIVEKIT_KEY_FROM_FILE) key = readFileOrDie(env.LIVEKIT_KEY_FROM_FILE);
    if (env.LIVEKIT_SECRET_FROM_FILE) secret = readFileOrDie(env.LIVEKIT_SECRET_FROM_FILE);
  }
  key = trimKey(key);
  secret = trimKey(secret);
  const lkUrl = env.LIVEKIT_URL ?? "";
  if (!key || !secret || !lkUrl) fatal("LIVEKIT_KEY* / LIVEKIT_SECRET* and LIVEKIT_URL must be set");
  const fullAccessRaw = env.LIVEKIT_FULL_ACCESS_HOMESERVERS ?? "";
  if (!fullAccessRaw)
    fatal(
      "LIVEKIT_FULL_ACCESS_HOMESERVERS environment variable must be set to the homeserver(s) you intend to serve — see README for guidance",
    );
  // v0.3.0 split on "," only; later versions on commas and white space
  const fullAccess = api === "v0.3" ? fullAccessRaw.split(",") : fullAccessRaw.split(/[\s,]+/).filter(Boolean);
  if (env.LIVEKIT_JWT_BIND && env.LIVEKIT_JWT_PORT)
    fatal("LIVEKIT_JWT_BIND and LIVEKIT_JWT_PORT must not be set together");
  const bind = env.LIVEKIT_JWT_BIND || `:${env.LIVEKIT_JWT_PORT || "8080"}`;
  const m = bind.match(/^(.*):(\d+)$/);
  if (!m) fatal(`bad bind address ${bind}`);
  let sanityCheckMs = 0;
  if (env.LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS) {
    const s = env.LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS;
    if (!/^[+-]?\d+$/.test(s) || Number(s) < 0)
      fatal(`LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS must be a non-negative integer, got ${JSON.stringify(s)}`);
    sanityCheckMs = Number(s) * 1000;
  }
  if (env.LIVEKIT_REDIS_URL) log("LIVEKIT_REDIS_URL is not supported by the stand-in; jobs are kept in memory");
  return {
    api,
    key,
    secret,
    lkUrl,
    lkHttpUrl: lkUrl.replace(/^ws(s?):/, "http$1:"),
    fullAccess,
    host: m[1].replace(/^\[|\]$/g, "") || undefined, // "" = all interfaces, like Go
    port: Number(m[2]),
    skipVerifyTLS: env.LIVEKIT_INSECURE_SKIP_VERIFY_TLS === "YES_I_KNOW_WHAT_I_AM_DOING",
    csApiUrlOverrides: parseCsApiUrlOverrides(env.LIVEKIT_CS_API_URL_OVERRIDES),
    sanityCheckMs,
  };
}
const cfg = parseConfig(process.env);
const CURRENT = cfg.api === "current";

// ------------------------------------------------------------------------------------------ helpers
// Go's encoding/json escapes <, >, & and U+2028/2029; mirror it so hashes and bodies match the Go service.
const goJson = (v) =>
  JSON.stringify(v)
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/&/g, "\\u0026")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
const hashB64 = (arr) => createHash("sha256").update(goJson(arr)).digest("base64").replace(/=+$/, "");
const roomAliasFor = (room, slot) => hashB64([room, slot]);
const identityFor = (user, device, member) => hashB64([user, device, member]);
const sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });

function signJwt(claims) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const head = enc({ alg: "HS256", typ: "JWT" });
  const body = enc(claims);
  const sig = createHmac("sha256", cfg.secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}
function accessToken(identity, room) {
  const now = Math.floor(Date.now() / 1000);
  const video = { roomJoin: true, room, canPublish: true, canSubscribe: true };
  if (CURRENT) video.canUpdateOwnMetadata = true; // a375b13 "Allow participants to update their own metadata"
  return signJwt({ iss: cfg.key, sub: identity, exp: now + 3600, nbf: now, iat: now, identity, video });
}
function serverToken(video) {
  const now = Math.floor(Date.now() / 1000);
  return signJwt({ iss: cfg.key, exp: now + 600, nbf: now, iat: now, video });
}

class HttpError extends Error {
  constructor(status, errcode, error) {
    super(error);
    this.status = status;
    this.errcode = errcode;
  }
}
const badJson = (msg) => new HttpError(400, "M_BAD_JSON", msg);

// Decode like Go's encoding/json into a struct: top level object or null; keys matched exactly, else ignoring
// ASCII case; null leaves the zero value; strings, ints and nested structs must have the right JSON type; with
// `strict` (DisallowUnknownFields) an unknown key is an error. Returns the struct with zero values filled in.
function goDecode(value, shape, strict) {
  const out = {};
  for (const [k, t] of Object.entries(shape))
    out[k] = typeof t === "object" ? goDecode(null, t, strict) : t === "int" ? 0 : "";
  if (value === null) return out;
  if (typeof value !== "object" || Array.isArray(value)) throw new Error("json: cannot unmarshal into struct");
  const fields = Object.keys(shape);
  for (const [k, v] of Object.entries(value)) {
    const f = fields.find((x) => x === k) ?? fields.find((x) => x.toLowerCase() === k.toLowerCase());
    if (f === undefined) {
      if (strict) throw new Error(`json: unknown field ${JSON.stringify(k)}`);
      continue;
    }
    if (v === null) continue;
    const t = shape[f];
    if (typeof t === "object") out[f] = goDecode(v, t, strict);
    else if (t === "int") {
      if (typeof v !== "number" || !Number.isInteger(v) || Math.abs(v) > 2 ** 63)
        throw new Error(`json: cannot unmarshal ${JSON.stringify(v)} into int field ${f}`);
      out[f] = v;
    } else if (typeof v !== "string") throw new Error(`json: cannot unmarshal ${typeof v} into string field ${f}`);
    else out[f] = v;
  }
  return out;
}
function decodeBody(text, shape, strict) {
  return goDecode(JSON.parse(text), shape, strict); // throws on unreadable JSON or a wrong shape
}

const OPENID = { access_token: "string", token_type: "string", matrix_server_name: "string", expires_in: "int" };
const MEMBER = { id: "string", claimed_user_id: "string", claimed_device_id: "string" };
const DELAY = { delay_id: "string", delay_timeout: "int", delay_cs_api_url: "string" };
const SHAPES = {
  // a375b13 requests.go
  current: {
    sfu: { room_id: "string", slot_id: "string", openid_token: OPENID, member: MEMBER, ...DELAY },
    legacy: { room: "string", openid_token: OPENID, device_id: "string", ...DELAY },
    delegate: { room_id: "string", slot_id: "string", openid_token: OPENID, member: MEMBER, ...DELAY },
  },
  "v0.5": {
    sfu: { room_id: "string", slot_id: "string", openid_token: OPENID, member: MEMBER, ...DELAY },
    legacy: { room: "string", openid_token: OPENID, device_id: "string" },
  },
  "v0.4": {
    sfu: { room_id: "string", slot_id: "string", openid_token: OPENID, member: MEMBER, delayed_event_id: "string" },
    legacy: { room: "string", openid_token: OPENID, device_id: "string" },
  },
  "v0.3": { legacy: { room: "string", openid_token: OPENID, device_id: "string" } },
}[cfg.api];

// ------------------------------------------------------------------------------------------ OpenID lookup
function isLoopbackName(host) {
  return net.isIP(host) !== 0 || host === "localhost" || host.endsWith(".localhost");
}
function resolveServer(serverName) {
  // [v6]:port, v4:port, host:port, or bare name
  let port = 8448;
  const m = serverName.match(/^\[([^\]]+)\](?::(\d+))?$/) || serverName.match(/^([^:]+)(?::(\d+))?$/);
  if (!m) throw new Error(`cannot parse server name ${serverName}`);
  const host = m[1];
  if (m[2]) port = Number(m[2]);
  if (!isLoopbackName(host)) {
    throw new Error(
      `stand-in resolves only IP literals and localhost names (no well-known/SRV lookups): ${serverName}`,
    );
  }
  const isIp = net.isIP(host) !== 0;
  return { host, port, isIp, connectHost: host.endsWith(".localhost") ? "127.0.0.1" : host };
}

function httpsGet(opts) {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { method: "GET", timeout: 10000, rejectUnauthorized: !cfg.skipVerifyTLS, ...opts },
      (res) => {
        let data = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (data += c));
        res.on("end", () => resolve({ status: res.statusCode, text: data }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

async function lookupUserInfo(serverName, token) {
  if (!token || !serverName) throw new Error("missing parameters in openid token");
  const dest = resolveServer(serverName);
  const res = await httpsGet({
    host: dest.connectHost,
    port: dest.port,
    path: `/_matrix/federation/v1/openid/userinfo?access_token=${encodeURIComponent(token)}`,
    headers: { host: serverName, "user-agent": "lk-jwt-standin" },
    servername: dest.isIp ? undefined : dest.host,
  });
  if (res.status < 200 || res.status > 299) throw new Error(`userinfo HTTP ${res.status}: ${res.text.slice(0, 200)}`);
  let sub;
  try {
    sub = JSON.parse(res.text).sub;
  } catch {
    throw new Error("userinfo: bad JSON");
  }
  if (typeof sub !== "string" || !sub.includes(":")) throw new Error(`userinfo: bad sub ${sub}`);
  if (sub.slice(sub.indexOf(":") + 1) !== serverName) throw new Error(`userinfo: sub ${sub} is not on ${serverName}`);
  return sub;
}

// ------------------------------------------------------------------------------------------ client-server API URL
// As resolveCsApiUrl: LIVEKIT_CS_API_URL_OVERRIDES first, then a cached .well-known/matrix/client lookup (4 h).
const csApiUrlCache = new Map();
async function resolveCsApiUrl(serverName) {
  const override = cfg.csApiUrlOverrides.get(serverName);
  if (override) return override;
  const cached = csApiUrlCache.get(serverName);
  if (cached && cached.expiresAt > Date.now()) return cached.url;
  try {
    const dest = resolveServer(
      serverName.includes(":") || serverName.startsWith("[") ? serverName : `${serverName}:443`,
    );
    const res = await httpsGet({
      host: dest.connectHost,
      port: dest.port,
      path: "/.well-known/matrix/client",
      headers: { host: serverName, "user-agent": "lk-jwt-standin" },
      servername: dest.isIp ? undefined : dest.host,
    });
    const base = res.status === 200 ? JSON.parse(res.text)?.["m.homeserver"]?.base_url : undefined;
    if (typeof base === "string" && base) {
      csApiUrlCache.set(serverName, { url: base, expiresAt: Date.now() + 4 * 3600_000 });
      return base;
    }
    throw new Error(`no .well-known/matrix/client record found for ${serverName}`);
  } catch (e) {
    log("Failed to resolve URL of Client-Server API", { serverName, err: e.message });
    throw e;
  }
}
const canResolveCsApiUrl = (serverName) =>
  resolveCsApiUrl(serverName).then(
    () => true,
    () => false,
  );

// ------------------------------------------------------------------------------------------ LiveKit RoomService
function twirp(method, body, video) {
  return new Promise((resolve, reject) => {
    const url = new URL(`/twirp/livekit.RoomService/${method}`, cfg.lkHttpUrl);
    const data = JSON.stringify(body);
    const mod = url.protocol === "https:" ? https : http;
    const req = mod.request(
      url,
      {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(data),
          authorization: `Bearer ${serverToken(video)}`,
        },
        timeout: 10000,
        rejectUnauthorized: !cfg.skipVerifyTLS,
      },
      (res) => {
        let text = "";
        res.on("data", (c) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode, text }));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${method}: timeout`)));
    req.on("error", reject);
    req.end(data);
  });
}
async function createRoom(name) {
  const r = await twirp(
    "CreateRoom",
    { name, empty_timeout: 300, departure_timeout: 20, max_participants: 0 },
    { roomCreate: true },
  );
  if (r.status !== 200) throw new Error(`CreateRoom HTTP ${r.status}: ${r.text.slice(0, 200)}`);
}
// LiveKitParticipantExists: true = present, false = twirp not_found, throws = unknown
async function participantExists(room, identity) {
  const r = await twirp("GetParticipant", { room, identity }, { roomAdmin: true, room });
  if (r.status === 200) return true;
  let code;
  try {
    code = JSON.parse(r.text).code;
  } catch {
    /* not a twirp error body */
  }
  if (code === "not_found") return false;
  throw new Error(`GetParticipant HTTP ${r.status}: ${r.text.slice(0, 200)}`);
}

const isFullAccess = (serverName) =>
  (cfg.fullAccess.length === 1 && cfg.fullAccess[0] === "*") || cfg.fullAccess.includes(serverName);

// ------------------------------------------------------------------------------------------ delayed-event jobs
// The job of delayedEventManager.go, one per (LiveKit room, identity), in memory:
//   WaitingForInitialConnect --ParticipantConnected (webhook participant_joined) | ParticipantLookupSuccessful--> Connected
//   WaitingForInitialConnect --ParticipantConnectionAborted--> Aborted; --WaitingStateTimedOut (min(1h, delay))--> Disconnected
//   Connected: on entry and then 80 % of delay_timeout after each successful restart: POST …/{delay_id}/restart
//   Connected --participant left/aborted (webhook) | SFUParticipantGone (sanity check)--> Disconnected: POST …/send
//   Connected --restart 404 | restart failing until the deadline | CS API URL unresolvable--> Aborted (nothing sent)
//   any state --JobReplaced (a new job for the same key)--> Replaced
const DELAYED_EVENTS_ENDPOINT = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events";
const HOUR = 3600_000;
const TRANSITIONS = {
  WaitingForInitialConnect: {
    ParticipantConnected: "Connected",
    ParticipantLookupSuccessful: "Connected",
    ParticipantConnectionAborted: "Aborted",
    WaitingStateTimedOut: "Disconnected",
    JobReplaced: "Replaced",
  },
  Connected: {
    ParticipantDisconnectedIntentionally: "Disconnected",
    ParticipantConnectionAborted: "Disconnected",
    DelayedEventTimedOut: "Aborted",
    DelayedEventNotFound: "Aborted",
    CsApiUrlNotFound: "Aborted",
    SFUParticipantGone: "Disconnected",
    JobReplaced: "Replaced",
  },
  Disconnected: { JobReplaced: "Replaced" },
  Aborted: { JobReplaced: "Replaced" },
};

class Permanent extends Error {}
class RetryAfter extends Error {
  constructor(ms, msg) {
    super(msg);
    this.ms = ms;
  }
}

// backoff.Retry with an ExponentialBackOff (initial 1 s, ×1.5, ±50 %, at most 60 s) and WithMaxElapsedTime.
async function retry(op, maxElapsedMs, signal) {
  const started = Date.now();
  let interval = 1000;
  for (;;) {
    let err;
    try {
      return await op();
    } catch (e) {
      err = e;
    }
    if (err instanceof Permanent || signal.aborted) throw err;
    let next;
    if (err instanceof RetryAfter) next = err.ms;
    else {
      next = interval * (1 + 0.5 * (2 * Math.random() - 1));
      interval = Math.min(interval * 1.5, 60_000);
    }
    if (Date.now() - started + next > maxElapsedMs) throw err;
    await sleep(next, signal);
    if (signal.aborted) throw err;
  }
}

// ExecuteDelayedEventAction: POST {cs api}/…/delayed_events/{delay_id}/{restart|send}, body {}, 5 s timeout, no auth.
async function delayedEventAction(csApiUrl, delayId, action, signal) {
  const url = new URL(csApiUrl);
  url.pathname = posix.join(url.pathname, DELAYED_EVENTS_ENDPOINT, delayId, action);
  let res;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
      signal: AbortSignal.any([signal, AbortSignal.timeout(5000)]),
    });
  } catch (e) {
    log("ExecuteDelayedEventAction", { action, delayId, err: e.message });
    throw e;
  }
  const text = await res.text().catch(() => "");
  const s = res.status;
  log("ExecuteDelayedEventAction", { action, delayId, url: url.href, status: s });
  if (s === 200 || s === 204) return s;
  if (s === 404 && action === "send") return s; // already sent or cancelled: success
  if (s === 404) throw new Permanent("CS API: delayed event not found");
  if (s === 429) {
    const ra = res.headers.get("retry-after");
    if (ra && /^\d+$/.test(ra))
      throw new RetryAfter(Number(ra) * 1000, "CS API temporarily unavailable (http status code 429)");
    if (ra && !Number.isNaN(Date.parse(ra)))
      throw new RetryAfter(
        Math.max(0, Date.parse(ra) - Date.now()),
        "CS API temporarily unavailable (http status code 429)",
      );
    let ms;
    try {
      ms = JSON.parse(text).retry_after_ms;
    } catch {
      /* no hint */
    }
    if (ms > 0)
      throw new RetryAfter(Math.ceil(ms / 1000) * 1000, "CS API temporarily unavailable (http status code 429)");
  }
  if (s >= 500 || s === 429) throw new Error(`CS API temporarily unavailable (http status code ${s})`);
  throw new Error(`CS API returned unexpected status: ${s}`);
}

const jobs = new Map(); // `${room}\n${identity}` -> Job
const jobKey = (room, identity) => `${room}\n${identity}`;
let jobSeq = 0;

class Job {
  constructor(p) {
    Object.assign(this, p); // serverName, delayId, delayTimeoutMs, room, identity
    this.id = `${Date.now().toString(36)}-${++jobSeq}`;
    this.state = "WaitingForInitialConnect";
    this.ctl = new AbortController();
    this.restartDeadline = 0;
    this.restartTimer = undefined;
    this.waitingTimer = undefined;
  }
  get fields() {
    return { jobId: this.id, room: this.room, lkId: this.identity, delayId: this.delayId };
  }
  start() {
    this.waitingTimer = setTimeout(() => this.emit("WaitingStateTimedOut"), Math.min(HOUR, this.delayTimeoutMs));
    this.participantLookup();
  }
  stop() {
    if (this.ctl.signal.aborted) return;
    this.ctl.abort();
    clearTimeout(this.waitingTimer);
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
  }
  // events go through the event loop, like the Go job's EventChannel
  emit(event) {
    setImmediate(() => this.handle(event));
  }
  handle(event) {
    if (this.ctl.signal.aborted) return;
    if (this.state === "Connected" && event === "DelayedEventReset") return this.startRestart();
    const next = TRANSITIONS[this.state]?.[event];
    if (!next) return log("Job: FSM event ignored in current state", { state: this.state, event, ...this.fields });
    const old = this.state;
    log("Job: FSM transition", { from: old, to: next, event, ...this.fields });
    this.state = next;
    if (old === "WaitingForInitialConnect") clearTimeout(this.waitingTimer);
    if (old === "Connected") {
      clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
    }
    if (next === "Connected") {
      this.restartDeadline = Date.now() + this.delayTimeoutMs;
      this.emit("DelayedEventReset"); // restart at once: the time since the client scheduled it is unknown
    } else if (next === "Disconnected") this.sendLeave(event);
    else if (next === "Aborted") this.done();
  }
  done() {
    if (jobs.get(jobKey(this.room, this.identity)) === this) {
      jobs.delete(jobKey(this.room, this.identity));
      log("Handler: job done, cleaning up", this.fields);
    }
    this.stop();
  }
  async participantLookup() {
    const signal = this.ctl.signal;
    try {
      await retry(
        async () => {
          if (!(await participantExists(this.room, this.identity)))
            throw new Error("livekit: participant not currently present");
        },
        Math.min(HOUR, this.delayTimeoutMs),
        signal,
      );
    } catch (e) {
      if (!signal.aborted) log("participantLookup: Phase 1 failed", { ...this.fields, err: e.message });
      return;
    }
    if (signal.aborted) return;
    this.emit("ParticipantLookupSuccessful");
    if (!cfg.sanityCheckMs) return;
    for (;;) {
      await sleep(cfg.sanityCheckMs, signal);
      if (signal.aborted) return;
      try {
        if (!(await participantExists(this.room, this.identity))) {
          log("participantLookup: Phase 2: participant no longer on SFU", this.fields);
          return this.emit("SFUParticipantGone");
        }
      } catch (e) {
        log("participantLookup: Phase 2: transport error (ignored)", { ...this.fields, err: e.message });
      }
    }
  }
  async startRestart() {
    const remaining = this.restartDeadline - Date.now();
    if (remaining <= 0) return this.emit("DelayedEventTimedOut");
    const signal = this.ctl.signal;
    let csApiUrl;
    try {
      csApiUrl = await resolveCsApiUrl(this.serverName);
    } catch {
      return this.emit("CsApiUrlNotFound");
    }
    try {
      await retry(() => delayedEventAction(csApiUrl, this.delayId, "restart", signal), remaining, signal);
    } catch (e) {
      if (signal.aborted) return;
      log("Job: ActionRestart failed", { ...this.fields, err: e.message });
      return this.emit(e instanceof Permanent ? "DelayedEventNotFound" : "DelayedEventTimedOut");
    }
    const newDeadline = Date.now() + this.delayTimeoutMs;
    setImmediate(() => {
      if (signal.aborted || this.state !== "Connected") return; // a late result after leaving Connected
      this.restartDeadline = newDeadline;
      clearTimeout(this.restartTimer);
      this.restartTimer = setTimeout(() => this.handle("DelayedEventReset"), (this.delayTimeoutMs * 8) / 10);
    });
  }
  async sendLeave(event) {
    // clamp to [1 s, 1 h]
    const remaining = Math.min(HOUR, Math.max(1000, this.restartDeadline - Date.now()));
    const signal = this.ctl.signal;
    try {
      const csApiUrl = await resolveCsApiUrl(this.serverName);
      const status = await retry(() => delayedEventAction(csApiUrl, this.delayId, "send", signal), remaining, signal);
      if (status === 404) log("Job: ActionSend — delayed event already sent or cancelled", { event, ...this.fields });
    } catch (e) {
      if (signal.aborted) return;
      log("Job: ActionSend failed", { event, ...this.fields, err: e.message });
    }
    if (!signal.aborted) this.done();
  }
}

function addDelayedEventJob(p) {
  if (!(p.delayTimeoutMs > 0)) throw badJson(`invalid delay timeout for delayed event job: ${p.delayTimeoutMs}ms`);
  const key = jobKey(p.room, p.identity);
  const job = new Job(p);
  const existing = jobs.get(key);
  if (existing) {
    log("Handler: replacing existing job", { room: p.room, lkId: p.identity, oldJobId: existing.id, newJobId: job.id });
    existing.handle("JobReplaced");
    existing.stop();
  }
  jobs.set(key, job);
  job.start();
  log("Handler: job created", { ...job.fields, delayTimeoutMs: p.delayTimeoutMs, serverName: p.serverName });
}

// ------------------------------------------------------------------------------------------ LiveKit webhook
// webhook.ReceiveWebhookEvent: `Authorization: <JWT>` (HS256, iss = an API key we know, signed with its secret,
// exp/nbf with 1 min leeway) whose `sha256` claim is the base64 SHA-256 of the raw body; then protojson.
function verifyWebhook(raw, authHeader) {
  if (!authHeader) throw new Error("authorization header could not be found");
  const parts = authHeader.split(".");
  if (parts.length !== 3) throw new Error("token is malformed");
  let header;
  let claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], "base64url").toString());
    claims = JSON.parse(Buffer.from(parts[1], "base64url").toString());
  } catch {
    throw new Error("token is malformed");
  }
  if (header?.alg !== "HS256") throw new Error("token is unverifiable: signing method is invalid");
  if (claims?.iss !== cfg.key) throw new Error("API secret could not be found");
  const expected = createHmac("sha256", cfg.secret).update(`${parts[0]}.${parts[1]}`).digest();
  const got = Buffer.from(parts[2], "base64url");
  if (got.length !== expected.length || !timingSafeEqual(got, expected)) throw new Error("token signature is invalid");
  const now = Date.now() / 1000;
  if (typeof claims.exp === "number" && now > claims.exp + 60)
    throw new Error("token has invalid claims: token is expired");
  if (typeof claims.nbf === "number" && now < claims.nbf - 60)
    throw new Error("token has invalid claims: token is not valid yet");
  const sum = Buffer.from(createHash("sha256").update(raw).digest("base64"));
  const claimed = Buffer.from(typeof claims.sha256 === "string" ? claims.sha256 : "");
  if (claimed.length !== sum.length || !timingSafeEqual(claimed, sum))
    throw new Error("could not verify authenticity of message");
  return JSON.parse(raw.toString("utf8"));
}

function handleSfuWebhook(raw, req) {
  let event;
  try {
    event = verifyWebhook(raw, req.headers.authorization);
  } catch (e) {
    log("Handler: SFU webhook error", { err: e.message });
    return;
  }
  const type = event?.event;
  const room = event?.room?.name;
  const identity = event?.participant?.identity;
  let signal;
  if (type === "participant_joined") signal = "ParticipantConnected";
  else if (type === "participant_left" || type === "participant_connection_aborted") {
    const reason = event.participant?.disconnectReason ?? event.participant?.disconnect_reason;
    signal =
      reason === "CLIENT_INITIATED" || reason === 1
        ? "ParticipantDisconnectedIntentionally"
        : "ParticipantConnectionAborted";
  } else return;
  log("Handler: SFU webhook", { event: type, room, lkId: identity, signal });
  jobs.get(jobKey(room, identity))?.handle(signal);
}

// ------------------------------------------------------------------------------------------ handlers (current)
async function verifyOpenIdToken(oid, claimedUserId) {
  let sub;
  try {
    sub = await lookupUserInfo(oid.matrix_server_name, oid.access_token);
  } catch (e) {
    log("OpenIDUserInfo: Failed to look up user info", { err: e.message, server: oid.matrix_server_name });
    throw new HttpError(401, "M_UNAUTHORIZED", "The request could not be authorised.");
  }
  if (claimedUserId && claimedUserId !== sub) {
    log("Handler: ClaimedUserID does not match token subject", { claimedUserId, matrixId: sub });
    throw new HttpError(401, "M_UNAUTHORIZED", "The request could not be authorised.");
  }
  return sub;
}

function validateDelayFields(r) {
  const all = r.delay_id !== "" && r.delay_timeout > 0;
  const any = r.delay_id !== "" || r.delay_timeout > 0;
  if (any && !all) throw badJson("The request body is missing `delay_id` or `delay_timeout`");
}

function validateSFURequest(r) {
  if (!r.room_id || !r.slot_id) throw badJson("The request body is missing `room_id` or `slot_id`");
  if (!r.member.id || !r.member.claimed_user_id || !r.member.claimed_device_id)
    throw badJson("The request body `member` is missing a `id`, `claimed_user_id` or `claimed_device_id`");
  if (!r.openid_token.access_token || !r.openid_token.matrix_server_name)
    throw badJson("The request body `openid_token` is missing a `access_token` or `matrix_server_name`");
  if (CURRENT) validateDelayFields(r);
}
function validateLegacyRequest(r) {
  if (!r.room) throw badJson("Missing room parameter");
  if (!r.openid_token.access_token || !r.openid_token.matrix_server_name)
    throw badJson("Missing OpenID token parameters");
  if (CURRENT) validateDelayFields(r);
}
function validateDelegateRequest(r) {
  if (!r.room_id || !r.slot_id) throw badJson("The request body is missing `room_id` or `slot_id`");
  if (!r.member.id || !r.member.claimed_user_id || !r.member.claimed_device_id)
    throw badJson("The request body `member` is missing `id`, `claimed_user_id` or `claimed_device_id`");
  if (!r.openid_token.access_token || !r.openid_token.matrix_server_name)
    throw badJson("The request body `openid_token` is missing `access_token` or `matrix_server_name`");
  if (!r.delay_id || !(r.delay_timeout > 0)) throw badJson("The request body is missing `delay_id` or `delay_timeout`");
}

const RESOLVE_FAILED = () => badJson("Unable to resolve client-server API");
const DELEGATION_FORBIDDEN_MSG = "Delegation of delayed events is only supported for full access users";

// processSFURequest / processLegacySFURequest of a375b13 (and, without the delay parts, of v0.4/v0.5)
async function issueToken({ oid, claimedUserId, lookupErr, roomAlias, identityOf, delay, what }) {
  let matrixId;
  if (lookupErr) {
    try {
      matrixId = await lookupUserInfo(oid.matrix_server_name, oid.access_token);
    } catch (e) {
      log("Failed to look up user info", { err: e.message, server: oid.matrix_server_name });
      throw lookupErr;
    }
    if (claimedUserId !== undefined && claimedUserId !== matrixId) {
      log("Claimed user ID does not match token subject", { claimedUserId, matrixId });
      throw new HttpError(401, "M_UNAUTHORIZED", "The request could not be authorised.");
    }
  } else matrixId = await verifyOpenIdToken(oid, claimedUserId);
  const full = isFullAccess(oid.matrix_server_name);
  const delegation = CURRENT && delay?.delay_id !== undefined && delay.delay_id !== "";
  if (delegation && !full) throw badJson(DELEGATION_FORBIDDEN_MSG);
  const identity = identityOf(matrixId);
  const jwt = accessToken(identity, roomAlias);
  if (full) {
    if (delegation && !(await canResolveCsApiUrl(oid.matrix_server_name))) throw RESOLVE_FAILED();
    try {
      await createRoom(roomAlias);
    } catch (e) {
      log("CreateLiveKitRoom: Error creating room", { room: roomAlias, err: e.message });
      throw new HttpError(500, "M_UNKNOWN", "Unable to create room on SFU");
    }
    if (delegation) {
      log("Handler: scheduling delayed event job", { room: roomAlias, lkId: identity, delayId: delay.delay_id });
      addDelayedEventJob({
        serverName: oid.matrix_server_name,
        delayId: delay.delay_id,
        delayTimeoutMs: delay.delay_timeout,
        room: roomAlias,
        identity,
      });
    }
  }
  log(`Handler: generated ${what} access token`, {
    matrixId,
    access: full ? "full" : "restricted",
    room: roomAlias,
    lkId: identity,
    delegation,
  });
  return { url: cfg.lkUrl, jwt };
}

function processSFURequest(r) {
  return issueToken({
    oid: r.openid_token,
    claimedUserId: r.member.claimed_user_id,
    lookupErr: CURRENT ? undefined : new HttpError(401, "M_UNAUTHORIZED", "The request could not be authorised."),
    roomAlias: roomAliasFor(r.room_id, r.slot_id),
    identityOf: (uid) => identityFor(uid, r.member.claimed_device_id, r.member.id),
    delay: r,
    what: "SFU",
  });
}
function processLegacyRequest(r) {
  return issueToken({
    oid: r.openid_token,
    claimedUserId: undefined,
    lookupErr: CURRENT
      ? undefined
      : new HttpError(500, "M_LOOKUP_FAILED", "Failed to look up user info from homeserver"),
    roomAlias: roomAliasFor(r.room, "m.call#ROOM"),
    identityOf: (uid) => `${uid}:${r.device_id}`,
    delay: r,
    what: "Legacy SFU",
  });
}

const NOT_JSON = () => new HttpError(400, "M_NOT_JSON", "Error reading request");
function decodeOr(text, shape, strict, err) {
  try {
    return decodeBody(text, shape, strict);
  } catch (e) {
    log("Handler: error reading body", { err: e.message });
    throw err();
  }
}

async function handleGetToken(text) {
  const r = decodeOr(text, SHAPES.sfu, true, NOT_JSON);
  validateSFURequest(r);
  return processSFURequest(r);
}

const MALFORMED = () =>
  badJson(
    "The request body was malformed, missing required fields, or contained invalid values (e.g. missing `room_id`, `slot_id`, or `openid_token`).",
  );
async function handleSfuGet(text) {
  if (CURRENT) {
    const r = decodeOr(text, SHAPES.legacy, true, NOT_JSON);
    validateLegacyRequest(r);
    return processLegacyRequest(r);
  }
  // v0.4/v0.5 mapSFURequest: the legacy body, else the /get_token body; neither -> M_BAD_JSON
  for (const [shape, validate, process] of [
    [SHAPES.legacy, validateLegacyRequest, processLegacyRequest],
    [SHAPES.sfu, validateSFURequest, processSFURequest],
  ]) {
    let r;
    try {
      r = decodeBody(text, shape, true);
    } catch {
      continue;
    }
    validate(r);
    return process(r);
  }
  throw MALFORMED();
}

async function handleDelegateDelayedLeave(text) {
  const r = decodeOr(text, SHAPES.delegate, true, NOT_JSON);
  validateDelegateRequest(r);
  const matrixId = await verifyOpenIdToken(r.openid_token, r.member.claimed_user_id);
  if (!isFullAccess(r.openid_token.matrix_server_name))
    throw new HttpError(403, "M_FORBIDDEN", DELEGATION_FORBIDDEN_MSG);
  const identity = identityFor(matrixId, r.member.claimed_device_id, r.member.id);
  const room = roomAliasFor(r.room_id, r.slot_id);
  if (!(await canResolveCsApiUrl(r.openid_token.matrix_server_name))) throw RESOLVE_FAILED();
  log("Handler: scheduling delayed event job (delegate_delayed_leave)", { room, lkId: identity, delayId: r.delay_id });
  addDelayedEventJob({
    serverName: r.openid_token.matrix_server_name,
    delayId: r.delay_id,
    delayTimeoutMs: r.delay_timeout,
    room,
    identity,
  });
  return {};
}

// v0.3.0 handle(): lenient decoding, the room id as the LiveKit room
async function handleSfuGetV03(text) {
  let r;
  try {
    r = decodeBody(text, SHAPES.legacy, false);
  } catch (e) {
    log("Error decoding JSON", { err: e.message });
    throw new HttpError(400, "M_NOT_JSON", "Error decoding JSON");
  }
  if (!r.room) throw badJson("Missing parameters");
  let sub;
  try {
    sub = await lookupUserInfo(r.openid_token.matrix_server_name, r.openid_token.access_token);
  } catch (e) {
    log("Failed to look up user info", { err: e.message });
    throw new HttpError(500, "M_LOOKUP_FAILED", "Failed to look up user info from homeserver");
  }
  const full = isFullAccess(r.openid_token.matrix_server_name);
  const identity = `${sub}:${r.device_id}`;
  const jwt = accessToken(identity, r.room);
  if (full) {
    try {
      await createRoom(r.room);
    } catch (e) {
      log("Unable to create room", { room: r.room, err: e.message });
      throw new HttpError(500, "M_UNKNOWN", "Unable to create room on SFU");
    }
  }
  log("token issued (v0.3 /sfu/get)", { matrixId: sub, access: full ? "full" : "restricted", room: r.room });
  return { url: cfg.lkUrl, jwt };
}

// ------------------------------------------------------------------------------------------ HTTP server
const ROUTES = {
  current: {
    "/sfu/get": handleSfuGet,
    "/get_token": handleGetToken,
    "/delegate_delayed_leave": handleDelegateDelayedLeave,
  },
  "v0.5": { "/sfu/get": handleSfuGet, "/get_token": handleGetToken },
  "v0.4": { "/sfu/get": handleSfuGet, "/get_token": handleGetToken },
  "v0.3": { "/sfu/get": handleSfuGetV03 },
}[cfg.api];

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > 1 << 20) return req.destroy(new Error("body too large"));
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function sendJson(res, status, obj, contentType = "application/json") {
  const body = `${goJson(obj)}\n`;
  if (contentType) res.setHeader("content-type", contentType);
  res.writeHead(status);
  res.end(body);
}

const server = http.createServer(async (req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  if (path === "/healthz") {
    res.writeHead(req.method === "GET" || (req.method === "HEAD" && cfg.api !== "v0.3") ? 200 : 405);
    return res.end();
  }
  if (path === "/sfu_webhook" && CURRENT) {
    const raw = await readBody(req).catch(() => Buffer.alloc(0));
    handleSfuWebhook(raw, req);
    res.writeHead(200); // the real handler never writes a status, not even on a bad signature
    return res.end();
  }
  const route = ROUTES[path];
  if (!route) {
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff" });
    return res.end("404 page not found\n");
  }
  // v0.3.0 sets only the CORS headers up front (JSON content type on success only); later versions both
  if (cfg.api !== "v0.3") res.setHeader("content-type", "application/json");
  res.setHeader("access-control-allow-origin", "*");
  res.setHeader("access-control-allow-methods", "POST");
  res.setHeader("access-control-allow-headers", "Accept, Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token");
  if (req.method === "OPTIONS") {
    res.writeHead(200);
    return res.end();
  }
  if (req.method !== "POST") {
    res.writeHead(405);
    return res.end();
  }
  let text;
  try {
    text = (await readBody(req)).toString("utf8");
  } catch {
    return;
  }
  try {
    sendJson(res, 200, await route(text));
  } catch (e) {
    if (e instanceof HttpError) {
      log("request failed", { path, status: e.status, errcode: e.errcode, error: e.message });
      // v0.3.0 writes errors without a content type; Go then sniffs the JSON text as text/plain
      return sendJson(
        res,
        e.status,
        { errcode: e.errcode, error: e.message },
        cfg.api === "v0.3" ? "text/plain; charset=utf-8" : undefined,
      );
    }
    log("internal error", { path, error: e.message });
    sendJson(res, 500, { errcode: "M_UNKNOWN", error: "Internal Server Error" });
  }
});

server.on("error", (e) => fatal(e.message));
server.listen(cfg.port, cfg.host, () => {
  log(`Starting service (stand-in for lk-jwt-service, API ${cfg.api})`, {
    LIVEKIT_URL: cfg.lkUrl,
    LIVEKIT_JWT_BIND: `${cfg.host ?? ""}:${cfg.port}`,
    LIVEKIT_FULL_ACCESS_HOMESERVERS: cfg.fullAccess,
    LIVEKIT_CS_API_URL_OVERRIDES: Object.fromEntries(cfg.csApiUrlOverrides),
    SanityCheckInterval: cfg.sanityCheckMs ? `${cfg.sanityCheckMs / 1000}s` : "disabled",
    SkipVerifyTLS: cfg.skipVerifyTLS,
    routes: Object.keys(ROUTES).concat(CURRENT ? ["/sfu_webhook"] : [], ["/healthz"]),
  });
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
