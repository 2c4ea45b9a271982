import { createActor, waitFor } from "xstate";
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

  test("every state has a description", () => {
    const walk = (node: typeof connectionMachine.root): string[] => [
      ...(node.description ? [] : [node.id]),
      ...Object.values(node.states).flatMap(walk),
    ];
    expect(walk(connectionMachine.root)).toEqual([]);
  });

  test("every invoke has an explicit id equal to its source", () => {
    const walk = (node: typeof connectionMachine.root): { id: string; src: unknown }[] => [
      ...node.invoke.map((i) => ({ id: i.id, src: i.src })),
      ...Object.values(node.states).flatMap(walk),
    ];
    const invokes = walk(connectionMachine.root);
    expect(invokes.map((i) => i.id).sort()).toEqual([
      "connectRoom",
      "disconnectRoom",
      "requestOpenIdToken",
      "requestSFUConfig",
      "watchRoom",
    ]);
    for (const i of invokes) expect(i.src).toBe(i.id);
  });
});
