/**
 * Benchmarks (run: `npm run bench`). Reports figures; asserts nothing.
 * 1. lifecycle: START → connected → STOP → Stopped through the real Connection, with actors that answer at
 *    once (a FakeRoom that connects by itself, an SFU config already known): the statechart's own overhead;
 * 2. with a loopback HTTP server as homeserver and auth service (real fetch, real matrix-js-sdk-shaped client):
 *    time from start() to connected;
 * 3. memory: heap per idle Connection.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Connection } from "../src";
import { FakeRoom } from "../test/support/fakeRoom";
import { makeLivekitJwt, openIdToken } from "../test/support/tokens";

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (ms: number): string => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`);

const base = {
  transport: { type: "livekit" as const, livekit_service_url: "http://127.0.0.1:9/unused" },
  client: { getOpenIdToken: async () => openIdToken() },
  roomId: "!bench:localhost",
  ownMembershipIdentity: { userId: "@bench:localhost", deviceId: "DEV", memberId: "m" },
};
const jwt = makeLivekitJwt();

function autoRoom(): FakeRoom {
  const room = new FakeRoom();
  room.autoConnect = "succeed";
  return room;
}

async function lifecycle(rounds: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const c = new Connection<FakeRoom>({
      ...base,
      livekitRoomFactory: autoRoom,
      existingSFUConfig: { url: "ws://127.0.0.1:7880", jwt, livekitAlias: "a", livekitIdentity: "i" },
    });
    const t0 = performance.now();
    await c.start();
    await c.stop();
    times.push(performance.now() - t0);
  }
  return times;
}

async function overLoopback(rounds: number): Promise<number[]> {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ url: "ws://127.0.0.1:7880", jwt }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const c = new Connection<FakeRoom>({
      ...base,
      transport: { type: "livekit", livekit_service_url: url },
      livekitRoomFactory: autoRoom,
    });
    const t0 = performance.now();
    await c.start();
    times.push(performance.now() - t0);
    await c.stop();
  }
  server.closeAllConnections();
  server.close();
  return times;
}

function heapPerConnection(count: number): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = process.memoryUsage().heapUsed;
  const kept: Connection<FakeRoom>[] = [];
  for (let i = 0; i < count; i++)
    kept.push(new Connection<FakeRoom>({ ...base, livekitRoomFactory: () => new FakeRoom() }));
  gc?.();
  const after = process.memoryUsage().heapUsed;
  if (kept.length !== count) throw new Error("unreachable");
  return (after - before) / count;
}

async function main(): Promise<void> {
  const runs = 5;
  const lc: number[] = [];
  const lb: number[] = [];
  await lifecycle(200); // warm-up
  await overLoopback(50);
  for (let r = 0; r < runs; r++) {
    lc.push(median(await lifecycle(500)));
    lb.push(median(await overLoopback(200)));
  }
  const mem = [1, 2, 3].map(() => heapPerConnection(2000));
  console.log(`node ${process.version}, ${runs} runs each; figures are medians of per-run medians`);
  console.log(`lifecycle start→connected→stop→Stopped (no I/O): ${fmt(median(lc))}  (runs: ${lc.map(fmt).join(", ")})`);
  console.log(
    `start()→connected over loopback HTTP (OpenID stub + POST /get_token): ${fmt(median(lb))}  (runs: ${lb.map(fmt).join(", ")})`,
  );
  console.log(
    `heap per idle Connection: ${(median(mem) / 1024).toFixed(1)} KiB${(globalThis as { gc?: unknown }).gc ? "" : " (run with --expose-gc for a steadier figure)"}`,
  );
}

void main();
