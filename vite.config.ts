import tailwindcss from '@tailwindcss/vite';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  plugins: [react(), tailwindcss()],
  worker: { format: 'es' },
  // The workers' dependencies are found up front too: otherwise the dev server optimizes them on first use and reloads.
  optimizeDeps: { entries: ['index.html', 'workers/*.worker.ts'] },
  server: { host: '127.0.0.1', port: 5173 },
  preview: { host: '127.0.0.1' },
});
