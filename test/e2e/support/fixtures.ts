/**
 * Test-side helpers: a browser context per user with the test page loaded, a handle per `Connection` in that
 * page (driven through `window.e2e`), LiveKit's server API for the server-side truth, and bounded polling.
 */
import { poll } from "../../support/waitUntil";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { RoomServiceClient, type ParticipantInfo } from "livekit-server-sdk";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import type {
  ConnectionParams,
  DelayedLeaveParams,
  ManagerParams,
  ManagerRecording,
  MatchedMemberRecord,
  MatrixParams,
  MembershipParams,
  PeerConnectionReport,
  Recording,
  StateRecord,
  ViewReport,
} from "../page/api";
import { readE2eEnv, type E2eEnv, type E2eUser } from "./env";

/** A jwt service of the stack (`legacy` and `old` are older auth services on main's LiveKit). */
export type Variant = "main" | "restricted" | "full" | "limited" | "legacy" | "old";

/**
 * Hides LiveKit JWTs, Matrix access tokens and Synapse's delay ids (`syd_…`: whoever knows one can send or cancel
 * the delayed event, no access token needed) in anything a test prints (LiveKit echoes rejected tokens).
 */
export function redact(text: string): string {
  return text
    .replace(/eyJ[\w-]+\.[\w-]+\.[\w-]+/g, "[jwt]")
    .replace(/\bsyt_[\w-]+/g, "[access token]")
    .replace(/\bsyd_[\w-]+/g, "[delay id]")
    .replace(/("(?:access_token|delay_id|delayId)"\s*:\s*")[^"]*"/g, '$1[redacted]"')
    .replace(/(access_token=)[^&\s"]+/g, "$1[redacted]");
}

/**
 * The LiveKit room name ("alias") lk-jwt-service v0.5.0 derives for a Matrix room: unpadded base64 of the SHA-256
 * of the JSON array `[roomId, slotId]` with Go's escaping of `<`, `>`, `&` (scripts/stack/lk-jwt-standin.mjs).
 */
export function livekitAliasFor(roomId: string, slotId = "m.call#ROOM"): string {
  const json = JSON.stringify([roomId, slotId])
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/&/g, "\\u0026");
  return createHash("sha256").update(json).digest("base64").replace(/=+$/, "");
}

/** `state$` values as a flat list: a ConnectionState value, or `Error:<name>/<code>` for a CallError. */
export function stateNames(rec: Recording): string[] {
  return rec.states.map((s: StateRecord) => ("state" in s ? s.state : `Error:${s.error}/${s.code}`));
}

export function timeOf(rec: Recording, state: string, nth = 0): number | undefined {
  return rec.states.filter((s) => "state" in s && s.state === state)[nth]?.t;
}

/** test/support's `poll`, every 250 ms unless told otherwise (the e2e reads go to a browser or LiveKit). */
export const pollUntil = <T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  { timeoutMs, intervalMs = 250 }: { timeoutMs: number; intervalMs?: number },
): Promise<{ value: T; ok: boolean; elapsedMs: number }> => poll(read, done, { timeoutMs, intervalMs });

/** Tails a log file from the moment of construction. */
class LogTail {
  private readonly start: number;
  constructor(private readonly path: string) {
    this.start = LogTail.size(path);
  }
  private static size(path: string): number {
    try {
      return statSync(path).size;
    } catch {
      return 0;
    }
  }
  /** Every line written since construction (at most the last 4 MiB). */
  lines(): string[] {
    const end = LogTail.size(this.path);
    if (end <= this.start) return [];
    const fd = openSync(this.path, "r");
    try {
      const len = Math.min(end - this.start, 4 * 1024 * 1024);
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, end - len);
      return buf.toString("utf8").split("\n").filter(Boolean);
    } finally {
      closeSync(fd);
    }
  }
  read(maxLines = 60): string {
    const end = LogTail.size(this.path);
    if (end <= this.start) return "(nothing)";
    const fd = openSync(this.path, "r");
    try {
      const len = Math.min(end - this.start, 256 * 1024);
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, end - len);
      return buf.toString("utf8").split("\n").slice(-maxLines).join("\n");
    } finally {
      closeSync(fd);
    }
  }
}

/** One Connection inside a user's page. */
export class ConnectionHandle {
  constructor(
    readonly page: Page,
    readonly id: string,
  ) {}

  start(): Promise<{ outcome: "resolved" | "rejected"; error?: string }> {
    return this.page.evaluate((id) => window.e2e.start(id), this.id);
  }
  startInBackground(): Promise<void> {
    return this.page.evaluate((id) => window.e2e.startInBackground(id), this.id);
  }
  stop(): Promise<void> {
    return this.page.evaluate((id) => window.e2e.stop(id), this.id);
  }
  waitForState(state: string, timeoutMs = 30_000): Promise<void> {
    return this.page.evaluate(([id, s, t]) => window.e2e.waitForState(id, s, t), [this.id, state, timeoutMs] as const);
  }
  waitForParticipants(identities: string[], timeoutMs = 30_000): Promise<void> {
    return this.page.evaluate(([id, ids, t]) => window.e2e.waitForParticipants(id, ids, t), [
      this.id,
      identities,
      timeoutMs,
    ] as const);
  }
  recording(): Promise<Recording> {
    return this.page.evaluate((id) => window.e2e.recording(id), this.id);
  }
  publishFakeMedia(what: { camera?: boolean; microphone?: boolean }): Promise<void> {
    return this.page.evaluate(([id, w]) => window.e2e.publishFakeMedia(id, w), [this.id, what] as const);
  }
  updateDelayedLeave(delayedLeave: DelayedLeaveParams | null): Promise<void> {
    return this.page.evaluate(([id, d]) => window.e2e.updateDelayedLeave(id, d), [this.id, delayedLeave] as const);
  }
  /** Mounts the live statechart view of this connection in the page (`src/view.ts`), recording its changes. */
  mountView(): Promise<void> {
    return this.page.evaluate((id) => window.e2e.mountView(id), this.id);
  }
  /** What the view did and shows; whether it shows a credential is checked in the page (they never leave it). */
  viewReport(): Promise<ViewReport> {
    return this.page.evaluate((id) => window.e2e.viewReport(id), this.id);
  }
}

/** One ConnectionManager inside a user's page. */
export class ManagerHandle {
  constructor(
    readonly page: Page,
    readonly id: string,
  ) {}

  /** New transports: the local one's and the remote ones' `livekit_service_url`s. */
  setTransports(local: string | null, remote: string[]): Promise<void> {
    return this.page.evaluate(([id, l, r]) => window.e2e.setTransports(id, l, r), [this.id, local, remote] as const);
  }
  stop(): Promise<void> {
    return this.page.evaluate((id) => window.e2e.stopManager(id), this.id);
  }
  recording(): Promise<ManagerRecording> {
    return this.page.evaluate((id) => window.e2e.managerRecording(id), this.id);
  }
  matchMembers(memberships: MembershipParams[]): Promise<MatchedMemberRecord[]> {
    return this.page.evaluate(([id, ms]) => window.e2e.matchMembers(id, ms), [this.id, memberships] as const);
  }
  /** Mounts the live statechart view of this manager in the page (`src/view.ts`), recording its changes. */
  mountView(): Promise<void> {
    return this.page.evaluate((id) => window.e2e.mountView(id), this.id);
  }
  /** What the view did and shows; whether it shows a credential is checked in the page (they never leave it). */
  viewReport(): Promise<ViewReport> {
    return this.page.evaluate((id) => window.e2e.viewReport(id), this.id);
  }
}

/** A user: a browser context of their own, with the test page loaded. */
export class UserPage {
  readonly logs: string[] = [];
  /** Every WebSocket the page opened, in order (`page.on("websocket")`), as its URL without the query. */
  readonly websockets: string[] = [];
  constructor(
    private readonly e2e: E2e,
    readonly user: E2eUser,
    readonly context: BrowserContext,
    readonly page: Page,
  ) {
    page.on("console", (m) => this.logs.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => this.logs.push(`pageerror: ${e.message}`));
    // (the query holds LiveKit's access token and the join request)
    page.on("websocket", (ws) => this.websockets.push(ws.url().replace(/[?#].*$/, "")));
  }

  peerConnections(): Promise<PeerConnectionReport[]> {
    return this.page.evaluate(() => window.e2e.peerConnections());
  }

  /** This user's Matrix client parameters, for the page's own matrix-js-sdk client. */
  get matrix(): MatrixParams {
    return {
      baseUrl: this.e2e.env.stack.homeserver.base_url,
      accessToken: this.user.access_token,
      userId: this.user.user_id,
      deviceId: this.user.device_id,
    };
  }

  /** A real Matrix room, created by the page's matrix-js-sdk client; returns its id. */
  createMatrixRoom(): Promise<string> {
    return this.page.evaluate((m) => window.e2e.matrixCreateRoom(m), this.matrix);
  }

  /** A state event, sent by the page's matrix-js-sdk client. */
  sendState(roomId: string, type: string, content: object, stateKey: string): Promise<void> {
    return this.page.evaluate(([m, r, t, c, k]) => window.e2e.matrixSendState(m, r, t, c, k), [
      this.matrix,
      roomId,
      type,
      content,
      stateKey,
    ] as const);
  }

  /** A delayed state event (MSC4140), scheduled by the page's matrix-js-sdk client; returns its delay id. */
  scheduleDelayedState(roomId: string, type: string, content: object, stateKey: string, delayMs: number) {
    return this.page.evaluate(([m, r, t, c, k, d]) => window.e2e.matrixScheduleDelayedState(m, r, t, c, k, d), [
      this.matrix,
      roomId,
      type,
      content,
      stateKey,
      delayMs,
    ] as const);
  }

  /**
   * Crashes the page's renderer (CDP `Page.crash`): no `pagehide`/`beforeunload` (on which livekit-client
   * disconnects, sending a leave), no JavaScript at all any more; the browser closes the page's sockets.
   */
  async crash(): Promise<void> {
    const cdp = await this.context.newCDPSession(this.page);
    const crashed = this.page.waitForEvent("crash", { timeout: 10_000 });
    void cdp.send("Page.crash").catch(() => {}); // (its answer never comes: the renderer is gone)
    await crashed;
  }

  /** A Connection for this user to the given variant's jwt service (a fresh memberId each time). */
  async connection(p: Partial<ConnectionParams> & { variant?: Variant; roomId: string }): Promise<ConnectionHandle> {
    const { variant = "main", ...rest } = p;
    const params: ConnectionParams = {
      baseUrl: this.e2e.env.stack.homeserver.base_url,
      accessToken: this.user.access_token,
      userId: this.user.user_id,
      deviceId: this.user.device_id,
      serviceUrl: this.e2e.env.stack.jwt_services[variant]!.url,
      memberId: `m-${randomBytes(4).toString("hex")}`,
      ...rest,
    };
    const id = await this.page.evaluate((x) => window.e2e.create(x), params);
    return new ConnectionHandle(this.page, id);
  }

  /** A ConnectionManager for this user (a fresh memberId unless given), following the transports given. */
  async manager(
    p: Partial<ManagerParams> & Pick<ManagerParams, "roomId" | "local" | "remote">,
  ): Promise<ManagerHandle> {
    const params: ManagerParams = {
      baseUrl: this.e2e.env.stack.homeserver.base_url,
      accessToken: this.user.access_token,
      userId: this.user.user_id,
      deviceId: this.user.device_id,
      memberId: `m-${randomBytes(4).toString("hex")}`,
      ...p,
    };
    const id = await this.page.evaluate((x) => window.e2e.createManager(x), params);
    return new ManagerHandle(this.page, id);
  }
}

/** The shared browser (launched by globalSetup) and everything a test opens in it. */
export class E2e {
  readonly env: E2eEnv = readE2eEnv();
  private browser?: Browser;
  private users: UserPage[] = [];
  private nextUser = 0;
  private tails = new Map<string, LogTail>();
  private extras = new Map<string, () => string>();

  async open(): Promise<void> {
    this.browser = await chromium.connect(this.env.wsEndpoint);
  }

  async close(): Promise<void> {
    await this.browser?.close();
  }

  /** Starts collecting what the stack logs from now on (for the failure report). */
  beginTest(): void {
    this.users = [];
    this.tails = new Map();
    this.extras = new Map();
    for (const [name, lk] of Object.entries(this.env.stack.livekit))
      this.tails.set(`livekit-${name}`, new LogTail(lk.log));
    for (const [name, j] of Object.entries(this.env.stack.jwt_services))
      this.tails.set(`lk-jwt-${name}`, new LogTail(j.log));
  }

  /** Adds a log file (from now on) to the current test's failure report. */
  addLog(name: string, path: string): void {
    this.tails.set(name, new LogTail(path));
  }

  /** The JSON lines a stack jwt service (`lk-jwt-<variant>`) logged since the test began, parsed. */
  jwtLog(variant: Variant = "main"): Record<string, unknown>[] {
    return (this.tails.get(`lk-jwt-${variant}`)?.lines() ?? []).map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return { unparsed: l };
      }
    });
  }

  /** Adds a section (computed when the report is made, e.g. what a proxy saw) to the current test's failure report. */
  addReport(name: string, describe: () => string): void {
    this.extras.set(name, describe);
  }

  /** Closes the test's browser contexts. */
  async endTest(): Promise<void> {
    await Promise.all(this.users.map((u) => u.context.close().catch(() => {})));
  }

  /** The browser consoles and the stack's log lines of the current test, redacted. */
  report(): string {
    const parts = this.users.map(
      (u, i) => `--- browser console of user ${i} (${u.user.user_id}) ---\n${u.logs.join("\n")}`,
    );
    for (const [name, tail] of this.tails) {
      const text = tail.read();
      if (text !== "(nothing)") parts.push(`--- ${name} log during the test ---\n${text}`);
    }
    for (const [name, describe] of this.extras) parts.push(`--- ${name} ---\n${describe()}`);
    return redact(parts.join("\n"));
  }

  /** A new user (from globalSetup's pool) in a new browser context with the test page loaded. */
  async newUser(): Promise<UserPage> {
    if (!this.browser) throw new Error("E2e.open() first");
    return this.openUserPage(this.env.users[this.nextUser++ % this.env.users.length]!);
  }

  /** Another browser context (a second tab or device session) for the same Matrix user and device as `u`. */
  async sameUserAs(u: UserPage): Promise<UserPage> {
    return this.openUserPage(u.user);
  }

  private async openUserPage(user: E2eUser): Promise<UserPage> {
    if (!this.browser) throw new Error("E2e.open() first");
    const context = await this.browser.newContext();
    const page = await context.newPage();
    const u = new UserPage(this, user, context, page);
    this.users.push(u);
    // E2E_LIVEKIT_LOG=debug|trace turns up livekit-client's logging in the page (shown when a test fails).
    const lklog = process.env.E2E_LIVEKIT_LOG;
    await page.goto(lklog ? `${this.env.pageUrl}?lklog=${encodeURIComponent(lklog)}` : this.env.pageUrl);
    await page.waitForFunction(() => window.e2e !== undefined, undefined, { timeout: 15_000 });
    return u;
  }

  roomService(variant: Variant = "main"): RoomServiceClient {
    const { livekit, jwt_services, livekit_api_key, livekit_api_secret } = this.env.stack;
    // (legacy and old have no LiveKit of their own: main's)
    const lk = livekit[variant] ?? livekit[jwt_services[variant]!.livekit]!;
    return new RoomServiceClient(lk.http_url, livekit_api_key, livekit_api_secret);
  }

  /** Identities the SFU lists in the room (none when the room does not exist). */
  async sfuParticipants(alias: string, variant: Variant = "main"): Promise<string[]> {
    const rs = this.roomService(variant);
    const rooms = await rs.listRooms([alias]);
    if (rooms.length === 0) return [];
    const ps: ParticipantInfo[] = await rs.listParticipants(alias);
    return ps.map((p) => p.identity).sort();
  }

  /** A fresh (fake) Matrix room id for the call. */
  roomId(): string {
    return `!e2e-${Date.now().toString(36)}-${randomBytes(4).toString("hex")}:${this.env.stack.homeserver.server_name}`;
  }
}
