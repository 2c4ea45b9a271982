/**
 * What globalSetup hands to the tests: written as JSON to a file whose path is in $MATRIXRTC_E2E_ENV (Jest's
 * workers inherit the environment of the process that ran globalSetup).
 */
import { readFileSync } from "node:fs";

export const E2E_ENV_VAR = "MATRIXRTC_E2E_ENV";

/** The parts of scripts/stack's stack.json the tests use. */
export interface StackJson {
  run_dir: string;
  homeserver: { base_url: string; server_name: string; registration_shared_secret: string; log: string };
  jwt_service_impl: string;
  livekit_api_key: string;
  livekit_api_secret: string;
  livekit: Record<
    string,
    {
      ws_url: string;
      http_url: string;
      udp_port: number;
      client_stun_servers: string[];
      log: string;
      /** The LiveKit config file scripts/stack/stack.sh wrote for this instance. */
      config: string;
      auto_create: boolean;
    }
  >;
  jwt_services: Record<string, { url: string; livekit: string; livekit_ws_url: string; log: string }>;
}

/** A Matrix user registered by globalSetup (scripts/stack/register-user.mjs `registerUser`). */
export interface E2eUser {
  user_id: string;
  access_token: string;
  device_id: string;
}

export interface E2eEnv {
  /** http://127.0.0.1:<port>/ serving the bundled test page. */
  pageUrl: string;
  /** playwright-core `browserType.launchServer()` endpoint (ws://127.0.0.1:<port>/<secret path>). */
  wsEndpoint: string;
  stack: StackJson;
  stackJsonPath: string;
  chromiumVersion: string;
  /** Fresh users, one per browser context; tests take them in turn. */
  users: E2eUser[];
}

export function readE2eEnv(): E2eEnv {
  const path = process.env[E2E_ENV_VAR];
  if (!path) throw new Error(`$${E2E_ENV_VAR} is not set: run the e2e tests with \`npx jest --selectProjects e2e\``);
  return JSON.parse(readFileSync(path, "utf8")) as E2eEnv;
}
