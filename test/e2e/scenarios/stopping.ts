/** A stop wherever it lands: during the config fetch, during the connect. */
import { livekitAliasFor, pollUntil, stateNames } from "../support/fixtures";
import { e2e, expectSFUParticipants, expectPostHeld, jwtPostsHeld, scenario } from "../support/scenario";

export function stoppingScenarios(): void {
  describe("b. stop during connecting", () => {
    scenario("b1. stop as soon as state$ shows connecting: → Stopped, no error, the SFU lists nobody", async () => {
      const u = await e2e.newUser();
      const c = await u.connection({ roomId: e2e.roomId(), stopOn: "connecting" });
      expect(await c.start()).toEqual({ outcome: "resolved" }); // start() resolves when stopped first
      await c.waitForState("Stopped", 15_000);
      const rec = await c.recording();
      expect(stateNames(rec)).toEqual(["Initialized", "FetchingConfig", "disconnected", "connecting", "Stopped"]);
      expect(rec.states.filter((s) => "error" in s)).toEqual([]);
      expect(rec.stops[0]?.stateAtCall).toBe("connecting");
      expect(rec.roomState).toBe("disconnected");
      // Nothing arrives late: the room stays disconnected and state$ stays Stopped.
      await new Promise((r) => setTimeout(r, 1500));
      expect(stateNames(await c.recording()).at(-1)).toBe("Stopped");
      expect((await c.recording()).roomState).toBe("disconnected");
      await expectSFUParticipants(rec.livekitAlias!, []);
    });

    scenario(
      "b2. stop once the SFU has accepted the join (signalConnected, ICE under way): same, and LiveKit drops the participant",
      async () => {
        const u = await e2e.newUser();
        const c = await u.connection({ roomId: e2e.roomId(), stopOn: "signalConnected" });
        expect(await c.start()).toEqual({ outcome: "resolved" });
        await c.waitForState("Stopped", 15_000);
        const rec = await c.recording();
        expect(stateNames(rec)).toEqual(["Initialized", "FetchingConfig", "disconnected", "connecting", "Stopped"]);
        expect(rec.states.filter((s) => "error" in s)).toEqual([]);
        expect(rec.stops[0]?.stateAtCall).toBe("connecting");
        await new Promise((r) => setTimeout(r, 1500));
        expect(stateNames(await c.recording()).at(-1)).toBe("Stopped");
        const ms = await expectSFUParticipants(rec.livekitAlias!, []);
        console.log(`b2: LiveKit listed nobody ${ms} ms after the check began (1.5 s after Stopped)`);
      },
    );
  });

  scenario(
    "g. stop during FetchingConfig (a proxy holds the jwt request): → Stopped, the request aborted, no WebSocket",
    async () => {
      // A proxy in front of the main jwt service holds every POST (the CORS preflight goes through).
      const jwt = await jwtPostsHeld();
      try {
        const u = await e2e.newUser();
        const roomId = e2e.roomId();
        const c = await u.connection({ roomId, serviceUrl: jwt.url });
        await c.startInBackground();
        const held = await expectPostHeld(jwt);
        expect(stateNames(await c.recording())).toEqual(["Initialized", "FetchingConfig"]);
        await c.stop();
        // Chromium closes the socket of the aborted fetch: the proxy sees the client go before any answer.
        const aborted = await pollUntil(
          async () => held.outcome,
          (o) => o === "aborted by client",
          { timeoutMs: 5_000, intervalMs: 20 },
        );
        expect(aborted.value).toBe("aborted by client");
        await new Promise((r) => setTimeout(r, 500)); // nothing arrives late
        const rec = await c.recording();
        expect(stateNames(rec)).toEqual(["Initialized", "FetchingConfig", "Stopped"]);
        expect(rec.states.filter((s) => "error" in s)).toEqual([]);
        expect(rec.stops[0]?.stateAtCall).toBe("FetchingConfig");
        expect(rec.starts[0]?.outcome).toBe("resolved"); // start() resolves when stopped first
        expect(rec.roomState).toBe("disconnected");
        expect(rec.roomEvents).toEqual([]);
        expect(rec.livekitAlias).toBeUndefined();
        expect(u.websockets).toEqual([]); // no WebSocket at all, so none to the SFU
        // No /sfu/get fallback and no retry after the abort; the jwt service never got the POST.
        expect(jwt.describe()).toEqual(["OPTIONS /get_token → forwarded 200", "POST /get_token → aborted by client"]);
        // So it created no room: LiveKit has none under the alias the jwt service would have used.
        expect(await e2e.roomService().listRooms([livekitAliasFor(roomId)])).toEqual([]);
        const heldMs = held.abortedAt! - held.receivedAt;
        console.log(`g: the POST was held ${heldMs} ms; the proxy saw the abort ${aborted.elapsedMs} ms after stop()`);
      } finally {
        await jwt.close();
      }
    },
  );
}
