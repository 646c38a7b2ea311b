// Build config of the Kinitro dashboard. `scripts/build-web` runs `npm run build`;
// the output in `static/` is committed and served by `kinitro.backend.web`.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    outDir: "static",
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2022",
    sourcemap: false,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 200,
  },
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  server: {
    // `npm exec vite` during development: forward API and WebSockets to a local backend.
    proxy: {
      "/api": "http://127.0.0.1:8000",
      "/media": "http://127.0.0.1:8000",
      "/ws": { target: "ws://127.0.0.1:8000", ws: true },
    },
  },
});
