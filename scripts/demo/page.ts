/**
 * The demo page for a person's browser (`npm run demo -- --serve`): the e2e test page (which puts the API on
 * `window.e2e`) plus a panel: start() / stop(), the connection's `state$` and remote participants, the live
 * statechart view of its `Connection` (`matrixrtc-connection-machine/view`, here from src/view.ts), and buttons
 * that kill the demo's SFU (`kill -9`) and start it again, through the demo process's loopback control endpoint.
 * The connection parameters and the control endpoint's token come in the URL's fragment, which browsers never
 * send to a server.
 */
import { api, connectionOf } from "../../test/e2e/page/main";
import type { ConnectionParams, Recording, StateRecord } from "../../test/e2e/page/api";
import { mountStatechartView } from "../../src/view";

/** The demo process's control endpoint (scripts/demo.ts): `GET /sfu`, `POST /sfu/kill`, `POST /sfu/start`. */
interface Control {
  url: string;
  token: string;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text = ""): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  e.textContent = text;
  return e;
}

/** A fragment parameter: base64url of JSON. */
function fromFragment<T>(name: string): T | undefined {
  const value = new URLSearchParams(location.hash.slice(1)).get(name);
  if (!value) return undefined;
  return JSON.parse(atob(value.replace(/-/g, "+").replace(/_/g, "/"))) as T;
}

const label = (r: StateRecord): string => ("state" in r ? r.state : `${r.error} (${r.code}): ${r.message}`);

function render(root: HTMLElement, rec: Recording): void {
  const t0 = rec.starts[0]?.calledAt ?? 0;
  root.replaceChildren(
    el("h2", "state$"),
    ...rec.states.map((r) =>
      el("div", `${r.t < t0 ? "         " : `+${(r.t - t0).toFixed(0).padStart(6)} ms`}  ${label(r)}`),
    ),
    el("h2", "remote participants"),
    el("div", (rec.participants.at(-1)?.identities ?? []).join(", ") || "(none)"),
    el("p", `LiveKit room ${rec.livekitAlias ?? "(not known yet)"}, local identity ${rec.localIdentity ?? "-"}`),
  );
}

const CSS = `
body{font:13px system-ui,sans-serif;margin:12px}
.demo-grid{display:grid;grid-template-columns:340px 1fr;gap:16px;align-items:start}
.demo-grid>*{min-width:0}
.demo-grid>:first-child{position:sticky;top:0}
.demo-side{font-family:ui-monospace,monospace;white-space:pre-wrap}
.demo-side h2{font:600 14px system-ui,sans-serif;margin:12px 0 4px}
.demo-buttons button{margin:0 6px 6px 0}
.demo-sfu{margin:4px 0 0;color:#5b6577}
`;

const params = fromFragment<ConnectionParams>("demo");
if (params) {
  const control = fromFragment<Control>("control");
  const id = api.create(params);
  const style = el("style", CSS);
  document.head.append(style);
  document.title = `${params.userId}: matrixrtc-connection-machine demo`;

  const start = el("button", "start()");
  const stop = el("button", "stop()");
  start.id = "demo-start";
  stop.id = "demo-stop";
  start.onclick = () => void api.start(id);
  stop.onclick = () => void api.stop(id);
  const buttons = el("div");
  buttons.className = "demo-buttons";
  buttons.append(start, stop);

  const sfuStatus = el("div");
  sfuStatus.className = "demo-sfu";
  sfuStatus.id = "demo-sfu-status";
  if (control) {
    /** Asks the demo process; shows the SFU's state (or the failure). */
    const ask = async (method: "GET" | "POST", path: string): Promise<void> => {
      try {
        const res = await fetch(`${control.url}${path}`, { method, headers: { "x-demo-token": control.token } });
        const body = (await res.json()) as { livekit: string; starts: number };
        sfuStatus.textContent = res.ok ? `the demo's SFU: ${body.livekit} (started ${body.starts}×)` : `${res.status}`;
      } catch (e) {
        sfuStatus.textContent = `the demo process did not answer: ${String(e)}`;
      }
    };
    const kill = el("button", "kill the SFU (kill -9)");
    const restart = el("button", "start the SFU again");
    kill.id = "demo-sfu-kill";
    restart.id = "demo-sfu-start";
    kill.onclick = () => void ask("POST", "/sfu/kill");
    restart.onclick = () => void ask("POST", "/sfu/start");
    buttons.append(kill, restart);
    void ask("GET", "/sfu");
    setInterval(() => void ask("GET", "/sfu"), 2000); // (the other user's page may have killed or started it)
  }

  const side = el("div");
  side.className = "demo-side";
  const view = el("div");
  view.id = "demo-view";
  const grid = el("div");
  grid.className = "demo-grid";
  const left = el("div");
  left.append(buttons, sfuStatus, side);
  grid.append(left, view);
  document.body.append(el("h1", `${params.userId} in ${params.roomId}`), grid);
  mountStatechartView(view, connectionOf(id));
  setInterval(() => render(side, api.recording(id)), 200);
}
