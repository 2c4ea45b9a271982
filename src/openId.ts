import { silentLogger } from "./logger";
import { abortable, withRetry } from "./retry";
import { scrubSecrets } from "./secret";
import type { Logger, OpenIDClientParts, OpenIDToken, RetryOptions } from "./types";

function checkOpenIdToken(token: unknown): OpenIDToken {
  const t = token as Partial<OpenIDToken> | null;
  if (
    typeof t !== "object" ||
    t === null ||
    typeof t.access_token !== "string" ||
    t.access_token === "" ||
    typeof t.matrix_server_name !== "string" ||
    t.matrix_server_name === ""
  ) {
    throw new TypeError("the homeserver's OpenID token lacks access_token or matrix_server_name");
  }
  if (t.access_token.length > 4096) throw new TypeError("the homeserver's OpenID access token is over 4096 characters");
  return t as OpenIDToken;
}

export interface OpenIdRequestOptions {
  retry?: RetryOptions;
  signal?: AbortSignal;
  logger?: Logger;
  /** When the request must be over (ms since the epoch): a retry that would come later is not made. */
  deadline?: number;
}

/**
 * `client.getOpenIdToken()` with matrix-js-sdk's retry policy. The request itself cannot be cancelled
 * (matrix-js-sdk takes no signal); an abort stops the waiting and the retries.
 */
export async function requestOpenIdToken(
  client: OpenIDClientParts,
  options: OpenIdRequestOptions = {},
): Promise<OpenIDToken> {
  const signal = options.signal ?? new AbortController().signal;
  const logger = options.logger ?? silentLogger;
  logger.debug("requesting an OpenID token from the homeserver");
  // A matrix-js-sdk client that sends its access token in the query string has it in its errors' URLs.
  const matrixToken = typeof client.getAccessToken === "function" ? client.getAccessToken() : undefined;
  const attempt = async (): Promise<OpenIDToken> => {
    try {
      return checkOpenIdToken(
        await abortable(
          Promise.resolve().then(() => client.getOpenIdToken()),
          signal,
        ),
      );
    } catch (e) {
      throw scrubSecrets(e, [matrixToken]);
    }
  };
  return withRetry("OpenID token request", attempt, {
    retry: options.retry,
    signal,
    logger,
    deadline: options.deadline,
  });
}
