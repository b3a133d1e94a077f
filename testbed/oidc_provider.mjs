// A real OpenID provider for the tests (testbed/oidc_provider.py starts it): panva's oidc-provider, certified, run by
// Node. It knows the accounts and clients the tests give in OIDC_TEST_CONFIG (JSON: port, clients, accounts),
// shows a login page of its own (username and password; consent is given at once), and has a control path
// for the tests: rotate its signing key, move its clock, count the requests per path. Never part of cdnstore.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import http from "node:http";
import { pathToFileURL } from "node:url";

const { default: Provider } = await import(pathToFileURL(process.env.OIDC_PROVIDER_MODULE).href);
const config = JSON.parse(process.env.OIDC_TEST_CONFIG);
const issuer = `http://${config.host || "127.0.0.1"}:${config.port}`; // (it listens on 127.0.0.1 whatever its name)

// The provider's clock, moved by /__test/clock (an ID token issued two hours ago is an expired one).
let offset = 0;
const realNow = Date.now;
Date.now = () => realNow() + offset * 1000;

const counts = {};
const cookieKeys = [randomBytes(32).toString("hex")];

function newKey() {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { ...privateKey.export({ format: "jwk" }), kid: randomBytes(8).toString("hex"), use: "sig", alg: "RS256" };
}

let keys = [newKey()];

async function findAccount(ctx, id) {
  const account = config.accounts[id];
  if (!account) return undefined;
  return {
    accountId: id,
    async claims() {
      return { sub: account.sub ?? id, preferred_username: account.username ?? id, email: account.email, groups: account.groups ?? [] };
    },
  };
}

function build() {
  const provider = new Provider(issuer, {
    clients: config.clients.map((c) => ({ grant_types: ["authorization_code"], response_types: ["code"], ...c })),
    jwks: { keys },
    cookies: { keys: cookieKeys },
    claims: { openid: ["sub"], profile: ["preferred_username", "name"], email: ["email"], groups: ["groups"] },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    pkce: { required: () => true },
    findAccount,
  });
  provider.on("server_error", (ctx, err) => console.error("server_error", err));
  return { provider, handle: provider.callback() };
}

let current = build();

function page(title, body) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;
}

function loginForm(uid, error = "") {
  return page(
    "Test provider: sign in",
    `<h1>Test provider</h1><p id="error">${error}</p>
     <form method="post" action="/interaction/${uid}/login">
       <label>Username <input id="username" name="username" autocomplete="off"></label>
       <label>Password <input id="password" name="password" type="password"></label>
       <button type="submit" id="sign-in">Sign in</button>
     </form>`,
  );
}

async function readForm(req) {
  let raw = "";
  for await (const chunk of req) raw += chunk;
  return Object.fromEntries(new URLSearchParams(raw));
}

async function interaction(url, req, res) {
  const { provider } = current;
  const details = await provider.interactionDetails(req, res);
  const { uid, prompt, params, session } = details;
  if (prompt.name === "consent") {
    // Consent at once: the tests' users trust the tests' clients.
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(" "));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  if (req.method === "POST" && url.pathname.endsWith("/login")) {
    const form = await readForm(req);
    const account = config.accounts[form.username];
    if (!account || account.password !== form.password) {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      return res.end(loginForm(uid, "Wrong username or password."));
    }
    return provider.interactionFinished(req, res, { login: { accountId: form.username } }, { mergeWithLastSubmission: false });
  }
  res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" });
  return res.end(loginForm(uid));
}

function control(url, res) {
  if (url.pathname === "/__test/rotate") {
    keys = [newKey()]; // the old key is gone from the JWKS: what it signed no longer verifies
    current = build();
  } else if (url.pathname === "/__test/clock") {
    offset = Number(url.searchParams.get("offset") || "0");
  } else if (url.pathname === "/__test/reset") {
    offset = 0;
  }
  res.writeHead(200, { "Content-Type": "application/json" });
  res.end(JSON.stringify({ counts, kids: keys.map((k) => k.kid), offset }));
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, issuer);
  counts[url.pathname] = (counts[url.pathname] || 0) + 1;
  try {
    if (url.pathname.startsWith("/__test/")) return control(url, res);
    if (url.pathname.startsWith("/interaction/")) return await interaction(url, req, res);
    return current.handle(req, res);
  } catch (err) {
    console.error(err);
    if (!res.headersSent) res.writeHead(500, { "Content-Type": "text/plain" });
    res.end(String(err));
  }
});

server.listen(config.port, "127.0.0.1", () => console.log(`oidc-provider ready at ${issuer}`));
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
