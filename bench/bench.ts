/**
 * Side-by-side benchmark (run: `npm run bench`, i.e. `node --expose-gc -r esbuild-register bench/bench.ts`).
 * Reports figures; asserts nothing about them.
 *
 * Subjects, all on the same FakeRoom (connects by itself), the same OpenID client stub, the same fetch and the
 * same loopback auth service:
 * - package:  this package's `Connection` (public API only: constructor, start(), stop(), state$);
 * - baseline: `ElementCallConnection`, Element Call's imperative Connection (./elementCallConnection);
 * - bare:     the pipeline with nothing around it (./barePipeline).
 * S6 (multi-SFU) compares this package's `ConnectionManager` with what Element Call's ConnectionManager does below
 * its RxJS plumbing (a baseline `Connection` per transport, started when it appears and stopped when it goes) and
 * with one bare pipeline per transport.
 *
 * Interleaving: every timed scenario runs in rounds; each round runs one batch of each subject, and the order of
 * the three rotates from round to round (P B N, B N P, N P B, ...), so drift and noise of the machine reach all
 * three alike. A batch of S1/S2 runs as many lifecycles as fill about the same time for every subject (sized
 * after its warm-up), so a slow subject and a fast one are exposed to noise for equally long. A round's figure is
 * the batch's mean per lifecycle; the table shows the median over rounds, with the interquartile range as ±
 * (half of it, relative to the median).
 *
 * No `gc()` in or before a timed section: a full collection deoptimises every optimised function that embeds
 * an object which has died ("marking dependent code … for deoptimization, reason: weak objects" with
 * --trace-deopt), and the next ~100 ms then run 4–5× slower while V8 re-optimises; that would hit fast subjects
 * hardest. So the timed scenarios (S1, S2, S5) run first, the heap scenarios (S3, S4) last.
 *
 * Heap: `gc()` twice, then the bytes used in V8's heap spaces except the code spaces (re-optimised code comes
 * and goes with the deoptimisation above and is not the subjects' data), before and after; the instances are
 * kept reachable in a preallocated array until the second reading.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { getHeapSpaceStatistics } from "node:v8";
import { BehaviorSubject, type Observable } from "rxjs";
import { waitFor } from "xstate";
import { Connection, ConnectionManager, type LivekitTransportConfig } from "../src";
import { FakeRoom } from "../test/support/fakeRoom";
import { makeLivekitJwt, openIdToken } from "../test/support/tokens";
import { barePipeline } from "./barePipeline";
import type { Logger } from "../src";
import { ElementCallConnection } from "./elementCallConnection";

// ---- knobs (all loops are bounded by these) ----
/** A batch runs as many lifecycles as fill about `batchMs` for that subject (measured after its warm-up). */
const S1 = { rounds: 30, batchMs: 60, warmupMs: 400 };
const S2 = { rounds: 30, batchMs: 100, warmupMs: 400 };
const MAX_BATCH = 50_000;
const S3 = { reps: 9, instances: 2000 };
const S4 = { reps: 3, cycles: 10_000 };
const S5 = { rounds: 30, instances: 1000 };
const S6 = { rounds: 30, batchMs: 150, warmupMs: 400, transports: 3 };

const SUBJECTS = ["package", "baseline", "bare"] as const;
type SubjectName = (typeof SUBJECTS)[number];
type PerSubject<T> = Record<SubjectName, T>;

// ---- shared fixtures ----
const gcFn = (globalThis as { gc?: () => void }).gc;
if (!gcFn) throw new Error("run with node --expose-gc (npm run bench does)");
const gc: () => void = gcFn;

const noop = (): void => {};
const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop, getChild: () => silentLogger };

/** A JWT like lk-jwt-service's whose payload Element Call's plain `atob` can read (no `-` or `_`). */
function atobFriendlyJwt(): string {
  for (let n = 0; n < 64; n++) {
    const jwt = makeLivekitJwt({ extra: n === 0 ? {} : { pad: "x".repeat(n) } });
    if (!/[-_]/.test(jwt.split(".")[1]!)) return jwt;
  }
  throw new Error("could not make a JWT whose payload is plain base64");
}

const jwt = atobFriendlyJwt();
const SFU_URL = "ws://127.0.0.1:7880";
const sfuConfig = { url: SFU_URL, jwt, livekitAlias: "AliasOfTheRoom", livekitIdentity: "@alice:localhost:DEVICE" };
const client = { getOpenIdToken: async () => openIdToken() };
const roomId = "!bench:localhost";
const member = { userId: "@bench:localhost", deviceId: "DEV", memberId: "m" };
const fetchFn: typeof globalThis.fetch = (input, init) => globalThis.fetch(input, init);

function autoRoom(): FakeRoom {
  const room = new FakeRoom();
  room.autoConnect = "succeed";
  return room;
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Bytes in use in the heap, code spaces excluded, after a full collection. */
function heapUsed(): number {
  gc();
  gc();
  let used = 0;
  for (const space of getHeapSpaceStatistics()) {
    if (!space.space_name.startsWith("code_")) used += space.space_used_size;
  }
  return used;
}

/** Keeps objects reachable across a heap reading. */
let sink: unknown[] = [];

// ---- the loopback auth service ----
interface AuthService {
  url: string;
  requests: { path: string; body: string }[];
  record: boolean;
  close(): void;
}

async function startAuthService(): Promise<AuthService> {
  const answer = JSON.stringify({ url: SFU_URL, jwt });
  const service: AuthService = { url: "", requests: [], record: false, close: noop };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (service.record) service.requests.push({ path: req.url ?? "", body: Buffer.concat(chunks).toString() });
      // Every service path answers: S6's transports are distinct URLs of this one server.
      if (req.method === "POST" && req.url?.endsWith("/get_token")) {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(answer);
      } else {
        res.writeHead(404, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ errcode: "M_NOT_FOUND", error: "Not found" }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  service.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  service.close = () => {
    server.closeAllConnections();
    server.close();
  };
  return service;
}

// ---- the subjects ----
const transportOf = (serviceUrl: string) => ({ type: "livekit" as const, livekit_service_url: serviceUrl });

/** Options for one scenario: with `serviceUrl` the config is fetched, without it it is known. */
function optionsFor(serviceUrl: string | undefined) {
  const common = {
    transport: transportOf(serviceUrl ?? "http://127.0.0.1:9/unused"),
    client,
    roomId,
    ownMembershipIdentity: member,
    livekitRoomFactory: autoRoom,
    fetch: fetchFn,
  };
  return serviceUrl ? common : { ...common, existingSFUConfig: sfuConfig };
}

type Options = ReturnType<typeof optionsFor>;

function bareOptionsFor(opts: Options) {
  return {
    client,
    serviceUrl: opts.transport.livekit_service_url,
    roomId,
    member,
    fetch: fetchFn,
    sfuConfig: "existingSFUConfig" in opts ? opts.existingSFUConfig : undefined,
  };
}

/** `n` sequential lifecycles: construct, start() → connected, stop() → stopped. */
const lifecycles: PerSubject<(opts: Options, n: number) => Promise<void>> = {
  package: async (opts, n) => {
    for (let i = 0; i < n; i++) {
      const c = new Connection(opts, silentLogger);
      await c.start();
      await c.stop();
    }
  },
  baseline: async (opts, n) => {
    for (let i = 0; i < n; i++) {
      const c = new ElementCallConnection(opts, silentLogger);
      await c.start();
      await c.stop();
    }
  },
  bare: async (opts, n) => {
    const bare = bareOptionsFor(opts);
    for (let i = 0; i < n; i++) {
      const room = autoRoom();
      const disconnect = await barePipeline(room, bare);
      await disconnect();
    }
  },
};

/** Idle instances (constructed, not started); the bare pipeline has none, so: just its room. */
const constructIdle: PerSubject<(opts: Options) => unknown> = {
  package: (opts) => new Connection(opts, silentLogger),
  baseline: (opts) => new ElementCallConnection(opts, silentLogger),
  bare: () => autoRoom(),
};

/** `n` instances, constructed untimed; then all started at once, then all stopped at once. */
const crowds: PerSubject<(opts: Options, n: number) => Promise<{ connectMs: number; stopMs: number }>> = {
  package: async (opts, n) => {
    const cs = Array.from({ length: n }, () => new Connection(opts, silentLogger));
    return crowd(
      () => Promise.all(cs.map((c) => c.start())),
      () => Promise.all(cs.map((c) => c.stop())),
    );
  },
  baseline: async (opts, n) => {
    const cs = Array.from({ length: n }, () => new ElementCallConnection(opts, silentLogger));
    return crowd(
      () => Promise.all(cs.map((c) => c.start())),
      () => Promise.all(cs.map((c) => c.stop())),
    );
  },
  bare: async (opts, n) => {
    const bare = bareOptionsFor(opts);
    const rooms = Array.from({ length: n }, autoRoom);
    let disconnects: (() => Promise<void>)[] = [];
    return crowd(
      async () => (disconnects = await Promise.all(rooms.map((r) => barePipeline(r, bare)))),
      () => Promise.all(disconnects.map((d) => d())),
    );
  },
};

async function crowd(
  startAll: () => Promise<unknown>,
  stopAll: () => Promise<unknown>,
): Promise<{ connectMs: number; stopMs: number }> {
  const t0 = performance.now();
  await startAll();
  const t1 = performance.now();
  await stopAll();
  const t2 = performance.now();
  return { connectMs: t1 - t0, stopMs: t2 - t1 };
}

/**
 * `n` multi-SFU lifecycles over loopback HTTP: S6.transports transports appear, each gets a connection, all
 * connected; then they disappear and every room is disconnected.
 */
const multiSfu: PerSubject<(serviceUrl: string, n: number) => Promise<void>> = {
  package: async (serviceUrl, n) => {
    const transports = transportsOf(serviceUrl);
    for (let i = 0; i < n; i++) {
      const remote$ = new BehaviorSubject<LivekitTransportConfig[]>([]);
      const controller = new AbortController();
      const manager = new ConnectionManager(
        {
          localTransport$: new BehaviorSubject(null),
          remoteTransports$: remote$,
          client,
          roomId,
          ownMembershipIdentity: member,
          livekitRoomFactory: autoRoom,
          fetch: fetchFn,
          signal: controller.signal,
        },
        silentLogger,
      );
      remote$.next(transports);
      await waitFor(manager.actor, (s) => s.context.slots.every((e) => e.connectionState?.includes("room.connected")));
      remote$.next([]);
      await waitFor(manager.actor, (s) => s.context.slots.length === 0);
      controller.abort();
    }
  },
  baseline: async (serviceUrl, n) => {
    const transports = transportsOf(serviceUrl);
    for (let i = 0; i < n; i++) {
      const cs = transports.map(
        (transport) => new ElementCallConnection({ ...optionsFor(serviceUrl), transport }, silentLogger),
      );
      await Promise.all(cs.map((c) => c.start()));
      await Promise.all(cs.map((c) => c.stop()));
    }
  },
  bare: async (serviceUrl, n) => {
    const bares = transportsOf(serviceUrl).map((t) => bareOptionsFor({ ...optionsFor(serviceUrl), transport: t }));
    for (let i = 0; i < n; i++) {
      const disconnects = await Promise.all(bares.map((bare) => barePipeline(autoRoom(), bare)));
      await Promise.all(disconnects.map((d) => d()));
    }
  },
};

const transportsOf = (serviceUrl: string): LivekitTransportConfig[] =>
  Array.from({ length: S6.transports }, (_, k) => transportOf(`${serviceUrl}/sfu-${k + 1}`));

// ---- harness ----
/** Round `r` runs the subjects in the order rotated by r, each once. */
async function roundRobin<T>(rounds: number, run: (s: SubjectName) => Promise<T>): Promise<PerSubject<T[]>> {
  const out: PerSubject<T[]> = { package: [], baseline: [], bare: [] };
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < SUBJECTS.length; k++) {
      const s = SUBJECTS[(r + k) % SUBJECTS.length]!;
      out[s].push(await run(s));
    }
  }
  return out;
}

/**
 * Warms a subject up (chunks of doubling size until `warmupMs` has passed, at most 16 of them) and returns the
 * batch size that takes about `batchMs`, judged by the last chunk.
 */
async function warmUp(run: (n: number) => Promise<void>, warmupMs: number, batchMs: number): Promise<number> {
  let n = 8;
  let spent = 0;
  let perLifecycle = Infinity;
  for (let chunk = 0; chunk < 16 && spent < warmupMs; chunk++, n = Math.min(2 * n, MAX_BATCH)) {
    const t = performance.now();
    await run(n);
    const ms = performance.now() - t;
    spent += ms;
    perLifecycle = ms / n;
  }
  return Math.max(10, Math.min(MAX_BATCH, Math.round(batchMs / perLifecycle)));
}

async function timedBatch(run: (n: number) => Promise<void>, n: number): Promise<number> {
  const t0 = performance.now();
  await run(n);
  return (performance.now() - t0) / n;
}

async function idleHeapPerInstance(s: SubjectName, opts: Options, n: number): Promise<number> {
  sink = new Array<unknown>(n).fill(undefined);
  await flush();
  const before = heapUsed();
  for (let i = 0; i < n; i++) sink[i] = constructIdle[s](opts);
  await flush();
  const after = heapUsed();
  sink = [];
  return (after - before) / n;
}

async function retainedPerCycle(s: SubjectName, opts: Options, cycles: number): Promise<number> {
  await flush();
  const before = heapUsed();
  await lifecycles[s](opts, cycles);
  await flush();
  const after = heapUsed();
  return (after - before) / cycles;
}

/** Checks that every subject really connects and stops, and shows their state$ sequences (not timed). */
async function selfCheck(service: AuthService, opts: Options): Promise<string[]> {
  const lines: string[] = [];
  const check = (ok: boolean, what: string): void => {
    if (!ok) throw new Error(`harness check failed: ${what}`);
  };
  for (const s of SUBJECTS) {
    service.requests = [];
    service.record = true;
    let room: FakeRoom | undefined;
    const factory = (): FakeRoom => (room = autoRoom());
    const states: string[] = [];
    const show = (v: unknown): string => (v instanceof Error ? `${v.name}: ${v.message}` : String(v));
    if (s === "bare") {
      const disconnect = await barePipeline(factory(), bareOptionsFor(opts));
      states.push(room!.state);
      await disconnect();
      states.push(room!.state);
    } else {
      const c =
        s === "package"
          ? new Connection({ ...opts, livekitRoomFactory: factory }, silentLogger)
          : new ElementCallConnection({ ...opts, livekitRoomFactory: factory }, silentLogger);
      const state$: Observable<unknown> = c.state$;
      const sub = state$.subscribe((v) => states.push(show(v)));
      await c.start();
      check(room?.state === "connected", `${s}: not connected after start() (state$: ${states.join(" → ")})`);
      await c.stop();
      sub.unsubscribe();
    }
    service.record = false;
    const calls = room?.connectCalls ?? [];
    check(calls.length === 1 && calls[0]!.url === SFU_URL && calls[0]!.token === jwt, `${s}: room.connect(url, jwt)`);
    check(room!.state === "disconnected" && room!.disconnectCalls >= 1, `${s}: room not disconnected after stop()`);
    const tokenRequests = service.requests.filter((r) => r.path === "/get_token");
    check(tokenRequests.length === 1 && service.requests.length === 1, `${s}: one POST /get_token`);
    const body = JSON.parse(tokenRequests[0]!.body) as { room_id?: string; slot_id?: string; member?: unknown };
    check(body.room_id === roomId && body.slot_id === "m.call#ROOM" && body.member !== undefined, `${s}: body`);
    lines.push(`${s}: ${states.join(" → ")}`);
  }
  return lines;
}

// ---- reporting ----
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const quantile = (xs: readonly number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (pos - lo);
};
const spread = (xs: readonly number[]): string => {
  const m = median(xs);
  return m === 0 ? "" : ` ±${(((quantile(xs, 0.75) - quantile(xs, 0.25)) / 2 / Math.abs(m)) * 100).toFixed(0)}%`;
};
const fmtTime = (ms: number): string => (ms < 1 ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(2)} ms`);
const fmtBytes = (b: number): string => (Math.abs(b) >= 1024 ? `${(b / 1024).toFixed(2)} KiB` : `${b.toFixed(1)} B`);
const ratio = (a: number, b: number): string => (b > 0 && a > 0 ? `${(a / b).toFixed(2)}×` : "—");

interface Row {
  label: string;
  data: PerSubject<number[]>;
  fmt: (x: number) => string;
  ratios: boolean;
  spread: boolean;
}

function table(rows: Row[]): string {
  const head = ["scenario", "package", "baseline (EC)", "bare", "package/baseline", "package/bare"];
  const body = rows.map((r) => {
    const m = { package: median(r.data.package), baseline: median(r.data.baseline), bare: median(r.data.bare) };
    const cell = (s: SubjectName): string =>
      r.data[s].length === 0 ? "—" : r.fmt(m[s]) + (r.spread ? spread(r.data[s]) : "");
    return [
      r.label,
      cell("package"),
      cell("baseline"),
      cell("bare"),
      r.ratios ? ratio(m.package, m.baseline) : "—",
      r.ratios ? ratio(m.package, m.bare) : "—",
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [line(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...body.map(line)].join("\n");
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const service = await startAuthService();
  const known = optionsFor(undefined);
  const http = optionsFor(service.url);
  const log = (msg: string): void =>
    void process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1)} s] ${msg}\n`);

  const states = await selfCheck(service, http);

  log("warming up…");
  const batch1: PerSubject<number> = { package: 0, baseline: 0, bare: 0 };
  const batch2: PerSubject<number> = { package: 0, baseline: 0, bare: 0 };
  const batch6: PerSubject<number> = { package: 0, baseline: 0, bare: 0 };
  for (const s of SUBJECTS) {
    batch1[s] = await warmUp((n) => lifecycles[s](known, n), S1.warmupMs, S1.batchMs);
    batch2[s] = await warmUp((n) => lifecycles[s](http, n), S2.warmupMs, S2.batchMs);
    batch6[s] = await warmUp((n) => multiSfu[s](service.url, n), S6.warmupMs, S6.batchMs);
    sink = [constructIdle[s](known)];
  }
  await roundRobin(1, (s) => crowds[s](known, S5.instances));
  sink = [];

  const batches = (b: PerSubject<number>): string => SUBJECTS.map((s) => `${s} ${b[s]}`).join(", ");
  log(`S1: ${S1.rounds} rounds, known SFU config; lifecycles per batch: ${batches(batch1)}`);
  const s1 = await roundRobin(S1.rounds, (s) => timedBatch((n) => lifecycles[s](known, n), batch1[s]));
  log(`S2: ${S2.rounds} rounds over loopback HTTP; lifecycles per batch: ${batches(batch2)}`);
  const s2 = await roundRobin(S2.rounds, (s) => timedBatch((n) => lifecycles[s](http, n), batch2[s]));
  log(`S6: ${S6.rounds} rounds, ${S6.transports} transports; lifecycles per batch: ${batches(batch6)}`);
  const s6 = await roundRobin(S6.rounds, (s) => timedBatch((n) => multiSfu[s](service.url, n), batch6[s]));
  log(`S5: ${S5.rounds} rounds × ${S5.instances} at once`);
  const s5 = await roundRobin(S5.rounds, (s) => crowds[s](known, S5.instances));
  log(`S3: ${S3.reps} × ${S3.instances} idle instances`);
  const s3 = await roundRobin(S3.reps, (s) => idleHeapPerInstance(s, known, S3.instances));
  log(`S4: ${S4.reps} × ${S4.cycles} cycles`);
  const s4 = await roundRobin(S4.reps, (s) => retainedPerCycle(s, known, S4.cycles));
  service.close();
  log("done");

  const s3AboveRoom: PerSubject<number[]> = {
    package: s3.package.map((x, i) => x - s3.bare[i]!),
    baseline: s3.baseline.map((x, i) => x - s3.bare[i]!),
    bare: [],
  };
  const pick = (k: "connectMs" | "stopMs"): PerSubject<number[]> => ({
    package: s5.package.map((x) => x[k]),
    baseline: s5.baseline.map((x) => x[k]),
    bare: s5.bare.map((x) => x[k]),
  });
  const timeRow = (label: string, data: PerSubject<number[]>): Row => ({
    label,
    data,
    fmt: fmtTime,
    ratios: true,
    spread: true,
  });

  console.log(`node ${process.version} (${process.platform}/${process.arch}), one process, subjects interleaved`);
  console.log(
    `rounds: S1 ${S1.rounds} (~${S1.batchMs} ms batches: ${batches(batch1)} lifecycles), ` +
      `S2 ${S2.rounds} (~${S2.batchMs} ms batches: ${batches(batch2)}),\n` +
      `        S3 ${S3.reps}×${S3.instances} instances, S4 ${S4.reps}×${S4.cycles} cycles, ` +
      `S5 ${S5.rounds}×${S5.instances} instances, S6 ${S6.rounds} (~${S6.batchMs} ms batches: ${batches(batch6)});\n` +
      `        medians over rounds, ± = half the IQR`,
  );
  console.log(`state$ over one lifecycle (loopback HTTP):\n  ${states.join("\n  ")}\n`);
  console.log(
    table([
      timeRow("S1 lifecycle, known SFU config", s1),
      timeRow("S2 lifecycle, loopback HTTP", s2),
      { label: "S3 idle heap / instance", data: s3, fmt: fmtBytes, ratios: true, spread: false },
      { label: "S3 … above its room", data: s3AboveRoom, fmt: fmtBytes, ratios: true, spread: false },
      { label: "S4 retained / cycle", data: s4, fmt: fmtBytes, ratios: false, spread: false },
      timeRow(`S5 ${S5.instances}× start → all connected`, pick("connectMs")),
      timeRow(`S5 ${S5.instances}× stop → all stopped`, pick("stopMs")),
      timeRow(`S6 multi-SFU lifecycle, ${S6.transports} transports`, s6),
    ]),
  );
  console.log(
    `\nS1/S2 include construction; S3 "bare" is the FakeRoom alone; S4 "bare" is a control (rooms only);` +
      ` S5 uses the known SFU config; S6 fetches each transport's config over loopback HTTP and includes the` +
      ` manager's construction.\nwall time ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
