export {
  connectionMachine,
  DEFAULT_JWT_MARGIN_MS,
  DEFAULT_RECONNECT_POLICY,
  type DelayedLeave,
  type ReconnectPolicy,
  type ConnectionMachine,
  type ConnectionMachineContext,
  type ConnectionMachineEvent,
  type ConnectionMachineInput,
  type ConnectionMachineTag,
  type ActorInput,
  type ConnectRoomInput,
  type RequestSFUConfigInput,
  type OpenIDToken,
  type RoomConnectionState,
  type Sealed,
  type SFUCredentials,
} from "../machines/connection.machine";
export { createConnectionActor, type ConnectionActorOptions } from "./createConnectionActor";
export { connectionActors, connectionDepsOf, PhaseTimeoutError, type ConnectionDeps } from "./actors";
export { DEFAULT_TIMEOUTS } from "./options";
export { Connection, type Behavior, type ConnectionOpts } from "./Connection";
export {
  ConnectionManager,
  ConnectionManagerData,
  type ConnectionManagerOpts,
  type LocalTransportWithSFUConfig,
} from "./ConnectionManager";
export {
  matchMembershipsToParticipants,
  type CallMembershipParts,
  type MatchedMember,
  type MembershipWithTransport,
} from "./matchMembers";
export { prepareConnection } from "./managerActors";
export {
  connectionManagerMachine,
  desiredTransports,
  type ConnectionManagerMachine,
  type ConnectionManagerContext,
  type ConnectionManagerEvent,
  type ConnectionManagerInput,
  type ConnectionManagerTag,
  type DesiredTransport,
  type SlotEntry,
} from "../machines/connectionManager.machine";
export {
  connectionSlotMachine,
  type ConnectionSlotMachine,
  type ConnectionSlotContext,
  type ConnectionSlotEvent,
  type ConnectionSlotInput,
  type PrepareConnectionInput,
} from "../machines/connectionSlot.machine";
export { ConnectionState, connectionStateOf } from "./connectionState";
export {
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
  isCallError,
  mapConnectError,
  toCallError,
  type CallErrorName,
} from "./errors";
export {
  CALL_SLOT_ID,
  SFUConfigError,
  delegateDelayedLeave,
  getSFUConfigWithOpenID,
  requestSFUConfig,
  type SFUConfigRequestOptions,
} from "./authService";
export { decodeLivekitJwt, type LivekitJwtClaims } from "./livekitJwt";
export { requestOpenIdToken, type OpenIdRequestOptions } from "./openId";
export { InsecureTransportError } from "./transportUrl";
export { DEFAULT_RETRY, RetryTooLateError, shouldRetry } from "./retry";
export { Secret, reveal } from "./secret";
export type {
  CallMembershipIdentityParts,
  LivekitRoomLike,
  LivekitTransportConfig,
  Logger,
  Clock,
  JwtEndpointVersion,
  OpenIDClientParts,
  ReconnectOptions,
  RetryOptions,
  SFUConfig,
  TimeoutOptions,
} from "./types";
