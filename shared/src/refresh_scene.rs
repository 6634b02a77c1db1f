//! The `refreshInstance` scene (docs/protocol/callbacks.md §6.3): one type for the wire, the
//! domain's events and the stored records, spelled as KooGallery spells it.

use serde::{Deserialize, Deserializer};

/// Why KooGallery changed an instance's expiry. A scene this release does not know is kept by name:
/// it still sets the expiry (docs/protocol/decisions.md §11), since refusing it could get a renewed
/// customer released.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RefreshScene {
    TrialToFormal,
    Renewal,
    UnsubscribeRenewalPeriod,
    RenewalChange,
    Other(String),
}

impl RefreshScene {
    /// KooGallery's name of the scene, as in requests, idempotency keys and records.
    pub fn as_str(&self) -> &str {
        match self {
            Self::TrialToFormal => "TRIAL_TO_FORMAL",
            Self::Renewal => "RENEWAL",
            Self::UnsubscribeRenewalPeriod => "UNSUBSCRIBE_RENEWAL_PERIOD",
            Self::RenewalChange => "RENEWAL_CHANGE",
            Self::Other(name) => name,
        }
    }

    /// The scene of a name, known or not (surrounding blanks ignored: be liberal in what is
    /// accepted).
    pub fn from_name(name: &str) -> Self {
        match name.trim() {
            "TRIAL_TO_FORMAL" => Self::TrialToFormal,
            "RENEWAL" => Self::Renewal,
            "UNSUBSCRIBE_RENEWAL_PERIOD" => Self::UnsubscribeRenewalPeriod,
            "RENEWAL_CHANGE" => Self::RenewalChange,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl<'de> Deserialize<'de> for RefreshScene {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_name(&String::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_scene_reads_back_from_its_name_and_an_unknown_one_keeps_it() {
        for scene in [
            RefreshScene::TrialToFormal,
            RefreshScene::Renewal,
            RefreshScene::UnsubscribeRenewalPeriod,
            RefreshScene::RenewalChange,
        ] {
            assert_eq!(RefreshScene::from_name(scene.as_str()), scene);
        }
        let other = RefreshScene::from_name(" SOMETHING_NEW ");
        assert_eq!(other, RefreshScene::Other("SOMETHING_NEW".into()));
        let wire: RefreshScene = serde_json::from_str("\"RENEWAL\"").unwrap();
        assert_eq!(wire, RefreshScene::Renewal);
    }
}
