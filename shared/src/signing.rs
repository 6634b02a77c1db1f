//! Request and response signatures (spec `callbacks.md` §3.1–§3.3, §3.6; README "Decisions" 1–3).
//!
//! * V2 basic interfaces: [`basic_signature`] / [`verify_basic`] (§3.1).
//! * V2 Kit interfaces: [`kit_signature`] / [`verify_kit`] (§3.2).
//! * V1 `authToken`: [`v1_auth_token`] / [`verify_v1_auth_token`] (§3.6).
//! * Response `Body-Sign` header: [`body_sign_header`] / [`verify_body_sign`] (§3.3).
//!
//! Every verification compares MACs in constant time (`Mac::verify_slice`) and accepts the current
//! and the previous key of a [`KeyRing`] (Decisions §2). Nothing here logs; keys never appear in
//! `Debug`/`Display` output.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Name of the V1 token parameter, never part of the signed string (§3.6).
const V1_AUTH_TOKEN_PARAM: &str = "authToken";

/// The only `sign_type` of a `Body-Sign` header (§3.3).
const BODY_SIGN_TYPE: &str = "HMAC-SHA256";

/// A secret key string (accessKey / Kit key). `Debug` and `Display` print `<redacted>`; never log it.
#[derive(Clone)]
pub struct SecretKey(String);

impl SecretKey {
    /// Wraps a key string.
    #[must_use]
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The key itself, for computing MACs. Do not log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The current key plus an optional previous key still accepted during rotation (Decisions §2).
#[derive(Clone, Debug)]
pub struct KeyRing {
    /// The key the platform is expected to sign with.
    pub current: SecretKey,
    /// The key before the last rotation, still accepted.
    pub previous: Option<SecretKey>,
}

impl KeyRing {
    /// A ring of the current key and, during a rotation, the previous one.
    #[must_use]
    pub fn new(current: SecretKey, previous: Option<SecretKey>) -> Self {
        Self { current, previous }
    }

    /// The current key first, then the previous one if any.
    pub fn keys(&self) -> impl Iterator<Item = &SecretKey> {
        std::iter::once(&self.current).chain(self.previous.as_ref())
    }
}

/// Why a request signature was rejected (all map to result code `000001`, §3.1).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// No signature, or an empty one.
    #[error("signature missing")]
    Missing,
    /// Not decodable (not hex for V2 signatures, not Base64 for a V1 `authToken`).
    #[error("signature is not hex")]
    Malformed,
    /// No key of the ring and no payload form produced this signature.
    #[error("signature does not match")]
    Mismatch,
}

/// Which key and which payload form matched (for logs; contains no secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched {
    /// `true` if the previous key of the ring matched, i.e. the platform still signs with it.
    pub previous_key: bool,
    /// The payload form that matched.
    pub payload: PayloadForm,
}

/// The payload form a signature matched (Decisions §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadForm {
    /// The canonical payload of [`canonical_payload`] (for V1: the sorted `k=v&…` string).
    Canonical,
    /// The raw request body bytes (fallback for bodies the platform may not canonicalise, §3.1).
    RawBody,
}

/// Why a body has no canonical payload.
#[derive(Debug, thiserror::Error)]
pub enum CanonicalError {
    /// The body does not parse as JSON (the error carries a position, never body content).
    #[error("body is not valid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// The body is JSON but not an object.
    #[error("body is not a JSON object")]
    NotAnObject,
}

/// Canonical payload (§3.1, §3.2, Decisions §1): parse the body as a JSON object, drop top-level
/// `null` values, sort top-level keys by Java `String.compareTo` (UTF-16 code units) and serialise
/// compactly; nested values are re-serialised compactly in received order, non-ASCII is raw and
/// `/` is not escaped (as Jackson does).
///
/// # Errors
/// [`CanonicalError`] if the body is not JSON or not a JSON object.
pub fn canonical_payload(body: &[u8]) -> Result<String, CanonicalError> {
    // Jackson skips a UTF-8 byte-order mark; serde_json does not.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    match serde_json::from_slice(body).map_err(CanonicalError::InvalidJson)? {
        Value::Object(map) => Ok(canonical_payload_of(&map)),
        _ => Err(CanonicalError::NotAnObject),
    }
}

/// [`canonical_payload`] of an already-parsed object (the signer side).
#[must_use]
pub fn canonical_payload_of(map: &Map<String, Value>) -> String {
    let mut entries: Vec<(&String, &Value)> = map.iter().filter(|(_, v)| !v.is_null()).collect();
    entries.sort_by(|(a, _), (b, _)| java_cmp(a, b));
    let sorted: Map<String, Value> = entries
        .into_iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // `Display` of a `Value` is compact JSON; `preserve_order` keeps the order built above.
    Value::Object(sorted).to_string()
}

/// Java `String.compareTo`: lexicographic over UTF-16 code units (differs from UTF-8 byte order
/// for characters above U+FFFF versus U+E000..U+FFFF).
fn java_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

fn hmac_sha256(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// MAC state of a V2 basic signature (§3.1), ready to finalise or verify.
fn basic_mac(access_key: &str, nonce: &str, timestamp: &str, payload: &[u8]) -> HmacSha256 {
    let inner = hex::encode(
        hmac_sha256(access_key.as_bytes())
            .chain_update(payload)
            .finalize()
            .into_bytes(),
    );
    hmac_sha256(access_key.as_bytes())
        .chain_update(access_key)
        .chain_update(nonce)
        .chain_update(timestamp)
        .chain_update(inner)
}

/// MAC state of a V2 Kit `x-sign` (§3.2): no inner HMAC.
fn kit_mac(kit_key: &str, nonce: &str, timestamp: &str, payload: &[u8]) -> HmacSha256 {
    hmac_sha256(kit_key.as_bytes())
        .chain_update(kit_key)
        .chain_update(nonce)
        .chain_update(timestamp)
        .chain_update(payload)
}

/// V2 basic-interface signature (§3.1):
/// `hex(HMAC(key, key + nonce + timestamp + hex(HMAC(key, payload))))`, lowercase.
#[must_use]
pub fn basic_signature(access_key: &str, nonce: &str, timestamp: &str, payload: &[u8]) -> String {
    hex::encode(
        basic_mac(access_key, nonce, timestamp, payload)
            .finalize()
            .into_bytes(),
    )
}

/// Verifies a V2 basic-interface signature on the raw request body (§3.1, Decisions §1–2).
///
/// Tries, for each key of the ring (current first), the canonical payload and then the raw body
/// bytes. `signature` is hex in either case; the comparison is constant-time.
///
/// # Errors
/// [`SignatureError::Missing`] if empty, [`SignatureError::Malformed`] if not hex,
/// [`SignatureError::Mismatch`] otherwise.
pub fn verify_basic(
    keys: &KeyRing,
    nonce: &str,
    timestamp: &str,
    signature: &str,
    raw_body: &[u8],
) -> Result<Matched, SignatureError> {
    verify_hex(keys, signature, raw_body, |key, payload| {
        basic_mac(key, nonce, timestamp, payload)
    })
}

/// V2 Kit `x-sign` (§3.2): lowercase `hex(HMAC(key, key + nonce + timestamp + payload))`.
#[must_use]
pub fn kit_signature(kit_key: &str, nonce: &str, timestamp: &str, payload: &[u8]) -> String {
    hex::encode(
        kit_mac(kit_key, nonce, timestamp, payload)
            .finalize()
            .into_bytes(),
    )
}

/// Verifies a V2 Kit `x-sign` on the raw request body (§3.2, Decisions §1–2); same rules as
/// [`verify_basic`].
///
/// # Errors
/// As [`verify_basic`].
pub fn verify_kit(
    keys: &KeyRing,
    nonce: &str,
    timestamp: &str,
    signature: &str,
    raw_body: &[u8],
) -> Result<Matched, SignatureError> {
    verify_hex(keys, signature, raw_body, |key, payload| {
        kit_mac(key, nonce, timestamp, payload)
    })
}

/// Shared body of [`verify_basic`] and [`verify_kit`].
fn verify_hex(
    keys: &KeyRing,
    signature: &str,
    raw_body: &[u8],
    mac: impl Fn(&str, &[u8]) -> HmacSha256,
) -> Result<Matched, SignatureError> {
    let signature = signature.trim();
    if signature.is_empty() {
        return Err(SignatureError::Missing);
    }
    // `hex` accepts both cases (§3.1: compare case-insensitively).
    let tag = hex::decode(signature).map_err(|_| SignatureError::Malformed)?;

    let mut candidates: Vec<(PayloadForm, Cow<'_, [u8]>)> = Vec::with_capacity(2);
    if let Ok(canonical) = canonical_payload(raw_body) {
        candidates.push((PayloadForm::Canonical, Cow::Owned(canonical.into_bytes())));
    }
    if candidates.iter().all(|(_, p)| p.as_ref() != raw_body) {
        candidates.push((PayloadForm::RawBody, Cow::Borrowed(raw_body)));
    }

    for (index, key) in keys.keys().enumerate() {
        for (form, payload) in &candidates {
            if mac(key.expose(), payload).verify_slice(&tag).is_ok() {
                return Ok(Matched {
                    previous_key: index > 0,
                    payload: *form,
                });
            }
        }
    }
    Err(SignatureError::Mismatch)
}

/// The string a V1 `authToken` signs (§3.6): all params but `authToken`, sorted by name in Java
/// `TreeMap` order, joined as `k=v&…`. Of repeated names the first value counts, as in Huawei's
/// helper (`getParameterMap().get(k)[0]`).
fn v1_signed_string(params: &[(&str, &str)]) -> String {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .copied()
        .filter(|(name, _)| *name != V1_AUTH_TOKEN_PARAM)
        .collect();
    // Stable sort, so `dedup_by` keeps the first occurrence of a name.
    sorted.sort_by(|(a, _), (b, _)| java_cmp(a, b));
    sorted.dedup_by(|later, earlier| later.0 == earlier.0);
    sorted
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn v1_mac(access_key: &str, time_stamp: &str, params: &[(&str, &str)]) -> HmacSha256 {
    let mut key = String::with_capacity(access_key.len() + time_stamp.len());
    key.push_str(access_key);
    key.push_str(time_stamp);
    hmac_sha256(key.as_bytes()).chain_update(v1_signed_string(params))
}

/// V1 `authToken` (§3.6): `Base64(HMAC(key = access_key + time_stamp, sorted "k=v&…"))`.
///
/// `params` are all request parameters (URL-decoded), *including* `timeStamp`; an `authToken`
/// entry is ignored.
#[must_use]
pub fn v1_auth_token(access_key: &str, time_stamp: &str, params: &[(&str, &str)]) -> String {
    BASE64.encode(
        v1_mac(access_key, time_stamp, params)
            .finalize()
            .into_bytes(),
    )
}

/// Verifies a V1 `authToken` (§3.6) in constant time against each key of the ring.
///
/// A space in the token is read as `+` (a `+` that went through form decoding unescaped).
/// On success the payload form is always [`PayloadForm::Canonical`].
///
/// # Errors
/// [`SignatureError::Missing`] if empty, [`SignatureError::Malformed`] if not Base64,
/// [`SignatureError::Mismatch`] otherwise.
pub fn verify_v1_auth_token(
    keys: &KeyRing,
    time_stamp: &str,
    params: &[(&str, &str)],
    auth_token: &str,
) -> Result<Matched, SignatureError> {
    let auth_token = auth_token.trim();
    if auth_token.is_empty() {
        return Err(SignatureError::Missing);
    }
    let tag = BASE64
        .decode(auth_token.replace(' ', "+"))
        .map_err(|_| SignatureError::Malformed)?;
    keys.keys()
        .position(|key| {
            v1_mac(key.expose(), time_stamp, params)
                .verify_slice(&tag)
                .is_ok()
        })
        .map(|index| Matched {
            previous_key: index > 0,
            payload: PayloadForm::Canonical,
        })
        .ok_or(SignatureError::Mismatch)
}

/// `Body-Sign` response header value (§3.3, Decisions §3), over the exact bytes sent:
/// `sign_type="HMAC-SHA256", signature="<Base64(HMAC(access_key, body))>"`.
#[must_use]
pub fn body_sign_header(access_key: &str, body: &[u8]) -> String {
    let signature = BASE64.encode(
        hmac_sha256(access_key.as_bytes())
            .chain_update(body)
            .finalize()
            .into_bytes(),
    );
    format!("sign_type=\"{BODY_SIGN_TYPE}\", signature=\"{signature}\"")
}

/// Checks a `Body-Sign` header (§3.3), as `KooGallery` would (used by the simulator).
///
/// Requires `sign_type="HMAC-SHA256"` and a quoted `signature`; whitespace around `=` and `,` is
/// accepted (`signature="x"` and `signature= "x"`). Constant-time comparison.
#[must_use]
pub fn verify_body_sign(access_key: &str, body: &[u8], header: &str) -> bool {
    let Some(signature) = parse_body_sign(header) else {
        return false;
    };
    let Ok(tag) = BASE64.decode(signature) else {
        return false;
    };
    hmac_sha256(access_key.as_bytes())
        .chain_update(body)
        .verify_slice(&tag)
        .is_ok()
}

/// The `signature` value of a well-formed `Body-Sign` header with `sign_type="HMAC-SHA256"`.
fn parse_body_sign(header: &str) -> Option<&str> {
    let mut sign_type = None;
    let mut signature = None;
    for part in header.split(',') {
        let (name, value) = part.split_once('=')?;
        let value = value.trim().strip_prefix('"')?.strip_suffix('"')?;
        let slot = match name.trim() {
            "sign_type" => &mut sign_type,
            "signature" => &mut signature,
            _ => return None,
        };
        if slot.replace(value).is_some() {
            return None;
        }
    }
    if sign_type? != BODY_SIGN_TYPE {
        return None;
    }
    signature
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &str = "TestAccessKey-0123456789abcdef";
    const NONCE: &str = "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA";
    const TS: &str = "1680508066618";

    // §14.3
    const BASIC_CANONICAL: &str = r#"{"activity":"newInstance","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}"#;
    const BASIC_INNER: &str = "10a571044bbfa4da77841395fb33e79725d25a1264c6d52540e4f17f1cc3a30d";
    const BASIC_SIG: &str = "a64b1bfce1a372de15ef4377957528e7f7b0ce4944d4caea7b7363339df27c82";
    /// The §14.3 body with keys in another order, whitespace and an extra top-level null.
    const BASIC_BODY_SHUFFLED: &str = r#"{
        "testFlag": "1",
        "orderLineId": "CS2211181819B4LVS-000001",
        "extra": null,
        "businessId": "87b94795-0603-4e24-8ae5-69420d60e3c8",
        "activity": "newInstance",
        "orderId": "CS2211181819B4LVS"
    }"#;

    // §14.4 a
    const KIT_A_PAYLOAD: &str = r#"{"domainName":"https://example.tenantaccount.com","flag":1,"instanceId":"huaiweitest123456","name":"huaiweitest","orderId":"CS1906666666ABCDE","tenantCode":"huawei","tenantId":"68cbc86abc51458880d92f36422fa0e","testFlag":0,"timeStamp":"20220413093539534"}"#;
    const KIT_A_SIG: &str = "9ac4d2cbacf885ec49daee83e89a85bfbbf92b7e8c72e0d08ed0e8a3f9a384bb";

    // §14.4 b
    const KIT_B_KEY: &str = "KitKey-fedcba9876543210";
    const KIT_B_NONCE: &str = "0123456789ABCDEF0123456789ABCDEF";
    const KIT_B_TS: &str = "1700000000000";
    const KIT_B_PAYLOAD: &str = r#"{"appId":"app-001","currentSyncTime":"20240101120000000","flag":1,"instanceId":"inst-001","tenantId":"tenant-001","testFlag":1,"timeStamp":"20240101120000000","userList":[{"userName":"zhangsan01","name":"张三","orgCode":"10000","role":"admin","enable":"true"}]}"#;
    const KIT_B_SIG: &str = "a4f6795925285533869865f5ffa2e11d59abbcafc2cf0212f61f3db89754ef07";

    // §14.5
    const V1_TS: &str = "20230327065233980";
    const V1_INSTANCE: &str = "ebc28eb6-4606-4098-b4bd-c201c99a0654";
    const V1_INSTANCES: &str =
        "ebc28eb6-4606-4098-b4bd-c201c99a0654,fe28e27e-1157-4105-8592-24cc9488db10";
    const V1_TOKEN_1: &str = "ChNSgU0K57zxxRxxkTixcfdzXNapbmec6YgAWFuNhd0=";
    const V1_TOKEN_2: &str = "C5GKceh57oq/LbfOasfF3v3hqZv+R3fQC2uw+EnwJgI=";

    fn ring(current: &str) -> KeyRing {
        KeyRing::new(SecretKey::new(current), None)
    }

    fn ring2(current: &str, previous: &str) -> KeyRing {
        KeyRing::new(SecretKey::new(current), Some(SecretKey::new(previous)))
    }

    const CANONICAL: Matched = Matched {
        previous_key: false,
        payload: PayloadForm::Canonical,
    };

    #[test]
    fn secret_key_is_redacted() {
        let keys = ring2(KEY, "OldKey-123");
        assert_eq!(format!("{:?}", keys.current), "<redacted>");
        assert_eq!(keys.current.to_string(), "<redacted>");
        let debug = format!("{keys:?}");
        assert!(!debug.contains(KEY) && !debug.contains("OldKey"), "{debug}");
        assert_eq!(keys.current.expose(), KEY);
        let all: Vec<&str> = keys.keys().map(SecretKey::expose).collect();
        assert_eq!(all, [KEY, "OldKey-123"]);
        assert_eq!(ring(KEY).keys().count(), 1);
    }

    // ---- §14.3 V2 basic -------------------------------------------------------------------

    #[test]
    fn basic_vector_canonical_payload() {
        assert_eq!(
            canonical_payload(BASIC_BODY_SHUFFLED.as_bytes()).unwrap(),
            BASIC_CANONICAL
        );
    }

    #[test]
    fn basic_vector_inner_hmac() {
        let inner = hmac_sha256(KEY.as_bytes())
            .chain_update(BASIC_CANONICAL)
            .finalize()
            .into_bytes();
        assert_eq!(hex::encode(inner), BASIC_INNER);
    }

    #[test]
    fn basic_vector_signature() {
        assert_eq!(
            basic_signature(KEY, NONCE, TS, BASIC_CANONICAL.as_bytes()),
            BASIC_SIG
        );
    }

    #[test]
    fn basic_vector_verifies_lower_and_upper_case() {
        let keys = ring(KEY);
        for sig in [BASIC_SIG.to_owned(), BASIC_SIG.to_uppercase()] {
            assert_eq!(
                verify_basic(&keys, NONCE, TS, &sig, BASIC_CANONICAL.as_bytes()),
                Ok(CANONICAL)
            );
        }
    }

    #[test]
    fn basic_vector_verifies_reordered_body_with_whitespace_and_null() {
        let keys = ring(KEY);
        assert_eq!(
            verify_basic(
                &keys,
                NONCE,
                TS,
                &BASIC_SIG.to_uppercase(),
                BASIC_BODY_SHUFFLED.as_bytes()
            ),
            Ok(CANONICAL)
        );
    }

    #[test]
    fn basic_wrong_key_fails() {
        let keys = ring("SomeOtherKey");
        assert_eq!(
            verify_basic(&keys, NONCE, TS, BASIC_SIG, BASIC_CANONICAL.as_bytes()),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn basic_previous_key_succeeds_and_is_reported() {
        let keys = ring2("NewKey-after-rotation", KEY);
        assert_eq!(
            verify_basic(&keys, NONCE, TS, BASIC_SIG, BASIC_BODY_SHUFFLED.as_bytes()),
            Ok(Matched {
                previous_key: true,
                payload: PayloadForm::Canonical
            })
        );
        // The current key still reports previous_key = false.
        let keys = ring2(KEY, "OldKey");
        assert_eq!(
            verify_basic(&keys, NONCE, TS, BASIC_SIG, BASIC_CANONICAL.as_bytes()),
            Ok(CANONICAL)
        );
    }

    #[test]
    fn basic_tampered_body_nonce_or_timestamp_fails() {
        let keys = ring(KEY);
        let tampered = BASIC_CANONICAL.replace("CS2211181819B4LVS\"", "CS2211181819B4LVX\"");
        assert_ne!(tampered, BASIC_CANONICAL);
        assert_eq!(
            verify_basic(&keys, NONCE, TS, BASIC_SIG, tampered.as_bytes()),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_basic(
                &keys,
                NONCE,
                "1680508066619",
                BASIC_SIG,
                BASIC_CANONICAL.as_bytes()
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_basic(&keys, "other", TS, BASIC_SIG, BASIC_CANONICAL.as_bytes()),
            Err(SignatureError::Mismatch)
        );
        // An empty-string value is kept (only nulls are dropped), so it changes the payload.
        let with_empty = BASIC_CANONICAL.replace('}', r#","zz":""}"#);
        assert_eq!(
            verify_basic(&keys, NONCE, TS, BASIC_SIG, with_empty.as_bytes()),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn malformed_and_missing_signatures() {
        let keys = ring(KEY);
        let body = BASIC_CANONICAL.as_bytes();
        for verify in [verify_basic, verify_kit] {
            assert_eq!(
                verify(&keys, NONCE, TS, "", body),
                Err(SignatureError::Missing)
            );
            assert_eq!(
                verify(&keys, NONCE, TS, "   ", body),
                Err(SignatureError::Missing)
            );
            for bad in ["xyz", "a64b1", "zz4b1bfce1a372de", "a64b1bfc-e1a3", "é1"] {
                assert_eq!(
                    verify(&keys, NONCE, TS, bad, body),
                    Err(SignatureError::Malformed),
                    "{bad}"
                );
            }
            // Valid hex of the wrong length is a mismatch, not a panic.
            assert_eq!(
                verify(&keys, NONCE, TS, "a64b", body),
                Err(SignatureError::Mismatch)
            );
            assert_eq!(
                verify(&keys, NONCE, TS, &format!("{BASIC_SIG}00"), body),
                Err(SignatureError::Mismatch)
            );
        }
    }

    #[test]
    fn raw_body_fallback_for_nested_body() {
        let keys = ring(KEY);
        let raw = br#"{"activity":"changeInstanceCheck", "productInfo": {"skuCode":"s1","amount":null,"linearValue":2},"instanceId":"i-1"}"#;
        let canonical = canonical_payload(raw).unwrap();
        assert_eq!(
            canonical,
            r#"{"activity":"changeInstanceCheck","instanceId":"i-1","productInfo":{"skuCode":"s1","amount":null,"linearValue":2}}"#
        );
        let raw_matched = Matched {
            previous_key: false,
            payload: PayloadForm::RawBody,
        };

        // The signer signed the raw bytes: the fallback matches.
        let sig = basic_signature(KEY, NONCE, TS, raw);
        assert_eq!(verify_basic(&keys, NONCE, TS, &sig, raw), Ok(raw_matched));
        let sig = kit_signature(KEY, NONCE, TS, raw);
        assert_eq!(verify_kit(&keys, NONCE, TS, &sig, raw), Ok(raw_matched));

        // The signer signed the canonical form: the canonical attempt matches first.
        let sig = basic_signature(KEY, NONCE, TS, canonical.as_bytes());
        assert_eq!(verify_basic(&keys, NONCE, TS, &sig, raw), Ok(CANONICAL));

        // A body that is not a JSON object can still be checked raw.
        let sig = basic_signature(KEY, NONCE, TS, b"not json");
        assert_eq!(
            verify_basic(&keys, NONCE, TS, &sig, b"not json"),
            Ok(raw_matched)
        );
        assert_eq!(
            verify_basic(&keys, NONCE, TS, &sig, b"not jsoN"),
            Err(SignatureError::Mismatch)
        );
    }

    // ---- canonical payload ---------------------------------------------------------------

    #[test]
    fn canonical_rules() {
        // Top-level nulls dropped, nested nulls and nested key order kept, numbers stay numbers,
        // '/' unescaped, non-ASCII raw, empty strings kept.
        let body = r#" { "b": {"z": null, "a": [3, {"y": 1, "x": "/é"}]}, "a": null, "c": "", "A": 1.5, "d": true } "#;
        assert_eq!(
            canonical_payload(body.as_bytes()).unwrap(),
            r#"{"A":1.5,"b":{"z":null,"a":[3,{"y":1,"x":"/é"}]},"c":"","d":true}"#
        );
        assert_eq!(canonical_payload(b"{}").unwrap(), "{}");
        assert_eq!(canonical_payload(b"{\"a\":null}").unwrap(), "{}");
        // Byte-order mark tolerated.
        assert_eq!(
            canonical_payload(b"\xEF\xBB\xBF{\"a\":\"1\"}").unwrap(),
            r#"{"a":"1"}"#
        );
        // Control characters are escaped, quotes and backslashes too.
        assert_eq!(
            canonical_payload(br#"{"k":"a\"b\\c\n\u0001"}"#).unwrap(),
            r#"{"k":"a\"b\\c\n\u0001"}"#
        );
    }

    #[test]
    fn canonical_rejects_non_objects() {
        for body in [
            &b"[]"[..],
            b"\"x\"",
            b"1",
            b"null",
            b"",
            b"{",
            b"{\"a\":1}x",
            b"\xff",
        ] {
            assert!(canonical_payload(body).is_err(), "{body:?}");
        }
        assert!(matches!(
            canonical_payload(b"[1]"),
            Err(CanonicalError::NotAnObject)
        ));
        assert!(matches!(
            canonical_payload(b"{"),
            Err(CanonicalError::InvalidJson(_))
        ));
    }

    #[test]
    fn canonical_uses_java_utf16_order() {
        // U+FF61 is one UTF-16 unit 0xFF61; U+1F600 is the surrogate pair 0xD83D 0xDE00.
        // Java (UTF-16) puts U+1F600 first; UTF-8 byte order (EF.. < F0..) would put U+FF61 first.
        let (halfwidth, emoji) = ("\u{FF61}", "\u{1F600}");
        assert!(halfwidth.as_bytes() < emoji.as_bytes());
        assert_eq!(java_cmp(emoji, halfwidth), Ordering::Less);
        let body = format!(r#"{{"{halfwidth}":"1","{emoji}":"2","Z":"3","a":"4"}}"#);
        assert_eq!(
            canonical_payload(body.as_bytes()).unwrap(),
            format!(r#"{{"Z":"3","a":"4","{emoji}":"2","{halfwidth}":"1"}}"#)
        );
        // Prefixes sort first, upper case before lower case.
        assert_eq!(java_cmp("ab", "abc"), Ordering::Less);
        assert_eq!(java_cmp("B", "a"), Ordering::Less);
    }

    #[test]
    fn canonical_payload_of_matches_parse_path() {
        let Value::Object(map) = serde_json::from_str::<Value>(BASIC_BODY_SHUFFLED).unwrap() else {
            panic!("object expected");
        };
        assert_eq!(canonical_payload_of(&map), BASIC_CANONICAL);
    }

    // ---- §14.4 Kit ---------------------------------------------------------------------------

    #[test]
    fn kit_vector_a() {
        assert_eq!(
            kit_signature(KEY, NONCE, TS, KIT_A_PAYLOAD.as_bytes()),
            KIT_A_SIG
        );
        let body = r#"{"timeStamp":"20220413093539534","testFlag":0,"tenantId":"68cbc86abc51458880d92f36422fa0e",
            "tenantCode":"huawei","orderId":"CS1906666666ABCDE","name":"huaiweitest","instanceId":"huaiweitest123456",
            "flag":1,"domainName":"https://example.tenantaccount.com","nothing":null}"#;
        assert_eq!(canonical_payload(body.as_bytes()).unwrap(), KIT_A_PAYLOAD);
        let keys = ring(KEY);
        assert_eq!(
            verify_kit(&keys, NONCE, TS, &KIT_A_SIG.to_uppercase(), body.as_bytes()),
            Ok(CANONICAL)
        );
        // The Kit scheme is not the basic scheme.
        assert_eq!(
            verify_basic(&keys, NONCE, TS, KIT_A_SIG, body.as_bytes()),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn kit_vector_b_non_ascii_and_nested_array() {
        assert_eq!(
            kit_signature(KIT_B_KEY, KIT_B_NONCE, KIT_B_TS, KIT_B_PAYLOAD.as_bytes()),
            KIT_B_SIG
        );
        // Top level shuffled and spaced; the nested object keeps its (unsorted) received order.
        let body = r#"{
          "userList": [ { "userName": "zhangsan01", "name": "张三", "orgCode": "10000", "role": "admin", "enable": "true" } ],
          "testFlag": 1, "timeStamp": "20240101120000000", "tenantId": "tenant-001",
          "instanceId": "inst-001", "flag": 1, "currentSyncTime": "20240101120000000", "appId": "app-001"
        }"#;
        assert_eq!(canonical_payload(body.as_bytes()).unwrap(), KIT_B_PAYLOAD);
        let keys = ring2("KitKey-new", KIT_B_KEY);
        assert_eq!(
            verify_kit(&keys, KIT_B_NONCE, KIT_B_TS, KIT_B_SIG, body.as_bytes()),
            Ok(Matched {
                previous_key: true,
                payload: PayloadForm::Canonical
            })
        );
        // Reordering inside the nested object breaks the signature.
        let reordered = body.replace(
            r#""userName": "zhangsan01", "name": "张三""#,
            r#""name": "张三", "userName": "zhangsan01""#,
        );
        assert_ne!(reordered, body);
        assert_eq!(
            verify_kit(
                &keys,
                KIT_B_NONCE,
                KIT_B_TS,
                KIT_B_SIG,
                reordered.as_bytes()
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_kit(
                &ring(KEY),
                KIT_B_NONCE,
                KIT_B_TS,
                KIT_B_SIG,
                body.as_bytes()
            ),
            Err(SignatureError::Mismatch)
        );
    }

    // ---- §14.5 V1 authToken ------------------------------------------------------------------

    #[test]
    fn v1_vectors() {
        let params = [
            ("testFlag", "1"),
            ("timeStamp", V1_TS),
            ("instanceId", V1_INSTANCE),
            ("activity", "queryInstance"),
        ];
        assert_eq!(
            v1_signed_string(&params),
            format!("activity=queryInstance&instanceId={V1_INSTANCE}&testFlag=1&timeStamp={V1_TS}")
        );
        assert_eq!(v1_auth_token(KEY, V1_TS, &params), V1_TOKEN_1);

        let params = [
            ("authToken", V1_TOKEN_2),
            ("activity", "queryInstance"),
            ("timeStamp", V1_TS),
            ("instanceId", V1_INSTANCES),
            ("testFlag", "1"),
        ];
        assert_eq!(v1_auth_token(KEY, V1_TS, &params), V1_TOKEN_2);
        assert_eq!(
            verify_v1_auth_token(&ring(KEY), V1_TS, &params, V1_TOKEN_2),
            Ok(CANONICAL)
        );
    }

    #[test]
    fn v1_verify_negative_and_rotation() {
        let params = [
            ("activity", "queryInstance"),
            ("instanceId", V1_INSTANCE),
            ("testFlag", "1"),
            ("timeStamp", V1_TS),
        ];
        assert_eq!(
            verify_v1_auth_token(&ring2("NewKey", KEY), V1_TS, &params, V1_TOKEN_1),
            Ok(Matched {
                previous_key: true,
                payload: PayloadForm::Canonical
            })
        );
        assert_eq!(
            verify_v1_auth_token(&ring("WrongKey"), V1_TS, &params, V1_TOKEN_1),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_v1_auth_token(&ring(KEY), "20230327065233981", &params, V1_TOKEN_1),
            Err(SignatureError::Mismatch)
        );
        let tampered = [("testFlag", "0"), params[0], params[1], params[3]];
        assert_eq!(
            verify_v1_auth_token(&ring(KEY), V1_TS, &tampered, V1_TOKEN_1),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_v1_auth_token(&ring(KEY), V1_TS, &params, ""),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_v1_auth_token(&ring(KEY), V1_TS, &params, "not*base64!"),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_v1_auth_token(&ring(KEY), V1_TS, &params, "AAAA"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn v1_token_with_plus_turned_into_space_still_verifies() {
        let params = [
            ("activity", "queryInstance"),
            ("instanceId", V1_INSTANCES),
            ("testFlag", "1"),
            ("timeStamp", V1_TS),
        ];
        let spaced = V1_TOKEN_2.replace('+', " ");
        assert_ne!(spaced, V1_TOKEN_2);
        assert_eq!(
            verify_v1_auth_token(&ring(KEY), V1_TS, &params, &spaced),
            Ok(CANONICAL)
        );
    }

    #[test]
    fn v1_sort_is_java_treemap_order_and_first_duplicate_wins() {
        let params = [
            ("b", "1"),
            ("authToken", "ignored"),
            ("a", "first"),
            ("B", "2"),
            ("a", "second"),
            ("\u{FF61}", "3"),
            ("\u{1F600}", "4"),
        ];
        assert_eq!(
            v1_signed_string(&params),
            "B=2&a=first&b=1&\u{1F600}=4&\u{FF61}=3"
        );
        assert_eq!(v1_signed_string(&[]), "");
    }

    // ---- §14.6 Body-Sign -----------------------------------------------------------------------

    const BODY: &[u8] = br#"{"resultCode":"000000","resultMsg":"success."}"#;
    const BODY_SIGN: &str =
        r#"sign_type="HMAC-SHA256", signature="lIbWpCdruz2b0FKa477a/WszWOjjUk9g6vb3wt8QNxg=""#;

    #[test]
    fn body_sign_vector() {
        assert_eq!(body_sign_header(KEY, BODY), BODY_SIGN);
        assert!(verify_body_sign(KEY, BODY, BODY_SIGN));
        assert!(verify_body_sign(
            KEY,
            BODY,
            r#"sign_type="HMAC-SHA256", signature= "lIbWpCdruz2b0FKa477a/WszWOjjUk9g6vb3wt8QNxg=""#
        ));
        assert!(verify_body_sign(
            KEY,
            BODY,
            r#"sign_type="HMAC-SHA256",signature="lIbWpCdruz2b0FKa477a/WszWOjjUk9g6vb3wt8QNxg=""#
        ));
    }

    #[test]
    fn body_sign_rejections() {
        assert!(!verify_body_sign("WrongKey", BODY, BODY_SIGN));
        assert!(!verify_body_sign(KEY, b"{}", BODY_SIGN));
        // Signed bytes are exact: trailing whitespace matters.
        let mut spaced = BODY.to_vec();
        spaced.push(b'\n');
        assert!(!verify_body_sign(KEY, &spaced, BODY_SIGN));
        for header in [
            "",
            "garbage",
            r#"signature="lIbWpCdruz2b0FKa477a/WszWOjjUk9g6vb3wt8QNxg=""#,
            r#"sign_type="HMAC-SHA1", signature="lIbWpCdruz2b0FKa477a/WszWOjjUk9g6vb3wt8QNxg=""#,
            r#"sign_type="HMAC-SHA256", signature=lIbWpCdruz2b0FKa477a/WszWOjjUk9g6vb3wt8QNxg="#,
            r#"sign_type="HMAC-SHA256", signature="!!!""#,
            r#"sign_type="HMAC-SHA256", signature="""#,
            r#"sign_type="HMAC-SHA256", signature="lIbWpCdruz2b0FKa477a/WszWOjjUk9g6vb3wt8QNxg=", signature="x""#,
            r#"sign_type="HMAC-SHA256", signature="", signature="lIbWpCdruz2b0FKa477a/WszWOjjUk9g6vb3wt8QNxg=""#,
            "sign_type=\"HMAC-SHA256\", signature=\"\u{e9}\"",
        ] {
            assert!(!verify_body_sign(KEY, BODY, header), "{header}");
        }
    }

    // ---- properties -----------------------------------------------------------------------------

    proptest! {
        /// The signer canonicalises its map; the verifier sees it serialised in any key order.
        #[test]
        fn signed_canonical_verifies_in_any_key_order(
            (entries, shuffled) in prop::collection::btree_map(".{0,12}", ".{0,24}", 0..10)
                .prop_flat_map(|map| {
                    let entries: Vec<(String, String)> = map.into_iter().collect();
                    (Just(entries.clone()), Just(entries).prop_shuffle())
                }),
            pretty in any::<bool>(),
        ) {
            let map: Map<String, Value> =
                entries.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            let body_map: Map<String, Value> =
                shuffled.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            let body = if pretty {
                serde_json::to_string_pretty(&body_map).unwrap()
            } else {
                Value::Object(body_map).to_string()
            };
            let payload = canonical_payload_of(&map);
            prop_assert_eq!(&canonical_payload(body.as_bytes()).unwrap(), &payload);
            let keys = ring(KEY);
            let sig = basic_signature(KEY, NONCE, TS, payload.as_bytes());
            prop_assert_eq!(verify_basic(&keys, NONCE, TS, &sig, body.as_bytes()), Ok(CANONICAL));
            let sig = kit_signature(KEY, NONCE, TS, payload.as_bytes());
            prop_assert_eq!(
                verify_kit(&keys, NONCE, TS, &sig.to_uppercase(), body.as_bytes()),
                Ok(CANONICAL)
            );
        }

        /// Arbitrary bytes never panic any verifier.
        #[test]
        fn verifiers_never_panic(body in prop::collection::vec(any::<u8>(), 0..64), sig in ".{0,70}") {
            let keys = ring(KEY);
            let _ = verify_basic(&keys, NONCE, TS, &sig, &body);
            let _ = verify_kit(&keys, NONCE, TS, &sig, &body);
            let _ = verify_v1_auth_token(&keys, TS, &[("a", "b")], &sig);
            let _ = verify_body_sign(KEY, &body, &sig);
        }
    }
}
