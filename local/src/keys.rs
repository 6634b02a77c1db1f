//! The key files of the data directory: the credentials key that seals stored passwords and the
//! Kit RSA key, each from its setting or generated on first start, owner-only.

use std::sync::Arc;

use crate::{LocalSettings, StartError};
use koogallery::config::{Config, ConfigError, Env, catalog};
use koogallery::security::at_rest::{CredentialSealer, LocalKeySealer};

/// The key that seals stored passwords: `KOOGALLERY_CREDENTIALS_KEY` (base64 of 32 bytes), or
/// else `credentials.key` in the data directory, generated on first start, owner-only (0600).
/// Back it up with the store file: without it the stored passwords cannot be read.
pub fn local_sealer(settings: &LocalSettings) -> Result<Arc<dyn CredentialSealer>, StartError> {
    let setting = &catalog::CREDENTIALS_KEY;
    let invalid = |e: koogallery::security::at_rest::SealError| {
        StartError::Config(ConfigError::invalid(setting.name, e.to_string()))
    };
    let sealer = match Env::process().get(setting) {
        Some(key) => LocalKeySealer::from_base64(&key).map_err(invalid)?,
        None => LocalKeySealer::from_key_file(&data_dir(settings)?.join("credentials.key"))
            .map_err(invalid)?,
    };
    Ok(Arc::new(sealer))
}

/// The data directory, created if it is not there yet (the key files generated on first start
/// live in it).
pub(crate) fn data_dir(settings: &LocalSettings) -> Result<&std::path::Path, StartError> {
    std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
        StartError::Config(ConfigError::invalid(
            "KOOGALLERY_DATA_DIR",
            format!("cannot create {}: {e}", settings.data_dir.display()),
        ))
    })?;
    Ok(&settings.data_dir)
}

/// The Kit RSA key (docs/protocol/decisions.md §14): `KOOGALLERY_KIT_RSA_KEY` (PEM), or else
/// `kit-rsa-key.pem` in the data directory, generated on first start, owner-only. Back it up with
/// the store file: its public half is what the seller uploaded to KooGallery.
pub fn local_kit_key(
    config: &Config,
    settings: &LocalSettings,
) -> Result<Arc<koogallery::security::kit_client_secret::ClientSecretKey>, StartError> {
    use koogallery::security::kit_client_secret::load_or_generate;
    const KEY_ENV: &str = koogallery::config::catalog::KIT_RSA_KEY.name;
    if let Some(key) = &config.secrets.kit_rsa {
        return Ok(key.clone());
    }
    load_or_generate(data_dir(settings)?)
        .map(Arc::new)
        .map_err(|e| StartError::Config(ConfigError::invalid(KEY_ENV, e.to_string())))
}

/// `koogallery-local kit-public-key`: the Kit RSA public key (SubjectPublicKeyInfo PEM) of the
/// key the host uses: `KOOGALLERY_KIT_RSA_KEY`, or the data directory's key file (generated now if
/// there is none yet, exactly as the host would on start).
pub fn print_kit_public_key(program: &str) -> std::process::ExitCode {
    let key = Config::from_env()
        .map_err(|e| e.to_string())
        .and_then(|config| {
            let settings = LocalSettings::from_env().map_err(|e| e.to_string())?;
            local_kit_key(&config, &settings).map_err(|e| e.to_string())
        });
    match key {
        Ok(key) => {
            print!("{}", key.public_key_pem());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{program}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
