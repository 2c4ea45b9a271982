import { RoomEvent, type RemoteParticipant, type Room } from "livekit-client";
import { BehaviorSubject, type Observable } from "rxjs";
import { waitFor, type Actor, type ActorRefFrom, type SnapshotFrom } from "xstate";
import type { ConnectionMachine, DelayedLeave } from "../machines/connection.machine";
import { ConnectionState, connectionStateOf } from "./connectionState";
import { newConnectionActor, stateLogger } from "./createConnectionActor";
import { toCallError, type CallError } from "./errors";
import { silentLogger } from "./logger";
import { checkConnectionOptions, checkLogger, childLogger, sealedDelayedLeave } from "./options";
import type { ConnectionActorOptions, LivekitRoomLike, LivekitTransportConfig, Logger } from "./types";

/** An observable that always has a current value, like Element Call's `Behavior`. */
export type Behavior<T> = Observable<T> & { readonly value: T };

/** Element Call's Connection options, plus this package's (`fetch`, `retry`, `timeouts`, `signal`, …). */
export interface ConnectionOpts<R extends LivekitRoomLike = Room> extends Omit<
  ConnectionActorOptions,
  "room" | "logger"
> {
  /** Makes the room; called once, in the constructor. */
  livekitRoomFactory: () => R;
  /** Aborting it stops the connection and disposes of it: the observables complete, nothing more is emitted. */
  signal?: AbortSignal;
}

/** A read-only view of a BehaviorSubject: subscribers get the current value first; `value` reads it. */
export function behavior<T>(subject: BehaviorSubject<T>): Behavior<T> {
  const observable = subject.asObservable();
  Object.defineProperty(observable, "value", { get: () => subject.value, enumerable: true });
  return observable as Behavior<T>;
}

type Snapshot = SnapshotFrom<ConnectionMachine>;
type ConnectionRef = ActorRefFrom<ConnectionMachine>;

/**
 * A connection actor someone else owns and runs (the connection manager's slot): the wrapper neither starts it
 * nor takes a signal; it ends when the actor does.
 */
class Adoption<R> {
  constructor(
    readonly actor: ConnectionRef,
    readonly room: R,
    readonly transport: LivekitTransportConfig,
    readonly logger: Logger,
  ) {}
}

/** A Connection around a running connection actor that its owner started and will stop (internal). */
export function adoptConnection<R extends LivekitRoomLike>(
  actor: ConnectionRef,
  room: R,
  transport: LivekitTransportConfig,
  logger: Logger,
): Connection<R> {
  // The constructor's second signature is not public: only this module adopts.
  const Adopting = Connection as unknown as new (adoption: Adoption<R>) => Connection<R>;
  return new Adopting(new Adoption(actor, room, transport, logger));
}

const PARTICIPANT_EVENTS = [
  RoomEvent.ParticipantConnected,
  RoomEvent.ParticipantDisconnected,
  RoomEvent.ConnectionStateChanged,
] as const;

/**
 * A drop-in for Element Call's `Connection`, driven by the connection statechart: it sends the chart its
 * events, waits for the chart's `settled` states, and shows snapshots as `state$`. `state$` and
 * `remoteParticipants$` replay their current value to each subscriber.
 */
export class Connection<R extends LivekitRoomLike = Room> {
  readonly transport: LivekitTransportConfig;
  readonly livekitRoom: R;
  /**
   * The running statechart actor, for inspection or `getSnapshot()`: its own root actor, or, for a connection of a
   * ConnectionManager, the manager's child.
   */
  readonly actor: ConnectionRef;
  /** The connection's state: a ConnectionState, or the CallError that stopped it. */
  readonly state$: Behavior<ConnectionState | CallError>;
  /** The remote participants of the LiveKit room, from construction on, until disposal. */
  readonly remoteParticipants$: Behavior<RemoteParticipant[]>;

  private readonly logger: Logger;

  /** The LiveKit room name (the JWT's `video.room`) once the SFU config is known. */
  get livekitAlias(): string | undefined {
    return this.actor.getSnapshot().context.sfuConfig?.livekitAlias;
  }

  constructor(opts: ConnectionOpts<R>, logger?: Logger);
  constructor(opts: ConnectionOpts<R> | Adoption<R>, logger: Logger = silentLogger) {
    let room: R;
    let own: Actor<ConnectionMachine> | undefined;
    if (opts instanceof Adoption) {
      ({ actor: this.actor, room, transport: this.transport, logger: this.logger } = opts);
    } else {
      const checked = checkConnectionOptions(opts);
      if (typeof opts.livekitRoomFactory !== "function") throw new TypeError("livekitRoomFactory must be a function");
      checkLogger(logger);
      this.logger = childLogger(logger, `[Connection ${opts.transport.livekit_service_url}]`);
      this.transport = opts.transport;
      room = opts.livekitRoomFactory();
      this.actor = own = newConnectionActor(checked, room, this.logger, opts);
      this.logger.info(`created for room ${opts.roomId}${opts.existingSFUConfig ? " with an SFU config" : ""}`);
    }
    this.livekitRoom = room;

    // The room is the one source of truth for participants; the chart does not keep a copy.
    const readParticipants = (): RemoteParticipant[] => [...room.remoteParticipants.values()];
    const participants = new BehaviorSubject(readParticipants());
    const onParticipants = (): void => {
      const next = readParticipants();
      const now = participants.value;
      if (next.length !== now.length || next.some((p, i) => p !== now[i])) participants.next(next);
    };
    for (const event of PARTICIPANT_EVENTS) room.on(event as RoomEvent.ParticipantConnected, onParticipants);

    // An adopted actor is running already: its state now, not Initialized.
    const first = own ? undefined : connectionStateOf(this.actor.getSnapshot());
    const state = new BehaviorSubject<ConnectionState | CallError>(first ?? ConnectionState.Initialized);
    const log = stateLogger(this.logger);
    /** Lets go of the room and completes both observables; once, whichever way the connection ends. */
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      subscription.unsubscribe();
      for (const event of PARTICIPANT_EVENTS) room.off(event as RoomEvent.ParticipantConnected, onParticipants);
      state.complete();
      participants.complete();
    };
    const subscription = this.actor.subscribe({
      next: (snapshot) => {
        log?.(snapshot);
        const next = connectionStateOf(snapshot);
        if (next !== undefined && next !== state.value) state.next(next);
      },
      error: (e) => {
        // An actor of one's own threw where nothing catches it: show it as the failure it is, then end.
        this.logger.error("the connection machine crashed", e);
        state.next(toCallError(e));
        release();
      },
      // Disposed, or stopped from outside.
      complete: release,
    });
    this.state$ = behavior(state);
    this.remoteParticipants$ = behavior(participants);
    if (!own) return;
    own.start();

    const signal = (opts as ConnectionOpts<R>).signal;
    if (!signal) return;
    const dispose = (): void => {
      this.logger.info("signal aborted: stopping and disposing");
      release(); // at once: the observables complete before the room is disconnected
      if (this.actor.getSnapshot().status === "active") this.actor.send({ type: "DISPOSE" });
    };
    if (signal.aborted) dispose();
    else signal.addEventListener("abort", dispose, { once: true });
  }

  /**
   * Resolves with the first snapshot that satisfies `done`, or with the last one when the actor ends without
   * (stopped from outside, or crashed).
   */
  private async until(done: (s: Snapshot) => boolean): Promise<Snapshot> {
    // An event sent while the actor is busy (by a state$ subscriber, say) waits in its mailbox until the
    // current step is over, which is before any promise callback runs: look only after that.
    await Promise.resolve();
    try {
      return await waitFor(this.actor, (s) => done(s) || s.status !== "active");
    } catch {
      return this.actor.getSnapshot();
    }
  }

  /**
   * Starts the pipeline (OpenID → SFU config → LiveKit); `FetchingConfig` (with a reusable SFU config, given or
   * kept from an earlier run: `disconnected`) is emitted synchronously, unless a stop is under way. Resolves once connected, or when the
   * run ends without an error first (stopped, disposed, or a connection lost while this start waited); rejects
   * with the CallError if it fails. Calling it while a run is under way joins that run; after a lost connection it connects again;
   * while a stop is under way it starts again once stopped, unless stop() is called again meanwhile.
   */
  async start(): Promise<void> {
    const now = this.actor.getSnapshot();
    if (now.hasTag("disposed")) throw new Error("This Connection has been disposed of");
    if (now.status === "error") throw toCallError(now.error);
    this.logger.debug("start");
    if (now.status !== "active") return;
    this.actor.send({ type: "START" });
    const outcome = await this.until((s) => s.hasTag("settled"));
    if (outcome.status === "error") throw toCallError(outcome.error);
    if (outcome.matches("Failed")) throw connectionStateOf(outcome);
  }

  /**
   * Hands a new delayed leave (or, with undefined, none) to the connection: while it is in the room it is
   * delegated to the auth service at once, without reconnecting; otherwise the next run takes it. Throws a
   * TypeError for a malformed one.
   */
  updateDelayedLeave(delayedLeave: DelayedLeave | undefined): void {
    const sealed = sealedDelayedLeave(delayedLeave);
    const now = this.actor.getSnapshot();
    if (now.hasTag("disposed")) throw new Error("This Connection has been disposed of");
    if (now.status !== "active") return;
    this.actor.send({ type: "DELAYED_LEAVE_CHANGED", delayedLeave: sealed });
  }

  /**
   * Stops: aborts a fetch in flight, cancels a connect, disconnects the room. Resolves once the room is
   * disconnected: at `Stopped`, or when a start() made meanwhile begins the next run.
   */
  async stop(): Promise<void> {
    this.logger.debug("stop");
    if (this.actor.getSnapshot().status !== "active") return;
    this.actor.send({ type: "STOP" });
    await this.until((s) => !s.matches("Stopping"));
  }
}
