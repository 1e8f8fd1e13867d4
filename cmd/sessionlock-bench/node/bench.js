// bench.js measures the sidecar lock of @openclaw/fs-safe (acquireFileLock
// from "@openclaw/fs-safe/file-lock"), the lock that sessionlock replaces in
// today's Node.js runtimes, the same way sessionlock-bench measures figures 1
// and 4:
//
//   - uncontended tenure: acquireFileLock + release on an existing file;
//   - cross-process hand-off: process A holds the lock, process B (this
//     script with --worker) waits for it; A starts release() after a random
//     hold, and the latency is B's acquire returning minus A's release
//     starting, both from process.hrtime.bigint(), which libuv reads from
//     CLOCK_MONOTONIC on Linux, the clock the Go side uses.
//
// The lock runs with its defaults (a JSON payload with the pid, retries
// every 50 ms without limit) as a runtime that adopts it would.
//
// Usage: node bench.js [--json] [--dir DIR] [--iterations N] [--handoffs N]
//                      [--hold-min-ms MS] [--hold-max-ms MS]
//
// When the package is not installed it prints a note (in JSON, {"skipped":
// "..."}) and exits 0.

import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = path.dirname(fileURLToPath(import.meta.url));
const pkgName = "@openclaw/fs-safe";
const warmup = 20;
const handoffWarmup = 5;

const { values: opt } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    dir: { type: "string" },
    iterations: { type: "string", default: "1000" },
    handoffs: { type: "string", default: "200" },
    "hold-min-ms": { type: "string", default: "1" },
    "hold-max-ms": { type: "string", default: "20" },
    worker: { type: "string" },
    file: { type: "string" },
  },
});

let acquireFileLock;
try {
  ({ acquireFileLock } = await import(`${pkgName}/file-lock`));
} catch (err) {
  const note = `${pkgName} is not installed here (run npm install in ${here}): ${err.code ?? err.message}`;
  console.log(opt.json ? JSON.stringify({ skipped: note }) : `skipped: ${note}`);
  process.exit(0);
}

// The options a runtime would pass: who holds the lock, nothing else.
const lockOptions = { payload: () => ({ pid: process.pid }) };

const now = () => process.hrtime.bigint();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// summary: median and p90 by the nearest-rank method, as the Go side does.
function summary(ns) {
  const s = [...ns].sort((a, b) => a - b);
  const q = (p) => s[Math.min(Math.max(Math.round(p * s.length) - 1, 0), s.length - 1)];
  return { median_ns: q(0.5), p90_ns: q(0.9), max_ns: s[s.length - 1], samples: s.length };
}

async function tenures(file, n) {
  const times = [];
  for (let i = 0; i < warmup + n; i++) {
    const t0 = now();
    const handle = await acquireFileLock(file, lockOptions);
    await handle.release();
    const dt = Number(now() - t0);
    if (i >= warmup) times.push(dt);
  }
  return summary(times);
}

async function handoffs(file, n, holdMin, holdMax) {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--worker", "handoff", "--file", file], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const expect = async (word) => {
    const { value, done } = await lines.next();
    const f = done ? [] : value.trim().split(/\s+/);
    if (f[0] !== word) throw new Error(`worker: want ${word}, got ${done ? "end of output" : value}`);
    return f.slice(1);
  };

  const times = [];
  for (let i = -handoffWarmup; i < n; i++) {
    const hold = holdMin + Math.random() * (holdMax - holdMin);
    const handle = await acquireFileLock(file, lockOptions);
    child.stdin.write("wait\n");
    await expect("waiting");
    await sleep(hold);
    const t0 = now();
    await handle.release();
    const [t1] = await expect("acquired");
    await expect("released");
    if (i >= 0) times.push(Number(BigInt(t1) - t0));
  }
  child.stdin.end();
  await new Promise((resolve) => child.on("close", resolve));
  return summary(times);
}

// worker is process B: on "wait" it says "waiting", acquires, says
// "acquired T" with T read as the acquire returned, releases and says
// "released".
async function worker(file) {
  for await (const line of readline.createInterface({ input: process.stdin })) {
    if (line.trim() !== "wait") continue;
    process.stdout.write("waiting\n");
    const handle = await acquireFileLock(file, lockOptions);
    const t1 = now();
    process.stdout.write(`acquired ${t1}\n`);
    await handle.release();
    process.stdout.write("released\n");
  }
}

if (opt.worker === "handoff") {
  await worker(opt.file);
  process.exit(0);
}

const own = !opt.dir;
const dir = opt.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "fs-safe-bench-"));
try {
  const file = path.join(dir, "session.jsonl");
  fs.writeFileSync(file, `{"role":"user","content":"hello"}\n`);
  const version = JSON.parse(fs.readFileSync(path.join(here, "node_modules", pkgName, "package.json"), "utf8")).version;
  const holdMin = Number(opt["hold-min-ms"]);
  const holdMax = Number(opt["hold-max-ms"]);
  const result = {
    node: process.version,
    package: `${pkgName}@${version}`,
    options: "acquireFileLock defaults: payload {pid}, retry every 50 ms without limit",
    tenure: await tenures(file, Number(opt.iterations)),
    handoff: await handoffs(file, Number(opt.handoffs), holdMin, holdMax),
  };
  if (opt.json) {
    console.log(JSON.stringify(result));
  } else {
    const ms = (ns) => `${(ns / 1e6).toFixed(3)} ms`;
    console.log(`${result.package} on Node.js ${result.node} (${result.options})`);
    console.log(`uncontended acquire + release: median ${ms(result.tenure.median_ns)}, p90 ${ms(result.tenure.p90_ns)}`);
    console.log(`cross-process hand-off (hold ${holdMin}-${holdMax} ms): median ${ms(result.handoff.median_ns)}, p90 ${ms(result.handoff.p90_ns)}`);
  }
} finally {
  if (own) fs.rmSync(dir, { recursive: true, force: true });
}
