/** The lifecycle that works: two users in a call, media, a restart. */
import { pollUntil, stateNames } from "../support/fixtures";
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

  scenario("d. restart from Stopped connects again (the whole pipeline, same Room)", async () => {
    const u = await e2e.newUser();
    const c = await u.connection({ roomId: e2e.roomId() });
    expect(await c.start()).toEqual({ outcome: "resolved" });
    await c.stop();
    const alias = (await c.recording()).livekitAlias!;
    await expectSFUParticipants(alias, []);
    expect(await c.start()).toEqual({ outcome: "resolved" });
    const rec = await c.recording();
    expect(stateNames(rec)).toEqual([...HAPPY, "Stopped", ...HAPPY.slice(1)]);
    expect(rec.roomState).toBe("connected");
    recordTiming("d (1st start)", rec, 0);
    recordTiming("d (restart)", rec, 1);
    expect(await e2e.sfuParticipants(alias)).toEqual([rec.localIdentity]);
    await c.stop();
    expect(stateNames(await c.recording()).at(-1)).toBe("Stopped");
    await expectSFUParticipants(alias, []);
  });
}
