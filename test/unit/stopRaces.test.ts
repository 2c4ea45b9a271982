/**
 * The races of Element Call's imperative Connection, each as a named test: the statechart must cancel
 * cleanly wherever the STOP lands.
 */
import { ConnectionState } from "../../src";
import { flush } from "../support/fakeRoom";
import { GET_TOKEN_PATH, OPENID_PATH, answer, makeConnection, matrixClient } from "../support/harness";
import { LoopbackServer, hang } from "../support/loopbackServer";
import { openIdToken } from "../support/tokens";
import { waitUntil } from "../support/waitUntil";

const server = LoopbackServer.forThisFile();

const { Initialized, FetchingConfig, Stopped, LivekitDisconnected, LivekitConnecting, LivekitConnected } =
  ConnectionState;

test("stop during the SFU config fetch aborts the HTTP request and never connects", async () => {
  server.always(OPENID_PATH, answer.openId).always(GET_TOKEN_PATH, hang);
  const h = makeConnection(server);
  const started = h.connection.start();
  await waitUntil(() => server.to(GET_TOKEN_PATH).length > 0, "the POST /get_token");
  const aborted = server.nextAbort();
  await h.connection.stop();
  await aborted; // the server saw the socket close
  await started;
  expect(server.to(GET_TOKEN_PATH)[0]!.aborted).toBe(true);
  expect(h.room.connectCalls).toHaveLength(0);
  expect(h.states).toEqual([Initialized, FetchingConfig, Stopped]);
});

test("an SFU config that arrives after the stop is dropped: no connect, state stays Stopped", async () => {
  server.always(OPENID_PATH, answer.openId);
  const config = server.hold(GET_TOKEN_PATH);
  // A fetch that ignores the abort, so the config really does arrive after the stop.
  let lateFetch: Promise<Response> | undefined;
  const fetchIgnoringAbort: typeof fetch = (url, init) => {
    lateFetch = fetch(url, { ...init, signal: undefined });
    return lateFetch;
  };
  const h = makeConnection(server, { fetch: fetchIgnoringAbort });
  void h.connection.start();
  await config.arrival();
  await h.connection.stop();
  await config.answerNext(answer.sfuConfig);
  const response = await lateFetch!;
  expect(response.status).toBe(200); // it did arrive, after the stop had ended the wait for it
  await flush();
  expect(h.room.connectCalls).toHaveLength(0);
  expect(h.states).toEqual([Initialized, FetchingConfig, Stopped]);
});

test("an OpenID token that arrives after the stop is dropped: the auth service is never asked", async () => {
  const token = server.hold(OPENID_PATH);
  server.always(GET_TOKEN_PATH, answer.sfuConfig);
  const client = matrixClient(server);
  let lateToken: Promise<unknown> | undefined;
  const h = makeConnection(server, {
    client: {
      getOpenIdToken: () => {
        const p = client.getOpenIdToken();
        lateToken = p;
        return p;
      },
    },
  });
  void h.connection.start();
  await token.arrival();
  await h.connection.stop();
  await token.answerNext(answer.openId); // matrix-js-sdk's request cannot be aborted; its late result must change nothing
  await expect(lateToken).resolves.toEqual(openIdToken());
  await flush();
  expect(server.to(GET_TOKEN_PATH)).toHaveLength(0);
  expect(h.states).toEqual([Initialized, FetchingConfig, Stopped]);
});

test("stop, start, stop: the last call wins and the connection ends Stopped", async () => {
  server.always(OPENID_PATH, answer.openId).always(GET_TOKEN_PATH, answer.sfuConfig);
  const h = makeConnection(server);
  h.room.autoConnect = "succeed";
  await h.connection.start();
  h.room.holdDisconnect = true;
  const first = h.connection.stop();
  const started = h.connection.start();
  const second = h.connection.stop();
  await flush();
  h.room.holdDisconnect = false;
  h.room.releaseDisconnect();
  await Promise.all([first, started, second]);
  await flush();
  expect(h.connection.state$.value).toBe(Stopped);
  expect(h.room.connectCalls).toHaveLength(1);
});

test("stop during connecting cancels the connect and shows no error before Stopped", async () => {
  server.always(OPENID_PATH, answer.openId).always(GET_TOKEN_PATH, answer.sfuConfig);
  const h = makeConnection(server);
  const started = h.connection.start();
  await waitUntil(() => h.room.connectPending, "a pending connect");
  expect(h.connection.state$.value).toBe(LivekitConnecting);
  await h.connection.stop();
  await expect(started).resolves.toBeUndefined();
  expect(h.states).toEqual([Initialized, FetchingConfig, LivekitDisconnected, LivekitConnecting, Stopped]);
  expect(h.room.disconnectCalls).toBe(1);
  expect(h.room.state).toBe("disconnected");
});

test("a late stop, sent in the same tick as the config arrives, still cancels the connect", async () => {
  server.always(OPENID_PATH, answer.openId).always(GET_TOKEN_PATH, answer.sfuConfig);
  const h = makeConnection(server);
  void h.connection.start();
  // Stop as soon as the machine enters Livekit (the connect has been called, its lock not yet taken).
  const stopped = new Promise<void>((resolve) => {
    const sub = h.connection.actor.subscribe((s) => {
      if (s.matches("Livekit")) {
        sub.unsubscribe();
        resolve(h.connection.stop());
      }
    });
  });
  await stopped;
  await flush();
  expect(h.room.state).toBe("disconnected");
  expect(h.states).toEqual([Initialized, FetchingConfig, LivekitDisconnected, Stopped]);
  expect(h.states.some((s) => s instanceof Error)).toBe(false);
});

test("a connect that succeeds after the stop changes nothing", async () => {
  server.always(OPENID_PATH, answer.openId).always(GET_TOKEN_PATH, answer.sfuConfig);
  const h = makeConnection(server);
  h.room.holdDisconnect = true;
  h.room.cancelOnDisconnect = false;
  void h.connection.start();
  await waitUntil(() => h.room.connectPending, "a pending connect");
  const stopped = h.connection.stop();
  await flush();
  expect(h.connection.actor.getSnapshot().value).toEqual({ Stopping: "ThenStop" });
  h.room.succeedConnect(); // the connect wins the race against the disconnect
  await flush();
  h.room.releaseDisconnect();
  await stopped;
  expect(h.states).toEqual([Initialized, FetchingConfig, LivekitDisconnected, LivekitConnecting, Stopped]);
  expect(h.room.state).toBe("disconnected");
});

test("stop before start emits Stopped and start afterwards still connects", async () => {
  server.always(OPENID_PATH, answer.openId).always(GET_TOKEN_PATH, answer.sfuConfig);
  const h = makeConnection(server);
  await h.connection.stop();
  h.room.autoConnect = "succeed";
  await h.connection.start();
  expect(h.states).toEqual([
    Initialized,
    Stopped,
    FetchingConfig,
    LivekitDisconnected,
    LivekitConnecting,
    LivekitConnected,
  ]);
  await h.connection.stop();
});

test("stop is idempotent: overlapping and repeated stops disconnect once and resolve at Stopped", async () => {
  server.always(OPENID_PATH, answer.openId).always(GET_TOKEN_PATH, answer.sfuConfig);
  const h = makeConnection(server);
  h.room.autoConnect = "succeed";
  await h.connection.start();
  await Promise.all([h.connection.stop(), h.connection.stop()]);
  await h.connection.stop();
  expect(h.room.disconnectCalls).toBe(1);
  expect(h.states.filter((s) => s === Stopped)).toHaveLength(1);
});

test("start() called while stopping waits for Stopped, then starts again", async () => {
  server.always(OPENID_PATH, answer.openId).always(GET_TOKEN_PATH, answer.sfuConfig);
  const h = makeConnection(server);
  h.room.autoConnect = "succeed";
  await h.connection.start();
  h.room.holdDisconnect = true;
  const stopped = h.connection.stop();
  const restarted = h.connection.start();
  await flush();
  h.room.releaseDisconnect();
  h.room.holdDisconnect = false;
  await stopped;
  await restarted;
  expect(h.connection.state$.value).toBe(LivekitConnected);
  await h.connection.stop();
});
