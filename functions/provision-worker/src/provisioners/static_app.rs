//! The static provisioner: the same application for every buyer. The buyer gets the URLs (from
//! templates with `{instanceId}`) and a memo saying how to sign up, never an account or password:
//! a credential made up here is one the vendor's application would not accept.

use async_trait::async_trait;
use koogallery::{
    instance::AccessInfo,
    provisioning::{LifecycleNotice, ProvisionError, ProvisionRequest, Provisioner},
};

pub struct StaticProvisioner {
    pub front_end_url: String,
    pub admin_url: Option<String>,
    pub memo: String,
}

#[async_trait]
impl Provisioner for StaticProvisioner {
    async fn provision(&self, request: &ProvisionRequest) -> Result<AccessInfo, ProvisionError> {
        let fill = |t: &str| t.replace("{instanceId}", &request.instance_id);
        Ok(AccessInfo {
            front_end_url: fill(&self.front_end_url),
            admin_url: self.admin_url.as_deref().map(fill),
            user_name: None,
            password: None,
            memo: Some(fill(&self.memo)),
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
