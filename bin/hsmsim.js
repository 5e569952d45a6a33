#!/usr/bin/env node
// The hsmsim CLI. The code lives in dist/ (built by `npm install` / `npm run build`).
import("../dist/cli/main.js")
  .then((m) => m.main(process.argv.slice(2)))
  .then((code) => process.exit(code ?? 0))
  .catch((e) => {
    if (e && e.code === "ERR_MODULE_NOT_FOUND" && String(e.message).includes("dist/cli")) {
      console.error("hsmsim: not built yet; run `npm install` (or `npm run build`) first");
      process.exit(2);
    }
    console.error(e);
    process.exit(1);
  });
