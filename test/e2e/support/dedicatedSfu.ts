/**
 * A LiveKit of a test's own (plus a jwt-service stand-in pointing at it), on ports of its own, for scenarios
 * that kill the SFU: the stack's LiveKits are shared by every scenario and must never be killed.
 *
 * The LiveKit config is the one scripts/stack/stack.sh writes for `main` (127.0.0.1 binds, node_ip 127.0.0.1,
 * loopback candidates on `lo`, one UDP port, no ICE/TCP, STUN pointed at the stack's loopback address, the
 * stack's key/secret, `room.auto_create: false`); the stand-in gets the env vars stack.sh gives it. The
 * processes are children of the test process: `stop()` (and `stopAllDedicatedSfus()`, for afterAll) kill them,
 * and a process `exit` hook SIGKILLs whatever is left if the test process ends another way.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RoomServiceClient } from "livekit-server-sdk";
import { poll } from "../../support/waitUntil";
import type { StackJson } from "./env";
import { ROOT, freeTcpPort, freeUdpPort, stackCacheDir } from "./stackAndBrowser";

const STANDIN = join(ROOT, "scripts/stack/lk-jwt-standin.mjs");

export function livekitServerBinary(): string {
  return join(stackCacheDir(), "bin", "livekit-server");
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(p: ChildProcess): void {
  running.add(p);
  p.once("exit", () => running.delete(p));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const c of running) if (c.pid) process.kill(c.pid, "SIGKILL");
    });
  }
}

const instances = new Set<DedicatedSfu>();

/** Stops every DedicatedSfu still running (for afterAll). */
export async function stopAllDedicatedSfus(): Promise<void> {
  await Promise.all([...instances].map((i) => i.stop()));
}

function tail(path: string, lines = 30): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

export class DedicatedSfu {
  private livekit?: ChildProcess;
  private jwt?: ChildProcess;
  /** How many times LiveKit was started. */
  livekitStarts = 0;
  /**
   * When LiveKit last became ready (`Date.now()` in this process, at the first 200 from its HTTP port; polled
   * every 20 ms, so at most ≈ 20 ms after it really was).
   */
  livekitReadyAt?: number;

  private constructor(
    readonly stack: StackJson,
    readonly dir: string,
    readonly lkPort: number,
    readonly udpPort: number,
    readonly jwtPort: number,
  ) {}

  /** Starts LiveKit and its jwt stand-in on fresh ports and waits until both answer. */
  static async start(stack: StackJson, name = "dedicated"): Promise<DedicatedSfu> {
    const dir = mkdtempSync(join(tmpdir(), `matrixrtc-e2e-${name}-`));
    const lkPort = await freeTcpPort();
    let jwtPort = await freeTcpPort();
    while (jwtPort === lkPort) jwtPort = await freeTcpPort();
    const sfu = new DedicatedSfu(stack, dir, lkPort, await freeUdpPort(), jwtPort);
    instances.add(sfu);
    try {
      sfu.writeConfig();
      await sfu.startLivekit();
      await sfu.startJwt();
    } catch (e) {
      await sfu.stop();
      throw e;
    }
    return sfu;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.lkPort}`;
  }
  get httpUrl(): string {
    return `http://127.0.0.1:${this.lkPort}`;
  }
  get jwtUrl(): string {
    return `http://127.0.0.1:${this.jwtPort}`;
  }
  get livekitLog(): string {
    return join(this.dir, "livekit.log");
  }
  get jwtLog(): string {
    return join(this.dir, "lk-jwt.log");
  }
  /** LiveKit's pid while it runs (undefined once it exited or was killed: a killed process has no exit code). */
  get livekitPid(): number | undefined {
    const p = this.livekit;
    return p && p.exitCode === null && p.signalCode === null ? p.pid : undefined;
  }

  roomService(): RoomServiceClient {
    return new RoomServiceClient(this.httpUrl, this.stack.livekit_api_key, this.stack.livekit_api_secret);
  }

  /** Identities LiveKit lists in the room (none when the room does not exist). */
  async participants(alias: string): Promise<string[]> {
    const rs = this.roomService();
    if ((await rs.listRooms([alias])).length === 0) return [];
    return (await rs.listParticipants(alias)).map((p) => p.identity).sort();
  }

  /** `kill -9` LiveKit, and wait until it is gone. */
  async killLivekit(): Promise<void> {
    const p = this.livekit;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((ok) => {
      p.once("exit", () => ok());
      p.kill("SIGKILL");
    });
  }

  /** Starts LiveKit again on the same ports (after `killLivekit()`). */
  async restartLivekit(): Promise<void> {
    await this.killLivekit();
    await this.startLivekit();
  }

  /** Kills both processes and removes the run dir. Idempotent. */
  async stop(): Promise<void> {
    instances.delete(this);
    await Promise.all(
      [this.livekit, this.jwt].map(
        (p) =>
          new Promise<void>((ok) => {
            if (!p || p.exitCode !== null || p.signalCode !== null) return ok();
            p.once("exit", () => ok());
            p.kill("SIGKILL");
          }),
      ),
    );
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The stack's own livekit-main.yaml (scripts/stack/stack.sh writes every LiveKit config), on this SFU's ports. */
  private writeConfig(): void {
    let config = readFileSync(this.stack.livekit.main!.config, "utf8");
    for (const [line, value] of [
      [/^port: \d+$/m, `port: ${this.lkPort}`],
      [/^ {2}udp_port: \d+$/m, `  udp_port: ${this.udpPort}`],
      [/^ {2}tcp_port: \d+$/m, "  tcp_port: 0"],
    ] as const) {
      if (!line.test(config)) throw new Error(`${this.stack.livekit.main!.config} has no line ${line}`);
      config = config.replace(line, value);
    }
    const header = "# test/e2e/support/dedicatedSfu.ts: the stack's livekit-main.yaml on other ports\n";
    writeFileSync(join(this.dir, "livekit.yaml"), header + config, { mode: 0o600 });
  }

  private spawnLogged(cmd: string, args: string[], log: string, env?: NodeJS.ProcessEnv): ChildProcess {
    const fd = openSync(log, "a");
    try {
      const p = spawn(cmd, args, { stdio: ["ignore", fd, fd], env: env ?? process.env, cwd: this.dir });
      track(p);
      return p;
    } finally {
      closeSync(fd);
    }
  }

  private async startLivekit(): Promise<void> {
    this.livekitStarts++;
    writeFileSync(this.livekitLog, `---- start #${this.livekitStarts} ----\n`, { flag: "a" });
    this.livekit = this.spawnLogged(
      livekitServerBinary(),
      ["--config", join(this.dir, "livekit.yaml")],
      this.livekitLog,
    );
    await this.waitReady("livekit", this.livekit, `${this.httpUrl}/`, this.livekitLog);
    this.livekitReadyAt = Date.now();
  }

  private async startJwt(): Promise<void> {
    const env = {
      ...process.env,
      LIVEKIT_URL: this.wsUrl,
      LIVEKIT_KEY: this.stack.livekit_api_key,
      LIVEKIT_SECRET: this.stack.livekit_api_secret,
      LIVEKIT_JWT_BIND: `127.0.0.1:${this.jwtPort}`,
      LIVEKIT_FULL_ACCESS_HOMESERVERS: this.stack.homeserver.server_name,
      LIVEKIT_INSECURE_SKIP_VERIFY_TLS: "YES_I_KNOW_WHAT_I_AM_DOING",
    };
    this.jwt = this.spawnLogged(process.execPath, [STANDIN], this.jwtLog, env);
    await this.waitReady("lk-jwt stand-in", this.jwt, `${this.jwtUrl}/healthz`, this.jwtLog);
  }

  /** Polls `url` until 200 (every 20 ms, bounded: 20 s), failing early if the process exits. */
  private async waitReady(what: string, p: ChildProcess, url: string, log: string): Promise<void> {
    const exited = (): boolean => p.exitCode !== null || p.signalCode !== null;
    const { value: last, ok } = await poll(
      async () => {
        if (exited()) return "exited";
        try {
          return String((await fetch(url, { signal: AbortSignal.timeout(2000) })).status);
        } catch (e) {
          return e instanceof Error ? e.message : String(e);
        }
      },
      (status) => status === "200" || status === "exited",
      { timeoutMs: 20_000, intervalMs: 20 },
    );
    if (last === "exited") {
      throw new Error(
        `dedicated ${what} exited (${p.exitCode ?? p.signalCode}) before it was ready; log ${log}:\n${tail(log)}`,
      );
    }
    if (!ok)
      throw new Error(`dedicated ${what} not ready after 20 s (last ${url} → ${last}); log ${log}:\n${tail(log)}`);
  }
}
