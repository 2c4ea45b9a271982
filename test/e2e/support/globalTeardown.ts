/** Jest globalTeardown of the `e2e` project: see globalSetup.ts. */
import { teardown } from "./globalSetup";

export default teardown;
