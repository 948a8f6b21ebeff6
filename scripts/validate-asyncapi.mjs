// Validates an AsyncAPI document with the AsyncAPI Initiative's parser (its JSON Schema and
// Spectral rules); prints the diagnostics and exits 1 on any error.
// Usage: node validate-asyncapi.mjs <parser module dir> <document>
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";

const [moduleDir, document] = process.argv.slice(2);
const require = createRequire(`${resolve(moduleDir)}/`);
const { Parser } = require("@asyncapi/parser");
const parser = new Parser();
const { document: parsed, diagnostics } = await parser.parse(readFileSync(document, "utf8"));
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of diagnostics) {
  console.log(`${["error", "warning", "info", "hint"][d.severity]} ${d.code} ${d.path.join(".")}: ${d.message}`);
}
if (!parsed || errors.length) process.exit(1);
console.log(`valid: ${parsed.channels().length} channels, ${parsed.allMessages().length} messages`);
