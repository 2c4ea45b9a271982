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
import { reveal } from "../../../src/secret";
import { mountStatechartView, type StatechartView } from "../../../src/view";
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
  ViewChange,
  ViewPanel,
  ViewReport,
  ViewCredentials,
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
  /** The client's Matrix access token, and the OpenID access tokens it handed out (`keepOpenIdTokens`). */
  accessToken: string;
  openIdTokens: string[];
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
  /** The client's Matrix access token, and the OpenID access tokens it handed out (`keepOpenIdTokens`). */
  accessToken: string;
  openIdTokens: string[];
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

/** A mounted live view, and what its MutationObserver recorded. */
interface ViewEntry {
  view: StatechartView;
  container: HTMLElement;
  observer: MutationObserver;
  changes: ViewChange[];
}

const views = new Map<string, ViewEntry>();

function viewEntry(id: string): ViewEntry {
  const v = views.get(id);
  if (!v) throw new Error(`no view of ${id}`);
  return v;
}

const classes = (value: string | null): Set<string> => new Set((value ?? "").split(/\s+/).filter(Boolean));

/**
 * Records the view's changes: observing its container from before the mount, with each attribute's old value, so
 * that two changes of one attribute between two callbacks are both seen (the new value of a record is the old
 * value of the next record of the same attribute, or the attribute now).
 */
function observeView(container: HTMLElement, changes: ViewChange[], now: () => number): MutationObserver {
  let panels = new Set<HTMLElement>(); // the panels in the view
  const observer = new MutationObserver((records) => {
    records.forEach((r, i) => {
      if (r.type !== "attributes" || !(r.target instanceof HTMLElement)) return;
      const target = r.target;
      const name = r.attributeName!;
      const next = records.slice(i + 1).find((x) => x.target === target && x.attributeName === name);
      const value = next ? next.oldValue : target.getAttribute(name);
      if (value === r.oldValue) return;
      const actor = target.closest("section.mrtc-sv-panel")?.getAttribute("data-actor") ?? "?";
      const t = now();
      if (name === "data-value" || name === "data-status") {
        changes.push({ t, actor, kind: name === "data-value" ? "value" : "status", value: value ?? "" });
        return;
      }
      const [before, after] = [classes(r.oldValue), classes(value)];
      const gained = (c: string): boolean => after.has(c) && !before.has(c);
      const state = target.dataset.state ?? "";
      if (gained("mrtc-sv-active")) changes.push({ t, actor, kind: "active", value: state });
      if (gained("mrtc-sv-entered")) changes.push({ t, actor, kind: "entered", value: state });
      if (gained("mrtc-sv-taken")) changes.push({ t, actor, kind: "taken", value: target.textContent ?? "" });
    });
    // Panels come and go: compared with the last callback's (the view re-appends its panels on each render,
    // which moves them, so the childList records alone do not say which ones are new). By element: ids need not
    // be unique (each slot of a manager has a child "connection").
    const current = new Set(container.querySelectorAll<HTMLElement>("section.mrtc-sv-panel"));
    const t = now();
    const change = (p: HTMLElement, kind: "added" | "removed"): ViewChange => ({
      t,
      actor: p.dataset.actor ?? "?",
      kind,
      value: p.dataset.machine ?? "?",
    });
    for (const p of current) if (!panels.has(p)) changes.push(change(p, "added"));
    for (const p of panels) if (!current.has(p)) changes.push(change(p, "removed"));
    panels = current;
  });
  observer.observe(container, {
    subtree: true,
    childList: true,
    attributes: true,
    attributeOldValue: true,
    attributeFilter: ["data-value", "data-status", "class"],
  });
  return observer;
}

function viewPanels(container: HTMLElement): ViewPanel[] {
  return [...container.querySelectorAll<HTMLElement>("section.mrtc-sv-panel")].map((p) => {
    const states = (cls: string): string[] =>
      [...p.querySelectorAll<HTMLElement>(`.mrtc-sv-state.${cls}`)].map((s) => s.dataset.state ?? "");
    return {
      actor: p.dataset.actor ?? "",
      machine: p.dataset.machine ?? "",
      status: p.dataset.status ?? "",
      value: p.dataset.value ?? "",
      active: states("mrtc-sv-active"),
      entered: states("mrtc-sv-entered"),
      taken: [...p.querySelectorAll<HTMLElement>("li.mrtc-sv-t.mrtc-sv-taken")].map((li) => ({
        source: li.closest<HTMLElement>(".mrtc-sv-state")?.dataset.state ?? "(root)",
        text: li.textContent ?? "",
      })),
      last: p.querySelector(".mrtc-sv-last")?.textContent ?? "",
      context: p.querySelector("pre.mrtc-sv-context")?.textContent ?? "",
    };
  });
}

/** Whether the view shows a credential of connection or manager `id` (the credentials never leave the page). */
function viewCredentials(id: string, container: HTMLElement): ViewCredentials {
  const m = managers.get(id);
  const e = m ? undefined : entry(id);
  const connections = m ? m.manager.connectionManagerData$.value.getConnections() : [e!.connection];
  const jwts = connections.flatMap((c) => {
    const config = c.actor.getSnapshot().context.sfuConfig;
    return config ? [reveal(config.jwt)] : [];
  });
  const openIdTokens = m ? m.openIdTokens : e!.openIdTokens;
  const html = container.outerHTML;
  const has = (secret: string): boolean => secret.length > 0 && html.includes(secret);
  const contextJwts = [
    ...container.querySelectorAll(`section.mrtc-sv-panel[data-machine="connection"] pre.mrtc-sv-context`),
  ].map((pre) => {
    try {
      const shown = (JSON.parse(pre.textContent ?? "null") as { sfuConfig?: { jwt?: unknown } } | null)?.sfuConfig?.jwt;
      if (typeof shown !== "string") return `(${typeof shown})`;
      return jwts.includes(shown) ? "(the JWT)" : shown;
    } catch (err) {
      return `(not JSON: ${String(err)})`;
    }
  });
  return {
    jwtsKnown: jwts.filter((j) => /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/.test(j)).length,
    openIdTokensKnown: openIdTokens.length,
    viewHasJwt: jwts.some(has),
    viewHasOpenIdToken: openIdTokens.some(has),
    viewHasAccessToken: has(m ? m.accessToken : e!.accessToken),
    contextJwts,
  };
}

/** Makes `client` keep the OpenID access tokens it hands out in `into` (for `viewCredentials`). */
function keepOpenIdTokens(client: MatrixClient, into: string[]): void {
  const getOpenIdToken = client.getOpenIdToken.bind(client);
  client.getOpenIdToken = async () => {
    const token = await getOpenIdToken();
    into.push(token.access_token);
    return token;
  };
}

/** The `Connection` of id `id` (for the demo page, which mounts the live view on it as an app would). */
export function connectionOf(id: string): Connection {
  return entry(id).connection;
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
    const openIdTokens: string[] = [];
    if (p.keepOpenIdTokens) keepOpenIdTokens(matrixClient, openIdTokens);
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
      accessToken: p.accessToken,
      openIdTokens,
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
    const openIdTokens: string[] = [];
    if (p.keepOpenIdTokens) keepOpenIdTokens(client, openIdTokens);
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
      accessToken: p.accessToken,
      openIdTokens,
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

  mountView(id) {
    if (views.has(id)) throw new Error(`${id} has a view already`);
    const target = id.startsWith("m") ? managerEntry(id) : entry(id);
    const actorOf = "manager" in target ? target.manager : target.connection;
    const container = document.createElement("div");
    container.className = "e2e-view";
    container.dataset.of = id;
    document.body.append(container);
    const changes: ViewChange[] = [];
    const observer = observeView(container, changes, () => Math.round((performance.now() - target.t0) * 10) / 10);
    const view = mountStatechartView(container, actorOf);
    views.set(id, { view, container, observer, changes });
  },

  viewReport(id): ViewReport {
    const v = viewEntry(id);
    return {
      changes: structuredClone(v.changes),
      panels: viewPanels(v.container),
      events: [...v.container.querySelectorAll("ol.mrtc-sv-events > li")].map((li) => li.textContent ?? ""),
      credentials: viewCredentials(id, v.container),
    };
  },

  disposeView(id) {
    const v = viewEntry(id);
    v.view.dispose();
    v.observer.disconnect();
    v.container.remove();
    views.delete(id);
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
