//! The vendor's applications registered as OIDC clients (docs/protocol/decisions.md §19): the
//! clients file (`{"schema": 1, "clients": [...]}`, secrets only as their SHA-256), read at
//! start from a path or inline JSON and put into the store, and [`add_client`], which registers
//! one with a fresh ID and secret.

use std::path::Path;

use chrono::Utc;
use koogallery::sso::{OidcClient, Opaque, client::check_client_uri};
use serde::{Deserialize, Serialize};

/// The clients file's name in the data directory.
pub const CLIENTS_FILE: &str = "oidc-clients.json";

/// The clients file: `{"schema": 1, "clients": [OidcClient…]}`; secrets only as their SHA-256.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ClientsFile {
    pub schema: u32,
    pub clients: Vec<OidcClient>,
}

pub fn read_clients(path: &Path) -> Result<ClientsFile, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let file: ClientsFile = serde_json::from_str(&text)
                .map_err(|e| format!("{}: not a clients file: {e}", path.display()))?;
            if file.schema != 1 {
                return Err(format!(
                    "{}: schema {} (this release reads 1)",
                    path.display(),
                    file.schema
                ));
            }
            Ok(file)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClientsFile {
            schema: 1,
            clients: vec![],
        }),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The clients a setting names: inline JSON (it starts with `{`), or a file's path (a missing file
/// is no clients).
///
/// # Errors
/// What does not read or parse, in words.
pub fn clients_from(value: &str) -> Result<Vec<OidcClient>, String> {
    let clients = parse_clients(value)?;
    for c in &clients {
        let id = &c.client_id;
        if id.trim().is_empty() || c.secret_hash.len() != 64 || c.redirect_uris.is_empty() {
            return Err(format!(
                "client {id:?}: needs an ID, a secretHash and a redirect URI"
            ));
        }
        for u in c.redirect_uris.iter().chain(&c.post_logout_redirect_uris) {
            check_client_uri("redirect URI", u).map_err(|e| format!("client {id}: {e}"))?;
        }
        for u in c.backchannel_logout_uri.iter().chain(&c.initiate_login_uri) {
            check_client_uri("URI", u).map_err(|e| format!("client {id}: {e}"))?;
        }
    }
    Ok(clients)
}

fn parse_clients(value: &str) -> Result<Vec<OidcClient>, String> {
    if value.trim_start().starts_with('{') {
        let file: ClientsFile =
            serde_json::from_str(value).map_err(|e| format!("inline clients: {e}"))?;
        if file.schema != 1 {
            return Err(format!(
                "inline clients: schema {} (this release reads 1)",
                file.schema
            ));
        }
        return Ok(file.clients);
    }
    read_clients(Path::new(value.trim())).map(|f| f.clients)
}

/// What `oidc-client add` registered: the secret is shown here once and stored nowhere.
#[derive(Debug, Serialize)]
pub struct NewClient {
    pub client_id: String,
    pub client_secret: String,
    pub clients_file: String,
}

/// The options of `oidc-client add`.
#[derive(Debug, Default)]
pub struct ClientOptions {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub initiate_login_uri: Option<String>,
}

impl ClientOptions {
    /// `--name N --redirect-uri U… [--post-logout-redirect-uri U…] [--backchannel-logout-uri U]
    /// [--initiate-login-uri U]`.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = Self::default();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it
                .next()
                .ok_or_else(|| format!("{flag} needs a value"))?
                .clone();
            match flag.as_str() {
                "--name" => o.name = value,
                "--redirect-uri" => o.redirect_uris.push(value),
                "--post-logout-redirect-uri" => o.post_logout_redirect_uris.push(value),
                "--backchannel-logout-uri" => o.backchannel_logout_uri = Some(value),
                "--initiate-login-uri" => o.initiate_login_uri = Some(value),
                other => return Err(format!("unknown option {other}")),
            }
        }
        if o.name.trim().is_empty() || o.redirect_uris.is_empty() {
            return Err("--name and at least one --redirect-uri are required".into());
        }
        for u in &o.redirect_uris {
            check_client_uri("--redirect-uri", u).map_err(|e| e.to_string())?;
        }
        for u in &o.post_logout_redirect_uris {
            check_client_uri("--post-logout-redirect-uri", u).map_err(|e| e.to_string())?;
        }
        for u in o.backchannel_logout_uri.iter().chain(&o.initiate_login_uri) {
            check_client_uri("URI", u).map_err(|e| e.to_string())?;
        }
        Ok(o)
    }
}

/// Adds a client to the clients file (created owner-only if absent, replaced whole): a random ID
/// and secret, the secret stored as its SHA-256. The running host reads the file at start.
///
/// # Errors
/// The file cannot be read or written.
pub fn add_client(path: &Path, options: ClientOptions) -> Result<NewClient, String> {
    let mut file = read_clients(path)?;
    let client_id = format!("kg-{}", &Opaque::random().expose()[..22]);
    let secret = Opaque::random();
    file.schema = 1;
    file.clients.push(OidcClient {
        client_id: client_id.clone(),
        secret_hash: secret.key(),
        name: options.name,
        redirect_uris: options.redirect_uris,
        post_logout_redirect_uris: options.post_logout_redirect_uris,
        backchannel_logout_uri: options.backchannel_logout_uri,
        initiate_login_uri: options.initiate_login_uri,
        created_at: Utc::now(),
    });
    let text = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(tmp.path(), text + "\n")
        .map_err(|e| format!("{}: {e}", tmp.path().display()))?;
    tmp.persist(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(NewClient {
        client_id,
        client_secret: secret.expose().to_owned(),
        clients_file: path.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_added_with_its_secret_hashed_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(CLIENTS_FILE);
        let args: Vec<String> = [
            "--name",
            "App",
            "--redirect-uri",
            "http://127.0.0.1:3000/cb",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let a = add_client(&path, ClientOptions::parse(&args).unwrap()).unwrap();
        let b = add_client(&path, ClientOptions::parse(&args).unwrap()).unwrap();
        assert_ne!(a.client_id, b.client_id);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(&a.client_secret),
            "the secret is never written"
        );
        let file = read_clients(&path).unwrap();
        assert_eq!(file.clients.len(), 2);
        assert!(file.clients[0].secret_matches(&a.client_secret));
        assert!(ClientOptions::parse(&["--name".into(), "x".into()]).is_err());
        assert!(
            ClientOptions::parse(&[
                "--name".into(),
                "x".into(),
                "--redirect-uri".into(),
                "http://example.com/cb".into()
            ])
            .is_err()
        );
    }
}
