import { createClient, type MatrixClient } from "matrix-js-sdk";
import type { ServerResponse } from "node:http";
import { inspect } from "node:util";
import { Connection, type ConnectionOpts } from "../../src";
import type { Logger } from "../../src/types";
import { FakeRoom } from "./fakeRoom";
import { type LoopbackServer, sendJson, type RecordedRequest } from "./loopbackServer";
import { ACCESS_TOKEN, makeLivekitJwt, openIdToken } from "./tokens";

export const USER_ID = "@alice:localhost:8448";
export const DEVICE_ID = "ALICEDEVICE";
export const MEMBER_ID = "member-1";
export const ROOM_ID = "!call:localhost:8448";
export const MATRIX_ACCESS_TOKEN = "syt_matrix_access_token_SECRET";

export const OPENID_PATH = `/_matrix/client/v3/user/${encodeURIComponent(USER_ID)}/openid/request_token`;
export const SERVICE_PATH = "/livekit/jwt";
export const GET_TOKEN_PATH = `${SERVICE_PATH}/get_token`;
export const SFU_GET_PATH = `${SERVICE_PATH}/sfu/get`;
export const DELEGATE_PATH = `${SERVICE_PATH}/delegate_delayed_leave`;

export const SFU_URL = "ws://127.0.0.1:7880";

/** A logger that keeps every line, to check what a connection writes. */
export function recordingLogger(lines: string[] = [], prefix = ""): Logger & { lines: string[] } {
  const write =
    (level: string) =>
    (...msg: unknown[]): void => {
      // Whole objects, errors with their causes and fields included, so a secret anywhere in them shows.
      const text = msg.map((m) => (typeof m === "string" ? m : inspect(m, { depth: Infinity }))).join(" ");
      lines.push(`${level} ${prefix}${text}`);
    };
  return {
    lines,
    debug: write("debug"),
    info: write("info"),
    warn: write("warn"),
    error: write("error"),
    getChild: (ns: string) => recordingLogger(lines, `${prefix}${ns} `),
  };
}

const quiet = { debug() {}, info() {}, warn() {}, error() {}, trace() {}, getChild: () => quiet } as never;

/** A real matrix-js-sdk client talking to the loopback homeserver. */
export function matrixClient(server: LoopbackServer): MatrixClient {
  return createClient({
    baseUrl: server.url,
    accessToken: MATRIX_ACCESS_TOKEN,
    userId: USER_ID,
    deviceId: DEVICE_ID,
    logger: quiet,
  });
}

export const JWT = makeLivekitJwt({ sub: "alice-identity", room: "alias-of-the-call" });

/** Homeserver and auth-service answers for the happy path. */
export const answer = {
  openId: (_: RecordedRequest, res: ServerResponse) => sendJson(res, 200, openIdToken()),
  sfuConfig: (_: RecordedRequest, res: ServerResponse) => sendJson(res, 200, { url: SFU_URL, jwt: JWT }),
  status:
    (
      status: number,
      errcode = "M_UNKNOWN",
      extra: Record<string, unknown> = {},
      headers: Record<string, string> = {},
    ) =>
    (_: RecordedRequest, res: ServerResponse) =>
      sendJson(res, status, { errcode, error: `failure ${status}`, ...extra }, headers),
};

export interface Harness {
  server: LoopbackServer;
  room: FakeRoom;
  connection: Connection<FakeRoom>;
  logger: ReturnType<typeof recordingLogger>;
  states: unknown[];
}

/** A Connection with a FakeRoom, a real matrix-js-sdk client and the loopback server as homeserver and auth service. */
export function makeConnection(server: LoopbackServer, opts: Partial<ConnectionOpts<FakeRoom>> = {}): Harness {
  const room = new FakeRoom();
  const logger = recordingLogger();
  const connection = new Connection<FakeRoom>(
    {
      transport: { type: "livekit", livekit_service_url: server.url + SERVICE_PATH },
      client: matrixClient(server),
      roomId: ROOM_ID,
      ownMembershipIdentity: { userId: USER_ID, deviceId: DEVICE_ID, memberId: MEMBER_ID },
      livekitRoomFactory: () => room,
      retry: { maxAttempts: 3, initialDelayMs: 5 },
      timeouts: { openIdTokenMs: 2000, sfuConfigMs: 2000, disconnectMs: 2000 },
      ...opts,
    },
    logger,
  );
  const states: unknown[] = [];
  connection.state$.subscribe((s) => states.push(s));
  return { server, room, connection, logger, states };
}

export { ACCESS_TOKEN };
