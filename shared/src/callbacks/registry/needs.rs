//! What a callback's function is given (docs/protocol/callbacks.md §6, §9): its use of the
//! instance store, the queue, the callback keys, the sealed credentials and the Kit RSA key. Each
//! adapter grants exactly what these imply, and no more.

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
    /// Keeps license codes (the License callbacks); never an instance.
    Licenses,
}

impl StoreAccess {
    /// True when the callback may change what is stored (and so must never be cut off between
    /// two of its writes); false for the reads alone (queryInstance, changeInstanceCheck).
    pub const fn writes(self) -> bool {
        !matches!(self, Self::ReadOne | Self::ReadMany)
    }
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
    pub const LICENSE_AND_QUEUE: Self = Self {
        store: StoreAccess::Licenses,
        queue: true,
        keys: false,
        open_credentials: false,
        client_secret: false,
    };
    /// newInstance: a V1 answer carries the ready instance's appInfo, credentials encrypted with
    /// the V1 key (docs/protocol/callbacks.md §11), so it reads the keys and opens passwords.
    pub const CREATE_AND_QUEUE: Self = Self {
        store: StoreAccess::Create,
        queue: true,
        keys: true,
        open_credentials: true,
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
