import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The console's page: Preact + TypeScript, built into dist/ui and served by `lifeboat ui`
// (no CDN, nothing fetched at run time).
const here = fileURLToPath(new URL(".", import.meta.url));

export default defineConfig({
  root: here,
  base: "/",
  logLevel: "warn",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: fileURLToPath(new URL("../dist/ui", import.meta.url)),
    emptyOutDir: true,
    sourcemap: false,
    reportCompressedSize: false,
  },
});
