// The player side of benches/latency/run.sh: hls.js (the watch page's settings) in headless
// Chromium plays a playlist whose frames carry their own time in a stripe of 24 blocks; for
// every frame shown it reads the stripe back and records shown − made. Prints one JSON line:
// {"server", "frames", "min", "p50", "p90", "p99", "max", "stalls", "unreadable"} (milliseconds).
//
//   node benches/latency/measure.mjs --playlist URL --launch MS --base N --warmup S --seconds S --name NAME
import { createServer } from 'node:http'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const require = createRequire(join(root, 'frontend', 'package.json'))
const { chromium } = require('playwright-core')

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
)
const warmupMs = Number(args.warmup ?? 10) * 1000
const measureMs = Number(args.seconds ?? 60) * 1000
const hlsJs = readFileSync(join(root, 'frontend', 'node_modules', 'hls.js', 'dist', 'hls.min.js'))

// The page: the same hls.js settings as frontend/src/components/HlsPlayer.vue.
const page = `<!doctype html><meta charset="utf-8"><body style="margin:0;background:#000">
<video id="v" muted playsinline style="width:1280px;height:720px"></video>
<canvas id="c" width="1280" height="40" style="display:none"></canvas>
<script src="/hls.js"></script>
<script>
const params = new URLSearchParams(location.search)
const launch = Number(params.get('launch')), base = Number(params.get('base'))
const video = document.getElementById('v')
const ctx = document.getElementById('c').getContext('2d', { willReadFrequently: true })
window.samples = []; window.stalls = 0; window.unreadable = 0; window.started = null
async function start() {
// The same start for both servers: once the playlist exists (nginx writes it after its first
// fragment, Siaran after its first part).
while (!(await fetch(params.get('playlist')).then((r) => r.ok, () => false))) await new Promise((ok) => setTimeout(ok, 100))
const hls = new Hls({ lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.25, backBufferLength: 30, manifestLoadingMaxRetry: 20, levelLoadingMaxRetry: 20 })
hls.on(Hls.Events.ERROR, (_e, d) => { console.log('hls error', d.type, d.details, d.fatal); if (d.fatal) { if (d.type === Hls.ErrorTypes.NETWORK_ERROR) setTimeout(() => hls.startLoad(), 500); else hls.recoverMediaError() } })
hls.loadSource(params.get('playlist'))
hls.attachMedia(video)
hls.on(Hls.Events.MANIFEST_PARSED, () => video.play())
}
start()
video.addEventListener('waiting', () => { if (window.started !== null) window.stalls += 1 })
function frame(now) {
  // When the frame was handed to the compositor (headless Chromium's expectedDisplayTime follows
  // the media clock, not the wall clock, so it hides stalls).
  const shown = performance.timeOrigin + now
  ctx.drawImage(video, 0, 0, 1280, 40, 0, 0, 1280, 40)
  const row = ctx.getImageData(0, 20, 1280, 1).data
  let stamp = 0
  for (let k = 0; k < 24; k++) if (row[(53 * k + 26) * 4] > 128) stamp += 2 ** k
  let since = stamp - base
  if (since < 0) since += 2 ** 24
  const made = launch + since
  const latency = shown - made
  if (window.started === null) window.started = shown
  if (latency < 0 || latency > 60000) window.unreadable += 1
  else window.samples.push([shown - window.started, latency])
  video.requestVideoFrameCallback(frame)
}
video.requestVideoFrameCallback(frame)
</script>`

const server = createServer((req, res) => {
  if (req.url.startsWith('/hls.js')) {
    res.writeHead(200, { 'content-type': 'text/javascript' })
    res.end(hlsJs)
  } else {
    res.writeHead(200, { 'content-type': 'text/html' })
    res.end(page)
  }
})
await new Promise((ok) => server.listen(0, '127.0.0.1', ok))
const url = `http://127.0.0.1:${server.address().port}/?${new URLSearchParams({ playlist: args.playlist, launch: args.launch, base: args.base })}`

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--autoplay-policy=no-user-gesture-required', '--disable-background-timer-throttling'],
})
try {
  const tab = await browser.newPage({ viewport: { width: 1280, height: 720 } })
  if (process.env.BENCH_DEBUG) tab.on('console', (m) => console.error('[page]', m.text()))
  await tab.goto(url)
  await tab.waitForFunction(() => window.started !== null, null, { timeout: 60_000, polling: 200 })
  // Stalls count from the end of the warm-up.
  await tab.waitForTimeout(warmupMs)
  await tab.evaluate(() => { window.stalls = 0 })
  await tab.waitForTimeout(measureMs)
  const { samples, stalls, unreadable } = await tab.evaluate(() => ({ samples: window.samples, stalls: window.stalls, unreadable: window.unreadable }))
  const measured = samples.filter(([t]) => t >= warmupMs && t < warmupMs + measureMs).map(([, l]) => l).sort((a, b) => a - b)
  const q = (p) => (measured.length ? Math.round(measured[Math.min(measured.length - 1, Math.floor(p * measured.length))]) : null)
  console.log(JSON.stringify({ server: args.name, frames: measured.length, min: q(0), p50: q(0.5), p90: q(0.9), p99: q(0.99), max: q(1), stalls, unreadable }))
} finally {
  await browser.close()
  server.close()
}
