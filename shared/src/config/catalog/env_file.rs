//! The server's environment file (`/etc/koogallery/koogallery.env`, systemd's `EnvironmentFile=`):
//! every setting an operator sets and every secret, commented out with its default and its help
//! line, grouped by family, under the three values a server needs. `make dist` ships it as
//! `local/dist/koogallery.env`, which a test holds equal to [`env_template`].

use super::*;

/// Settings of one concern, under one heading of the file.
#[derive(Debug)]
pub struct Family {
    pub title: &'static str,
    pub settings: &'static [&'static Setting],
}

/// The values the file sets (not commented out): what a server needs that `make run`'s defaults
/// are not (reachable from outside, data under systemd's `StateDirectory=`, JSON logs for the
/// journal and a log shipper).
pub const SERVER_VALUES: &[(&Setting, &str)] = &[
    (&LISTEN, "0.0.0.0:8080"),
    (&DATA_DIR, "/var/lib/koogallery"),
    (&LOG_FORMAT, "json"),
];

/// Every [`Origin::Operator`] and [`Origin::Secret`] setting of [`ALL`], each in one family (a
/// unit test holds the two lists together: a new setting needs its place here).
pub const FAMILIES: &[Family] = &[
    Family {
        title: "The host: where it listens, where its data lives, which backend",
        settings: &[&LISTEN, &PORT, &DATA_DIR, &BACKEND, &TABLE, &QUEUE],
    },
    Family {
        title: "The server: its own TLS (without a load balancer), connections, stopping, the admin API",
        settings: &[
            &TLS_CERT,
            &TLS_KEY,
            &MAX_CONNECTIONS,
            &SHUTDOWN_GRACE_SECS,
            &ADMIN_API_URL,
        ],
    },
    Family {
        title: "Logs, metrics and the exchange log",
        settings: &[
            &LOG_FORMAT,
            &RUST_LOG,
            &METRICS_NAMESPACE,
            &EXCHANGE_LOG_DAYS,
        ],
    },
    Family {
        title: "Keys and passwords (secrets: without ACCESS_KEY and KIT_KEY the host runs on development keys)",
        settings: &[
            &ACCESS_KEY,
            &ACCESS_KEY_PREVIOUS,
            &KIT_KEY,
            &KIT_KEY_PREVIOUS,
            &V1_KEY,
            &V1_KEY_PREVIOUS,
            &KIT_RSA_KEY,
            &CREDENTIALS_KEY,
            &WEBHOOK_SECRET,
            &AK,
            &SK,
            &USAGE_KEY,
            &ADMIN_TOKEN,
        ],
    },
    Family {
        title: "The edge: timestamps, body limits, the dispatch deadline",
        settings: &[
            &TIMESTAMP_WINDOW_SECS,
            &MAX_BODY_BYTES,
            &KIT_MAX_BODY_BYTES,
            &DISPATCH_DEADLINE_MS,
        ],
    },
    Family {
        title: "The callbacks' answers",
        settings: &[&CREDENTIAL_ENCRYPTION, &USAGE_DASHBOARD_URL],
    },
    Family {
        title: "The provisioner: static, or the vendor's webhook",
        settings: &[
            &PROVISIONER,
            &FRONTEND_URL,
            &ADMIN_URL,
            &STATIC_MEMO,
            &WEBHOOK_URL,
            &WEBHOOK_TIMEOUT_SECS,
            &WEBHOOK_EVENT_VERSION,
        ],
    },
    Family {
        title: "The worker and the reconciler",
        settings: &[
            &PROVISIONING_DEADLINE_SECS,
            &NOTICE_DEADLINE_SECS,
            &WORKER_BACKOFF_SECS,
            &WORKER_BACKOFF_MAX_SECS,
            &WORKER_CLAIM_SECS,
            &RECONCILE_EVERY_SECS,
            &RECONCILE_GRACE_SECS,
            &WORKER_TIMEOUT_SECS,
            &JOBS_MAX_RECEIVE_COUNT,
            &JOBS_RETENTION_SECS,
        ],
    },
    Family {
        title: "KooGallery's open API",
        settings: &[
            &MARKETPLACE,
            &OPENAPI_URL,
            &OPENAPI_FALLBACK_URL,
            &OPENAPI_TIMEOUT_SECS,
        ],
    },
    Family {
        title: "Metering (pay-per-use)",
        settings: &[
            &USAGE_PUSH_EVERY_SECS,
            &USAGE_GRACE_SECS,
            &USAGE_HORIZON_WARNING_DAYS,
            &PACKAGE_QUOTAS,
            &PRICING,
        ],
    },
    Family {
        title: "Single sign-on (联营 products)",
        settings: &[
            &SSO_ISSUER,
            &SSO_APP_ID,
            &SSO_UNIFIED_LOGIN_URL,
            &OIDC_CLIENTS,
        ],
    },
    Family {
        title: "License products",
        settings: &[
            &LICENSE_CLIENT_KEY,
            &LICENSE_SIGNING_KEY,
            &LICENSE_SIGNING_KEY_PREVIOUS,
            &LICENSE_OFFLINE_DAYS,
        ],
    },
];

/// The environment file: a header, [`SERVER_VALUES`] set, then each of [`FAMILIES`] with every
/// setting commented out as `# NAME=default` (`# NAME=` when it has none) under its help line.
pub fn env_template() -> String {
    let mut out = String::from(
        "# /etc/koogallery/koogallery.env: the settings of koogallery-local on a server, read by\n\
         # systemd (EnvironmentFile= in koogallery.service) before the service drops its privileges.\n\
         # It holds keys: keep it owned by root, mode 0600.\n\
         # Generated from the settings catalog (shared/src/config/catalog.rs); README.md,\n\
         # \"Configuration\", says more of each setting.\n\
         # systemd's syntax (systemd.exec(5), EnvironmentFile=): NAME=value a line, no shell\n\
         # expansion; a line that starts with # is a comment. Uncomment a line to change a default.\n\
         \n\
         # A server's values (make run's defaults are 127.0.0.1, .data/ and text logs).\n",
    );
    for (setting, value) in SERVER_VALUES {
        out.push_str(&format!("{}={value}\n", setting.name));
    }
    for family in FAMILIES {
        out.push_str(&format!("\n## {}\n", family.title));
        for setting in family.settings {
            out.push_str(&format!("\n# {}\n", setting.help));
            if let Some((_, value)) = SERVER_VALUES.iter().find(|(s, _)| s.name == setting.name) {
                out.push_str(&format!("# (set above to {value})\n"));
            }
            let default = setting.default.unwrap_or_default();
            out.push_str(&format!("# {}={default}\n", setting.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_families_hold_every_operator_and_secret_setting_once_and_nothing_else() {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for family in FAMILIES {
            for setting in family.settings {
                *seen.entry(setting.name).or_default() += 1;
                let in_all = ALL.iter().find(|s| s.name == setting.name);
                assert!(
                    in_all.is_some_and(|s| matches!(s.origin, Origin::Operator | Origin::Secret)),
                    "{} is in the env file's family {:?} but is no operator or secret setting of catalog::ALL",
                    setting.name,
                    family.title
                );
            }
        }
        for setting in ALL {
            if matches!(setting.origin, Origin::Operator | Origin::Secret) {
                assert_eq!(
                    seen.get(setting.name),
                    Some(&1),
                    "{} must be in exactly one of env_file::FAMILIES (the server's environment file lists every setting)",
                    setting.name
                );
            }
        }
    }

    /// `local/dist/koogallery.env`, which `make dist` packs, is this template: a setting added to
    /// the catalog reaches the server's file. `UPDATE_GOLDEN=1 cargo test -p koogallery env_file`
    /// rewrites it (review the diff).
    #[test]
    fn the_packaged_environment_file_is_the_template() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../local/dist/koogallery.env");
        let text = env_template();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &text).expect("write local/dist/koogallery.env");
        }
        let packaged = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
        assert!(
            packaged == text,
            "local/dist/koogallery.env is not catalog::env_template(): \
             `UPDATE_GOLDEN=1 cargo test -p koogallery env_file` rewrites it"
        );
    }

    #[test]
    fn the_template_sets_the_server_values_and_comments_out_everything_else() {
        let text = env_template();
        let set: Vec<&str> = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert_eq!(
            set,
            [
                "KOOGALLERY_LISTEN=0.0.0.0:8080",
                "KOOGALLERY_DATA_DIR=/var/lib/koogallery",
                "KOOGALLERY_LOG_FORMAT=json"
            ]
        );
        for setting in ALL {
            let commented = format!("\n# {}=", setting.name);
            let listed = text.contains(&commented);
            match setting.origin {
                Origin::Operator | Origin::Secret => {
                    assert!(listed, "{} is not in the template", setting.name)
                }
                Origin::Template | Origin::Retired => {
                    assert!(!listed, "{} is in the template", setting.name)
                }
            }
        }
        assert!(text.contains("\n# KOOGALLERY_TIMESTAMP_WINDOW_SECS=60\n"));
        assert!(text.contains("\n# KOOGALLERY_ACCESS_KEY=\n"));
    }
}
