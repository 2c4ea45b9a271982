import { ConnectionError, DisconnectReason } from "livekit-client";
import {
  CallError,
  ConnectionLostError,
  ErrorCategory,
  ErrorCode,
  FailToGetOpenIdToken,
  InsufficientCapacityError,
  LivekitConnectionError,
  NoMatrix2AuthorizationService,
  PeerConnectionTimeoutError,
  SFURoomCreationRestrictedError,
  UnknownCallError,
  mapConnectError,
  toCallError,
} from "../../src";
import { toConnectionLostError } from "../../src/errors";

describe("mapConnectError (livekit-client's own ConnectionError factories)", () => {
  test.each([
    ["503 from the validate call", ConnectionError.serverUnreachable("node limit", 503), InsufficientCapacityError],
    [
      "503 in the context of an internal error",
      ConnectionError.internal("unknown ws error", { status: 503 }),
      InsufficientCapacityError,
    ],
    // A validate 200 only says that the token was fine (element-call #3813): not a capacity problem.
    ["200 (validate accepted the token)", ConnectionError.websocket("ws failed", 200), LivekitConnectionError],
    ["429 (connection limits)", ConnectionError.internal("x", { status: 429 }), InsufficientCapacityError],
    [
      "a JOIN_FAILURE leave request (room full)",
      ConnectionError.leaveRequest("leave", DisconnectReason.JOIN_FAILURE),
      InsufficientCapacityError,
    ],
    [
      "404 'requested room does not exist'",
      ConnectionError.notAllowed("requested room does not exist", 404),
      SFURoomCreationRestrictedError,
    ],
    [
      "a signal time-out",
      ConnectionError.timeout("room connection has timed out (signal)"),
      PeerConnectionTimeoutError,
    ],
    [
      "the peer-connection time-out",
      ConnectionError.internal("could not establish pc connection"),
      PeerConnectionTimeoutError,
    ],
    ["401 not allowed", ConnectionError.notAllowed("invalid token", 401), LivekitConnectionError],
    [
      "a DUPLICATE_IDENTITY leave request",
      ConnectionError.leaveRequest("leave", DisconnectReason.DUPLICATE_IDENTITY),
      LivekitConnectionError,
    ],
    ["a cancelled connect", ConnectionError.cancelled("Client initiated disconnect"), LivekitConnectionError],
    ["a plain Error", new Error("LiveKit doesn't seem to be supported on this browser"), UnknownCallError],
    ["a thrown string", "boom", UnknownCallError],
  ])("%s", (_name, thrown, expected) => {
    const mapped = mapConnectError(thrown);
    expect(mapped).toBeInstanceOf(expected);
    expect(mapped.cause).toBe(thrown);
  });

  test("LivekitConnectionError names the reason from the numeric reason, not the stale reasonName", () => {
    const inner = ConnectionError.notAllowed("forbidden", 403);
    const rewrapped = ConnectionError.serverUnreachable("wrapped", 403);
    // livekit-client re-wraps signal errors copying reason and status but not reasonName:
    (rewrapped as { reason: number }).reason = inner.reason;
    const mapped = mapConnectError(rewrapped) as LivekitConnectionError;
    expect(mapped.reasonName).toBe("NotAllowed");
    expect(mapped.localisedMessage).toContain("NotAllowed");
  });

  test("a CallError passes through unchanged", () => {
    const e = new InsufficientCapacityError();
    expect(mapConnectError(e)).toBe(e);
  });
});

describe("error classes", () => {
  test.each([
    {
      error: new FailToGetOpenIdToken(new Error("x")),
      code: ErrorCode.OPEN_ID_ERROR,
      category: ErrorCategory.CONFIGURATION_ISSUE,
      title: "Something went wrong",
    },
    {
      error: new NoMatrix2AuthorizationService(new Error("x")),
      code: ErrorCode.NO_MATRIX_2_AUTHORIZATION_SERVICE,
      category: ErrorCategory.CONFIGURATION_ISSUE,
      title: "Something went wrong",
    },
    {
      error: new InsufficientCapacityError(),
      code: ErrorCode.INSUFFICIENT_CAPACITY_ERROR,
      category: ErrorCategory.UNKNOWN,
      title: "Insufficient capacity",
    },
    {
      error: new SFURoomCreationRestrictedError(),
      code: ErrorCode.SFU_ERROR,
      category: ErrorCategory.CONFIGURATION_ISSUE,
      title: "Failed to create call",
    },
    {
      error: new PeerConnectionTimeoutError(),
      code: ErrorCode.SFU_ERROR,
      category: ErrorCategory.NETWORK_CONNECTIVITY,
      title: "Connection timeout",
    },
    {
      error: new LivekitConnectionError("WebSocket"),
      code: ErrorCode.SFU_ERROR,
      category: ErrorCategory.NETWORK_CONNECTIVITY,
      title: "Failed to connect to Livekit server",
    },
    {
      error: new ConnectionLostError(new Error("x")),
      code: ErrorCode.CONNECTION_LOST_ERROR,
      category: ErrorCategory.NETWORK_CONNECTIVITY,
      title: "Connection lost",
    },
    {
      error: new UnknownCallError(new Error("x")),
      code: ErrorCode.UNKNOWN_ERROR,
      category: ErrorCategory.UNKNOWN,
      title: "Something went wrong",
    },
  ])("$error.name has its code, category, and message = title", ({ error, code, category, title }) => {
    expect(error).toBeInstanceOf(CallError);
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe(code);
    expect(error.category).toBe(category);
    expect(error.message).toBe(title);
    expect(error.localisedTitle).toBe(title);
    expect(error.localisedMessage).toEqual(expect.any(String));
    expect(error.name).toBe(error.constructor.name);
  });
});

describe("NoMatrix2AuthorizationService", () => {
  test("has Element Call's code, category, title and message, and keeps the failure of /get_token as cause", () => {
    const failure = new Error("POST https://auth.example.org/get_token answered 404 M_UNRECOGNIZED");
    const error = new NoMatrix2AuthorizationService(failure);
    expect(error.code).toBe("NO_MATRIX_2_0_AUTHORIZATION_SERVICE");
    expect(error.category).toBe(ErrorCategory.CONFIGURATION_ISSUE);
    expect(error.message).toBe("Something went wrong");
    expect(error.localisedTitle).toBe("Something went wrong");
    expect(error.localisedMessage).toBe("The authorization service for your media server (SFU) is out of date.");
    expect(error.name).toBe("NoMatrix2AuthorizationService");
    expect(error.cause).toBe(failure);
    expect(error).toBeInstanceOf(CallError);
    expect(toCallError(error)).toBe(error);
  });
});

describe("toCallError", () => {
  test("keeps a CallError, and wraps the same other error in the same UnknownCallError each time", () => {
    const capacity = new InsufficientCapacityError();
    expect(toCallError(capacity)).toBe(capacity);
    const plain = new Error("from an actor of one's own");
    const wrapped = toCallError(plain);
    expect(wrapped).toBeInstanceOf(UnknownCallError);
    expect(wrapped.cause).toBe(plain);
    expect(toCallError(plain)).toBe(wrapped); // so state$ shows it once, and start() rejects with what it shows
    expect(toCallError("text")).toBeInstanceOf(UnknownCallError);
  });
});

test("mapConnectError scrubs the JWT it is given from the error it maps (LiveKit's 401 body quotes it)", () => {
  const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtZSJ9.c2lnbmF0dXJlLW9mLXRoZS1qd3Q";
  const mapped = mapConnectError(
    ConnectionError.notAllowed(`invalid token: ${jwt}, error: signature is invalid`, 401),
    jwt,
  );
  expect(mapped).toBeInstanceOf(LivekitConnectionError);
  expect(String((mapped.cause as Error).message)).toBe("invalid token: [redacted], error: signature is invalid");
});

describe("ConnectionLostError", () => {
  test("tells the user they were disconnected", () => {
    expect(new ConnectionLostError().localisedMessage).toBe("You were disconnected from the call.");
  });

  test("toConnectionLostError wraps the same last failure in the same error each time, a new one in a new error", () => {
    const last = mapConnectError(ConnectionError.internal("attempt 3 failed"));
    const lost = toConnectionLostError(last);
    expect(lost).toBeInstanceOf(ConnectionLostError);
    expect(lost.cause).toBe(last);
    expect(toConnectionLostError(last)).toBe(lost); // so state$ shows the failure once
    expect(toConnectionLostError(mapConnectError(ConnectionError.internal("attempt 3 failed")))).not.toBe(lost);
    // A failure that is no CallError has its own UnknownCallError wrapper too: the two are not mixed up.
    const plain = new Error("from an actor of one's own");
    expect(toCallError(plain)).toBeInstanceOf(UnknownCallError);
    expect(toConnectionLostError(plain)).toBeInstanceOf(ConnectionLostError);
    expect(toConnectionLostError(plain).cause).toBe(plain);
  });
});
