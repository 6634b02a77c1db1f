//! The stored SSO records (docs/protocol/decisions.md §19), a versioned contract: each is a JSON
//! object with `"schema": 1` and the fields below; `shared/tests/fixtures/sso_*_v1.json` pin them, so a
//! rename in the domain cannot change what is on disk unnoticed.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::{
    AuthorizationCode, IssuedAccessToken, OidcClient, PendingLogin, Session, StoredSigningKey,
};
use crate::failure::Detail;
use crate::storage::StoreError;

/// The schema every SSO record is written with.
pub const SCHEMA: u32 = 1;

#[derive(Serialize)]
struct Out<'a, T> {
    schema: u32,
    #[serde(flatten)]
    record: &'a T,
}

#[derive(Deserialize)]
struct In<T> {
    schema: u32,
    #[serde(flatten)]
    record: T,
}

fn encode<T: Serialize>(record: &T) -> String {
    // Plain structs of strings, numbers and times: serialising cannot fail.
    serde_json::to_string(&Out {
        schema: SCHEMA,
        record,
    })
    .unwrap_or_default()
}

fn decode<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    let parsed: In<T> = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(Detail::caused_by(format!("stored {what}"), e)))?;
    if parsed.schema != SCHEMA {
        return Err(StoreError::Corrupt(Detail::new(format!(
            "stored {what} has schema {}, this release reads {SCHEMA}",
            parsed.schema
        ))));
    }
    Ok(parsed.record)
}

macro_rules! codec {
    ($encode:ident, $decode:ident, $ty:ty, $what:literal) => {
        pub fn $encode(record: &$ty) -> String {
            encode(record)
        }
        /// # Errors
        /// [`StoreError::Corrupt`] when it does not decode.
        pub fn $decode(text: &str) -> Result<$ty, StoreError> {
            decode($what, text)
        }
    };
}

codec!(encode_session, decode_session, Session, "SSO session");
codec!(encode_client, decode_client, OidcClient, "OIDC client");
codec!(
    encode_signing_key,
    decode_signing_key,
    StoredSigningKey,
    "signing key"
);
codec!(
    encode_pending_login,
    decode_pending_login,
    PendingLogin,
    "pending login"
);
codec!(
    encode_code,
    decode_code,
    AuthorizationCode,
    "authorization code"
);
codec!(
    encode_access_token,
    decode_access_token,
    IssuedAccessToken,
    "access token"
);

#[cfg(test)]
pub(crate) mod tests {
    use chrono::{DateTime, Duration, Utc};

    use super::*;
    use crate::sso::Identity;

    pub(crate) fn sample_session(t0: DateTime<Utc>) -> Session {
        Session {
            key: "5e7b".repeat(16),
            sid: "sid-1".into(),
            instance_id: "huaweitest123456".into(),
            tenant_id: "68cbc86abc51458880d92f36422fa0e".into(),
            tenant_name: "华为软件技术有限公司".into(),
            app_id: "app-1".into(),
            identity: Identity {
                user_name: "user00001@tenant".into(),
                name: "李伟".into(),
                email: Some("user00001@example.com".into()),
                mobile: None,
                role: "user".into(),
                org_code: "org00001".into(),
                org_name: Some("研发".into()),
            },
            sealed_access_token: "sealed-access".into(),
            sealed_refresh_token: Some("sealed-refresh".into()),
            access_expires_at: t0 + Duration::hours(2),
            refresh_expires_at: t0 + Duration::days(30),
            auth_time: t0,
            clients: vec!["vendor-app".into()],
            refreshing_until: None,
            version: 3,
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-05T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn golden(name: &str, actual: &str) {
        crate::testing::golden::check(name, &serde_json::from_str(actual).unwrap());
    }

    #[test]
    fn stored_records_match_their_golden_files_and_read_back() {
        let t0 = t0();
        let session = sample_session(t0);
        let text = encode_session(&session);
        golden("sso_session_v1.json", &text);
        assert_eq!(decode_session(&text).unwrap(), session);

        let client = OidcClient {
            client_id: "vendor-app".into(),
            secret_hash: crate::sso::hash_opaque("secret"),
            name: "Vendor app".into(),
            redirect_uris: vec!["https://app.example.com/oidc/callback".into()],
            post_logout_redirect_uris: vec!["https://app.example.com/".into()],
            backchannel_logout_uri: Some("https://app.example.com/oidc/backchannel".into()),
            initiate_login_uri: Some("https://app.example.com/login".into()),
            created_at: t0,
        };
        let text = encode_client(&client);
        golden("sso_client_v1.json", &text);
        assert_eq!(decode_client(&text).unwrap(), client);

        let key = StoredSigningKey {
            kid: "k-20261205".into(),
            alg: "ES256".into(),
            sealed_private_key: "sealed-pkcs8".into(),
            public_jwk: serde_json::json!({"kty":"EC","crv":"P-256","x":"x","y":"y","kid":"k-20261205","alg":"ES256","use":"sig"}),
            created_at: t0,
        };
        let text = encode_signing_key(&key);
        golden("sso_signing_key_v1.json", &text);
        assert_eq!(decode_signing_key(&text).unwrap(), key);

        let pending = PendingLogin {
            client_id: "vendor-app".into(),
            redirect_uri: "https://app.example.com/oidc/callback".into(),
            state: Some("rp-state".into()),
            nonce: Some("rp-nonce".into()),
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            scope: "openid profile email".into(),
            created_at: t0,
        };
        let code = AuthorizationCode {
            client_id: pending.client_id.clone(),
            redirect_uri: pending.redirect_uri.clone(),
            code_challenge: pending.code_challenge.clone(),
            nonce: pending.nonce.clone(),
            scope: pending.scope.clone(),
            session_key: session.key.clone(),
            created_at: t0,
        };
        let token = IssuedAccessToken {
            client_id: "vendor-app".into(),
            session_key: session.key.clone(),
            scope: "openid profile".into(),
            expires_at: t0 + Duration::hours(1),
        };
        let grants = serde_json::json!({
            "pendingLogin": serde_json::from_str::<serde_json::Value>(&encode_pending_login(&pending)).unwrap(),
            "authorizationCode": serde_json::from_str::<serde_json::Value>(&encode_code(&code)).unwrap(),
            "accessToken": serde_json::from_str::<serde_json::Value>(&encode_access_token(&token)).unwrap(),
        });
        golden("sso_grants_v1.json", &grants.to_string());
        assert_eq!(
            decode_pending_login(&encode_pending_login(&pending)).unwrap(),
            pending
        );
        assert_eq!(decode_code(&encode_code(&code)).unwrap(), code);
        assert_eq!(
            decode_access_token(&encode_access_token(&token)).unwrap(),
            token
        );
    }

    #[test]
    fn another_schema_or_garbage_is_corrupt_not_a_panic() {
        let text = encode_session(&sample_session(t0())).replace("\"schema\":1", "\"schema\":2");
        assert!(matches!(decode_session(&text), Err(StoreError::Corrupt(_))));
        assert!(matches!(decode_client("{"), Err(StoreError::Corrupt(_))));
    }
}
