/** @jest-config-loader esbuild-register */
import type { Config } from "jest";

const common = {
  testEnvironment: "node",
  transform: { "^.+\\.(t|j)sx?$": ["@swc/jest", {}] as [string, Record<string, unknown>] },
  // matrix-js-sdk (used in tests as the real Matrix client) and its dependencies are ESM-only.
  transformIgnorePatterns: ["/node_modules/(?!(matrix-js-sdk|p-retry|is-network-error|content-type)/)"],
};

const config: Config = {
  projects: [
    { ...common, displayName: "unit", testMatch: ["<rootDir>/test/unit/**/*.test.ts", "<rootDir>/test/*.test.ts"] },
    { ...common, displayName: "model", testMatch: ["<rootDir>/test/model/**/*.test.ts"] },
  ],
  collectCoverageFrom: ["machines/**/*.ts", "src/**/*.ts"],
  coverageReporters: ["text-summary", "text"],
};

export default config;
