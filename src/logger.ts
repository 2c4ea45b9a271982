import type { Logger } from "./types";

const noop = (): void => {};

/** A logger that drops everything: the default when none is given. */
export const silentLogger: Logger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  getChild: () => silentLogger,
};
