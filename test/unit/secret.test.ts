import { inspect } from "node:util";
import { Secret, reveal } from "../../src";

describe("Secret", () => {
  test("prints as [redacted] whichever way it is turned into text", () => {
    const s = new Secret("eyJ.secret.jwt");
    expect(JSON.stringify({ s })).toBe('{"s":"[redacted]"}');
    expect(String(s)).toBe("[redacted]");
    expect(`${s}`).toBe("[redacted]");
    expect(inspect({ s })).toBe("{ s: Secret([redacted]) }");
    expect(Object.keys(s)).toEqual([]);
    expect(reveal(s)).toBe("eyJ.secret.jwt");
  });

  test("reveal refuses anything that is not a Secret", () => {
    expect(() => reveal({} as Secret<string>)).toThrow(TypeError);
  });
});
