/**
 * Issue 12's live statechart view (`src/view.ts`, `matrixrtc-connection-machine/view`) in Chromium, following a
 * real call: the page mounts it on a real `Connection` (v1) or `ConnectionManager` (v2) and records, with a
 * MutationObserver, every change of its panels; the test reads what a person would see (the highlighted states,
 * the transition just taken, the events, the context) at the moments that matter, and takes a screenshot.
 */
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { ViewChange, ViewPanel, ViewReport } from "../page/api";
import { DedicatedSfu } from "../support/dedicatedSfu";
import { pollUntil, type ConnectionHandle, type ManagerHandle } from "../support/fixtures";
import { e2e, expectPostHeld, jwtPostsHeld, scenario, timings } from "../support/scenario";
import { ROOT } from "../support/stackAndBrowser";

/** Where the screenshot goes (a test artefact; `test-results/` is ignored by git). */
const SCREENSHOT = join(ROOT, "test-results", "live-view-connected.png");
/** The README's copy, written when `E2E_UPDATE_DOCS=1` (so that a test run does not change a tracked file). */
const DOCS_SCREENSHOT = join(ROOT, "docs", "live-view.png");
/** The measure under which the v scenarios' wall times are printed. */
const WALL_TIME = "v scenarios, wall time (ms, Node clock)";

/** The connection chart's states a person sees the view highlight on the happy path, each change in order. */
const HAPPY_VIEW = [
  "Initialized",
  "FetchingConfig.RequestingOpenIdToken",
  "FetchingConfig.RequestingSFUConfig",
  "Livekit.room.disconnected Livekit.delayedLeave.NotRequested",
  "Livekit.room.connecting Livekit.delayedLeave.NotRequested",
  "Livekit.room.connected Livekit.delayedLeave.NotRequested",
  "Stopping.ThenStop",
  "Stopped",
];
const CONNECTED = "Livekit.room.connected Livekit.delayedLeave.NotRequested";

/** The one panel of a connection's view (it has no child machines). */
function onlyPanel(report: ViewReport): ViewPanel {
  expect(report.panels.map((p) => p.machine)).toEqual(["connection"]);
  return report.panels[0]!;
}

/** The `data-value`s a panel showed, each change in order. */
const valuesOf = (changes: ViewChange[], actor: string): string[] =>
  changes.filter((c) => c.actor === actor && c.kind === "value").map((c) => c.value);

/**
 * What a person reads as "the transition just taken": one transition marked, drawn in the state it leaves, and
 * the `last:` line naming the same one.
 */
function expectTaken(panel: ViewPanel, source: string, text: string): void {
  expect(panel.taken).toEqual([{ source, text }]);
  expect(panel.last).toBe(`last: ${source} —${text}`);
}

/** An events-list line: `<ms> ms  [<source> → ]<actor>: <TYPE>[ <payload>]`; the index of the first of `type`. */
function eventIndex(events: string[], actor: string, type: string): number {
  return events.findIndex((e) => new RegExp(`^ *\\d+ ms {2}${actor}: ${type}$`).test(e));
}

/**
 * Fails, naming no credential, if the view shows one (the page looked for each in the view's HTML). Every read
 * of the view goes through this before anything of it is compared, so that a failing comparison cannot print a
 * credential.
 */
function expectNoCredential(r: ViewReport): ViewReport {
  const { viewHasJwt, viewHasOpenIdToken, viewHasAccessToken, contextJwts } = r.credentials;
  const jwtInContext = contextJwts.includes("(the JWT)");
  expect({ viewHasJwt, viewHasOpenIdToken, viewHasAccessToken, jwtInContext }).toEqual({
    viewHasJwt: false,
    viewHasOpenIdToken: false,
    viewHasAccessToken: false,
    jwtInContext: false,
  });
  return r;
}

const readView = async (h: ConnectionHandle | ManagerHandle): Promise<ViewReport> =>
  expectNoCredential(await h.viewReport());

/** Polls the view until `done` holds (bounded); fails with what it shows (state names only). */
async function waitForView(
  h: ConnectionHandle | ManagerHandle,
  done: (r: ViewReport) => boolean,
  what: string,
  timeoutMs = 15_000,
): Promise<ViewReport> {
  const r = await pollUntil(() => h.viewReport(), done, { timeoutMs, intervalMs: 50 });
  if (!r.ok) {
    const shown = r.value.panels.map((p) => `${p.actor} (${p.machine}) ${p.status}: ${p.value}`).join("; ");
    throw new Error(`gave up after ${timeoutMs} ms waiting for the view to show ${what}; it shows ${shown}`);
  }
  return expectNoCredential(r.value);
}

export function liveViewScenarios(): void {
  describe("v. the live statechart view (issue 12)", () => {
    scenario(
      "v1. a Connection's view follows a real call: Initialized, FetchingConfig (held), Livekit.room.connected, Stopped; the transition taken, START and STOP listed, no credential shown",
      async () => {
        const started = Date.now();
        // The jwt service's POST is held, so that the view can be read while the config is being fetched.
        const jwt = await jwtPostsHeld();
        try {
          const u = await e2e.newUser();
          await u.page.setViewportSize({ width: 1100, height: 900 });
          const roomId = e2e.roomId();
          const c = await u.connection({ roomId, serviceUrl: jwt.url, keepOpenIdTokens: true });
          await c.mountView();

          // Before start(): Initialized, and nothing taken yet.
          let panel = onlyPanel(await readView(c));
          const actor = panel.actor;
          expect(panel).toMatchObject({ status: "active", value: "Initialized", active: ["Initialized"], taken: [] });
          expect(panel.last).toBe("");

          // During the fetch: the token request is held at the proxy; the view shows FetchingConfig.
          await c.startInBackground();
          await expectPostHeld(jwt);
          let report = await readView(c);
          panel = onlyPanel(report);
          expect(panel.value).toBe("FetchingConfig.RequestingSFUConfig");
          expect(panel.active).toEqual(["FetchingConfig", "FetchingConfig.RequestingSFUConfig"]);
          expect(panel.entered).toEqual(["FetchingConfig.RequestingSFUConfig"]);
          expectTaken(panel, "FetchingConfig.RequestingOpenIdToken", "done: requestOpenIdToken → RequestingSFUConfig");
          expect(eventIndex(report.events, actor, "START")).toBeGreaterThanOrEqual(0);
          expect(JSON.parse(panel.context)).toMatchObject({ openIdToken: "[redacted]", deps: "[redacted]" });

          // Connected.
          jwt.release();
          await c.waitForState("connected");
          const rec = await c.recording();
          // (until connectRoom's `done` is listed too: an event no transition takes, after which the transition
          // that connected must still be the one marked)
          report = await waitForView(
            c,
            (r) =>
              r.panels[0]?.value === CONNECTED &&
              r.events.some((e) =>
                e.endsWith(`connectRoom → ${actor}: xstate.done.actor.connectRoom {"actorId":"connectRoom"}`),
              ),
            "connected, and connectRoom done",
          );
          panel = onlyPanel(report);
          expect(panel.active).toEqual([
            "Livekit",
            "Livekit.room",
            "Livekit.room.connected",
            "Livekit.delayedLeave",
            "Livekit.delayedLeave.NotRequested",
          ]);
          expect(panel.entered).toEqual(["Livekit.room.connected"]);
          expectTaken(panel, "Livekit.room.connecting", "room.connected → connected");
          // The context is the chart's, the JWT in it redacted.
          const context = JSON.parse(panel.context) as { sfuConfig?: Record<string, unknown> };
          expect(context.sfuConfig).toMatchObject({
            url: e2e.env.stack.livekit.main!.ws_url,
            jwt: "[redacted]",
            livekitAlias: rec.livekitAlias,
          });
          // No credential anywhere in the view (checked in the page, where the JWT and the OpenID token are
          // known: readView checked the flags); here, that the page knew what to look for.
          expect(report.credentials).toEqual({
            jwtsKnown: 1,
            openIdTokensKnown: 1,
            viewHasJwt: false,
            viewHasOpenIdToken: false,
            viewHasAccessToken: false,
            contextJwts: ["[redacted]"],
          });

          mkdirSync(join(ROOT, "test-results"), { recursive: true });
          await u.page.locator(".e2e-view").screenshot({ path: SCREENSHOT });
          if (process.env.E2E_UPDATE_DOCS === "1") copyFileSync(SCREENSHOT, DOCS_SCREENSHOT);

          // Stopped.
          await c.stop();
          report = await waitForView(c, (r) => r.panels[0]?.value === "Stopped", "Stopped");
          panel = onlyPanel(report);
          expect(panel.active).toEqual(["Stopped"]);
          expectTaken(panel, "Stopping", "done: disconnectRoom → Stopped");
          const [stopAt, startAt] = [
            eventIndex(report.events, actor, "STOP"),
            eventIndex(report.events, actor, "START"),
          ];
          expect(stopAt).toBeGreaterThanOrEqual(0);
          expect(startAt).toBeGreaterThan(stopAt); // newest first
          expect(report.events.every((e) => /^ *\d+ ms {2}\S/.test(e))).toBe(true);

          // Every state the chart was in, in order, and nothing else (the page's own subscription to the actor,
          // without the delayedLeave region, is the reference).
          const end = await c.recording();
          const values = valuesOf(report.changes, actor);
          expect(values).toEqual(HAPPY_VIEW);
          expect(values.map((v) => v.replace(/ ?Livekit\.delayedLeave\.\S+/, ""))).toEqual(
            end.machineStates.map((m) => m.state),
          );
          // The transitions marked over the call, in order (a person sees the last of each render).
          expect(report.changes.filter((x) => x.actor === actor && x.kind === "taken").map((x) => x.value)).toEqual([
            "START → Starting",
            "always → FetchingConfig",
            "done: requestOpenIdToken → RequestingSFUConfig",
            "done: requestSFUConfig → Livekit",
            "always → NotRequested",
            "room.connecting → connecting",
            "room.connected → connected",
            "STOP → Stopping",
            "done: disconnectRoom → Stopped",
          ]);

          // dispose(): the view is gone from the page.
          await u.page.evaluate((id) => window.e2e.disposeView(id), c.id);
          expect(await u.page.locator(".mrtc-sv").count()).toBe(0);
          timings.push({ test: "v1", ms: Date.now() - started, measure: WALL_TIME });
        } finally {
          await jwt.close();
        }
      },
    );

    scenario(
      "v2. a ConnectionManager's view: a panel for the manager, each slot and each connection; a transport removed → its slot's and connection's panels go",
      async () => {
        const started = Date.now();
        const sfu2 = await DedicatedSfu.start(e2e.env.stack, "live-view");
        e2e.addLog("SFU 2 livekit", sfu2.livekitLog);
        e2e.addLog("SFU 2 lk-jwt", sfu2.jwtLog);
        try {
          const sfu1Url = e2e.env.stack.jwt_services.main!.url;
          const u = await e2e.newUser();
          await u.page.setViewportSize({ width: 1100, height: 900 });
          const m = await u.manager({
            roomId: e2e.roomId(),
            local: sfu1Url,
            remote: [sfu1Url, sfu2.jwtUrl],
            keepOpenIdTokens: true,
          });
          await m.mountView();
          const connectedToBoth = await waitForView(
            m,
            (r) =>
              r.panels.filter((p) => p.machine === "connection" && p.value.startsWith("Livekit.room.connected"))
                .length === 2,
            "two connected connections",
          );
          const shape = (r: ViewReport) => r.panels.map((p) => `${p.machine} ${p.actor}`);
          const [slot1, slot2] = connectedToBoth.panels
            .filter((p) => p.machine === "connectionSlot")
            .map((p) => p.actor);
          expect(shape(connectedToBoth)).toEqual([
            expect.stringMatching(/^connectionManager \S+$/),
            `connectionSlot ${slot1}`,
            "connection connection",
            `connectionSlot ${slot2}`,
            "connection connection",
          ]);
          expect(slot1).not.toBe(slot2);
          expect(connectedToBoth.credentials).toMatchObject({
            jwtsKnown: 2,
            contextJwts: ["[redacted]", "[redacted]"],
          });
          expect(connectedToBoth.credentials.openIdTokensKnown).toBeGreaterThanOrEqual(2);
          // Each connection panel shows its own SFU (the context's sfuConfig.url).
          const sfuOf = (p: ViewPanel) => (JSON.parse(p.context) as { sfuConfig?: { url?: string } }).sfuConfig?.url;
          expect(connectedToBoth.panels.filter((p) => p.machine === "connection").map(sfuOf)).toEqual([
            e2e.env.stack.livekit.main!.ws_url,
            sfu2.wsUrl,
          ]);

          // SFU 2's transport goes: its slot retires, and its two panels leave the view; the rest stays.
          await m.setTransports(sfu1Url, [sfu1Url]);
          const after = await waitForView(m, (r) => r.panels.length === 3, "three panels");
          expect(shape(after)).toEqual([
            expect.stringMatching(/^connectionManager \S+$/),
            `connectionSlot ${slot1}`,
            "connection connection",
          ]);
          expect(sfuOf(after.panels[2]!)).toBe(e2e.env.stack.livekit.main!.ws_url);
          expect(after.panels[2]!.value).toBe(CONNECTED);
          // Over the whole run: each panel added once (in whichever order the actors came), and only these two
          // removed.
          const seen = (kind: "added" | "removed"): string[] =>
            after.changes.filter((c) => c.kind === kind).map((c) => `${c.actor} (${c.value})`);
          expect(seen("added").sort()).toEqual(
            [
              `${connectedToBoth.panels[0]!.actor} (connectionManager)`,
              `${slot1} (connectionSlot)`,
              `${slot2} (connectionSlot)`,
              "connection (connection)",
              "connection (connection)",
            ].sort(),
          );
          expect(seen("removed")).toEqual([`${slot2} (connectionSlot)`, "connection (connection)"]);
          await m.stop();
          timings.push({ test: "v2", ms: Date.now() - started, measure: WALL_TIME });
        } finally {
          await sfu2.stop();
        }
      },
    );
  });
}
