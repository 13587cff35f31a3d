// One hub and the documented script-tag site on its own origin for a whole spec file: the
// preamble of the specs that drive the widget as a page embeds it.
import { test } from '@playwright/test';
import { mkdirSync } from 'node:fs';
import { Hub, startTagSite } from './hub.js';

/**
 * Starts a hub and `startTagSite(hub)` before the file's tests (and makes `artifacts/` for their
 * screenshots), stops both after. Returns `{ hub, site }`, filled once the tests run.
 */
export function useTagSite() {
  const env = {};
  test.beforeAll(async () => {
    env.hub = await Hub.start();
    env.site = await startTagSite(env.hub);
    mkdirSync('artifacts', { recursive: true });
  });
  test.afterAll(async () => {
    await env.site?.close();
    await env.hub?.dispose();
  });
  return env;
}
