// Each e2e scenario drives a browser against real servers: allow it time (scenarios bound their own waits).
jest.setTimeout(120_000);
