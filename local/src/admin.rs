//! The local host's admin API, on the embedded backend only: `POST /admin/backup` answers a
//! backup archive (`backup_archive`) of the running host's data directory. redb locks the store
//! file, so a backup is taken by the process that serves it, from one read transaction.
//!
//! Every call carries `Authorization: Bearer <token>`: `KOOGALLERY_ADMIN_TOKEN`, or else
//! `admin-token` in the data directory, generated on first start (32 random bytes, base64url),
//! owner-only. The token is compared in constant time and never logged.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::Engine;
use koogallery::config::{ConfigError, Env, catalog};
use koogallery_embedded::EmbeddedStore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{
    LocalSettings, StartError,
    backup_archive::{KEY_FILES, STORE_FILE, write_archive},
    json_answer,
};

/// The token file in the data directory, when `KOOGALLERY_ADMIN_TOKEN` is unset.
pub const TOKEN_FILE: &str = "admin-token";

/// The shortest token accepted from `KOOGALLERY_ADMIN_TOKEN`.
const MIN_TOKEN_CHARS: usize = 16;

/// The admin bearer token; its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct AdminToken(Arc<str>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

impl AdminToken {
    /// The token as sent in `Authorization: Bearer`.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in constant time (the SHA-256 digests are compared, so
    /// not even the length leaks).
    pub(crate) fn matches(&self, presented: &str) -> bool {
        let (a, b) = (
            Sha256::digest(self.0.as_bytes()),
            Sha256::digest(presented.as_bytes()),
        );
        a.ct_eq(&b).into()
    }

    /// `KOOGALLERY_ADMIN_TOKEN`, else the data directory's `admin-token` (generated now if
    /// there is none yet).
    pub fn for_host(env: &Env<'_>, data_dir: &Path) -> Result<Self, ConfigError> {
        let setting = &catalog::ADMIN_TOKEN;
        if let Some(token) = env.get(setting) {
            let token = token.trim();
            if token.chars().count() < MIN_TOKEN_CHARS {
                return Err(ConfigError::invalid(
                    setting.name,
                    format!("too short: at least {MIN_TOKEN_CHARS} characters"),
                ));
            }
            return Ok(Self(token.into()));
        }
        Self::load_or_generate(&data_dir.join(TOKEN_FILE))
            .map_err(|e| ConfigError::invalid(setting.name, e))
    }

    /// The token in `path`, generated there (owner-only, written atomically, never replaced) on
    /// first use.
    pub fn load_or_generate(path: &Path) -> Result<Self, String> {
        match Self::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            done => return done.map_err(|e| format!("cannot read {}: {e}", path.display())),
        }
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        match koogallery::security::at_rest::write_new_file_atomically(path, token.as_bytes()) {
            Ok(()) => Ok(Self(token.into())),
            // Another process wrote one first: theirs is the token.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
            }
            Err(e) => Err(format!("cannot write {}: {e}", path.display())),
        }
    }

    /// A token given as text (the `koogallery-admin` side); `None` when blank.
    pub fn read_str(text: &str) -> Option<Self> {
        let token = text.trim();
        (!token.is_empty()).then(|| Self(token.into()))
    }

    /// The token in the file at `path` (the `koogallery-admin` side).
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let token = text.trim();
        if token.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the token file is empty",
            ));
        }
        Ok(Self(token.into()))
    }
}

/// Checks `Authorization: Bearer <token>` against `token`: the refusal, if any (none or not a
/// bearer: 401, another token: 403).
pub(crate) fn bearer_refusal(token: &AdminToken, headers: &HeaderMap) -> Option<Response> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        None => {
            let mut answer = json_answer(
                401,
                serde_json::json!({"error": "the admin API needs Authorization: Bearer <admin token>"}),
            );
            answer.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            Some(answer)
        }
        Some(presented) if token.matches(presented) => None,
        Some(_) => {
            tracing::warn!("admin API call refused: wrong token");
            Some(json_answer(
                403,
                serde_json::json!({"error": "the admin token is not this host's"}),
            ))
        }
    }
}

/// What the admin routes need: the open store, the data directory its key files are in, and the
/// token.
#[derive(Clone)]
pub struct AdminRoutes {
    store: Arc<EmbeddedStore>,
    data_dir: PathBuf,
    token: AdminToken,
    /// The operator console and its API (`console`), when the host offers them.
    operator: Option<Arc<koogallery::operator::Operator>>,
    https: bool,
}

impl std::fmt::Debug for AdminRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminRoutes")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl AdminRoutes {
    /// The routes of the host on `store` whose data directory `settings` names; reads (or
    /// generates) the token.
    pub fn new(store: Arc<EmbeddedStore>, settings: &LocalSettings) -> Result<Self, StartError> {
        let data_dir = crate::keys::data_dir(settings)?.to_owned();
        let token = AdminToken::for_host(&Env::process(), &data_dir)?;
        Ok(Self {
            store,
            data_dir,
            token,
            operator: None,
            https: settings.tls.is_some(),
        })
    }

    /// Serves the operator console and its API (`/admin/api/…`, `/admin/…`) over `operator`.
    pub fn with_operator(mut self, operator: Arc<koogallery::operator::Operator>) -> Self {
        self.operator = Some(operator);
        self
    }

    /// Checks `Authorization: Bearer <token>` ([`bearer_refusal`]).
    fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        bearer_refusal(&self.token, headers)
    }

    /// The archive, in a temporary file of the data directory (owner-only, removed when
    /// dropped): the store copied into another temporary file (removed once archived), then
    /// archived with the key files present.
    fn archive(
        &self,
    ) -> Result<(tempfile::NamedTempFile, crate::backup_archive::Manifest), BackupFailure> {
        let temporary = |suffix: &str| {
            tempfile::Builder::new()
                .prefix(".backup-")
                .suffix(suffix)
                .tempfile_in(&self.data_dir)
                .map_err(|e| BackupFailure::Io(format!("cannot create a temporary file: {e}")))
        };
        let copy = temporary(".redb")?;
        let summary = self
            .store
            .backup_to(copy.path())
            .map_err(BackupFailure::Store)?;
        let mut files = vec![(STORE_FILE.to_owned(), copy.path().to_owned())];
        for name in KEY_FILES {
            let path = self.data_dir.join(name);
            if path.is_file() {
                files.push(((*name).to_owned(), path));
            }
        }
        let archive = temporary(".tar")?;
        let manifest = write_archive(
            std::io::BufWriter::new(archive.as_file()),
            &files,
            summary.tables,
            chrono::Utc::now(),
            env!("CARGO_PKG_VERSION"),
        )
        .map_err(|e| BackupFailure::Io(e.to_string()))?;
        Ok((archive, manifest))
    }
}

/// The archive's bytes, read off the runtime in chunks; the temporary file goes when the last
/// chunk is sent or the client goes away.
fn stream(archive: tempfile::NamedTempFile) -> Result<Body, std::io::Error> {
    use std::io::Read;
    let mut file = archive.reopen()?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let _archive = archive;
        loop {
            let mut buf = vec![0u8; 256 * 1024];
            let chunk = match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    Ok(bytes::Bytes::from(buf))
                }
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            if tx.blocking_send(chunk).is_err() || failed {
                return;
            }
        }
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    Ok(Body::from_stream(chunks))
}

#[derive(Debug, thiserror::Error)]
enum BackupFailure {
    #[error("the store could not be copied: {0}")]
    Store(koogallery::StoreError),
    #[error("{0}")]
    Io(String),
}

/// The admin routes, or none (another backend: the route is absent).
pub fn admin_router(routes: Option<AdminRoutes>) -> Router {
    match routes {
        Some(routes) => {
            let console = routes
                .operator
                .clone()
                .map(|operator| crate::console::Console {
                    operator,
                    token: routes.token.clone(),
                    https: routes.https,
                });
            let backup = Router::new()
                .route("/admin/backup", post(backup))
                .with_state(routes);
            match console {
                Some(console) => backup.merge(crate::console::routes(console)),
                None => backup,
            }
        }
        None => Router::new(),
    }
}

/// `POST /admin/backup`: the archive, `application/x-tar`.
async fn backup(State(routes): State<AdminRoutes>, headers: HeaderMap) -> Response {
    if let Some(refused) = routes.refusal(&headers) {
        return refused;
    }
    let started = std::time::Instant::now();
    let work = routes.clone();
    match tokio::task::spawn_blocking(move || work.archive()).await {
        Ok(Ok((archive, manifest))) => {
            let size = archive.as_file().metadata().map(|m| m.len()).unwrap_or(0);
            let body = match stream(archive) {
                Ok(body) => body,
                Err(e) => {
                    tracing::error!(error = %e, "backup failed");
                    return json_answer(
                        500,
                        serde_json::json!({"error": format!("backup failed: {e}")}),
                    );
                }
            };
            tracing::info!(
                bytes = size,
                files = manifest.files.len(),
                rows = manifest.tables.values().sum::<u64>(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "backup taken"
            );
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/x-tar".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"koogallery-backup-{stamp}.tar\""),
                    ),
                    (header::CACHE_CONTROL, "no-store".to_owned()),
                    (header::CONTENT_LENGTH, size.to_string()),
                ],
                body,
            )
                .into_response()
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "backup failed");
            json_answer(
                500,
                serde_json::json!({"error": format!("backup failed: {e}")}),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "backup task failed");
            json_answer(500, serde_json::json!({"error": "backup failed"}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env<'static> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Env::from_fn(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn the_token_file_is_generated_once_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let first = AdminToken::for_host(&env(&[]), dir.path()).unwrap();
        let again = AdminToken::for_host(&env(&[]), dir.path()).unwrap();
        assert_eq!(first.expose(), again.expose());
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(first.expose())
            .unwrap();
        assert_eq!(bytes.len(), 32);
        assert!(!format!("{first:?}").contains(first.expose()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn the_setting_wins_over_the_file_and_a_short_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let set = "an-operator-chosen-token";
        let token =
            AdminToken::for_host(&env(&[("KOOGALLERY_ADMIN_TOKEN", set)]), dir.path()).unwrap();
        assert_eq!(token.expose(), set);
        assert!(!dir.path().join(TOKEN_FILE).exists());
        let e = AdminToken::for_host(&env(&[("KOOGALLERY_ADMIN_TOKEN", "short")]), dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("KOOGALLERY_ADMIN_TOKEN") && !e.contains("short\""),
            "{e}"
        );
    }

    #[test]
    fn only_the_same_token_matches() {
        let token = AdminToken("the-token-of-this-host".into());
        assert!(token.matches("the-token-of-this-host"));
        assert!(!token.matches("the-token-of-this-hos"));
        assert!(!token.matches("the-token-of-this-host!"));
        assert!(!token.matches(""));
    }
}
