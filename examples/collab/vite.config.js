import { defineConfig } from 'vite';

export default defineConfig({
  // JSX through Vite's built-in esbuild (no plugin needed for a production build).
  esbuild: { jsx: 'automatic' },
  // The package loads its .wasm next to its JS; pre-bundling would separate them in dev mode.
  optimizeDeps: { exclude: ['@natter/widget'] },
});
