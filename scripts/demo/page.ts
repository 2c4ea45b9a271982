/**
 * The demo page for a person's browser (`npm run demo -- --serve`): the e2e test page (which puts the API on
 * `window.e2e`) plus a small panel. The connection parameters come in the URL's fragment, which browsers never
 * send to a server.
 */
import { api } from "../../test/e2e/page/main";
import type { ConnectionParams, Recording, StateRecord } from "../../test/e2e/page/api";

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text = ""): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  e.textContent = text;
  return e;
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

const fragment = new URLSearchParams(location.hash.slice(1)).get("demo");
if (fragment) {
  const params = JSON.parse(atob(fragment)) as ConnectionParams;
  const id = api.create(params);
  document.body.style.fontFamily = "monospace";
  const start = el("button", "start()");
  const stop = el("button", "stop()");
  const view = el("div");
  view.style.whiteSpace = "pre";
  start.onclick = () => void api.start(id);
  stop.onclick = () => void api.stop(id);
  document.body.append(el("h1", `${params.userId} in ${params.roomId}`), start, stop, view);
  setInterval(() => render(view, api.recording(id)), 200);
}
