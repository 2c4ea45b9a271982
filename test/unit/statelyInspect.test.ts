/**
 * The Stately inspector's route (issue 12) as a person wires it up in Node or Electron: `@statelyai/inspect`'s
 * WebSocket inspector is the connection's `inspect` observer and sends what it sees to a WebSocket server. Here a
 * real server on 127.0.0.1 plays the inspector's side and keeps every message. It must get the run (the actors, the
 * events, the snapshots) and no credential in any encoding: the inspector serialises with its own serialiser
 * (safe-stable-stringify), and the `Secret`s in context, events and errors must come out as `[redacted]` there too.
 */
import { createWebSocketInspector, type StatelyInspectionEvent } from "@statelyai/inspect";
import type { ServerResponse } from "node:http";
import { BehaviorSubject } from "rxjs";
import { WebSocketServer, type WebSocket } from "ws";
import type { InspectionEvent, Observer } from "xstate";
import {
  ConnectionManager,
  ConnectionState,
  type DelayedLeave,
  type LivekitTransportConfig,
  type LocalTransportWithSFUConfig,
} from "../../src";
import { FakeRoom } from "../support/fakeRoom";
import {
  ACCESS_TOKEN,
  DELEGATE_PATH,
  DEVICE_ID,
  GET_TOKEN_PATH,
  JWT,
  MATRIX_ACCESS_TOKEN,
  MEMBER_ID,
  OPENID_PATH,
  ROOM_ID,
  SFU_GET_PATH,
  SFU_URL,
  USER_ID,
  answer,
  makeConnection,
  matrixClient,
} from "../support/harness";
import { LoopbackServer, sendJson, type RecordedRequest } from "../support/loopbackServer";
import { strings } from "../support/strings";
import { makeLivekitJwt } from "../support/tokens";
import { waitUntil } from "../support/waitUntil";

const server = LoopbackServer.forThisFile();

/** The inspector's side: a WebSocket server on 127.0.0.1 that keeps every message an inspector sends it. */
class InspectorServer {
  readonly messages: string[] = [];
  private readonly sockets = new Set<WebSocket>();
  private readonly closed: Promise<void>[] = [];

  private constructor(private readonly wss: WebSocketServer) {
    wss.on("connection", (socket) => {
      this.sockets.add(socket);
      this.closed.push(new Promise((resolve) => socket.once("close", () => resolve())));
      socket.on("message", (data) => this.messages.push(String(data)));
    });
  }

  static async start(): Promise<InspectorServer> {
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise<void>((resolve, reject) => wss.once("listening", resolve).once("error", reject));
    return new InspectorServer(wss);
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.wss.address() as { port: number }).port}`;
  }

  get connections(): number {
    return this.sockets.size;
  }

  /**
   * Waits (2 s at most) for the inspectors to close their sockets, so that all they sent has arrived; then closes.
   * Tells whether they did.
   */
  async close(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 2000)));
    const closedByThem = await Promise.race([Promise.all(this.closed).then(() => true), timeout]);
    clearTimeout(timer);
    for (const socket of this.sockets) socket.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    return closedByThem;
  }
}

/** What the inspector's server received, as sent and parsed. */
interface Traffic {
  raw: string[];
  events: StatelyInspectionEvent[];
}

/**
 * Runs `run` with a WebSocket inspector connected to a fresh inspector server; gives what the server received once
 * the inspector has closed its socket.
 */
async function inspectorTraffic(run: (inspect: Observer<InspectionEvent>) => Promise<void>): Promise<Traffic> {
  const inspectorServer = await InspectorServer.start();
  const inspector = createWebSocketInspector({ url: inspectorServer.url });
  let closedByInspector: boolean;
  try {
    await waitUntil(() => inspectorServer.connections === 1, "the inspector to connect");
    await run(inspector.inspect);
    // The inspector converts and sends each inspection event on a 0 ms timer.
    await new Promise((resolve) => setTimeout(resolve, 20));
  } finally {
    inspector.stop();
    closedByInspector = await inspectorServer.close();
  }
  expect(closedByInspector).toBe(true); // else some of what it sent may not have arrived
  const raw = inspectorServer.messages;
  return { raw, events: raw.map((m) => JSON.parse(m) as StatelyInspectionEvent) };
}

type ActorEvent = Extract<StatelyInspectionEvent, { type: "@xstate.actor" }>;
type Snapshot = { value?: unknown; context?: Record<string, unknown> };

const registrations = (t: Traffic): ActorEvent[] => t.events.filter((e): e is ActorEvent => e.type === "@xstate.actor");
const sessionOf = (t: Traffic, name: string): string => {
  const actor = registrations(t).find((e) => e.name === name);
  if (!actor) throw new Error(`no actor ${name} registered; got ${registrations(t).map((e) => e.name)}`);
  return actor.sessionId;
};
/** The types of the events sent to an actor, in order. */
const eventsTo = (t: Traffic, sessionId: string): string[] =>
  t.events.flatMap((e) => (e.type === "@xstate.event" && e.sessionId === sessionId ? [e.event.type] : []));
/** An actor's snapshots as the inspector got them. */
const snapshotsOf = (t: Traffic, sessionId: string): Snapshot[] =>
  t.events.flatMap((e) => (e.type === "@xstate.snapshot" && e.sessionId === sessionId ? [e.snapshot as Snapshot] : []));
/** `{ Livekit: { room: "connected", … } }` → `["Livekit.room.connected", …]`. */
const paths = (value: unknown, prefix = ""): string[] =>
  typeof value === "string"
    ? [prefix + value]
    : Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => paths(v, `${prefix}${k}.`));
const statePaths = (t: Traffic, sessionId: string): string[] =>
  snapshotsOf(t, sessionId).map((s) => paths(s.value).join(" "));
/** The items of `expected` that do not occur in `seen` in this order (each a part of one entry). */
function missingInOrder(seen: readonly string[], expected: readonly string[]): string[] {
  let i = 0;
  const missing: string[] = [];
  for (const want of expected) {
    const at = seen.findIndex((s, j) => j >= i && s.includes(want));
    if (at < 0) missing.push(want);
    else i = at + 1;
  }
  return missing;
}

/** The ways a secret can be written inside a text: JSON-escaped (once or twice), percent-encoded, base64(url). */
function encodings(secret: string): Record<string, string> {
  const json = JSON.stringify(secret).slice(1, -1);
  const forms: Record<string, string> = {
    raw: secret,
    "JSON-escaped": json,
    "JSON-escaped twice": JSON.stringify(json).slice(1, -1),
    "JSON with \\/": json.replace(/\//g, "\\/"),
    "JSON \\uXXXX": [...secret].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`).join(""),
    "percent-encoded": encodeURIComponent(secret),
    "percent-encoded, lower-case hex": encodeURIComponent(secret).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
  };
  // base64 at each of the three alignments the secret can have inside a longer text: the characters that depend
  // on the secret alone.
  const bytes = Buffer.from(secret);
  for (let k = 0; k < 3; k++) {
    const b64 = Buffer.concat([Buffer.alloc(k), bytes]).toString("base64");
    const part = b64.slice(Math.ceil((8 * k) / 6), Math.floor((8 * (k + bytes.length)) / 6));
    forms[`base64 (offset ${k})`] = part;
    forms[`base64url (offset ${k})`] = part.replace(/\+/g, "-").replace(/\//g, "_");
  }
  return forms;
}

/** Each secret, by name, that the traffic holds in some encoding, with where: `[]` when there is none. */
function leaks(t: Traffic, secrets: Record<string, string>): string[] {
  // The raw messages, and every string in them once parsed (a JSON text inside a string comes out unescaped).
  const texts = [...t.raw, ...strings(t.events)];
  const found: string[] = [];
  for (const [name, secret] of Object.entries(secrets)) {
    for (const [encoding, form] of Object.entries(encodings(secret))) {
      const text = texts.find((x) => x.includes(form));
      if (text) found.push(`${name} (${encoding}) in ${text.slice(0, 200)}…`);
    }
  }
  return found;
}

const CONNECTION_SECRETS = {
  JWT,
  "the JWT's signature": JWT.split(".")[2]!,
  "the OpenID access token": ACCESS_TOKEN,
  "the Matrix access token": MATRIX_ACCESS_TOKEN,
};

/** The ways a server quoting a secret writes it. */
const quotesOf = (secret: string): string[] => [
  secret,
  JSON.stringify(secret).slice(1, -1),
  encodeURIComponent(secret),
  Buffer.from(secret).toString("base64"),
  Buffer.from(secret).toString("base64url"),
];

/** A 500 whose body is `rejected: ` and the quotes of what `quoted` picks from the request, separated by ` | `. */
const echoing =
  (quoted: (req: RecordedRequest) => string[]) =>
  (req: RecordedRequest, res: ServerResponse): void => {
    res.writeHead(500, { "Content-Type": "text/plain" });
    res.end(`rejected: ${quoted(req).join(" | ")}`);
  };

describe("the Stately WebSocket inspector", () => {
  test("gets a connection's run, start() → connected → stop(): its actors, START and STOP, the states, redacted", async () => {
    server.always(OPENID_PATH, answer.openId).always(GET_TOKEN_PATH, answer.sfuConfig);
    const traffic = await inspectorTraffic(async (inspect) => {
      const h = makeConnection(server, { inspect });
      h.room.autoConnect = "succeed";
      await h.connection.start();
      expect(h.connection.state$.value).toBe(ConnectionState.LivekitConnected);
      await h.connection.stop();
    });

    // The connection's actor, with its definition for the inspector to draw, and the actors it invoked.
    const root = sessionOf(traffic, "connection");
    const definition = JSON.parse(registrations(traffic).find((e) => e.sessionId === root)!.definition!);
    expect(definition).toMatchObject({ id: "connection", initial: "Initialized" });
    expect(Object.keys(definition.states)).toEqual(expect.arrayContaining(["FetchingConfig", "Livekit", "Stopped"]));
    const children = registrations(traffic).filter((e) => e.parentId === root);
    expect(children.map((e) => e.name)).toEqual(
      expect.arrayContaining(["requestOpenIdToken", "requestSFUConfig", "connectRoom", "disconnectRoom"]),
    );
    expect(missingInOrder(eventsTo(traffic, root), ["START", "STOP"])).toEqual([]);
    expect(
      missingInOrder(statePaths(traffic, root), [
        "Initialized",
        "FetchingConfig.RequestingOpenIdToken",
        "FetchingConfig.RequestingSFUConfig",
        "Livekit.room.connected",
        "Stopped",
      ]),
    ).toEqual([]);

    // The SFU config shows, its JWT as [redacted].
    const connected = snapshotsOf(traffic, root).find((s) => paths(s.value).includes("Livekit.room.connected"))!;
    expect(connected.context).toMatchObject({
      sfuConfig: { url: SFU_URL, livekitAlias: "alias-of-the-call", jwt: "[redacted]" },
      deps: "[redacted]",
    });
    expect(leaks(traffic, CONNECTION_SECRETS)).toEqual([]);
  });

  test("an auth service whose errors quote the OpenID access token: the failure shows, the token does not", async () => {
    const echo = echoing(() => [
      ...quotesOf(ACCESS_TOKEN),
      [...ACCESS_TOKEN].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`).join(""),
    ]);
    server.always(OPENID_PATH, answer.openId).always(GET_TOKEN_PATH, echo).always(SFU_GET_PATH, echo);
    const traffic = await inspectorTraffic(async (inspect) => {
      const h = makeConnection(server, { inspect, retry: { maxAttempts: 1 } });
      await expect(h.connection.start()).rejects.toMatchObject({ name: "FailToGetOpenIdToken" });
      await h.connection.stop();
    });
    expect(server.to(GET_TOKEN_PATH).length + server.to(SFU_GET_PATH).length).toBeGreaterThan(0);

    const root = sessionOf(traffic, "connection");
    expect(
      missingInOrder(statePaths(traffic, root), [
        "FetchingConfig.RequestingSFUConfig",
        "Failed.OpenIdError",
        "Stopped",
      ]),
    ).toEqual([]);
    const requesting = snapshotsOf(traffic, root).find((s) =>
      paths(s.value).includes("FetchingConfig.RequestingSFUConfig"),
    )!;
    expect(requesting.context).toMatchObject({ openIdToken: "[redacted]" });
    const failed = snapshotsOf(traffic, root).find((s) => paths(s.value).includes("Failed.OpenIdError"))!;
    expect(failed.context?.error).toMatchObject({ name: "FailToGetOpenIdToken", code: "OPEN_ID_ERROR" });
    expect(leaks(traffic, CONNECTION_SECRETS)).toEqual([]);
  });

  test("a delayed leave: its delay id shows as [redacted], also where the auth service's refusal quotes it", async () => {
    const DELAY_ID = 'syd_delay/SECRET+odd=&"~4f2a9c';
    const NEXT_DELAY_ID = "syd_delay_SECRET_next_7d1e";
    const leave = (delayId: string): DelayedLeave => ({ delayId, delayTimeoutMs: 20_000 });
    server
      .always(OPENID_PATH, answer.openId)
      .always(GET_TOKEN_PATH, answer.sfuConfig)
      // (the body in the error is cut at 300 characters: the delay id in five forms and the token once fit)
      .always(
        DELEGATE_PATH,
        echoing((req) => {
          const sent = req.json as { delay_id: string; openid_token: { access_token: string } };
          return [...quotesOf(sent.delay_id), sent.openid_token.access_token];
        }),
      );
    const traffic = await inspectorTraffic(async (inspect) => {
      const h = makeConnection(server, { inspect, delayedLeave: leave(DELAY_ID), retry: { maxAttempts: 1 } });
      const region = (): unknown =>
        (h.connection.actor.getSnapshot().value as { Livekit?: { delayedLeave?: string } }).Livekit?.delayedLeave;
      h.room.autoConnect = "succeed";
      await h.connection.start();
      await waitUntil(() => region() === "Failed", "the first delegation to fail");
      h.connection.updateDelayedLeave(leave(NEXT_DELAY_ID));
      await waitUntil(() => server.to(DELEGATE_PATH).length === 2 && region() === "Failed", "the second one to fail");
      expect(h.connection.state$.value).toBe(ConnectionState.LivekitConnected);
      await h.connection.stop();
    });
    expect(JSON.stringify(server.to(DELEGATE_PATH).map((r) => r.json))).toContain("syd_delay/SECRET"); // it was sent

    const root = sessionOf(traffic, "connection");
    expect(
      missingInOrder(statePaths(traffic, root), [
        "Livekit.delayedLeave.Delegating",
        "Livekit.delayedLeave.Failed",
        "Livekit.delayedLeave.Delegating",
        "Livekit.delayedLeave.Failed",
        "Stopped",
      ]),
    ).toEqual([]);
    const changed = traffic.events.find((e) => e.type === "@xstate.event" && e.event.type === "DELAYED_LEAVE_CHANGED");
    expect(changed).toMatchObject({ sessionId: root, event: { delayedLeave: "[redacted]" } });
    const failures = snapshotsOf(traffic, root).filter((s) => paths(s.value).includes("Livekit.delayedLeave.Failed"));
    expect(failures.length).toBeGreaterThanOrEqual(2);
    for (const failed of [failures[0]!, failures.at(-1)!]) {
      expect(failed.context).toMatchObject({ delayedLeave: "[redacted]" });
      const refusal = failed.context?.delegationError as { httpStatus?: number; body?: string };
      expect(refusal.httpStatus).toBe(500);
      // Every quote of a secret is [redacted] (base64 keeps the characters it shares with the text around it).
      expect(refusal.body).toMatch(/^rejected: /);
      const quotes = refusal.body!.slice("rejected: ".length).split(" | ");
      expect(quotes).toHaveLength(6);
      expect(quotes.filter((q) => !/^\S{0,2}\[redacted\]\S{0,3}$/.test(q))).toEqual([]);
    }
    expect(
      leaks(traffic, { ...CONNECTION_SECRETS, "the delay id": DELAY_ID, "the next delay id": NEXT_DELAY_ID }),
    ).toEqual([]);
  });

  test("gets a ConnectionManager's whole system, the manager, its slots and their connections, redacted", async () => {
    const LOCAL_JWT = makeLivekitJwt({ sub: "alice-identity", room: "alias-of-the-call", expiresInS: 1800 });
    const DELAY_ID = "syd_manager_delay_SECRET_9b3c";
    const transport = (name: string): LivekitTransportConfig => ({
      type: "livekit",
      livekit_service_url: `${server.url}/${name}/livekit/jwt`,
    });
    server
      .always(OPENID_PATH, answer.openId)
      .always("/remote/livekit/jwt/get_token", answer.sfuConfig)
      .always("/local/livekit/jwt/delegate_delayed_leave", (_, res) => sendJson(res, 200, {}));
    const traffic = await inspectorTraffic(async (inspect) => {
      const local$ = new BehaviorSubject<LocalTransportWithSFUConfig | null>({
        transport: transport("local"),
        sfuConfig: { url: SFU_URL, jwt: LOCAL_JWT, livekitAlias: "alias-of-the-call", livekitIdentity: "alice" },
      });
      const remote$ = new BehaviorSubject<readonly LivekitTransportConfig[]>([transport("remote")]);
      const manager = new ConnectionManager<FakeRoom>({
        localTransport$: local$,
        remoteTransports$: remote$,
        client: matrixClient(server),
        roomId: ROOM_ID,
        ownMembershipIdentity: { userId: USER_ID, deviceId: DEVICE_ID, memberId: MEMBER_ID },
        livekitRoomFactory: () => Object.assign(new FakeRoom(), { autoConnect: "succeed" as const }),
        delayedLeave: { delayId: DELAY_ID, delayTimeoutMs: 20_000 },
        retry: { maxAttempts: 1 },
        inspect,
      });
      const states = (): unknown[] => manager.connectionManagerData$.value.getConnections().map((c) => c.state$.value);
      await waitUntil(
        () => states().length === 2 && states().every((s) => s === ConnectionState.LivekitConnected),
        "both connections connected",
      );
      await manager.stop();
    });

    const actors = registrations(traffic);
    const managerId = sessionOf(traffic, "connectionManager");
    const machineOf = (e: ActorEvent): unknown => e.definition && (JSON.parse(e.definition) as { id?: string }).id;
    const slots = actors.filter((e) => machineOf(e) === "connectionSlot");
    const connections = actors.filter((e) => machineOf(e) === "connection");
    expect(slots).toHaveLength(2);
    expect(connections).toHaveLength(2);
    expect(slots.every((s) => s.parentId === managerId)).toBe(true);
    expect(connections.map((c) => c.parentId).sort()).toEqual(slots.map((s) => s.sessionId).sort());
    expect([...new Set(actors.map((e) => e.rootId))]).toEqual([managerId]); // one system
    const connectedContexts = connections.map((c) => {
      expect(missingInOrder(statePaths(traffic, c.sessionId), ["Livekit.room.connected", "Stopped"])).toEqual([]);
      return snapshotsOf(traffic, c.sessionId).find((s) => paths(s.value).includes("Livekit.room.connected"))!.context;
    });
    expect(connectedContexts).toEqual([
      expect.objectContaining({
        sfuConfig: expect.objectContaining({ jwt: "[redacted]" }),
        delayedLeave: "[redacted]",
      }),
      expect.objectContaining({ sfuConfig: expect.objectContaining({ jwt: "[redacted]" }) }),
    ]); // the local connection first, with the delayed leave
    expect(leaks(traffic, { ...CONNECTION_SECRETS, "the local JWT": LOCAL_JWT, "the delay id": DELAY_ID })).toEqual([]);
  });
});
