/**
 * The homeserver's side of a scenario, read from Node with a user's access token: room state and MSC4140
 * delayed events (Synapse 1.163.2 serves their management routes under the unstable prefix only).
 */
import type { E2eUser } from "./env";

/** One of `GET …/org.matrix.msc4140/delayed_events`'s entries (the fields a scenario reads). */
export interface DelayedEventInfo {
  delay_id: string;
  room_id: string;
  type: string;
  state_key?: string;
  delay: number;
  /** When the delay last (re)started, ms since the epoch. */
  running_since: number;
}

const authed = (user: E2eUser) => ({ authorization: `Bearer ${user.access_token}` });

/** `GET /_matrix/client/v3/rooms/{room}/state/{type}/{key}`: the content, or undefined for a 404. */
export async function roomStateContent(
  baseUrl: string,
  user: E2eUser,
  roomId: string,
  type: string,
  stateKey: string,
): Promise<Record<string, unknown> | undefined> {
  const url = `${baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/${encodeURIComponent(type)}/${encodeURIComponent(stateKey)}`;
  const res = await fetch(url, { headers: authed(user) });
  const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (res.status === 404) return undefined;
  if (res.status !== 200) throw new Error(`GET room state answered ${res.status} ${String(body.errcode)}`);
  return body;
}

/** The user's scheduled delayed event of this id (undefined once sent, cancelled or expired). */
export async function pendingDelayedEvent(
  baseUrl: string,
  user: E2eUser,
  delayId: string,
): Promise<DelayedEventInfo | undefined> {
  const res = await fetch(`${baseUrl}/_matrix/client/unstable/org.matrix.msc4140/delayed_events`, {
    headers: authed(user),
  });
  if (res.status !== 200) throw new Error(`GET delayed_events answered ${res.status}`);
  const body = (await res.json()) as { delayed_events?: DelayedEventInfo[] };
  return (body.delayed_events ?? []).find((d) => d.delay_id === delayId);
}

/** `POST …/delayed_events/{id}/send` (no access token needed, as MSC4140 has it), as an app sends its leave. */
export async function sendDelayedEventNow(baseUrl: string, delayId: string): Promise<number> {
  const res = await fetch(
    `${baseUrl}/_matrix/client/unstable/org.matrix.msc4140/delayed_events/${encodeURIComponent(delayId)}/send`,
    { method: "POST", headers: { "content-type": "application/json" }, body: "{}" },
  );
  await res.text();
  return res.status;
}
