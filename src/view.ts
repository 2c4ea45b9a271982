/**
 * A live view of running statecharts, for an app's debug panel: `import { mountStatechartView } from
 * "matrixrtc-connection-machine/view"`. Framework-free and offline: it draws each machine actor of the system as
 * nested boxes (a box per state, its transitions inside it), highlights the active states and the transition just
 * taken, lists the events with their time, and shows each actor's context. Everything shown goes through
 * `JSON.stringify`, so a `Secret` (the JWT, the OpenID token, the delay id) shows as `[redacted]`, as in inspection
 * events. It reads the charts from the running actors, so it imports nothing of the package's main entry.
 */
import type { AnyActorRef, InspectionEvent, Subscription } from "xstate";

export interface StatechartViewOptions {
  /** How many events the list keeps, newest first. Default 100. */
  maxEvents?: number;
  /** The clock of the event times. Default `performance.now()`: times are shown from the mount. */
  now?: () => number;
}

export interface StatechartView {
  /** The view's root element, inside the container. */
  readonly element: HTMLElement;
  /** Stops following the actors and removes the view. */
  dispose(): void;
}

/** What the view reads of a state node (xstate's `StateNode`). */
interface NodeLike {
  key: string;
  path: string[];
  type: "atomic" | "compound" | "parallel" | "final" | "history";
  description?: string;
  states: Record<string, NodeLike>;
  transitions: Map<string, readonly TransitionLike[]>;
  always?: readonly TransitionLike[];
}

interface TransitionLike {
  eventType: string;
  source: NodeLike;
  target?: readonly NodeLike[];
  guard?: { type?: unknown };
}

interface MachineLike {
  id: string;
  root: NodeLike;
}

interface SnapshotLike {
  status: string;
  value?: unknown;
  context?: unknown;
  children?: Record<string, AnyActorRef | undefined>;
}

const CSS = `
.mrtc-sv{font:12px/1.35 system-ui,sans-serif;color:#1d2330;display:flex;flex-direction:column;gap:8px}
.mrtc-sv-panel{border:1px solid #c5cbd6;border-radius:6px;padding:6px;background:#fafbfc}
.mrtc-sv-panel[data-status=done],.mrtc-sv-panel[data-status=stopped]{opacity:.7}
.mrtc-sv-head{font-weight:600;margin-bottom:4px}
.mrtc-sv-head code{font-weight:400}
.mrtc-sv-state{border:1px solid #b7bfcc;border-radius:5px;padding:2px 5px 4px;margin:3px 0;background:#fff}
.mrtc-sv-state[data-type=final]{border-style:double;border-width:3px}
.mrtc-sv-state.mrtc-sv-active{border-color:#1f8a4c;background:#eaf7ef;box-shadow:0 0 0 1px #1f8a4c}
.mrtc-sv-state.mrtc-sv-entered>.mrtc-sv-name{background:#ffe3a8}
.mrtc-sv-name{font-weight:600}
.mrtc-sv-regions{display:flex;gap:6px;align-items:flex-start}
.mrtc-sv-panel>.mrtc-sv-children{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:0 6px;align-items:start}
.mrtc-sv-panel>.mrtc-sv-children>[data-type=parallel]{grid-column:span 2}
.mrtc-sv-regions>.mrtc-sv-state{flex:1;border-style:dashed}
.mrtc-sv-ts{margin:1px 0 2px;padding:0;list-style:none;color:#5b6577}
.mrtc-sv-t.mrtc-sv-taken{color:#a34f00;font-weight:600}
.mrtc-sv-last{color:#a34f00}
.mrtc-sv pre{margin:4px 0 0;max-height:16em;overflow:auto;background:#f1f3f6;padding:4px;white-space:pre-wrap;overflow-wrap:anywhere}
.mrtc-sv-events{max-height:20em;overflow:auto;margin:0;padding:0;list-style:none;font-family:ui-monospace,monospace}
.mrtc-sv-events li{white-space:pre-wrap;overflow-wrap:anywhere;border-bottom:1px solid #eef0f3}
`;

const isMachine = (logic: unknown): logic is MachineLike =>
  typeof logic === "object" && logic !== null && "root" in logic && typeof (logic as MachineLike).id === "string";

/** The machine an actor runs, if it runs one (`logic` is not part of ActorRef's type, but every Actor has it). */
const machineOf = (ref: AnyActorRef): MachineLike | undefined => {
  const logic = (ref as { logic?: unknown }).logic;
  return isMachine(logic) ? logic : undefined;
};

/**
 * JSON as an inspector would see it, made readable: a `Secret` serialises as `[redacted]` (its `toJSON`), an
 * error as its name, message and code, an actor as its id; functions are left out and cycles cut.
 */
export function viewJson(value: unknown, indent?: number): string {
  const ancestors: object[] = [];
  return (
    JSON.stringify(
      value,
      function (this: unknown, _key, v: unknown) {
        while (ancestors.length > 0 && ancestors.at(-1) !== this) ancestors.pop();
        if (typeof v === "bigint") return v.toString();
        if (typeof v === "function") return undefined;
        if (typeof v !== "object" || v === null) return v;
        if (v instanceof Error) {
          const code = (v as { code?: unknown }).code;
          return { error: v.name, message: v.message, ...(typeof code === "string" && { code }) };
        }
        // An actor serialises itself as {xstate$$type: 1, id} (its toJSON), before this replacer sees it.
        if ((v as { xstate$$type?: unknown }).xstate$$type === 1) return `[actor ${(v as { id?: unknown }).id}]`;
        if (ancestors.includes(v)) return "[circular]";
        ancestors.push(v);
        return v;
      },
      indent,
    ) ?? "undefined"
  );
}

/** Every active state's path (`Livekit`, `Livekit.room`, `Livekit.room.connected`, …) of a state value. */
function activePaths(value: unknown, prefix = "", out = new Set<string>()): Set<string> {
  if (typeof value === "string") out.add(prefix + value);
  else if (typeof value === "object" && value !== null) {
    for (const [key, child] of Object.entries(value)) {
      out.add(prefix + key);
      activePaths(child, `${prefix}${key}.`, out);
    }
  }
  return out;
}

/** A transition's event as a person reads it: `after reconnectDelay`, `done: requestSFUConfig`, `always`, … */
function eventLabel(type: string): string {
  const parts = type.split(".");
  if (type.startsWith("xstate.after.")) return `after ${parts[2]}`;
  if (type.startsWith("xstate.done.actor.")) return `done: ${parts.slice(3).join(".")}`;
  if (type.startsWith("xstate.error.actor.")) return `error: ${parts.slice(3).join(".")}`;
  if (type.startsWith("xstate.snapshot.")) return `snapshot: ${parts.slice(2).join(".")}`;
  return type === "" ? "always" : type;
}

const pathOf = (node: NodeLike): string => node.path.join(".");

/** `EVENT [guard] → target`; a target beside or below the source's parent is named from there (`connected`). */
function transitionText(t: TransitionLike): string {
  const guard = typeof t.guard?.type === "string" ? ` [${t.guard.type}]` : "";
  const parent = t.source.path.slice(0, -1).join(".");
  const relative = (path: string): string =>
    parent && path.startsWith(`${parent}.`) ? path.slice(parent.length + 1) : path;
  const targets = t.target?.map((n) => relative(pathOf(n)) || "(root)").join(", ");
  return `${eventLabel(t.eventType)}${guard} → ${targets ?? "(stays)"}`;
}

/** One machine actor: its chart, drawn once, whose classes follow the snapshots. */
class Panel {
  readonly element: HTMLElement;
  private readonly states = new Map<string, HTMLElement>();
  private readonly transitions = new Map<TransitionLike, HTMLElement>();
  private readonly head: HTMLElement;
  private readonly last: HTMLElement;
  private readonly context: HTMLElement;
  private marked: HTMLElement[] = [];

  constructor(
    private readonly doc: Document,
    readonly ref: AnyActorRef,
    machine: MachineLike,
  ) {
    this.element = this.el("section", "mrtc-sv-panel");
    this.element.dataset.actor = ref.id;
    this.element.dataset.machine = machine.id;
    this.head = this.el("div", "mrtc-sv-head");
    this.last = this.el("div", "mrtc-sv-last");
    this.context = this.el("pre", "mrtc-sv-context");
    this.element.append(this.head, this.drawChildren(machine.root), this.last, this.context);
  }

  private el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, text?: string) {
    const e = this.doc.createElement(tag);
    e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  private drawChildren(node: NodeLike): HTMLElement {
    const box = this.el("div", node.type === "parallel" ? "mrtc-sv-regions" : "mrtc-sv-children");
    for (const child of Object.values(node.states)) box.append(this.drawState(child));
    return box;
  }

  private drawState(node: NodeLike): HTMLElement {
    const box = this.el("div", "mrtc-sv-state");
    box.dataset.state = pathOf(node);
    box.dataset.type = node.type;
    if (node.description) box.title = node.description;
    box.append(this.el("div", "mrtc-sv-name", node.key));
    const list = this.el("ul", "mrtc-sv-ts");
    const own = [...node.transitions.values()].flat().filter((t) => t.source === node);
    for (const t of [...own, ...(node.always ?? [])]) {
      const item = this.el("li", "mrtc-sv-t", transitionText(t));
      this.transitions.set(t, item);
      list.append(item);
    }
    if (list.childElementCount > 0) box.append(list);
    if (Object.keys(node.states).length > 0) box.append(this.drawChildren(node));
    this.states.set(pathOf(node), box);
    return box;
  }

  /** The transitions of the last microstep: marked until the next one. */
  took(transitions: readonly TransitionLike[]): void {
    // xstate reports a microstep for an event that no transition handles too (e.g. a `done` nobody waits for): it
    // changes nothing, so the last transition stays marked, as the `last:` line still names it.
    if (transitions.length === 0) return;
    for (const e of this.marked) e.classList.remove("mrtc-sv-taken", "mrtc-sv-entered");
    this.marked = [];
    for (const t of transitions) {
      const item = this.transitions.get(t);
      if (item) {
        item.classList.add("mrtc-sv-taken");
        this.marked.push(item);
      }
      for (const target of t.target ?? []) {
        const box = this.states.get(pathOf(target));
        if (box) {
          box.classList.add("mrtc-sv-entered");
          this.marked.push(box);
        }
      }
    }
    const shown = transitions.map((t) => `${pathOf(t.source) || "(root)"} —${transitionText(t)}`);
    if (shown.length > 0) this.last.textContent = `last: ${shown.join("; ")}`;
  }

  update(snapshot: SnapshotLike): void {
    const active = activePaths(snapshot.value);
    for (const [path, box] of this.states) box.classList.toggle("mrtc-sv-active", active.has(path));
    this.element.dataset.status = snapshot.status;
    // The leaves only: a path with no active path below it.
    this.element.dataset.value = [...active].filter((p) => ![...active].some((q) => q.startsWith(`${p}.`))).join(" ");
    this.head.replaceChildren(
      `${this.ref.id} `,
      this.el("code", "", `(${this.element.dataset.machine}) ${snapshot.status}: ${viewJson(snapshot.value)}`),
    );
    this.context.textContent = viewJson(snapshot.context, 2);
  }
}

/**
 * Mounts a live view of `target` (a machine actor, or anything with one as `actor`: a `Connection`, a
 * `ConnectionManager`) in `container`: a panel for it and for each machine actor below it (a manager's slots and
 * their connections), added and removed as they come and go, and the events of the whole system from now on.
 */
export function mountStatechartView(
  container: Element,
  target: AnyActorRef | { readonly actor: AnyActorRef },
  options: StatechartViewOptions = {},
): StatechartView {
  const root = (typeof target === "object" && target !== null && "actor" in target ? target.actor : target) as
    AnyActorRef | undefined;
  if (!root || typeof root.getSnapshot !== "function" || typeof root.system?.inspect !== "function") {
    throw new TypeError("mountStatechartView needs an xstate actor, or an object with one as `actor`");
  }
  const doc = container.ownerDocument;
  const maxEvents = options.maxEvents ?? 100;
  if (!Number.isInteger(maxEvents) || maxEvents < 0) {
    throw new TypeError(`maxEvents must be a whole number of at least 0, not ${String(maxEvents)}`);
  }
  const now = options.now ?? (() => performance.now());
  const t0 = now();

  if (!doc.getElementById("mrtc-sv-style")) {
    const style = doc.createElement("style");
    style.id = "mrtc-sv-style";
    style.textContent = CSS;
    doc.head.append(style);
  }
  const element = doc.createElement("div");
  element.className = "mrtc-sv";
  const panels = doc.createElement("div");
  panels.className = "mrtc-sv-panels";
  const events = doc.createElement("ol");
  events.className = "mrtc-sv-events";
  events.reversed = true;
  element.append(panels, events);
  container.append(element);

  const bySession = new Map<string, Panel>();

  /** Whether `ref` is the root or below it (xstate keeps each actor's parent as `_parent`). */
  const below = (ref: AnyActorRef | undefined): boolean => {
    for (let r = ref; r !== undefined; r = (r as { _parent?: AnyActorRef })._parent) if (r === root) return true;
    return false;
  };

  /** The machine actors from the root down (each actor's children, in order), with their snapshots. */
  const walk = (ref: AnyActorRef, out: [AnyActorRef, SnapshotLike][] = []): [AnyActorRef, SnapshotLike][] => {
    const snapshot = ref.getSnapshot() as SnapshotLike;
    if (machineOf(ref)) out.push([ref, snapshot]);
    for (const child of Object.values(snapshot.children ?? {})) if (child) walk(child, out);
    return out;
  };

  /** Brings the panels in line with the actors: new ones drawn, gone ones removed (the root's stays). */
  const render = (): void => {
    const live = walk(root);
    const seen = new Set<string>();
    for (const [ref, snapshot] of live) {
      seen.add(ref.sessionId);
      let panel = bySession.get(ref.sessionId);
      if (!panel) {
        panel = new Panel(doc, ref, machineOf(ref)!);
        bySession.set(ref.sessionId, panel);
      }
      panels.append(panel.element); // in walk order
      panel.update(snapshot);
    }
    for (const [session, panel] of bySession) {
      if (seen.has(session) || panel.ref === root) continue;
      panel.element.remove();
      bySession.delete(session);
    }
  };

  let scheduled = false;
  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    queueMicrotask(() => {
      scheduled = false;
      if (!disposed) render();
    });
  };

  const logEvent = (e: Extract<InspectionEvent, { type: "@xstate.event" }>): void => {
    // Only the events of the root and the actors below it (mounted on a manager's connection: not the rest of the
    // manager's system), new ones included before their panel is drawn.
    if (!below(e.actorRef as AnyActorRef)) return;
    const { type, ...payload } = e.event;
    if (type.startsWith("xstate.snapshot.")) return; // relayed snapshots: shown as the panels change
    const ms = (now() - t0).toFixed(0).padStart(6);
    const source = e.sourceRef as AnyActorRef | undefined;
    const from = source && source !== e.actorRef ? `${source.id} → ` : "";
    const body = Object.keys(payload).length > 0 ? ` ${viewJson(payload).slice(0, 300)}` : "";
    const item = doc.createElement("li");
    item.textContent = `${ms} ms  ${from}${(e.actorRef as AnyActorRef).id}: ${type}${body}`;
    events.prepend(item);
    while (events.childElementCount > maxEvents) events.lastElementChild!.remove();
  };

  let disposed = false;
  const subscription: Subscription = root.system.inspect((e: InspectionEvent) => {
    if (disposed) return;
    if (e.type === "@xstate.event") logEvent(e);
    else if (e.type === "@xstate.microstep") {
      const ref = e.actorRef as AnyActorRef;
      bySession.get(ref.sessionId)?.took(e._transitions as unknown as TransitionLike[]);
      schedule();
    } else if (e.type === "@xstate.snapshot" || e.type === "@xstate.actor") schedule();
  });
  render();

  return {
    element,
    dispose() {
      if (disposed) return;
      disposed = true;
      subscription.unsubscribe();
      element.remove();
    },
  };
}
