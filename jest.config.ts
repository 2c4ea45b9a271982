/** @jest-config-loader esbuild-register */
import type { Config } from "jest";

const common = {
  testEnvironment: "node",
  transform: { "^.+\\.(t|m?j)sx?$": ["@swc/jest", {}] as [string, Record<string, unknown>] },
  // matrix-js-sdk (used in tests as the real Matrix client) and its dependencies, and @statelyai/inspect (the
  // WebSocket inspector in test/unit/statelyInspect.test.ts), are ESM-only.
  transformIgnorePatterns: [
    "/node_modules/(?!(matrix-js-sdk|p-retry|is-network-error|content-type|@statelyai/inspect)/)",
  ],
};

const config: Config = {
  projects: [
    { ...common, displayName: "unit", testMatch: ["<rootDir>/test/unit/**/*.test.ts", "<rootDir>/test/*.test.ts"] },
    { ...common, displayName: "model", testMatch: ["<rootDir>/test/model/**/*.test.ts"] },
    // Property-based (fast-check): FUZZ_RUNS and FUZZ_SEED choose the run (test/fuzz/connection.fuzz.test.ts).
    { ...common, displayName: "fuzz", testMatch: ["<rootDir>/test/fuzz/**/*.test.ts"] },
    {
      // Browser end-to-end tests against a real loopback Synapse + LiveKit + jwt service (test/e2e/README.md).
      // Its globalSetup installs/starts the stack, bundles the test page and launches Chromium. The scenarios
      // (test/e2e/scenarios/, a file per family) share one browser and one stack, so one test file runs them all,
      // one after the other.
      ...common,
      displayName: "e2e",
      testMatch: ["<rootDir>/test/e2e/**/*.e2e.test.ts"],
      globalSetup: "<rootDir>/test/e2e/support/globalSetup.ts",
      globalTeardown: "<rootDir>/test/e2e/support/globalTeardown.ts",
      // A project-level testTimeout is ignored by jest-circus (it reads only the global one): the setup file
      // sets a generous default instead.
      setupFilesAfterEnv: ["<rootDir>/test/e2e/support/setupAfterEnv.ts"],
    },
  ],
  collectCoverageFrom: ["machines/**/*.ts", "src/**/*.ts"],
  coverageReporters: ["text-summary", "text"],
};

export default config;
