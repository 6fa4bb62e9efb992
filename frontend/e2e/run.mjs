// The browser scenario of issue 6, in headless Debian Chromium driven by playwright-core,
// against a real Siaran, PostgreSQL, Redis, the fake Midtrans and ffmpeg publishing RTMP:
//
//   a streamer registers, creates a stream, takes the stream key and starts publishing; a viewer
//   in another browser context sees the video playing (the video's time advances, no hls.js
//   fatal error) and chats, and the streamer's context sees the message; the viewer donates
//   through the fake Midtrans and the alert appears on the watch page and on the OBS overlay; a
//   bank-transfer donation is confirmed from the dashboard and its alert appears; staff use the
//   admin pages. Every page is screenshotted into artifacts/screenshots/, and no page may log a
//   console error.
//
// Prints one line per step and ends with "N passed, N failed".

import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { cleanRedisPrefix, createDatabase, ensureDir, freePort, log, sleep, start, stop, stopAll, tempDir, until, waitForHttp } from './infra.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const root = resolve(here, '..', '..')
const bin = process.env.SIARAN_BIN ?? join(root, 'target', 'debug', 'siaran')
// The fake Midtrans is a program of its own, started as any third party would be.
const fakeMidtrans = process.env.FAKE_MIDTRANS_BIN ?? join(root, 'target', 'debug', 'fake-midtrans')
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium'
const shots = ensureDir(join(root, 'artifacts', 'screenshots'))
const logs = ensureDir(join(root, 'artifacts', 'e2e'))
const PASSWORD = 'correct-horse-battery'
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic']

const results = []
let failed = false

/** Runs one step of the scenario; after a failure the rest are skipped (they build on it). */
async function step(name, fn) {
  if (failed) {
    results.push({ name, status: 'skipped' })
    log(`SKIP ${name}`)
    return
  }
  const t0 = Date.now()
  try {
    await fn()
    results.push({ name, status: 'passed' })
    log(`PASS ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`)
  } catch (e) {
    failed = true
    results.push({ name, status: 'failed', error: e })
    log(`FAIL ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n       ${String(e.stack ?? e).split('\n').slice(0, 6).join('\n       ')}`)
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(message)
}

// ---------------------------------------------------------------------------------------------
// The stack

const consoleErrors = []
let base
let rtmpPort
let env

async function startStack() {
  assert(existsSync(bin), `${bin} is missing: build it with cargo build --bin siaran`)
  assert(existsSync(fakeMidtrans), `${fakeMidtrans} is missing: build it with cargo build -p fake-midtrans`)
  assert(existsSync(join(here, '..', 'dist', 'index.html')), 'frontend/dist is missing: run scripts/build-frontend.sh')
  const httpPort = await freePort()
  rtmpPort = await freePort()
  const midtransPort = await freePort()
  const prefix = `siaran-e2e-${process.pid}-${Date.now().toString(36)}`
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
  const databaseUrl = createDatabase(process.env.DATABASE_URL ?? 'postgres://siaran:siaran@127.0.0.1:5432/siaran')
  cleanRedisPrefix(redisUrl, prefix)
  base = `http://127.0.0.1:${httpPort}`
  const midtrans = `http://127.0.0.1:${midtransPort}`
  const serverKey = 'SB-Mid-server-e2e-secret'
  env = {
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    SIARAN_REDIS_PREFIX: prefix,
    SIARAN_ENV: 'development',
    SIARAN_HTTP_ADDR: `127.0.0.1:${httpPort}`,
    SIARAN_RTMP_ADDR: `127.0.0.1:${rtmpPort}`,
    SIARAN_PUBLIC_URL: base,
    SIARAN_RTMP_PUBLIC_URL: `rtmp://127.0.0.1:${rtmpPort}/live`,
    SIARAN_JWT_SECRET: `e2e-${prefix}-0123456789abcdef0123456789abcdef`,
    SIARAN_HLS_DIR: tempDir('siaran-e2e-hls-'),
    SIARAN_MAIL_DIR: tempDir('siaran-e2e-mail-'),
    SIARAN_FRONTEND_DIR: join(here, '..', 'dist'),
    SIARAN_LOG_FORMAT: 'pretty',
    RUST_LOG: process.env.RUST_LOG ?? 'info',
    MIDTRANS_SERVER_KEY: serverKey,
    MIDTRANS_CLIENT_KEY: 'SB-Mid-client-e2e',
    MIDTRANS_SNAP_URL: midtrans,
    MIDTRANS_API_URL: midtrans,
  }
  start('fake-midtrans', fakeMidtrans, ['--addr', `127.0.0.1:${midtransPort}`, '--notification-url', `${base}/api/payments/midtrans/notification`], {
    env,
    logFile: join(logs, 'fake-midtrans.log'),
  })
  start('siaran', bin, ['serve'], { env, logFile: join(logs, 'siaran.log') })
  await waitForHttp(`${base}/readyz`)
  await waitForHttp(`${midtrans}/snap/snap.js`, 20_000)
  log(`Siaran on ${base}, RTMP on ${rtmpPort}, fake Midtrans on ${midtrans}`)
}

let browser

async function newUser(name, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, baseURL: base })
  context.setDefaultTimeout(15_000)
  const page = await context.newPage()
  watchConsole(page, name)
  return { context, page }
}

/**
 * Chromium logs every 4xx/5xx answer as a console error ("Failed to load resource"). The
 * scenario provokes a few on purpose (invalid registration, wrong password); only those, by
 * status and path, are expected. Anything else — an exception, a Vue warning, an unexpected
 * failed request — fails the run.
 */
const EXPECTED_FAILED_REQUESTS = [
  { status: 422, path: '/api/auth/register' },
  { status: 401, path: '/api/auth/login' },
  // A new streamer has no payout account yet: 404 `payout_details_missing` is that answer.
  { status: 404, path: '/api/users/me/payout' },
]

/**
 * Set when the publisher is stopped: the LL-HLS part the playlist hinted at then never exists,
 * and a player that had asked for it gets the 404 the spec prescribes for that (RFC 8216bis
 * 6.2.6); before that moment, a part that 404s is a failure like any other.
 */
let publisherStopped = false

function expectedFailure(msg) {
  const m = /Failed to load resource: the server responded with a status of (\d+)/.exec(msg.text())
  if (!m) return false
  const path = new URL(msg.location().url || 'http://x/').pathname
  if (publisherStopped && Number(m[1]) === 404 && /^\/hls\/[^/]+\/p\d+\.m4s$/.test(path)) return true
  return EXPECTED_FAILED_REQUESTS.some((e) => e.status === Number(m[1]) && e.path === path)
}

function watchConsole(page, who) {
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !expectedFailure(msg)) consoleErrors.push(`${who} ${page.url()}: ${msg.text()} ${msg.location().url ?? ''}`)
  })
  page.on('pageerror', (err) => consoleErrors.push(`${who} ${page.url()}: ${err.message}`))
}

async function shot(page, name, { transparent = false } = {}) {
  // A full-page capture of a scrolled page paints the sticky header mid-page.
  await page.evaluate(() => window.scrollTo(0, 0))
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true, omitBackground: transparent })
}

async function register(page, username) {
  await page.goto('/register')
  await page.fill('input[name=username]', username)
  await page.fill('input[name=email]', `${username}@example.com`)
  await page.fill('input[name=password]', PASSWORD)
  await page.click('button[type=submit]')
  await page.waitForURL((url) => url.pathname === '/')
  await page.getByTestId('whoami').filter({ hasText: username }).waitFor()
}

// ---------------------------------------------------------------------------------------------
// The scenario

const t0 = Date.now()
let streamer, viewer, streamerWatch, overlayPage, admin
let streamId, streamKey, ingestUrl, overlayUrl, ffmpeg

try {
  await step('the stack starts: PostgreSQL database, Siaran, fake Midtrans', startStack)

  await step('Chromium starts', async () => {
    browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: CHROMIUM_ARGS })
  })

  await step('registering shows the server field errors next to their fields', async () => {
    streamer = await newUser('streamer')
    const { page } = streamer
    await page.goto('/register')
    await page.fill('input[name=username]', 'a b')
    await page.fill('input[name=email]', 'not-an-email')
    await page.fill('input[name=password]', '123')
    await page.click('button[type=submit]')
    const usernameError = page.locator('input[name=username] ~ .field-error')
    await usernameError.waitFor()
    assert((await page.locator('.field-error').count()) >= 3, 'each invalid field has its message')
    await shot(page, '01-register-field-errors')
  })

  await step('a streamer registers and creates a stream', async () => {
    const { page } = streamer
    await register(page, 'andi_e2e')
    await page.goto('/dashboard')
    await page.getByTestId('stream-form').locator('input[name=title]').fill('Main bareng e2e')
    await page.getByTestId('stream-form').locator('textarea[name=description]').fill('Streaming from the end-to-end test')
    await page.getByTestId('stream-form').getByRole('button', { name: 'Create stream' }).click()
    await page.getByText('Stream created').waitFor()
    const href = await page.getByRole('link', { name: 'Open watch page' }).getAttribute('href')
    streamId = href.split('/').pop()
    assert(streamId, 'the dashboard links the new stream')
  })

  await step('the streamer reveals a fresh stream key, sets payout details and the overlay address', async () => {
    const { page } = streamer
    await page.getByTestId('reveal-key').click()
    const keyText = page.getByTestId('stream-key')
    await keyText.waitFor()
    streamKey = (await keyText.textContent()).trim()
    ingestUrl = (await page.getByTestId('ingest-url').textContent()).trim()
    assert(streamKey.length >= 16 && !streamKey.includes('•'), 'the new key is shown in full once')
    assert(ingestUrl === `rtmp://127.0.0.1:${rtmpPort}/live`, `ingest URL shown: ${ingestUrl}`)

    const payout = page.getByTestId('payout-form')
    await payout.locator('input[name=bank_name]').fill('BCA')
    await payout.locator('input[name=account_number]').fill('1234567890')
    await payout.locator('input[name=account_holder]').fill('Andi Wijaya')
    await payout.getByRole('button', { name: 'Save' }).click()
    await payout.getByText('Saved.').waitFor()

    const card = page.getByTestId('overlay-card')
    await card.getByRole('button', { name: 'Create overlay address' }).click()
    overlayUrl = (await card.getByTestId('overlay-url').textContent()).trim()
    assert(overlayUrl.startsWith(`${base}/overlay/`), `overlay address: ${overlayUrl}`)
    await shot(page, '02-dashboard')
  })

  await step('ffmpeg publishes RTMP with the key and the stream goes live', async () => {
    ffmpeg = start(
      'ffmpeg',
      'ffmpeg',
      ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100',
        '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p', '-g', '30', '-keyint_min', '30', '-b:v', '600k',
        '-c:a', 'aac', '-b:a', '64k', '-f', 'flv', `${ingestUrl}/${streamKey}`],
      { logFile: join(logs, 'ffmpeg.log') },
    )
    await until('the stream to be live', async () => {
      const res = await fetch(`${base}/api/streams/${streamId}`)
      return res.ok && (await res.json()).is_live
    }, 30_000, 500)
  })

  await step('a viewer in another browser sees the stream live on the home page', async () => {
    viewer = await newUser('viewer')
    const { page } = viewer
    await register(page, 'rina_e2e')
    await page.goto('/')
    const card = page.getByTestId(`stream-${streamId}`)
    await card.waitFor()
    await card.locator('.badge.live').waitFor()
    await shot(page, '03-home')
    await card.click()
    await page.waitForURL(`**/streams/${streamId}`)
  })

  await step('the video plays in the viewer\'s browser: time advances, no fatal player error', async () => {
    const { page } = viewer
    const video = page.getByTestId('video')
    await video.waitFor()
    const t1 = await until('playback to start', async () => {
      const t = await video.evaluate((v) => (v.readyState >= 2 && !v.paused ? v.currentTime : 0))
      return t > 0.2 ? t : 0
    }, 40_000, 500)
    await sleep(3000)
    const t2 = await video.evaluate((v) => v.currentTime)
    assert(t2 - t1 >= 1.5, `the video's time advanced by ${(t2 - t1).toFixed(2)} s in 3 s`)
    assert((await page.getByText('The video could not be played').count()) === 0, 'no fatal player error')
    await page.getByTestId('live-badge').waitFor()
    // The player follows the LL-HLS live edge: its jump-to-live control is there, and the
    // stats show how far behind live it plays (a number, whatever it is: no timing here).
    await page.getByTestId('jump-to-live').waitFor()
    await page.getByRole('button', { name: 'Stats' }).click()
    await until('the latency in the stats', async () => /\d\.\d s/.test(await page.getByTestId('latency').innerText()), 15_000)
    await shot(page, '04-watch-viewer')
  })

  await step('the viewer chats and the streamer\'s browser sees the message', async () => {
    streamerWatch = await streamer.context.newPage()
    watchConsole(streamerWatch, 'streamer-watch')
    await streamerWatch.goto(`/streams/${streamId}`)
    await streamerWatch.getByText('Connected').waitFor()
    const { page } = viewer
    await page.getByText('Connected').waitFor()
    await page.getByTestId('chat-input').fill('Halo dari e2e!')
    await page.getByTestId('chat-input').press('Enter')
    await page.getByTestId('chat-messages').getByText('Halo dari e2e!').waitFor()
    await streamerWatch.getByTestId('chat-messages').getByText('Halo dari e2e!').waitFor({ timeout: 10_000 })
  })

  await step('the OBS overlay opens with its secret address', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 720 } })
    ctx.setDefaultTimeout(15_000)
    overlayPage = await ctx.newPage()
    watchConsole(overlayPage, 'overlay')
    await overlayPage.goto(overlayUrl)
    await overlayPage.getByTestId('overlay').waitFor()
    // Give the overlay socket a moment to subscribe before the donation is paid.
    await sleep(1000)
  })

  await step('the viewer donates through the fake Midtrans; the alert shows on the watch page and the overlay', async () => {
    const { page } = viewer
    await page.getByTestId('donate-amount').fill('25000')
    await page.getByTestId('donate-message').fill('Semangat dari e2e')
    await page.getByTestId('donate-submit').click()
    await payInSnap(page)
    await page.getByTestId('donate-done').getByText('went through').waitFor({ timeout: 30_000 })
    await page.getByTestId('donation-alert').filter({ hasText: 'Semangat dari e2e' }).waitFor({ timeout: 15_000 })
    await shot(page, '05-watch-donation-alert')
    await overlayPage.getByTestId('donation-alert').filter({ hasText: 'Semangat dari e2e' }).waitFor({ timeout: 15_000 })
    await shot(overlayPage, '06-overlay-alert', { transparent: true })
    await streamerWatch.getByTestId('donation-alert').filter({ hasText: 'Semangat dari e2e' }).waitFor({ timeout: 15_000 })
  })

  await step('a bank transfer is confirmed from the dashboard and its alert appears', async () => {
    const { page } = viewer
    await page.getByRole('button', { name: 'Donate again' }).click()
    await page.getByTestId('donate-amount').fill('30000')
    await page.getByTestId('donate-message').fill('Transfer dari e2e')
    await page.getByTestId('method-bank').check()
    await page.getByTestId('donate-submit').click()
    const reference = (await page.getByTestId('bank-reference').textContent()).replace('Copy', '').trim()
    assert(reference.length > 0, 'a transfer reference is shown')
    await shot(page, '07-watch-bank-transfer')

    const dash = streamer.page
    await dash.goto('/dashboard')
    const item = dash.getByTestId('pending-transfer').filter({ hasText: 'Rp 30.000' })
    await item.waitFor()
    await shot(dash, '08-dashboard-pending-transfer')
    await item.getByRole('button', { name: 'Confirm received' }).click()
    await item.waitFor({ state: 'detached' })
    await overlayPage.getByTestId('donation-alert').filter({ hasText: 'Transfer dari e2e' }).waitFor({ timeout: 30_000 })
    await page.getByTestId('donation-alert').filter({ hasText: 'Transfer dari e2e' }).waitFor({ timeout: 30_000 })
  })

  await step('the viewer\'s history and the streamer\'s received list (and its CSV) show both donations completed', async () => {
    const { page } = viewer
    await page.goto('/donations')
    const completed = page.getByTestId('my-donations').getByTestId('status').filter({ hasText: 'Completed' })
    await completed.nth(1).waitFor()
    assert((await completed.count()) === 2, 'exactly two completed donations')
    await shot(page, '09-my-donations')
    const dash = streamer.page
    await dash.goto('/dashboard')
    const received = dash.getByTestId('donations-received')
    await received.getByTestId('status').filter({ hasText: 'Completed' }).nth(1).waitFor()
    await shot(dash, '10-dashboard-received')
    const [download] = await Promise.all([dash.waitForEvent('download'), received.getByRole('button', { name: 'Download CSV' }).click()])
    const csv = readFileSync(await download.path(), 'utf8')
    assert(csv.includes('Semangat dari e2e') && csv.includes('Transfer dari e2e'), `the CSV lists both donations:\n${csv}`)
  })

  await step('staff log in with the keyboard alone and search users, streams and donations', async () => {
    execFileSync(bin, ['create-superuser', '--username', 'admin_e2e', '--email', 'admin_e2e@example.com', '--password', PASSWORD], { env: { ...process.env, ...env }, stdio: 'pipe' })
    admin = await newUser('admin')
    const { page } = admin
    await page.goto('/login')
    // Keyboard only: Tab to the form, type, Enter.
    for (let i = 0; i < 12 && !(await page.evaluate(() => document.activeElement?.getAttribute('name') === 'login')); i++) {
      await page.keyboard.press('Tab')
    }
    assert(await page.evaluate(() => document.activeElement?.getAttribute('name') === 'login'), 'Tab reaches the login field')
    await page.keyboard.type('admin_e2e')
    await page.keyboard.press('Tab')
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press('Enter')
    await page.waitForURL((url) => url.pathname === '/')
    await page.getByRole('link', { name: 'Admin' }).click()
    await page.getByRole('cell', { name: 'rina_e2e', exact: true }).waitFor()
    await shot(page, '11-admin-users')
    const tabs = page.getByRole('navigation', { name: 'Admin sections' })
    await tabs.getByRole('link', { name: 'Streams' }).click()
    await page.getByRole('cell', { name: 'Main bareng e2e' }).waitFor()
    await shot(page, '12-admin-streams')
    await tabs.getByRole('link', { name: 'Donations' }).click()
    await page.getByTestId('search-filter').selectOption('completed')
    await page.getByRole('cell', { name: 'Main bareng e2e' }).nth(1).waitFor()
    await shot(page, '13-admin-donations')
  })

  await step('the watch page fits a phone screen', async () => {
    const phone = await newUser('phone', { width: 390, height: 844 })
    await phone.page.goto(`/streams/${streamId}`)
    await phone.page.getByTestId('stage').waitFor()
    const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    assert(overflow <= 0, `no sideways scrolling on a phone (overflow ${overflow}px)`)
    await shot(phone.page, '14-watch-phone')
    await phone.context.close()
  })

  await step('when the publisher stops, an open watch page shows the end by itself', async () => {
    // streamerWatch has stayed open on the watch page since the chat step, never reloaded.
    await streamerWatch.getByTestId('live-badge').waitFor()
    publisherStopped = true
    await stop(ffmpeg)
    await streamerWatch.getByTestId('phase-badge').filter({ hasText: 'Ended' }).waitFor({ timeout: 20_000 })
    await streamerWatch.getByTestId('slate').getByText('This stream has ended').waitFor()
    await shot(streamerWatch, '15-watch-ended')
  })

  await step('the login page and a page that does not exist', async () => {
    const anon = await newUser('anonymous')
    await anon.page.goto('/login')
    await anon.page.fill('input[name=login]', 'rina_e2e')
    await anon.page.fill('input[name=password]', 'wrong-password')
    await anon.page.click('button[type=submit]')
    await anon.page.getByText('The username/email or password is incorrect.').waitFor()
    await shot(anon.page, '16-login-error')
    await anon.page.goto('/no/such/page')
    await anon.page.getByText('Page not found').waitFor()
    await anon.context.close()
  })

  await step('no page logged a console error', async () => {
    assert(consoleErrors.length === 0, `console errors:\n  ${consoleErrors.join('\n  ')}`)
  })
} finally {
  await browser?.close().catch(() => {})
  await stopAll()
}

/** Pays in the fake Midtrans' Snap window (an iframe or a popup it opens). */
async function payInSnap(page) {
  const button = () => {
    for (const frame of page.frames()) {
      const b = frame.getByRole('button', { name: /^pay/i })
      if (frame !== page.mainFrame()) return b
    }
    return null
  }
  const pay = await until('the Snap payment page', async () => {
    const b = button()
    return b && (await b.count()) > 0 ? b : null
  }, 20_000)
  await pay.first().click()
}

const passed = results.filter((r) => r.status === 'passed').length
const failures = results.filter((r) => r.status === 'failed').length
const skipped = results.filter((r) => r.status === 'skipped').length
log(`screenshots in ${shots}; logs in ${logs}; ${((Date.now() - t0) / 1000).toFixed(1)} s`)
console.log(`e2e: ${passed} passed, ${failures} failed, ${skipped} skipped`)
process.exit(failures + skipped ? 1 : 0)
