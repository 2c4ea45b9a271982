/**
 * The e2e test page: bundled by test/e2e/support/globalSetup.ts with esbuild (platform browser) together with
 * our src/, matrix-js-sdk and livekit-client, served from http://127.0.0.1:<port>/ and driven by the Jest tests
 * through `window.e2e` (see ./api.ts).
 */
import {
  ConnectionErrorReason,
  DisconnectReason,
  LogLevel,
  Room,
  RoomEvent,
  setLogLevel,
  type RoomOptions,
} from "livekit-client";
import { createClient, EventType, MatrixEvent, Preset, Visibility, type MatrixClient } from "matrix-js-sdk";
import { CallMembership } from "matrix-js-sdk/lib/matrixrtc";
import { BehaviorSubject, type Observable, type Subscription } from "rxjs";
import {
  Connection,
  ConnectionManager,
  isCallError,
  matchMembershipsToParticipants,
  type CallError,
  type ConnectionManagerData,
  type LivekitTransportConfig,
  type Logger,
} from "../../../src";
import type {
  ConnectionParams,
  DataConnectionRecord,
  E2eApi,
  ErrorRecord,
  ManagerParams,
  ManagerRecording,
  MatrixParams,
  PeerConnectionReport,
  Recording,
  SlotRecord,
  StateRecord,
} from "./api";

setLogLevel((new URLSearchParams(location.search).get("lklog") as LogLevel | null) ?? LogLevel.info);

/** Every RTCPeerConnection livekit-client creates, with the candidates it gathered and the ICE servers it got. */
const peerConnections: { pc: RTCPeerConnection; candidates: string[]; iceServers: string[] }[] = [];
const NativePC = window.RTCPeerConnection;
window.RTCPeerConnection = class extends NativePC {
  constructor(config?: RTCConfiguration) {
    super(config);
    const entry = {
      pc: this as RTCPeerConnection,
      candidates: [] as string[],
      iceServers: (config?.iceServers ?? []).flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls])),
    };
    peerConnections.push(entry);
    this.addEventListener("icecandidate", (ev) => {
      if (ev.candidate?.candidate) entry.candidates.push(ev.candidate.candidate);
    });
  }
} as typeof RTCPeerConnection;

/**
 * Every WebSocket the page opens (livekit-client's signalling), with `performance.now()` at its creation and its
 * URL without the query (which holds the access token): each connect attempt opens one.
 */
const webSockets: { at: number; url: string }[] = [];
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(url: string | URL, protocols?: string | string[]) {
    super(url, protocols);
    webSockets.push({ at: performance.now(), url: String(url).replace(/[?#].*$/, "") });
  }
} as typeof WebSocket;

/** `candidate:<foundation> <component> <protocol> <priority> <address> <port> typ <type> …` */
function parseCandidate(line: string): { address: string; port: number; protocol: string; type: string } {
  const f = line.replace(/^a=/, "").split(" ");
  return { address: f[4] ?? "?", port: Number(f[5]), protocol: (f[2] ?? "?").toLowerCase(), type: f[7] ?? "?" };
}

async function reportOf(e: (typeof peerConnections)[number]): Promise<PeerConnectionReport> {
  const stats = await e.pc.getStats();
  type Cand = { address?: string; port?: number; protocol?: string; candidateType?: string };
  let selectedPair: PeerConnectionReport["selectedPair"];
  stats.forEach(
    (s: {
      type: string;
      nominated?: boolean;
      state?: string;
      localCandidateId?: string;
      remoteCandidateId?: string;
    }) => {
      if (s.type !== "candidate-pair" || !s.nominated || s.state !== "succeeded") return;
      const [l, r] = [stats.get(s.localCandidateId!) as Cand, stats.get(s.remoteCandidateId!) as Cand];
      const c = (x: Cand) => ({
        address: x.address ?? "?",
        port: x.port ?? 0,
        protocol: x.protocol ?? "?",
        type: x.candidateType ?? "?",
      });
      selectedPair = { local: c(l), remote: c(r) };
    },
  );
  return {
    connectionState: e.pc.connectionState,
    localCandidates: e.candidates.map(parseCandidate),
    selectedPair,
    iceServers: [
      ...new Set([
        ...e.iceServers,
        ...(e.pc.getConfiguration().iceServers ?? []).flatMap((x) => (Array.isArray(x.urls) ? x.urls : [x.urls])),
      ]),
    ],
  };
}

/** Logs to the page console (the tests collect it and print it when a test fails). */
function consoleLogger(prefix: string): Logger {
  return {
    debug: (...m: unknown[]) => console.debug(prefix, ...m),
    info: (...m: unknown[]) => console.info(prefix, ...m),
    warn: (...m: unknown[]) => console.warn(prefix, ...m),
    error: (...m: unknown[]) => console.error(prefix, ...m),
    getChild: (ns: string) => consoleLogger(`${prefix} ${ns}`),
  };
}

/** A short description of an error's cause chain, e.g. `ConnectionError(reason=NotAllowed, status=404): …`. */
function describeCause(e: unknown, depth = 0): string | undefined {
  if (e === undefined || e === null || depth > 3) return undefined;
  if (!(e instanceof Error)) return String(e);
  const x = e as Error & { reason?: unknown; reasonName?: unknown; status?: unknown; httpStatus?: unknown };
  const extra = [
    // livekit-client 2.23's Room.connect copies `reason` from the inner error but keeps its own `reasonName`,
    // so both are shown: `reason` is the one that counts.
    x.reason !== undefined
      ? `reason=${String(x.reason)}${typeof x.reason === "number" && x.name === "ConnectionError" ? ` (${ConnectionErrorReason[x.reason]})` : ""}`
      : undefined,
    x.reasonName !== undefined ? `reasonName=${String(x.reasonName)}` : undefined,
    x.status !== undefined ? `status=${String(x.status)}` : undefined,
    x.httpStatus !== undefined ? `httpStatus=${String(x.httpStatus)}` : undefined,
  ].filter(Boolean);
  const inner = describeCause(x.cause, depth + 1);
  return `${x.name}${extra.length ? `(${extra.join(", ")})` : ""}: ${x.message}${inner ? ` <- ${inner}` : ""}`;
}

function stateRecord(t: number, s: unknown): StateRecord {
  if (isCallError(s)) {
    const e = s as CallError;
    return { t, error: e.name, code: e.code, message: e.message, cause: describeCause(e.cause) };
  }
  return { t, state: String(s) };
}

function stateName(r: StateRecord): string {
  return "state" in r ? r.state : r.error;
}

/** An xstate state value as a dotted path: `"Stopped"`, `{Failed: "ConnectionLost"}` → `"Failed.ConnectionLost"`. */
function statePath(value: unknown): string {
  if (typeof value === "string") return value;
  if (value && typeof value === "object") {
    return Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => {
        const rest = statePath(v);
        return rest ? `${k}.${rest}` : k;
      })
      .join(",");
  }
  return "";
}

/**
 * The chart's state split in two: the path without the delegation region (`{Livekit: {room: "connected",
 * delayedLeave: "Delegated"}}` → `"Livekit.room.connected"`), and the delegation region's state (`"Delegated"`;
 * undefined outside `Livekit`).
 */
function splitState(value: unknown): { machine: string; delegation?: string } {
  if (value && typeof value === "object" && "Livekit" in value) {
    const livekit = (value as { Livekit: unknown }).Livekit;
    if (livekit && typeof livekit === "object") {
      const { delayedLeave, ...rest } = livekit as Record<string, unknown>;
      return {
        machine: statePath({ Livekit: rest }),
        delegation: delayedLeave === undefined ? undefined : statePath(delayedLeave),
      };
    }
  }
  return { machine: statePath(value) };
}

function matrixClient(p: MatrixParams): MatrixClient {
  return createClient({ baseUrl: p.baseUrl, accessToken: p.accessToken, userId: p.userId, deviceId: p.deviceId });
}

function roomOptions(p: ConnectionParams): RoomOptions | undefined {
  const delays = p.reconnectDelaysMs;
  if (!delays) return undefined;
  return { reconnectPolicy: { nextRetryDelayInMs: (ctx) => delays[ctx.retryCount] ?? null } };
}

interface Entry {
  connection: Connection;
  room: Room;
  t0: number;
  rec: Omit<
    Recording,
    | "roomState"
    | "livekitAlias"
    | "localIdentity"
    | "remoteTracks"
    | "reconnectAttempts"
    | "epochAtT0"
    | "webSockets"
    | "delegationError"
  >;
}

const entries = new Map<string, Entry>();
let nextId = 0;

function entry(id: string): Entry {
  const e = entries.get(id);
  if (!e) throw new Error(`no connection ${id}`);
  return e;
}

const now = (e: Entry): number => Math.round((performance.now() - e.t0) * 10) / 10;

function waitFor(e: Entry, done: () => boolean, what: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const sources: Observable<unknown>[] = [e.connection.state$, e.connection.remoteParticipants$];
    const subs: Subscription[] = [];
    const timer = setTimeout(() => {
      const states = e.rec.states.map(stateName).join(" → ");
      finish(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; states so far: ${states}`));
    }, timeoutMs);
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      subs.forEach((s) => s.unsubscribe());
      if (error) reject(error);
      else resolve();
    };
    if (done()) return finish();
    // The recording's own subscriptions were made first, so it is up to date when these run.
    for (const o of sources) subs.push(o.subscribe(() => void (done() && finish())));
  });
}

const livekitTransport = (url: string): LivekitTransportConfig => ({ type: "livekit", livekit_service_url: url });

function errorRecord(e: unknown): ErrorRecord {
  if (e instanceof Error) {
    return {
      error: e.name,
      code: isCallError(e) ? (e as CallError).code : undefined,
      message: e.message,
      cause: describeCause(e.cause),
    };
  }
  return { error: typeof e, message: String(e) };
}

/** A ConnectionManager of the page, with its inputs and what it did. */
interface ManagerEntry {
  manager: ConnectionManager;
  local: BehaviorSubject<{ transport: LivekitTransportConfig } | null>;
  remote: BehaviorSubject<LivekitTransportConfig[]>;
  /** The manager's user and device: the local member for matchMembers. */
  localUser: { userId: string; deviceId: string };
  t0: number;
  managerStates: ManagerRecording["manager"];
  slots: SlotRecord[];
  data: ManagerRecording["data"];
  dataCompleted: boolean;
  /** Every connection the data held, in the order first seen, with its `state$` recording. */
  connections: Map<Connection, { url: string; states: StateRecord[]; completedAt?: number }>;
  stops: ManagerRecording["stops"];
}

const managers = new Map<string, ManagerEntry>();

function managerEntry(id: string): ManagerEntry {
  const m = managers.get(id);
  if (!m) throw new Error(`no manager ${id}`);
  return m;
}

const managerNow = (m: ManagerEntry): number => Math.round((performance.now() - m.t0) * 10) / 10;

const shownState = (connection: Connection): string => {
  const s = connection.state$.value;
  return isCallError(s) ? `Error:${(s as CallError).name}` : String(s);
};

/** The manager snapshot's slot entries now. */
function slotRecords(m: ManagerEntry): SlotRecord[] {
  return m.manager.actor.getSnapshot().context.slots.map((slot) => ({
    t: managerNow(m),
    id: slot.id,
    url: slot.key,
    status: slot.status,
    wanted: slot.wanted,
    isLocal: slot.isLocal,
    retries: slot.retries,
    connectionState: slot.connectionState,
    error: slot.error === undefined ? undefined : errorRecord(slot.error),
  }));
}

function dataRecord(data: ConnectionManagerData): DataConnectionRecord[] {
  return data.getConnections().map((connection) => ({
    url: connection.transport.livekit_service_url,
    state: shownState(connection),
    participants: data
      .getParticipantsForTransport(connection.transport)
      .map((p) => p.identity)
      .sort(),
  }));
}

export const api: E2eApi = {
  create(p: ConnectionParams): string {
    const id = `c${nextId++}`;
    const matrixClient = createClient({
      baseUrl: p.baseUrl,
      accessToken: p.accessToken,
      userId: p.userId,
      deviceId: p.deviceId,
    });
    const client = p.forgeOpenIdToken
      ? {
          getOpenIdToken: async () => ({
            ...(await matrixClient.getOpenIdToken()),
            access_token: "forged-openid-token",
          }),
        }
      : matrixClient;
    let room: Room | undefined;
    const connection = new Connection(
      {
        transport: { type: "livekit", livekit_service_url: p.serviceUrl },
        client,
        roomId: p.roomId,
        ownMembershipIdentity: {
          userId: p.userId,
          deviceId: p.deviceId,
          memberId: p.memberId ?? `${p.userId}/${p.deviceId}`,
        },
        livekitRoomFactory: () => (room = new Room(roomOptions(p))),
        existingSFUConfig: p.existingSFUConfig,
        retry: p.retry,
        timeouts: p.timeouts,
        // (only when given, so the package's defaults are what a scenario without them tests)
        ...(p.reconnect !== undefined ? { reconnect: p.reconnect } : {}),
        ...(p.jwtMarginMs !== undefined ? { jwtMarginMs: p.jwtMarginMs } : {}),
        ...(p.forceJwtEndpoint !== undefined ? { forceJwtEndpoint: p.forceJwtEndpoint } : {}),
        ...(p.delayedLeave !== undefined ? { delayedLeave: p.delayedLeave } : {}),
      },
      consoleLogger(`[e2e ${id}]`),
    );
    const e: Entry = {
      connection,
      room: room!,
      t0: performance.now(),
      rec: {
        states: [],
        participants: [],
        starts: [],
        stops: [],
        roomEvents: [],
        machineStates: [],
        delegation: [],
      },
    };
    const roomEvent = (event: string) => e.rec.roomEvents.push({ t: now(e), event });
    e.room.on(RoomEvent.Reconnecting, () => roomEvent("reconnecting"));
    e.room.on(RoomEvent.SignalReconnecting, () => roomEvent("signalReconnecting"));
    e.room.on(RoomEvent.Reconnected, () => roomEvent("reconnected"));
    e.room.on(RoomEvent.Disconnected, (reason?: DisconnectReason) =>
      roomEvent(`disconnected(${reason === undefined ? "no reason" : (DisconnectReason[reason] ?? String(reason))})`),
    );
    entries.set(id, e);
    let inLivekit = false;
    const machineState = (value: unknown): void => {
      const { machine: state, delegation } = splitState(value);
      if (e.rec.machineStates.at(-1)?.state !== state) e.rec.machineStates.push({ t: now(e), state });
      // (each entry into Livekit starts the region afresh: its first state is recorded even if it equals the
      // previous run's last)
      const entering = delegation !== undefined && !inLivekit;
      inLivekit = delegation !== undefined;
      if (delegation !== undefined && (entering || e.rec.delegation.at(-1)?.state !== delegation)) {
        e.rec.delegation.push({ t: now(e), state: delegation });
      }
    };
    machineState(connection.actor.getSnapshot().value); // (subscribe reports changes only)
    connection.actor.subscribe({ next: (snapshot) => machineState(snapshot.value), error: () => {} });
    connection.state$.subscribe((s) => e.rec.states.push(stateRecord(now(e), s)));
    connection.remoteParticipants$.subscribe((ps) =>
      e.rec.participants.push({ t: now(e), identities: ps.map((x) => x.identity).sort() }),
    );
    if (p.stopOn === "connecting") {
      const sub = connection.state$.subscribe((s) => {
        if (s !== "connecting") return;
        queueMicrotask(() => sub.unsubscribe());
        void api.stop(id);
      });
    } else if (p.stopOn === "signalConnected") {
      e.room.once(RoomEvent.SignalConnected, () => void api.stop(id));
    }
    return id;
  },

  async start(id) {
    const e = entry(id);
    const s: Recording["starts"][number] = { calledAt: now(e) };
    e.rec.starts.push(s);
    try {
      await e.connection.start();
      s.outcome = "resolved";
    } catch (err) {
      s.outcome = "rejected";
      s.error = err instanceof Error ? err.name : String(err);
    }
    s.settledAt = now(e);
    return { outcome: s.outcome, error: s.error };
  },

  startInBackground(id) {
    void api.start(id);
  },

  async stop(id) {
    const e = entry(id);
    const last = e.rec.states.at(-1);
    const s: Recording["stops"][number] = { calledAt: now(e), stateAtCall: last ? stateName(last) : "?" };
    e.rec.stops.push(s);
    await e.connection.stop();
    s.resolvedAt = now(e);
  },

  waitForState(id, state, timeoutMs) {
    const e = entry(id);
    return waitFor(e, () => e.rec.states.some((r) => stateName(r) === state), `state ${state}`, timeoutMs);
  },

  waitForParticipants(id, identities, timeoutMs) {
    const e = entry(id);
    const want = [...identities].sort().join(",");
    return waitFor(
      e,
      () => e.rec.participants.at(-1)?.identities.join(",") === want,
      `remote participants [${want}]`,
      timeoutMs,
    );
  },

  recording(id) {
    const e = entry(id);
    return {
      ...structuredClone(e.rec),
      roomState: e.room.state,
      reconnectAttempts: e.connection.actor.getSnapshot().context.reconnectAttempts,
      delegationError: describeCause(e.connection.actor.getSnapshot().context.delegationError),
      epochAtT0: performance.timeOrigin + e.t0,
      webSockets: webSockets
        .filter((w) => w.at >= e.t0)
        .map((w) => ({ t: Math.round((w.at - e.t0) * 10) / 10, url: w.url })),
      livekitAlias: e.connection.livekitAlias,
      localIdentity: e.room.localParticipant.identity || undefined,
      remoteTracks: Object.fromEntries(
        [...e.room.remoteParticipants.values()].map((p) => [
          p.identity,
          [...p.trackPublications.values()]
            .map((t) => `${t.kind}/${t.source}/${t.isSubscribed ? "subscribed" : "unsubscribed"}`)
            .sort(),
        ]),
      ),
    };
  },

  async publishFakeMedia(id, what) {
    const { room } = entry(id);
    if (what.camera) await room.localParticipant.setCameraEnabled(true);
    if (what.microphone) await room.localParticipant.setMicrophoneEnabled(true);
  },

  peerConnections() {
    return Promise.all(peerConnections.map(reportOf));
  },

  updateDelayedLeave(id, delayedLeave) {
    entry(id).connection.updateDelayedLeave(delayedLeave ?? undefined);
  },

  createManager(p: ManagerParams): string {
    const id = `m${nextId++}`;
    const client = createClient({
      baseUrl: p.baseUrl,
      accessToken: p.accessToken,
      userId: p.userId,
      deviceId: p.deviceId,
    });
    const local = new BehaviorSubject(p.local === null ? null : { transport: livekitTransport(p.local) });
    const remote = new BehaviorSubject(p.remote.map(livekitTransport));
    const manager = new ConnectionManager(
      {
        localTransport$: local,
        remoteTransports$: remote,
        livekitRoomFactory: () => new Room(),
        client,
        roomId: p.roomId,
        ownMembershipIdentity: { userId: p.userId, deviceId: p.deviceId, memberId: p.memberId },
        retry: p.retry,
        timeouts: p.timeouts,
        // (only when given, so that the package's default is what a scenario without it tests)
        ...(p.reconnect !== undefined ? { reconnect: p.reconnect } : {}),
      },
      consoleLogger(`[e2e ${id}]`),
    );
    const m: ManagerEntry = {
      manager,
      local,
      remote,
      localUser: { userId: p.userId, deviceId: p.deviceId },
      t0: performance.now(),
      managerStates: [],
      slots: [],
      data: [],
      dataCompleted: false,
      connections: new Map(),
      stops: [],
    };
    managers.set(id, m);
    // The chart's state and each slot entry, on each snapshot (a slot entry when one of its fields changed).
    const follow = (): void => {
      const snapshot = manager.actor.getSnapshot();
      const state = statePath(snapshot.value);
      if (m.managerStates.at(-1)?.state !== state) m.managerStates.push({ t: managerNow(m), state });
      for (const record of slotRecords(m)) {
        const last = m.slots.findLast((r) => r.id === record.id);
        const same = (r: SlotRecord): string => JSON.stringify({ ...r, t: 0 });
        if (!last || same(last) !== same(record)) m.slots.push(record);
      }
    };
    follow();
    manager.actor.subscribe({ next: follow, error: () => {} });
    // The data's values; each connection's state$ from the first value that holds it.
    manager.connectionManagerData$.subscribe({
      next: (data) => {
        for (const connection of data.getConnections()) {
          if (m.connections.has(connection)) continue;
          const rec: { url: string; states: StateRecord[]; completedAt?: number } = {
            url: connection.transport.livekit_service_url,
            states: [],
          };
          m.connections.set(connection, rec);
          connection.state$.subscribe({
            next: (s) => rec.states.push(stateRecord(managerNow(m), s)),
            complete: () => (rec.completedAt = managerNow(m)),
          });
        }
        m.data.push({ t: managerNow(m), version: data.version, connections: dataRecord(data) });
      },
      complete: () => (m.dataCompleted = true),
    });
    return id;
  },

  setTransports(id, local, remote) {
    const m = managerEntry(id);
    const nextLocal = local === null ? null : { transport: livekitTransport(local) };
    if (JSON.stringify(nextLocal) !== JSON.stringify(m.local.value)) m.local.next(nextLocal);
    const nextRemote = remote.map(livekitTransport);
    if (JSON.stringify(nextRemote) !== JSON.stringify(m.remote.value)) m.remote.next(nextRemote);
  },

  async stopManager(id) {
    const m = managerEntry(id);
    const s: ManagerRecording["stops"][number] = { calledAt: managerNow(m) };
    m.stops.push(s);
    await m.manager.stop();
    s.resolvedAt = managerNow(m);
  },

  managerRecording(id) {
    const m = managerEntry(id);
    return {
      manager: structuredClone(m.managerStates),
      slots: structuredClone(m.slots),
      currentSlots: slotRecords(m),
      data: structuredClone(m.data),
      current: dataRecord(m.manager.connectionManagerData$.value),
      dataCompleted: m.dataCompleted,
      connections: [...m.connections].map(([connection, rec]) => ({
        ...structuredClone(rec),
        livekitAlias: connection.livekitAlias,
        localIdentity: connection.livekitRoom.localParticipant.identity || undefined,
        roomState: connection.livekitRoom.state,
      })),
      stops: structuredClone(m.stops),
      epochAtT0: performance.timeOrigin + m.t0,
    };
  },

  async matchMembers(id, memberships) {
    const m = managerEntry(id);
    const parsed = await Promise.all(
      memberships.map(async (x, i) => {
        const transport = livekitTransport(x.serviceUrl);
        // The MSC4143 membership (sticky event) as matrix-js-sdk 43 checks it (checkRtcMembershipData).
        const event = new MatrixEvent({
          type: EventType.RTCMembership,
          sender: x.userId,
          event_id: `$e2e-member-${i}`,
          room_id: "!e2e:localhost",
          origin_server_ts: Date.now(),
          content: {
            slot_id: "m.call#ROOM",
            application: { type: "m.call" },
            member: { user_id: x.userId, device_id: x.deviceId, id: x.memberId },
            transports: { published: [transport], can_subscribe: [] },
            versions: [],
            sticky_key: x.memberId,
          },
        });
        const membership = await CallMembership.parseFromEvent(event);
        return { membership, transport: membership.getTransport(membership) as LivekitTransportConfig | undefined };
      }),
    );
    const matched = matchMembershipsToParticipants(parsed, m.manager.connectionManagerData$.value, m.localUser);
    return matched.map((x) => ({
      userId: x.membership.userId,
      deviceId: x.membership.deviceId,
      rtcBackendIdentity: x.membership.rtcBackendIdentity,
      transportUrl: x.transport?.livekit_service_url,
      connectionUrl: x.connection?.transport.livekit_service_url ?? null,
      participantIdentity: x.participant?.identity ?? null,
    }));
  },

  async matrixCreateRoom(p) {
    const { room_id } = await matrixClient(p).createRoom({
      visibility: Visibility.Private,
      preset: Preset.PrivateChat,
      name: "e2e call",
    });
    return room_id;
  },

  async matrixSendState(p, roomId, type, content, stateKey) {
    // (a custom state type: matrix-js-sdk's typing knows only its own)
    await matrixClient(p).sendStateEvent(roomId, type as never, content as never, stateKey);
  },

  async matrixScheduleDelayedState(p, roomId, type, content, stateKey, delayMs) {
    const { delay_id } = await matrixClient(p)._unstable_sendDelayedStateEvent(
      roomId,
      { delay: delayMs },
      type as never,
      content as never,
      stateKey,
    );
    return delay_id;
  },
};

window.e2e = api;
document.title = "matrixrtc-connection-machine e2e (ready)";
