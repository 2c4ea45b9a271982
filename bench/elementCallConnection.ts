/**
 * The baseline: an imperative `Connection` that follows Element Call's
 * (`src/state/CallViewModel/remoteMembers/Connection.ts`, with `getSFUConfigWithOpenID` from
 * `src/livekit/openIDSFU.ts`) step by step, as described in /work/shared/reference/element-call.md §1.2–1.6 and
 * §2.2. Written from that description for the benchmark; it is not Element Call's source.
 *
 * What it keeps: the synchronous `FetchingConfig`, no await at all before `connect()` when an SFU config is
 * given, the `stopped` flag as the only cancellation, the room-state observer subscribed in `start()` and never
 * ended by `stop()`, the retry wrapper around each request, the `/get_token` → `/sfu/get` fallback, the
 * `atob` decode of the JWT, the connect-error mapping, and the log calls (their strings are built even when the
 * logger drops them).
 * What it leaves out: Element Call's `ObservableScope` (the benchmark never ends a scope), the delay-delegation
 * fields (remote connections never send them), the `M_BAD_JSON` re-send, localisation, and the
 * participant-level events that components-core also listens to (no participant ever joins in the benchmark).
 */
import {
  ConnectionError,
  ConnectionErrorReason,
  RoomEvent,
  type ConnectionState as LivekitConnectionState,
  type RemoteParticipant,
} from "livekit-client";
import { BehaviorSubject, Observable, startWith, type Subscription } from "rxjs";
// The same state names and logger shape as Element Call's (the package uses them too).
import { ConnectionState as ECConnectionState, type LivekitRoomLike, type Logger as ECLogger } from "../src";

export type Behavior<T> = Observable<T> & { readonly value: T };

/** What Element Call uses of livekit-client's `Room` (FakeRoom and Room both fit): the package's room shape. */
export type ECRoom = LivekitRoomLike;

export interface ECOpenIDToken {
  access_token: string;
  token_type: string;
  matrix_server_name: string;
  expires_in: number;
}

export interface ECSFUConfig {
  url: string;
  jwt: string;
  livekitAlias: string;
  livekitIdentity: string;
}

export interface ECConnectionOpts<R extends ECRoom> {
  existingSFUConfig?: ECSFUConfig;
  ownMembershipIdentity: { userId: string; deviceId: string; memberId: string };
  transport: { type: "livekit"; livekit_service_url: string };
  client: { getOpenIdToken(): Promise<ECOpenIDToken> };
  roomId: string;
  livekitRoomFactory: () => R;
  /** Not in Element Call (it uses the global fetch); here so every subject of the benchmark uses the same one. */
  fetch?: typeof globalThis.fetch;
}

// ---- Element Call's error hierarchy (src/utils/errors.ts), reduced to what Connection produces ----

export class ElementCallError extends Error {
  protected constructor(
    readonly localisedTitle: string,
    readonly code: string,
    readonly category: string,
    readonly localisedMessage?: string,
    cause?: unknown,
  ) {
    super(localisedTitle, cause === undefined ? undefined : { cause });
  }
}

export class UnknownCallError extends ElementCallError {
  constructor(error: Error) {
    super("Something went wrong", "UNKNOWN_ERROR", "UNKNOWN", undefined, error);
  }
}

export class FailToGetOpenIdToken extends ElementCallError {
  constructor(error: Error) {
    super("Something went wrong", "OPEN_ID_ERROR", "CONFIGURATION_ISSUE", undefined, error);
  }
}

export class InsufficientCapacityError extends ElementCallError {
  constructor() {
    super(
      "Insufficient capacity",
      "INSUFFICIENT_CAPACITY_ERROR",
      "UNKNOWN",
      "The server has reached its maximum capacity and you cannot join the call at this time.",
    );
  }
}

export class SFURoomCreationRestrictedError extends ElementCallError {
  constructor() {
    super(
      "Failed to create call",
      "SFU_ERROR",
      "CONFIGURATION_ISSUE",
      "Call creation might be restricted to authorized users only.",
    );
  }
}

export class PeerConnectionTimeoutError extends ElementCallError {
  constructor() {
    super("Connection timeout", "SFU_ERROR", "NETWORK_CONNECTIVITY", "Connection to the media server timed out.");
  }
}

export class LivekitConnectionError extends ElementCallError {
  constructor(cause: ConnectionError) {
    super(
      "Failed to connect to Livekit server",
      "SFU_ERROR",
      "NETWORK_CONNECTIVITY",
      `An error occurred while connecting to the Livekit server (Reason: ${cause.reasonName}).`,
    );
  }
}

/** A non-OK answer of the auth service (matrix-js-sdk's `parseErrorResponse` gives a MatrixError/HTTPError). */
class HttpError extends Error {
  constructor(
    readonly httpStatus: number,
    body: string,
  ) {
    super(`Server returned ${httpStatus} error: ${body}`);
  }
}

/** `/get_token` answered 404: Element Call then tries the legacy endpoint. */
class NotSupportedError extends Error {
  override readonly name = "NotSupported";
}

// ---- src/utils/matrix.ts doNetworkOperationWithRetry + matrix-js-sdk calculateRetryBackoff ----

function retryBackoffMs(e: unknown, attempts: number): number {
  if (attempts > 4) return -1;
  const err = e as { httpStatus?: number; name?: string };
  if (err.httpStatus !== undefined && err.httpStatus >= 400 && err.httpStatus < 500 && err.httpStatus !== 429) {
    return -1;
  }
  if (err.name === "AbortError" || err.name === "M_TOO_LARGE") return -1;
  return 1000 * 2 ** attempts;
}

async function doNetworkOperationWithRetry<T>(operation: () => Promise<T>): Promise<T> {
  let attempts = 0;
  for (;;) {
    try {
      return await operation();
    } catch (e) {
      attempts++;
      const backoff = retryBackoffMs(e, attempts);
      if (backoff < 0) throw e;
      await new Promise((resolve) => setTimeout(resolve, backoff));
    }
  }
}

// ---- src/livekit/openIDSFU.ts ----

async function postJson(fetchFn: typeof globalThis.fetch, url: string, body: unknown): Promise<unknown> {
  return doNetworkOperationWithRetry(async () => {
    const res = await fetchFn(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!res.ok) {
      if (res.status === 404 && url.endsWith("/get_token")) {
        throw new NotSupportedError("SFU Config fetch failed with status code 404");
      }
      throw new HttpError(res.status, await res.text());
    }
    return res.json();
  });
}

/** `extractFullConfigFromToken`: plain `atob` of the payload segment, as Element Call does. */
function extractFullConfigFromToken(config: unknown): ECSFUConfig {
  const { url, jwt } = config as { url: string; jwt: string };
  const payload = JSON.parse(atob(jwt.split(".")[1]!)) as { sub: string; video: { room: string } };
  return { url, jwt, livekitAlias: payload.video.room, livekitIdentity: payload.sub };
}

export async function ecGetSFUConfigWithOpenID(
  client: ECConnectionOpts<ECRoom>["client"],
  membership: ECConnectionOpts<ECRoom>["ownMembershipIdentity"],
  serviceUrl: string,
  roomId: string,
  fetchFn: typeof globalThis.fetch,
  logger: ECLogger,
): Promise<ECSFUConfig> {
  let openIdToken: ECOpenIDToken;
  try {
    openIdToken = await doNetworkOperationWithRetry(() => client.getOpenIdToken());
  } catch (error) {
    throw new FailToGetOpenIdToken(error instanceof Error ? error : new Error("Unknown error"));
  }
  logger.debug("Got openID token", openIdToken);
  try {
    const config = await postJson(fetchFn, `${serviceUrl}/get_token`, {
      room_id: roomId,
      slot_id: "m.call#ROOM",
      openid_token: openIdToken,
      member: { id: membership.memberId, claimed_user_id: membership.userId, claimed_device_id: membership.deviceId },
    });
    return extractFullConfigFromToken(config);
  } catch (e) {
    logger.debug(`Failed fetching jwt with matrix 2.0 endpoint (retry with legacy): ${String(e)}`);
  }
  try {
    const config = await postJson(fetchFn, `${serviceUrl}/sfu/get`, {
      room: roomId,
      openid_token: openIdToken,
      device_id: membership.deviceId,
    });
    return extractFullConfigFromToken(config);
  } catch (ex) {
    throw new FailToGetOpenIdToken(ex instanceof Error ? ex : new Error("Unknown error"));
  }
}

// ---- components-core observables ----

/** `connectionStateObserver`: the room's ConnectionStateChanged events, starting with its current state. */
function connectionStateObserver(room: ECRoom): Observable<LivekitConnectionState> {
  return new Observable<LivekitConnectionState>((subscriber) => {
    const onState = (state: LivekitConnectionState): void => subscriber.next(state);
    room.on(RoomEvent.ConnectionStateChanged, onState);
    return () => room.off(RoomEvent.ConnectionStateChanged, onState);
  }).pipe(startWith(room.state as LivekitConnectionState));
}

// ---- the Connection ----

export class ElementCallConnection<R extends ECRoom = ECRoom> {
  private readonly _state$ = new BehaviorSubject<ECConnectionState | ElementCallError>(ECConnectionState.Initialized);
  readonly state$: Behavior<ECConnectionState | Error> = this._state$;
  readonly transport: ECConnectionOpts<R>["transport"];
  readonly livekitRoom: R;
  readonly remoteParticipants$: Behavior<RemoteParticipant[]>;
  protected stopped = false;

  private _livekitAlias: string | undefined;
  get livekitAlias(): string | undefined {
    return this._livekitAlias;
  }

  private readonly client: ECConnectionOpts<R>["client"];
  private readonly logger: ECLogger;
  /** The room-state subscriptions; Element Call ends them with its scope, never in stop(). */
  private readonly subscriptions: Subscription[] = [];

  constructor(
    private readonly opts: ECConnectionOpts<R>,
    logger: ECLogger,
  ) {
    this.logger = logger.getChild(`[Connection ${opts.transport.livekit_service_url}]`);
    this.logger.info(
      `constructor: ${opts.transport.livekit_service_url} roomId: ${opts.roomId} withSfuConfig?: ${JSON.stringify(opts.existingSFUConfig)}`,
    );
    this.livekitRoom = opts.livekitRoomFactory();
    this.transport = opts.transport;
    this.client = opts.client;

    // connectedParticipantsObserver: a new array, re-read from the room, on every participant or state event.
    const room = this.livekitRoom;
    const participants = new BehaviorSubject<RemoteParticipant[]>([...room.remoteParticipants.values()]);
    const reread = (): void => participants.next([...room.remoteParticipants.values()]);
    room.on(RoomEvent.ParticipantConnected, reread);
    room.on(RoomEvent.ParticipantDisconnected, reread);
    room.on(RoomEvent.ConnectionStateChanged, reread);
    this.remoteParticipants$ = participants;
  }

  protected async getSFUConfigForRemoteConnection(): Promise<ECSFUConfig> {
    return ecGetSFUConfigWithOpenID(
      this.client,
      this.opts.ownMembershipIdentity,
      this.transport.livekit_service_url,
      this.opts.roomId,
      this.opts.fetch ?? globalThis.fetch,
      this.logger,
    );
  }

  async start(): Promise<void> {
    this.logger.debug("Starting Connection");
    this.stopped = false;
    try {
      this._state$.next(ECConnectionState.FetchingConfig);
      // With an existing config there is no await before connect().
      const { url, jwt, livekitAlias } = this.opts.existingSFUConfig ?? (await this.getSFUConfigForRemoteConnection());
      this.logger.debug("Got SFU config", url, jwt);
      this._livekitAlias = livekitAlias;
      if (this.stopped) return;

      this.subscriptions.push(
        connectionStateObserver(this.livekitRoom).subscribe((state) =>
          this._state$.next(state as unknown as ECConnectionState),
        ),
      );

      this.logger.info(`livekitRoom.connect ${url}`);
      try {
        await this.livekitRoom.connect(url, jwt);
      } catch (e) {
        this.logger.info(`livekitRoom.connect FAILED ${url}`);
        throw mapConnectError(e);
      }
      this.logger.info(`livekitRoom.connect SUCCESS ${url}`);
      if (this.stopped) return;
    } catch (error) {
      this.logger.debug(`Failed to connect to LiveKit room: ${String(error)}`);
      this._state$.next(
        error instanceof ElementCallError
          ? error
          : error instanceof Error
            ? new UnknownCallError(error)
            : new UnknownCallError(new Error(String(error))),
      );
      throw error;
    }
  }

  async stop(): Promise<void> {
    this.logger.debug(`stop: disconnecing from lk room ${this.transport.livekit_service_url}`);
    if (this.stopped) return;
    await this.livekitRoom.disconnect();
    this._state$.next(ECConnectionState.Stopped);
    this.stopped = true;
    this.logger.debug(`stop: DONE ${this.transport.livekit_service_url}`);
  }
}

/** §1.5: status before reason; anything that is not a ConnectionError is re-thrown as is. */
function mapConnectError(e: unknown): unknown {
  if (!(e instanceof ConnectionError)) return e;
  if (e.status === 503 || e.status === 200 || e.status === 429) return new InsufficientCapacityError();
  if (e.status === 404) return new SFURoomCreationRestrictedError();
  if (e.reason === ConnectionErrorReason.Timeout) return new PeerConnectionTimeoutError();
  return new LivekitConnectionError(e);
}
