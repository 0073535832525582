// peer.mjs — drives graphile-worker or pg-boss (installed by bench/peers/run.sh in a scratch directory) for the peer benchmark.
//
//   node peer.mjs gw|boss setup                       install the peer's schema, create its queue
//   node peer.mjs gw|boss drain N                     enqueue N no-op jobs, then time one consumer process
//                                                     through them, from the first job's start to the
//                                                     last job's: prints {"jobs": N, "seconds": s}
//   node peer.mjs gw|boss consume                     run one consumer process until SIGTERM
//   node peer.mjs gw|boss produce RATE SECONDS CLIENTS  CLIENTS connections each adding one job per
//                                                     transaction, paced to RATE jobs/s in all:
//                                                     prints {"sent": n, "seconds": s}
//
// Connection: PGHOST (a socket directory), PGPORT, PGDATABASE, PGUSER.  Each peer runs in the
// configuration its documentation recommends for throughput (see docs/benchmarks.md, "Peers"):
//   graphile-worker: concurrentJobs 50, localQueue.size 200, completeJobBatchDelay 0 (batched completions)
//   pg-boss: batchSize 50, localConcurrency 2, burstWhenBatchFull (fetch at once while batches are full)
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.PEERS_DIR || process.cwd(), "package.json"));
const pg = require("pg");
const [peer, mode, ...args] = process.argv.slice(2);
const conn = { host: process.env.PGHOST, port: Number(process.env.PGPORT || 5432),
               database: process.env.PGDATABASE, user: process.env.PGUSER };
const QUEUE = "noop";
const CHUNK = 5000;

const GW_PRESET = { worker: { concurrentJobs: 50, localQueue: { size: 200 }, completeJobBatchDelay: 0,
                              failJobBatchDelay: 0, pollInterval: 2000 } };
const BOSS_WORK = { batchSize: 50, localConcurrency: 2, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5 };

const now = () => Number(process.hrtime.bigint()) / 1e9;

async function gwRunner(onJob) {
  const gw = require("graphile-worker");
  const pgPool = new pg.Pool({ ...conn, max: 60 });
  pgPool.on("error", (e) => console.error("pg pool:", e.message));
  const runner = await gw.run({ pgPool, preset: GW_PRESET, noHandleSignals: true,
                                logger: new gw.Logger(() => () => {}),
                                taskList: { [QUEUE]: async () => { onJob(); } } });
  return { stop: async () => { await runner.stop(); await pgPool.end(); } };
}

async function bossInstance() {
  const { PgBoss } = await import(path.join(process.env.PEERS_DIR, "node_modules/pg-boss/dist/index.js"));
  const boss = new PgBoss({ ...conn, max: 20, supervise: false, schedule: false });
  boss.on("error", (e) => { console.error("pg-boss:", e.message); });
  await boss.start();
  return boss;
}

async function bossRunner(onJob) {
  const boss = await bossInstance();
  await boss.work(QUEUE, BOSS_WORK, async (jobs) => { for (let i = 0; i < jobs.length; i++) onJob(); });
  return { stop: async () => { await boss.stop({ graceful: true, timeout: 10000 }); } };
}

async function setup() {
  if (peer === "gw") {
    const gw = require("graphile-worker");
    const pgPool = new pg.Pool({ ...conn, max: 2 });
    pgPool.on("error", (e) => console.error("pg pool:", e.message));
  pgPool.on("error", (e) => console.error("pg pool:", e.message));
    await gw.runMigrations({ pgPool, logger: new gw.Logger(() => () => {}) });
    await pgPool.end();
  } else {
    const boss = await bossInstance();
    if (!(await boss.getQueue(QUEUE))) await boss.createQueue(QUEUE);
    await boss.stop({ graceful: false });
  }
}

async function enqueueMany(n) {
  if (peer === "gw") {
    const gw = require("graphile-worker");
    const pgPool = new pg.Pool({ ...conn, max: 2 });
    pgPool.on("error", (e) => console.error("pg pool:", e.message));
  pgPool.on("error", (e) => console.error("pg pool:", e.message));
    const utils = await gw.makeWorkerUtils({ pgPool, logger: new gw.Logger(() => () => {}) });
    for (let i = 0; i < n; i += CHUNK) {
      const specs = [];
      for (let j = i; j < Math.min(n, i + CHUNK); j++) specs.push({ identifier: QUEUE, payload: { n: j } });
      await utils.addJobs(specs);
    }
    await utils.release();
    await pgPool.end();
  } else {
    const boss = await bossInstance();
    for (let i = 0; i < n; i += CHUNK) {
      const jobs = [];
      for (let j = i; j < Math.min(n, i + CHUNK); j++) jobs.push({ data: { n: j } });
      await boss.insert(QUEUE, jobs);
    }
    await boss.stop({ graceful: false });
  }
}

async function drain(n) {
  await enqueueMany(n);
  let done = 0, first = 0, last = 0;
  let finished;
  const all = new Promise((resolve) => { finished = resolve; });
  // Timed from the first job's start to the last one's, as baton's drain (start-up excluded).
  const onJob = () => { if (done === 0) first = now(); done++; if (done >= n) { last = now(); finished(); } };
  const runner = peer === "gw" ? await gwRunner(onJob) : await bossRunner(onJob);
  const timeout = setTimeout(() => { console.error(`drain: only ${done} of ${n} jobs after 600 s`); process.exit(1); }, 600000);
  await all;
  clearTimeout(timeout);
  await runner.stop();
  console.log(JSON.stringify({ jobs: n, seconds: last - first }));
}

async function consume() {
  const runner = peer === "gw" ? await gwRunner(() => {}) : await bossRunner(() => {});
  await new Promise((resolve) => { process.on("SIGTERM", resolve); process.on("SIGINT", resolve); });
  await runner.stop();
}

// CLIENTS loops, each with its own connection, adding one job per transaction on a shared schedule.
async function produce(rate, seconds, clients) {
  let add, close;
  if (peer === "gw") {
    const pool = new pg.Pool({ ...conn, max: clients });
    // graphile-worker's SQL API: one add_job call = one job, one transaction.
    add = (i) => pool.query("SELECT graphile_worker.add_job($1, $2::json)", [QUEUE, JSON.stringify({ n: i })]);
    close = () => pool.end();
  } else {
    const boss = await bossInstance();
    add = (i) => boss.send(QUEUE, { n: i });
    close = () => boss.stop({ graceful: false });
  }
  const interval = 1 / rate;
  const t0 = now();
  const end = t0 + seconds;
  let next = 0, sent = 0;
  const loop = async () => {
    for (;;) {
      const i = next++;
      const due = t0 + i * interval;
      if (due >= end) return;
      const wait = due - now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait * 1000));
      await add(i);
      sent++;
    }
  };
  await Promise.all(Array.from({ length: clients }, loop));
  const took = now() - t0;
  await close();
  console.log(JSON.stringify({ sent, seconds: took }));
}

const main = { setup, drain: () => drain(Number(args[0])), consume,
               produce: () => produce(Number(args[0]), Number(args[1]), Number(args[2])) }[mode];
if (!main || !["gw", "boss"].includes(peer)) {
  console.error("usage: peer.mjs gw|boss setup|drain N|consume|produce RATE SECONDS CLIENTS");
  process.exit(2);
}
main().then(() => process.exit(0), (e) => { console.error(e.stack || String(e)); process.exit(1); });
