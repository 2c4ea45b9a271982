import { RoomEvent as LivekitRoomEvent } from "livekit-client";
import { fromCallback, fromPromise, type EventObject } from "xstate";
import type {
  ConnectRoomInput,
  OpenIDToken,
  RoomConnectionState,
  RoomEvent,
  SfuCredentials,
} from "../machines/connection.machine";
import { FailToGetOpenIdToken, mapConnectError } from "./errors";
import { describe } from "./retry";
import { Secret, reveal, scrubSecrets } from "./secret";
import { requestOpenIdToken, requestSfuConfig } from "./sfuConfig";
import type {
  CallMembershipIdentityParts,
  LivekitRoomLike,
  LivekitTransportConfig,
  Logger,
  OpenIDClientParts,
  RetryOptions,
  TimeoutOptions,
} from "./types";

export const DEFAULT_TIMEOUTS: Required<TimeoutOptions> = {
  openIdTokenMs: 60_000,
  sfuConfigMs: 60_000,
  disconnectMs: 10_000,
};

/** A phase that ran out of time. */
export class PhaseTimeoutError extends Error {
  override readonly name = "TimeoutError";
}

export interface ConnectionActorsOptions {
  room: LivekitRoomLike;
  client: OpenIDClientParts;
  transport: LivekitTransportConfig;
  roomId: string;
  ownMembershipIdentity: CallMembershipIdentityParts;
  fetch?: typeof globalThis.fetch;
  retry?: RetryOptions;
  timeouts?: TimeoutOptions;
  allowInsecureTransport?: boolean;
  logger: Logger;
}

/**
 * Runs `work` with a signal that aborts when the actor stops (`stop`) or when `ms` have passed; a time-out
 * rejects with a PhaseTimeoutError.
 */
async function withinTime<T>(
  stop: AbortSignal,
  ms: number,
  what: string,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const onStop = (): void => controller.abort(stop.reason);
  stop.addEventListener("abort", onStop, { once: true });
  const timer = setTimeout(() => controller.abort(new PhaseTimeoutError(`${what} took longer than ${ms} ms`)), ms);
  try {
    return await work(controller.signal);
  } finally {
    clearTimeout(timer);
    stop.removeEventListener("abort", onStop);
  }
}

const ROOM_STATES: readonly RoomConnectionState[] = [
  "disconnected",
  "connecting",
  "connected",
  "reconnecting",
  "signalReconnecting",
];

/** The implementations of the machine's actors: all the I/O of a connection. */
export function createConnectionActors(options: ConnectionActorsOptions) {
  const { room, logger } = options;
  const timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };

  return {
    requestOpenIdToken: fromPromise<Secret<OpenIDToken>>(async ({ signal }) => {
      try {
        const token = await withinTime(signal, timeouts.openIdTokenMs, "The OpenID token request", (s) =>
          requestOpenIdToken(options.client, { retry: options.retry, signal: s, logger }),
        );
        return new Secret(token);
      } catch (e) {
        throw new FailToGetOpenIdToken(e);
      }
    }),

    requestSfuConfig: fromPromise<SfuCredentials, { openIdToken: Secret<OpenIDToken> }>(async ({ input, signal }) => {
      try {
        const config = await withinTime(signal, timeouts.sfuConfigMs, "The SFU config request", (s) =>
          requestSfuConfig(
            reveal(input.openIdToken),
            options.ownMembershipIdentity,
            options.transport.livekit_service_url,
            options.roomId,
            {
              fetch: options.fetch,
              retry: options.retry,
              signal: s,
              logger,
              allowInsecureTransport: options.allowInsecureTransport,
            },
          ),
        );
        return { ...config, jwt: new Secret(config.jwt) };
      } catch (e) {
        throw new FailToGetOpenIdToken(e);
      }
    }),

    connectRoom: fromPromise<void, ConnectRoomInput>(async ({ input }) => {
      logger.info(`connecting to the LiveKit room at ${input.url}`);
      const jwt = reveal(input.jwt);
      try {
        await room.connect(input.url, jwt);
      } catch (e) {
        throw mapConnectError(scrubSecrets(e, [jwt]));
      }
    }),

    watchRoom: fromCallback<EventObject>(({ sendBack }) => {
      let identities: string[] = [];
      const reportParticipants = (): void => {
        const now = [...room.remoteParticipants.keys()];
        if (now.length === identities.length && now.every((id, i) => id === identities[i])) return;
        identities = now;
        sendBack({ type: "room.participantsChanged", identities } satisfies RoomEvent);
      };
      const onState = (state: string): void => {
        if (!(ROOM_STATES as readonly string[]).includes(state)) {
          logger.warn(`ignoring unknown LiveKit connection state ${JSON.stringify(state)}`);
          return;
        }
        sendBack({ type: `room.${state as RoomConnectionState}` } satisfies RoomEvent);
        reportParticipants();
      };
      room.on(LivekitRoomEvent.ConnectionStateChanged, onState);
      room.on(LivekitRoomEvent.ParticipantConnected, reportParticipants);
      room.on(LivekitRoomEvent.ParticipantDisconnected, reportParticipants);
      if (room.state !== "disconnected") onState(room.state);
      reportParticipants();
      return () => {
        room.off(LivekitRoomEvent.ConnectionStateChanged, onState);
        room.off(LivekitRoomEvent.ParticipantConnected, reportParticipants);
        room.off(LivekitRoomEvent.ParticipantDisconnected, reportParticipants);
      };
    }),

    disconnectRoom: fromPromise<void>(async ({ signal }) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), timeouts.disconnectMs);
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
}
