import { DisconnectReason, RoomEvent as LivekitRoomEvent } from "livekit-client";
import { fromCallback, fromPromise, type EventObject } from "xstate";
import type {
  ActorInput,
  ConnectRoomInput,
  DelegateDelayedLeaveInput,
  OpenIDToken,
  RequestSFUConfigInput,
  RoomConnectionState,
  RoomEvent,
  SFUCredentials,
} from "../machines/connection.machine";
import { FailToGetOpenIdToken, InsufficientCapacityError, mapConnectError } from "./errors";
import { abortable, describe, withOwnSignal } from "./retry";
import { Secret, reveal, scrubSecrets } from "./secret";
import { VALIDATE_TIMEOUT_MS, isUnexplainedWebSocketFailure, validateStatus } from "./sfuValidate";
import { checkServiceUrl, delegateDelayedLeave, requestSFUConfig, sfuConfigFailure } from "./authService";
import { requestOpenIdToken } from "./openId";
import type { ConnectionActorOptions, TimeoutOptions } from "./types";

/** A phase that ran out of time (named like the DOMException a timed-out `AbortSignal.timeout()` gives). */
export class PhaseTimeoutError extends Error {
  override readonly name = "TimeoutError";
}

/** What the actors of one connection work with: its options, checked once, with their defaults filled in. */
export type ConnectionDeps = Pick<
  ConnectionActorOptions,
  "room" | "client" | "transport" | "roomId" | "ownMembershipIdentity" | "fetch" | "retry" | "forceJwtEndpoint"
> &
  Required<Pick<ConnectionActorOptions, "allowInsecureTransport" | "logger">> & { timeouts: Required<TimeoutOptions> };

/** The dependencies in an actor's input, for actors of your own (see `connectionActors`). */
export function connectionDepsOf(input: ActorInput): ConnectionDeps {
  if (!(input.deps instanceof Secret)) {
    throw new TypeError("the connection's dependencies are missing: create the actor with createConnectionActor()");
  }
  return reveal(input.deps as Secret<ConnectionDeps>);
}

/**
 * Runs `work` with a signal that aborts when the actor stops (`stop`) or when `ms` have passed; a time-out
 * rejects with a PhaseTimeoutError.
 */
async function withinTime<T>(
  stop: AbortSignal,
  ms: number,
  what: string,
  work: (signal: AbortSignal, deadline: number) => Promise<T>,
): Promise<T> {
  return withOwnSignal(stop, async (signal, abort) => {
    const timer = setTimeout(() => abort(new PhaseTimeoutError(`${what} took longer than ${ms} ms`)), ms);
    try {
      // Raced with the abort, so the limit holds whatever `work` does with its signal.
      return await abortable(work(signal, Date.now() + ms), signal);
    } finally {
      clearTimeout(timer);
    }
  });
}

/**
 * After a connect failed on its WebSocket for no reason livekit-client kept: what the SFU's validate endpoint
 * says, if it says it is over capacity (503, or a proxy's 429); 0 otherwise, or when it does not answer in time.
 */
async function capacityRefusal(url: string, jwt: string, deps: ConnectionDeps, stop: AbortSignal): Promise<number> {
  try {
    const status = await withinTime(stop, VALIDATE_TIMEOUT_MS, "The SFU's validate request", (signal) =>
      validateStatus(url, jwt, {
        fetch: deps.fetch ?? globalThis.fetch,
        signal,
        allowInsecureTransport: deps.allowInsecureTransport,
      }),
    );
    deps.logger.info(`after the failed connect, the SFU's validate endpoint answered ${status}`);
    return status === 503 || status === 429 ? status : 0;
  } catch (e) {
    deps.logger.info(`after the failed connect, the SFU's validate endpoint gave no answer: ${describe(e)}`);
    return 0;
  }
}

const ROOM_STATES: ReadonlySet<string> = new Set<RoomConnectionState>([
  "disconnected",
  "connecting",
  "connected",
  "reconnecting",
  "signalReconnecting",
]);

/**
 * The implementations of the machine's actors: all the I/O of a connection. They are made once; each
 * connection's room, client and options reach them as `input.deps`.
 */
export const connectionActors = {
  requestOpenIdToken: fromPromise<Secret<OpenIDToken>, ActorInput>(async ({ input, signal }) => {
    try {
      const { client, retry, timeouts, logger, transport, allowInsecureTransport } = connectionDepsOf(input);
      // No OpenID token is asked for on behalf of a service it would not be sent to.
      checkServiceUrl(transport.livekit_service_url, allowInsecureTransport);
      const token = await withinTime(signal, timeouts.openIdTokenMs, "The OpenID token request", (s, deadline) =>
        requestOpenIdToken(client, { retry, signal: s, logger, deadline }),
      );
      return new Secret(token);
    } catch (e) {
      throw new FailToGetOpenIdToken(e);
    }
  }),

  requestSFUConfig: fromPromise<SFUCredentials, RequestSFUConfigInput>(async ({ input, signal }) => {
    const deps = connectionDepsOf(input);
    try {
      const config = await withinTime(signal, deps.timeouts.sfuConfigMs, "The SFU config request", (s, deadline) =>
        requestSFUConfig(
          reveal(input.openIdToken),
          deps.ownMembershipIdentity,
          deps.transport.livekit_service_url,
          deps.roomId,
          {
            fetch: deps.fetch,
            retry: deps.retry,
            signal: s,
            logger: deps.logger,
            allowInsecureTransport: deps.allowInsecureTransport,
            deadline,
            forceJwtEndpoint: deps.forceJwtEndpoint,
            delayedLeave: input.delayedLeave && reveal(input.delayedLeave),
          },
        ),
      );
      // (what the chart keeps: not whether the delay fields were accepted, which says nothing about delegation)
      const { url, livekitAlias, livekitIdentity, expiresAt } = config;
      return { url, jwt: new Secret(config.jwt), livekitAlias, livekitIdentity, expiresAt };
    } catch (e) {
      throw sfuConfigFailure(e, deps.forceJwtEndpoint);
    }
  }),

  connectRoom: fromPromise<void, ConnectRoomInput>(async ({ input, signal }) => {
    const deps = connectionDepsOf(input);
    deps.logger.info(`connecting to the LiveKit room at ${input.url}`);
    const jwt = reveal(input.jwt);
    try {
      await deps.room.connect(input.url, jwt);
    } catch (e) {
      scrubSecrets(e, [jwt]);
      const status =
        !signal.aborted && isUnexplainedWebSocketFailure(e) ? await capacityRefusal(input.url, jwt, deps, signal) : 0;
      throw status ? new InsufficientCapacityError(e, status) : mapConnectError(e);
    }
  }),

  watchRoom: fromCallback<EventObject, ActorInput>(({ input, sendBack }) => {
    // Without dependencies there is no room to watch; connectRoom fails with the explanation. (A throw here
    // would crash the whole machine.)
    if (!(input.deps instanceof Secret)) return;
    const { room, logger } = connectionDepsOf(input);
    const onState = (state: string): void => {
      // 'disconnected' is reported by the Disconnected event that follows at once, with its reason.
      if (state === "disconnected") return;
      if (ROOM_STATES.has(state)) sendBack({ type: `room.${state as RoomConnectionState}` } as RoomEvent);
      else logger.warn(`ignoring unknown LiveKit connection state ${JSON.stringify(state)}`);
    };
    const onDisconnected = (reason?: DisconnectReason): void => {
      const name = reason === undefined ? undefined : DisconnectReason[reason];
      sendBack({ type: "room.disconnected", reason: name } satisfies RoomEvent);
    };
    room.on(LivekitRoomEvent.ConnectionStateChanged, onState);
    room.on(LivekitRoomEvent.Disconnected, onDisconnected);
    if (room.state !== "disconnected") onState(room.state);
    return () => {
      room.off(LivekitRoomEvent.ConnectionStateChanged, onState);
      room.off(LivekitRoomEvent.Disconnected, onDisconnected);
    };
  }),

  delegateDelayedLeave: fromPromise<void, DelegateDelayedLeaveInput>(async ({ input, signal }) => {
    const deps = connectionDepsOf(input);
    const { logger, timeouts } = deps;
    try {
      // No OpenID token is asked for on behalf of a service it would not be sent to.
      checkServiceUrl(deps.transport.livekit_service_url, deps.allowInsecureTransport);
      await withinTime(signal, timeouts.sfuConfigMs, "The delayed leave's delegation", async (s, deadline) => {
        const options = { fetch: deps.fetch, retry: deps.retry, signal: s, logger, deadline };
        const token = await requestOpenIdToken(deps.client, options);
        await delegateDelayedLeave(
          token,
          deps.ownMembershipIdentity,
          deps.transport.livekit_service_url,
          deps.roomId,
          reveal(input.delayedLeave),
          { ...options, allowInsecureTransport: deps.allowInsecureTransport },
        );
      });
      logger.info("the auth service has taken the delayed leave over");
    } catch (e) {
      if (!signal.aborted) logger.warn(`the delayed leave's delegation failed; the call goes on: ${describe(e)}`);
      throw e;
    }
  }),

  disconnectRoom: fromPromise<void, ActorInput>(async ({ input, signal }) => {
    const { room, timeouts, logger } = connectionDepsOf(input);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(resolve, timeouts.disconnectMs, "timeout");
    });
    const stopTimer = (): void => clearTimeout(timer); // the actor was stopped: nobody waits any more
    signal.addEventListener("abort", stopTimer, { once: true });
    try {
      const outcome = await Promise.race([room.disconnect(), timedOut]);
      if (outcome === "timeout") {
        logger.warn(`room.disconnect() did not finish within ${timeouts.disconnectMs} ms; counting it as stopped`);
      }
    } catch (e) {
      logger.warn(`room.disconnect() failed: ${describe(e)}`);
      throw e;
    } finally {
      stopTimer();
      signal.removeEventListener("abort", stopTimer);
    }
  }),
};
