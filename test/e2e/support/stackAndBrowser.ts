/**
 * What the e2e suite (its Jest globalSetup) and `npm run demo` share: where the stack lives, Chromium launched
 * so that it stays on loopback, the page bundled and served, Matrix users registered, free loopback ports.
 */
import { createSocket } from "node:dgram";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { createServer as createTcpServer } from "node:net";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { chromium, type BrowserServer } from "playwright-core";
import type { E2eUser, StackJson } from "./env";

export const ROOT = resolve(__dirname, "../../..");
export const STACK = join(ROOT, "scripts/stack");
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

/** Chromium as a browser server on 127.0.0.1, checked to run with the merged --disable-features. */
export async function launchChromiumServer(): Promise<BrowserServer> {
  const server = await chromium.launchServer({
    executablePath: CHROMIUM,
    headless: true,
    ...(await chromiumArgs()),
    host: "127.0.0.1",
    port: 0,
  });
  const launched = readFileSync(`/proc/${server.process().pid}/cmdline`, "utf8").split("\0");
  const disabled = launched.filter((a) => a.startsWith("--disable-features="));
  if (disabled.length !== 1 || !EXTRA_DISABLED_FEATURES.every((f) => disabled[0]!.split(/[=,]/).includes(f))) {
    await server.close();
    throw new Error(`Chromium was not launched with the merged --disable-features: ${disabled.join(" ")}`);
  }
  return server;
}

/** The folder of the running stack (stack.json, logs, pids). */
export function stackRunDir(): string {
  return process.env.STACK_RUN_DIR || join(stackCacheDir(), "run");
}

/** Where scripts/stack/install.sh puts the stack (binaries, venv) and, by default, its run folder. */
export function stackCacheDir(): string {
  return process.env.MATRIXRTC_STACK_CACHE || join(homedir(), ".cache", "matrixrtc-stack");
}

/** Bundles a page (the e2e page by default; the demo has its own) with esbuild into `outDir`. */
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

/** Registers Matrix users on the stack's homeserver (scripts/stack/register-user.mjs), one per name. */
export async function registerUsers(stack: StackJson, usernames: string[]): Promise<E2eUser[]> {
  const { registerUser } = (await importEsm(pathToFileURL(join(STACK, "register-user.mjs")).href)) as {
    registerUser(o: { baseUrl: string; sharedSecret: string; username?: string }): Promise<E2eUser>;
  };
  const users: E2eUser[] = [];
  for (const username of usernames) {
    users.push(
      await registerUser({
        baseUrl: stack.homeserver.base_url,
        sharedSecret: stack.homeserver.registration_shared_secret,
        username,
      }),
    );
  }
  return users;
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freeTcpPort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createTcpServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => ok(port));
    });
  });
}

/** A UDP port that was free on 127.0.0.1 a moment ago. */
export function freeUdpPort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createSocket("udp4");
    s.once("error", fail);
    s.bind(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}
