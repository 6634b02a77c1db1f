//! The [`Secrets`] port on AWS Secrets Manager. The keys are kept in four secrets, one per
//! [`SecretPart`], so that each function's role can read exactly the parts it uses; a function is
//! given the secret of each of its parts in that part's variable. Each secret's `SecretString` is a
//! JSON object:
//!
//! | part | variable | JSON |
//! |------|----------|------|
//! | callback keys | `KOOGALLERY_CALLBACK_KEYS_SECRET_ID` | `{"accessKey", "accessKeyPrevious"?, "kitKey", "kitKeyPrevious"?, "v1Key"?, "v1KeyPrevious"?}` |
//! | open API | `KOOGALLERY_OPENAPI_SECRET_ID` | `{"ak", "sk"}` (both or neither) |
//! | webhook | `KOOGALLERY_WEBHOOK_SECRET_ID` | `{"webhookSecret"}` |
//! | usage key | `KOOGALLERY_USAGE_KEY_SECRET_ID` | `{"usageKey"}` |
//!
//! `accessKey` and `kitKey` are required; the other fields are optional (absent, `null` or empty).
//! Unknown fields are ignored, so a secret written for a later release still loads; a field of
//! another part (left in the callback keys secret from the single keys secret of earlier releases)
//! is ignored too, and named in a start-up warning: it is readable by every function of this part.
//! Errors name the secret and the field, never a value.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use koogallery::{
    config::{ConfigError, Env, HeldSecrets, Keys, OpenApiKeys, SecretPart, Secrets, SecretsError},
    failure::Detail,
    security::{KeyRing, SecretKey},
};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

/// One part parsed from its secret.
#[derive(Debug)]
pub struct ParsedPart {
    /// The part's secrets (the other parts `None`).
    pub held: HeldSecrets,
    /// Fields of other parts found in this secret (ignored; they should be moved out).
    pub misplaced: Vec<String>,
}

/// Parses the secret of `part`. Errors name the field (and the part), never a value.
pub fn part_from_secret_json(part: SecretPart, s: &str) -> Result<ParsedPart, SecretsError> {
    let what = part.describe();
    // Only the error's kind and position are reported: serde's messages may quote content.
    let value: Value = serde_json::from_str(s).map_err(|e| {
        SecretsError::Invalid(Detail::new(format!(
            "{what} is not valid JSON ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        )))
    })?;
    let Value::Object(map) = value else {
        return Err(SecretsError::Invalid(
            format!("{what} is not a JSON object").into(),
        ));
    };
    let mut held = HeldSecrets::default();
    match part {
        SecretPart::CallbackKeys => {
            let basic = KeyRing::new(
                required(&map, part, "accessKey")?,
                optional(&map, part, "accessKeyPrevious")?,
            );
            let kit = KeyRing::new(
                required(&map, part, "kitKey")?,
                optional(&map, part, "kitKeyPrevious")?,
            );
            // The V1 key is optional: V1 calls use the basic key without it
            // (docs/protocol/decisions.md §20).
            let v1 = optional(&map, part, "v1Key")?
                .map(|k| {
                    Ok::<_, SecretsError>(KeyRing::new(k, optional(&map, part, "v1KeyPrevious")?))
                })
                .transpose()?;
            held.keys = Some(Keys { basic, kit, v1 });
        }
        SecretPart::OpenApi => {
            held.open_api = OpenApiKeys::pair(
                optional(&map, part, "ak")?.map(|k| k.expose().to_owned()),
                optional(&map, part, "sk")?.map(|k| k.expose().to_owned()),
                ("ak", "sk"),
            )
            .map_err(|why| SecretsError::Invalid(format!("{what}: {why}").into()))?;
        }
        SecretPart::Webhook => held.webhook = optional(&map, part, "webhookSecret")?,
        SecretPart::Usage => held.usage = optional(&map, part, "usageKey")?,
        SecretPart::License => {
            held.license = Some(koogallery::config::LicenseKeys {
                client: optional(&map, part, "licenseClientKey")?,
                signing: required(&map, part, "licenseSigningKey")?,
                signing_previous: optional(&map, part, "licenseSigningKeyPrevious")?,
            });
        }
        SecretPart::KitRsa => {
            let pem = required(&map, part, "kitRsaPrivateKey")?;
            // The key's own error names the problem (too small, not PEM), never its bytes.
            let key =
                koogallery::security::kit_client_secret::ClientSecretKey::from_pem(pem.expose())
                    .map_err(|e| {
                        SecretsError::Invalid(Detail::caused_by(
                            format!("{what}: kitRsaPrivateKey"),
                            e,
                        ))
                    })?;
            held.kit_rsa = Some(std::sync::Arc::new(key));
        }
    }
    let misplaced = map
        .keys()
        .filter(|field| SecretPart::of_field(field).is_some_and(|p| p != part))
        .cloned()
        .collect();
    Ok(ParsedPart { held, misplaced })
}

fn optional(
    map: &Map<String, Value>,
    part: SecretPart,
    field: &str,
) -> Result<Option<SecretKey>, SecretsError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(v)) if v.trim().is_empty() => Ok(None),
        Some(Value::String(v)) => Ok(Some(SecretKey::new(v.clone()))),
        Some(_) => Err(SecretsError::Invalid(
            format!("field {field} of {} is not a string", part.describe()).into(),
        )),
    }
}

fn required(
    map: &Map<String, Value>,
    part: SecretPart,
    field: &str,
) -> Result<SecretKey, SecretsError> {
    optional(map, part, field)?.ok_or_else(|| {
        SecretsError::Invalid(
            format!("{} has no {field} (missing or empty)", part.describe()).into(),
        )
    })
}

/// The [`Secrets`] port on Secrets Manager: the secret of each configured part, fetched on first
/// use and cached for the life of the execution environment (a failed fetch is not cached; the
/// next call tries again).
#[derive(Debug)]
pub struct SecretsManagerSecrets {
    client: Client,
    ids: BTreeMap<SecretPart, String>,
    cache: HashMap<SecretPart, OnceCell<HeldSecrets>>,
}

impl SecretsManagerSecrets {
    /// Each part read from the secret (ARN or name) given for it.
    pub fn new(client: Client, ids: impl IntoIterator<Item = (SecretPart, String)>) -> Self {
        let ids: BTreeMap<SecretPart, String> = ids.into_iter().collect();
        let cache = ids.keys().map(|p| (*p, OnceCell::new())).collect();
        Self { client, ids, cache }
    }

    /// The secret of each of `parts` from its variable ([`SecretPart::env_var`]); a variable not
    /// set stops start-up, named.
    pub fn from_env(
        client: Client,
        parts: &[SecretPart],
        env: &Env<'_>,
    ) -> Result<Self, ConfigError> {
        let ids = parts
            .iter()
            .map(|part| {
                env.get(part.setting()).map(|id| (*part, id)).ok_or_else(|| {
                    ConfigError::invalid(
                        part.env_var(),
                        format!(
                            "is not set: it names {} (the SAM template sets it; the single keys secret of earlier releases is split, see docs/deploy.md)",
                            part.describe()
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(client, ids))
    }

    async fn load(&self, part: SecretPart) -> Result<&HeldSecrets, SecretsError> {
        let (Some(id), Some(cell)) = (self.ids.get(&part), self.cache.get(&part)) else {
            return Err(SecretsError::Invalid(
                format!("{} is not configured ({})", part.describe(), part.env_var()).into(),
            ));
        };
        let named = |why: &str| format!("secret {id} ({}): {why}", part.env_var());
        cell.get_or_try_init(|| async {
            let out = self
                .client
                .get_secret_value()
                .secret_id(id)
                .send()
                .await
                .map_err(|e| {
                    SecretsError::Unavailable(Detail::caused_by(named("cannot be read"), e))
                })?;
            let raw = out.secret_string().ok_or_else(|| {
                SecretsError::Invalid(
                    named("has no SecretString (binary secrets are not supported)").into(),
                )
            })?;
            let parsed = part_from_secret_json(part, raw)
                .map_err(|e| SecretsError::Invalid(named(e.what()).into()))?;
            if !parsed.misplaced.is_empty() {
                tracing::warn!(
                    secret = %id,
                    fields = ?parsed.misplaced,
                    "{} holds fields of another secret; they are ignored here and readable by every function that reads this one: move them to their own secret (docs/deploy.md)",
                    part.describe()
                );
            }
            Ok(parsed.held)
        })
        .await
    }
}

#[async_trait]
impl Secrets for SecretsManagerSecrets {
    async fn read_parts(&self, parts: &[SecretPart]) -> Result<HeldSecrets, SecretsError> {
        // Each part is its own secret: fetched side by side, so a function that needs two waits
        // for one round trip at start-up, not two.
        let loaded =
            futures_util::future::try_join_all(parts.iter().map(|part| self.load(*part))).await?;
        Ok(loaded
            .into_iter()
            .fold(HeldSecrets::default(), |held, part| {
                held.merge(part.clone())
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(part: SecretPart, s: &str) -> HeldSecrets {
        part_from_secret_json(part, s).unwrap().held
    }

    #[test]
    fn each_part_reads_its_own_fields_only() {
        let all = r#"{"accessKey":"ak","accessKeyPrevious":"ak0","kitKey":"kk","kitKeyPrevious":"kk0","webhookSecret":"wh","ak":"AK","sk":"SK","usageKey":"uk"}"#;
        let held = parse(SecretPart::CallbackKeys, all);
        let keys = held.keys.as_ref().unwrap();
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
        assert!(held.open_api.is_none() && held.webhook.is_none() && held.usage.is_none());

        let held = parse(SecretPart::OpenApi, r#"{"ak":"AK","sk":"SK"}"#);
        let pair = held.open_api.as_ref().unwrap();
        assert_eq!((pair.ak.as_str(), pair.sk.expose()), ("AK", "SK"));
        assert!(held.keys.is_none() && held.webhook.is_none() && held.usage.is_none());

        let held = parse(SecretPart::Webhook, r#"{"webhookSecret":"wh"}"#);
        assert_eq!(held.webhook.as_ref().map(SecretKey::expose), Some("wh"));
        assert!(held.keys.is_none() && held.open_api.is_none() && held.usage.is_none());

        let held = parse(SecretPart::Usage, r#"{"usageKey":"uk"}"#);
        assert_eq!(held.usage.as_ref().map(SecretKey::expose), Some("uk"));
        assert!(held.keys.is_none() && held.open_api.is_none() && held.webhook.is_none());
    }

    /// A callback keys secret still holding the fields of the earlier single keys secret loads,
    /// ignores them, and names them (never their values) for the start-up warning.
    #[test]
    fn fields_of_other_parts_are_ignored_and_named() {
        let parsed = part_from_secret_json(
            SecretPart::CallbackKeys,
            r#"{"accessKey":"ak","kitKey":"kk","ak":"AK-value","sk":"SK-value","usageKey":"uk","other":1}"#,
        )
        .unwrap();
        assert!(parsed.held.open_api.is_none() && parsed.held.usage.is_none());
        let mut misplaced = parsed.misplaced.clone();
        misplaced.sort();
        assert_eq!(misplaced, ["ak", "sk", "usageKey"]);
        let clean = part_from_secret_json(SecretPart::OpenApi, r#"{"ak":"AK","sk":"SK"}"#).unwrap();
        assert!(clean.misplaced.is_empty());
    }

    #[test]
    fn optional_fields_may_be_absent_null_or_empty() {
        let held = parse(
            SecretPart::CallbackKeys,
            r#"{"accessKey":"ak","kitKey":"kk","accessKeyPrevious":null,"kitKeyPrevious":"  ","other":1}"#,
        );
        let keys = held.keys.unwrap();
        assert!(keys.basic.previous.is_none());
        assert!(keys.kit.previous.is_none());
        // The new secrets are created empty: their parts are then absent, not an error.
        assert!(
            parse(SecretPart::OpenApi, r#"{"ak":"","sk":""}"#)
                .open_api
                .is_none()
        );
        assert!(parse(SecretPart::Webhook, "{}").webhook.is_none());
        assert!(
            parse(SecretPart::Usage, r#"{"usageKey":null}"#)
                .usage
                .is_none()
        );
    }

    #[test]
    fn errors_name_the_part_and_the_field_and_never_a_value() {
        let err = |part, s: &str| part_from_secret_json(part, s).unwrap_err().to_string();
        let keys = SecretPart::CallbackKeys;
        let e = err(keys, r#"{"kitKey":"kk-secret-value"}"#);
        assert!(
            e.contains("accessKey") && e.contains("callback keys"),
            "{e}"
        );
        assert!(!e.contains("kk-secret-value"), "{e}");
        let e = err(keys, r#"{"accessKey":"ak-secret-value","kitKey":""}"#);
        assert!(e.contains("kitKey"), "{e}");
        assert!(!e.contains("ak-secret-value"), "{e}");
        let e = err(SecretPart::Webhook, r#"{"webhookSecret":12345}"#);
        assert!(e.contains("webhookSecret") && !e.contains("12345"), "{e}");
        let e = err(keys, r#"{"accessKey": 98765, "kitKey":"kk"}"#);
        assert!(e.contains("accessKey") && !e.contains("98765"), "{e}");
        let e = err(SecretPart::OpenApi, r#"{"ak":"AK-value"}"#);
        assert!(
            e.contains("open API") && e.contains("sk") && !e.contains("AK-value"),
            "{e}"
        );
        let e = err(keys, r#"{"accessKey":"ak-secret-value" "kitKey":"kk"}"#);
        assert!(
            e.contains("not valid JSON") && !e.contains("ak-secret-value"),
            "{e}"
        );
        let e = err(SecretPart::Usage, r#"["ak-secret-value"]"#);
        assert!(
            e.contains("usage key secret is not a JSON object") && !e.contains("ak-secret-value"),
            "{e}"
        );
    }

    #[test]
    fn parsed_keys_do_not_print_values() {
        let held = parse(
            SecretPart::CallbackKeys,
            r#"{"accessKey":"ak-value","kitKey":"kk-value"}"#,
        )
        .merge(parse(
            SecretPart::Webhook,
            r#"{"webhookSecret":"wh-value"}"#,
        ));
        let printed = format!("{held:?}");
        assert!(!printed.contains("-value"), "{printed}");
    }

    #[test]
    fn a_part_without_its_variable_stops_start_up_named() {
        let vars = [(SecretPart::OpenApi.env_var(), "arn:open-api")];
        let env = Env::from_fn(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        });
        let client = Client::from_conf(
            aws_sdk_secretsmanager::Config::builder()
                .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
                .build(),
        );
        assert!(
            SecretsManagerSecrets::from_env(client.clone(), &[SecretPart::OpenApi], &env).is_ok()
        );
        let e = SecretsManagerSecrets::from_env(
            client,
            &[SecretPart::OpenApi, SecretPart::Webhook],
            &env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("KOOGALLERY_WEBHOOK_SECRET_ID") && e.contains("webhook secret"),
            "{e}"
        );
    }
}
