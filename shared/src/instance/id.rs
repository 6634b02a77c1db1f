//! The instance's ID (docs/protocol/callbacks.md §6.1: the `instanceId` KooGallery learns from
//! newInstance and names in every later call): a type of its own, so an order ID, an order-line ID
//! or a tenant ID cannot be passed where an instance is meant.

use std::{borrow::Borrow, fmt, ops::Deref};

/// An instance's ID as stored (a debug record's carries its keyspace, see `callbacks::debug`).
/// It reads as the `&str` it holds; the stored records keep it as a plain string.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct InstanceId(String);

impl InstanceId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl Deref for InstanceId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for InstanceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for InstanceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for InstanceId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl From<&str> for InstanceId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl From<InstanceId> for String {
    fn from(id: InstanceId) -> Self {
        id.0
    }
}

impl From<&InstanceId> for String {
    fn from(id: &InstanceId) -> Self {
        id.0.clone()
    }
}

impl PartialEq<str> for InstanceId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for InstanceId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for InstanceId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Jobs and records hold the ID as the plain string they always held: the type changes no
    /// stored or queued form.
    #[test]
    fn it_is_the_plain_string_on_the_wire_and_on_disk() {
        let id = InstanceId::from("87b94795-0603");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"87b94795-0603\"");
        let back: InstanceId = serde_json::from_str("\"87b94795-0603\"").unwrap();
        assert_eq!(back, id);
        assert_eq!(id, "87b94795-0603");
        assert_eq!(id.to_string(), "87b94795-0603");
    }
}
