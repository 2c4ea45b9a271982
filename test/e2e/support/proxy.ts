/**
 * A small loopback HTTP + WebSocket-upgrade proxy (Node `http`, an ephemeral port on 127.0.0.1) that the e2e
 * scenarios put in front of a stack service to change what the page sees:
 *  - `hold`: matching requests are not forwarded until `release()`; a client that gives up first (an aborted
 *    `fetch`) is recorded as `aborted by client` (its socket closed before any response);
 *  - `inject`: matching requests and upgrades are answered by the proxy itself (e.g. 429) and never forwarded;
 *  - `rewriteJson`: a JSON answer is rewritten on its way back (e.g. the `url` of the jwt service's answer).
 * Everything else is forwarded to `target` unchanged. Every request is recorded (`requests`).
 */
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";

export interface ProxiedRequest {
  method: string;
  path: string;
  /** The pathname only (no query: LiveKit's carries the access token). */
  pathname: string;
}

export interface InjectedAnswer {
  status: number;
  body: string;
  headers?: Record<string, string>;
}

export interface ProxyOptions {
  /** Where to forward, e.g. `http://127.0.0.1:8080`. */
  target: string;
  /** A name for reports. */
  name: string;
  /** Hold matching HTTP requests until `release()` (or until the client goes away). */
  hold?: (r: ProxiedRequest) => boolean;
  /** Answer matching HTTP requests and WebSocket upgrades with this instead of forwarding them. */
  inject?: (r: ProxiedRequest & { upgrade: boolean }) => InjectedAnswer | undefined;
  /** Rewrite the JSON body of a forwarded 2xx answer. */
  rewriteJson?: (r: ProxiedRequest, body: unknown) => unknown;
}

export type ProxyOutcome =
  "pending" | "held" | "forwarded" | "injected" | "aborted by client" | "upstream error" | "upgrade forwarded";

export interface ProxyRecord {
  n: number;
  method: string;
  /** Pathname only. */
  pathname: string;
  upgrade: boolean;
  /** ms since the proxy started. */
  receivedAt: number;
  outcome: ProxyOutcome;
  /** The status the client got (forwarded or injected). */
  status?: number;
  /** ms since the proxy started at which the client's socket closed before an answer was sent. */
  abortedAt?: number;
}

/** The reason phrase for the few statuses the proxies inject. */
const REASON: Record<number, string> = {
  429: "Too Many Requests",
  503: "Service Unavailable",
  500: "Internal Server Error",
};

export class LoopbackProxy {
  readonly requests: ProxyRecord[] = [];
  private readonly held: (() => void)[] = [];
  private holding = true;
  private readonly sockets = new Set<Socket>();
  private readonly t0 = Date.now();

  private constructor(
    readonly options: ProxyOptions,
    private readonly server: Server,
  ) {}

  static async start(options: ProxyOptions): Promise<LoopbackProxy> {
    const server = createServer();
    const proxy = new LoopbackProxy(options, server);
    server.on("request", (req, res) => proxy.onRequest(req, res));
    server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => proxy.onUpgrade(req, socket, head));
    server.on("connection", (s: Socket) => {
      proxy.sockets.add(s);
      s.once("close", () => proxy.sockets.delete(s));
    });
    await new Promise<void>((ok, fail) => {
      server.once("error", fail);
      server.listen(0, "127.0.0.1", () => ok());
    });
    return proxy;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** Forwards every held request, and stops holding new ones. */
  release(): void {
    this.holding = false;
    for (const go of this.held.splice(0)) go();
  }

  /** The records as one line each, for assertions and failure reports. */
  describe(): string[] {
    return this.requests.map(
      (r) =>
        `${r.method} ${r.pathname}${r.upgrade ? " (upgrade)" : ""} → ${r.outcome}${r.status !== undefined ? ` ${r.status}` : ""}`,
    );
  }

  async close(): Promise<void> {
    this.holding = false;
    this.held.splice(0);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((ok) => {
      this.server.close(() => ok());
      this.server.closeAllConnections();
    });
  }

  private now(): number {
    return Date.now() - this.t0;
  }

  private record(req: IncomingMessage, upgrade: boolean): { rec: ProxyRecord; r: ProxiedRequest } {
    const path = req.url ?? "/";
    const r: ProxiedRequest = { method: req.method ?? "GET", path, pathname: new URL(path, "http://x").pathname };
    const rec: ProxyRecord = {
      n: this.requests.length,
      method: r.method,
      pathname: r.pathname,
      upgrade,
      receivedAt: this.now(),
      outcome: "pending",
    };
    this.requests.push(rec);
    return { rec, r };
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const { rec, r } = this.record(req, false);
    // A client that goes away before it got an answer (Chromium closes the socket of an aborted fetch).
    res.once("close", () => {
      if (!res.writableEnded) {
        rec.outcome = "aborted by client";
        rec.abortedAt = this.now();
      }
    });
    const injected = this.options.inject?.({ ...r, upgrade: false });
    if (injected) {
      rec.outcome = "injected";
      rec.status = injected.status;
      req.resume();
      res.writeHead(injected.status, { "content-type": "text/plain; charset=utf-8", ...injected.headers });
      res.end(injected.body);
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.once("end", () => {
      const body = Buffer.concat(chunks);
      if (this.holding && this.options.hold?.(r)) {
        rec.outcome = "held";
        this.held.push(() => {
          if (rec.outcome === "held") this.forward(req, res, r, rec, body);
        });
      } else this.forward(req, res, r, rec, body);
    });
  }

  private forward(req: IncomingMessage, res: ServerResponse, r: ProxiedRequest, rec: ProxyRecord, body: Buffer): void {
    if (res.destroyed) return;
    const target = new URL(this.options.target);
    const headers = { ...req.headers, host: target.host };
    const up = httpRequest(
      { host: target.hostname, port: target.port, method: r.method, path: r.path, headers },
      (ures) => {
        rec.outcome = "forwarded";
        rec.status = ures.statusCode;
        const status = ures.statusCode ?? 502;
        const isJson = /json/.test(String(ures.headers["content-type"] ?? ""));
        if (!this.options.rewriteJson || !isJson || status < 200 || status > 299) {
          res.writeHead(status, ures.headers);
          ures.pipe(res);
          return;
        }
        const parts: Buffer[] = [];
        ures.on("data", (c: Buffer) => parts.push(c));
        ures.once("end", () => {
          const original = Buffer.concat(parts);
          let rewritten = original;
          try {
            rewritten = Buffer.from(
              JSON.stringify(this.options.rewriteJson!(r, JSON.parse(original.toString("utf8")))),
            );
          } catch {
            // not JSON after all (e.g. the empty body of a CORS preflight's answer): pass it on unchanged
          }
          const out = { ...ures.headers, "content-length": String(rewritten.length) };
          delete out["transfer-encoding"];
          res.writeHead(status, out);
          res.end(rewritten);
        });
      },
    );
    up.once("error", (e) => {
      rec.outcome = "upstream error";
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
      res.end(`proxy: ${e.message}`);
    });
    res.once("close", () => up.destroy());
    up.end(body);
  }

  private onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const { rec, r } = this.record(req, true);
    socket.on("error", () => {});
    const injected = this.options.inject?.({ ...r, upgrade: true });
    if (injected) {
      rec.outcome = "injected";
      rec.status = injected.status;
      const body = Buffer.from(injected.body);
      const headers = { "content-type": "text/plain; charset=utf-8", ...injected.headers };
      socket.end(
        [
          `HTTP/1.1 ${injected.status} ${REASON[injected.status] ?? "Error"}`,
          ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
          `content-length: ${body.length}`,
          "connection: close",
          "",
          "",
        ].join("\r\n") + body.toString("utf8"),
      );
      return;
    }
    const target = new URL(this.options.target);
    const up = connect(Number(target.port), target.hostname, () => {
      rec.outcome = "upgrade forwarded";
      const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(lines.join("\r\n") + "\r\n\r\n");
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    this.sockets.add(up);
    up.once("close", () => {
      this.sockets.delete(up);
      socket.destroy();
    });
    up.on("error", () => {
      if (rec.outcome === "pending") rec.outcome = "upstream error";
      socket.destroy();
    });
    socket.once("close", () => up.destroy());
  }
}
