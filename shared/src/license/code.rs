//! The license code (授权码, docs/protocol/openapi.md §5: `license`, at most 64 characters).

use serde::{Deserialize, Serialize};

/// Longest license code KooGallery sends (docs/protocol/openapi.md §5.1, §6).
pub const MAX_CODE_LEN: usize = 64;

/// A license code: trimmed, non-empty, at most 64 characters, printable ASCII without spaces (what
/// KooGallery issues, `PL…`, and what this service issues for legacy products). A code is a bearer
/// secret of the buyer's: logs show [`LicenseCode::masked`], never the whole code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LicenseCode(String);

impl LicenseCode {
    /// # Errors
    /// What is wrong with the code, in words for a `resultMsg` or an HTTP answer.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("license is missing".into());
        }
        if s.len() > MAX_CODE_LEN {
            return Err(format!("license is longer than {MAX_CODE_LEN} characters"));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("license may hold only printable ASCII without spaces".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first four characters and the length, for logs.
    pub fn masked(&self) -> String {
        let head: String = self.0.chars().take(4).collect();
        format!("{head}…({})", self.0.len())
    }
}

impl TryFrom<String> for LicenseCode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<LicenseCode> for String {
    fn from(c: LicenseCode) -> Self {
        c.0
    }
}

impl std::fmt::Display for LicenseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
