/**
 * Type-level checks, run by `npm run typecheck` (tsc): the real things fit the package's narrow interfaces, so
 * apps pass them without casts. A mismatch fails the type-check.
 */
import type { Room } from "livekit-client";
import type { MatrixClient } from "matrix-js-sdk";
import type { Logger as MatrixLogger } from "matrix-js-sdk/lib/logger";
import type {
  CallMembership,
  LivekitTransportConfig as MatrixLivekitTransportConfig,
} from "matrix-js-sdk/lib/matrixrtc";
import type { Observable } from "rxjs";
import {
  Connection,
  ConnectionManager,
  matchMembershipsToParticipants,
  type Logger,
  type OpenIDClientParts,
  type LivekitRoomLike,
  type SFUConfig,
} from "../../src";
import type { FakeRoom } from "../support/fakeRoom";

declare const client: MatrixClient;
declare const room: Room;
declare const matrixLogger: MatrixLogger;
declare const transport: MatrixLivekitTransportConfig;

export const clientFits: OpenIDClientParts = client;
export const roomFits: LivekitRoomLike = room;
export const loggerFits: Logger = matrixLogger;
export const fakeRoomFits: LivekitRoomLike = {} as FakeRoom;

// Element Call's call site, unchanged: a matrix-js-sdk transport, client and logger, a livekit-client Room.
export const connection = (): Connection =>
  new Connection(
    {
      transport,
      client,
      roomId: "!room:example.org",
      ownMembershipIdentity: { userId: "@a:example.org", deviceId: "D", memberId: "m" },
      livekitRoomFactory: () => room,
    },
    matrixLogger,
  );
// `livekitRoom` keeps the factory's type.
export const roomType = (c: Connection): Room => c.livekitRoom;

// Element Call's createConnectionManager$ call site: matrix-js-sdk transports and memberships, rxjs observables.
declare const localTransport$: Observable<{ transport: MatrixLivekitTransportConfig; sfuConfig?: SFUConfig } | null>;
declare const remoteTransports$: Observable<MatrixLivekitTransportConfig[]>;
declare const membership: CallMembership;
export const manager = (): ConnectionManager =>
  new ConnectionManager(
    {
      localTransport$,
      remoteTransports$,
      client,
      roomId: "!room:example.org",
      ownMembershipIdentity: { userId: "@a:example.org", deviceId: "D", memberId: "m" },
      livekitRoomFactory: () => room, // Element Call's takes no transport; this package passes it
    },
    matrixLogger,
  );
// A real CallMembership is matched as it is; the connections keep the factory's room type.
export const matched = (m: ConnectionManager) =>
  matchMembershipsToParticipants([{ membership, transport }], m.connectionManagerData$.value, {
    userId: "@a:example.org",
    deviceId: "D",
  });
export const managedRoom = (m: ConnectionManager): Room | undefined =>
  m.connectionManagerData$.value.getConnectionForTransport(transport)?.livekitRoom;
