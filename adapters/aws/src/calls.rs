//! The AWS calls a process made, by service and operation, as they went on the wire: counted in
//! [`AwsHttp`](crate::AwsHttp), which every call passes through (the SDK's clients and the
//! signed calls of [`crate::signed`] alike), when a test or a measurement installs an
//! [`AwsCalls`] with [`AwsHttp::counting`](crate::AwsHttp::counting). Off otherwise: nothing is
//! counted and the only cost is a `None` checked per request.
//!
//! Each HTTP request counts, so a retried attempt counts again: that is what AWS bills. The
//! service is the one the request was signed for (its credential scope: `dynamodb`, `sqs`, `kms`,
//! `secretsmanager`, `lambda`), the operation its `X-Amz-Target` (the JSON protocols of DynamoDB,
//! SQS, KMS and Secrets Manager) or, for Lambda's REST `Invoke`, its path. What one store asked
//! for, with the items it wrote and their sizes, is counted per store instead, by the table
//! (`dynamo/sdk/counts.rs`): the wire cannot tell two stores on one client apart, nor see items.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, Mutex},
};

/// One AWS operation: its service's signing name and the operation's name, e.g.
/// `("dynamodb", "GetItem")`.
pub type Operation = (String, String);

/// A counter of the calls sent through the [`AwsHttp`](crate::AwsHttp) it was installed in.
/// Cheap to clone; clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct AwsCalls {
    counts: Arc<Mutex<BTreeMap<Operation, u64>>>,
}

/// The calls counted, by [`Operation`]; printed as `dynamodb GetItem 1, sqs SendMessage 1`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counted(pub BTreeMap<Operation, u64>);

impl AwsCalls {
    pub fn new() -> Self {
        Self::default()
    }

    /// The calls since the last take (or since the counter was made); the counts start again
    /// from zero.
    pub fn take(&self) -> Counted {
        Counted(std::mem::take(&mut *self.lock()))
    }

    /// `request` is about to be sent.
    pub(crate) fn sent<B>(&self, request: &http::Request<B>) {
        *self.lock().entry(operation(request)).or_default() += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Operation, u64>> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Counted {
    /// The calls of `service` (its signing name), all operations together.
    pub fn of_service(&self, service: &str) -> u64 {
        self.0
            .iter()
            .filter(|((s, _), _)| s == service)
            .map(|(_, n)| n)
            .sum()
    }

    /// Every call counted.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

impl<const N: usize> From<[(&str, &str, u64); N]> for Counted {
    fn from(calls: [(&str, &str, u64); N]) -> Self {
        Counted(
            calls
                .into_iter()
                .filter(|(_, _, n)| *n > 0)
                .map(|(s, o, n)| ((s.to_owned(), o.to_owned()), n))
                .collect(),
        )
    }
}

impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, ((service, op), n)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{service} {op} {n}")?;
        }
        Ok(())
    }
}

/// The service and operation of a signed AWS request.
fn operation<B>(request: &http::Request<B>) -> Operation {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let service = signing_service(header("authorization")).unwrap_or("unsigned");
    let target = header("x-amz-target");
    let op = match target.split_once('.') {
        Some((_, op)) => op.to_owned(),
        None if service == "lambda" && request.uri().path().ends_with("/invocations") => {
            "Invoke".to_owned()
        }
        None => format!("{} {}", request.method(), request.uri().path()),
    };
    (service.to_owned(), op)
}

/// The service of a Signature Version 4 `Authorization` header: the fourth field of its
/// credential scope (`Credential=AKID/20260101/us-east-1/dynamodb/aws4_request`).
fn signing_service(authorization: &str) -> Option<&str> {
    let scope = authorization.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    scope.split('/').nth(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(auth: &str, target: Option<&str>, path: &str) -> http::Request<()> {
        let mut r =
            http::Request::post(format!("https://example.com{path}")).header("authorization", auth);
        if let Some(t) = target {
            r = r.header("x-amz-target", t);
        }
        r.body(()).unwrap()
    }

    const SCOPE: &str = "AWS4-HMAC-SHA256 Credential=AKID/20261206/us-east-1/";

    #[test]
    fn each_service_s_operation_is_named_from_its_signature_and_target() {
        let calls = AwsCalls::new();
        let auth = |s: &str| format!("{SCOPE}{s}/aws4_request, SignedHeaders=host, Signature=00");
        calls.sent(&request(
            &auth("dynamodb"),
            Some("DynamoDB_20120810.GetItem"),
            "/",
        ));
        calls.sent(&request(
            &auth("dynamodb"),
            Some("DynamoDB_20120810.GetItem"),
            "/",
        ));
        calls.sent(&request(&auth("sqs"), Some("AmazonSQS.SendMessage"), "/"));
        calls.sent(&request(&auth("kms"), Some("TrentService.Decrypt"), "/"));
        calls.sent(&request(
            &auth("secretsmanager"),
            Some("secretsmanager.GetSecretValue"),
            "/",
        ));
        calls.sent(&request(
            &auth("lambda"),
            None,
            "/2015-03-31/functions/new-instance/invocations",
        ));
        calls.sent(&request("", None, "/moto-api/"));
        let counted = calls.take();
        assert_eq!(
            counted,
            Counted::from([
                ("dynamodb", "GetItem", 2),
                ("sqs", "SendMessage", 1),
                ("kms", "Decrypt", 1),
                ("secretsmanager", "GetSecretValue", 1),
                ("lambda", "Invoke", 1),
                ("unsigned", "POST /moto-api/", 1),
            ])
        );
        assert_eq!(counted.of_service("dynamodb"), 2);
        assert_eq!(counted.total(), 7);
        assert_eq!(
            Counted::from([("dynamodb", "GetItem", 2), ("sqs", "SendMessage", 1)]).to_string(),
            "dynamodb GetItem 2, sqs SendMessage 1"
        );
        assert_eq!(calls.take(), Counted::default(), "taking resets the counts");
    }
}
