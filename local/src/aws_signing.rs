//! `koogallery-admin … --aws`: the operator calls to the admin function's URL (the stack output
//! `AdminUrl`, a function URL with `AuthType: AWS_IAM`), each signed with Signature Version 4 for
//! the service `lambda` by the caller's own AWS credentials: the SDK's default chain
//! (environment, profile files and SSO, web identity, the instance's role), as the AWS CLI finds
//! them. The region is the function URL's (`<id>.lambda-url.<region>.on.aws`), else the
//! configuration's (`AWS_REGION`, the profile).

use std::time::SystemTime;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::{
    http_request::{PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign},
    sign::v4,
};

use crate::admin_cli::AdminError;

/// The signing name of a Lambda function URL.
pub const SERVICE: &str = "lambda";

/// Signs requests with the caller's credentials for one region.
#[derive(Debug, Clone)]
pub struct Signer {
    credentials: SharedCredentialsProvider,
    region: String,
}

/// The region a function URL names: `https://<id>.lambda-url.<region>.on.aws/`.
pub fn region_of(url: &str) -> Option<String> {
    let host = url::Url::parse(url).ok()?.host_str()?.to_owned();
    let labels: Vec<&str> = host.split('.').collect();
    labels
        .windows(2)
        .find(|w| w[0] == "lambda-url")
        .map(|w| w[1].to_owned())
        .filter(|r| !r.is_empty())
}

impl Signer {
    /// The default credential chain, and the region of `url` (else the configuration's).
    pub async fn for_url(url: &str) -> Result<Self, AdminError> {
        let config = koogallery_aws::sdk_config().await;
        let credentials = config.credentials_provider().ok_or_else(|| {
            AdminError::Usage("--aws: no AWS credentials provider is configured".into())
        })?;
        let region = region_of(url)
            .or_else(|| config.region().map(|r| r.to_string()))
            .ok_or_else(|| {
                AdminError::Usage(format!(
                    "--aws: {url} is not a function URL (<id>.lambda-url.<region>.on.aws) and no region is configured (AWS_REGION)"
                ))
            })?;
        Ok(Self {
            credentials,
            region,
        })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Adds the signature (`Authorization`, `x-amz-date`, `x-amz-content-sha256` and, with
    /// temporary credentials, `x-amz-security-token`) to `request`, whose body is `body`.
    pub async fn sign(
        &self,
        request: &mut reqwest::Request,
        body: &[u8],
    ) -> Result<(), AdminError> {
        let credentials =
            self.credentials.provide_credentials().await.map_err(|e| {
                AdminError::Usage(format!("--aws: no AWS credentials: {}", chain(&e)))
            })?;
        let identity = credentials.into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| AdminError::Usage(format!("--aws: signing parameters: {e}")))?
            .into();
        let uri = request.url().to_string();
        let method = request.method().as_str().to_owned();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let signable = SignableRequest::new(
            &method,
            &uri,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|e| AdminError::Usage(format!("--aws: request not signable: {e}")))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| AdminError::Usage(format!("--aws: signing failed: {e}")))?
            .into_parts();
        for (name, value) in instructions.headers() {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| AdminError::Usage(format!("--aws: {e}")))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|e| AdminError::Usage(format!("--aws: {e}")))?;
            request.headers_mut().insert(name, value);
        }
        Ok(())
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_is_the_function_urls() {
        assert_eq!(
            region_of("https://abcdefghijklmnop.lambda-url.eu-west-1.on.aws/").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(region_of("http://127.0.0.1:9000"), None);
        assert_eq!(region_of("not a url"), None);
    }
}
