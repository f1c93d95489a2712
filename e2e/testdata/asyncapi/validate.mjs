// Validates an AsyncAPI document with the AsyncAPI initiative's own parser (its JSON Schema of
// the specification and its Spectral rules): exits 1 listing every error-level diagnostic.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const text = readFileSync(process.argv[2], "utf8");
const { document, diagnostics } = await new Parser().parse(text);
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of errors) {
  console.error(`${d.path.join(".")}: ${d.message}`);
}
if (!document || errors.length > 0) {
  process.exit(1);
}
const names = document.messages().all().map((m) => m.name());
console.log(JSON.stringify({ version: document.version(), messages: names }));
