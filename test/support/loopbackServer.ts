import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { waitUntil } from "./waitUntil";

export interface RecordedRequest {
  method: string;
  path: string;
  /** The query string, `?` included, or "". */
  query: string;
  headers: IncomingMessage["headers"];
  body: string;
  json: unknown;
  at: number;
  /** Set when the client closed the connection before a response was sent. */
  aborted: boolean;
}

export type Handler = (req: RecordedRequest, res: ServerResponse) => void;

/** The one way the tests hold a server's answer: requests kept unanswered, in arrival order, until answered. */
export class HeldRequests {
  private readonly queue: { req: RecordedRequest; res: ServerResponse }[] = [];
  /** The route handler that holds a request, until it is answered or its client goes away. */
  readonly handler: Handler = (req, res) => {
    const entry = { req, res };
    this.queue.push(entry);
    res.once("close", () => {
      const i = this.queue.indexOf(entry);
      if (i >= 0) this.queue.splice(i, 1);
    });
  };

  constructor(private readonly path: string) {}

  /** Requests held now (one whose client went away is no longer held). */
  get count(): number {
    return this.queue.length;
  }

  /** Waits for a request to arrive (one held already counts). */
  async arrival(timeoutMs?: number): Promise<void> {
    await waitUntil(() => this.queue.length > 0, `a request to ${this.path}`, timeoutMs);
  }

  /** Answers the oldest held request with `respond`, waiting for one to arrive first. */
  async answerNext(respond: Handler): Promise<void> {
    await this.arrival();
    const { req, res } = this.queue.shift()!;
    respond(req, res);
  }

  /** Answers every request held now with `respond`. */
  answerAll(respond: Handler): void {
    for (const { req, res } of this.queue.splice(0)) respond(req, res);
  }

  /** Closes the connection of every request held now, unanswered. */
  dropAll(): void {
    for (const { res } of this.queue.splice(0)) res.destroy();
  }
}

/** A real HTTP server on 127.0.0.1 whose routes the test programs; every request is recorded. */
export class LoopbackServer {
  readonly requests: RecordedRequest[] = [];
  private readonly routes = new Map<string, Handler[]>();
  private readonly fallback = new Map<string, Handler>();
  private abortWaiters: (() => void)[] = [];

  private readonly server: Server = createServer((req, res) => this.dispatch(req, res));
  private origin: string | undefined;

  /** `http://127.0.0.1:<port>`, once listening. */
  get url(): string {
    if (!this.origin) throw new Error("the loopback server is not listening yet");
    return this.origin;
  }

  static async start(): Promise<LoopbackServer> {
    const self = new LoopbackServer();
    await self.listen();
    return self;
  }

  /**
   * The server of a test file: listening before its first test, its routes and records cleared before each
   * test (before the file's own beforeEach), closed after the last.
   */
  static forThisFile(): LoopbackServer {
    const self = new LoopbackServer();
    beforeAll(() => self.listen());
    beforeEach(() => self.reset());
    afterAll(() => self.close());
    return self;
  }

  private async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.origin = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Answers the next request to `path` with `handler` (queued, first in first out). */
  once(path: string, handler: Handler): this {
    const queue = this.routes.get(path) ?? [];
    queue.push(handler);
    this.routes.set(path, queue);
    return this;
  }

  /** Holds every request to `path` that no `once` handler takes, until the test answers it. */
  hold(path: string): HeldRequests {
    const held = new HeldRequests(path);
    this.always(path, held.handler);
    return held;
  }

  /** Answers every request to `path` that no `once` handler takes. */
  always(path: string, handler: Handler): this {
    this.fallback.set(path, handler);
    return this;
  }

  to(path: string): RecordedRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  /** Resolves when a request's client has gone away before being answered. */
  nextAbort(): Promise<void> {
    return new Promise((resolve) => this.abortWaiters.push(resolve));
  }

  reset(): void {
    this.requests.length = 0;
    this.routes.clear();
    this.fallback.clear();
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private dispatch(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      const url = req.url ?? "/";
      const path = url.split("?")[0]!;
      const recorded: RecordedRequest = {
        method: req.method ?? "",
        path,
        query: url.slice(path.length),
        headers: req.headers,
        body,
        json,
        at: Date.now(),
        aborted: false,
      };
      this.requests.push(recorded);
      res.on("close", () => {
        if (!res.writableEnded) {
          recorded.aborted = true;
          const waiters = this.abortWaiters;
          this.abortWaiters = [];
          for (const w of waiters) w();
        }
      });
      const handler = this.routes.get(path)?.shift() ?? this.fallback.get(path);
      if (handler) handler(recorded, res);
      else json404(res);
    });
  }
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

function json404(res: ServerResponse): void {
  sendJson(res, 404, { errcode: "M_UNRECOGNIZED", error: "Unrecognized request" });
}

/** A handler that never answers (the client's abort or time-out ends it). */
export const hang: Handler = () => {};
