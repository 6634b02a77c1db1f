//! OpenID Connect Discovery 1.0 (`/.well-known/openid-configuration`) and the JWKS: what an
//! off-the-shelf client library reads to find the endpoints, the algorithms and the keys.

use http::StatusCode;
use serde_json::json;

use crate::{Answer, Provider, ProviderSettings, claims::CLAIMS};

/// The discovery document; its `issuer` is exactly the `iss` of every token.
pub fn document(s: &ProviderSettings) -> serde_json::Value {
    json!({
        "issuer": s.issuer(),
        "authorization_endpoint": s.url("/oidc/authorize"),
        "token_endpoint": s.url("/oidc/token"),
        "userinfo_endpoint": s.url("/oidc/userinfo"),
        "jwks_uri": s.url("/oidc/jwks"),
        "end_session_endpoint": s.url("/oidc/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "scopes_supported": ["openid", "profile", "email", "phone"],
        "claims_supported": CLAIMS,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    })
}

pub fn discovery(s: &ProviderSettings) -> Answer {
    Answer::public_json(&document(s), 300)
}

pub async fn jwks(p: &Provider) -> Answer {
    match p.keys.jwks(p.sso.now()).await {
        // Short cache: a rotated key must reach clients before it signs for long.
        Ok(set) => Answer::public_json(&set, 60),
        Err(e) => {
            tracing::error!(error = %e, "JWKS unavailable");
            Answer::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": "the signing keys are unavailable"}),
            )
        }
    }
}
