/**
 * Pure, deterministic generators of diagrams for the machines (connection, connection slot, connection manager): a Mermaid `stateDiagram-v2` source and a
 * Graphviz DOT source, both made from its state nodes, walked once with `xstate/graph`'s `getStateNodes` (no I/O,
 * no clock). A parallel state is a box whose regions are dashed boxes side by side (Mermaid: separated by `--`);
 * the root's own transitions are listed under the title. What the machine does not use (history states) is not
 * drawn.
 *
 * Conventions shared by both outputs:
 * - States and compound states are emitted in definition order; a state's transitions are ordered by event type
 *   (plain code-unit order), and the candidates of one event keep their priority order.
 * - A transition is labelled with its event, shortened for the xstate built-ins (`xstate.done.actor.X` → `done: X`,
 *   `xstate.error.actor.X` → `error: X`, `xstate.snapshot.X` → `snapshot: X`, `xstate.after.N.*` → `after Nms`,
 *   eventless → `always`), then its guard in
 *   brackets (`[hasExistingSFUConfig]`, `[errorIs InsufficientCapacityError]` for a parameterised guard, `[!a]`,
 *   `[a && b]` for combinators). When an event has several candidates, an unguarded one is shown as `[else]`.
 *   `(reenter)` is appended for `reenter: true`.
 * - A targetless transition (actions only) is drawn as a self-loop on its source state, labelled
 *   `event [guard] / action, action` (its actions being its whole effect). Actions are not shown on other edges
 *   (the DOT output has them in the edge tooltip).
 * - State descriptions: Mermaid gets them as `%%` comments above each state (no notes: they would double the size
 *   of the picture); DOT gets them as tooltips (`xlink:title` in the SVG).
 * - Mermaid: state identifiers are the xstate ids (`connection.Livekit.disconnected`), labelled with the key; each
 *   edge is written inside the innermost composite that holds both ends.
 * - DOT: left to right; a compound state is a cluster whose initial-marker dot stands for it (edges to and from it
 *   are clipped at the cluster's border with `lhead`/`ltail`); error events are red, done events green,
 *   targetless self-loops dashed; edges back to a state defined earlier don't constrain the ranking.
 */

import type { AnyStateMachine, AnyStateNode } from "xstate";
import { getStateNodes } from "xstate/graph";

export type DiagramStateNode = AnyStateNode;
export type DiagramMachine = Pick<AnyStateMachine, "root">;

/** One drawn edge: a transition candidate towards one of its targets (or towards its source when targetless). */
export interface DiagramEdge {
  readonly source: DiagramStateNode;
  readonly target: DiagramStateNode;
  readonly eventType: string;
  /** The shortened event (`done: requestOpenIdToken`). */
  readonly event: string;
  /** The guard text without brackets (`errorIs InsufficientCapacityError`, `else`), or undefined. */
  readonly guard: string | undefined;
  readonly targetless: boolean;
  readonly reenter: boolean;
  readonly actions: readonly string[];
  /** The full label: event, `[guard]`, `(reenter)`, and `/ actions` for a targetless transition. */
  readonly label: string;
}

export interface MermaidOptions {
  /** `comments` (default): `%%` lines, not drawn; `notes`: a `note right of` block per described state; `none`. */
  readonly descriptions?: "comments" | "notes" | "none";
  /** Mermaid `direction` of the top level (default `TB`). */
  readonly direction?: "TB" | "LR";
}

export interface DotOptions {
  /** Graphviz `rankdir` (default `LR`). */
  readonly rankdir?: "TB" | "LR";
}

// ---------------------------------------------------------------------------------------------------------------
// Walking the machine
// ---------------------------------------------------------------------------------------------------------------

const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const childrenOf = (node: DiagramStateNode): DiagramStateNode[] => Object.values(node.states);

/** A state drawn as a box around its children: compound, or parallel (its children are its regions). */
const isCompound = (node: DiagramStateNode): boolean => node.type === "compound" || node.type === "parallel";

/** The initial child of a compound state, if any. */
const initialChild = (node: DiagramStateNode): DiagramStateNode | undefined => node.initial?.target[0];

/** The compound states that contain `node`, innermost first. */
const ancestorsOf = (node: DiagramStateNode): DiagramStateNode[] => {
  const chain: DiagramStateNode[] = [];
  for (let n = node.parent; n; n = n.parent) chain.push(n);
  return chain;
};

/**
 * `xstate.done.actor.X` → `done: X`, `xstate.error.actor.X` → `error: X`, `xstate.snapshot.X` → `snapshot: X`,
 * delays, eventless transitions.
 */
export function shortEventLabel(eventType: string): string {
  let m: RegExpExecArray | null;
  if (eventType === "") return "always";
  if ((m = /^xstate\.done\.actor\.(.+)$/.exec(eventType))) return `done: ${m[1]}`;
  if ((m = /^xstate\.error\.actor\.(.+)$/.exec(eventType))) return `error: ${m[1]}`;
  if ((m = /^xstate\.snapshot\.(.+)$/.exec(eventType))) return `snapshot: ${m[1]}`;
  if ((m = /^xstate\.after\.([^.]+)\..+$/.exec(eventType)))
    return /^\d+$/.test(m[1]!) ? `after ${m[1]}ms` : `after ${m[1]}`;
  return eventType;
}

const valueText = (value: unknown): string =>
  typeof value === "string" ? value : typeof value === "function" ? "…" : (JSON.stringify(value) ?? String(value));

/** Guard text without brackets: `name`, or `name value` for a parameterised guard; `inline` for a function. */
export function guardLabel(guard: unknown): string | undefined {
  if (guard === undefined || guard === null) return undefined;
  if (typeof guard === "string") return guard;
  if (typeof guard === "object" && "type" in guard) {
    const { type, params } = guard as { type: unknown; params?: unknown };
    const name = String(type);
    if (params === undefined || params === null) return name;
    if (typeof params === "function") return `${name}(…)`;
    if (typeof params === "object") {
      const entries = Object.entries(params as Record<string, unknown>);
      if (entries.length === 0) return name;
      if (entries.length === 1) return `${name} ${valueText(entries[0]![1])}`;
      return `${name} ${entries.map(([k, v]) => `${k}=${valueText(v)}`).join(" ")}`;
    }
    return `${name} ${valueText(params)}`;
  }
  return "inline";
}

/** An action's name: its type (`storeError`, `xstate.assign` → `assign`), or the function's name, or `inline`. */
export function actionLabel(action: unknown): string {
  if (typeof action === "string") return action;
  if (action !== null && (typeof action === "object" || typeof action === "function")) {
    const { type, name } = action as { type?: unknown; name?: unknown };
    if (typeof type === "string") return type.replace(/^xstate\./, "");
    if (typeof action === "function" && typeof name === "string" && name !== "") return name;
  }
  return "inline";
}

/**
 * The machine's own transitions (on the root: taken in every state that does not handle the event itself), as
 * text: `EVENT / actions` or `EVENT → target`. They are written once, under the title, not as edges.
 */
export function rootTransitionTexts(machine: DiagramMachine): string[] {
  return [...machine.root.transitions.entries()].flatMap(([eventType, candidates]) =>
    candidates.map((t) => {
      const guard = guardLabel(t.guard);
      const actions = (t.actions ?? []).map(actionLabel);
      const target = t.target && t.target.length > 0 ? ` → ${t.target.map((n) => n.id).join(", ")}` : "";
      return `${shortEventLabel(eventType)}${guard ? ` [${guard}]` : ""}${target}${actions.length ? ` / ${actions.join(", ")}` : ""}`;
    }),
  );
}

/** Every drawn edge, state by state (definition order), events sorted, candidates in priority order. */
export function collectEdges(machine: DiagramMachine): DiagramEdge[] {
  const edges: DiagramEdge[] = [];
  for (const source of getStateNodes(machine.root)) {
    const byEvent = [...source.transitions.entries()];
    if (source.always && source.always.length > 0) byEvent.push(["", source.always]);
    byEvent.sort(([a], [b]) => compareStrings(a, b));
    for (const [eventType, candidates] of byEvent) {
      for (const transition of candidates) {
        let guard = guardLabel(transition.guard);
        if (guard === undefined && candidates.length > 1) guard = "else";
        const targets = transition.target && transition.target.length > 0 ? transition.target : undefined;
        const actions = (transition.actions ?? []).map(actionLabel);
        const reenter = transition.reenter === true;
        const event = shortEventLabel(eventType);
        let label = event;
        if (guard !== undefined) label += ` [${guard}]`;
        if (reenter) label += " (reenter)";
        if (!targets && actions.length > 0) label += ` / ${actions.join(", ")}`;
        for (const target of targets ?? [source]) {
          edges.push({ source, target, eventType, event, guard, targetless: !targets, reenter, actions, label });
        }
      }
    }
  }
  return edges;
}

// ---------------------------------------------------------------------------------------------------------------
// Mermaid
// ---------------------------------------------------------------------------------------------------------------

/** The Mermaid identifier of a state: its xstate id, kept as is when it is made of `[A-Za-z0-9_.]`. */
export function mermaidId(node: DiagramStateNode): string {
  return node.id.replace(/[^A-Za-z0-9_.]/g, "_");
}

/** Mermaid ends a statement at `;` and reads `"` as a delimiter; keep labels on one line and free of both. */
const mermaidText = (text: string): string => text.replace(/\s+/g, " ").replace(/;/g, ",").replace(/"/g, "'").trim();

/** A `%%` comment runs to the end of the line: only line breaks need care. */
const mermaidComment = (text: string): string => text.replace(/\s+/g, " ").trim();

/** The innermost compound state that contains both (strictly above each, unless one is the other's ancestor). */
const commonContainer = (a: DiagramStateNode, b: DiagramStateNode): DiagramStateNode | undefined => {
  const aChain = ancestorsOf(a);
  const bChain = new Set(ancestorsOf(b));
  return aChain.find((n) => bChain.has(n) && n !== a && n !== b);
};

export function toMermaid(machine: DiagramMachine, options: MermaidOptions = {}): string {
  const descriptions = options.descriptions ?? "comments";
  const root = machine.root;
  const edges = collectEdges(machine);

  // Each edge is written in the block of the innermost composite containing both ends, after that block's states,
  // so that Mermaid never creates a state on first mention inside the wrong composite.
  const edgesByBlock = new Map<DiagramStateNode, DiagramEdge[]>();
  for (const edge of edges) {
    const block =
      edge.source === edge.target ? (edge.source.parent ?? root) : (commonContainer(edge.source, edge.target) ?? root);
    const list = edgesByBlock.get(block) ?? [];
    list.push(edge);
    edgesByBlock.set(block, list);
  }

  const lines: string[] = ["---", `title: ${mermaidText(root.id)}`, "---", "stateDiagram-v2"];
  if (options.direction && options.direction !== "TB") lines.push(`  direction ${options.direction}`);
  if (root.description && descriptions !== "none") lines.push(`  %% ${mermaidComment(root.description)}`);
  for (const text of rootTransitionTexts(machine)) lines.push(`  %% in every state: ${mermaidComment(text)}`);

  const notes: string[] = [];
  const writeBlock = (node: DiagramStateNode, indent: string): void => {
    const children = childrenOf(node);
    const initial = initialChild(node);
    if (initial) lines.push(`${indent}[*] --> ${mermaidId(initial)}`);
    for (const [i, child] of children.entries()) {
      // The regions of a parallel state, side by side.
      if (node.type === "parallel" && i > 0) lines.push(`${indent}--`);
      if (child.description && descriptions === "comments")
        lines.push(`${indent}%% ${mermaidComment(child.description)}`);
      if (child.description && descriptions === "notes") {
        notes.push(`  note right of ${mermaidId(child)}`, `    ${mermaidText(child.description)}`, "  end note");
      }
      const decl = `${indent}state "${mermaidText(child.key)}" as ${mermaidId(child)}`;
      if (isCompound(child)) {
        lines.push(`${decl} {`);
        writeBlock(child, `${indent}  `);
        lines.push(`${indent}}`);
      } else {
        lines.push(decl);
      }
    }
    for (const child of children) if (child.type === "final") lines.push(`${indent}${mermaidId(child)} --> [*]`);
    for (const edge of edgesByBlock.get(node) ?? []) {
      lines.push(`${indent}${mermaidId(edge.source)} --> ${mermaidId(edge.target)} : ${mermaidText(edge.label)}`);
    }
  };
  writeBlock(root, "  ");
  lines.push(...notes);
  return `${lines.join("\n")}\n`;
}

// ---------------------------------------------------------------------------------------------------------------
// Graphviz DOT
// ---------------------------------------------------------------------------------------------------------------

/** A DOT double-quoted string. */
const q = (text: string): string => `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\r?\n/g, "\\n")}"`;

/** Text for an HTML-like label. */
const html = (text: string): string =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** Greedy word wrap (for the graph's title). */
const wrapWords = (text: string, width: number): string[] => {
  const out: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) out.push(line);
  return out;
};

const FONT = "Helvetica"; // Graphviz has metrics for it; the SVG says `Helvetica,sans-Serif`
const ERROR_COLOR = "#b3261e";
const DONE_COLOR = "#1b6e3a";

/** The DOT node that stands for a compound state: its initial marker (or an invisible point if it has none). */
const anchorId = (node: DiagramStateNode): string => `${node.id}:initial`;
const clusterId = (node: DiagramStateNode): string => `cluster_${node.id}`;

export function toDot(machine: DiagramMachine, options: DotOptions = {}): string {
  const root = machine.root;
  const lines: string[] = [];
  const title = [`<B>${html(root.id)}</B>`];
  if (root.description) {
    for (const line of wrapWords(root.description, 90)) title.push(`<FONT POINT-SIZE="10">${html(line)}</FONT>`);
  }
  for (const text of rootTransitionTexts(machine)) {
    title.push(`<FONT POINT-SIZE="10"><I>in every state:</I> ${html(text)}</FONT>`);
  }
  lines.push(
    `digraph ${q(root.id)} {`,
    `  graph [rankdir=${options.rankdir ?? "LR"}, compound=true, newrank=true, fontname=${q(FONT)}, fontsize=16, ` +
      `labelloc=t, labeljust=l, nodesep=0.35, ranksep=0.6, pad=0.3, label=<${title.join('<BR ALIGN="LEFT"/>')}<BR ALIGN="LEFT"/>>];`,
    `  node [fontname=${q(FONT)}, fontsize=12, shape=box, style="rounded,filled", fillcolor="#eef3fb", color="#3f5f8f", margin="0.15,0.06"];`,
    `  edge [fontname=${q(FONT)}, fontsize=10, color="#444444", fontcolor="#222222", arrowsize=0.7];`,
  );

  const initialNode = (node: DiagramStateNode, indent: string): void => {
    const initial = initialChild(node);
    if (initial) {
      lines.push(
        `${indent}${q(anchorId(node))} [shape=point, width=0.13, fillcolor=black, color=black, label="", tooltip=${q(`initial state of ${node.id}`)}];`,
      );
      lines.push(
        `${indent}${q(anchorId(node))} -> ${q(initial.id)}${isCompound(initial) ? ` [lhead=${q(clusterId(initial))}]` : ""};`,
      );
    } else if (node !== root) {
      lines.push(`${indent}${q(anchorId(node))} [shape=point, width=0.01, style=invis, label=""];`);
    }
  };

  const writeBlock = (node: DiagramStateNode, indent: string): void => {
    initialNode(node, indent);
    for (const child of childrenOf(node)) {
      const tooltip = child.description ? child.description : child.id;
      if (isCompound(child)) {
        lines.push(`${indent}subgraph ${q(clusterId(child))} {`);
        const inner = `${indent}  `;
        lines.push(
          `${inner}label=<<B>${html(child.key)}</B>>; tooltip=${q(tooltip)}; fontsize=13; labeljust=l; margin=12;`,
          child.parent?.type === "parallel"
            ? `${inner}style="rounded,dashed"; color="#7a8699";` // a region: beside its siblings
            : `${inner}style="rounded,filled"; fillcolor="#f8f9fb"; color="#7a8699";`,
        );
        writeBlock(child, inner);
        lines.push(`${indent}}`);
      } else {
        const attrs = [`label=${q(child.key)}`, `tooltip=${q(tooltip)}`];
        if (child.type === "final") attrs.push("peripheries=2");
        lines.push(`${indent}${q(child.id)} [${attrs.join(", ")}];`);
      }
    }
  };
  writeBlock(root, "  ");

  const contains = (outer: DiagramStateNode, inner: DiagramStateNode): boolean => ancestorsOf(inner).includes(outer);
  // Definition order is taken as the intended flow. An edge to a state defined earlier, or to an ancestor (retry,
  // reconnect, re-enter), is a "back" edge: `constraint=false`, so it does not pull its target into a later rank
  // (writing it reversed with `dir=back` was tried: it stretches the Failed cluster across the picture).
  const order = new Map<DiagramStateNode, number>(getStateNodes(root).map((node, i) => [node, i]));
  const isBackEdge = (edge: DiagramEdge): boolean =>
    edge.source !== edge.target &&
    (contains(edge.target, edge.source) || (order.get(edge.target) ?? 0) < (order.get(edge.source) ?? 0));

  for (const edge of collectEdges(machine)) {
    const { source, target } = edge;
    const tail = isCompound(source) ? anchorId(source) : source.id;
    const head = isCompound(target) ? anchorId(target) : target.id;
    // Clip at the cluster's border unless the edge stays inside it (self-loop, re-entry, edge to a descendant).
    const clipTail = isCompound(source) && source !== target && !contains(source, target);
    const clipHead = isCompound(target) && source !== target && !contains(target, source);
    const text = [edge.event];
    if (edge.guard !== undefined) text.push(`[${edge.guard}]`);
    if (edge.reenter) text.push("(reenter)");
    if (edge.targetless && edge.actions.length > 0) text.push(`/ ${edge.actions.join(", ")}`);
    const attrs = [`label=${q(text.join("\n"))}`];
    if (clipTail) attrs.push(`ltail=${q(clusterId(source))}`);
    if (clipHead) attrs.push(`lhead=${q(clusterId(target))}`);
    const tip =
      `${source.id} → ${edge.targetless ? "(no target)" : target.id}: ${edge.label}` +
      (edge.actions.length > 0 && !edge.targetless ? ` / ${edge.actions.join(", ")}` : "");
    attrs.push(`tooltip=${q(tip)}`, `labeltooltip=${q(tip)}`);
    if (edge.eventType.startsWith("xstate.error."))
      attrs.push(`color=${q(ERROR_COLOR)}`, `fontcolor=${q(ERROR_COLOR)}`);
    else if (edge.eventType.startsWith("xstate.done."))
      attrs.push(`color=${q(DONE_COLOR)}`, `fontcolor=${q(DONE_COLOR)}`);
    if (edge.targetless) attrs.push("style=dashed");
    if (isBackEdge(edge)) {
      attrs.push("constraint=false");
      // Such a label can land away from its edge: a leader line ties it back, except inside one compound state.
      if (source.parent === root || source.parent !== target.parent) attrs.push("decorate=true");
    }
    lines.push(`  ${q(tail)} -> ${q(head)} [${attrs.join(", ")}];`);
  }
  lines.push("}");
  return `${lines.join("\n")}\n`;
}

// ---------------------------------------------------------------------------------------------------------------
// Comparing generated files with the ones on disk
// ---------------------------------------------------------------------------------------------------------------

/** Line endings normalised (a checkout with `core.autocrlf` must not look stale). */
export function normalizeText(text: string): string {
  return text.replace(/\r\n/g, "\n");
}

/**
 * The SVG with what does not depend on the machine removed: line endings and Graphviz's version comment. The
 * Graphviz layout itself is deterministic (same DOT and same @viz-js/viz version give the same bytes).
 */
export function normalizeSvg(svg: string): string {
  return normalizeText(svg).replace(/<!-- Generated by graphviz version [^>]*-->\n?/, "");
}
