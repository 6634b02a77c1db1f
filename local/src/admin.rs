//! The local host's admin API, on the embedded backend only: `POST /admin/backup` answers a
//! backup archive (`backup_archive`) of the running host's data directory. redb locks the store
//! file, so a backup is taken by the process that serves it, from one read transaction.
//!
//! Every call carries `Authorization: Bearer <token>`: the host's [`AdminToken`] (the `admin`
//! crate's, with the operator console this module mounts).

use std::{path::PathBuf, sync::Arc};

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use koogallery::config::Env;
use koogallery_embedded::EmbeddedStore;

pub use ::admin::{AdminToken, TOKEN_FILE};
use ::admin::{Auth, Console, bearer_refusal};

use crate::{
    LocalSettings, StartError,
    backup_archive::{KEY_FILES, STORE_FILE, write_archive},
    json_answer,
};

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
            let console = routes.operator.clone().map(|operator| Console {
                operator,
                auth: Auth::Token {
                    token: routes.token.clone(),
                    https: routes.https,
                },
            });
            let backup = Router::new()
                .route("/admin/backup", post(backup))
                .with_state(routes);
            match console {
                Some(console) => backup.merge(::admin::routes(console)),
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
