//! A real OpenID provider for the tests: the npm package `oidc-provider`, run with Node on
//! loopback by `end2end/oidc/provider.mjs` and configured by the test that starts it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde::Deserialize;

/// The provider process (stopped on drop) and the keys a test needs to forge tokens.
pub struct OidcProvider {
    child: Child,
    /// Its issuer URL, `http://127.0.0.1:<port>`.
    pub issuer: String,
    /// The id and PEM of the key it signs with, which its JWKS publishes.
    pub kid: String,
    pub key_pem: String,
    /// A key it does not publish: tokens signed with it must be refused.
    pub stranger_kid: String,
    pub stranger_pem: String,
}

#[derive(Deserialize)]
struct Started {
    issuer: String,
    kid: String,
    key_pem: String,
    stranger_kid: String,
    stranger_pem: String,
}

/// One person the provider knows: their login, display name and groups.
pub struct ProviderPerson<'a> {
    pub login: &'a str,
    pub name: &'a str,
    pub groups: &'a [&'a str],
}

/// A client that gets tokens for itself with the client-credentials grant, living
/// `token_lifetime` seconds, for any audience it names as `resource`.
pub struct MachineClient<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub token_lifetime_secs: u32,
}

/// A public client that signs people in with the device authorization grant (RFC 8628),
/// as a command line does, and refreshes their tokens; its device codes live
/// `code_lifetime_secs` seconds.
pub struct DeviceClient<'a> {
    pub client_id: &'a str,
    pub code_lifetime_secs: u32,
}

impl OidcProvider {
    /// Starts the provider on `port` (0: any free port) with one confidential client
    /// (`client_id`, `client_secret`) that may return to `redirect_uri`, these people, and
    /// a machine client if given.
    pub fn start(
        port: u16,
        client_id: &str,
        client_secret: &str,
        redirect_uri: &str,
        people: &[ProviderPerson<'_>],
        machine: Option<&MachineClient<'_>>,
    ) -> Self {
        let clients = serde_json::json!([{
            "client_id": client_id,
            "client_secret": client_secret,
            "redirect_uris": [redirect_uri],
        }]);
        Self::launch(port, clients, people, machine, None)
    }

    /// Starts the provider on any free port with these people and one device client only.
    pub fn start_for_devices(people: &[ProviderPerson<'_>], device: &DeviceClient<'_>) -> Self {
        Self::launch(0, serde_json::json!([]), people, None, Some(device))
    }

    fn launch(
        port: u16,
        clients: serde_json::Value,
        people: &[ProviderPerson<'_>],
        machine: Option<&MachineClient<'_>>,
        device: Option<&DeviceClient<'_>>,
    ) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../end2end/oidc/provider.mjs");
        let users: serde_json::Map<String, serde_json::Value> = people
            .iter()
            .map(|p| {
                (
                    p.login.to_owned(),
                    serde_json::json!({ "name": p.name, "groups": p.groups }),
                )
            })
            .collect();
        let machine_clients: Vec<serde_json::Value> = machine
            .iter()
            .map(|m| serde_json::json!({ "client_id": m.client_id, "client_secret": m.client_secret }))
            .collect();
        let lifetime = machine.map_or(600, |m| m.token_lifetime_secs);
        let device_clients: Vec<serde_json::Value> = device
            .iter()
            .map(|d| serde_json::json!({ "client_id": d.client_id }))
            .collect();
        let code_lifetime = device.map_or(600, |d| d.code_lifetime_secs);
        let mut child = Command::new("node")
            .arg(script)
            .env(
                "MACHINE_CLIENTS",
                serde_json::Value::Array(machine_clients).to_string(),
            )
            .env("CLIENT_CREDENTIALS_TTL", lifetime.to_string())
            .env(
                "DEVICE_CLIENTS",
                serde_json::Value::Array(device_clients).to_string(),
            )
            .env("DEVICE_CODE_TTL", code_lifetime.to_string())
            .env("PORT", port.to_string())
            .env("CLIENTS", clients.to_string())
            .env("USERS", serde_json::Value::Object(users).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs end2end/oidc/provider.mjs (scripts/test installs its npm packages)");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("the provider prints its issuer");
        // It logs to stdout later too: keep reading, or its next line kills it (EPIPE).
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let started: Started = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "the OpenID provider did not start (is `npm ci` done in end2end/?): {e}: {line:?}"
            )
        });
        Self {
            child,
            issuer: started.issuer,
            kid: started.kid,
            key_pem: started.key_pem,
            stranger_kid: started.stranger_kid,
            stranger_pem: started.stranger_pem,
        }
    }

    /// Gives `login` these groups from now on, as the provider's administrator would.
    pub async fn set_groups(&self, login: &str, groups: &[&str]) {
        let response = reqwest::Client::new()
            .put(format!("{}/test/people/{login}/groups", self.issuer))
            .json(&groups)
            .send()
            .await
            .expect("the provider answers");
        assert_eq!(
            response.status().as_u16(),
            204,
            "the provider knows {login}"
        );
    }

    /// The port it listens on, to start its successor there (a key rotation).
    pub fn port(&self) -> u16 {
        self.issuer
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the issuer ends in its port")
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
