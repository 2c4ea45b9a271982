/**
 * `npm run demo`: one real MatrixRTC connection, from a fresh machine. Installs the loopback stack on first run
 * (Synapse, LiveKit, the jwt service; minutes the first time, with progress), brings it up, registers users,
 * runs the package's `Connection` in headless Chromium against it and prints every `state$` transition with its
 * time since start(), and the remote participants; then stops and takes the stack down again.
 *
 *   npm run demo                           the happy path: alice connects, bob joins, both stop
 *   npm run demo -- --scenario NAME        one of the situations of the e2e suite (--help lists them)
 *   npm run demo -- --serve [--port N]     keep the stack and a page up for a person's browser (Ctrl-C ends)
 *
 * With --serve, each user's page has start() / stop(), the connection's state$ and participants, and the live
 * statechart view of its Connection; the users connect through an SFU of the demo's own (a LiveKit and a jwt
 * stand-in on free ports, as the e2e scenarios that kill LiveKit have), which the page's buttons kill (`kill -9`)
 * and start again through a loopback-only control endpoint of this process (a token in the page's fragment).
 *
 * Everything but --serve runs inside a loopback-only network namespace (scripts/isolated.sh).
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import type { ConnectionParams, StateRecord } from "../test/e2e/page/api";
import { DedicatedSfu } from "../test/e2e/support/dedicatedSfu";
import type { E2eUser, StackJson } from "../test/e2e/support/env";
import { ConnectionHandle } from "../test/e2e/support/fixtures";
import {
  CHROMIUM,
  ROOT,
  STACK,
  buildPage,
  chromiumArgs,
  freeTcpPort,
  registerUsers as registerStackUsers,
  servePage,
  stackRunDir,
} from "../test/e2e/support/stackAndBrowser";

const SCENARIOS: Record<string, string> = {
  happy: "alice connects, bob joins the same call, both see each other, both stop",
  "stop-during-connect": "stop() as soon as state$ shows connecting: Stopped, no error in between",
  restricted: "a homeserver the auth service does not trust to create rooms: SFURoomCreationRestrictedError",
  "room-full": "a LiveKit with max_participants 1: the second user is refused",
  restart: "connect, stop, start again: the restart reuses the still-valid JWT (no OpenID or auth-service request)",
  "bad-openid-token": "the auth service gets a forged OpenID token: FailToGetOpenIdToken",
  "jwt-service-down": "the auth service's port is closed: FailToGetOpenIdToken after the retries",
  "time-to-connected": "10 fresh connections, one after the other: start() → connected, each and the median",
};

interface Options {
  scenario: string;
  serve: boolean;
  port: number;
  inNetns: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { scenario: "happy", serve: false, port: 8099, inNetns: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--serve") o.serve = true;
    else if (a === "--in-netns") o.inNetns = true;
    else if (a === "--scenario") o.scenario = argv[++i] ?? "";
    else if (a === "--port") o.port = Number(argv[++i]);
    else if (a === "--help" || a === "-h") {
      console.log("npm run demo [-- --scenario NAME | --serve [--port N]]\nscenarios:");
      for (const [name, what] of Object.entries(SCENARIOS)) console.log(`  ${name.padEnd(20)} ${what}`);
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (try --help)`);
  }
  if (!(o.scenario in SCENARIOS)) throw new Error(`unknown scenario ${o.scenario} (try --help)`);
  if (!Number.isInteger(o.port) || o.port <= 0 || o.port > 65535) throw new Error(`bad --port`);
  return o;
}

const say = (msg: string): void => console.log(`[demo] ${msg}`);

function sh(cmd: string, args: string[], what: string): void {
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: "inherit", env: process.env });
  if (r.status !== 0) throw new Error(`${what} failed (${r.error?.message ?? `exit ${r.status}`})`);
}

function stackIsUp(): boolean {
  const r = spawnSync(join(STACK, "stack.sh"), ["status"], { cwd: ROOT, encoding: "utf8", env: process.env });
  return /\byes\b/.test(r.stdout ?? "");
}

/** Registers the demo's users, with a suffix so that every run has new ones. */
function registerUsers(stack: StackJson, names: string[]): Promise<E2eUser[]> {
  const suffix = Date.now().toString(36);
  return registerStackUsers(
    stack,
    names.map((name) => `${name}-${suffix}`),
  );
}

function params(stack: StackJson, user: E2eUser, roomId: string, extra: Partial<ConnectionParams> = {}) {
  return {
    baseUrl: stack.homeserver.base_url,
    accessToken: user.access_token,
    userId: user.user_id,
    deviceId: user.device_id,
    serviceUrl: stack.jwt_services.main!.url,
    roomId,
    memberId: `${user.device_id}-member`,
    retry: { maxAttempts: 3, initialDelayMs: 500 },
    ...extra,
  } satisfies ConnectionParams;
}

const label = (r: StateRecord): string => ("state" in r ? r.state : `${r.error} (${r.code}): ${r.message}`);

/** Names for LiveKit identities (hashes, with the /get_token endpoint), filled in as connections learn theirs. */
const names = new Map<string, string>();

/** Prints a connection's new state$ values and participant lists as they come, with the time since start(). */
class Printer {
  private states = 0;
  private participants = 0;
  constructor(
    private readonly name: string,
    private readonly c: ConnectionHandle,
  ) {}

  async flush(): Promise<void> {
    const rec = await this.c.recording();
    if (rec.localIdentity) names.set(rec.localIdentity, this.name);
    const t0 = rec.starts[0]?.calledAt;
    const at = (t: number): string =>
      t0 === undefined || t < t0 ? "   (created)" : `+${(t - t0).toFixed(1).padStart(8)} ms`;
    const lines = [
      ...rec.states.slice(this.states).map((r) => ({ t: r.t, text: `state$ ${label(r)}` })),
      ...rec.participants.slice(this.participants).map((p) => ({
        t: p.t,
        text: `remote participants [${p.identities.map((id) => names.get(id) ?? id).join(", ")}]`,
      })),
    ].sort((a, b) => a.t - b.t);
    for (const l of lines) console.log(`  ${this.name.padEnd(6)} ${at(l.t)}  ${l.text}`);
    this.states = rec.states.length;
    this.participants = rec.participants.length;
  }
}

async function runScenario(browser: Browser, pageUrl: string, stack: StackJson, scenario: string): Promise<void> {
  const [alice, bob] = await registerUsers(stack, ["alice", "bob"]);
  const roomId = `!demo-${Date.now().toString(36)}:${stack.homeserver.server_name}`;
  const open = async (name: string, user: E2eUser, extra: Partial<ConnectionParams> = {}) => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(pageUrl);
    await page.waitForFunction(() => window.e2e !== undefined, undefined, { timeout: 15_000 });
    const id = await page.evaluate((p) => window.e2e.create(p), params(stack, user, roomId, extra));
    const c = new ConnectionHandle(page, id);
    return { c, p: new Printer(name, c) };
  };
  const started = async (who: { c: ConnectionHandle; p: Printer }) => {
    const outcome = await who.c.start();
    await who.p.flush();
    say(`start() ${outcome.outcome}${outcome.error ? ` with ${outcome.error}` : ""}`);
  };
  const stopped = async (who: { c: ConnectionHandle; p: Printer }) => {
    await who.c.stop();
    await who.p.flush();
  };

  say(`scenario ${scenario}: ${SCENARIOS[scenario]}`);
  say(`call ${roomId}; users ${alice!.user_id}, ${bob!.user_id}`);
  switch (scenario) {
    case "happy": {
      const a = await open("alice", alice!);
      await started(a);
      const b = await open("bob", bob!);
      await started(b);
      const ids = async (c: ConnectionHandle) => (await c.recording()).localIdentity!;
      await a.c.waitForParticipants([await ids(b.c)]);
      await b.c.waitForParticipants([await ids(a.c)]);
      await a.p.flush();
      await b.p.flush();
      await stopped(b);
      await a.c.waitForParticipants([]);
      await a.p.flush();
      await stopped(a);
      return;
    }
    case "stop-during-connect": {
      const a = await open("alice", alice!, { stopOn: "connecting" });
      await started(a);
      return;
    }
    case "restricted": {
      await started(await open("alice", alice!, { serviceUrl: stack.jwt_services.restricted!.url }));
      return;
    }
    case "room-full": {
      const a = await open("alice", alice!, { serviceUrl: stack.jwt_services.full!.url });
      await started(a);
      await started(await open("bob", bob!, { serviceUrl: stack.jwt_services.full!.url }));
      await stopped(a);
      return;
    }
    case "restart": {
      const a = await open("alice", alice!);
      await started(a);
      await stopped(a);
      await started(a);
      await stopped(a);
      return;
    }
    case "bad-openid-token": {
      await started(await open("alice", alice!, { forgeOpenIdToken: true }));
      return;
    }
    case "time-to-connected": {
      const page = await (await browser.newContext()).newPage();
      await page.goto(pageUrl);
      await page.waitForFunction(() => window.e2e !== undefined, undefined, { timeout: 15_000 });
      const times: number[] = [];
      for (let i = 0; i < 10; i++) {
        const room = `${roomId.slice(0, -1 - stack.homeserver.server_name.length)}-${i}:${stack.homeserver.server_name}`;
        const id = await page.evaluate((p) => window.e2e.create(p), params(stack, alice!, room));
        const c = new ConnectionHandle(page, id);
        const outcome = await c.start();
        const rec = await c.recording();
        const connected = rec.states.find((r) => "state" in r && r.state === "connected");
        if (outcome.outcome !== "resolved" || !connected) throw new Error(`run ${i + 1}: ${JSON.stringify(outcome)}`);
        times.push(connected.t - rec.starts[0]!.calledAt);
        console.log(`  run ${String(i + 1).padStart(2)}  start() → connected ${times.at(-1)!.toFixed(1)} ms`);
        await c.stop();
      }
      const sorted = [...times].sort((a, b) => a - b);
      say(
        `median ${((sorted[4]! + sorted[5]!) / 2).toFixed(1)} ms, min ${sorted[0]!.toFixed(1)}, max ${sorted[9]!.toFixed(1)}`,
      );
      return;
    }
    case "jwt-service-down": {
      const down = `http://127.0.0.1:${await freeTcpPort()}`; // nothing listens there
      await started(await open("alice", alice!, { serviceUrl: down, retry: { maxAttempts: 3, initialDelayMs: 300 } }));
      return;
    }
  }
}

/** Base64url of JSON, for the page's fragment (plain base64's `+` would read as a space there). */
const toFragment = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");

/**
 * The control endpoint of --serve, on a free port of 127.0.0.1: `GET /sfu` (is the demo's LiveKit running),
 * `POST /sfu/kill` (`kill -9`) and `POST /sfu/start` (start it again on the same ports). Only requests with the
 * token (header `x-demo-token`) are served, and only the page's origin may read the answers (CORS): another page
 * of this machine's browser cannot kill the SFU. One action at a time.
 */
function serveControl(sfu: DedicatedSfu, pageOrigin: string, token: string): Promise<Server> {
  let queue: Promise<unknown> = Promise.resolve();
  const serially = <T>(action: () => Promise<T>): Promise<T> => {
    const next = queue.then(action);
    queue = next.catch(() => {});
    return next;
  };
  const server = createServer((req, res) => {
    const cors = {
      "access-control-allow-origin": pageOrigin,
      "access-control-allow-methods": "GET, POST",
      "access-control-allow-headers": "x-demo-token",
    };
    if (req.method === "OPTIONS") return void res.writeHead(204, cors).end();
    if (req.headers["x-demo-token"] !== token) return void res.writeHead(403, cors).end();
    const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname;
    const action =
      req.method === "POST" && path === "/sfu/kill"
        ? async () => {
            await sfu.killLivekit();
            say("the page killed the demo's LiveKit (kill -9)");
          }
        : req.method === "POST" && path === "/sfu/start"
          ? async () => {
              if (sfu.livekitPid !== undefined) return;
              await sfu.restartLivekit();
              say(`the page started the demo's LiveKit again (it answers at ${sfu.httpUrl})`);
            }
          : req.method === "GET" && path === "/sfu"
            ? async () => {}
            : undefined;
    if (!action) return void res.writeHead(404, cors).end();
    serially(action).then(
      () =>
        res
          .writeHead(200, { ...cors, "content-type": "application/json" })
          .end(
            JSON.stringify({ livekit: sfu.livekitPid === undefined ? "killed" : "running", starts: sfu.livekitStarts }),
          ),
      (e: unknown) =>
        res
          .writeHead(500, { ...cors, "content-type": "application/json" })
          .end(JSON.stringify({ livekit: "?", starts: sfu.livekitStarts, error: String(e) })),
    );
  });
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => ok(server));
  });
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (!o.inNetns) {
    say("installing the loopback stack if needed (the first run builds LiveKit and installs Synapse: minutes)");
    sh(join(STACK, "install.sh"), [], "scripts/stack/install.sh");
    if (!o.serve) {
      // Re-run this script inside a network namespace whose only interface is loopback.
      const r = spawnSync(
        join(ROOT, "scripts/isolated.sh"),
        [process.execPath, "-r", "esbuild-register", __filename, ...process.argv.slice(2), "--in-netns"],
        { cwd: ROOT, stdio: "inherit", env: process.env },
      );
      process.exit(r.status ?? 1);
    }
  }

  const wasUp = stackIsUp();
  say(wasUp ? "the stack is up already" : "bringing the stack up");
  sh(join(STACK, "stack.sh"), ["up"], "scripts/stack/stack.sh up");
  const stack = JSON.parse(readFileSync(join(stackRunDir(), "stack.json"), "utf8")) as StackJson;
  say(
    `homeserver ${stack.homeserver.base_url}, auth service ${stack.jwt_services.main!.url}, SFU ${stack.livekit.main!.ws_url}`,
  );

  const dir = mkdtempSync(join(tmpdir(), "matrixrtc-demo-"));
  let server: Server | undefined;
  let control: Server | undefined;
  let sfu: DedicatedSfu | undefined;
  let browser: Browser | undefined;
  const cleanup = async (): Promise<void> => {
    await browser?.close().catch(() => {});
    server?.closeAllConnections();
    server?.close();
    control?.closeAllConnections();
    control?.close();
    if (sfu) {
      say("stopping the demo's own SFU");
      await sfu.stop();
    }
    rmSync(dir, { recursive: true, force: true });
    if (!wasUp) {
      say("taking the stack down");
      sh(join(STACK, "stack.sh"), ["down"], "scripts/stack/stack.sh down");
    }
  };
  try {
    await buildPage(dir, join(ROOT, "scripts/demo/page.ts"));
    server = await servePage(dir, o.serve ? o.port : 0);
    const pageUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

    if (o.serve) {
      sfu = await DedicatedSfu.start(stack, "demo");
      say(`the demo's own SFU: LiveKit ${sfu.wsUrl}, auth service ${sfu.jwtUrl} (the pages can kill and restart it)`);
      const token = randomBytes(16).toString("hex");
      control = await serveControl(sfu, pageUrl.replace(/\/$/, ""), token);
      const controlUrl = `http://127.0.0.1:${(control.address() as AddressInfo).port}`;
      const users = await registerUsers(stack, ["alice", "bob"]);
      const roomId = `!demo-${Date.now().toString(36)}:${stack.homeserver.server_name}`;
      say(`serving; open these in a browser on this machine (one per user), Ctrl-C to end:`);
      for (const u of users) {
        const demo = params(stack, u, roomId, {
          serviceUrl: sfu.jwtUrl,
          // A killed SFU: livekit-client gives up after three quick resumes, then the package reconnects by itself
          // (1 s, doubling, at most 5 s apart), so a restarted SFU is back in use within seconds.
          reconnectDelaysMs: [300, 600, 1200],
          reconnect: { maxAttempts: 20, initialDelayMs: 1000, maxDelayMs: 5000 },
        });
        console.log(`  ${pageUrl}#demo=${toFragment(demo)}&control=${toFragment({ url: controlUrl, token })}`);
      }
      await new Promise<void>((resolve) => {
        process.once("SIGINT", resolve);
        process.once("SIGTERM", resolve);
      });
      return;
    }

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, ...(await chromiumArgs()) });
    say(`Chromium ${browser.version()}`);
    await runScenario(browser, pageUrl, stack, o.scenario);
  } finally {
    await cleanup();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`[demo] failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
