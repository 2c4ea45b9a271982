#!/usr/bin/env node
// Stand-in for element-hq/lk-jwt-service v0.5.0 (the MatrixRTC authorisation service for LiveKit).
// Node 20 built-ins only.
//
// WHY: the real service cannot be installed here: the Go module proxy answers
// `403 This module version is not available` for every github.com/element-hq/lk-jwt-service version
// (its go.mod declares the dotless module path `lk-jwt-service`), and it is on no other registry.
// install.sh still tries the real build first; stack.sh prefers the real binary when present.
//
// Written from the documented v0.5.0 HTTP contract (shared/reference/backend.md §2), not from its source:
//   env   LIVEKIT_URL, LIVEKIT_KEY/LIVEKIT_SECRET (or *_FROM_FILE, or LIVEKIT_KEY_FILE "key:secret"),
//         LIVEKIT_FULL_ACCESS_HOMESERVERS (required; "*" = everyone), LIVEKIT_JWT_BIND (default ":8080"),
//         LIVEKIT_JWT_PORT (deprecated), LIVEKIT_INSECURE_SKIP_VERIFY_TLS=YES_I_KNOW_WHAT_I_AM_DOING
//   GET|HEAD /healthz -> 200
//   POST /get_token {room_id, slot_id, openid_token, member{id, claimed_user_id, claimed_device_id}, delay_*?}
//   POST /sfu/get   {room, openid_token, device_id}   (legacy; the /get_token body is accepted too)
//   -> 200 {"url": LIVEKIT_URL, "jwt": ...}; errors {"errcode", "error"} with the statuses of the reference table.
//   Full-access users: RoomService.CreateRoom(name=alias, empty_timeout 300, departure_timeout 20) before replying.
//
// Deliberate difference (loopback safety): the OpenID userinfo lookup only goes to IP literals,
// `localhost`, or `*.localhost`; a server name without an explicit port uses port 8448. The real service would do
// a .well-known lookup on port 443 and DNS SRV queries for names without a port; the stand-in never does.
import { createHash, createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";

function fatal(msg) {
  console.error(`lk-jwt-standin: ${msg}`);
  process.exit(1);
}
const log = (msg, extra = {}) => console.log(JSON.stringify({ time: new Date().toISOString(), msg, ...extra }));

// ------------------------------------------------------------------------------------------ config
function readTrimmed(path) {
  try {
    return readFileSync(path, "utf8").trim();
  } catch (e) {
    fatal(`cannot read ${path}: ${e.message}`);
  }
}
function parseConfig(env) {
  let key = (env.LIVEKIT_KEY ?? "").trim();
  let secret = (env.LIVEKIT_SECRET ?? "").trim();
  if (env.LIVEKIT_KEY_FROM_FILE) key = readTrimmed(env.LIVEKIT_KEY_FROM_FILE);
  if (env.LIVEKIT_SECRET_FROM_FILE) secret = readTrimmed(env.LIVEKIT_SECRET_FROM_FILE);
  if (env.LIVEKIT_KEY_FILE) {
    const kv = readTrimmed(env.LIVEKIT_KEY_FILE);
    const i = kv.indexOf(":");
    if (i < 0) fatal('LIVEKIT_KEY_FILE must contain "key:secret"');
    key = kv.slice(0, i).trim();
    secret = kv.slice(i + 1).trim();
  }
  const lkUrl = (env.LIVEKIT_URL ?? "").trim();
  if (!key || !secret || !lkUrl) fatal("LIVEKIT_KEY, LIVEKIT_SECRET and LIVEKIT_URL environment variables must be set");
  const fullAccess = (env.LIVEKIT_FULL_ACCESS_HOMESERVERS ?? "").split(/[\s,]+/).filter(Boolean);
  if (fullAccess.length === 0) fatal("LIVEKIT_FULL_ACCESS_HOMESERVERS must be set");
  if (env.LIVEKIT_JWT_BIND && env.LIVEKIT_JWT_PORT)
    fatal("LIVEKIT_JWT_BIND and LIVEKIT_JWT_PORT are mutually exclusive");
  let bind = env.LIVEKIT_JWT_BIND || (env.LIVEKIT_JWT_PORT ? `:${env.LIVEKIT_JWT_PORT}` : ":8080");
  const m = bind.match(/^(.*):(\d+)$/);
  if (!m) fatal(`bad bind address ${bind}`);
  const host = m[1].replace(/^\[|\]$/g, "") || undefined; // "" = all interfaces, like Go
  return {
    key,
    secret,
    lkUrl,
    lkHttpUrl: lkUrl.replace(/^ws(s?):/, "http$1:"),
    fullAccess,
    host,
    port: Number(m[2]),
    skipVerifyTLS: env.LIVEKIT_INSECURE_SKIP_VERIFY_TLS === "YES_I_KNOW_WHAT_I_AM_DOING",
  };
}
const cfg = parseConfig(process.env);

// ------------------------------------------------------------------------------------------ helpers
// Go's encoding/json escapes <, >, & and U+2028/2029; mirror it so hashes match the Go service.
const goJson = (v) =>
  JSON.stringify(v)
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/&/g, "\\u0026")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
const hashB64 = (arr) => createHash("sha256").update(goJson(arr)).digest("base64").replace(/=+$/, "");

function signJwt(claims) {
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const head = enc({ alg: "HS256", typ: "JWT" });
  const body = enc(claims);
  const sig = createHmac("sha256", cfg.secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}
function accessToken(identity, room) {
  const now = Math.floor(Date.now() / 1000);
  return signJwt({
    iss: cfg.key,
    sub: identity,
    exp: now + 3600,
    nbf: now,
    iat: now,
    identity,
    video: { roomJoin: true, room, canPublish: true, canSubscribe: true },
  });
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

// Strict decode like Go's DisallowUnknownFields: only known fields, with the right JSON types.
function strictShape(obj, shape) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) return false;
  for (const [k, v] of Object.entries(obj)) {
    if (!(k in shape)) return false;
    const t = shape[k];
    if (v === null) continue;
    if (typeof t === "object") {
      if (!strictShape(v, t)) return false;
    } else if (t === "int") {
      if (typeof v !== "number" || !Number.isInteger(v)) return false;
    } else if (typeof v !== t) return false;
  }
  return true;
}
const OPENID = { access_token: "string", token_type: "string", matrix_server_name: "string", expires_in: "int" };
const NEW_SHAPE = {
  room_id: "string",
  slot_id: "string",
  openid_token: OPENID,
  member: { id: "string", claimed_user_id: "string", claimed_device_id: "string" },
  delay_id: "string",
  delay_timeout: "int",
  delay_cs_api_url: "string",
};
const LEGACY_SHAPE = { room: "string", openid_token: OPENID, device_id: "string" };

// ------------------------------------------------------------------------------------------ OpenID lookup
function resolveServer(serverName) {
  // [v6]:port, v4:port, host:port, or bare name
  let port = 8448;
  const m = serverName.match(/^\[([^\]]+)\](?::(\d+))?$/) || serverName.match(/^([^:]+)(?::(\d+))?$/);
  if (!m) throw new Error(`cannot parse server name ${serverName}`);
  const host = m[1];
  if (m[2]) port = Number(m[2]);
  const isIp = net.isIP(host) !== 0;
  if (!isIp && host !== "localhost" && !host.endsWith(".localhost")) {
    throw new Error(
      `stand-in resolves only IP literals and localhost names (no well-known/SRV lookups): ${serverName}`,
    );
  }
  return { host, port, isIp, connectHost: host.endsWith(".localhost") ? "127.0.0.1" : host };
}

function lookupUserInfo(serverName, token) {
  return new Promise((resolve, reject) => {
    let dest;
    try {
      dest = resolveServer(serverName);
    } catch (e) {
      return reject(e);
    }
    const req = https.request(
      {
        host: dest.connectHost,
        port: dest.port,
        method: "GET",
        path: `/_matrix/federation/v1/openid/userinfo?access_token=${encodeURIComponent(token)}`,
        headers: { host: serverName, "user-agent": "lk-jwt-standin" },
        servername: dest.isIp ? undefined : dest.host,
        rejectUnauthorized: !cfg.skipVerifyTLS,
        timeout: 10000,
      },
      (res) => {
        let data = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (data += c));
        res.on("end", () => {
          if (res.statusCode < 200 || res.statusCode > 299) {
            return reject(new Error(`userinfo HTTP ${res.statusCode}: ${data.slice(0, 200)}`));
          }
          let sub;
          try {
            sub = JSON.parse(data).sub;
          } catch {
            return reject(new Error("userinfo: bad JSON"));
          }
          if (typeof sub !== "string" || !sub.includes(":")) return reject(new Error(`userinfo: bad sub ${sub}`));
          if (sub.slice(sub.indexOf(":") + 1) !== serverName) {
            return reject(new Error(`userinfo: sub ${sub} is not on ${serverName}`));
          }
          resolve(sub);
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("userinfo: timeout")));
    req.on("error", reject);
    req.end();
  });
}

// ------------------------------------------------------------------------------------------ LiveKit CreateRoom
function createRoom(name) {
  return new Promise((resolve, reject) => {
    const url = new URL("/twirp/livekit.RoomService/CreateRoom", cfg.lkHttpUrl);
    const body = JSON.stringify({ name, empty_timeout: 300, departure_timeout: 20, max_participants: 0 });
    const mod = url.protocol === "https:" ? https : http;
    const req = mod.request(
      url,
      {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
          authorization: `Bearer ${serverToken({ roomCreate: true })}`,
        },
        timeout: 10000,
        rejectUnauthorized: !cfg.skipVerifyTLS,
      },
      (res) => {
        let data = "";
        res.on("data", (c) => (data += c));
        res.on("end", () =>
          res.statusCode === 200
            ? resolve(data)
            : reject(new Error(`CreateRoom HTTP ${res.statusCode}: ${data.slice(0, 200)}`)),
        );
      },
    );
    req.on("timeout", () => req.destroy(new Error("CreateRoom: timeout")));
    req.on("error", reject);
    req.end(body);
  });
}

const isFullAccess = (serverName) => cfg.fullAccess.includes("*") || cfg.fullAccess.includes(serverName);

// ------------------------------------------------------------------------------------------ handlers
async function issue({ roomId, slotId, openid, identityFor, lookupErr }) {
  let userId;
  try {
    userId = await lookupUserInfo(openid.matrix_server_name, openid.access_token);
  } catch (e) {
    log("openid lookup failed", { error: e.message, server: openid.matrix_server_name });
    throw lookupErr;
  }
  const identity = identityFor(userId);
  const alias = hashB64([roomId, slotId]);
  if (isFullAccess(openid.matrix_server_name)) {
    try {
      await createRoom(alias);
      log("room created (or exists)", { room: alias });
    } catch (e) {
      log("CreateRoom failed", { error: e.message });
      throw new HttpError(500, "M_UNKNOWN", "Unable to create room on SFU");
    }
  } else {
    log("restricted user: room not created", { server: openid.matrix_server_name, room: alias });
  }
  return { userId, jwt: accessToken(identity, alias) };
}

const UNAUTHORIZED = () => new HttpError(401, "M_UNAUTHORIZED", "The request could not be authorised.");

async function handleGetToken(body) {
  let req;
  try {
    req = JSON.parse(body);
  } catch {
    throw new HttpError(400, "M_NOT_JSON", "Error reading request");
  }
  if (!strictShape(req, NEW_SHAPE)) throw new HttpError(400, "M_NOT_JSON", "Error reading request");
  return getTokenFromNewShape(req);
}

async function getTokenFromNewShape(req) {
  if (!req.room_id || !req.slot_id)
    throw new HttpError(400, "M_BAD_JSON", "The request body is missing `room_id` or `slot_id`");
  const mem = req.member ?? {};
  if (!mem.id || !mem.claimed_user_id || !mem.claimed_device_id) {
    throw new HttpError(
      400,
      "M_BAD_JSON",
      "The request body `member` is missing a `id`, `claimed_user_id` or `claimed_device_id`",
    );
  }
  const oid = req.openid_token ?? {};
  if (!oid.access_token || !oid.matrix_server_name) {
    throw new HttpError(
      400,
      "M_BAD_JSON",
      "The request body `openid_token` is missing a `access_token` or `matrix_server_name`",
    );
  }
  const { userId, jwt } = await issue({
    roomId: req.room_id,
    slotId: req.slot_id,
    openid: oid,
    identityFor: (uid) => {
      if (uid !== mem.claimed_user_id) throw UNAUTHORIZED();
      return hashB64([uid, mem.claimed_device_id, mem.id]);
    },
    lookupErr: UNAUTHORIZED(),
  });
  log("token issued", { endpoint: "/get_token", user: userId });
  return { url: cfg.lkUrl, jwt };
}

async function handleSFUGet(body) {
  let req;
  try {
    req = JSON.parse(body);
  } catch {
    throw new HttpError(
      400,
      "M_BAD_JSON",
      "The request body was malformed, missing required fields, or contained invalid values (e.g. missing `room_id`, `slot_id`, or `openid_token`).",
    );
  }
  if (strictShape(req, LEGACY_SHAPE)) {
    if (!req.room) throw new HttpError(400, "M_BAD_JSON", "Missing room parameter");
    const oid = req.openid_token ?? {};
    if (!oid.access_token || !oid.matrix_server_name)
      throw new HttpError(400, "M_BAD_JSON", "Missing OpenID token parameters");
    const { userId, jwt } = await issue({
      roomId: req.room,
      slotId: "m.call#ROOM",
      openid: oid,
      identityFor: (uid) => `${uid}:${req.device_id}`,
      lookupErr: new HttpError(500, "M_LOOKUP_FAILED", "Failed to look up user info from homeserver"),
    });
    log("token issued", { endpoint: "/sfu/get", user: userId });
    return { url: cfg.lkUrl, jwt };
  }
  if (strictShape(req, NEW_SHAPE)) return getTokenFromNewShape(req);
  throw new HttpError(
    400,
    "M_BAD_JSON",
    "The request body was malformed, missing required fields, or contained invalid values (e.g. missing `room_id`, `slot_id`, or `openid_token`).",
  );
}

function send(res, status, obj) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(obj === undefined ? "" : JSON.stringify(obj) + "\n");
}

const server = http.createServer((req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  if (path === "/healthz") {
    if (req.method === "GET" || req.method === "HEAD") {
      res.writeHead(200);
      return res.end();
    }
    res.writeHead(405);
    return res.end();
  }
  const route = { "/get_token": handleGetToken, "/sfu/get": handleSFUGet }[path];
  if (!route) {
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
    return res.end("404 page not found\n");
  }
  res.setHeader("Access-Control-Allow-Origin", "*");
  res.setHeader("Access-Control-Allow-Methods", "POST");
  res.setHeader("Access-Control-Allow-Headers", "Accept, Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token");
  if (req.method === "OPTIONS") return send(res, 200);
  if (req.method !== "POST") return send(res, 405);
  let body = "";
  req.setEncoding("utf8");
  req.on("data", (c) => {
    body += c;
    if (body.length > 1 << 20) req.destroy();
  });
  req.on("end", async () => {
    try {
      send(res, 200, await route(body));
    } catch (e) {
      if (e instanceof HttpError) {
        log("request failed", { path, status: e.status, errcode: e.errcode });
        return send(res, e.status, { errcode: e.errcode, error: e.message });
      }
      log("internal error", { path, error: e.message });
      send(res, 500, { errcode: "M_UNKNOWN", error: "Internal Server Error" });
    }
  });
});

server.on("error", (e) => fatal(e.message));
server.listen(cfg.port, cfg.host, () => {
  log("Starting service (stand-in for lk-jwt-service v0.5.0)", {
    LIVEKIT_URL: cfg.lkUrl,
    LIVEKIT_JWT_BIND: `${cfg.host ?? ""}:${cfg.port}`,
    LIVEKIT_FULL_ACCESS_HOMESERVERS: cfg.fullAccess,
    SkipVerifyTLS: cfg.skipVerifyTLS,
  });
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
