// The real parts the browser scenario runs against: a database of its own, a Siaran on free
// ports with its own Redis prefix, the fake Midtrans, ffmpeg publishing RTMP, and Chromium.
// Everything started here is stopped by `stopAll()`, by process id.

import { spawn, execFileSync } from 'node:child_process'
import { createWriteStream, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'

const children = []
const cleanups = []

export function log(...args) {
  console.log('[e2e]', ...args)
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export async function until(what, fn, timeoutMs = 20_000, everyMs = 250) {
  const deadline = Date.now() + timeoutMs
  let lastError
  while (Date.now() < deadline) {
    try {
      const v = await fn()
      if (v) return v
    } catch (e) {
      lastError = e
    }
    await sleep(everyMs)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${lastError.message}` : ''}`)
}

/** Starts a long-running process whose output goes to `logFile`. */
export function start(name, cmd, args, { env = {}, logFile, cwd } = {}) {
  const out = createWriteStream(logFile, { flags: 'a' })
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout.pipe(out)
  child.stderr.pipe(out)
  child.on('exit', (code, signal) => {
    if (!child.stopping) log(`${name} exited (${signal ?? code}); see ${logFile}`)
  })
  children.push({ name, child })
  return child
}

export async function stop(child, graceMs = 5000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return
  child.stopping = true
  child.kill('SIGTERM')
  const exited = await Promise.race([new Promise((r) => child.once('exit', () => r(true))), sleep(graceMs).then(() => false)])
  if (!exited) child.kill('SIGKILL')
}

export function onCleanup(fn) {
  cleanups.push(fn)
}

export async function stopAll() {
  for (const { child } of children.reverse()) await stop(child)
  for (const fn of cleanups.reverse()) {
    try {
      await fn()
    } catch (e) {
      log('cleanup failed:', e.message)
    }
  }
}

/** A database of the run's own, created through the role from DATABASE_URL (it has CREATEDB). */
export function createDatabase(baseUrl) {
  const name = `siaran_e2e_${randomBytes(4).toString('hex')}`
  const admin = new URL(baseUrl)
  execFileSync('psql', [admin.toString(), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', `CREATE DATABASE ${name}`], { stdio: 'pipe' })
  onCleanup(() => execFileSync('psql', [admin.toString(), '-X', '-q', '-c', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`], { stdio: 'pipe' }))
  const url = new URL(baseUrl)
  url.pathname = `/${name}`
  return url.toString()
}

export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  onCleanup(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Removes every Redis key under the run's prefix (the shared Redis is never flushed). */
export function cleanRedisPrefix(redisUrl, prefix) {
  onCleanup(() => {
    const url = new URL(redisUrl)
    const base = ['-h', url.hostname, '-p', url.port || '6379']
    const keys = execFileSync('redis-cli', [...base, '--scan', '--pattern', `${prefix}*`], { encoding: 'utf8' }).split('\n').filter(Boolean)
    for (let i = 0; i < keys.length; i += 200) execFileSync('redis-cli', [...base, 'DEL', ...keys.slice(i, i + 200)], { stdio: 'pipe' })
  })
}

export function ensureDir(dir) {
  mkdirSync(dir, { recursive: true })
  return dir
}

export async function waitForHttp(url, timeoutMs = 60_000) {
  await until(`${url} to answer`, async () => (await fetch(url)).ok, timeoutMs, 300)
}
