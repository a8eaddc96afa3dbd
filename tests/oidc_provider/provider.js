// A real OpenID Connect provider (oidc-provider) for the sign-in tests, on 127.0.0.1 only.
// Configured by one JSON argument: {port, clients: [{client_id, client_secret, redirect_uris}], accounts: {sub:
// {email, email_verified}}, fault}. Its sign-in page asks only for the sub of one of the accounts. A fault makes
// it misbehave as a broken or hostile provider would: its token endpoint answers an ID token re-signed with an
// unpublished key ("signature"), or naming another issuer, audience or nonce.
import http from 'node:http';
import * as jose from 'jose';
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2]);
const issuer = `http://127.0.0.1:${config.port}`;
const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await jose.exportJWK(privateKey)), kid: 'signing-key', alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: config.clients.map((c) => ({ ...c, grant_types: ['authorization_code'], response_types: ['code'] })),
  jwks: { keys: [jwk] },
  cookies: { keys: ['test-provider-cookie-key'] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const account = config.accounts[sub];
    if (!account) return undefined;
    return { accountId: sub, claims: async () => ({ sub, ...account }) };
  },
});

async function resign(idToken) {
  const claims = jose.decodeJwt(idToken);
  let key = privateKey;
  if (config.fault === 'signature') key = (await jose.generateKeyPair('RS256')).privateKey;
  if (config.fault === 'issuer') claims.iss = 'http://127.0.0.1:1/another-issuer';
  if (config.fault === 'audience') claims.aud = 'another-client';
  if (config.fault === 'nonce') claims.nonce = 'a-nonce-this-sign-in-never-sent';
  return new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: jwk.kid }).sign(key);
}

if (config.fault) {
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/token' && ctx.body && ctx.body.id_token) {
      ctx.body = { ...ctx.body, id_token: await resign(ctx.body.id_token) };
    }
  });
}

const page = (body) => `<!doctype html><html><body>${body}</body></html>`;
const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (req.method === 'GET') {
    res.setHeader('Content-Type', 'text/html');
    res.end(page(`<form method="post" action="/interaction/${escape(details.uid)}">
      <input name="login"><button type="submit">Sign in</button></form>`));
    return;
  }
  let body = '';
  for await (const chunk of req) body += chunk;
  const sub = new URLSearchParams(body).get('login');
  if (!config.accounts[sub]) {
    res.statusCode = 400;
    res.end(page('No such account.'));
    return;
  }
  const grant = new provider.Grant({ accountId: sub, clientId: details.params.client_id });
  grant.addOIDCScope(details.params.scope);
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { login: { accountId: sub }, consent: { grantId } });
}

const callback = provider.callback();
http
  .createServer((req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interaction(req, res).catch((err) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    } else {
      callback(req, res);
    }
  })
  .listen(config.port, '127.0.0.1', () => console.log(`listening ${issuer}`));
