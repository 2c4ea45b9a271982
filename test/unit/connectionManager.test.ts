/**
 * The ConnectionManager facade: real HTTP on 127.0.0.1 (two auth services on one loopback server, by path), a
 * real matrix-js-sdk client, a FakeRoom per transport.
 */
import { BehaviorSubject } from "rxjs";
import { ConnectionManager, ConnectionState, type ConnectionManagerData, type LivekitTransportConfig } from "../../src";
import { FakeRoom, flush } from "../support/fakeRoom";
import {
  answer,
  DEVICE_ID,
  matrixClient,
  MEMBER_ID,
  OPENID_PATH,
  recordingLogger,
  ROOM_ID,
  USER_ID,
} from "../support/harness";
import { LoopbackServer } from "../support/loopbackServer";
import { waitUntil } from "../support/waitUntil";

const server = LoopbackServer.forThisFile();

const transport = (name: string): LivekitTransportConfig => ({
  type: "livekit",
  livekit_service_url: `${server.url}/${name}/livekit/jwt`,
});

function makeManager() {
  const rooms = new Map<string, FakeRoom[]>();
  const local$ = new BehaviorSubject<{ transport: LivekitTransportConfig } | null>(null);
  const remote$ = new BehaviorSubject<LivekitTransportConfig[]>([]);
  const logger = recordingLogger();
  const manager = new ConnectionManager<FakeRoom>(
    {
      localTransport$: local$,
      remoteTransports$: remote$,
      client: matrixClient(server),
      roomId: ROOM_ID,
      ownMembershipIdentity: { userId: USER_ID, deviceId: DEVICE_ID, memberId: MEMBER_ID },
      livekitRoomFactory: (t) => {
        const room = new FakeRoom();
        room.autoConnect = "succeed";
        rooms.set(t.livekit_service_url, [...(rooms.get(t.livekit_service_url) ?? []), room]);
        return room;
      },
      retry: { maxAttempts: 1 },
    },
    logger,
  );
  const data: ConnectionManagerData<FakeRoom>[] = [];
  manager.connectionManagerData$.subscribe((d) => data.push(d));
  return { manager, rooms, local$, remote$, logger, data };
}

test("smoke: one connection per transport, local first; removing one stops it", async () => {
  server.always(OPENID_PATH, answer.openId);
  for (const n of ["a", "b"]) {
    server.always(`/${n}/livekit/jwt/get_token`, answer.sfuConfig);
  }
  const h = makeManager();
  h.local$.next({ transport: transport("a") });
  h.remote$.next([transport("b"), transport("a"), transport("b")]);
  await waitUntil(
    () =>
      h.data
        .at(-1)!
        .getConnections()
        .every((c) => c.state$.value === ConnectionState.LivekitConnected) &&
      h.data.at(-1)!.getConnections().length === 2,
    "both connected",
  );
  const last = h.data.at(-1)!;
  expect(last.getConnections().map((c) => c.transport.livekit_service_url)).toEqual([
    transport("a").livekit_service_url,
    transport("b").livekit_service_url,
  ]);
  h.remote$.next([transport("a")]);
  await waitUntil(() => h.rooms.get(transport("b").livekit_service_url)![0]!.disconnectCalls === 1, "b disconnected");
  await flush();
  expect(h.data.at(-1)!.getConnections()).toHaveLength(1);
  console.log(h.logger.lines.join("\n"));
  await h.manager.stop();
  expect(h.manager.actor.getSnapshot().value).toBe("Stopped");
  expect(h.rooms.get(transport("a").livekit_service_url)![0]!.disconnectCalls).toBe(1);
});
