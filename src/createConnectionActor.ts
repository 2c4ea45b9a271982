import { createActor, type Actor, type InspectionEvent, type Observer } from "xstate";
import { connectionMachine, type ConnectionMachine, type SfuCredentials } from "../machines/connection.machine";
import { createConnectionActors } from "./actors";
import { connectionStateOf } from "./connectionState";
import { isCallError } from "./errors";
import { silentLogger } from "./logger";
import { Secret } from "./secret";
import { checkTransportUrl, decodeLivekitJwt } from "./sfuConfig";
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

export interface ConnectionActorOptions {
  /** The LiveKit room to connect (a livekit-client `Room`, or anything with the same surface). */
  room: LivekitRoomLike;
  /** The Matrix client, or just its `getOpenIdToken`. */
  client: OpenIDClientParts;
  /** The MatrixRTC transport: where the auth service is. */
  transport: LivekitTransportConfig;
  /** The Matrix room id of the call. */
  roomId: string;
  ownMembershipIdentity: CallMembershipIdentityParts;
  /** An SFU config fetched already: START then connects at once. */
  existingSFUConfig?: SFUConfig;
  /** The fetch used for the auth service. Default `globalThis.fetch`. */
  fetch?: typeof globalThis.fetch;
  retry?: RetryOptions;
  timeouts?: TimeoutOptions;
  /** Allow `http:`/`ws:` URLs to hosts other than loopback. Default false. */
  allowInsecureTransport?: boolean;
  logger?: Logger;
  /** Receives XState inspection events (e.g. `@statelyai/inspect`); they carry no JWT or access token. */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
}

function requireString(value: unknown, what: string): void {
  if (typeof value !== "string" || value === "") throw new TypeError(`${what} must be a non-empty string`);
}

/**
 * Checks everything but the room; mistakes are TypeErrors at once rather than failures later. (An insecure
 * `existingSFUConfig.url` is an InsecureTransportError, which is a TypeError too.)
 */
export function checkConnectionOptions(o: Omit<ConnectionActorOptions, "room">): void {
  if (typeof o !== "object" || o === null) throw new TypeError("options are required");
  if (typeof o.client?.getOpenIdToken !== "function") throw new TypeError("client.getOpenIdToken must be a function");
  if (o.transport?.type !== "livekit") throw new TypeError('transport.type must be "livekit"');
  requireString(o.transport.livekit_service_url, "transport.livekit_service_url");
  requireString(o.roomId, "roomId");
  requireString(o.ownMembershipIdentity?.userId, "ownMembershipIdentity.userId");
  requireString(o.ownMembershipIdentity?.deviceId, "ownMembershipIdentity.deviceId");
  requireString(o.ownMembershipIdentity?.memberId, "ownMembershipIdentity.memberId");
  if (o.existingSFUConfig) toSfuCredentials(o.existingSFUConfig, o.allowInsecureTransport);
}

function checkRoom(room: Partial<LivekitRoomLike> | undefined): void {
  for (const m of ["connect", "disconnect", "on", "off"] as const) {
    if (typeof room?.[m] !== "function") throw new TypeError(`the room has no ${m}() method`);
  }
}

/** A caller's SFU config, checked, with the JWT put away in a Secret. */
function toSfuCredentials(config: SFUConfig, allowInsecureTransport?: boolean): SfuCredentials {
  checkTransportUrl(config.url, "existingSFUConfig.url", "http-or-ws", allowInsecureTransport);
  const decoded = decodeLivekitJwt(config.jwt);
  return {
    url: config.url,
    jwt: new Secret(config.jwt),
    livekitAlias: config.livekitAlias || decoded.livekitAlias,
    livekitIdentity: config.livekitIdentity || decoded.livekitIdentity,
  };
}

/**
 * The connection machine with its real actors, as an actor that is not started yet: call `start()` on it,
 * then send `{type: "START"}` / `{type: "STOP"}`. Throws a TypeError for malformed options.
 */
export function createConnectionActor(options: ConnectionActorOptions): Actor<ConnectionMachine> {
  checkRoom(options?.room);
  checkConnectionOptions(options);
  const logger = options.logger ?? silentLogger;
  const existingSfuConfig =
    options.existingSFUConfig && toSfuCredentials(options.existingSFUConfig, options.allowInsecureTransport);
  const machine = connectionMachine.provide({ actors: createConnectionActors({ ...options, logger }) });
  const actor = createActor(machine, { input: { existingSfuConfig }, inspect: options.inspect });

  let last = "";
  actor.subscribe({
    next: (snapshot) => {
      const value = JSON.stringify(snapshot.value);
      if (value === last) return;
      last = value;
      const state = connectionStateOf(snapshot);
      if (isCallError(state)) {
        const cause = state.cause instanceof Error ? ` (${state.cause.name}: ${state.cause.message})` : "";
        logger.warn(`connection failed: ${state.code} ${state.name}: ${state.message}${cause}`);
      } else {
        logger.info(`state ${value.replace(/"/g, "")}`);
      }
    },
    error: (e) => logger.error("the connection machine crashed", e),
  });
  return actor;
}
