// A real OpenID provider (the npm package `oidc-provider`) on loopback, configured by
// the tests: the browser tests sign in through it, and the Rust integration tests read
// its discovery document and JWKS.
//
// Environment:
//   PORT            port to listen on; 0 (the default) lets the OS choose
//   CLIENTS         JSON list of { client_id, client_secret, redirect_uris }
//   USERS           JSON object: login -> { name, groups }
//   API_AUDIENCE    audience of the JWT access tokens it issues (default "urn:runboard:api")
//   MACHINE_CLIENTS JSON list of { client_id, client_secret }: clients that get JWT access
//                   tokens for themselves (the client-credentials grant) for the audience
//                   they name as `resource`, such as a service's mission control
//   CLIENT_CREDENTIALS_TTL  seconds those tokens live (default 600)
//   DEVICE_CLIENTS  JSON list of { client_id }: public clients that sign people in with the
//                   device authorization grant (RFC 8628), as `runboard login` does, and
//                   refresh their tokens
//   DEVICE_CODE_TTL seconds a device code lives (default 600)
//
// Sign-in clients also get a refresh token, with which Runboard asks again for a person's
// groups. `PUT /test/people/<login>/groups` with a JSON list changes a person's groups, as
// an administrator of a real provider would.
//
// When it listens it prints one JSON line on stdout: its issuer, the private key it signs
// with (so a test can forge tokens that differ in one claim only) and a stranger key that is
// not in its JWKS. Dev interactions give the sign-in form: any user of USERS, any password.
import http from "node:http";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import Provider from "oidc-provider";

const port = Number(process.env.PORT ?? 0);
const clients = JSON.parse(process.env.CLIENTS ?? "[]");
const users = JSON.parse(process.env.USERS ?? "{}");
const audience = process.env.API_AUDIENCE ?? "urn:runboard:api";
const machineClients = JSON.parse(process.env.MACHINE_CLIENTS ?? "[]");
const clientCredentialsTtl = Number(process.env.CLIENT_CREDENTIALS_TTL ?? 600);
const deviceClients = JSON.parse(process.env.DEVICE_CLIENTS ?? "[]");
const deviceCodeTtl = Number(process.env.DEVICE_CODE_TTL ?? 600);

function rsaKey() {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const kid = randomUUID();
  return {
    kid,
    jwk: { ...privateKey.export({ format: "jwk" }), kid, use: "sig", alg: "RS256" },
    pem: privateKey.export({ type: "pkcs1", format: "pem" }),
  };
}

const signing = rsaKey();
const stranger = rsaKey();

const server = http.createServer();
server.listen(port, "127.0.0.1", () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [
      ...clients.map((c) => ({
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_basic",
        ...c,
      })),
      ...machineClients.map((c) => ({
        grant_types: ["client_credentials"],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: "client_secret_basic",
        ...c,
      })),
      ...deviceClients.map((c) => ({
        grant_types: ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: "none",
        ...c,
      })),
    ],
    ttl: { ClientCredentials: clientCredentialsTtl, DeviceCode: deviceCodeTtl },
    jwks: { keys: [signing.jwk] },
    scopes: ["openid", "profile", "groups"],
    claims: { openid: ["sub"], profile: ["name", "preferred_username"], groups: ["groups"] },
    // The groups go into the ID token itself, where Runboard reads them.
    conformIdTokenClaims: false,
    findAccount: async (_ctx, id) =>
      users[id] && {
        accountId: id,
        claims: async () => ({
          sub: id,
          name: users[id].name,
          preferred_username: id,
          groups: users[id].groups,
        }),
      },
    // A first-party client: no consent screen after sign-in.
    loadExistingGrant: async (ctx) => {
      const grantId =
        ctx.oidc.result?.consent?.grantId ||
        ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope("openid profile groups");
      grant.addOIDCClaims(["name", "preferred_username", "groups"]);
      grant.addResourceScope(audience, "api");
      await grant.save();
      return grant;
    },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      deviceFlow: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        // Any audience asked for, as a `resource`: Runboard's API, or a service's.
        getResourceServerInfo: (_ctx, resource) => ({
          scope: "api",
          audience: resource,
          accessTokenFormat: "jwt",
          jwt: { sign: { alg: "RS256" } },
        }),
      },
    },
    extraTokenClaims: async (_ctx, token) =>
      token.accountId && users[token.accountId]
        ? { groups: users[token.accountId].groups, name: users[token.accountId].name }
        : undefined,
    pkce: { required: () => true },
    // Without asking for offline_access, as many company providers do.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed("refresh_token"),
  });
  provider.on("server_error", (_ctx, err) => console.error("oidc-provider:", err));
  const callback = provider.callback();
  server.on("request", (req, res) => {
    const groups = req.method === "PUT" && req.url.match(/^\/test\/people\/([^/]+)\/groups$/);
    if (!groups) return callback(req, res);
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      const login = decodeURIComponent(groups[1]);
      if (!users[login]) {
        res.writeHead(404).end();
        return;
      }
      users[login].groups = JSON.parse(body);
      res.writeHead(204).end();
    });
  });
  console.log(
    JSON.stringify({
      issuer,
      kid: signing.kid,
      key_pem: signing.pem,
      stranger_kid: stranger.kid,
      stranger_pem: stranger.pem,
    }),
  );
});

for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
