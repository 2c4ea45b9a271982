import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "coverage/", "node_modules/", ".scratch/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
    },
  },
  {
    // The statechart stays free of I/O: only xstate at runtime, types from elsewhere.
    files: ["machines/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            // (and its sibling machines: the connection manager's slot owns a connectionMachine)
            {
              regex: "^(?!xstate$|\\./[\\w.]+\\.machine$)",
              allowTypeImports: true,
              message: "machines/ imports only xstate (and machines/*.machine) at runtime",
            },
            { regex: "^\\.\\./src(/|$)", message: "src/ imports machines/, never the other way (types included)" },
          ],
        },
      ],
    },
  },
);
