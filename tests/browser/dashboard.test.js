// dashboard.test.js — drives `baton web` in headless Debian chromium (puppeteer-core over the DevTools protocol), printing TAP.
// Env: BATON_URL (server started with --token), BATON_TOKEN, PGDATABASE (seeded), BATON_SHOTS (screenshot directory),
//      NODE_PATH-like BATON_NODE_MODULES (where puppeteer-core is installed), CHROMIUM (default /usr/bin/chromium).
'use strict';
const path = require('path');
const fs = require('fs');
const {execFileSync} = require('child_process');
const puppeteer = require(path.join(process.env.BATON_NODE_MODULES, 'puppeteer-core'));

const URL = process.env.BATON_URL, TOKEN = process.env.BATON_TOKEN, SHOTS = process.env.BATON_SHOTS;
let n = 0, failed = 0;
function ok(cond, name, detail) {
  n++;
  if (cond) console.log(`ok ${n} - ${name}`);
  else {
    failed++;
    console.log(`not ok ${n} - ${name}`);
    if (detail !== undefined) for (const l of String(detail).split('\n').slice(0, 20)) console.log('#   ' + l);
  }
}
const psql = (sql) => execFileSync('psql', ['-X', '-q', '-tA', '-v', 'ON_ERROR_STOP=1', '-c', sql], {encoding: 'utf8'}).trim();

async function main() {
  fs.mkdirSync(SHOTS, {recursive: true});
  const browser = await puppeteer.launch({executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage']});
  try {
    const page = await browser.newPage();
    await page.setViewport({width: 1280, height: 820});
    // A loaded shared machine can be slow: generous bounds, never timings.
    page.setDefaultNavigationTimeout(180000);
    page.setDefaultTimeout(120000);
    const problems = [], alerts = [];
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(m.type() + ': ' + m.text()); });
    page.on('pageerror', (e) => problems.push('pageerror: ' + e.message));
    page.on('requestfailed', (r) => problems.push('requestfailed: ' + r.url()));
    page.on('dialog', async (d) => {
      if (d.type() === 'alert') alerts.push(d.message());
      if (d.type() === 'prompt') await d.accept('1970-01-01');
      else await d.accept();
    });
    const content = (sel) => page.$eval(sel || '#content', (e) => e.textContent);
    const waitText = async (text, sel, timeout) => {
      try {
        await page.waitForFunction((t, s) => { const e = document.querySelector(s); return e && e.textContent.includes(t); },
          {timeout: timeout || 90000, polling: 100}, text, sel || '#content');
        return true;
      } catch (e) { return false; }
    };

    // Without the token nothing is served.
    let r = await page.goto(URL + '/', {waitUntil: 'load'});
    ok(r.status() === 401, 'without the token: 401', r.status());
    problems.length = 0;
    r = await page.goto(URL + '/?token=' + encodeURIComponent(TOKEN), {waitUntil: 'networkidle0'});
    ok(r.status() === 200 && page.url() === URL + '/', 'the token link sets a cookie and lands on the overview', page.url());

    // Every page loads without console errors and shows the seeded data.
    const task3 = psql("SELECT id FROM baton.tasks WHERE payload ? 'note'");
    const corr = psql('SELECT correlation_id FROM baton.events WHERE id = 1');
    const visits = [
      ['overview', '#/', ['emails', 'inventory', 'payments', 'idle', 'concurrency 4']],
      ['tasks', '#/tasks', ['smtp said no', 'payments', 'emails']],
      ['task', '#/task/' + task3, ['Why is it here?', 'waiting for a worker']],
      ['runs', '#/runs', ['order v1', 'running']],
      ['run', '#/run/1', ['reserve', 'charge', 'Steps 0/2']],
      ['events', '#/events', ['order.placed', 'o-1']],
      ['subscriptions', '#/subscriptions', ['pay-on-order', 'order.placed']],
      ['trace', '#/trace?correlation=' + corr, ['Causal chain of ' + corr, 'order.placed']],
      ['schedules', '#/schedules', ['nightly', '0 3 * * *', 'queue emails']],
      ['workflows', '#/workflows', ['order']],
    ];
    for (const [name, hash, texts] of visits) {
      problems.length = 0;
      await page.goto(URL + '/' + hash, {waitUntil: 'networkidle0'});
      const found = [];
      for (const t of texts) found.push(await waitText(t, '#main'));
      await page.waitForNetworkIdle({idleTime: 300, timeout: 30000}).catch(() => {});
      await page.screenshot({path: path.join(SHOTS, name + '.png')});
      ok(found.every(Boolean), `${name} page shows the seeded data`, texts.filter((t, i) => !found[i]).join(', ') + '\n' +
         await content('#main'));
      ok(problems.length === 0, `${name} page: no console errors`, problems.join('\n'));
    }

    // The DAG and trace pictures are Graphviz SVG.
    const svg = await page.evaluate(async () => (await fetch('/api/run.svg?id=1')).text());
    ok(svg.includes('<svg') && svg.includes('reserve') && svg.includes('#d6e8ff'), 'the run graph is an SVG coloured by state');

    // A <script> payload is shown as text and never runs.
    await page.goto(URL + '/#/task/' + task3, {waitUntil: 'networkidle0'});
    await waitText('<script>alert(1)</script>', '#payload');
    ok((await content('#payload')).includes('"note": "<script>alert(1)</script>"'), 'a <script> payload is shown as text');
    await page.goto(URL + '/#/tasks', {waitUntil: 'networkidle0'});
    await waitText('alert(1)');
    const scripts = await page.$$eval('#main script', (s) => s.length);
    ok(alerts.length === 0 && scripts === 0, 'and it never runs (no alert, no script element)', alerts.join(','));

    // A running workflow's page updates by itself when a step completes.
    await page.goto(URL + '/#/run/1', {waitUntil: 'networkidle0'});
    await waitText('Steps 0/2');
    const dagBefore = await page.$eval('#dag', (i) => i.src);
    psql("SELECT baton.complete(c.id, c.attempt, '{\"reserved\": 1}') FROM baton.claim('{inventory}', 'browser-test', 1) AS c");
    const updated = await waitText('Steps 1/2', '#main', 90000);
    ok(updated, 'the run page shows the completed step without a reload');
    const stepState = await page.$eval('tr[data-id="reserve"] [data-state]', (e) => e.dataset.state);
    ok(stepState === 'succeeded', 'the step row says succeeded', stepState);
    let dagAfter = dagBefore;
    for (let i = 0; i < 600 && dagAfter === dagBefore; i++) {
      await new Promise((res) => setTimeout(res, 100));
      dagAfter = await page.$eval('#dag', (i) => i.src);
    }
    ok(dagAfter !== dagBefore, 'the DAG picture is redrawn');
    await page.screenshot({path: path.join(SHOTS, 'run-live.png')});

    // Retry and cancel buttons work.
    await page.goto(URL + '/#/task/2', {waitUntil: 'networkidle0'});
    await page.waitForSelector('#retry');
    await page.evaluate(() => document.querySelector('#retry').click());   // the page redraws every second: find and click at once
    ok(await waitText('pending', '#main h1 + span, #main .row'), 'retry button: the page shows the task pending');
    ok(psql('SELECT state FROM baton.tasks WHERE id = 2') === 'pending', 'retry button: the task is pending again');
    await page.goto(URL + '/#/task/' + task3, {waitUntil: 'networkidle0'});
    await page.waitForSelector('#cancel');
    await page.evaluate(() => document.querySelector('#cancel').click());
    for (let i = 0; i < 600 && psql('SELECT state FROM baton.tasks WHERE id = ' + task3) !== 'cancelled'; i++)
      await new Promise((res) => setTimeout(res, 100));
    ok(psql('SELECT state FROM baton.tasks WHERE id = ' + task3) === 'cancelled', 'cancel button (confirmed): the task is cancelled');

    // Actions need the CSRF token, and every request the access token.
    psql('SELECT baton.cancel(5)');
    const noCsrf = await page.evaluate(async () => (await fetch('/api/action?do=retry&id=5', {method: 'POST'})).status);
    const badCsrf = await page.evaluate(async () => (await fetch('/api/action?do=retry&id=5',
      {method: 'POST', headers: {'X-CSRF-Token': 'f'.repeat(64)}})).status);
    ok(noCsrf === 403 && badCsrf === 403 && psql('SELECT state FROM baton.tasks WHERE id = 5') === 'cancelled',
       'an action without the CSRF token is refused (403) and changes nothing', noCsrf + ' ' + badCsrf);
    const csrf = await page.evaluate(async () => (await (await fetch('/api/session')).json()).csrf);
    const noToken = await fetch(URL + '/api/action?do=retry&id=5', {method: 'POST', headers: {'X-CSRF-Token': csrf}});
    const noTokenGet = await fetch(URL + '/api/tasks');
    ok(noToken.status === 401 && noTokenGet.status === 401 && psql('SELECT state FROM baton.tasks WHERE id = 5') === 'cancelled',
       'without the access token (cookie or bearer) reads and actions get 401', noToken.status + ' ' + noTokenGet.status);
    const bearer = await fetch(URL + '/api/tasks?queue=payments', {headers: {Authorization: 'Bearer ' + TOKEN}});
    ok(bearer.status === 200 && (await bearer.json()).length >= 1, 'Authorization: Bearer works for scripts');

    // The page redraws every second: find and click a button in one step.
    const clickButton = (label, rowText) => page.evaluate((l, t) => {
      for (const b of document.querySelectorAll('#main button'))
        if (b.textContent === l && (!t || b.closest('tr').textContent.includes(t))) { b.click(); return true; }
      return false;
    }, label, rowText);

    // Bulk actions ask first; the answer says how many.
    psql("SELECT baton.enqueue('emails', '{}') FROM generate_series(1, 2)");
    psql("SELECT baton.fail(c.id, c.attempt, 'no', retry => false) FROM baton.claim('{emails}', 'browser-test', 10) AS c");
    const failedBefore = Number(psql("SELECT count(*) FROM baton.tasks WHERE queue = 'emails' AND state = 'failed'"));
    await page.goto(URL + '/#/tasks?queue=emails', {waitUntil: 'networkidle0'});
    await waitText('emails');
    const asked = [];
    page.on('dialog', (d) => asked.push(d.message()));
    await clickButton('Retry all failed');
    for (let i = 0; i < 600 && psql("SELECT count(*) FROM baton.tasks WHERE queue = 'emails' AND state = 'failed'") !== '0'; i++)
      await new Promise((res) => setTimeout(res, 100));
    ok(asked.some((m) => m.includes('Retry every failed task of queue "emails"')) && failedBefore >= 2 &&
       psql("SELECT count(*) FROM baton.tasks WHERE queue = 'emails' AND state = 'failed'") === '0',
       'bulk retry asks for confirmation and retries the failed tasks of the queue', asked.join('|') + ' ' + failedBefore);
    ok(await waitText('retry queue: done (' + failedBefore + ')', '#toast'), 'and says how many', await content('#toast'));

    // Pause and resume from the overview.
    await page.goto(URL + '/#/', {waitUntil: 'networkidle0'});
    await waitText('idle');
    await clickButton('Pause', 'idle');
    for (let i = 0; i < 600 && psql("SELECT paused FROM baton.queues WHERE queue = 'idle'") !== 't'; i++)
      await new Promise((res) => setTimeout(res, 100));
    ok(psql("SELECT paused FROM baton.queues WHERE queue = 'idle'") === 't', 'pause button pauses the queue');
    await page.screenshot({path: path.join(SHOTS, 'overview-after.png')});
  } finally {
    await browser.close();
  }
  console.log(`1..${n}`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.log('not ok ' + (n + 1) + ' - the browser test ran to its end'); console.log('# ' + e.stack); console.log(`1..${n + 1}`); process.exit(1); });
