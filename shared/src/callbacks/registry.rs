//! The one list of callbacks this product serves. Each line names the callback's route (its
//! protocol [`Family`] and its name in that family: a V2 `activity`, a Kit path, a License
//! `activity`, a V1-only activity), the function that serves it on AWS, what that function needs, and how to build
//! it. Everything that routes reads this list:
//!
//! * the edge, to accept or refuse a call (by family and name) and to name it in its log line;
//! * [`InProcessDispatcher`] (the local host) and the Lambda functions, to build the handler;
//! * the Lambda dispatcher, for the environment variable naming each function;
//! * a test that holds `template.yaml` to it (a function per callback, its environment, the edge's
//!   permission to invoke it, no permission it does not need).

mod dispatch;
mod needs;
mod resources;

pub use dispatch::{
    Dispatcher, Handler, InProcessDispatcher, Invocation, from_invocation, invocation,
};
pub use needs::{Needs, StoreAccess};
pub use resources::Resources;

use super::{
    all_org_sync::AllOrgSync, application_sync::ApplicationSync, auth_sync::AuthSync,
    change_instance_check::ChangeInstanceCheck, get_license::GetLicense, new_instance::NewInstance,
    order_notify::OrderNotify, query_instance::QueryInstance, refresh_instance::RefreshInstance,
    refresh_license_code::RefreshLicenseCode, release_instance::ReleaseInstance,
    release_license_code::ReleaseLicenseCode, single_org_sync::SingleOrgSync,
    tenant_sync::TenantSync, update_instance_status::UpdateInstanceStatus,
    update_license_code_status::UpdateLicenseCodeStatus, upgrade_instance::UpgradeInstance,
};
use crate::config::ConfigError;
use dispatch::{Build, build};

/// Every callback served: the V2 basic interfaces in the order of docs/protocol/callbacks.md §6,
/// then the Kit syncs in the order of §9, then the License callbacks (docs/protocol/openapi.md
/// §6.1–§6.3) and the legacy `getLicense` (§6.4).
pub static REGISTRY: [Registration; 17] = [
    Registration::v2(
        "newInstance",
        "new-instance",
        Needs::CREATE_AND_QUEUE,
        build::<NewInstance>,
    ),
    Registration::v2(
        "queryInstance",
        "query-instance",
        Needs::READ_MANY_WITH_KEYS,
        build::<QueryInstance>,
    ),
    Registration::v2(
        "refreshInstance",
        "refresh-instance",
        Needs::UPDATE_AND_QUEUE,
        build::<RefreshInstance>,
    ),
    Registration::v2(
        "updateInstanceStatus",
        "update-instance-status",
        Needs::UPDATE_AND_QUEUE,
        build::<UpdateInstanceStatus>,
    ),
    Registration::v2(
        "releaseInstance",
        "release-instance",
        Needs::UPDATE_AND_QUEUE,
        build::<ReleaseInstance>,
    ),
    Registration::v2(
        "upgradeInstance",
        "upgrade-instance",
        Needs::UPDATE_AND_QUEUE,
        build::<UpgradeInstance>,
    ),
    Registration::v2(
        "changeInstanceCheck",
        "change-instance-check",
        Needs::READ_ONE,
        build::<ChangeInstanceCheck>,
    ),
    Registration::v2(
        "orderNotify",
        "order-notify",
        Needs::RECORD_NOTICE_AND_QUEUE,
        build::<OrderNotify>,
    ),
    Registration::kit(
        "tenantSync",
        "tenant-sync",
        Needs::DIRECTORY_SYNC,
        build::<TenantSync>,
    ),
    Registration::kit(
        "applicationSync",
        "application-sync",
        Needs::DIRECTORY_SYNC_WITH_CLIENT_SECRET,
        build::<ApplicationSync>,
    ),
    Registration::kit(
        "authSync",
        "auth-sync",
        Needs::DIRECTORY_SYNC,
        build::<AuthSync>,
    ),
    Registration::kit(
        "singleOrgSync",
        "single-org-sync",
        Needs::DIRECTORY_SYNC,
        build::<SingleOrgSync>,
    ),
    Registration::kit(
        "allOrgSync",
        "all-org-sync",
        Needs::DIRECTORY_SYNC,
        build::<AllOrgSync>,
    ),
    Registration::license(
        "refreshLicenseCode",
        "refresh-license-code",
        Needs::LICENSE_AND_QUEUE,
        build::<RefreshLicenseCode>,
    ),
    Registration::license(
        "updateLicenseCodeStatus",
        "update-license-code-status",
        Needs::LICENSE_AND_QUEUE,
        build::<UpdateLicenseCodeStatus>,
    ),
    Registration::license(
        "releaseLicenseCode",
        "release-license-code",
        Needs::LICENSE_AND_QUEUE,
        build::<ReleaseLicenseCode>,
    ),
    Registration {
        route: Route::V1 {
            activity: "getLicense",
        },
        function: "get-license",
        needs: Needs::LICENSE_AND_QUEUE,
        build: build::<GetLicense>,
    },
];

/// A family of KooGallery calls: how they are recognised, signed and answered (the edge holds one
/// authenticator per family). The License callbacks are signed like the V2 basic interfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `POST {production URL}?signature=…&timestamp=…&nonce=…`, dispatched on `activity`
    /// (docs/protocol/callbacks.md §3.1, §6).
    V2Basic,
    /// `POST {production URL}/produceAPI/v2/{name}` with `x-sign`, `x-timestamp`, `x-nonce`
    /// headers and the Kit key (docs/protocol/callbacks.md §3.2, §9).
    Kit,
    /// `GET {production URL}?activity=…&timeStamp=…&authToken=…`, and the V1 Kit paths
    /// `POST {production URL}/produceAPI/{name}` with an `authToken` header
    /// (docs/protocol/callbacks.md §3.6, §11; docs/protocol/decisions.md §20). Each V1 activity is
    /// translated into the body of the callback that serves its concept (`protocol::v1`).
    V1,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Self::V2Basic => "v2-basic",
            Self::Kit => "kit",
            Self::V1 => "v1",
        }
    }
}

/// Where KooGallery sends a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `POST /produce` with this `activity` in the body (docs/protocol/callbacks.md §6), V2 basic
    /// signature.
    V2 { activity: &'static str },
    /// `POST /produce/produceAPI/v2/{path}` (docs/protocol/callbacks.md §9), Kit `x-sign`.
    Kit { path: &'static str },
    /// `POST /produce` with a License 2.0 `activity` (docs/protocol/openapi.md §6), signed like the
    /// V2 basic interfaces (docs/protocol/decisions.md §21).
    License { activity: &'static str },
    /// A V1 GET activity no V2 callback serves (the legacy `getLicense`,
    /// docs/protocol/openapi.md §6.4).
    V1 { activity: &'static str },
}

impl Route {
    /// The name KooGallery gives the call (the `activity`, or the Kit path).
    pub fn name(&self) -> &'static str {
        match self {
            Self::V2 { activity } | Self::License { activity } | Self::V1 { activity } => activity,
            Self::Kit { path } => path,
        }
    }

    /// The family the call belongs to.
    pub fn family(&self) -> Family {
        match self {
            Self::V2 { .. } | Self::License { .. } => Family::V2Basic,
            Self::Kit { .. } => Family::Kit,
            Self::V1 { .. } => Family::V1,
        }
    }
}

/// One line of the registry.
pub struct Registration {
    pub route: Route,
    /// The callback's function: `functions/<function>`, Lambda `<Pascal>Function`, and the edge's
    /// `KOOGALLERY_FN_<FUNCTION>` names it.
    pub function: &'static str,
    pub needs: Needs,
    build: Build,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("route", &self.route)
            .field("function", &self.function)
            .field("needs", &self.needs)
            .finish_non_exhaustive()
    }
}

impl Registration {
    const fn v2(
        activity: &'static str,
        function: &'static str,
        needs: Needs,
        build: Build,
    ) -> Self {
        Self {
            route: Route::V2 { activity },
            function,
            needs,
            build,
        }
    }

    const fn license(
        activity: &'static str,
        function: &'static str,
        needs: Needs,
        build: Build,
    ) -> Self {
        Self {
            route: Route::License { activity },
            function,
            needs,
            build,
        }
    }

    const fn kit(path: &'static str, function: &'static str, needs: Needs, build: Build) -> Self {
        Self {
            route: Route::Kit { path },
            function,
            needs,
            build,
        }
    }

    /// Builds this callback's handler from what the process has.
    pub fn handler(&'static self, resources: &Resources) -> Result<Box<dyn Handler>, ConfigError> {
        (self.build)(self.route.name(), resources)
    }

    /// The environment variable that gives the edge this callback's function name on AWS.
    pub fn function_env_var(&self) -> String {
        format!(
            "KOOGALLERY_FN_{}",
            self.function.to_ascii_uppercase().replace('-', "_")
        )
    }

    /// The template's logical-ID prefix: `new-instance` → `NewInstance` (`NewInstanceFunction`, …).
    pub fn resource_prefix(&self) -> String {
        self.function
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect()
    }
}

/// The registered callback for a V2 `activity`.
pub fn by_activity(activity: &str) -> Option<&'static Registration> {
    by_route(Family::V2Basic, activity)
}

/// The registered callback of `family` named `name` (an `activity`, a Kit path).
pub fn by_route(family: Family, name: &str) -> Option<&'static Registration> {
    REGISTRY
        .iter()
        .find(|r| r.route.family() == family && r.route.name() == name)
}

/// The registered callback a function serves.
pub fn by_function(function: &str) -> Option<&'static Registration> {
    REGISTRY.iter().find(|r| r.function == function)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::v2_basic::Activity;
    use crate::security::KeyUsed;

    #[test]
    fn invocations_carry_the_key_and_read_back_in_either_form() {
        let body = serde_json::json!({"activity":"queryInstance","instanceId":"i"});
        let sent = |key| serde_json::to_value(invocation(&body, key)).unwrap();
        assert_eq!(sent(KeyUsed::Current), body, "the bare form, as before");
        assert_eq!(
            sent(KeyUsed::Previous),
            serde_json::json!({ "verifiedWith": "previous", "body": body })
        );
        for key in [KeyUsed::Current, KeyUsed::Previous] {
            assert_eq!(from_invocation(sent(key)), (body.clone(), key));
        }
    }

    #[test]
    fn every_route_function_and_env_var_is_distinct_and_routes_are_real_activities() {
        let mut seen = std::collections::HashSet::new();
        for r in &REGISTRY {
            assert!(seen.insert(r.route.name()), "{r:?}");
            assert!(seen.insert(r.function), "{r:?}");
            match r.route {
                Route::V2 { activity } => assert!(
                    Activity::parse(activity).is_some(),
                    "{activity} is not a V2 activity"
                ),
                Route::Kit { path } => assert!(
                    crate::protocol::kit::KitInterface::parse(path).is_some(),
                    "{path} is not a Kit interface"
                ),
                Route::License { activity } => assert!(
                    crate::protocol::license::LicenseActivity::parse(activity).is_some(),
                    "{activity} is not a License activity"
                ),
                Route::V1 { activity } => assert!(
                    crate::protocol::v1::V1Activity::parse(activity).is_some(),
                    "{activity} is not a V1 activity"
                ),
            }
            assert_eq!(
                by_route(r.route.family(), r.route.name()).map(|x| x.function),
                Some(r.function)
            );
            assert_eq!(
                by_function(r.function).map(|x| x.function),
                Some(r.function)
            );
        }
        assert_eq!(REGISTRY[0].function_env_var(), "KOOGALLERY_FN_NEW_INSTANCE");
        assert_eq!(REGISTRY[3].resource_prefix(), "UpdateInstanceStatus");
        assert_eq!(
            by_activity("orderNotify").map(|r| r.function),
            Some("order-notify")
        );
        assert!(by_activity("expireInstance").is_none(), "a V1 activity");
        assert!(
            by_activity("tenantSync").is_none(),
            "a Kit name is no activity"
        );
        assert_eq!(
            by_route(Family::Kit, "authSync").map(|r| r.function),
            Some("auth-sync")
        );
        assert!(by_route(Family::Kit, "queryInstance").is_none());
    }
}
