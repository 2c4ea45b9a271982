import { assign, enqueueActions, setup, stopChild, type AnyActorRef, type SnapshotFrom } from "xstate";
import {
  DEFAULT_JWT_MARGIN_MS,
  DEFAULT_RECONNECT_POLICY,
  type DelayedLeave,
  type ReconnectPolicy,
  type Sealed,
  type SFUCredentials,
  stateValueName,
} from "./connection.machine";
import { connectionSlotMachine, type ConnectionSlotMachine, type LivekitTransport } from "./connectionSlot.machine";

/** The local transport (the one this client publishes on), with the SFU config fetched for it, if any. */
export interface LocalTransport {
  transport: LivekitTransport;
  sfuConfig?: SFUCredentials;
}

/** A transport the manager keeps a connection for, in the manager's order. */
export interface DesiredTransport {
  /** The transport's `livekit_service_url`, as it is (no normalisation, as in Element Call). */
  key: string;
  transport: LivekitTransport;
  isLocal: boolean;
  /** The local transport's SFU config (the local one only). */
  sfuConfig?: SFUCredentials;
}

/**
 * The transports to hold a connection for, one per distinct `livekit_service_url`: the local one first (with its
 * SFU config), then the remote ones in their order, de-duplicated, without one equal to the local one. The key
 * is the URL alone, so a new SFU config for the same local URL keeps the key (and the connection).
 */
export function desiredTransports(
  local: LocalTransport | null | undefined,
  remotes: readonly LivekitTransport[],
): DesiredTransport[] {
  const desired: DesiredTransport[] = [];
  const seen = new Set<string>();
  if (local) {
    const key = local.transport.livekit_service_url;
    seen.add(key);
    desired.push({
      key,
      transport: local.transport,
      isLocal: true,
      ...(local.sfuConfig !== undefined && { sfuConfig: local.sfuConfig }),
    });
  }
  for (const transport of remotes) {
    const key = transport.livekit_service_url;
    if (seen.has(key)) continue;
    seen.add(key);
    desired.push({ key, transport, isLocal: false });
  }
  return desired;
}

export interface ConnectionManagerInput {
  /** What `prepareConnection` needs (client, room factory, logger, …), sealed; every slot gets it. */
  deps?: unknown;
  /** Every connection's reconnect policy, and every slot's retry policy (default `DEFAULT_RECONNECT_POLICY`). */
  reconnect?: ReconnectPolicy | false;
  jwtMarginMs?: number;
  /** The delayed leave to delegate through the local connection (only there). */
  delayedLeave?: Sealed<DelayedLeave>;
  local?: LocalTransport | null;
  remote?: readonly LivekitTransport[];
}

/** What the manager knows of one slot; `status`, `connectionState`, `error` and `retries` follow its snapshots. */
export interface SlotEntry {
  key: string;
  /** The slot's child id: `slot-<n>`, from a counter (an id reused while a slot still runs would orphan it). */
  id: string;
  transport: LivekitTransport;
  isLocal: boolean;
  /** Whether the key is among the desired transports; false once RETIRE was sent (or STOP/DISPOSE for all). */
  wanted: boolean;
  /** The slot's state (`Preparing`, `Live.Running`, `Live.WaitingToRetry`, …). */
  status: string;
  /** The connection's state as a dotted name, once it runs. */
  connectionState: string | undefined;
  /** The connection's (or the room factory's) failure, if any. */
  error: unknown;
  retries: number;
}

export interface ConnectionManagerContext {
  deps: unknown;
  reconnect: ReconnectPolicy | false;
  jwtMarginMs: number;
  delayedLeave: Sealed<DelayedLeave> | undefined;
  local: LocalTransport | null;
  remote: readonly LivekitTransport[];
  /** The wanted slots in the desired order (local first), then those being retired. */
  slots: readonly SlotEntry[];
  /** The number of the next slot's id. */
  nextSlot: number;
}

type SlotSnapshot = SnapshotFrom<ConnectionSlotMachine>;

export type ConnectionManagerEvent =
  | { type: "TRANSPORTS_CHANGED"; local: LocalTransport | null; remote: readonly LivekitTransport[] }
  | { type: "START" }
  | { type: "STOP" }
  | { type: "DISPOSE" }
  | { type: "DELAYED_LEAVE_CHANGED"; delayedLeave: Sealed<DelayedLeave> | undefined }
  | { type: `xstate.snapshot.${string}`; snapshot: SlotSnapshot }
  | { type: `xstate.done.actor.${string}`; output?: unknown }
  | { type: `xstate.error.actor.${string}`; error: unknown };

/** `settled`: the manager is not in the middle of stopping or disposing; `disposed`: it is over. */
export type ConnectionManagerTag = "settled" | "disposed";

const SNAPSHOT_PREFIX = "xstate.snapshot.";
const DONE_PREFIX = "xstate.done.actor.";
const ERROR_PREFIX = "xstate.error.actor.";

/** The slot id at the end of an `xstate.{snapshot,done.actor,error.actor}.<id>` event. */
function slotIdOf(type: string): string {
  for (const prefix of [SNAPSHOT_PREFIX, DONE_PREFIX, ERROR_PREFIX]) {
    if (type.startsWith(prefix)) return type.slice(prefix.length);
  }
  return type;
}

/**
 * Element Call's `ConnectionManager` as a chart: one connection per distinct auth-service URL (`livekit_service_url`),
 * each owned by a `connectionSlot` child, spawned when its transport appears and retired (its room disconnected)
 * when it disappears. The slot actor is provided by `src/` with its real `prepareConnection` and `connection`.
 *
 * Settled here: keys are the URL as it is; at most one slot per key at any time (two rooms for one key would share
 * an identity and kick each other out), so a key added again while its slot is retiring revives that slot, or, if it
 * cannot, is spawned anew once that slot is done; a new local SFU config for the same URL is ignored (no
 * reconnect); STOP retires every slot and keeps following the transports, START resumes; DISPOSE disposes of every
 * slot. The delayed leave goes to the local slot only and follows the local role from slot to slot; what a service
 * that held it does with it afterwards (it sends the leave when this client leaves its SFU) is the app's business.
 */
export const connectionManagerMachine = /* @__PURE__ */ setup({
  types: {
    context: {} as ConnectionManagerContext,
    events: {} as ConnectionManagerEvent,
    input: {} as ConnectionManagerInput,
    tags: {} as ConnectionManagerTag,
  },
  actors: {
    slot: connectionSlotMachine,
  },
  actions: {
    storeTransports: assign(({ event }) => {
      const { local, remote } = event as Extract<ConnectionManagerEvent, { type: "TRANSPORTS_CHANGED" }>;
      return { local, remote };
    }),
    /**
     * Brings the slots in line with the desired transports: a slot is spawned for each new key, RETIRE is sent to
     * each wanted slot whose key is gone, REVIVE to a retiring slot whose key is back, and the entries are put in
     * the desired order (local first), the retiring ones last.
     */
    reconcile: enqueueActions(({ context, enqueue }) => {
      const desired = desiredTransports(context.local, context.remote);
      const byKey = new Map(context.slots.map((entry) => [entry.key, entry]));
      const desiredKeys = new Set(desired.map((d) => d.key));
      let nextSlot = context.nextSlot;
      const slots: SlotEntry[] = [];
      for (const d of desired) {
        const entry = byKey.get(d.key);
        if (entry === undefined) {
          const id = `slot-${nextSlot++}`;
          enqueue.spawnChild("slot", {
            id,
            syncSnapshot: true,
            input: {
              key: d.key,
              transport: d.transport,
              deps: context.deps,
              sfuConfig: d.sfuConfig,
              reconnect: context.reconnect,
              jwtMarginMs: context.jwtMarginMs,
              delayedLeave: d.isLocal ? context.delayedLeave : undefined,
            },
          });
          slots.push({
            key: d.key,
            id,
            transport: d.transport,
            isLocal: d.isLocal,
            wanted: true,
            status: "Preparing",
            connectionState: undefined,
            error: undefined,
            retries: 0,
          });
        } else if (entry.wanted || entry.status === "Live.Retiring") {
          if (!entry.wanted) enqueue.sendTo(entry.id, { type: "REVIVE" });
          // The delayed leave follows the local role: to a slot that becomes local, away from one that stops being so.
          if (entry.isLocal !== d.isLocal) {
            const delayedLeave = d.isLocal ? context.delayedLeave : undefined;
            enqueue.sendTo(entry.id, { type: "DELAYED_LEAVE_CHANGED", delayedLeave });
          }
          slots.push({ ...entry, transport: d.transport, isLocal: d.isLocal, wanted: true });
        } else {
          // Retiring in a way that cannot be taken back: spawned anew once it is done (dropSlot, reconcile).
          slots.push({ ...entry, isLocal: d.isLocal });
        }
      }
      const leaving = context.slots.filter((entry) => !desiredKeys.has(entry.key));
      for (const entry of leaving) {
        if (entry.wanted) enqueue.sendTo(entry.id, { type: "RETIRE" });
        slots.push({ ...entry, wanted: false, isLocal: false });
      }
      const retiringLast = [...slots.filter((s) => s.wanted), ...slots.filter((s) => !s.wanted)];
      enqueue.assign({ slots: retiringLast, nextSlot });
    }),
    storeDelayedLeave: assign({
      delayedLeave: (_, params: { delayedLeave: Sealed<DelayedLeave> | undefined }) => params.delayedLeave,
    }),
    /** The delayed leave to the local slot (a slot spawned later for the local transport takes it from the context). */
    forwardDelayedLeave: enqueueActions(({ context, enqueue }) => {
      const local = context.slots.find((entry) => entry.isLocal && entry.wanted);
      if (local) enqueue.sendTo(local.id, { type: "DELAYED_LEAVE_CHANGED", delayedLeave: context.delayedLeave });
    }),
    /** RETIRE to every wanted slot (STOP for all). */
    retireAll: enqueueActions(({ context, enqueue }) => {
      for (const entry of context.slots) if (entry.wanted) enqueue.sendTo(entry.id, { type: "RETIRE" });
      enqueue.assign({ slots: context.slots.map((entry) => ({ ...entry, wanted: false })) });
    }),
    /** DISPOSE to every slot (DISPOSE for all). */
    disposeAll: enqueueActions(({ context, enqueue }) => {
      for (const entry of context.slots) enqueue.sendTo(entry.id, { type: "DISPOSE" });
      enqueue.assign({ slots: context.slots.map((entry) => ({ ...entry, wanted: false })) });
    }),
    /** The relayed snapshot of a slot: its state, its connection's state, error and retries. */
    followSlot: assign({
      slots: ({ context, event }) => {
        const id = slotIdOf(event.type);
        const { snapshot } = event as Extract<ConnectionManagerEvent, { snapshot: SlotSnapshot }>;
        return context.slots.map((entry) =>
          entry.id === id
            ? {
                ...entry,
                status: stateValueName(snapshot.value),
                connectionState: snapshot.context.connectionState,
                error: snapshot.context.error,
                retries: snapshot.context.retries,
              }
            : entry,
        );
      },
    }),
    /**
     * A slot that crashed (a bug; xstate does not stop the children of an actor that errors) would leave its
     * connection running: it is sent DISPOSE, which disconnects its room.
     */
    disposeOrphanedConnection: enqueueActions(({ event, self, enqueue }) => {
      const slots = self.getSnapshot().children as Record<string, AnyActorRef | undefined>;
      const slot = slots[slotIdOf(event.type)]?.getSnapshot() as SlotSnapshot | undefined;
      const connection = slot?.children.connection;
      if (connection?.getSnapshot().status === "active") enqueue.sendTo(connection, { type: "DISPOSE" });
    }),
    /** A slot is done (or crashed): its child is stopped (a done child stays in `children` otherwise), its entry dropped. */
    dropSlot: enqueueActions(({ context, event, enqueue }) => {
      const id = slotIdOf(event.type);
      enqueue(stopChild(id));
      enqueue.assign({ slots: context.slots.filter((entry) => entry.id !== id) });
    }),
  },
  guards: {
    noSlots: ({ context }) => context.slots.length === 0,
  },
}).createMachine({
  id: "connectionManager",
  description:
    "Element Call's ConnectionManager: one connection per distinct auth-service URL (the local transport first), each in a connectionSlot child spawned when its transport appears and retired, its room disconnected, when it disappears. The slots' states, connection states and failures are followed in `context.slots`.",
  initial: "Running",
  context: ({ input }) => ({
    deps: input.deps,
    reconnect: input.reconnect ?? DEFAULT_RECONNECT_POLICY,
    jwtMarginMs: input.jwtMarginMs ?? DEFAULT_JWT_MARGIN_MS,
    delayedLeave: input.delayedLeave,
    local: input.local ?? null,
    remote: input.remote ?? [],
    slots: [],
    nextSlot: 1,
  }),
  on: {
    // Kept for the next START (Running reconciles as well).
    TRANSPORTS_CHANGED: { actions: "storeTransports" },
    // To the local connection only: the auth service that takes it over sends the leave when we leave its SFU.
    DELAYED_LEAVE_CHANGED: {
      actions: [
        { type: "storeDelayedLeave", params: ({ event }) => ({ delayedLeave: event.delayedLeave }) },
        "forwardDelayedLeave",
      ],
    },
    "xstate.snapshot.*": { actions: "followSlot" },
    "xstate.done.actor.*": { actions: "dropSlot" },
    // A slot crashed (a bug): dropped, not respawned until the transports change.
    "xstate.error.actor.*": { actions: ["disposeOrphanedConnection", "dropSlot"] },
  },
  states: {
    Running: {
      description:
        "Following the transports: a slot per desired transport, spawned on appear, retired on disappear (a key back while its slot retires revives it). A slot that is done is dropped and the transports reconciled again.",
      tags: "settled",
      entry: "reconcile",
      on: {
        TRANSPORTS_CHANGED: { actions: ["storeTransports", "reconcile"] },
        "xstate.done.actor.*": { actions: ["dropSlot", "reconcile"] },
        STOP: { target: "Stopping" },
        DISPOSE: { target: "Disposing" },
      },
    },
    Stopping: {
      description:
        "Every slot was sent RETIRE: waiting until each is done (its room disconnected). The transports are still followed, for START, which takes the stop back.",
      entry: "retireAll",
      always: { guard: "noSlots", target: "Stopped" },
      on: {
        START: { target: "Running" },
        DISPOSE: { target: "Disposing" },
      },
    },
    Stopped: {
      description: "No slot, no connection. The transports are still followed: START connects to them again.",
      tags: "settled",
      on: {
        START: { target: "Running" },
        DISPOSE: { target: "Disposed" },
      },
    },
    Disposing: {
      description: "Every slot was sent DISPOSE: waiting until each is done (its room disconnected).",
      entry: "disposeAll",
      always: { guard: "noSlots", target: "Disposed" },
    },
    Disposed: {
      description: "Disposed of: no slot is left and the actor accepts nothing more.",
      type: "final",
      tags: ["settled", "disposed"],
    },
  },
});

export type ConnectionManagerMachine = typeof connectionManagerMachine;
