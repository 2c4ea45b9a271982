import { EventEmitter } from "node:events";
import { ConnectionError, ConnectionState, DisconnectReason, RoomEvent, type RemoteParticipant } from "livekit-client";

/** Lets pending promise callbacks and xstate's mailbox run. */
export const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * A stand-in for livekit-client's `Room` in Node, where the real one cannot connect. It reproduces the real
 * ordering (livekit-client 2.23 `Room.connect`/`disconnect`/`handleDisconnect`):
 * - `connect()` first awaits a lock, then emits `connectionStateChanged('connecting')`;
 * - success emits `connectionStateChanged('connected')` and `connected` before the promise resolves;
 * - failure emits `connectionStateChanged('disconnected')` and `disconnected` before it rejects;
 * - `disconnect()` during a connect rejects that connect with `ConnectionError.cancelled(...)`, then clears the
 *   remote participants and emits `disconnected`; `disconnect()` when disconnected changes nothing.
 * Where it differs: a `disconnect()` that overtakes a connect still waiting for its lock cancels it without the
 * 'connecting' → 'disconnected' pair the real Room would emit (nobody is listening then).
 * The test decides when a connect succeeds or fails (`succeedConnect`, `failConnect`), or sets `autoConnect`.
 */
export class FakeRoom extends EventEmitter {
  state: ConnectionState = ConnectionState.Disconnected;
  readonly remoteParticipants = new Map<string, RemoteParticipant>();
  readonly connectCalls: { url: string; token: string }[] = [];
  disconnectCalls = 0;
  /** When set, a connect completes by itself this way after the 'connecting' event. */
  autoConnect: "succeed" | Error | undefined;
  /** Outcomes for the next connects, one each, taken before `autoConnect` is looked at (it then sets it). */
  readonly nextConnects: ("succeed" | Error)[] = [];
  /** When set, `connect()` waits for `beginConnecting()` before it reports 'connecting'. */
  holdConnecting = false;
  /** When set, `disconnect()` waits for `releaseDisconnect()` (to observe the machine's Stopping state). */
  holdDisconnect = false;
  /** When false, `disconnect()` leaves a pending connect alone (to let a connect succeed after a stop). */
  cancelOnDisconnect = true;
  /** When set, `disconnect()` rejects with it (after disconnecting). */
  disconnectError: Error | undefined;

  private pending: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private heldDisconnect: (() => void) | undefined;
  private heldConnecting: (() => void) | undefined;

  async connect(url: string, token: string): Promise<void> {
    this.connectCalls.push({ url, token });
    if (this.nextConnects.length > 0) this.autoConnect = this.nextConnects.shift();
    const done = new Promise<void>((resolve, reject) => {
      this.pending = { resolve, reject };
    });
    done.catch(() => {}); // handled by whoever awaits connect(); it may be settled before connect() returns it
    await Promise.resolve(); // the disconnect lock
    if (this.holdConnecting) await new Promise<void>((resolve) => (this.heldConnecting = resolve));
    if (!this.pending) return done; // cancelled before it began
    if (this.state === ConnectionState.Connected) return this.take().resolve();
    this.setState(ConnectionState.Connecting);
    // Settled by itself a moment later, unless a disconnect() (from a 'connecting' listener, say) cancelled it.
    const mine = this.pending;
    const auto = this.autoConnect;
    if (auto !== undefined) {
      queueMicrotask(() => {
        if (this.pending !== mine) return;
        if (auto === "succeed") this.succeedConnect();
        else this.failConnect(auto);
      });
    }
    return done;
  }

  /** Lets a held `connect()` go on to report 'connecting'. */
  beginConnecting(): void {
    this.heldConnecting?.();
    this.heldConnecting = undefined;
  }

  /** The connect succeeds; called before 'connecting' was reported, the room jumps straight to 'connected'. */
  succeedConnect(): void {
    const p = this.take();
    this.setState(ConnectionState.Connected);
    this.emit(RoomEvent.Connected);
    p.resolve();
  }

  failConnect(error: Error): void {
    const p = this.take();
    this.handleDisconnect(DisconnectReason.JOIN_FAILURE);
    p.reject(error);
  }

  async disconnect(): Promise<void> {
    this.disconnectCalls++;
    await Promise.resolve(); // the disconnect lock
    if (this.pending && this.cancelOnDisconnect) {
      const p = this.pending;
      this.pending = undefined;
      p.reject(ConnectionError.cancelled("Client initiated disconnect"));
      this.beginConnecting();
    }
    if (this.holdDisconnect) await new Promise<void>((resolve) => (this.heldDisconnect = resolve));
    this.handleDisconnect(DisconnectReason.CLIENT_INITIATED); // nothing happens when already disconnected
    if (this.disconnectError) throw this.disconnectError;
  }

  get disconnectHeld(): boolean {
    return this.heldDisconnect !== undefined;
  }

  releaseDisconnect(): void {
    this.heldDisconnect?.();
    this.heldDisconnect = undefined;
  }

  /** A connect has reported 'connecting' and not settled yet. */
  get connectPending(): boolean {
    return this.pending !== undefined && this.state === ConnectionState.Connecting;
  }

  // Server-side happenings while connected.
  signalReconnecting(): void {
    this.setState(ConnectionState.SignalReconnecting);
    this.emit(RoomEvent.SignalReconnecting);
  }

  reconnecting(): void {
    // A full reconnect drops the remote participants first.
    for (const p of [...this.remoteParticipants.values()]) this.removeParticipant(p.identity);
    this.setState(ConnectionState.Reconnecting);
    this.emit(RoomEvent.Reconnecting);
  }

  reconnected(): void {
    this.setState(ConnectionState.Connected);
    this.emit(RoomEvent.Reconnected);
  }

  /**
   * LiveKit gives up the connection (its own reconnects failed, or the server ended it for `reason`); `null`:
   * a `Disconnected` event without a reason.
   */
  lose(reason: DisconnectReason | null = DisconnectReason.SIGNAL_CLOSE): void {
    this.handleDisconnect(reason ?? undefined);
  }

  addParticipant(identity: string): RemoteParticipant {
    const p = { identity, sid: `PA_${identity}` } as RemoteParticipant;
    this.remoteParticipants.set(identity, p);
    this.emit(RoomEvent.ParticipantConnected, p);
    return p;
  }

  removeParticipant(identity: string): void {
    const p = this.remoteParticipants.get(identity);
    if (!p) return;
    this.remoteParticipants.delete(identity);
    this.emit(RoomEvent.ParticipantDisconnected, p);
  }

  private take(): { resolve: () => void; reject: (e: Error) => void } {
    const p = this.pending;
    if (!p) throw new Error("no connect is pending");
    this.pending = undefined;
    this.beginConnecting(); // a connect still waiting for its lock ends quietly
    return p;
  }

  private handleDisconnect(reason: DisconnectReason | undefined): void {
    if (this.state === ConnectionState.Disconnected) return;
    this.remoteParticipants.clear();
    this.setState(ConnectionState.Disconnected);
    this.emit(RoomEvent.Disconnected, reason);
  }

  private setState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    this.emit(RoomEvent.ConnectionStateChanged, state);
  }
}
