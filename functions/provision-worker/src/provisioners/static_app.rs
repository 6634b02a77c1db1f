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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn static_provisioner_fills_templates_and_never_hands_out_a_credential() {
        let p = StaticProvisioner {
            front_end_url: "https://app.example.com/t/{instanceId}".into(),
            admin_url: Some("https://admin.example.com/{instanceId}".into()),
            memo: "Sign up at app.example.com/t/{instanceId}".into(),
        };
        let req = ProvisionRequest {
            instance_id: "abc".into(),
            order_id: "o".into(),
            order_line_id: "l".into(),
            order: Default::default(),
        };
        let a = p.provision(&req).await.unwrap();
        assert_eq!(a.front_end_url, "https://app.example.com/t/abc");
        assert_eq!(
            a.admin_url.as_deref(),
            Some("https://admin.example.com/abc")
        );
        assert_eq!(a.memo.as_deref(), Some("Sign up at app.example.com/t/abc"));
        // A password made up here is one the vendor's application would never accept.
        assert!(a.user_name.is_none() && a.password.is_none(), "{a:?}");
    }
}
