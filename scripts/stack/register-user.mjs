#!/usr/bin/env node
// Register a Matrix user on the stack's Synapse via the shared-secret admin API.
// Node 20 built-ins only.
//
//   node register-user.mjs [username] [password] [--admin] [--stack PATH/stack.json]
//        [--hs http://127.0.0.1:8008 --secret SECRET]
//
// Prints JSON {user_id, access_token, device_id} on stdout.
// Defaults: username user-<random>, password random; homeserver URL and secret from stack.json
// ($STACK_JSON, else $STACK_RUN_DIR/stack.json, else ${MATRIXRTC_STACK_CACHE:-~/.cache/matrixrtc-stack}/run/stack.json).
//
// Also importable: import { registerUser, loadStack } from './register-user.mjs'.
import { createHmac, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

export function stackJsonPath() {
  if (process.env.STACK_JSON) return process.env.STACK_JSON;
  const cache = process.env.MATRIXRTC_STACK_CACHE || join(homedir(), ".cache", "matrixrtc-stack");
  const run = process.env.STACK_RUN_DIR || join(cache, "run");
  return join(run, "stack.json");
}

export function loadStack(path = stackJsonPath()) {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`cannot read ${path} (is the stack up? run scripts/stack/stack.sh up): ${e.message}`, { cause: e });
  }
}

/**
 * Register a user with Synapse's shared-secret registration API.
 * mac = hex HMAC-SHA1(key = shared secret, msg = nonce \0 username \0 password \0 (admin|notadmin)).
 * @returns {Promise<{user_id: string, access_token: string, device_id: string}>}
 */
export async function registerUser({ baseUrl, sharedSecret, username, password, admin = false }) {
  username ??= `user-${randomBytes(5).toString("hex")}`;
  password ??= randomBytes(12).toString("hex");
  const url = new URL("/_synapse/admin/v1/register", baseUrl).toString();

  const nonceRes = await fetch(url);
  if (nonceRes.status !== 200) {
    throw new Error(`GET ${url} -> ${nonceRes.status} ${await nonceRes.text()}`);
  }
  const { nonce } = await nonceRes.json();

  const mac = createHmac("sha1", sharedSecret)
    .update([nonce, username, password, admin ? "admin" : "notadmin"].join("\0"))
    .digest("hex");

  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ nonce, username, password, admin, mac }),
  });
  const body = await res.json().catch(() => ({}));
  if (res.status !== 200) {
    throw new Error(`POST ${url} -> ${res.status} ${JSON.stringify(body)}`);
  }
  return { user_id: body.user_id, access_token: body.access_token, device_id: body.device_id };
}

async function main(argv) {
  const pos = [];
  const opts = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--admin") opts.admin = true;
    else if (a === "--stack") opts.stack = argv[++i];
    else if (a === "--hs") opts.hs = argv[++i];
    else if (a === "--secret") opts.secret = argv[++i];
    else if (a === "-h" || a === "--help") {
      console.error(
        "usage: register-user.mjs [username] [password] [--admin] [--stack stack.json] [--hs URL --secret S]",
      );
      return 0;
    } else pos.push(a);
  }
  let baseUrl = opts.hs;
  let sharedSecret = opts.secret;
  if (!baseUrl || !sharedSecret) {
    const stack = loadStack(opts.stack);
    baseUrl ??= stack.homeserver.base_url;
    sharedSecret ??= stack.homeserver.registration_shared_secret;
  }
  const user = await registerUser({ baseUrl, sharedSecret, username: pos[0], password: pos[1], admin: !!opts.admin });
  process.stdout.write(JSON.stringify(user) + "\n");
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      console.error(`register-user: ${e.message}`);
      process.exit(1);
    },
  );
}
