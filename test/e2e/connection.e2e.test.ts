/**
 * End-to-end: the real `Connection` (our src/, bundled) in Chromium, with a real matrix-js-sdk client and a real
 * livekit-client `Room`, against a real loopback stack: Synapse 1.163.2, livekit-server v1.13.5 and the
 * lk-jwt-service stand-in (scripts/stack). Each scenario asserts the exact `state$` sequence the page recorded
 * and what LiveKit itself says (RoomService ListParticipants / ListRooms). See test/e2e/README.md.
 *
 * The scenarios live in scenarios/, one file per family; they share one stack and one browser and run one after
 * the other, so this one test file runs them all.
 */
import { delegationScenarios } from "./scenarios/delegation";
import { lifecycleScenarios } from "./scenarios/lifecycle";
import { liveViewScenarios } from "./scenarios/liveView";
import { measuredScenarios } from "./scenarios/measured";
import { multiSfuScenarios } from "./scenarios/multiSfu";
import { refusalScenarios } from "./scenarios/refusals";
import { sfuEventScenarios } from "./scenarios/sfuEvents";
import { stackScenarios } from "./scenarios/stack";
import { stoppingScenarios } from "./scenarios/stopping";
import { stopAllDedicatedSfus } from "./support/dedicatedSfu";
import { START_TO_CONNECTED, e2e, timings } from "./support/scenario";

beforeAll(() => e2e.open());
afterAll(async () => {
  await stopAllDedicatedSfus(); // the scenarios stop theirs in `finally`; this catches anything left over
  await e2e.close();
  const measures = [...new Set(timings.map((x) => x.measure ?? START_TO_CONNECTED))];
  for (const measure of measures) {
    const lines = timings
      .filter((x) => (x.measure ?? START_TO_CONNECTED) === measure)
      .map((x) => `  ${x.test}: ${x.ms.toFixed(1)}`);
    console.log(`${measure}:\n${lines.join("\n")}`);
  }
});

stackScenarios();

describe("Connection in Chromium against a real LiveKit", () => {
  lifecycleScenarios();
  stoppingScenarios();
  refusalScenarios();
  sfuEventScenarios();
  delegationScenarios();
  multiSfuScenarios();
  liveViewScenarios();
  measuredScenarios();
});
