import { defineConfig } from "vite";

// Root is this folder (run `vite build client`); the server serves dist/ at "/".
export default defineConfig({
  base: "./",
  logLevel: "warn",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
    sourcemap: true,
    rollupOptions: {
      // LiteGraph itself contains a direct eval (legacy code paths we never call); say nothing about it.
      onwarn(warning, warn) {
        if (warning.code === "EVAL") return;
        warn(warning);
      },
    },
  },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:8188",
      "/ws": { target: "ws://127.0.0.1:8188", ws: true },
    },
  },
});
