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
