import { createActor, waitFor, type AnyStateMachine } from "xstate";
import { getStateNodes } from "xstate/graph";
import { connectionManagerMachine } from "../../machines/connectionManager.machine";
import { connectionSlotMachine } from "../../machines/connectionSlot.machine";
import { connectionMachine } from "../../src";

describe("the bare connectionMachine (no actors provided)", () => {
  test("says what is missing instead of hanging or crashing", async () => {
    const actor = createActor(connectionMachine, { input: {} }).start();
    actor.send({ type: "START" });
    const snapshot = await waitFor(actor, (s) => s.matches("Failed"), { timeout: 1000 });
    expect(snapshot.value).toEqual({ Failed: "OpenIdError" });
    expect(String(snapshot.context.error)).toMatch(
      /'requestOpenIdToken' actor has no implementation.*createConnectionActor/,
    );
    actor.stop();
  });

  const nodes = [connectionMachine.root, ...getStateNodes(connectionMachine.root)];

  test("every state has a description", () => {
    expect(nodes.filter((node) => !node.description).map((node) => node.id)).toEqual([]);
  });

  test("every invoke has an explicit id equal to its source", () => {
    const invokes = nodes.flatMap((node) => node.invoke.map((i) => ({ id: i.id, src: i.src })));
    expect(invokes.map((i) => i.id).sort()).toEqual([
      "connectRoom",
      "delegateDelayedLeave",
      "disconnectRoom",
      "requestOpenIdToken",
      "requestSFUConfig",
      "watchRoom",
    ]);
    for (const i of invokes) expect(i.src).toBe(i.id);
  });
});

describe.each([
  { machine: connectionSlotMachine as AnyStateMachine, invokes: ["connection", "prepareConnection"] },
  { machine: connectionManagerMachine as AnyStateMachine, invokes: [] },
])("the connection manager's charts: $machine.id", ({ machine, invokes }) => {
  const nodes = [machine.root, ...getStateNodes(machine.root)];

  test("every state has a description", () => {
    expect(nodes.filter((node) => !node.description).map((node) => node.id)).toEqual([]);
  });

  test("every invoke has an explicit id equal to its source", () => {
    const found = nodes.flatMap((node) => node.invoke.map((i) => ({ id: i.id, src: i.src })));
    expect(found.map((i) => i.id).sort()).toEqual(invokes);
    for (const i of found) expect(i.src).toBe(i.id);
  });
});

describe("the bare connectionSlotMachine (no prepareConnection provided)", () => {
  test("says what is missing, in Broken", async () => {
    const actor = createActor(connectionSlotMachine, {
      input: {
        key: "https://auth.example",
        transport: { type: "livekit", livekit_service_url: "https://auth.example" },
      },
    }).start();
    const snapshot = await waitFor(actor, (s) => s.matches("Broken"), { timeout: 1000 });
    expect(String(snapshot.context.error)).toMatch(/'prepareConnection' actor has no implementation/);
    actor.send({ type: "DISPOSE" });
    expect(actor.getSnapshot().status).toBe("done");
  });
});
