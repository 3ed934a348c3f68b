// Drives the official TypeScript SDK (@spotify/web-api-ts-sdk) for
// bench/bench.py: one mode, N requests, one line of JSON on stdout.
//
// usage: node sdk.mjs MODE API_BASE TOKEN_URL N
//   MODE: track | search | multi16 | batch50
//
// The SDK has no base-URL option: it builds "https://api.spotify.com/v1/..."
// and POSTs to "https://accounts.spotify.com/api/token" with the global
// fetch. Both go through the global fetch (the SDK's default `fetch` option
// calls it too), so replacing globalThis.fetch with a wrapper that rewrites
// those two prefixes to the local fake redirects every request. For HTTPS
// the bench's self-signed certificate is trusted through NODE_EXTRA_CA_CERTS.
// Node's fetch (undici) speaks HTTP/1.1 only, with keep-alive.
import { readFileSync } from "node:fs";
import { SpotifyApi } from "@spotify/web-api-ts-sdk";

const [mode, apiBase, tokenUrl, nText] = process.argv.slice(2);
const n = Number(nText);
const WARMUP = 20;
const IN_FLIGHT = 16;
const ids = readFileSync(process.env.BENCH_IDS, "utf8").split("\n").filter(Boolean);

const API = "https://api.spotify.com/v1";
const TOKEN = "https://accounts.spotify.com/api/token";
const realFetch = globalThis.fetch;
globalThis.fetch = (input, init) => {
  let url = String(input);
  if (url.startsWith(API)) url = apiBase + url.slice(API.length);
  else if (url.startsWith(TOKEN)) url = tokenUrl + url.slice(TOKEN.length);
  return realFetch(url, init);
};

const sdk = SpotifyApi.withClientCredentials("bench-client", "bench-secret");
const idAt = (i) => ids[i % ids.length];
const idsFrom = (i, count) => Array.from({ length: count }, (_, k) => idAt(i + k));

function checkTrack(t) {
  if (!t || typeof t.id !== "string") throw new Error("sdk: answer is not a track");
}

const steps = {
  track: async (i) => checkTrack(await sdk.tracks.get(idAt(i))),
  search: async () => {
    const r = await sdk.search("Muse", ["track", "artist", "album"]);
    if (!r.tracks.items.length) throw new Error("sdk: search answer has no tracks");
  },
  batch50: async (i) => {
    const list = await sdk.tracks.get(idsFrom(i, 50));
    if (list.length !== 50) throw new Error("sdk: batch answer has " + list.length);
  },
};

// count single-track GETs, IN_FLIGHT at a time (a pool of workers).
async function concurrentTracks(count) {
  let next = 0;
  const worker = async () => {
    while (next < count) checkTrack(await sdk.tracks.get(idAt(next++)));
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
}

async function timed(fn) {
  const cpu0 = process.cpuUsage();
  const wall0 = process.hrtime.bigint();
  await fn();
  const cpu = process.cpuUsage(cpu0);
  return { cpu_us: cpu.user + cpu.system, wall_s: Number(process.hrtime.bigint() - wall0) / 1e9 };
}

async function main() {
  let result;
  if (steps[mode]) {
    const step = steps[mode];
    for (let i = 0; i < WARMUP; i++) await step(i);
    result = await timed(async () => {
      for (let i = 0; i < n; i++) await step(i);
    });
  } else if (mode === "multi16") {
    await concurrentTracks(32);
    result = await timed(() => concurrentTracks(n));
  } else {
    throw new Error("sdk: unknown mode " + mode);
  }
  process.stdout.write(JSON.stringify({ n, ...result }) + "\n");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
