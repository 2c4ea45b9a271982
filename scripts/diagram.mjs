#!/usr/bin/env node
// Generates docs/<name>.mmd (Mermaid) and docs/<name>.svg (Graphviz, rendered offline by @viz-js/viz) for each
// XState machine in `machines` below: the connection (machines/connection.machine.ts), the connection manager's
// slot (machines/connectionSlot.machine.ts) and the connection manager (machines/connectionManager.machine.ts).
//
//   npm run diagram              write the files
//   npm run diagram -- --check   exit 1 if a file on disk differs from what would be written
//
// The machines and scripts/diagram-lib.ts are TypeScript: esbuild bundles them (packages left external) to a
// temporary .mjs under node_modules/.cache, which is imported and deleted.
import { build } from "esbuild";
import { instance } from "@viz-js/viz";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** Each machine (an export of the bundle below) and the base name of its files in docs/. */
const machines = [
  { name: "connectionMachine", file: "connection-machine", source: "machines/connection.machine.ts" },
  { name: "connectionSlotMachine", file: "connection-slot-machine", source: "machines/connectionSlot.machine.ts" },
  {
    name: "connectionManagerMachine",
    file: "connection-manager-machine",
    source: "machines/connectionManager.machine.ts",
  },
];
const outputsOf = (file) => ({
  mermaid: join(root, "docs", `${file}.mmd`),
  svg: join(root, "docs", `${file}.svg`),
});

async function loadModules() {
  const cacheDir = join(root, "node_modules", ".cache", "connection-diagram");
  await mkdir(cacheDir, { recursive: true });
  const outfile = join(cacheDir, `bundle-${process.pid}-${Date.now()}.mjs`);
  await build({
    stdin: {
      contents: [
        'export { connectionMachine } from "./machines/connection.machine.ts";',
        'export { connectionSlotMachine } from "./machines/connectionSlot.machine.ts";',
        'export { connectionManagerMachine } from "./machines/connectionManager.machine.ts";',
        'export * as lib from "./scripts/diagram-lib.ts";',
      ].join("\n"),
      resolveDir: root,
      sourcefile: "diagram-entry.ts",
      loader: "ts",
    },
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    packages: "external",
    outfile,
    logLevel: "warning",
  });
  try {
    return await import(pathToFileURL(outfile).href);
  } finally {
    await rm(outfile, { force: true });
  }
}

async function renderSvg(dot) {
  const viz = await instance();
  const result = viz.render(dot, { format: "svg" });
  for (const e of result.errors) console.error(`graphviz ${e.level ?? "message"}: ${e.message.trim()}`);
  if (result.status !== "success") throw new Error("Graphviz failed to render the DOT source");
  return result.output;
}

async function readOrUndefined(file) {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    if (error && error.code === "ENOENT") return undefined;
    throw error;
  }
}

async function main() {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== "--check");
  if (unknown.length > 0) {
    console.error(`usage: node scripts/diagram.mjs [--check]   (unknown argument: ${unknown.join(" ")})`);
    process.exit(2);
  }
  const check = args.includes("--check");

  const started = performance.now();
  const modules = await loadModules();
  const { lib } = modules;
  const normalize = { mermaid: lib.normalizeText, svg: lib.normalizeSvg };
  const stale = [];
  for (const { name, file, source } of machines) {
    const machine = modules[name];
    const fresh = { mermaid: lib.toMermaid(machine), svg: await renderSvg(lib.toDot(machine)) };
    const outputs = outputsOf(file);

    if (check) {
      for (const kind of /** @type {const} */ (["mermaid", "svg"])) {
        const onDisk = await readOrUndefined(outputs[kind]);
        const path = relative(root, outputs[kind]);
        if (onDisk === undefined) stale.push(`${path} is missing (${source})`);
        else if (normalize[kind](onDisk) !== normalize[kind](fresh[kind]))
          stale.push(`${path} is out of date (${source})`);
      }
      continue;
    }

    await mkdir(dirname(outputs.mermaid), { recursive: true });
    for (const kind of /** @type {const} */ (["mermaid", "svg"])) {
      const path = outputs[kind];
      const before = await readOrUndefined(path);
      const changed = before === undefined || normalize[kind](before) !== normalize[kind](fresh[kind]);
      if (changed) await writeFile(path, fresh[kind]);
      const size = Buffer.byteLength(fresh[kind]);
      console.log(`${changed ? "wrote    " : "unchanged"} ${relative(root, path)} (${size} bytes)`);
    }
  }

  if (check) {
    if (stale.length > 0) {
      console.error(
        `The state machine diagrams do not match the machines:\n` +
          stale.map((s) => `  - ${s}`).join("\n") +
          `\nRun \`npm run diagram\` and commit the result.`,
      );
      process.exit(1);
    }
    console.log(`Diagrams are up to date (${Math.round(performance.now() - started)} ms).`);
    return;
  }
  console.log(`done in ${Math.round(performance.now() - started)} ms`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
