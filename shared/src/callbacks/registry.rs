//! The one list of callbacks this product serves. Each line names the callback's route (its
//! protocol [`Family`] and its name in that family: a V2 `activity`, a Kit path; a V1 or a License
//! activity later), the function that serves it on AWS, what that function needs, and how to build
//! it. Everything that routes reads this list:
//!
//! * the edge, to accept or refuse a call (by family and name) and to name it in its log line;
//! * [`InProcessDispatcher`] (the local host) and the Lambda functions, to build the handler;
//! * the Lambda dispatcher, for the environment variable naming each function;
//! * a test that holds `template.yaml` to it (a function per callback, its environment, the edge's
//!   permission to invoke it, no permission it does not need).

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use serde_json::Value;

use super::{
    Callback, all_org_sync::AllOrgSync, application_sync::ApplicationSync, auth_sync::AuthSync,
    change_instance_check::ChangeInstanceCheck, new_instance::NewInstance,
    order_notify::OrderNotify, query_instance::QueryInstance, refresh_instance::RefreshInstance,
    release_instance::ReleaseInstance, single_org_sync::SingleOrgSync, tenant_sync::TenantSync,
    update_instance_status::UpdateInstanceStatus, upgrade_instance::UpgradeInstance,
};
use crate::{
    clock::Clock,
    config::{CallbackSettings, Config, ConfigError, Keys},
    instance::InstanceStore,
    jobs::JobQueue,
    protocol::Reply,
    security::KeyUsed,
};

/// Every callback served: the V2 basic interfaces in the order of docs/protocol/callbacks.md §6,
/// then the Kit syncs in the order of §9.
pub static REGISTRY: [Registration; 13] = [
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
];

/// A family of KooGallery calls: how they are recognised, signed and answered (the edge holds one
/// authenticator per family). The V1 GET interface and the License callbacks join here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `POST {production URL}?signature=…&timestamp=…&nonce=…`, dispatched on `activity`
    /// (docs/protocol/callbacks.md §3.1, §6).
    V2Basic,
    /// `POST {production URL}/produceAPI/v2/{name}` with `x-sign`, `x-timestamp`, `x-nonce`
    /// headers and the Kit key (docs/protocol/callbacks.md §3.2, §9).
    Kit,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Self::V2Basic => "v2-basic",
            Self::Kit => "kit",
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
}

impl Route {
    /// The name KooGallery gives the call (the `activity`, or the Kit path).
    pub fn name(&self) -> &'static str {
        match self {
            Self::V2 { activity } => activity,
            Self::Kit { path } => path,
        }
    }

    /// The family the call belongs to.
    pub fn family(&self) -> Family {
        match self {
            Self::V2 { .. } => Family::V2Basic,
            Self::Kit { .. } => Family::Kit,
        }
    }
}

/// How a callback uses the instance store; each adapter grants exactly what it implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAccess {
    /// Reads one instance.
    ReadOne,
    /// Reads up to 100 instances at once, and their usage (queryInstance's `usageInfo`).
    ReadMany,
    /// Reads and changes existing instances.
    Update,
    /// Creates instances (conditionally, per order line) and changes them.
    Create,
    /// Records order notices (one per order line) and reads them; never an instance.
    Notices,
    /// Keeps the tenant directory (the Kit syncs); never an instance.
    Directory,
}

/// What a callback's function is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub store: StoreAccess,
    /// Enqueues jobs (provisioning, lifecycle notices).
    pub queue: bool,
    /// Reads the callback keys (credential encryption; on AWS the callback keys secret).
    pub keys: bool,
    /// Opens the passwords sealed at rest (`security::at_rest`; on AWS, KMS Decrypt).
    pub open_credentials: bool,
    /// Decrypts applicationSync's `clientSecret` with the deployment's RSA key and seals it at rest
    /// (on AWS: the Kit RSA key secret, and KMS GenerateDataKey).
    pub client_secret: bool,
}

impl Needs {
    pub const DIRECTORY_SYNC: Self = Self {
        store: StoreAccess::Directory,
        queue: true,
        keys: false,
        open_credentials: false,
        client_secret: false,
    };
    pub const DIRECTORY_SYNC_WITH_CLIENT_SECRET: Self = Self {
        client_secret: true,
        ..Self::DIRECTORY_SYNC
    };
    pub const CREATE_AND_QUEUE: Self = Self {
        store: StoreAccess::Create,
        queue: true,
        keys: false,
        open_credentials: false,
        client_secret: false,
    };
    pub const UPDATE_AND_QUEUE: Self = Self {
        store: StoreAccess::Update,
        queue: true,
        keys: false,
        open_credentials: false,
        client_secret: false,
    };
    pub const READ_MANY_WITH_KEYS: Self = Self {
        store: StoreAccess::ReadMany,
        queue: false,
        keys: true,
        open_credentials: true,
        client_secret: false,
    };
    pub const RECORD_NOTICE_AND_QUEUE: Self = Self {
        store: StoreAccess::Notices,
        queue: true,
        keys: false,
        open_credentials: false,
        client_secret: false,
    };
    pub const READ_ONE: Self = Self {
        store: StoreAccess::ReadOne,
        queue: false,
        keys: false,
        open_credentials: false,
        client_secret: false,
    };
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

/// A callback behind the registry: a verified body in, the reply out.
#[async_trait]
pub trait Handler: Send + Sync {
    /// `key` is the key that verified the request (docs/protocol/decisions.md §13).
    async fn call(&self, body: &Value, key: KeyUsed) -> Reply;
}

struct Served<C> {
    name: &'static str,
    callback: C,
}

#[async_trait]
impl<C: Callback> Handler for Served<C> {
    async fn call(&self, body: &Value, key: KeyUsed) -> Reply {
        super::serve(self.name, &self.callback, body, key).await
    }
}

type Build = fn(&'static str, &Resources) -> Result<Box<dyn Handler>, ConfigError>;

fn build<C: Callback>(
    name: &'static str,
    resources: &Resources,
) -> Result<Box<dyn Handler>, ConfigError> {
    let callback = C::from_resources(resources)?;
    Ok(Box::new(Served { name, callback }))
}

/// What a process has built for its callbacks. Each callback takes only what it uses; a function on
/// AWS builds only what its [`Needs`] say.
#[derive(Clone)]
pub struct Resources {
    pub store: Arc<dyn InstanceStore>,
    pub queue: Option<Arc<dyn JobQueue>>,
    pub clock: Arc<dyn Clock>,
    pub keys: Option<Keys>,
    pub settings: CallbackSettings,
    /// Opens the passwords kept sealed at rest (queryInstance).
    pub sealer: Option<Arc<dyn crate::security::at_rest::CredentialSealer>>,
    /// Order notices (orderNotify).
    pub order_notices: Option<Arc<dyn crate::order::notice::OrderNoticeStore>>,
    /// newInstance's single write, where the backend has one (the embedded store); otherwise
    /// [`Self::intake`] composes `store` and `queue`.
    pub intake: Option<Arc<dyn crate::instance::OrderLineIntake>>,
    /// Usage windows (queryInstance's `usageInfo`), where the backend keeps them.
    pub usage: Option<Arc<dyn crate::metering::UsageStore>>,
    /// The tenant directory (the Kit syncs).
    pub directory: Option<Arc<dyn crate::directory::TenantDirectory>>,
    /// The RSA key applicationSync's `clientSecret` is encrypted for
    /// (docs/protocol/decisions.md §14).
    pub client_secret_key: Option<Arc<crate::security::kit_client_secret::ClientSecretKey>>,
}

impl Resources {
    /// Everything a process holding the whole [`Config`] (the local host, tests, benchmarks) hands
    /// its callbacks. A Lambda function builds only what its [`Needs`] name instead.
    pub fn from_config(
        store: Arc<dyn InstanceStore>,
        queue: Arc<dyn JobQueue>,
        clock: Arc<dyn Clock>,
        config: &Config,
    ) -> Self {
        Self {
            store,
            queue: Some(queue),
            clock,
            keys: Some(config.secrets.keys.clone()),
            settings: config.settings.callbacks.clone(),
            sealer: None,
            order_notices: None,
            intake: None,
            usage: None,
            directory: None,
            client_secret_key: None,
        }
    }

    /// With the tenant directory the Kit syncs keep.
    pub fn with_directory(mut self, directory: Arc<dyn crate::directory::TenantDirectory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// With the RSA key that decrypts applicationSync's `clientSecret`.
    pub fn with_client_secret_key(
        mut self,
        key: Arc<crate::security::kit_client_secret::ClientSecretKey>,
    ) -> Self {
        self.client_secret_key = Some(key);
        self
    }

    pub fn directory(&self) -> Result<Arc<dyn crate::directory::TenantDirectory>, ConfigError> {
        self.directory.clone().ok_or_else(|| {
            ConfigError::invalid(
                "KOOGALLERY_TABLE",
                "this callback keeps the tenant directory",
            )
        })
    }

    pub fn client_secret_key(
        &self,
    ) -> Result<Arc<crate::security::kit_client_secret::ClientSecretKey>, ConfigError> {
        self.client_secret_key.clone().ok_or_else(|| {
            ConfigError::invalid(
                crate::config::catalog::KIT_RSA_KEY.name,
                "applicationSync decrypts clientSecret with the Kit RSA key",
            )
        })
    }

    pub fn sealer(
        &self,
    ) -> Result<Arc<dyn crate::security::at_rest::CredentialSealer>, ConfigError> {
        self.sealer.clone().ok_or_else(|| {
            ConfigError::invalid(
                "KOOGALLERY_CREDENTIALS_KEY_ID",
                "this callback seals or opens credentials at rest",
            )
        })
    }

    /// With the usage store queryInstance reports `usageInfo` from.
    pub fn with_usage(mut self, usage: Arc<dyn crate::metering::UsageStore>) -> Self {
        self.usage = Some(usage);
        self
    }

    /// With a store that records an instance and queues its job in one write.
    pub fn with_intake(mut self, intake: Arc<dyn crate::instance::OrderLineIntake>) -> Self {
        self.intake = Some(intake);
        self
    }

    /// newInstance's write: the configured intake, or the create then the enqueue.
    pub fn intake(&self) -> Result<Arc<dyn crate::instance::OrderLineIntake>, ConfigError> {
        match &self.intake {
            Some(i) => Ok(i.clone()),
            None => Ok(Arc::new(crate::instance::StoreThenQueue {
                store: self.store.clone(),
                queue: self.queue()?,
            })),
        }
    }

    /// With the store of order notices.
    pub fn with_order_notices(
        mut self,
        notices: Arc<dyn crate::order::notice::OrderNoticeStore>,
    ) -> Self {
        self.order_notices = Some(notices);
        self
    }

    pub fn order_notices(
        &self,
    ) -> Result<Arc<dyn crate::order::notice::OrderNoticeStore>, ConfigError> {
        self.order_notices.clone().ok_or_else(|| {
            ConfigError::invalid("KOOGALLERY_TABLE", "this callback records order notices")
        })
    }

    /// With the sealer that opens stored passwords.
    pub fn with_sealer(
        mut self,
        sealer: Arc<dyn crate::security::at_rest::CredentialSealer>,
    ) -> Self {
        self.sealer = Some(sealer);
        self
    }

    pub fn queue(&self) -> Result<Arc<dyn JobQueue>, ConfigError> {
        self.queue.clone().ok_or_else(|| {
            ConfigError::invalid(
                "KOOGALLERY_QUEUE_URL",
                "this callback enqueues jobs: set the queue",
            )
        })
    }

    pub fn keys(&self) -> Result<&Keys, ConfigError> {
        self.keys.as_ref().ok_or_else(|| {
            ConfigError::invalid(
                crate::config::SecretPart::CallbackKeys.env_var(),
                "this callback needs the callback keys secret",
            )
        })
    }
}

/// Hands a verified request to the callback that serves it: an in-process call locally, a
/// synchronous invocation of that callback's own function on AWS.
#[async_trait]
pub trait Dispatcher: Send + Sync {
    /// `key` is the key that verified the request: the callback answers with it
    /// (docs/protocol/decisions.md §13).
    async fn dispatch(&self, callback: &'static Registration, body: &Value, key: KeyUsed) -> Reply;
}

/// The payload the edge invokes a callback's function with on AWS: the verified body as it came,
/// or, for a request verified with the previous key, `{"verifiedWith":"previous","body":…}` so the
/// callback answers with that key (docs/protocol/decisions.md §13). The bare form is what earlier
/// releases sent, so a function and an edge of different releases understand each other during a
/// deployment. It borrows the body: serialising it sends the request without copying it first.
pub fn invocation(body: &Value, key: KeyUsed) -> Invocation<'_> {
    match key {
        KeyUsed::Current => Invocation::Bare(body),
        KeyUsed::Previous => Invocation::VerifiedWithPrevious {
            verified_with: "previous",
            body,
        },
    }
}

/// An invocation payload, see [`invocation`].
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum Invocation<'a> {
    Bare(&'a Value),
    VerifiedWithPrevious {
        #[serde(rename = "verifiedWith")]
        verified_with: &'static str,
        body: &'a Value,
    },
}

/// The verified body and the key that verified it, from an invocation payload of either form.
pub fn from_invocation(payload: Value) -> (Value, KeyUsed) {
    match payload {
        Value::Object(mut m)
            if m.get("verifiedWith").and_then(Value::as_str) == Some("previous")
                && m.get("body").is_some_and(Value::is_object) =>
        {
            let body = m.remove("body").unwrap_or(Value::Null);
            (body, KeyUsed::Previous)
        }
        other => (other, KeyUsed::Current),
    }
}

/// Every registered callback in this process (the local host, tests, benchmarks).
pub struct InProcessDispatcher {
    handlers: HashMap<&'static str, Box<dyn Handler>>,
}

impl InProcessDispatcher {
    pub fn build(resources: &Resources) -> Result<Self, ConfigError> {
        let handlers = REGISTRY
            .iter()
            .map(|r| Ok((r.function, r.handler(resources)?)))
            .collect::<Result<_, ConfigError>>()?;
        Ok(Self { handlers })
    }
}

#[async_trait]
impl Dispatcher for InProcessDispatcher {
    async fn dispatch(&self, callback: &'static Registration, body: &Value, key: KeyUsed) -> Reply {
        match self.handlers.get(callback.function) {
            Some(h) => h.call(body, key).await,
            None => Reply::new(
                crate::ResultCode::InternalError,
                "temporary internal error; please retry",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::v2_basic::Activity;

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
