import type { RemoteParticipant, Room } from "livekit-client";
import type { Connection } from "./Connection";
import type { ConnectionManagerData } from "./ConnectionManager";
import type { LivekitRoomLike, LivekitTransportConfig } from "./types";

/** The part of matrix-js-sdk's `CallMembership` the matching reads. */
export interface CallMembershipParts {
  userId: string;
  deviceId: string;
  /** The LiveKit identity the member connects with (for `m.rtc.member`: a hash of user, device and member id). */
  rtcBackendIdentity: string;
}

/** A membership and the transport it publishes on (none: it names no LiveKit transport). */
export interface MembershipWithTransport<M extends CallMembershipParts = CallMembershipParts> {
  membership: M;
  transport?: LivekitTransportConfig;
}

/** A remote member: its connection (its transport's), and its LiveKit participant there once it is in the room. */
export interface MatchedMember<M extends CallMembershipParts = CallMembershipParts, R extends LivekitRoomLike = Room> {
  membership: M;
  transport: LivekitTransportConfig | undefined;
  connection: Connection<R> | null;
  participant: RemoteParticipant | null;
}

/**
 * Element Call's `MatrixLivekitMembers` matching: each membership but the local user's own device gets the
 * connection for its own transport and the participant there whose identity is its `rtcBackendIdentity`. A member
 * seen on another SFU than the one its membership names is not matched (its participant is null). Pure: pair
 * memberships and data of the same moment (Element Call pairs them by epoch).
 */
export function matchMembershipsToParticipants<M extends CallMembershipParts, R extends LivekitRoomLike = Room>(
  memberships: readonly MembershipWithTransport<M>[],
  data: ConnectionManagerData<R>,
  localUser: { userId: string; deviceId: string },
): MatchedMember<M, R>[] {
  return memberships
    .filter(({ membership }) => membership.userId !== localUser.userId || membership.deviceId !== localUser.deviceId)
    .map(({ membership, transport }) => {
      if (!transport) return { membership, transport, connection: null, participant: null };
      const participant = data
        .getParticipantsForTransport(transport)
        .find((p) => p.identity === membership.rtcBackendIdentity);
      return {
        membership,
        transport,
        connection: data.getConnectionForTransport(transport),
        participant: participant ?? null,
      };
    });
}
