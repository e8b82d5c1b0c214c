// A person's first hour with the admin page, in headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core; nothing is downloaded):
// the setup code from the data folder, the wizard with TOTP enrolment (the
// code computed here from the secret the page shows) and the backup key's
// recovery sheet, a second account and an app password, log out, log in
// again with TOTP, a backup from the Backup page, the DNS records, a
// screenshot of every page at desktop and phone width (with a close-up of
// the DNS records), and the recovery sheet again, printed. On the way it measures what a newcomer found wrong:
// every DNS name and value whole in its box (underscores included), the
// backup key whole on its sheet (a group never split across lines), the
// sheet on one printed page without the menu, the
// mail host's problem shown when the API reports one, each dashboard
// address on one line with the HTTPS admin page listed, and a gap between
// every form's last field and its button.
//
// Run by tests/e2e/test_browser.py against a real `pochta serve`.
// Environment: POCHTA_ADMIN_URL (http://127.0.0.1:PORT), POCHTA_DATA (the
// data folder), SCREENSHOTS (folder for the PNGs), BACKUP_FOLDER (a folder
// the server may write, set for backups before it started). Prints one
// JSON line with what the Python side checks next (the app password, the
// accounts, the backup key).

import { createHmac } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = process.env.POCHTA_ADMIN_URL;
const data = process.env.POCHTA_DATA;
const shots = process.env.SCREENSHOTS;
const backupFolder = process.env.BACKUP_FOLDER;
if (!base || !data || !shots || !backupFolder) {
  console.error('set POCHTA_ADMIN_URL, POCHTA_DATA, SCREENSHOTS and BACKUP_FOLDER');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const DOMAIN = 'example.test';
const ADMIN_PW = 'correct horse battery staple';
const BOSS = `boss@${DOMAIN}`;
const ANNA = `anna@${DOMAIN}`;
const ACCOUNT_PW = 'a long office passphrase 7';
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

/** RFC 6238 TOTP (HMAC-SHA-1, 6 digits, 30 s) from a base32 secret. */
function totp(secret, at = Date.now() / 1000) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret.replace(/=+$/, '')) {
    bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1000000;
  return value.toString().padStart(6, '0');
}

function check(condition, message) {
  if (!condition) {
    throw new Error(message);
  }
}

/** Fails on anything the browser itself complained about (CSP refusals of
 * inline script or style show up here), or a failed request. */
function watch(page, problems) {
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()}`));
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`${res.status()} for ${res.url()}`);
  });
  page.on('request', (req) => {
    if (!req.url().startsWith(base)) problems.push(`request outside the box: ${req.url()}`);
  });
}

/** The copyable record names and values on a DNS page, each shown whole:
 * the element's text does not overflow its box (scroll size within client
 * size: a form field scrolls what it cannot show), and the glyphs' boxes
 * (ascent to descent, where an underscore sits) lie inside the element's
 * box. A form field holds no text node to measure, so it fails here too:
 * it clips a long value and, at 34 px, the underscores of
 * `_domainkey`. Returns what is wrong, and how many values were seen. */
async function dnsValuesVisible(tab) {
  return tab.evaluate(() => {
    const wrong = [];
    const fields = [...document.querySelectorAll('table.records .copy')];
    for (const el of fields) {
      const text = el.value ?? el.textContent;
      const what = `${el.getAttribute('aria-label') || el.tagName} "${text.slice(0, 40)}"`;
      if (el.scrollHeight > el.clientHeight + 1 || el.scrollWidth > el.clientWidth + 1) {
        wrong.push(`${what}: text of ${el.scrollWidth}x${el.scrollHeight} px in a ${el.clientWidth}x${el.clientHeight} px box`);
      }
      const node = el.firstChild;
      if (!node || node.nodeType !== Node.TEXT_NODE || node.textContent !== text) {
        wrong.push(`${what}: not plain text in its element (a form field clips it)`);
        continue;
      }
      const range = document.createRange();
      range.selectNodeContents(node);
      const box = el.getBoundingClientRect();
      for (const line of range.getClientRects()) {
        if (line.top < box.top - 0.5 || line.bottom > box.bottom + 0.5 ||
            line.left < box.left - 0.5 || line.right > box.right + 0.5) {
          wrong.push(`${what}: a line of text at ${line.top.toFixed(1)}–${line.bottom.toFixed(1)} px ` +
            `outside its box at ${box.top.toFixed(1)}–${box.bottom.toFixed(1)} px`);
          break;
        }
      }
      if (box.right > document.documentElement.clientWidth + 0.5) {
        wrong.push(`${what}: its box ends at ${box.right} px, past the screen`);
      }
    }
    return { wrong, count: fields.length };
  });
}

/** The backup key on its recovery sheet, shown whole: the text does not
 * overflow its box, every line of it lies inside the box and the box
 * inside the screen, and each group of five stays on one line (the key
 * breaks only after a dash). Returns what is wrong, and the key. */
async function keyVisible(tab) {
  return tab.evaluate(() => {
    const el = document.querySelector('#backup-key');
    if (!el) return { wrong: ['no #backup-key on the page'], key: '' };
    const wrong = [];
    const key = el.textContent;
    if (el.scrollHeight > el.clientHeight + 1 || el.scrollWidth > el.clientWidth + 1) {
      wrong.push(`text of ${el.scrollWidth}x${el.scrollHeight} px in a ${el.clientWidth}x${el.clientHeight} px box`);
    }
    const box = el.getBoundingClientRect();
    const all = document.createRange();
    all.selectNodeContents(el);
    for (const line of all.getClientRects()) {
      if (line.top < box.top - 0.5 || line.bottom > box.bottom + 0.5 ||
          line.left < box.left - 0.5 || line.right > box.right + 0.5) {
        wrong.push(`a line at ${line.left.toFixed(1)}–${line.right.toFixed(1)} px outside its box at ` +
          `${box.left.toFixed(1)}–${box.right.toFixed(1)} px`);
        break;
      }
    }
    if (box.right > document.documentElement.clientWidth + 0.5) {
      wrong.push(`its box ends at ${box.right} px, past the screen`);
    }
    for (const node of el.childNodes) {
      if (node.nodeType !== Node.TEXT_NODE) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
      if (lines.size !== 1) wrong.push(`the group "${node.textContent}" on ${lines.size} lines`);
    }
    return { wrong, key };
  });
}

/** Waits, bounded, for the page's run to end: the Backup page loads
 * itself again while one runs; here it is loaded until it says how the run
 * ended. */
async function runEnded(tab, what) {
  const deadline = Date.now() + 120_000;
  for (;;) {
    await tab.goto(`${base}/backup`);
    if (await tab.locator('#run-in-progress').count() === 0 && await tab.locator('#last-run').count() === 1) {
      return;
    }
    check(Date.now() < deadline, `the ${what} did not end within 120 s`);
    await tab.waitForTimeout(500);
  }
}

/** The dashboard's service addresses: each on one line (never broken
 * inside `127.0.0.1:25`), and the HTTPS admin listener among them. */
async function serviceAddresses(tab) {
  return tab.evaluate(() => {
    const wrong = [];
    const addrs = [...document.querySelectorAll('.services .addr')];
    for (const el of addrs) {
      const lines = el.getClientRects().length;
      if (lines !== 1 || el.getBoundingClientRect().width === 0) {
        wrong.push(`${el.textContent}: ${lines} line boxes`);
      }
    }
    const labels = [...document.querySelectorAll('.services td:first-child')].map((td) => td.textContent);
    return { wrong, count: addrs.length, labels };
  });
}

/** Times in tables (mail log, security): the date and the clock each on
 * one line, never broken inside a number. */
async function timesWhole(tab) {
  return tab.evaluate(() => {
    const wrong = [];
    const cells = [...document.querySelectorAll('td.time')];
    for (const td of cells) {
      // A date and a clock in spans of their own: each on one line.
      const spans = [...td.querySelectorAll('span')];
      if (spans.length >= 2) {
        for (const span of spans) {
          const range = document.createRange();
          range.selectNodeContents(span);
          const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
          if (lines.size !== 1) wrong.push(`"${span.textContent}" of "${td.textContent}" on ${lines.size} lines`);
        }
        continue;
      }
      const node = td.firstChild;
      const text = node?.textContent ?? '';
      const at = text.indexOf(' ');
      if (!node || at < 0) {
        wrong.push(`"${text}" is not a date and a time`);
        continue;
      }
      for (const [from, to] of [[0, at], [at + 1, text.length]]) {
        const range = document.createRange();
        range.setStart(node, from);
        range.setEnd(node, to);
        const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
        if (lines.size !== 1) wrong.push(`"${text.slice(from, to)}" of "${text}" on ${lines.size} lines`);
      }
    }
    return { wrong, count: cells.length };
  });
}

/** In every form with a visible text field, the submit button keeps a gap
 * from the field above it. */
async function buttonGaps(tab) {
  return tab.evaluate(() => {
    const wrong = [];
    let checked = 0;
    for (const form of document.querySelectorAll('main form')) {
      const button = form.querySelector('button');
      const fields = [...form.querySelectorAll('input, textarea, select')]
        .filter((f) => f.type !== 'hidden' && f.getClientRects().length > 0);
      if (!button || fields.length === 0) continue;
      const b = button.getBoundingClientRect();
      const above = fields.map((f) => f.getBoundingClientRect()).filter((r) => r.top < b.top);
      if (above.length === 0) continue;
      const last = Math.max(...above.map((r) => r.bottom));
      checked += 1;
      if (b.top - last < 8) {
        wrong.push(`"${button.textContent}" in ${form.getAttribute('action')}: ${(b.top - last).toFixed(1)} px below its field`);
      }
    }
    return { wrong, checked };
  });
}

/** A layout fault: noted, so that the tour still shoots every page, and
 * failed at the end. */
const layoutFaults = [];
function layout(condition, message) {
  if (!condition) layoutFaults.push(message);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // Root in CI has no user namespace sandbox; the rest keeps Chromium from
  // reaching for Google's services on a machine without internet.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  timeout: 60_000,
});
const problems = [];
const result = { screenshots: [] };
let formsChecked = 0;

/** Button gaps on the page a tab shows now. */
async function gapsOn(tab, where) {
  const gaps = await buttonGaps(tab);
  layout(gaps.wrong.length === 0, `${where}: buttons touch their fields:\n${gaps.wrong.join('\n')}`);
  formsChecked += gaps.checked;
}
try {
  const desktop = await browser.newContext({ viewport: DESKTOP });
  desktop.setDefaultTimeout(20_000);
  const page = await desktop.newPage();
  watch(page, problems);

  // First boot: the page sends a newcomer to setup.
  await page.goto(`${base}/`);
  check(page.url().endsWith('/setup'), `/ went to ${page.url()}, not /setup`);
  await page.screenshot({ path: join(shots, '01-setup-desktop.png'), fullPage: true });
  await gapsOn(page, 'setup');
  const code = readFileSync(join(data, 'setup-code.txt'), 'utf8').trim();
  await page.fill('#code', code);
  await page.fill('#user', 'admin');
  await page.fill('#password', ADMIN_PW);
  await page.click('button:has-text("Create administrator")');
  await page.waitForURL('**/enrol');

  // TOTP enrolment: a QR code drawn by the server, and the key as text.
  check(await page.locator('.qr svg').count() === 1, 'no QR code on the enrolment page');
  await page.screenshot({ path: join(shots, '02-enrol-desktop.png'), fullPage: true });
  await gapsOn(page, 'enrolment');
  const secret = (await page.textContent('#secret')).trim();
  const enrolledAt = Date.now() / 1000;
  await page.fill('#code', totp(secret, enrolledAt));
  await page.click('button:has-text("Confirm")');
  await page.waitForSelector('#recovery-codes');
  const recovery = await page.locator('#recovery-codes code').allTextContents();
  check(recovery.length === 10, `${recovery.length} recovery codes`);
  await page.screenshot({ path: join(shots, '03-recovery-codes-desktop.png'), fullPage: true });
  await page.click('a:has-text("Continue")');

  // The wizard: the first domain, the first mailbox, then the DNS page.
  await page.waitForURL('**/welcome');
  await page.screenshot({ path: join(shots, '04-wizard-domain-desktop.png'), fullPage: true });
  await gapsOn(page, 'wizard, domain');
  await page.fill('#domain', DOMAIN);
  await page.click('button:has-text("Add domain")');
  await page.waitForSelector('text=Step 2 of 3');
  await page.screenshot({ path: join(shots, '05-wizard-mailbox-desktop.png'), fullPage: true });
  await gapsOn(page, 'wizard, mailbox');
  await page.fill('#address', BOSS);
  await page.fill('#apw', ACCOUNT_PW);
  await page.click('button:has-text("Create mailbox")');

  // Step 3: the backup key, shown once; continuing says it is written down.
  await page.waitForSelector('text=Step 3 of 3');
  const wizardKey = await keyVisible(page);
  layout(wizardKey.wrong.length === 0, `wizard: the key is not fully visible:\n${wizardKey.wrong.join('\n')}`);
  check(/^[0-9A-Z]{5}(-[0-9A-Z]{5}){5}$/.test(wizardKey.key), `the wizard's key ${wizardKey.key}`);
  check((await page.textContent('main')).includes('Without this key the backup cannot be read'),
    'the key step does not say what the key is for');
  await page.screenshot({ path: join(shots, '05b-wizard-key-desktop.png'), fullPage: true });
  result.backup_key = wizardKey.key;
  await page.click('button:has-text("Continue")');
  // Not ticked: the browser keeps the person on the step.
  check(await page.locator('#key-written').count() === 1 && !page.url().includes('/domains/'),
    'the key step went on without the box ticked');
  await page.check('#key-written');
  await page.click('button:has-text("Continue")');
  await page.waitForURL(`**/domains/${DOMAIN}`);
  const dns = await page.textContent('main');
  for (const want of ['MX', `_domainkey.${DOMAIN}.`, 'v=spf1', 'v=DMARC1']) {
    check(dns.includes(want), `the DNS page lacks ${want}`);
  }

  // A second account, and an app password for it.
  await page.goto(`${base}/accounts`);
  await page.fill('#address', ANNA);
  await page.fill('#apw', ACCOUNT_PW);
  await page.click('button:has-text("Add account")');
  await page.waitForURL('**/accounts');
  check((await page.textContent('main')).includes(ANNA), 'the new account is not listed');
  await page.goto(`${base}/accounts/${ANNA}`);
  await page.click('a:has-text("Settings for mail programs")');
  await page.waitForURL(`**/accounts/${ANNA}/setup`);
  check(/IMAP[\s\S]*SSL\/TLS/.test(await page.textContent('main')), 'the setup page names no IMAP over TLS');
  await page.goBack();
  await page.fill('#app-name', 'Phone');
  await page.click('button:has-text("Make app password")');
  const appPassword = (await page.textContent('#new-app-password')).trim();
  check(appPassword.length >= 16, `app password ${appPassword}`);
  await page.screenshot({ path: join(shots, '06-app-password-desktop.png'), fullPage: true });
  result.app_password = appPassword;
  result.app_password_account = ANNA;

  // Log out, and back in: the enrolment's code is used up, so the login
  // waits for the next 30 s step (bounded: at most one step).
  await page.click('header button:has-text("Log out")');
  await page.waitForURL('**/login');
  await page.screenshot({ path: join(shots, '07-login-desktop.png'), fullPage: true });
  await gapsOn(page, 'login');
  const nextStep = (Math.floor(enrolledAt / 30) + 1) * 30;
  const wait = nextStep * 1000 - Date.now();
  if (wait > 0) await page.waitForTimeout(wait + 200);
  await page.fill('#user', 'admin');
  await page.fill('#password', ADMIN_PW);
  const loggedInAt = Date.now() / 1000;
  await page.fill('#totp', totp(secret, loggedInAt));
  await page.click('button:has-text("Log in")');
  await page.waitForURL(`${base}/`);
  check((await page.title()).startsWith('Dashboard'), 'no dashboard after login');

  // The Backup page: the folder chosen before the server started (so the
  // confined server may write it), the hour changed, a backup now.
  await page.click('nav a:has-text("Backup")');
  await page.waitForURL('**/backup');
  check(await page.inputValue('#backup-folder') === backupFolder,
    `the Backup page shows the folder ${await page.inputValue('#backup-folder')}, not ${backupFolder}`);
  await page.fill('#backup-hour', '2');
  await page.click('button:has-text("Save")');
  await page.waitForURL('**/backup');
  check(await page.inputValue('#backup-hour') === '2', 'the hour was not saved');
  check(await page.locator('#restart-needed').count() === 0, 'a restart asked for a folder set before the start');
  await page.click('button:has-text("Back up now")');
  await runEnded(page, 'backup');
  check(await page.locator('#last-run[data-ok="true"]').count() === 1,
    `the backup did not go well: ${await page.textContent('#last-run')}`);
  check(await page.locator('table.snapshots tr').count() === 2, 'the snapshot is not listed');
  // The health checks run every second here: the dashboard's backup row
  // sees the backup within a few.
  for (let tries = 0; ; tries += 1) {
    const health = await (await page.request.get(`${base}/api/health`)).json();
    const row = health.checks.find((c) => c.id === 'backup');
    if (row && row.reason.startsWith('Last backup')) break;
    check(tries < 50, `the backup check still says: ${row && row.reason}`);
    await page.waitForTimeout(200);
  }

  // Every page, at both widths.
  const pages = [
    ['dashboard', '/'],
    ['domains', '/domains'],
    ['dns', `/domains/${DOMAIN}`],
    ['accounts', '/accounts'],
    ['account', `/accounts/${ANNA}`],
    ['client-setup', `/accounts/${ANNA}/setup`],
    ['aliases', '/aliases'],
    ['queue', '/queue'],
    ['mail-log', '/log'],
    ['security', '/security'],
    ['settings', '/settings'],
    ['backup', '/backup'],
  ];
  const phone = await browser.newContext({
    viewport: PHONE,
    isMobile: true,
    hasTouch: true,
    storageState: await desktop.storageState(),
  });
  phone.setDefaultTimeout(20_000);
  const small = await phone.newPage();
  watch(small, problems);
  let n = 8;
  for (const [name, path] of pages) {
    for (const [width, tab] of [['desktop', page], ['phone', small]]) {
      const response = await tab.goto(`${base}${path}`);
      check(response.status() === 200, `${path} answered ${response.status()} (${width})`);
      check(!tab.url().endsWith('/login'), `${path} sent the ${width} browser to the login`);
      if (width === 'phone') {
        // Nothing wider than the phone: no sideways scrolling.
        const [scroll, inner] = await tab.evaluate(
          () => [document.documentElement.scrollWidth, window.innerWidth]);
        check(scroll <= inner + 1, `${path} is ${scroll}px wide on a ${inner}px phone`);
      }
      const file = `${String(n).padStart(2, '0')}-${name}-${width}.png`;
      await tab.screenshot({ path: join(shots, file), fullPage: true });
      result.screenshots.push(file);
      await gapsOn(tab, `${path} (${width})`);
      if (name === 'dns') {
        // A close-up of the first records at full size: the underscores of
        // `_domainkey` and `_dmarc` are the thing to look at.
        const rows = tab.locator('table.records tr');
        const first = await rows.nth(1).boundingBox();
        const last = await rows.nth(5).boundingBox();
        if (first && last) {
          const closeup = `${String(n).padStart(2, '0')}-${name}-closeup-${width}.png`;
          await tab.screenshot({
            path: join(shots, closeup),
            fullPage: true,
            clip: { x: first.x, y: first.y, width: first.width, height: last.y + last.height - first.y },
          });
          result.screenshots.push(closeup);
        }
        const dnsValues = await dnsValuesVisible(tab);
        layout(dnsValues.count >= 8, `${path} (${width}): ${dnsValues.count} copyable values`);
        layout(dnsValues.wrong.length === 0,
          `${path} (${width}): values not fully visible:\n${dnsValues.wrong.join('\n')}`);
        // The mail host of the test config is no full public name: the
        // page says so where it cannot be missed.
        const api = await (await tab.request.get(`${base}/api/domains/${DOMAIN}/dns`)).json();
        layout('host_problem' in api, `/api/domains/${DOMAIN}/dns has no host_problem`);
        if (api.host_problem) {
          const shown = tab.locator('#host-problem');
          layout(await shown.isVisible(), `${path} (${width}): the mail host's problem is not shown`);
          layout((await shown.textContent() ?? '').includes(api.host_problem),
            `${path} (${width}): the page's warning differs from the API's ${api.host_problem}`);
        }
      }
      if (name === 'mail-log' || name === 'security') {
        const times = await timesWhole(tab);
        layout(times.count >= 1, `${path} (${width}): no times to measure`);
        layout(times.wrong.length === 0, `${path} (${width}): times broken:\n${times.wrong.join('\n')}`);
      }
      if (name === 'dashboard') {
        const row = await tab.textContent('table.health tr[data-check="backup"]') ?? '';
        layout(row.includes('Last backup to the folder') && row.includes('added'),
          `${width}: the dashboard's backup row reads: ${row}`);
        const services = await serviceAddresses(tab);
        layout(services.count >= 9, `${width}: ${services.count} service addresses on the dashboard`);
        layout(services.wrong.length === 0,
          `${width}: service addresses broken across lines:\n${services.wrong.join('\n')}`);
        layout(services.labels.some((l) => l.includes('Admin page (HTTPS)')),
          `${width}: no HTTPS admin page among ${services.labels.join(', ')}`);
        // The health checks, one failing (test_browser.py installs an
        // expired certificate): shown with its reason and what to do, and
        // a close-up of the table to look at.
        const failing = tab.locator('table.health tr.check[data-state="failing"]');
        layout(await failing.count() >= 1, `${width}: no failing check on the dashboard`);
        if (await failing.count() >= 1) {
          const text = await failing.first().textContent() ?? '';
          layout(text.includes('expired') && text.includes('What to do'),
            `${width}: the failing check does not say what and what to do: ${text}`);
          const api = await (await tab.request.get(`${base}/api/health`)).json();
          layout(api.state === 'failing' && api.checks.some((c) => c.id === 'certificate' && c.state === 'failing'),
            `${width}: /api/health does not report the certificate failing: ${JSON.stringify(api).slice(0, 500)}`);
          const box = await tab.locator('table.health').boundingBox();
          if (box) {
            const closeup = `${String(n).padStart(2, '0')}-${name}-health-${width}.png`;
            await tab.screenshot({ path: join(shots, closeup), fullPage: true, clip: box });
            result.screenshots.push(closeup);
          }
        }
      }
    }
    n += 1;
  }
  // The recovery sheet from the Backup page: the password and a fresh
  // code (the login's is used up: the next 30 s step, at most one wait).
  const nextCode = (Math.floor(loggedInAt / 30) + 1) * 30 * 1000 - Date.now();
  if (nextCode > 0) await page.waitForTimeout(nextCode + 200);
  await page.goto(`${base}/backup`);
  await page.fill('#key-password', ADMIN_PW);
  await page.fill('#key-code', totp(secret));
  await page.click('button:has-text("Show the recovery sheet")');
  await page.waitForSelector('#recovery-sheet');
  const sheetKey = await keyVisible(page);
  layout(sheetKey.wrong.length === 0, `sheet: the key is not fully visible:\n${sheetKey.wrong.join('\n')}`);
  check(sheetKey.key === wizardKey.key, `the sheet's key ${sheetKey.key} is not the wizard's`);
  // On paper: the sheet without the header and menu, on one page.
  await page.emulateMedia({ media: 'print' });
  check(!(await page.locator('header').isVisible()) && !(await page.locator('nav').isVisible()),
    'the printed sheet has the header or the menu');
  check(await page.locator('#backup-key').isVisible(), 'the printed sheet has no key');
  await page.screenshot({ path: join(shots, '20-recovery-sheet-desktop.png'), fullPage: true });
  const pdf = (await page.pdf({ format: 'A4' })).toString('latin1');
  const printed = (pdf.match(/\/Type\s*\/Page\b/g) || []).length;
  layout(printed === 1, `the recovery sheet prints on ${printed} pages`);
  await page.emulateMedia({ media: 'screen' });
  // On a phone, with a recovery code for the second factor.
  await small.goto(`${base}/backup`);
  await small.fill('#key-password', ADMIN_PW);
  await small.fill('#key-code', recovery[0]);
  await small.click('button:has-text("Show the recovery sheet")');
  await small.waitForSelector('#recovery-sheet');
  const phoneKey = await keyVisible(small);
  layout(phoneKey.wrong.length === 0, `sheet on a phone: the key is not fully visible:\n${phoneKey.wrong.join('\n')}`);
  const [scroll, inner] = await small.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  layout(scroll <= inner + 1, `the recovery sheet is ${scroll}px wide on a ${inner}px phone`);
  await small.screenshot({ path: join(shots, '20-recovery-sheet-phone.png'), fullPage: true });

  check(layoutFaults.length === 0, `layout faults:\n${layoutFaults.join('\n')}`);
  check(formsChecked >= 10, `only ${formsChecked} forms' buttons measured`);
  check(problems.length === 0, `the browser reported:\n${problems.join('\n')}`);
  result.ok = true;
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
