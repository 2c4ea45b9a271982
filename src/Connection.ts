import { RoomEvent, type RemoteParticipant, type Room } from "livekit-client";
import { BehaviorSubject, type Observable } from "rxjs";
import type { Actor, SnapshotFrom } from "xstate";
import type { ConnectionMachine } from "../machines/connection.machine";
import { ConnectionState, connectionStateOf } from "./connectionState";
import { checkConnectionOptions, createConnectionActor, type ConnectionActorOptions } from "./createConnectionActor";
import { toCallError, type CallError } from "./errors";
import { silentLogger } from "./logger";
import type { LivekitRoomLike, LivekitTransportConfig, Logger } from "./types";

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

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A read-only view of a BehaviorSubject: subscribers get the current value first; `value` reads it. */
function behavior<T>(subject: BehaviorSubject<T>): Behavior<T> {
  const observable = subject.asObservable();
  Object.defineProperty(observable, "value", { get: () => subject.value, enumerable: true });
  return observable as Behavior<T>;
}

type Snapshot = SnapshotFrom<ConnectionMachine>;

/**
 * A drop-in for Element Call's `Connection`, driven by the connection statechart. `state$` and
 * `remoteParticipants$` replay their current value to each subscriber.
 */
export class Connection<R extends LivekitRoomLike = Room> {
  readonly transport: LivekitTransportConfig;
  readonly livekitRoom: R;
  /** The running statechart actor, for inspection or `getSnapshot()`. */
  readonly actor: Actor<ConnectionMachine>;
  /** The connection's state: a ConnectionState, or the CallError that stopped it. */
  readonly state$: Behavior<ConnectionState | CallError>;
  /** The remote participants of the LiveKit room, from construction on, until disposal. */
  readonly remoteParticipants$: Behavior<RemoteParticipant[]>;

  private readonly stateSubject = new BehaviorSubject<ConnectionState | CallError>(ConnectionState.Initialized);
  private readonly participantsSubject: BehaviorSubject<RemoteParticipant[]>;
  private readonly logger: Logger;
  private readonly disposed = new AbortController();
  /** How many times stop() was called: a start() waiting for an earlier stop gives way to a later one. */
  private stops = 0;

  /** The LiveKit room name (the JWT's `video.room`) once the SFU config is known. */
  get livekitAlias(): string | undefined {
    return this.actor.getSnapshot().context.sfuConfig?.livekitAlias;
  }

  constructor(opts: ConnectionOpts<R>, logger: Logger = silentLogger) {
    checkConnectionOptions(opts);
    if (typeof opts.livekitRoomFactory !== "function") throw new TypeError("livekitRoomFactory must be a function");
    this.logger = logger.getChild(`[Connection ${opts.transport.livekit_service_url}]`);
    this.transport = opts.transport;
    const { livekitRoomFactory, signal, ...actorOptions } = opts;
    this.livekitRoom = livekitRoomFactory();
    this.actor = createConnectionActor({ ...actorOptions, room: this.livekitRoom, logger: this.logger });
    this.logger.info(`created for room ${opts.roomId}${opts.existingSFUConfig ? " with an SFU config" : ""}`);

    const room = this.livekitRoom;
    const readParticipants = (): RemoteParticipant[] => [...room.remoteParticipants.values()];
    this.participantsSubject = new BehaviorSubject(readParticipants());
    const onParticipants = (): void => {
      const next = readParticipants();
      if (!sameItems(next, this.participantsSubject.value)) this.participantsSubject.next(next);
    };
    room.on(RoomEvent.ParticipantConnected, onParticipants);
    room.on(RoomEvent.ParticipantDisconnected, onParticipants);
    room.on(RoomEvent.ConnectionStateChanged, onParticipants);
    this.state$ = behavior(this.stateSubject);
    this.remoteParticipants$ = behavior(this.participantsSubject);

    const subscription = this.actor.subscribe((snapshot) => {
      const state = connectionStateOf(snapshot);
      if (state !== undefined && state !== this.stateSubject.value) this.stateSubject.next(state);
    });
    this.actor.start();

    this.disposed.signal.addEventListener("abort", () => {
      subscription.unsubscribe();
      room.off(RoomEvent.ParticipantConnected, onParticipants);
      room.off(RoomEvent.ParticipantDisconnected, onParticipants);
      room.off(RoomEvent.ConnectionStateChanged, onParticipants);
      this.stateSubject.complete();
      this.participantsSubject.complete();
    });
    if (signal) {
      const dispose = (): void => this.dispose();
      if (signal.aborted) dispose();
      else signal.addEventListener("abort", dispose, { once: true, signal: this.disposed.signal });
    }
  }

  /** Stops the machine (disconnecting the room) and lets go of everything; the observables complete at once. */
  private dispose(): void {
    this.logger.info("signal aborted: stopping and disposing");
    this.disposed.abort();
    if (this.actor.getSnapshot().status !== "active") return;
    this.stops++;
    this.actor.send({ type: "STOP" });
    const stopActor = (s: Snapshot): boolean => {
      if (!s.matches("Stopped")) return false;
      this.actor.stop();
      return true;
    };
    if (!stopActor(this.actor.getSnapshot())) {
      const sub = this.actor.subscribe((s) => {
        if (stopActor(s)) sub.unsubscribe();
      });
    }
  }

  /**
   * Resolves with the first snapshot that satisfies `done`, or with the last one when the connection is
   * disposed or the actor ends (stopped from outside, or crashed).
   */
  private until(done: (s: Snapshot) => boolean): Promise<Snapshot> {
    return new Promise((resolve) => {
      const signal = this.disposed.signal;
      let settled = false;
      const settle = (): void => {
        if (settled) return;
        const s = this.actor.getSnapshot();
        if (!done(s) && !signal.aborted && s.status === "active") return;
        settled = true;
        sub.unsubscribe();
        signal.removeEventListener("abort", settle);
        resolve(s);
      };
      const sub = this.actor.subscribe({ next: settle, error: settle, complete: settle });
      signal.addEventListener("abort", settle, { once: true });
      settle();
    });
  }

  /**
   * Starts the pipeline (OpenID → SFU config → LiveKit); `FetchingConfig` (with `existingSFUConfig`:
   * `disconnected`) is emitted synchronously. Resolves once connected, or when the run ends without an error
   * first (stopped, disposed, or a connection lost while this start waited); rejects with the CallError if it
   * fails. Calling it while a run is under way joins that run; after a lost connection it connects again;
   * while a stop is under way it waits for `Stopped` first, unless stop() is called again meanwhile.
   */
  async start(): Promise<void> {
    if (this.disposed.signal.aborted) throw new Error("This Connection has been disposed of");
    this.logger.debug("start");
    const stopsBefore = this.stops;
    if (this.actor.getSnapshot().matches("Stopping")) {
      await this.until((s) => s.matches("Stopped"));
      if (this.stops !== stopsBefore || this.disposed.signal.aborted) return;
    }
    if (this.actor.getSnapshot().status !== "active") return;
    this.actor.send({ type: "START" });
    const outcome = await this.until(
      (s) =>
        s.matches({ Livekit: "connected" }) ||
        (s.matches({ Livekit: "disconnected" }) && s.context.connectionLost) ||
        s.matches("Stopping") ||
        s.matches("Stopped") ||
        s.matches("Failed"),
    );
    if (outcome.status === "error") throw toCallError(outcome.error);
    if (outcome.matches("Failed") && !this.disposed.signal.aborted) throw connectionStateOf(outcome);
  }

  /** Stops: aborts a fetch in flight, cancels a connect, disconnects the room. Resolves at `Stopped`. */
  async stop(): Promise<void> {
    this.logger.debug("stop");
    this.stops++;
    if (this.actor.getSnapshot().status !== "active") return;
    this.actor.send({ type: "STOP" });
    await this.until((s) => s.matches("Stopped"));
  }
}
