import { readFileSync } from "node:fs";
import { join } from "node:path";
import { instance } from "@viz-js/viz";
import { getStateNodes } from "xstate/graph";
import { connectionMachine } from "../machines/connection.machine";
import { connectionManagerMachine } from "../machines/connectionManager.machine";
import { connectionSlotMachine } from "../machines/connectionSlot.machine";
import {
  guardLabel,
  normalizeSvg,
  normalizeText,
  shortEventLabel,
  toDot,
  toMermaid,
  type DiagramMachine,
  type DiagramStateNode,
} from "../scripts/diagram-lib";

const docs = join(__dirname, "..", "docs");
const RUN = "Run `npm run diagram` and commit docs/ (or check with `npm run diagram -- --check`).";

/** Throws a short, actionable message instead of a 200-line diff when a generated file is stale. */
function expectUpToDate(file: string, source: string, onDisk: string, fresh: string): void {
  if (onDisk === fresh) return;
  const a = onDisk.split("\n");
  const b = fresh.split("\n");
  let line = 0;
  while (line < a.length && line < b.length && a[line] === b[line]) line++;
  throw new Error(
    `${file} is stale: it no longer matches ${source}. ${RUN}\n` +
      `First difference at line ${line + 1}:\n  on disk:   ${a[line] ?? "<end of file>"}\n  generated: ${b[line] ?? "<end of file>"}`,
  );
}

// The machine's states and transitions, read straight from xstate's state nodes, to check the library against.
interface Transition {
  source: DiagramStateNode;
  eventType: string;
  target: DiagramStateNode | undefined;
  guard: unknown;
}

const transitionsOf = (states: DiagramStateNode[]): Transition[] =>
  states.flatMap((source) =>
    [...source.transitions.entries(), ...(source.always ? [["", source.always] as const] : [])].flatMap(
      ([eventType, candidates]) =>
        candidates.flatMap((t) =>
          (t.target?.length ? t.target : [undefined]).map((target) => ({ source, eventType, target, guard: t.guard })),
        ),
    ),
  );

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Every machine that `npm run diagram` draws, with the base name of its files in docs/. */
const drawn: { file: string; source: string; machine: DiagramMachine; minStates: number }[] = [
  { file: "connection-machine", source: "machines/connection.machine.ts", machine: connectionMachine, minStates: 10 },
  {
    file: "connection-slot-machine",
    source: "machines/connectionSlot.machine.ts",
    machine: connectionSlotMachine,
    minStates: 8,
  },
  {
    file: "connection-manager-machine",
    source: "machines/connectionManager.machine.ts",
    machine: connectionManagerMachine,
    minStates: 4,
  },
];

describe.each(drawn)("state machine diagram (docs/$file.*)", ({ file, source, machine, minStates }) => {
  const MMD = join(docs, `${file}.mmd`);
  const SVG = join(docs, `${file}.svg`);
  const states = getStateNodes(machine.root);
  const transitions = transitionsOf(states);
  const mermaid = toMermaid(machine);

  it("has a committed Mermaid file that matches the machine", () => {
    let onDisk: string;
    try {
      onDisk = readFileSync(MMD, "utf8");
    } catch {
      throw new Error(`docs/${file}.mmd is missing. ${RUN}`);
    }
    expectUpToDate(`docs/${file}.mmd`, source, normalizeText(onDisk), mermaid);
  });

  it("declares every state node of the machine", () => {
    expect(states.length).toBeGreaterThan(minStates);
    for (const node of states) {
      expect(mermaid).toContain(node.id);
      expect(mermaid).toMatch(
        new RegExp(`^\\s*state "${escapeRegExp(node.key)}" as ${escapeRegExp(node.id)}( \\{)?$`, "m"),
      );
    }
  });

  it("lists the machine's own transitions", () => {
    expect(machine.root.transitions.size).toBeGreaterThan(0);
    for (const [eventType, ts] of machine.root.transitions) {
      for (const t of ts) {
        const actions = t.actions.map((a) => (typeof a === "string" ? a : (a as { type: string }).type)).join(", ");
        expect(mermaid).toContain(`%% in every state: ${shortEventLabel(eventType)} / ${actions}`);
      }
    }
  });

  it("draws every transition (source, event, target) as an edge, with its guard", () => {
    const edgeLines = mermaid.split("\n").filter((l) => / --> /.test(l) && !l.includes("[*]"));
    expect(edgeLines).toHaveLength(transitions.length);
    for (const t of transitions) {
      // Targetless transitions (actions only) are drawn as self-loops.
      const target = t.target ?? t.source;
      let event = t.eventType
        .replace(/^xstate\.done\.actor\./, "done: ")
        .replace(/^xstate\.error\.actor\./, "error: ")
        .replace(/^xstate\.snapshot\./, "snapshot: ")
        .replace(/^xstate\.after\.([A-Za-z]\w*)\..+$/, "after $1"); // a named delay
      if (t.eventType === "") event = "always";
      const line = `${t.source.id} --> ${target.id} : ${event}`;
      const candidates = edgeLines.filter((l) => l.trim() === line || l.trim().startsWith(`${line} `));
      expect({ transition: line, found: candidates.length > 0 }).toEqual({ transition: line, found: true });
      if (t.guard !== undefined) {
        const guard =
          typeof t.guard === "string"
            ? t.guard
            : [
                (t.guard as { type: string }).type,
                ...Object.values((t.guard as { params?: Record<string, string> }).params ?? {}),
              ].join(" ");
        expect(candidates.some((l) => l.includes(`[${guard}]`))).toBe(true);
      }
    }
  });

  it("has a committed SVG that matches a fresh Graphviz rendering", async () => {
    let onDisk: string;
    try {
      onDisk = readFileSync(SVG, "utf8");
    } catch {
      throw new Error(`docs/${file}.svg is missing. ${RUN}`);
    }
    // Every state is a node (or, when compound, a cluster) titled with its id and labelled with its name.
    const missing = states
      .filter((n) => !onDisk.includes(`<title>${n.id}</title>`) && !onDisk.includes(`<title>cluster_${n.id}</title>`))
      .map((n) => n.id);
    expect(missing).toEqual([]);
    const unnamed = states.filter((n) => !onDisk.includes(`>${n.key}</text>`)).map((n) => n.key);
    expect(unnamed).toEqual([]);
    // Rendering takes well under a second (WASM Graphviz), so the whole picture is compared.
    const fresh = (await instance()).renderString(toDot(machine), { format: "svg" });
    expectUpToDate(`docs/${file}.svg`, source, normalizeSvg(onDisk), normalizeSvg(fresh));
  });
});

describe("the connection machine's diagram", () => {
  const mermaid = toMermaid(connectionMachine);

  it("marks the initial state of the machine and of every compound state", () => {
    expect(mermaid).toMatch(/^ {2}\[\*\] --> connection\.Initialized$/m);
    expect(mermaid).toMatch(/^ {4}\[\*\] --> connection\.FetchingConfig\.RequestingOpenIdToken$/m);
    expect(mermaid).toMatch(/^ {6}\[\*\] --> connection\.Livekit\.room\.disconnected$/m);
    expect(mermaid).toMatch(/^ {6}\[\*\] --> connection\.Livekit\.delayedLeave\.Checking$/m);
    expect(mermaid).toMatch(/^ {4}\[\*\] --> connection\.Failed\.Unknown$/m);
  });

  it("draws the regions of the parallel Livekit state side by side", () => {
    expect(mermaid).toMatch(
      /^ {4}state "room" as connection\.Livekit\.room \{$[\s\S]*^ {4}--$\n^ {4}(%%.*\n {4})?state "delayedLeave" as connection\.Livekit\.delayedLeave \{$/m,
    );
  });

  it("shows the parameterised guards and the shortened actor events", () => {
    expect(mermaid).toContain(
      "connection.Livekit --> connection.Failed.InsufficientCapacity : error: connectRoom [errorIs InsufficientCapacityError]",
    );
    expect(mermaid).toContain(
      "connection.FetchingConfig.RequestingSFUConfig --> connection.Livekit : done: requestSFUConfig",
    );
    expect(mermaid).not.toMatch(/xstate\.(done|error)\.actor/);
  });
});

describe("the connection manager's and slot's diagrams", () => {
  it("label the followed snapshots and the wildcard actor events", () => {
    const slot = toMermaid(connectionSlotMachine);
    expect(slot).toContain(
      "connectionSlot.Live --> connectionSlot.Live : snapshot: connection / classifyConnection, followConnection",
    );
    expect(slot).toContain("connectionSlot.Live.WaitingToRetry --> connectionSlot.Live.Running : after retryDelay");
    expect(slot).toContain("connectionSlot.Live.Retiring --> connectionSlot.Done : always [connectionStopped]");
    const manager = toMermaid(connectionManagerMachine);
    expect(manager).toContain("%% in every state: snapshot: * / followSlot");
    expect(manager).toContain(
      "connectionManager.Running --> connectionManager.Running : done: * / dropSlot, reconcile",
    );
    expect(`${slot}${manager}`).not.toMatch(/xstate\.(done|error|snapshot)\./);
  });
});

describe("diagram labels", () => {
  it("shortens the xstate built-in events", () => {
    expect(shortEventLabel("xstate.done.actor.requestOpenIdToken")).toBe("done: requestOpenIdToken");
    expect(shortEventLabel("xstate.error.actor.connectRoom")).toBe("error: connectRoom");
    expect(shortEventLabel("xstate.snapshot.connection")).toBe("snapshot: connection");
    expect(shortEventLabel("xstate.snapshot.*")).toBe("snapshot: *");
    expect(shortEventLabel("xstate.after.1000.connection.Stopping")).toBe("after 1000ms");
    expect(shortEventLabel("")).toBe("always");
    expect(shortEventLabel("room.connected")).toBe("room.connected");
  });

  it("renders named, parameterised and inline guards", () => {
    expect(guardLabel(undefined)).toBeUndefined();
    expect(guardLabel("hasExistingSFUConfig")).toBe("hasExistingSFUConfig");
    expect(guardLabel({ type: "errorIs", params: { name: "InsufficientCapacityError" } })).toBe(
      "errorIs InsufficientCapacityError",
    );
    expect(guardLabel({ type: "within", params: { min: 1, max: 3 } })).toBe("within min=1 max=3");
    expect(guardLabel({ type: "dynamic", params: () => ({}) })).toBe("dynamic(…)");
    expect(guardLabel(() => true)).toBe("inline");
  });
});
