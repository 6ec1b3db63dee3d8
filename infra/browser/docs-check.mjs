// The API reference in a real browser, as a person uses it: run by infra/docs-check, which
// installs Chromium and playwright-core and passes the settings below through the environment.
//
// DOCS_BASE_URL       where the API answers (the page is $DOCS_BASE_URL/docs)
// DOCS_TOKEN          the bearer token to enter in "Authorize"
// DOCS_OPERATION      the operation to try, e.g. "GET /canvases" (absent: the first GET without
//                     path parameters)
// DOCS_EXPECT_STATUS  the status "Execute" must show (200)
// DOCS_SCREENSHOT     where to save the screenshot
// DOCS_CHROMIUM       the browser (/usr/bin/chromium)
import { chromium } from 'playwright-core';

const base = process.env.DOCS_BASE_URL.replace(/\/+$/, '');
const token = process.env.DOCS_TOKEN;
const wanted = (process.env.DOCS_OPERATION || 'GET /canvases').trim();
const expectStatus = process.env.DOCS_EXPECT_STATUS || '200';
const screenshot = process.env.DOCS_SCREENSHOT;
const timeout = 20_000;

const origin = new URL(base).origin;
let browser;
let page;

function step(text) {
  console.error(`  - ${text}`);
}

async function fail(message) {
  console.error(`docs-check: FAIL: ${message}`);
  if (page && process.env.DOCS_FAILURE_SCREENSHOT) {
    // What the page showed when the check failed, for whoever reads the message.
    await page.screenshot({ path: process.env.DOCS_FAILURE_SCREENSHOT, fullPage: true }).catch(() => {});
    console.error(`docs-check: the page at that moment: ${process.env.DOCS_FAILURE_SCREENSHOT}`);
  }
  await browser?.close().catch(() => {});
  process.exit(1);
}

async function visible(locator, what) {
  try {
    await locator.first().waitFor({ state: 'visible', timeout });
  } catch {
    await fail(`${what} did not appear within ${timeout / 1000} s`);
  }
  return locator.first();
}

browser = await chromium.launch({
  executablePath: process.env.DOCS_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // Root in a container: no sandbox. Nothing may reach out on its own (this machine is offline).
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();

  // Everything the page loads must come from the API itself: Swagger UI is embedded, no CDN.
  const outside = [];
  const problems = [];
  const sent = [];
  page.on('request', (request) => {
    const url = request.url();
    if (url.startsWith('data:') || url.startsWith('blob:')) return;
    if (new URL(url).origin !== origin) outside.push(url);
    sent.push(request);
  });
  page.on('pageerror', (error) => problems.push(`script error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy|Refused to/.test(message.text())) {
      problems.push(`blocked by the page's Content-Security-Policy: ${message.text()}`);
    }
  });

  step(`open ${base}/docs`);
  const response = await page.goto(`${base}/docs`, { waitUntil: 'load', timeout }).catch((e) => fail(`cannot open ${base}/docs: ${e.message}`));
  if (!response || response.status() !== 200) await fail(`GET /docs answered ${response && response.status()}, not 200`);

  const operations = page.locator('.opblock');
  await visible(operations, 'the operations list (Swagger UI rendered nothing: is /openapi.json served?)');
  const count = await operations.count();
  step(`Swagger UI lists ${count} operations`);

  step('Authorize with the bearer token');
  await (await visible(page.locator('.auth-wrapper button.authorize'), 'the "Authorize" button (does the document declare a security scheme?)')).click();
  const dialog = await visible(page.locator('.modal-ux'), 'the "Available authorizations" dialog');
  const tokenInput = await visible(dialog.locator('input[aria-label="auth-bearer-value"], input[type="text"], input[type="password"]'), 'the bearer token field');
  await tokenInput.fill(token);
  await dialog.locator('.auth-btn-wrapper button.authorize').first().click();
  await visible(dialog.locator('.auth-btn-wrapper button.btn-done, .auth-btn-wrapper button.close-modal'), 'the dialog\'s "Close" button');
  await dialog.locator('.auth-btn-wrapper button.btn-done, .auth-btn-wrapper button.close-modal').first().click();
  await visible(page.locator('.auth-wrapper button.authorize.locked'), 'the locked padlock (authorized)');

  // The operation: DOCS_OPERATION when listed, else the first GET that needs no path parameter.
  const [method, path] = wanted.split(/\s+/);
  let op = page.locator(`.opblock-${method.toLowerCase()}:has(.opblock-summary-path[data-path="${path}"])`);
  if ((await op.count()) === 0) {
    const gets = page.locator('.opblock-get');
    const paths = await gets.locator('.opblock-summary-path').evaluateAll((els) => els.map((e) => e.getAttribute('data-path')));
    const index = paths.findIndex((p) => p && !p.includes('{'));
    if (index < 0) await fail(`${wanted} is not listed, and no GET without path parameters is`);
    step(`${wanted} is not listed; trying GET ${paths[index]} instead`);
    op = gets.nth(index);
  } else {
    op = op.first();
  }
  const opMethod = (await op.locator('.opblock-summary-method').first().innerText()).trim();
  const opPath = await op.locator('.opblock-summary-path').first().getAttribute('data-path');
  step(`expand ${opMethod} ${opPath}`);
  await op.locator('.opblock-summary-control, .opblock-summary').first().click();
  await (await visible(op.locator('button.try-out__btn'), `"Try it out" in ${opMethod} ${opPath}`)).click();
  step('Try it out, Execute');
  const before = sent.length;
  await (await visible(op.locator('button.execute'), `"Execute" in ${opMethod} ${opPath}`)).click();

  const status = await visible(op.locator('.live-responses-table .response .response-col_status'), 'the response of "Execute"');
  const shown = (await status.innerText()).trim().split(/\s+/)[0];
  step(`the page shows status ${shown}`);

  // The call itself: to that path, with the token entered in "Authorize".
  const call = sent.slice(before).find((r) => new URL(r.url()).pathname === opPath && r.method() === opMethod);
  if (!call) await fail(`"Execute" sent no ${opMethod} ${opPath}`);
  const authorization = (await call.allHeaders()).authorization;
  if (authorization !== `Bearer ${token}`) {
    await fail(`${opMethod} ${opPath} was sent with Authorization ${JSON.stringify(authorization)}, not the bearer token`);
  }
  step('the call carried Authorization: Bearer <token>');
  if (shown !== expectStatus) await fail(`"Execute" shows status ${shown}, expected ${expectStatus} (DOCS_EXPECT_STATUS)`);
  if (outside.length) await fail(`the page loaded from outside ${origin}: ${outside.join(', ')}`);
  if (problems.length) await fail(problems.join('\n'));

  // The picture: from the page's top (title, locked Authorize) down to the end of the response.
  await page.evaluate(() => window.scrollTo(0, 0));
  const bottom = await op.locator('.responses-wrapper .live-responses-table').first().evaluate((el) => {
    const box = el.getBoundingClientRect();
    return box.bottom + window.scrollY;
  });
  await page.screenshot({ path: screenshot, fullPage: true, clip: { x: 0, y: 0, width: 1280, height: Math.ceil(bottom) + 24 } });
  step(`screenshot: ${screenshot}`);
  console.error(`docs-check: OK: ${count} operations, authorized, ${opMethod} ${opPath} executed with the token, status ${shown}`);
} finally {
  await browser.close();
}
