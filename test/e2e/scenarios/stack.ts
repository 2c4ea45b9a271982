/** The stack itself, before any browser scenario. */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { e2e } from "../support/scenario";
import { ROOT } from "../support/stackAndBrowser";

export function stackScenarios(): void {
  test("0. the stack itself: every check of scripts/stack/smoke.mjs (auth path, variants, bad requests) passes", () => {
    const smoke = spawnSync(
      process.execPath,
      [join(ROOT, "scripts/stack/smoke.mjs"), "--stack", e2e.env.stackJsonPath],
      {
        encoding: "utf8",
        timeout: 120_000,
      },
    );
    const failed = (smoke.stdout ?? "").split("\n").filter((l) => l.startsWith("FAIL"));
    expect({ status: smoke.status, failed, stderr: smoke.stderr }).toEqual({ status: 0, failed: [], stderr: "" });
    expect(smoke.stdout).toMatch(/^smoke: [1-9]\d* passed, 0 failed$/m);
  });
}
