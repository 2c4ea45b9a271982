/**
 * Property-based fuzz (fast-check): random sequences of what a caller, the auth service, LiveKit and the clock can
 * do, against the real Connection (real statechart and actors, a loopback HTTP auth service, the FakeRoom).
 * After every sequence a last stop() is awaited and the invariants are checked.
 *
 * `FUZZ_RUNS` (default 1000) and `FUZZ_SEED` (default a fixed one, printed) choose the run; for a longer one:
 * `FUZZ_RUNS=20000 npx jest --selectProjects fuzz`.
 */
import fc from "fast-check";
import { ConnectionError, DisconnectReason, RoomEvent } from "livekit-client";
import type { ServerResponse } from "node:http";
import { inspect } from "node:util";
import { Connection, ConnectionState, isCallError } from "../../src";
import { FakeRoom, flush } from "../support/fakeRoom";
import {
  GET_TOKEN_PATH,
  JWT,
  ROOM_ID,
  SERVICE_PATH,
  SFU_GET_PATH,
  answer,
  recordingLogger,
  DELEGATE_PATH,
} from "../support/harness";
import { LoopbackServer, sendJson, type RecordedRequest } from "../support/loopbackServer";
import { ACCESS_TOKEN, openIdToken } from "../support/tokens";
import { poll } from "../support/waitUntil";

const RUNS = Number(process.env.FUZZ_RUNS ?? 1000);
const SEED = Number(process.env.FUZZ_SEED ?? 20261130);
const PHASE_LIMIT_MS = 25;

const server = LoopbackServer.forThisFile();

// ---- what can happen ----------------------------------------------------------------------------------------

const connectErrors = {
  capacity: () => ConnectionError.serverUnreachable("node has exceeded its configured limit", 503),
  restricted: () => ConnectionError.notAllowed("requested room does not exist", 404),
  unauthorized: () => ConnectionError.notAllowed(`invalid token: ${JWT}`, 401),
  timeout: () => ConnectionError.timeout("could not establish pc connection"),
  websocket: () => ConnectionError.websocket("Encountered websocket error during connection establishment"),
  leave: () => ConnectionError.leaveRequest("leave", DisconnectReason.DUPLICATE_IDENTITY),
  notLivekit: () => new Error("LiveKit doesn't seem to be supported on this browser"),
} as const;

type AuthAnswer = "ok" | "hang" | "cut" | "malformed" | 400 | 401 | 403 | 404 | 429 | 500 | 502;
type ConnectOutcome = "ok" | "hang" | keyof typeof connectErrors;

/**
 * `openId`, `auth` and `connect` set how the homeserver, the auth service and the room answer from now on (and
 * answer what is waiting): "hang" keeps the next ones waiting, for a stop or a time limit to end.
 */
type Command =
  | { do: "start" }
  | { do: "stop" }
  | { do: "openId"; answer: "ok" | "fail" | "hang" }
  | { do: "auth"; answer: AuthAnswer }
  | { do: "connect"; outcome: ConnectOutcome }
  | { do: "room"; event: "reconnecting" | "signalReconnecting" | "reconnected" | "lose" }
  | { do: "wait"; ms: 0 | 5 | 30 }
  /** The app hands over a new delayed leave, or none. */
  | { do: "delayedLeave"; change: "new" | "none" };

const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 4, arbitrary: fc.constant<Command>({ do: "start" }) },
  { weight: 3, arbitrary: fc.constant<Command>({ do: "stop" }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom("ok", "fail", "hang").map<Command>((a) => ({ do: "openId", answer: a as "ok" })),
  },
  {
    weight: 3,
    arbitrary: fc
      .constantFrom<AuthAnswer>("ok", "hang", "cut", "malformed", 400, 401, 403, 404, 429, 500, 502)
      .map<Command>((a) => ({ do: "auth", answer: a })),
  },
  {
    weight: 3,
    arbitrary: fc
      .constantFrom<ConnectOutcome>("ok", "hang", ...(Object.keys(connectErrors) as (keyof typeof connectErrors)[]))
      .map<Command>((outcome) => ({ do: "connect", outcome })),
  },
  {
    weight: 5,
    arbitrary: fc
      .constantFrom("reconnecting", "signalReconnecting", "reconnected", "lose", "lose")
      .map<Command>((event) => ({ do: "room", event: event as never })),
  },
  { weight: 3, arbitrary: fc.constantFrom(0, 5, 30).map<Command>((ms) => ({ do: "wait", ms: ms as 0 })) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom("new", "none")
      .map<Command>((change) => ({ do: "delayedLeave", change: change as "new" })),
  },
);

// ---- one run --------------------------------------------------------------------------------------------------

type Entry =
  | { api: "start" | "stop" }
  | { room: "connect" | "connected" | "disconnect" | "now disconnected" | "lost" }
  | { state: unknown };

/** How servers echo a token: as it is, JSON-escaped character by character, percent-encoded, base64. */
const ECHOES: ((token: string) => string)[] = [
  (t) => t,
  (t) => [...t].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`).join(""),
  (t) => [...t].map((c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`).join(""),
  (t) => Buffer.from(t).toString("base64"),
];
let echoCount = 0;
let delaySerial = 0;

const counts = {
  sequences: 0,
  commands: 0,
  starts: 0,
  connects: 0,
  reconnects: 0,
  connected: 0,
  errorsShown: 0,
  connectionsLost: 0,
  delegationChanges: 0,
  delegations: 0,
  checks: 0,
};

async function run(commands: Command[]): Promise<void> {
  counts.sequences++;
  counts.commands += commands.length;
  const log: Entry[] = [];
  const logger = recordingLogger();
  const events: string[] = [];

  // How the homeserver, the auth service and the room answer, until a command changes it.
  let openIdAnswer: "ok" | "fail" | "hang" = "ok";
  let authAnswer: AuthAnswer = "ok";
  const openIds: { resolve: (t: ReturnType<typeof openIdToken>) => void; reject: (e: Error) => void }[] = [];
  const answerOpenId = (p: (typeof openIds)[number]): void => {
    if (openIdAnswer === "ok") p.resolve(openIdToken());
    else p.reject(Object.assign(new Error("M_FORBIDDEN"), { httpStatus: 403 }));
  };
  const client = {
    getOpenIdToken: () =>
      new Promise<ReturnType<typeof openIdToken>>((resolve, reject) => {
        if (openIdAnswer === "hang") openIds.push({ resolve, reject });
        else answerOpenId({ resolve, reject });
      }),
  };
  // The auth service: /get_token as `authAnswer` says; /sfu/get does not exist.
  server.reset();
  const held = server.hold(GET_TOKEN_PATH);
  server.always(GET_TOKEN_PATH, (req, res) =>
    authAnswer === "hang" ? held.handler(req, res) : respond(req, res, authAnswer),
  );
  server.always(SFU_GET_PATH, answer.status(404, "M_NOT_FOUND"));
  // /delegate_delayed_leave answers as /get_token does (an error echoes the OpenID token and the delay id)
  const heldDelegation = server.hold(DELEGATE_PATH);
  server.always(DELEGATE_PATH, (req, res) =>
    authAnswer === "hang" ? heldDelegation.handler(req, res) : respond(req, res, authAnswer),
  );
  const delayIds = [`syd_fuzz_${(delaySerial++).toString(36)}_SECRET`];

  const room = new FakeRoom();
  room.autoConnect = "succeed"; // until a `connect` command says otherwise
  const connect = room.connect.bind(room);
  room.connect = async (url, token) => {
    log.push({ room: "connect" });
    counts.connects++;
    await connect(url, token);
    log.push({ room: "connected" });
  };
  room.on(RoomEvent.ConnectionStateChanged, (state: string) => {
    if (state === "disconnected") log.push({ room: "now disconnected" });
  });
  const disconnect = room.disconnect.bind(room);
  room.disconnect = () => (log.push({ room: "disconnect" }), disconnect());

  const connection = new Connection<FakeRoom>(
    {
      transport: { type: "livekit", livekit_service_url: server.url + SERVICE_PATH },
      client,
      roomId: ROOM_ID,
      ownMembershipIdentity: { userId: "@fuzz:localhost", deviceId: "FUZZ", memberId: "m" },
      livekitRoomFactory: () => room,
      retry: { maxAttempts: 2, initialDelayMs: 1 },
      timeouts: { openIdTokenMs: PHASE_LIMIT_MS, sfuConfigMs: PHASE_LIMIT_MS, disconnectMs: PHASE_LIMIT_MS },
      // waits short enough for the `wait` commands to reach reconnect attempts, and to spend them
      reconnect: { maxAttempts: 2, initialDelayMs: 1, maxDelayMs: 2 },
      delayedLeave: { delayId: delayIds[0]!, delayTimeoutMs: 10_000 },
      // What the events carry that could hold a credential: the event itself and the snapshot's context.
      inspect: (e) =>
        events.push(
          inspect(
            {
              event: (e as { event?: unknown }).event,
              context: (e as { snapshot?: { context?: unknown } }).snapshot?.context,
            },
            { depth: 5 },
          ),
        ),
    },
    logger,
  );
  connection.state$.subscribe((state) => log.push({ state }));
  // When a stop() resolves and no start() came after it, the connection shows Stopped.
  let apiCalls = 0;
  let lastStart = 0;
  const notStopped: string[] = [];
  const starts: Promise<unknown>[] = [];
  const stops: Promise<unknown>[] = [];

  function respond(req: RecordedRequest, res: ServerResponse, a: AuthAnswer): void {
    if (a === "hang") return;
    if (a === "ok") return answer.sfuConfig(undefined as never, res);
    if (a === "malformed") return sendJson(res, 200, { url: 42, jwt: "not a jwt" });
    if (a === "cut") {
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": "100" });
      res.write('{"url": "ws://127.0.0.1');
      return void setTimeout(() => res.socket?.destroy(), 1);
    }
    // The error echoes the OpenID token, in the body's text and in its JSON, in one of the ways servers do.
    const echo = ECHOES[(echoCount++ + a) % ECHOES.length]!;
    // (a server can only echo the delay id it was sent)
    const sent = (req.json as { delay_id?: unknown } | undefined)?.delay_id;
    const [token, delayId] = [echo(ACCESS_TOKEN), typeof sent === "string" ? echo(sent) : "-"];
    res.writeHead(a, { "Content-Type": "application/json", ...(a === 429 ? { "Retry-After": "0" } : {}) });
    res.end(`{"errcode": "M_UNKNOWN", "error": "refused ${token} for ${delayId}", "token": "${token}"}`);
  }

  for (const c of commands) {
    switch (c.do) {
      case "start":
        counts.starts++;
        lastStart = ++apiCalls;
        log.push({ api: "start" });
        starts.push(connection.start().catch(() => {}));
        break;
      case "stop": {
        const call = ++apiCalls;
        log.push({ api: "stop" });
        stops.push(
          connection.stop().then(() => {
            const shown = connection.state$.value;
            if (lastStart < call && shown !== ConnectionState.Stopped) notStopped.push(String(shown));
          }),
        );
        break;
      }
      case "openId":
        openIdAnswer = c.answer;
        if (c.answer !== "hang") for (const p of openIds.splice(0)) answerOpenId(p);
        break;
      case "auth":
        authAnswer = c.answer;
        held.answerAll((req, res) => respond(req, res, c.answer));
        heldDelegation.answerAll((req, res) => respond(req, res, c.answer));
        break;
      case "connect":
        room.autoConnect =
          c.outcome === "hang" ? undefined : c.outcome === "ok" ? "succeed" : connectErrors[c.outcome]();
        if (room.connectPending && c.outcome !== "hang") {
          if (c.outcome === "ok") room.succeedConnect();
          else room.failConnect(connectErrors[c.outcome]());
        }
        break;
      case "room":
        if (c.event === "reconnecting" && room.state === "connected") room.reconnecting();
        if (c.event === "signalReconnecting" && room.state === "connected") room.signalReconnecting();
        if (c.event === "reconnected" && /reconnecting/i.test(room.state)) room.reconnected();
        if (c.event === "lose" && room.state !== "disconnected") {
          log.push({ room: "lost" });
          room.lose();
        }
        break;
      case "delayedLeave":
        if (c.change === "new") delayIds.push(`syd_fuzz_${(delaySerial++).toString(36)}_SECRET`);
        connection.updateDelayedLeave(
          c.change === "new" ? { delayId: delayIds.at(-1)!, delayTimeoutMs: 10_000 } : undefined,
        );
        counts.delegationChanges++;
        break;
      case "wait":
        await (c.ms === 0 ? flush() : new Promise((r) => setTimeout(r, c.ms)));
        break;
    }
    await flush();
  }

  // The end: a last stop(), answering whatever is still waiting so that nothing hangs on the test's account.
  log.push({ api: "stop" });
  const last = connection.stop();
  openIdAnswer = "ok";
  for (const p of openIds.splice(0)) answerOpenId(p);
  held.answerAll((req, res) => respond(req, res, "ok"));
  heldDelegation.answerAll((req, res) => respond(req, res, "ok"));
  const settled = await poll(
    () => Promise.race([Promise.all([...starts, ...stops, last]).then(() => true), flush().then(() => false)]),
    (done) => done,
    { timeoutMs: 3000 },
  );
  held.dropAll();
  heldDelegation.dropAll();
  counts.delegations += server.to(DELEGATE_PATH).length;

  // ---- the invariants ----
  const fail = (what: string): never => {
    throw new Error(`${what}\ncommands: ${JSON.stringify(commands)}\nlog: ${inspect(log, { depth: 3 })}`);
  };
  counts.checks++;
  if (!settled.ok) fail("a start() or stop() did not settle");
  if (notStopped.length) fail(`a stop() resolved while the connection showed ${notStopped.join(", ")}`);
  if (connection.state$.value !== ConnectionState.Stopped)
    fail(`after the last stop(): ${String(connection.state$.value)}`);
  if (room.state !== "disconnected") fail(`the room is ${room.state} after the last stop()`);
  // After its last successful connect the room went disconnected: stopped by us, or lost on the server's side.
  const lastConnected = log.findLastIndex((e) => "room" in e && e.room === "connected");
  const lastDisconnected = log.findLastIndex((e) => "room" in e && e.room === "now disconnected");
  if (lastConnected >= 0 && lastDisconnected < lastConnected) {
    fail("the room was not disconnected after its last connect");
  }
  let lastApi: "start" | "stop" | undefined;
  let lostSinceApi = false;
  for (const e of log) {
    if ("api" in e) [lastApi, lostSinceApi] = [e.api, false];
    if ("room" in e && e.room === "lost") lostSinceApi = true;
    // (a reconnect attempt's connect follows a start() too: a connection is only lost after one)
    if ("room" in e && e.room === "connect" && lastApi !== "start") fail("a connect began after a stop()");
    if ("room" in e && e.room === "connect" && lostSinceApi) counts.reconnects++;
    if ("state" in e && isCallError(e.state) && e.state.name === "ConnectionLostError") counts.connectionsLost++;
    if ("state" in e && e.state === ConnectionState.LivekitConnected) counts.connected++;
    if ("state" in e && isCallError(e.state)) {
      counts.errorsShown++;
      if (lastApi !== "start") fail(`an error was shown after a stop(): ${e.state.name}`);
    }
  }
  const texts = [...events, ...logger.lines, ...log.map((e) => inspect(e, { depth: 4 }))];
  for (const secret of [JWT, ACCESS_TOKEN, ...delayIds]) {
    for (const echo of ECHOES) {
      const form = echo(secret);
      if (texts.some((t) => t.includes(form))) fail(`a credential (${form.slice(0, 12)}…) reached a log or an event`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------

// An unhandled rejection or uncaught exception during the run fails this test: Jest reports both as failures
// (checked: a test that leaves a rejected promise unhandled fails).
test(`random sequences of start/stop, auth-service answers, room outcomes and time keep every promise (seed ${SEED}, ${RUNS} runs)`, async () => {
  const t0 = Date.now();
  await fc.assert(fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 25 }), run), {
    numRuns: RUNS,
    seed: SEED,
    endOnFailure: true,
  });
  await flush();
  // The sequences reached what they are meant to exercise (not only time-outs on a slow machine).
  expect(counts.connects).toBeGreaterThan(RUNS / 10);
  expect(counts.connected).toBeGreaterThan(RUNS / 20);
  expect(counts.errorsShown).toBeGreaterThan(RUNS / 20);
  // (a reconnect by itself needs a loss then a wait with no start() or stop() between: rarer)
  expect(counts.reconnects).toBeGreaterThan(0);
  expect(counts.delegations).toBeGreaterThan(RUNS / 20);
  console.info(
    `fuzz: seed ${SEED}, ${counts.sequences} sequences, ${counts.commands} commands (${counts.starts} start() calls, ` +
      `${counts.connects} connects (${counts.reconnects} of them reconnects), ${counts.connected} times connected, ` +
      `${counts.errorsShown} error states shown, ${counts.connectionsLost} of them ConnectionLostError, ` +
      `${counts.delegations} delegation requests, ${counts.delegationChanges} delayed leaves handed over), ` +
      `invariants checked after ` +
      `${counts.checks} sequences, in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
}, 600_000);
