/**
 * Type-level checks, run by `npm run typecheck` (tsc): the real things fit the package's narrow interfaces, so
 * apps pass them without casts. A mismatch fails the type-check.
 */
import type { Room } from "livekit-client";
import type { MatrixClient } from "matrix-js-sdk";
import type { Logger as MatrixLogger } from "matrix-js-sdk/lib/logger";
import type { LivekitTransportConfig as MatrixLivekitTransportConfig } from "matrix-js-sdk/lib/matrixrtc";
import { Connection, type Logger, type OpenIDClientParts, type LivekitRoomLike } from "../../src";
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
