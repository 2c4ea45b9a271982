import type { RemoteParticipant, Room } from "livekit-client";
import { BehaviorSubject, type Observable, type Subscription } from "rxjs";
import { createActor, waitFor, type Actor, type ActorRefFrom, type AnyActorRef, type SnapshotFrom } from "xstate";
import type { ConnectionMachine, DelayedLeave } from "../machines/connection.machine";
import type {
  ConnectionManagerMachine,
  LocalTransport as ChartLocalTransport,
  SlotEntry,
} from "../machines/connectionManager.machine";
import type { ConnectionSlotMachine } from "../machines/connectionSlot.machine";
import type { ConnectionDeps } from "./actors";
import { adoptConnection, behavior, type Behavior, type Connection } from "./Connection";
import { describe } from "./retry";
import { silentLogger } from "./logger";
import { liveManagerMachine, managerMachineWith, type ManagerDeps } from "./managerActors";
import {
  checkLogger,
  checkSharedOptions,
  checkedSFUCredentials,
  childLogger,
  guardInspect,
  sealedDelayedLeave,
  type SharedOptions,
} from "./options";
import { Secret, reveal } from "./secret";
import type { LivekitRoomLike, LivekitTransportConfig, Logger, SFUConfig } from "./types";

/** The local transport, with the SFU config fetched for it already, if any (Element Call's `LocalTransportWithSFUConfig`). */
export interface LocalTransportWithSFUConfig {
  transport: LivekitTransportConfig;
  sfuConfig?: SFUConfig;
}

/** Element Call's `createConnectionManager$` inputs, plus the Connection options every connection is made with. */
export interface ConnectionManagerOpts<R extends LivekitRoomLike = Room> extends SharedOptions {
  /** The transport this client publishes on (its connection comes first, reusing `sfuConfig`), or null. */
  localTransport$: Observable<LocalTransportWithSFUConfig | null>;
  /** The transports the call's members publish on; one connection per distinct `livekit_service_url`. */
  remoteTransports$: Observable<readonly LivekitTransportConfig[]>;
  /** Makes the room for one transport; called once per connection, when its transport appears. */
  livekitRoomFactory: (transport: LivekitTransportConfig) => R;
  /** Aborting it disposes of the manager: `connectionManagerData$` completes, every room is disconnected. */
  signal?: AbortSignal;
}

interface DataEntry<R extends LivekitRoomLike> {
  connection: Connection<R>;
  participants: readonly RemoteParticipant[];
}

/**
 * The manager's connections at one moment (Element Call's `ConnectionManagerData`), in the manager's order: the
 * local transport's first. A value never changes; the manager emits a new one, with a higher `version`, for each
 * change of the connections or of their participants. The arrays it returns are copies.
 */
export class ConnectionManagerData<R extends LivekitRoomLike = Room> {
  /** @internal */
  constructor(
    /** Counts the values the manager has emitted, from 0 (no connection yet). */
    readonly version: number,
    private readonly entries: ReadonlyMap<string, DataEntry<R>> = new Map(),
  ) {
    Object.freeze(this);
  }

  getConnections(): Connection<R>[] {
    return [...this.entries.values()].map((entry) => entry.connection);
  }

  /** The connection for the transport's `livekit_service_url`, or null. */
  getConnectionForTransport(transport: LivekitTransportConfig): Connection<R> | null {
    return this.entries.get(transport.livekit_service_url)?.connection ?? null;
  }

  /** The remote participants of the connection for the transport (none when there is no connection). */
  getParticipantsForTransport(transport: LivekitTransportConfig): RemoteParticipant[] {
    return [...(this.entries.get(transport.livekit_service_url)?.participants ?? [])];
  }

  /** @internal Whether `entries` holds the same connections with the same participant lists, in the same order. */
  sameAs(entries: ReadonlyMap<string, DataEntry<R>>): boolean {
    if (entries.size !== this.entries.size) return false;
    const mine = [...this.entries];
    return [...entries].every(([key, e], i) => {
      const [myKey, m] = mine[i]!;
      return key === myKey && e.connection === m.connection && e.participants === m.participants;
    });
  }
}

type ManagerSnapshot = SnapshotFrom<ConnectionManagerMachine>;
type SlotRef = ActorRefFrom<ConnectionSlotMachine>;

interface Adopted<R extends LivekitRoomLike> {
  connection: Connection<R>;
  participants: Subscription;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null;

/**
 * A drop-in for Element Call's `ConnectionManager`, driven by the connection manager statechart: one `Connection`
 * per distinct auth-service URL, made when its transport appears and stopped, its room disconnected, when it
 * disappears. A failed connection is retried under the reconnect policy (Element Call never retries); its failure
 * shows in its `state$` and in the manager's snapshot (`actor.getSnapshot().context.slots`).
 */
export class ConnectionManager<R extends LivekitRoomLike = Room> {
  /** The running manager actor, for inspection or `getSnapshot()`; its slots and connections are its descendants. */
  readonly actor: Actor<ConnectionManagerMachine>;
  /** The connections and their participants; replays its current value; completes on disposal. */
  readonly connectionManagerData$: Behavior<ConnectionManagerData<R>>;

  private readonly logger: Logger;
  private readonly allowInsecureTransport: boolean;
  private readonly adopted = new Map<string, Adopted<R>>();
  private readonly data = new BehaviorSubject<ConnectionManagerData<R>>(new ConnectionManagerData<R>(0));
  private readonly inputs: Subscription[] = [];
  /** The last entry seen of each slot, to log its changes. */
  private readonly seen = new Map<string, SlotEntry>();

  constructor(opts: ConnectionManagerOpts<R>, logger: Logger = silentLogger) {
    const checked = checkSharedOptions(opts);
    if (typeof opts.livekitRoomFactory !== "function") throw new TypeError("livekitRoomFactory must be a function");
    for (const name of ["localTransport$", "remoteTransports$"] as const) {
      if (!isObject(opts[name]) || typeof opts[name].subscribe !== "function") {
        throw new TypeError(`${name} must be an observable`);
      }
    }
    checkLogger(logger);
    this.logger = childLogger(logger, "[ConnectionManager]");
    this.allowInsecureTransport = checked.deps.allowInsecureTransport;
    const deps: ManagerDeps = { shared: checked.deps, livekitRoomFactory: opts.livekitRoomFactory, logger };
    this.actor = createActor(opts.machine ? managerMachineWith(opts.machine) : liveManagerMachine, {
      input: {
        deps: new Secret(deps),
        reconnect: checked.reconnect,
        jwtMarginMs: checked.jwtMarginMs,
        delayedLeave: checked.delayedLeave,
      },
      inspect: guardInspect(opts.inspect, this.logger),
      ...(opts.clock && { clock: opts.clock }),
    });
    this.connectionManagerData$ = behavior(this.data);
    this.actor.subscribe({
      next: (snapshot) => this.follow(snapshot),
      error: (e) => {
        this.logger.error("the connection manager machine crashed", e);
        this.release();
      },
      complete: () => this.release(),
    });
    this.actor.start();

    const signal = opts.signal;
    const dispose = (): void => this.dispose();
    if (signal?.aborted) {
      dispose(); // nothing is followed, no room made
      return;
    }
    signal?.addEventListener("abort", dispose, { once: true });

    // Both observables may emit at once on subscription: the transports are sent as a pair, each time.
    let local: ChartLocalTransport | null = null;
    let remote: readonly LivekitTransportConfig[] = [];
    const send = (): void => {
      if (this.actor.getSnapshot().status === "active") this.actor.send({ type: "TRANSPORTS_CHANGED", local, remote });
    };
    const follow = <T>(
      name: string,
      source: Observable<unknown>,
      parse: (v: unknown) => T | undefined,
      set: (v: T) => void,
    ) =>
      source.subscribe({
        next: (value) => {
          const next = parse(value);
          if (next === undefined) return;
          set(next);
          send();
        },
        error: (e) => this.logger.error(`${name} failed (${describe(e)}): its last transports are kept`),
      });
    try {
      this.inputs.push(
        follow(
          "localTransport$",
          opts.localTransport$,
          (v) => this.localTransport(v),
          (v) => (local = v),
        ),
        follow(
          "remoteTransports$",
          opts.remoteTransports$,
          (v) => this.remoteTransports(v),
          (v) => (remote = v),
        ),
      );
    } catch (e) {
      // An observable that throws on subscribe: nothing may be left running behind the constructor's error.
      dispose();
      throw e;
    }
  }

  /** The local transport as the chart takes it; undefined (with an error logged) for a malformed one. */
  private localTransport(value: unknown): ChartLocalTransport | null | undefined {
    if (value == null) return null;
    if (!isObject(value) || !isLivekitTransport(value.transport)) {
      this.logger.error('localTransport$ gave no { transport: { type: "livekit", livekit_service_url } }: ignored');
      return undefined;
    }
    if (value.sfuConfig == null) return { transport: value.transport };
    try {
      const sfuConfig = checkedSFUCredentials(
        value.sfuConfig,
        "localTransport$ sfuConfig",
        this.allowInsecureTransport,
      );
      return { transport: value.transport, sfuConfig };
    } catch (e) {
      this.logger.warn(`${describe(e)}: the local connection fetches its own`);
      return { transport: value.transport };
    }
  }

  /** The LiveKit transports of a list (others are skipped); undefined (with an error logged) for no list. */
  private remoteTransports(value: unknown): readonly LivekitTransportConfig[] | undefined {
    if (!Array.isArray(value)) {
      this.logger.error("remoteTransports$ gave no array: ignored");
      return undefined;
    }
    const transports = value.filter(isLivekitTransport);
    if (transports.length < value.length) {
      this.logger.warn(`remoteTransports$: ${value.length - transports.length} transport(s) skipped (not LiveKit)`);
    }
    return transports;
  }

  /** Follows the chart: each slot's connection is wrapped once it runs; the data changes when its list does. */
  private follow(snapshot: ManagerSnapshot): void {
    const slots = snapshot.context.slots;
    const ids = new Set(slots.map((entry) => entry.id));
    for (const entry of slots) this.logStatus(entry);
    for (const [id, entry] of this.seen) {
      if (ids.has(id)) continue;
      // A slot ends while wanted only when something broke (a crashed slot: the chart disposes of its connection).
      if (entry.wanted) this.logger.error(`${entry.key} (${id}): the slot ended while its transport was still wanted`);
      this.seen.delete(id);
    }
    for (const [id, adopted] of this.adopted) {
      if (ids.has(id)) continue;
      adopted.participants.unsubscribe();
      this.adopted.delete(id);
    }
    for (const entry of slots) {
      if (entry.status.startsWith("Live") && !this.adopted.has(entry.id)) this.adopt(entry, snapshot);
    }
    this.refresh();
  }

  private adopt(entry: SlotEntry, snapshot: ManagerSnapshot): void {
    const slot = (snapshot.children as Record<string, AnyActorRef | undefined>)[entry.id] as SlotRef | undefined;
    const slotSnapshot = slot?.getSnapshot();
    const child = slotSnapshot?.children.connection as ActorRefFrom<ConnectionMachine> | undefined;
    if (!slotSnapshot || !child) return;
    const { room, logger } = reveal(slotSnapshot.context.connectionDeps as Secret<ConnectionDeps>);
    const connection = adoptConnection(child, room as R, entry.transport, logger);
    let first = true;
    const participants = connection.remoteParticipants$.subscribe(() => {
      if (!first) this.refresh();
      first = false;
    });
    this.adopted.set(entry.id, { connection, participants });
  }

  /** Emits a new data value if the wanted connections or their participants changed. */
  private refresh(): void {
    if (this.data.closed || this.data.isStopped) return;
    const entries = new Map<string, DataEntry<R>>();
    for (const entry of this.actor.getSnapshot().context.slots) {
      const adopted = this.adopted.get(entry.id);
      if (!entry.wanted || !adopted || !entry.status.startsWith("Live")) continue;
      const connection = adopted.connection;
      entries.set(entry.key, { connection, participants: connection.remoteParticipants$.value });
    }
    const now = this.data.value;
    if (!now.sameAs(entries)) this.data.next(new ConnectionManagerData(now.version + 1, entries));
  }

  private logStatus(entry: SlotEntry): void {
    const before = this.seen.get(entry.id);
    this.seen.set(entry.id, entry);
    if (before?.status === entry.status) return;
    const what = `${entry.key} (${entry.id}${entry.isLocal ? ", local" : ""})`;
    if (entry.status === "Broken" || entry.status === "Live.GaveUp") {
      // The connection's state tells a lost connection (Failed.ConnectionLost) from spent retries.
      const state = entry.connectionState === undefined ? "" : ` (connection ${entry.connectionState})`;
      this.logger.warn(`${what}: ${entry.status}${state}: ${describe(entry.error)}`);
    } else {
      this.logger.info(`${what}: ${entry.status}`);
    }
  }

  /** Lets go of the inputs and completes the data; once. */
  private release(): void {
    for (const input of this.inputs.splice(0)) input.unsubscribe();
    for (const adopted of this.adopted.values()) adopted.participants.unsubscribe();
    this.data.complete();
  }

  /**
   * Disposes of the manager, as aborting its `signal` does: `connectionManagerData$` completes at once, the
   * observables are let go of, and every connection is disposed of (its room disconnected). Idempotent.
   */
  dispose(): void {
    if (this.actor.getSnapshot().status !== "active") return;
    this.logger.info("disposing of every connection");
    this.release(); // at once: the data completes before the rooms are disconnected
    this.actor.send({ type: "DISPOSE" });
  }

  /**
   * Connects again after stop(), to the transports as they are now (they are followed while stopped). Throws
   * after disposal.
   */
  start(): void {
    if (this.actor.getSnapshot().status !== "active") throw new Error("This ConnectionManager has been disposed of");
    this.actor.send({ type: "START" });
  }

  /**
   * Stops every connection: resolves once each room is disconnected (or when start() is called meanwhile). The
   * transports are still followed; start() connects again.
   */
  async stop(): Promise<void> {
    if (this.actor.getSnapshot().status !== "active") return;
    this.actor.send({ type: "STOP" });
    try {
      await waitFor(this.actor, (s) => !s.matches("Stopping") || s.status !== "active");
    } catch {
      // The machine crashed (logged): there is nothing more to wait for.
    }
  }

  /**
   * Hands a new delayed leave (or, with undefined, none) to the local transport's connection, and to the local
   * connections made later: only the local one delegates it, because the auth service that takes it over sends the
   * leave once this client leaves that service's SFU. Throws a TypeError for a malformed one.
   */
  updateDelayedLeave(delayedLeave: DelayedLeave | undefined): void {
    const sealed = sealedDelayedLeave(delayedLeave);
    if (this.actor.getSnapshot().status !== "active") throw new Error("This ConnectionManager has been disposed of");
    this.actor.send({ type: "DELAYED_LEAVE_CHANGED", delayedLeave: sealed });
  }
}

function isLivekitTransport(value: unknown): value is LivekitTransportConfig {
  return isObject(value) && value.type === "livekit" && typeof value.livekit_service_url === "string";
}
