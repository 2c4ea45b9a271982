/**
 * Coverage of real statecharts, recorded from their inspection events: which state nodes were active and which
 * transitions were taken, per machine (by the `machine.id` of the snapshot that reports it), compared with every
 * state node and every transition (event, `after`, `always`, invoke `onDone`/`onError`/`onSnapshot`) the chart
 * has. The model-based suites demand all of them.
 */
import type { AnyStateMachine, AnyStateNode, InspectionEvent, StateValue } from "xstate";
import { getStateNodes } from "xstate/graph";

const transitionKey = (source: AnyStateNode, eventType: string, index: number): string =>
  `${source.id} --${eventType}[${index}]--> `;

function stateIds(value: StateValue, prefix: string): string[] {
  if (typeof value === "string") return [prefix, `${prefix}.${value}`];
  return [prefix, ...Object.entries(value).flatMap(([k, v]) => stateIds(v as StateValue, `${prefix}.${k}`))];
}

/** The machine's state nodes, the root included. */
const allStateNodes = (root: AnyStateNode): AnyStateNode[] => [root, ...getStateNodes(root)];

function allTransitions(root: AnyStateNode): string[] {
  return allStateNodes(root).flatMap((node) =>
    [...node.transitions.entries(), ["", node.always ?? []] as const].flatMap(([eventType, ts]) =>
      ts.map((_, i) => transitionKey(node, eventType, i)),
    ),
  );
}

export interface CoverageFigures {
  states: { covered: number; total: number; missing: string[] };
  transitions: { covered: number; total: number; missing: string[] };
}

/** What the inspection stream showed of each machine in `machines` (a provided copy counts as its chart). */
export class ChartCoverage {
  /** Off while a test cleans up, so the clean-up's own transitions do not count as covered. */
  recording = false;
  private readonly states = new Map<string, Set<string>>();
  private readonly transitions = new Map<string, Set<string>>();

  constructor(private readonly machines: readonly AnyStateMachine[]) {
    for (const m of machines) {
      this.states.set(m.id, new Set());
      this.transitions.set(m.id, new Set());
    }
  }

  /** An inspect observer. */
  readonly record = (event: InspectionEvent): void => {
    if (!this.recording) return;
    if (event.type !== "@xstate.microstep" && event.type !== "@xstate.snapshot") return;
    const snapshot = event.snapshot as { machine?: { id?: unknown }; value?: StateValue };
    const id = snapshot.machine?.id;
    if (typeof id !== "string") return; // not a machine (a promise or callback actor)
    const states = this.states.get(id);
    const transitions = this.transitions.get(id);
    if (!states || !transitions) return; // a machine this coverage does not follow
    // Microsteps, not snapshots alone: a transient state is only ever seen between two microsteps.
    if (event.type === "@xstate.microstep") {
      // `_transitions` is not public API: fail loudly if an xstate upgrade changes it.
      if (!Array.isArray(event._transitions)) throw new Error("xstate's microstep event no longer lists _transitions");
      for (const t of event._transitions) {
        const candidates = t.eventType === "" ? t.source.always! : t.source.transitions.get(t.eventType)!;
        transitions.add(transitionKey(t.source, t.eventType, candidates.indexOf(t)));
      }
    }
    for (const stateId of stateIds(snapshot.value!, id)) states.add(stateId);
  };

  figures(machine: AnyStateMachine): CoverageFigures {
    const states = this.states.get(machine.id)!;
    const transitions = this.transitions.get(machine.id)!;
    const allStates = allStateNodes(machine.root).map((n) => n.id);
    const all = allTransitions(machine.root);
    return {
      states: {
        covered: allStates.filter((s) => states.has(s)).length,
        total: allStates.length,
        missing: allStates.filter((s) => !states.has(s)),
      },
      transitions: {
        covered: all.filter((t) => transitions.has(t)).length,
        total: all.length,
        missing: all.filter((t) => !transitions.has(t)),
      },
    };
  }
}

/**
 * `createTestModel` options for a vertex per model transition: xstate/graph's default folds every self-loop of a
 * state into one vertex, which would leave all but one of them unexecuted.
 */
export const ONE_PATH_PER_TRANSITION = {
  serializeTransition: (_: unknown, event: { type: string } | undefined, previous: { value: unknown } | undefined) =>
    event && previous ? ` via ${event.type} from ${JSON.stringify(previous.value)}` : "",
};
