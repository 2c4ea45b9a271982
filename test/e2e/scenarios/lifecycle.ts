/** The lifecycle that works: two users in a call, media, a restart (with the JWT reused). */
import { pollUntil, stateNames } from "../support/fixtures";
import { LoopbackProxy } from "../support/proxy";
import { HAPPY, connect, e2e, expectSFUParticipants, recordTiming, scenario } from "../support/scenario";

export function lifecycleScenarios(): void {
  scenario("a. happy path: two users see each other; stop → Stopped and the SFU lists nobody", async () => {
    const roomId = e2e.roomId();
    const alice = await e2e.newUser();
    const bob = await e2e.newUser();
    const a = await connect(alice, roomId, "a (1st user)");
    const b = await connect(bob, roomId, "a (2nd user)");
    const alias = a.rec.livekitAlias!;
    expect(alias).toMatch(/^[A-Za-z0-9+/]{43}$/); // unpadded base64 of a SHA-256
    expect(b.rec.livekitAlias).toBe(alias);
    const [ida, idb] = [a.rec.localIdentity!, b.rec.localIdentity!];
    expect(ida).not.toBe(idb);

    await a.c.waitForParticipants([idb]);
    await b.c.waitForParticipants([ida]);
    expect(await e2e.sfuParticipants(alias)).toEqual([ida, idb].sort());

    // ICE really completed, towards LiveKit's loopback UDP mux (see the README for the local side).
    const [pc] = await alice.peerConnections();
    expect(pc?.connectionState).toBe("connected");
    const udpPort = e2e.env.stack.livekit.main!.udp_port;
    expect(pc?.selectedPair?.remote).toMatchObject({ address: "127.0.0.1", port: udpPort, protocol: "udp" });
    expect(pc?.localCandidates.some((c) => c.address === "127.0.0.1")).toBe(true);
    expect(pc?.iceServers).toEqual(e2e.env.stack.livekit.main!.client_stun_servers);

    await a.c.stop();
    const ra = await a.c.recording();
    expect(stateNames(ra)).toEqual([...HAPPY, "Stopped"]);
    expect(ra.roomState).toBe("disconnected");
    expect(ra.participants.at(-1)?.identities).toEqual([]);
    // Alice's identity list went [] → [bob] → [] and nothing else.
    expect(ra.participants.map((p) => p.identities)).toEqual([[], [idb], []]);
    await b.c.waitForParticipants([]);
    await expectSFUParticipants(alias, [idb]);

    await b.c.stop();
    expect(stateNames(await b.c.recording())).toEqual([...HAPPY, "Stopped"]);
    await expectSFUParticipants(alias, []);
  });

  scenario("a2. media over loopback: a fake camera and microphone reach the SFU and the other user", async () => {
    const roomId = e2e.roomId();
    const alice = await e2e.newUser();
    const bob = await e2e.newUser();
    const a = await connect(alice, roomId, "a2 (1st user)");
    const b = await connect(bob, roomId, "a2 (2nd user)");
    const alias = a.rec.livekitAlias!;
    await a.c.publishFakeMedia({ camera: true, microphone: true });
    const sfu = await pollUntil(
      async () => (await e2e.roomService().listParticipants(alias)).find((p) => p.identity === a.rec.localIdentity),
      (p) => (p?.tracks.length ?? 0) === 2,
      { timeoutMs: 15_000 },
    );
    expect(sfu.value?.tracks.map((t) => t.mimeType.split("/")[0]).sort()).toEqual(["audio", "video"]);
    // Bob subscribes to both (livekit-client auto-subscribes), over his own loopback PeerConnection.
    const subscribed = await pollUntil(
      async () => (await b.c.recording()).remoteTracks[a.rec.localIdentity!] ?? [],
      (ts) => ts.length === 2 && ts.every((t) => t.endsWith("/subscribed")),
      { timeoutMs: 15_000 },
    );
    expect(subscribed.value).toEqual(["audio/microphone/subscribed", "video/camera/subscribed"]);
    await a.c.stop();
    await b.c.stop();
    expect(stateNames(await a.c.recording())).toEqual([...HAPPY, "Stopped"]);
    await expectSFUParticipants(alias, []);
  });

  scenario(
    "d. restart from Stopped reuses the JWT: connected again with no request to the homeserver's OpenID endpoint or the auth service",
    async () => {
      // Counting proxies (they forward everything) in front of Synapse and the jwt service: the page's OpenID
      // request and its /get_token go through them. (The jwt service checks the OpenID token with Synapse's
      // federation API directly, not through the proxy.)
      const hs = await LoopbackProxy.start({ name: "homeserver", target: e2e.env.stack.homeserver.base_url });
      const jwt = await LoopbackProxy.start({ name: "jwt", target: e2e.env.stack.jwt_services.main!.url });
      e2e.addReport("homeserver proxy", () => hs.describe().join("\n"));
      e2e.addReport("jwt proxy", () => jwt.describe().join("\n"));
      /** The requests that a fetch of the SFU config makes, as the proxies saw them. */
      const configRequests = (): string[] => [
        ...hs.describe().filter((r) => /\/openid\/request_token /.test(r)),
        ...jwt.describe().filter((r) => /^\w+ \/(get_token|sfu\/get) /.test(r)),
      ];
      try {
        const u = await e2e.newUser();
        const c = await u.connection({ roomId: e2e.roomId(), baseUrl: hs.url, serviceUrl: jwt.url });
        expect(await c.start()).toEqual({ outcome: "resolved" });
        // The first start fetched the config through the proxies (so they are in the path).
        const openId = `/_matrix/client/v3/user/${encodeURIComponent(u.user.user_id)}/openid/request_token`;
        expect(configRequests()).toEqual([
          `OPTIONS ${openId} → forwarded 204`,
          `POST ${openId} → forwarded 200`,
          "OPTIONS /get_token → forwarded 200",
          "POST /get_token → forwarded 200",
        ]);
        const [hsBefore, jwtBefore] = [hs.requests.length, jwt.requests.length];
        await c.stop();
        const alias = (await c.recording()).livekitAlias!;
        await expectSFUParticipants(alias, []);
        // At once: LiveKit keeps the emptied room for 20 s (the jwt service's departure_timeout), so the old
        // JWT is still good for it.
        expect(await c.start()).toEqual({ outcome: "resolved" });
        // Not one request to either (the OpenID endpoint and the auth service included).
        expect(hs.describe().slice(hsBefore)).toEqual([]);
        expect(jwt.describe().slice(jwtBefore)).toEqual([]);
        const rec = await c.recording();
        expect(stateNames(rec)).toEqual([...HAPPY, "Stopped", "disconnected", "connecting", "connected"]);
        expect(rec.roomState).toBe("connected");
        recordTiming("d (1st start)", rec, 0);
        recordTiming("d (restart, JWT reused)", rec, 1);
        expect(await e2e.sfuParticipants(alias)).toEqual([rec.localIdentity]);
        await c.stop();
        expect(stateNames(await c.recording()).at(-1)).toBe("Stopped");
        await expectSFUParticipants(alias, []);
      } finally {
        await jwt.close();
        await hs.close();
      }
    },
  );
}
