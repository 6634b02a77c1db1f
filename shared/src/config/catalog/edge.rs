//! The edge's settings (docs/protocol/callbacks.md §3, §5): the timestamp window, the body limits
//! of each family, and the deadline of a dispatch.

use super::{Setting, operator};

pub const TIMESTAMP_WINDOW_SECS: Setting = operator(
    "KOOGALLERY_TIMESTAMP_WINDOW_SECS",
    Some("60"),
    "accepted clock skew of a request timestamp, both ways (1 to 3600)",
);
pub const MAX_BODY_BYTES: Setting = operator(
    "KOOGALLERY_MAX_BODY_BYTES",
    Some("262144"),
    "largest basic-interface body; larger ones get 000002 (at least 1024)",
);
pub const KIT_MAX_BODY_BYTES: Setting = operator(
    "KOOGALLERY_KIT_MAX_BODY_BYTES",
    Some("4194304"),
    "largest Kit sync body (2 MiB to 5 MiB)",
);
pub const DISPATCH_DEADLINE_MS: Setting = operator(
    "KOOGALLERY_DISPATCH_DEADLINE_MS",
    Some("4000"),
    "how long the edge waits for a callback before answering a signed 000005 (100 to 4500)",
);
