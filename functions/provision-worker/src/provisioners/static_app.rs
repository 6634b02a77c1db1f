//! The static provisioner: the same application for every buyer; an admin user with a strong
//! generated password and URLs from templates with `{instanceId}`.

use async_trait::async_trait;
use koogallery::{
    instance::AccessInfo,
    provisioning::{LifecycleNotice, ProvisionError, ProvisionRequest, Provisioner},
};
use rand::{Rng, seq::SliceRandom};

pub struct StaticProvisioner {
    pub front_end_url: String,
    pub admin_url: Option<String>,
    pub admin_user: String,
}

/// Length of generated admin passwords: strong, and short enough that an AES-encrypted value still
/// fits KooGallery's 128-character field (plaintext ≤ 79 bytes, callbacks §3.4).
pub const PASSWORD_LEN: usize = 20;

/// A password with upper- and lower-case letters, digits and symbols, from the OS-seeded CSPRNG.
/// Look-alike characters are left out because buyers type it from the console.
pub fn generate_password() -> String {
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const DIGIT: &[u8] = b"23456789";
    const SYMBOL: &[u8] = b"!@#%^&*-_=+?";
    let mut rng = rand::rng();
    let all: Vec<u8> = [UPPER, LOWER, DIGIT, SYMBOL].concat();
    let mut pw: Vec<u8> = [UPPER, LOWER, DIGIT, SYMBOL]
        .iter()
        .map(|class| class[rng.random_range(0..class.len())])
        .collect();
    while pw.len() < PASSWORD_LEN {
        pw.push(all[rng.random_range(0..all.len())]);
    }
    pw.shuffle(&mut rng);
    pw.into_iter().map(char::from).collect()
}

#[async_trait]
impl Provisioner for StaticProvisioner {
    async fn provision(&self, request: &ProvisionRequest) -> Result<AccessInfo, ProvisionError> {
        let fill = |t: &str| t.replace("{instanceId}", &request.instance_id);
        Ok(AccessInfo {
            front_end_url: fill(&self.front_end_url),
            admin_url: self.admin_url.as_deref().map(fill),
            user_name: Some(self.admin_user.clone()),
            password: Some(generate_password().into()),
            memo: None,
        })
    }

    async fn notify(&self, notice: &LifecycleNotice) -> Result<(), ProvisionError> {
        tracing::info!(
            instance_id = %notice.instance.instance_id,
            event = notice.event.kind.name(),
            state = %notice.instance.state,
            "lifecycle change (static provisioner: nothing to do)"
        );
        Ok(())
    }
}
