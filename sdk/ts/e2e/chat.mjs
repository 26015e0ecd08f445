// The web chat in a real browser: two headless Chromium sessions, alice and bob, exchange
// messages through a real server and each sees them live, with the read receipt.
// `tests/web_chat.rs` starts the server (dev tickets on) and runs this with IM_HTTP and IM_APP;
// CHROMIUM names the browser (default /usr/bin/chromium). Exit status 0 = passed.
import { chromium } from 'playwright-core';

const HTTP = process.env.IM_HTTP;
const APP = process.env.IM_APP;
if (!HTTP || !APP) throw new Error('set IM_HTTP and IM_APP (see tests/web_chat.rs)');
const run = Math.random().toString(36).slice(2, 8);
const [alice, bob] = [`alice-${run}`, `bob-${run}`];
const WAIT = 10_000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // Root in a container: no user namespaces for Chromium's sandbox.
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
const pages = [];
try {
  async function login(user) {
    const page = await (await browser.newContext()).newPage();
    pages.push([user, page]);
    page.on('console', (m) => console.log(`[${user} console] ${m.text()}`));
    page.on('pageerror', (e) => console.log(`[${user} page error] ${e.message}`));
    await page.goto(`${HTTP}/?app=${APP}`);
    await page.fill('#user', user);
    await page.click('#login');
    await page.waitForSelector('#chat:not([hidden])', { timeout: WAIT });
    await page.waitForFunction(() => document.querySelector('#status').textContent === 'online', null, { timeout: WAIT });
    return page;
  }
  const bubble = (side, body) => `#messages li.msg.${side}:has(.body:text-is("${body}"))`;

  const a = await login(alice);
  const b = await login(bob);

  // alice opens a conversation with bob and writes.
  await a.fill('#peer', bob);
  await a.click('#open');
  await a.fill('#text', 'hello bob');
  await a.click('#send');
  await a.waitForSelector(bubble('mine', 'hello bob'), { timeout: WAIT });

  // bob sees it arrive in his list, live, and opens it.
  await b.waitForSelector(`#convs li[data-peer="${alice}"]`, { timeout: WAIT });
  await b.click(`#convs li[data-peer="${alice}"]`);
  await b.waitForSelector(bubble('theirs', 'hello bob'), { timeout: WAIT });

  // bob has read it: alice's bubble says so.
  await a.waitForSelector(`${bubble('mine', 'hello bob')} .state[data-state="read"]`, { timeout: WAIT });

  // bob answers into the open conversation; alice, who has it open, sees it live.
  await b.fill('#text', 'hi alice');
  await b.click('#send');
  await b.waitForSelector(bubble('mine', 'hi alice'), { timeout: WAIT });
  await a.waitForSelector(bubble('theirs', 'hi alice'), { timeout: WAIT });
  await b.waitForSelector(`${bubble('mine', 'hi alice')} .state[data-state="read"]`, { timeout: WAIT });
  console.log('web chat: alice and bob exchanged messages and saw each other read them');
} catch (e) {
  for (const [user, page] of pages) {
    const path = `${process.env.TMPDIR || '/tmp'}/web-chat-${user}.png`;
    await page.screenshot({ path }).catch(() => {});
    console.log(`[${user}] screenshot: ${path}\n[${user}] body: ${(await page.textContent('body').catch(() => '')).replace(/\s+/g, ' ')}`);
  }
  console.error(e);
  process.exitCode = 1;
} finally {
  await browser.close();
}
