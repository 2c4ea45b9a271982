/**
 * The live view's JSON (what its context and event panes show), in Node; the view itself is tested in Chromium
 * (test/e2e, scenario v1).
 */
import { ConnectionError } from "livekit-client";
import { createActor, createMachine } from "xstate";
import { Secret } from "../../src";
import { viewJson } from "../../src/view";
import { ACCESS_TOKEN, answer, GET_TOKEN_PATH, JWT, makeConnection, OPENID_PATH } from "../support/harness";
import { LoopbackServer } from "../support/loopbackServer";

const server = LoopbackServer.forThisFile();

test("secrets show as [redacted], errors as name, message and code, actors by id; cycles are cut", () => {
  const actor = createActor(createMachine({ id: "m" }), { id: "the-actor" });
  const cyclic: Record<string, unknown> = { name: "loop" };
  cyclic.self = cyclic;
  const shared = { n: 1 };
  const error = Object.assign(new TypeError("bad transport"), { code: "SOME_CODE" });
  const shown = viewJson({
    jwt: new Secret(JWT),
    error,
    actor,
    cyclic,
    twice: [shared, shared],
    fn: () => 1,
    big: 10n,
  });
  expect(JSON.parse(shown)).toEqual({
    jwt: "[redacted]",
    error: { error: "TypeError", message: "bad transport", code: "SOME_CODE" },
    actor: "[actor the-actor]",
    cyclic: { name: "loop", self: "[circular]" },
    twice: [{ n: 1 }, { n: 1 }], // the same object twice is not a cycle
    big: "10",
  });
  expect(shown).not.toContain(JWT);
});

test("a real connection's context after a refused connect shows no JWT or access token", async () => {
  server.always(OPENID_PATH, answer.openId).always(GET_TOKEN_PATH, answer.sfuConfig);
  const h = makeConnection(server, { retry: { maxAttempts: 1 }, reconnect: false });
  h.room.autoConnect = ConnectionError.notAllowed(`invalid token: ${JWT}`, 401);
  await h.connection.start().catch(() => {});
  const shown = viewJson(h.connection.actor.getSnapshot().context, 2);
  expect(shown).toContain('"jwt": "[redacted]"');
  expect(shown).toMatch(/"error": "LivekitConnectionError"/);
  for (const secret of [JWT, JWT.split(".")[2]!, ACCESS_TOKEN]) expect(shown).not.toContain(secret);
  await h.connection.stop();
});
