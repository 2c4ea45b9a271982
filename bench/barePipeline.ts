/**
 * The floor: the same work a connection has to do, with nothing around it. An OpenID token from the client,
 * `POST /get_token` for `{url, jwt}`, `room.connect(url, jwt)`; later `room.disconnect()`. No state, no
 * observables, no logging, no retries, no JWT decoding. With a known SFU config it skips both requests.
 */

export interface BareRoom {
  connect(url: string, token: string): Promise<void>;
  disconnect(): Promise<void>;
}

export interface BarePipelineOptions {
  client: { getOpenIdToken(): Promise<unknown> };
  serviceUrl: string;
  roomId: string;
  member: { userId: string; deviceId: string; memberId: string };
  fetch: typeof globalThis.fetch;
  /** When given, no request is made. */
  sfuConfig?: { url: string; jwt: string };
}

/** Connects `room`; resolves with the function that disconnects it. */
export async function barePipeline(room: BareRoom, opts: BarePipelineOptions): Promise<() => Promise<void>> {
  let config = opts.sfuConfig;
  if (!config) {
    const openIdToken = await opts.client.getOpenIdToken();
    const res = await opts.fetch(`${opts.serviceUrl}/get_token`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        room_id: opts.roomId,
        slot_id: "m.call#ROOM",
        openid_token: openIdToken,
        member: {
          id: opts.member.memberId,
          claimed_user_id: opts.member.userId,
          claimed_device_id: opts.member.deviceId,
        },
      }),
    });
    if (!res.ok) throw new Error(`POST /get_token answered ${res.status}`);
    config = (await res.json()) as { url: string; jwt: string };
  }
  await room.connect(config.url, config.jwt);
  return () => room.disconnect();
}
