//! The secrets bundle from AWS Secrets Manager: the [`Secrets`] port on AWS.
//!
//! The secret's `SecretString` is a JSON object:
//!
//! ```json
//! {
//!   "accessKey": "…", "accessKeyPrevious": "…",
//!   "kitKey": "…", "kitKeyPrevious": "…",
//!   "webhookSecret": "…",
//!   "usageKey": "…"
//! }
//! ```
//!
//! `accessKey` and `kitKey` are required; the `…Previous` keys (accepted during a rotation) and
//! `webhookSecret` and `usageKey` are optional (absent, `null` or empty). Errors name the field, never a value.

use async_trait::async_trait;
use aws_sdk_secretsmanager::{Client, error::DisplayErrorContext};
use koogallery::{
    config::{Keys, OpenApiKeys, SecretBundle, Secrets, SecretsError},
    security::{KeyRing, SecretKey},
};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

/// Parses the keys secret into the bundle: the basic and Kit key rings, the webhook secret and the
/// open API's `ak`/`sk` pair if present. Unknown fields are ignored, so a secret written for a later release still loads.
pub fn keys_from_secret_json(s: &str) -> Result<SecretBundle, SecretsError> {
    // Only the error's kind and position are reported: serde's messages may quote content.
    let value: Value = serde_json::from_str(s).map_err(|e| {
        SecretsError(format!(
            "the keys secret is not valid JSON ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(map) = value else {
        return Err(SecretsError(
            "the keys secret is not a JSON object".to_owned(),
        ));
    };
    let basic = KeyRing::new(
        required(&map, "accessKey")?,
        optional(&map, "accessKeyPrevious")?,
    );
    let kit = KeyRing::new(required(&map, "kitKey")?, optional(&map, "kitKeyPrevious")?);
    let webhook = optional(&map, "webhookSecret")?;
    let open_api = OpenApiKeys::pair(
        optional(&map, "ak")?.map(|k| k.expose().to_owned()),
        optional(&map, "sk")?.map(|k| k.expose().to_owned()),
        ("ak", "sk"),
    )
    .map_err(|why| SecretsError(format!("the keys secret: {why}")))?;
    Ok(SecretBundle {
        keys: Keys { basic, kit },
        webhook,
        usage: optional(&map, "usageKey")?,
        open_api,
        dev_keys: false,
    })
}

fn optional(map: &Map<String, Value>, field: &str) -> Result<Option<SecretKey>, SecretsError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(v)) if v.trim().is_empty() => Ok(None),
        Some(Value::String(v)) => Ok(Some(SecretKey::new(v.clone()))),
        Some(_) => Err(SecretsError(format!(
            "field {field} of the keys secret is not a string"
        ))),
    }
}

fn required(map: &Map<String, Value>, field: &str) -> Result<SecretKey, SecretsError> {
    optional(map, field)?
        .ok_or_else(|| SecretsError(format!("the keys secret has no {field} (missing or empty)")))
}

/// The [`Secrets`] port on Secrets Manager: the secret is fetched on first use and cached for the
/// life of the execution environment (a failed fetch is not cached; the next call tries again).
#[derive(Debug)]
pub struct SecretsManagerSecrets {
    client: Client,
    secret_id: String,
    cache: OnceCell<SecretBundle>,
}

impl SecretsManagerSecrets {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
            cache: OnceCell::new(),
        }
    }

    async fn load(&self) -> Result<&SecretBundle, SecretsError> {
        self.cache
            .get_or_try_init(|| async {
                let out = self
                    .client
                    .get_secret_value()
                    .secret_id(&self.secret_id)
                    .send()
                    .await
                    .map_err(|e| {
                        SecretsError(format!(
                            "cannot read secret {}: {}",
                            self.secret_id,
                            DisplayErrorContext(e)
                        ))
                    })?;
                let raw = out.secret_string().ok_or_else(|| {
                    SecretsError(format!(
                        "secret {} has no SecretString (binary secrets are not supported)",
                        self.secret_id
                    ))
                })?;
                keys_from_secret_json(raw)
                    .map_err(|e| SecretsError(format!("secret {}: {}", self.secret_id, e.0)))
            })
            .await
    }
}

#[async_trait]
impl Secrets for SecretsManagerSecrets {
    async fn bundle(&self) -> Result<SecretBundle, SecretsError> {
        Ok(self.load().await?.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_secret() {
        let SecretBundle { keys, webhook, .. } = keys_from_secret_json(
            r#"{"accessKey":"ak","accessKeyPrevious":"ak0","kitKey":"kk","kitKeyPrevious":"kk0","webhookSecret":"wh"}"#,
        )
        .unwrap();
        assert_eq!(keys.basic.current.expose(), "ak");
        assert_eq!(
            keys.basic.previous.as_ref().map(SecretKey::expose),
            Some("ak0")
        );
        assert_eq!(keys.kit.current.expose(), "kk");
        assert_eq!(
            keys.kit.previous.as_ref().map(SecretKey::expose),
            Some("kk0")
        );
        assert_eq!(webhook.as_ref().map(SecretKey::expose), Some("wh"));
    }

    #[test]
    fn optional_fields_may_be_absent_null_or_empty() {
        let SecretBundle { keys, webhook, .. } = keys_from_secret_json(
            r#"{"accessKey":"ak","kitKey":"kk","accessKeyPrevious":null,"kitKeyPrevious":"  ","other":1}"#,
        )
        .unwrap();
        assert!(keys.basic.previous.is_none());
        assert!(keys.kit.previous.is_none());
        assert!(webhook.is_none());
    }

    #[test]
    fn errors_name_the_field_and_never_a_value() {
        let err = |s: &str| keys_from_secret_json(s).unwrap_err().0;
        let e = err(r#"{"kitKey":"kk-secret-value"}"#);
        assert!(e.contains("accessKey"), "{e}");
        assert!(!e.contains("kk-secret-value"), "{e}");
        let e = err(r#"{"accessKey":"ak-secret-value","kitKey":""}"#);
        assert!(e.contains("kitKey"), "{e}");
        assert!(!e.contains("ak-secret-value"), "{e}");
        let e = err(r#"{"accessKey":"ak","kitKey":"kk","webhookSecret":12345}"#);
        assert!(e.contains("webhookSecret") && !e.contains("12345"), "{e}");
        let e = err(r#"{"accessKey": 98765, "kitKey":"kk"}"#);
        assert!(e.contains("accessKey") && !e.contains("98765"), "{e}");
        let e = err(r#"{"accessKey":"ak-secret-value" "kitKey":"kk"}"#);
        assert!(
            e.contains("not valid JSON") && !e.contains("ak-secret-value"),
            "{e}"
        );
        let e = err(r#"["ak-secret-value"]"#);
        assert!(
            e.contains("not a JSON object") && !e.contains("ak-secret-value"),
            "{e}"
        );
    }

    #[test]
    fn parsed_keys_do_not_print_values() {
        let bundle = keys_from_secret_json(
            r#"{"accessKey":"ak-value","kitKey":"kk-value","webhookSecret":"wh-value"}"#,
        )
        .unwrap();
        let printed = format!("{bundle:?}");
        assert!(!printed.contains("-value"), "{printed}");
    }
}
