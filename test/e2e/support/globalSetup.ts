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
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserServer } from "playwright-core";
import { E2E_ENV_VAR, type E2eEnv, type StackJson } from "./env";
import {
  CHROMIUM,
  ROOT,
  STACK,
  buildPage,
  launchChromiumServer,
  registerUsers,
  servePage,
  stackRunDir,
} from "./stackAndBrowser";
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

/** Whether all / any of the services `stack.sh status` lists are alive. */
function stackAlive(): { all: boolean; any: boolean } {
  const rows = run(join(STACK, "stack.sh"), ["status"], "stack.sh status")
    .split("\n")
    .filter((l) => /^(synapse|livekit-|lk-jwt-)/.test(l))
    .map((l) => l.split(/\s+/)[2]);
  return { all: rows.length > 0 && rows.every((a) => a === "yes"), any: rows.some((a) => a === "yes") };
}

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

  g.browserServer = await launchChromiumServer();
  const browser = await chromium.connect(g.browserServer.wsEndpoint());
  const chromiumVersion = browser.version();
  await browser.close();
  log(`Chromium ${chromiumVersion} at ${g.browserServer.wsEndpoint().replace(/\/[^/]+$/, "/…")}`);

  const runId = randomBytes(3).toString("hex");
  const users = await registerUsers(
    stack,
    Array.from({ length: 6 }, (_, i) => `e2e-${runId}-${i}`),
  );

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
