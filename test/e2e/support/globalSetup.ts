/**
 * Jest globalSetup of the `e2e` project:
 *  1. installs the loopback stack if needed (scripts/stack/install.sh: idempotent, ≈2 s when done);
 *  2. brings it up (scripts/stack/stack.sh up; a no-op when it runs already) and reads stack.json;
 *  3. bundles the test page (test/e2e/page/main.ts + src/ + matrix-js-sdk + livekit-client) with esbuild;
 *  4. serves it on http://127.0.0.1:<ephemeral port>/;
 *  5. launches Debian's Chromium with playwright-core as a browser server on 127.0.0.1 (the tests, which run in
 *     Jest's sandbox, connect to it with `chromium.connect`);
 *  6. registers a pool of Matrix users with scripts/stack/register-user.mjs's `registerUser`;
 * and writes all of it to a JSON file named by $MATRIXRTC_E2E_ENV. globalTeardown undoes it.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { chromium, type BrowserServer } from "playwright-core";
import { E2E_ENV_VAR, type E2eEnv, type E2eUser, type StackJson } from "./env";

const ROOT = resolve(__dirname, "../../..");
const STACK = join(ROOT, "scripts/stack");
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** Every flag the project requires, plus one more that keeps Chromium off the network (see README.md). */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
  "--allow-loopback-in-peer-connection",
  // No host name resolves (only IP literals are used): nothing can reach beyond 127.0.0.1 by name.
  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
];

/**
 * Chromium features to disable on top of Playwright's own list. WebRtcHideLocalIpsWithMdns: without it, the
 * first RTCPeerConnection makes Chromium's network service bind 224.0.0.251:5353 and join the mDNS group, which
 * sends IGMP membership reports out of the machine's real interface (seen on eth0; see README.md).
 */
export const EXTRA_DISABLED_FEATURES = ["WebRtcHideLocalIpsWithMdns"];

/**
 * Chromium honours only the last --disable-features, and Playwright passes its own (features that phone home,
 * among others). So read Playwright's from a probe launch, and pass the union in its place.
 */
export async function chromiumArgs(): Promise<{ args: string[]; ignoreDefaultArgs: string[] }> {
  const probe = await chromium.launchServer({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    host: "127.0.0.1",
    port: 0,
  });
  let cmdline: string[];
  try {
    cmdline = readFileSync(`/proc/${probe.process().pid}/cmdline`, "utf8").split("\0");
  } finally {
    await probe.close();
  }
  const own = cmdline.filter((a) => a.startsWith("--disable-features="));
  if (own.length !== 1)
    throw new Error(`expected one --disable-features in Chromium's command line, got ${own.length}`);
  const merged = [...new Set([...own[0]!.slice("--disable-features=".length).split(","), ...EXTRA_DISABLED_FEATURES])];
  return { args: [...CHROMIUM_ARGS, `--disable-features=${merged.filter(Boolean).join(",")}`], ignoreDefaultArgs: own };
}

/** What globalTeardown needs (Jest shares globalThis between globalSetup and globalTeardown). */
export interface E2eGlobal {
  browserServer?: BrowserServer;
  pageServer?: Server;
  tmpDir?: string;
  stackStartedBySetup?: boolean;
}
export const e2eGlobal = globalThis as typeof globalThis & { __matrixrtcE2e?: E2eGlobal };

const log = (msg: string): void => void process.stderr.write(`[e2e setup] ${msg}\n`);

function run(cmd: string, args: string[], what: string): string {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: "utf8", env: process.env, timeout: 15 * 60_000 });
  if (r.status === 0) return `${r.stdout}${r.stderr}`;
  // stack.sh names the failing service and its log on stderr ("[stack] ERROR: service 'X' failed: …"), then
  // prints the log's last lines: put the names first, then the tail of both streams.
  const headline = (r.stderr ?? "")
    .split("\n")
    .filter((l) => /ERROR: (service '|log file:|ports already in use)/.test(l))
    .map((l) => l.replace(/^\[stack\] ERROR: /, ""));
  const tail = (text: string | null, n: number): string => (text ?? "").trimEnd().split("\n").slice(-n).join("\n");
  throw new Error(
    [
      `${what} failed (${r.error?.message ?? `exit ${r.status}`})${headline.length ? `: ${headline.join("; ")}` : ""}`,
      `---- stderr (last 60 lines) ----`,
      tail(r.stderr, 60),
      `---- stdout (last 15 lines) ----`,
      tail(r.stdout, 15),
    ].join("\n"),
  );
}

export function stackRunDir(): string {
  const cache = process.env.MATRIXRTC_STACK_CACHE || join(homedir(), ".cache", "matrixrtc-stack");
  return process.env.STACK_RUN_DIR || join(cache, "run");
}

/** Whether all / any of the services `stack.sh status` lists are alive. */
function stackAlive(): { all: boolean; any: boolean } {
  const rows = run(join(STACK, "stack.sh"), ["status"], "stack.sh status")
    .split("\n")
    .filter((l) => /^(synapse|livekit-|lk-jwt-)/.test(l))
    .map((l) => l.split(/\s+/)[2]);
  return { all: rows.length > 0 && rows.every((a) => a === "yes"), any: rows.some((a) => a === "yes") };
}

export async function buildPage(outDir: string, entry = join(ROOT, "test/e2e/page/main.ts")): Promise<void> {
  await build({
    entryPoints: [entry],
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "chrome120",
    sourcemap: true,
    outfile: join(outDir, "page.js"),
    logLevel: "warning",
  });
  writeFileSync(
    join(outDir, "index.html"),
    '<!doctype html><meta charset="utf-8"><title>matrixrtc e2e</title><script type="module" src="/page.js"></script>\n',
  );
}

export function servePage(dir: string, port = 0): Promise<Server> {
  const types: Record<string, string> = {
    "/": "text/html",
    "/page.js": "text/javascript",
    "/page.js.map": "application/json",
  };
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
    const type = types[path];
    if (!type) return void res.writeHead(404).end();
    res.writeHead(200, { "content-type": type, "cache-control": "no-store" });
    res.end(readFileSync(join(dir, path === "/" ? "index.html" : path.slice(1))));
  });
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, "127.0.0.1", () => ok(server));
  });
}

/** Native dynamic import (Jest's transform would turn `import()` into `require`, which cannot load .mjs). */
const importEsm = new Function("url", "return import(url)") as (url: string) => Promise<unknown>;

export default async function globalSetup(): Promise<void> {
  try {
    await setup();
  } catch (e) {
    await teardown().catch((t: unknown) => log(`cleanup after the failed setup failed too: ${String(t)}`));
    throw e;
  }
}

async function setup(): Promise<void> {
  const g: E2eGlobal = (e2eGlobal.__matrixrtcE2e = {});
  const t0 = Date.now();

  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM} (set CHROMIUM_PATH)`);
  run(join(STACK, "install.sh"), [], "scripts/stack/install.sh");
  const before = stackAlive();
  run(join(STACK, "stack.sh"), ["up"], "scripts/stack/stack.sh up");
  g.stackStartedBySetup = !before.any;
  const stackJsonPath = join(stackRunDir(), "stack.json");
  const stack = JSON.parse(readFileSync(stackJsonPath, "utf8")) as StackJson;
  for (const v of ["main", "restricted", "full", "limited"]) {
    if (!stack.jwt_services[v] || !stack.livekit[v])
      throw new Error(`stack.json has no '${v}' variant (STACK_VARIANTS=0?)`);
  }
  const how = before.all ? "was already up" : before.any ? "was partly up, completed" : "brought up";
  log(`stack ${how} (${Date.now() - t0} ms); ${stack.jwt_service_impl}`);

  const tmpDir = (g.tmpDir = mkdtempSync(join(tmpdir(), "matrixrtc-e2e-")));
  const t1 = Date.now();
  await buildPage(tmpDir);
  g.pageServer = await servePage(tmpDir);
  const pageUrl = `http://127.0.0.1:${(g.pageServer.address() as AddressInfo).port}/`;
  log(`page bundled in ${Date.now() - t1} ms, served at ${pageUrl}`);

  g.browserServer = await chromium.launchServer({
    executablePath: CHROMIUM,
    headless: true,
    ...(await chromiumArgs()),
    host: "127.0.0.1",
    port: 0,
  });
  const launched = readFileSync(`/proc/${g.browserServer.process().pid}/cmdline`, "utf8").split("\0");
  const disabled = launched.filter((a) => a.startsWith("--disable-features="));
  if (disabled.length !== 1 || !EXTRA_DISABLED_FEATURES.every((f) => disabled[0]!.split(/[=,]/).includes(f))) {
    throw new Error(`Chromium was not launched with the merged --disable-features: ${disabled.join(" ")}`);
  }
  const browser = await chromium.connect(g.browserServer.wsEndpoint());
  const chromiumVersion = browser.version();
  await browser.close();
  log(`Chromium ${chromiumVersion} at ${g.browserServer.wsEndpoint().replace(/\/[^/]+$/, "/…")}`);

  const { registerUser } = (await importEsm(pathToFileURL(join(STACK, "register-user.mjs")).href)) as {
    registerUser(o: { baseUrl: string; sharedSecret: string; username?: string }): Promise<E2eUser>;
  };
  const runId = randomBytes(3).toString("hex");
  const users: E2eUser[] = [];
  for (let i = 0; i < 6; i++) {
    users.push(
      await registerUser({
        baseUrl: stack.homeserver.base_url,
        sharedSecret: stack.homeserver.registration_shared_secret,
        username: `e2e-${runId}-${i}`,
      }),
    );
  }

  const env: E2eEnv = {
    pageUrl,
    wsEndpoint: g.browserServer.wsEndpoint(),
    stack,
    stackJsonPath,
    chromiumVersion,
    users,
  };
  const envPath = join(tmpDir, "env.json");
  writeFileSync(envPath, JSON.stringify(env, null, 2), { mode: 0o600 });
  process.env[E2E_ENV_VAR] = envPath;
  log(`ready in ${Date.now() - t0} ms`);
}

/** Undoes globalSetup: also called by it when it fails half-way, so nothing is left running. */
export async function teardown(): Promise<void> {
  const g = e2eGlobal.__matrixrtcE2e;
  if (!g) return;
  e2eGlobal.__matrixrtcE2e = undefined;
  await g.browserServer?.close().catch(() => {});
  await new Promise<void>((ok) => {
    if (!g.pageServer) return ok();
    g.pageServer.close(() => ok());
    g.pageServer.closeAllConnections();
  });
  if (g.tmpDir) rmSync(g.tmpDir, { recursive: true, force: true });
  if (g.stackStartedBySetup && !process.env.E2E_KEEP_STACK) {
    run(join(STACK, "stack.sh"), ["down"], "scripts/stack/stack.sh down");
    log("stack taken down (setup had brought it up; E2E_KEEP_STACK=1 keeps it)");
  }
}
