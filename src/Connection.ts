import { RoomEvent, type RemoteParticipant, type Room } from "livekit-client";
import { BehaviorSubject, type Observable } from "rxjs";
import type { Actor, InspectionEvent, Observer, SnapshotFrom } from "xstate";
import type { ConnectionMachine } from "../machines/connection.machine";
import { ConnectionState, connectionStateOf } from "./connectionState";
import { createConnectionActor } from "./createConnectionActor";
import type { CallError } from "./errors";
import { silentLogger } from "./logger";
import type {
  CallMembershipIdentityParts,
  LivekitRoomLike,
  LivekitTransportConfig,
  Logger,
  OpenIDClientParts,
  RetryOptions,
  SFUConfig,
  TimeoutOptions,
} from "./types";

/** An observable that always has a current value, like Element Call's `Behavior`. */
export type Behavior<T> = Observable<T> & { readonly value: T };

export interface ConnectionOpts<R extends LivekitRoomLike = Room> {
  transport: LivekitTransportConfig;
  client: OpenIDClientParts;
  /** The Matrix room id of the call, sent to the auth service. */
  roomId: string;
  ownMembershipIdentity: CallMembershipIdentityParts;
  /** Makes the room; called once, in the constructor. */
  livekitRoomFactory: () => R;
  /** An SFU config fetched already (Element Call's local transport): no fetch, START connects at once. */
  existingSFUConfig?: SFUConfig;
  /** Aborting it stops the connection and disposes of it: the observables complete, nothing more is emitted. */
  signal?: AbortSignal;
  fetch?: typeof globalThis.fetch;
  retry?: RetryOptions;
  timeouts?: TimeoutOptions;
  allowInsecureTransport?: boolean;
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * A drop-in for Element Call's `Connection`, driven by the connection statechart. `state$` and
 * `remoteParticipants$` replay their current value to each subscriber.
 */
export class Connection<R extends LivekitRoomLike = Room> {
  readonly transport: LivekitTransportConfig;
  readonly livekitRoom: R;
  /** The running statechart actor, for inspection or `getSnapshot()`. */
  readonly actor: Actor<ConnectionMachine>;

  private readonly _state$ = new BehaviorSubject<ConnectionState | CallError>(ConnectionState.Initialized);
  private readonly _remoteParticipants$: BehaviorSubject<RemoteParticipant[]>;
  private readonly logger: Logger;
  private readonly disposeController = new AbortController();

  /** The connection's state: a ConnectionState, or the CallError that stopped it. */
  get state$(): Behavior<ConnectionState | CallError> {
    return this._state$;
  }

  /** The remote participants of the LiveKit room, from construction on, until disposal. */
  get remoteParticipants$(): Behavior<RemoteParticipant[]> {
    return this._remoteParticipants$;
  }

  /** The LiveKit room name (the JWT's `video.room`) once the SFU config is known. */
  get livekitAlias(): string | undefined {
    return this.actor.getSnapshot().context.sfuConfig?.livekitAlias;
  }

  constructor(opts: ConnectionOpts<R>, logger: Logger = silentLogger) {
    if (typeof opts?.livekitRoomFactory !== "function") throw new TypeError("livekitRoomFactory must be a function");
    const url = opts.transport?.livekit_service_url;
    this.logger = logger.getChild(`[Connection ${url}]`);
    this.transport = opts.transport;
    this.livekitRoom = opts.livekitRoomFactory();
    this.actor = createConnectionActor({
      room: this.livekitRoom,
      client: opts.client,
      transport: opts.transport,
      roomId: opts.roomId,
      ownMembershipIdentity: opts.ownMembershipIdentity,
      existingSFUConfig: opts.existingSFUConfig,
      fetch: opts.fetch,
      retry: opts.retry,
      timeouts: opts.timeouts,
      allowInsecureTransport: opts.allowInsecureTransport,
      logger: this.logger,
      inspect: opts.inspect,
    });
    this.logger.info(`created for room ${opts.roomId}${opts.existingSFUConfig ? " with an SFU config" : ""}`);

    const room = this.livekitRoom;
    const readParticipants = (): RemoteParticipant[] => [...room.remoteParticipants.values()];
    this._remoteParticipants$ = new BehaviorSubject(readParticipants());
    const onParticipants = (): void => {
      const next = readParticipants();
      if (!sameItems(next, this._remoteParticipants$.value)) this._remoteParticipants$.next(next);
    };
    room.on(RoomEvent.ParticipantConnected, onParticipants);
    room.on(RoomEvent.ParticipantDisconnected, onParticipants);
    room.on(RoomEvent.ConnectionStateChanged, onParticipants);

    const subscription = this.actor.subscribe((snapshot) => this.onSnapshot(snapshot));
    this.actor.start();

    const signal = this.disposeController.signal;
    signal.addEventListener("abort", () => {
      subscription.unsubscribe();
      room.off(RoomEvent.ParticipantConnected, onParticipants);
      room.off(RoomEvent.ParticipantDisconnected, onParticipants);
      room.off(RoomEvent.ConnectionStateChanged, onParticipants);
      this._state$.complete();
      this._remoteParticipants$.complete();
    });
    if (opts.signal) {
      const dispose = (): void => {
        this.logger.info("signal aborted: stopping and disposing");
        const stopped = this.stop();
        this.disposeController.abort();
        void stopped.then(() => this.actor.stop());
      };
      if (opts.signal.aborted) dispose();
      else opts.signal.addEventListener("abort", dispose, { once: true, signal });
    }
  }

  private onSnapshot(snapshot: SnapshotFrom<ConnectionMachine>): void {
    const state = connectionStateOf(snapshot);
    if (state !== undefined && state !== this._state$.value) this._state$.next(state);
  }

  /** Resolves with the first snapshot that satisfies `done`, or when the connection is disposed. */
  private until(done: (s: SnapshotFrom<ConnectionMachine>) => boolean): Promise<SnapshotFrom<ConnectionMachine>> {
    return new Promise((resolve) => {
      const signal = this.disposeController.signal;
      const check = (s: SnapshotFrom<ConnectionMachine>): boolean => {
        if (!done(s) && !signal.aborted) return false;
        sub.unsubscribe();
        signal.removeEventListener("abort", onDispose);
        resolve(s);
        return true;
      };
      const onDispose = (): void => void check(this.actor.getSnapshot());
      const sub = this.actor.subscribe((s) => void check(s));
      signal.addEventListener("abort", onDispose, { once: true });
      check(this.actor.getSnapshot());
    });
  }

  /**
   * Starts the pipeline (OpenID → SFU config → LiveKit). `FetchingConfig` is emitted synchronously. Resolves
   * once connected, or if the connection is stopped first; rejects with the CallError if it fails. Calling it
   * while a start is under way joins that start; after a lost connection it connects again.
   */
  async start(): Promise<void> {
    if (this.disposeController.signal.aborted) throw new Error("This Connection has been disposed of");
    this.logger.debug("start");
    if (this.actor.getSnapshot().matches("Stopping")) await this.until((s) => s.matches("Stopped"));
    this.actor.send({ type: "START" });
    const outcome = await this.until(
      (s) =>
        s.matches({ Livekit: "connected" }) || s.matches("Stopping") || s.matches("Stopped") || s.matches("Failed"),
    );
    if (outcome.matches("Failed") && !this.disposeController.signal.aborted) throw connectionStateOf(outcome);
  }

  /** Stops: aborts a fetch in flight, cancels a connect, disconnects the room. Resolves at `Stopped`. */
  async stop(): Promise<void> {
    this.logger.debug("stop");
    if (this.actor.getSnapshot().status !== "active") return;
    this.actor.send({ type: "STOP" });
    await this.until((s) => s.matches("Stopped"));
  }
}
