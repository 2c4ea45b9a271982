// Checks the published package as a consumer sees it:
//   1. npm run build, npm pack into a temp dir (and checks the tarball's file list);
//   2. two fresh projects, one ESM ("type": "module", `import {...} from`), one CommonJS (`require`), each
//      with the tarball and the peers (xstate, livekit-client, rxjs at the project's devDependency versions)
//      installed by `npm install --no-audit --no-fund`;
//   3. in each: the exports and their types, an actor from createConnectionActor with a fake room and client
//      reaching "Initialized", and a TypeScript consumer type-checked by this project's TypeScript 7 `tsc`
//      with `module: nodenext` (so index.d.mts / index.d.cts resolution is what gets checked).
// Exits non-zero with a message on the first failure. Temp dirs are removed (PACK_CHECK_KEEP=1 keeps them).
// Usage: node scripts/pack-check.mjs
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const PEERS = ["xstate", "livekit-client", "rxjs"];
const TSC = join(root, "node_modules", ".bin", process.platform === "win32" ? "tsc.cmd" : "tsc");
const KEEP = process.env.PACK_CHECK_KEEP === "1";

const TIMEOUT = {
  build: 180_000,
  pack: 60_000,
  install: 300_000,
  node: 30_000,
  tsc: 120_000,
  overall: 900_000,
};

const t0 = performance.now();
const secs = (since) => ((performance.now() - since) / 1000).toFixed(1) + " s";

class CheckError extends Error {
  constructor(message, details = "") {
    super(message);
    this.details = details;
  }
}

// ---- child processes, bounded ----------------------------------------------------------------------------

const children = new Set();

function killTree(child) {
  try {
    if (process.platform === "win32") child.kill("SIGKILL");
    else process.kill(-child.pid, "SIGKILL"); // the child leads its own process group (detached)
  } catch {
    // already gone
  }
}

/** Runs a command; resolves with its output, rejects with a CheckError on failure (unless allowFailure) or
 * timeout. */
function run(label, cmd, args, { cwd, timeoutMs, allowFailure = false }) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, {
      cwd,
      env: { ...process.env, npm_config_update_notifier: "false" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: process.platform !== "win32",
      shell: process.platform === "win32",
    });
    children.add(child);
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      killTree(child);
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      children.delete(child);
      reject(new CheckError(`${label}: could not run ${cmd}: ${e.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      const output = (stdout + stderr).trim();
      if (timedOut) reject(new CheckError(`${label}: timed out after ${timeoutMs / 1000} s`, output));
      else if (code !== 0 && !(allowFailure && code !== null)) {
        reject(new CheckError(`${label}: exited with ${code ?? signal}`, output));
      } else resolvePromise({ code, stdout, stderr });
    });
  });
}

async function step(label, fn) {
  const started = performance.now();
  const result = await fn();
  console.log(`  ok  ${label} (${secs(started)})`);
  return result;
}

// ---- what the consumers run -----------------------------------------------------------------------------

const CALL_ERRORS = [
  "FailToGetOpenIdToken",
  "InsufficientCapacityError",
  "LivekitConnectionError",
  "PeerConnectionTimeoutError",
  "SFURoomCreationRestrictedError",
  "UnknownCallError",
];
const OTHER_ERRORS = ["PhaseTimeoutError", "SFUConfigError", "InsecureTransportError", "RetryTooLateError"];

const NAMES = {
  function: [
    "createConnectionActor",
    "connectionDepsOf",
    "Connection",
    "getSFUConfigWithOpenID",
    "requestOpenIdToken",
    "requestSFUConfig",
    "decodeLivekitJwt",
    "connectionStateOf",
    "isCallError",
    "toCallError",
    "mapConnectError",
    "Secret",
    "reveal",
    "CallError",
    ...CALL_ERRORS,
    ...OTHER_ERRORS,
  ],
  object: [
    "connectionMachine",
    "connectionActors",
    "ConnectionState",
    "ErrorCode",
    "ErrorCategory",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUTS",
  ],
};
const ALL = [...NAMES.function, ...NAMES.object];

/** The runtime check, after `pkg`, `resolved` and `assert` are defined by the ESM or CJS header. */
const RUNTIME_BODY = `
const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); };

check(resolved.endsWith(EXPECTED_ENTRY), "the package resolved to " + resolved + ", not dist/" + EXPECTED_ENTRY);
for (const name of ${JSON.stringify(NAMES.function)}) check(typeof pkg[name] === "function", name + " is " + typeof pkg[name] + ", not a function");
for (const name of ${JSON.stringify(NAMES.object)}) check(typeof pkg[name] === "object" && pkg[name] !== null, name + " is " + typeof pkg[name] + ", not an object");
for (const name of ${JSON.stringify(CALL_ERRORS)}) check(pkg[name]?.prototype instanceof pkg.CallError, name + " does not extend CallError");
for (const name of ${JSON.stringify([...OTHER_ERRORS, "CallError"])}) check(pkg[name]?.prototype instanceof Error, name + " does not extend Error");
check(typeof pkg.connectionMachine?.provide === "function", "connectionMachine is not an XState machine (no provide())");
check(pkg.ConnectionState?.Initialized === "Initialized", "ConnectionState.Initialized is not \\"Initialized\\"");
check(pkg.isCallError(new pkg.UnknownCallError(new Error("x"))), "isCallError(new UnknownCallError()) is false");
check(typeof view.mountStatechartView === "function", "the ./view export has no mountStatechartView()");

const calls = [];
const room = {
  state: "disconnected",
  remoteParticipants: new Map(),
  async connect(...args) { calls.push("connect"); },
  async disconnect() { calls.push("disconnect"); },
  on(...args) { calls.push("on"); return this; },
  off(...args) { calls.push("off"); return this; },
};
const client = {
  async getOpenIdToken() {
    calls.push("getOpenIdToken");
    return { access_token: "token", token_type: "Bearer", matrix_server_name: "example.org", expires_in: 3600 };
  },
};
const options = {
  room,
  client,
  transport: { type: "livekit", livekit_service_url: "https://livekit-jwt.example.org" },
  roomId: "!room:example.org",
  ownMembershipIdentity: { userId: "@alice:example.org", deviceId: "DEVICE", memberId: "member" },
};
let threw;
try { pkg.createConnectionActor({ ...options, roomId: "" }); } catch (e) { threw = e; }
check(threw instanceof TypeError, "createConnectionActor did not throw a TypeError for an empty roomId");

const actor = pkg.createConnectionActor(options);
actor.start();
const snapshot = actor.getSnapshot();
check(snapshot.status === "active", "the actor's status is " + snapshot.status + ", not active");
check(snapshot.value === "Initialized", "the snapshot value is " + JSON.stringify(snapshot.value) + ", not \\"Initialized\\"");
check(pkg.connectionStateOf(snapshot) === pkg.ConnectionState.Initialized, "connectionStateOf(snapshot) is not ConnectionState.Initialized");
actor.stop();
check(!calls.includes("connect") && !calls.includes("getOpenIdToken"), "the actor did I/O before START: " + calls.join(", "));

if (failures.length) {
  console.error(failures.map((f) => "  - " + f).join("\\n"));
  process.exit(1);
}
console.log("runtime ok: " + ${ALL.length} + " exports, snapshot " + JSON.stringify(snapshot.value));
`;

const IMPORT_LIST = ALL.join(", ");
const RUNTIME = {
  esm: `import { ${IMPORT_LIST} } from "${pkg.name}";
const pkg = { ${IMPORT_LIST} };
const resolved = import.meta.resolve("${pkg.name}");
const EXPECTED_ENTRY = "/dist/index.mjs";
const view = await import("${pkg.name}/view");
${RUNTIME_BODY}`,
  cjs: `const { ${IMPORT_LIST} } = require("${pkg.name}");
const pkg = { ${IMPORT_LIST} };
const resolved = require.resolve("${pkg.name}").replace(/\\\\/g, "/");
const EXPECTED_ENTRY = "/dist/index.cjs";
const view = require("${pkg.name}/view");
${RUNTIME_BODY}`,
};

/** A consumer in TypeScript; a file of either format (by the project's "type"). The @ts-expect-error lines
 * fail the check if the types degrade to `any`. */
const CONSUMER_TS = `import {
  CallError,
  Connection,
  ConnectionState,
  FailToGetOpenIdToken,
  connectionMachine,
  createConnectionActor,
  getSFUConfigWithOpenID,
  isCallError,
  type ConnectionActorOptions,
  type LivekitRoomLike,
  type OpenIDClientParts,
  type SFUConfig,
} from "${pkg.name}";
import { mountStatechartView, type StatechartView } from "${pkg.name}/view";
import { createActor, type Actor, type SnapshotFrom } from "xstate";
import type { Room } from "livekit-client";
import type { Observable } from "rxjs";

declare const room: Room; // a real livekit-client Room fits LivekitRoomLike
const roomLike: LivekitRoomLike = room;
const client: OpenIDClientParts = {
  getOpenIdToken: async () => ({ access_token: "t", token_type: "Bearer", matrix_server_name: "example.org", expires_in: 3600 }),
};
const options: ConnectionActorOptions = {
  room: roomLike,
  client,
  transport: { type: "livekit", livekit_service_url: "https://livekit-jwt.example.org" },
  roomId: "!room:example.org",
  ownMembershipIdentity: { userId: "@alice:example.org", deviceId: "DEVICE", memberId: "member" },
};

// The package's xstate types are the consumer's xstate types.
const actor: Actor<typeof connectionMachine> = createConnectionActor(options);
const snapshot: SnapshotFrom<typeof connectionMachine> = actor.getSnapshot();
const initialized: boolean = snapshot.matches("Initialized");
actor.send({ type: "START" });
// @ts-expect-error not an event of the machine
actor.send({ type: "NOT_AN_EVENT" });
const plain = createActor(connectionMachine, { input: {} });

const state: ConnectionState = ConnectionState.Initialized;
const config: Promise<SFUConfig> = getSFUConfigWithOpenID(client, options.ownMembershipIdentity, "https://x.example.org", "!r:x");
const error: CallError = new FailToGetOpenIdToken(new Error("x"));
const isError: boolean = isCallError(error);
// @ts-expect-error CallError is abstract
new CallError("title", 0, 0);
// @ts-expect-error the options are typed
createConnectionActor({ room: roomLike });

const connection = new Connection({
  transport: options.transport,
  client,
  roomId: options.roomId,
  ownMembershipIdentity: options.ownMembershipIdentity,
  livekitRoomFactory: () => room,
});
const state$: Observable<ConnectionState | CallError> = connection.state$;
const current: ConnectionState | CallError = connection.state$.value;
const sameRoom: Room = connection.livekitRoom;

// The view's subpath export, typed: it takes a Connection (or any actor) and a DOM element.
declare const panel: HTMLElement;
const view: StatechartView = mountStatechartView(panel, connection);
// @ts-expect-error the view needs an actor
mountStatechartView(panel, {});

export { initialized, plain, state, config, isError, state$, current, sameRoom, view };
`;

const TSCONFIG = {
  compilerOptions: {
    target: "es2022",
    module: "nodenext",
    moduleResolution: "nodenext",
    lib: ["es2023", "dom"],
    strict: true,
    noEmit: true,
    skipLibCheck: false,
    types: [],
  },
  files: ["consumer.ts"],
};

// ---- the check ------------------------------------------------------------------------------------------

const work = mkdtempSync(join(tmpdir(), "pack-check-"));
let cleanedUp = false;
function cleanup() {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const child of children) killTree(child);
  if (KEEP) console.log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    console.error(`pack-check: ${sig}, stopping`);
    cleanup();
    process.exit(130);
  });
}
const overall = setTimeout(() => {
  console.error(`pack-check FAILED: took longer than ${TIMEOUT.overall / 1000} s`);
  cleanup();
  process.exit(1);
}, TIMEOUT.overall);
overall.unref();

async function checkProject(kind, tarball, peerSpecs) {
  const dir = join(work, kind);
  mkdirSync(dir);
  const manifest = { name: `pack-check-${kind}`, version: "0.0.0", private: true };
  if (kind === "esm") manifest.type = "module";
  writeFileSync(join(dir, "package.json"), JSON.stringify(manifest, null, 2) + "\n");

  await step(`${kind}: npm install the tarball + ${peerSpecs.join(" ")}`, () =>
    run(`${kind}: npm install`, "npm", ["install", "--no-audit", "--no-fund", tarball, ...peerSpecs], {
      cwd: dir,
      timeoutMs: TIMEOUT.install,
    }),
  );

  const runtimeFile = kind === "esm" ? "check.mjs" : "check.cjs";
  writeFileSync(join(dir, runtimeFile), RUNTIME[kind]);
  const { stdout } = await step(`${kind}: exports and actor at runtime (node ${runtimeFile})`, () =>
    run(`${kind}: node ${runtimeFile}`, process.execPath, [runtimeFile], { cwd: dir, timeoutMs: TIMEOUT.node }),
  );
  console.log(`      ${stdout.trim()}`);

  writeFileSync(join(dir, "consumer.ts"), CONSUMER_TS);
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify(TSCONFIG, null, 2) + "\n");
  const tsc = await step(`${kind}: TypeScript consumer (tsc, module nodenext)`, async () => {
    const result = await run(`${kind}: tsc -p tsconfig.json`, TSC, ["-p", "tsconfig.json", "--listFiles"], {
      cwd: dir,
      timeoutMs: TIMEOUT.tsc,
      allowFailure: true,
    });
    // skipLibCheck is off so that the package's own declarations get checked; errors inside other packages'
    // declarations (livekit-client's import `sdp-transform` and `@livekit/throws-transformer`, whose types it
    // does not depend on) are not this package's and are only counted. Everything else fails the check: the consumer, the package's .d.ts files, the config.
    const lines = (result.stdout + result.stderr).split(/\r?\n/);
    const errors = [];
    let thirdParty = 0;
    for (const [i, line] of lines.entries()) {
      const m = /^(.*?)\(\d+,\d+\): error TS\d+/.exec(line) ?? /^error TS\d+/.exec(line);
      if (!m) continue;
      const file = (m[1] ?? "").replace(/\\/g, "/");
      if (file.includes("node_modules/") && !file.includes(`node_modules/${pkg.name}/`)) {
        thirdParty++;
        continue;
      }
      errors.push(line);
      for (let j = i + 1; j < lines.length && /^\s/.test(lines[j]); j++) errors.push(lines[j]); // its details
    }
    if (errors.length || (result.code !== 0 && thirdParty === 0)) {
      throw new CheckError(
        `${kind}: the TypeScript consumer does not type-check`,
        errors.join("\n") || result.stdout + result.stderr,
      );
    }
    return { ...result, thirdParty };
  });
  const files = tsc.stdout.split(/\r?\n/).map((f) => f.replace(/\\/g, "/"));
  const wanted = kind === "esm" ? "index.d.mts" : "index.d.cts";
  const other = kind === "esm" ? "index.d.cts" : "index.d.mts";
  const inPackage = (f) => f.includes(`/node_modules/${pkg.name}/dist/`);
  if (
    !files.some((f) => inPackage(f) && f.endsWith(`/dist/${wanted}`)) ||
    files.some((f) => inPackage(f) && f.endsWith(`/dist/${other}`))
  ) {
    const used = files.filter(inPackage).join("\n");
    throw new CheckError(`${kind}: tsc did not resolve the package to dist/${wanted}`, used);
  }
  if (tsc.thirdParty) console.log(`      (ignored ${tsc.thirdParty} errors in other packages' declarations)`);
  console.log(`      types from dist/${wanted}`);
}

let failed = false;
try {
  for (const peer of PEERS) {
    if (!pkg.devDependencies?.[peer]) throw new CheckError(`${peer} is not in the devDependencies of package.json`);
  }
  const peerSpecs = PEERS.map((p) => `${p}@${pkg.devDependencies[p]}`);
  console.log(`pack-check of ${pkg.name}@${pkg.version} in ${work}`);

  await step("npm run build", () =>
    run("npm run build", "npm", ["run", "build"], { cwd: root, timeoutMs: TIMEOUT.build }),
  );

  const packDir = join(work, "pack");
  mkdirSync(packDir);
  const { stdout: packOut } = await step("npm pack", () =>
    run("npm pack", "npm", ["pack", "--json", "--pack-destination", packDir], { cwd: root, timeoutMs: TIMEOUT.pack }),
  );
  let packed;
  try {
    packed = JSON.parse(packOut.slice(packOut.indexOf("[")))[0];
  } catch (e) {
    throw new CheckError(`npm pack: could not read its --json output (${e.message})`, packOut);
  }
  const packedFiles = packed.files.map((f) => f.path);
  const required = [
    "package.json",
    "dist/index.mjs",
    "dist/index.cjs",
    "dist/index.d.mts",
    "dist/index.d.cts",
    "dist/types/src/index.d.ts",
    "dist/types/machines/connection.machine.d.ts",
  ];
  const missing = required.filter((f) => !packedFiles.includes(f));
  if (missing.length) throw new CheckError(`the tarball lacks ${missing.join(", ")}`, packedFiles.join("\n"));
  const stray = packedFiles.filter((f) => /^(src|test|machines|scripts|node_modules)\//.test(f));
  if (stray.length) throw new CheckError(`the tarball has files that should not be published`, stray.join("\n"));
  console.log(
    `      ${packed.filename}: ${packed.size} B packed, ${packed.unpackedSize} B unpacked, ${packedFiles.length} files`,
  );
  const tarball = join(packDir, packed.filename);

  const results = await Promise.allSettled(["esm", "cjs"].map((kind) => checkProject(kind, tarball, peerSpecs)));
  const errors = results.filter((r) => r.status === "rejected").map((r) => r.reason);
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) {
    throw new CheckError(
      errors.map((e) => e.message).join("; "),
      errors.map((e) => `--- ${e.message}\n${e.details ?? e.stack}`).join("\n"),
    );
  }
} catch (e) {
  failed = true;
  console.error(`\npack-check FAILED: ${e.message}`);
  if (e instanceof CheckError) {
    if (e.details) console.error(e.details.split("\n").slice(-80).join("\n"));
  } else {
    console.error(e.stack);
  }
} finally {
  cleanup();
  clearTimeout(overall);
}
console.log(`pack-check ${failed ? "failed" : "passed"} in ${secs(t0)}`);
process.exit(failed ? 1 : 0);
