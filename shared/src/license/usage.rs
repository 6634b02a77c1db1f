//! Daily software usage statistics of license codes (docs/protocol/openapi.md §5.3): the distinct
//! clients that checked a code on a UTC day, reported once the day is over, at most 100 codes per
//! call.

use std::collections::BTreeSet;

use chrono::NaiveDate;

use super::LicenseCode;

/// Most codes per `software-usage-info` call (docs/protocol/openapi.md §5.3).
pub const MAX_CODES_PER_CALL: usize = 100;
/// Most `software_usage_Info` entries per code: above it, the day is reported as `active_num`.
pub const MAX_IDS_PER_CODE: usize = 100;

/// The clients of one code on one UTC day, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyUsage {
    pub code: LicenseCode,
    pub day: NaiveDate,
    pub clients: BTreeSet<String>,
}

/// One `usage_info` entry (docs/protocol/openapi.md §5.3): exactly one of `id` per client or
/// `active_num` per entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoftwareUsage {
    /// Up to 100 distinct client IDs.
    Clients { code: LicenseCode, ids: Vec<String> },
    /// More clients than one call may list: their number.
    Count { code: LicenseCode, active_num: u64 },
}

impl SoftwareUsage {
    pub fn code(&self) -> &LicenseCode {
        match self {
            Self::Clients { code, .. } | Self::Count { code, .. } => code,
        }
    }
}

impl From<&DailyUsage> for SoftwareUsage {
    fn from(d: &DailyUsage) -> Self {
        if d.clients.len() <= MAX_IDS_PER_CODE {
            Self::Clients {
                code: d.code.clone(),
                ids: d.clients.iter().cloned().collect(),
            }
        } else {
            Self::Count {
                code: d.code.clone(),
                active_num: d.clients.len() as u64,
            }
        }
    }
}

/// The calls that report `due`: per day (a code appears once per call), at most 100 codes each.
pub fn calls(due: &[DailyUsage]) -> Vec<(NaiveDate, Vec<SoftwareUsage>)> {
    let mut days: Vec<NaiveDate> = due.iter().map(|d| d.day).collect();
    days.sort_unstable();
    days.dedup();
    let mut out = Vec::new();
    for day in days {
        let of_day: Vec<SoftwareUsage> = due
            .iter()
            .filter(|d| d.day == day && !d.clients.is_empty())
            .map(SoftwareUsage::from)
            .collect();
        for chunk in of_day.chunks(MAX_CODES_PER_CALL) {
            out.push((day, chunk.to_vec()));
        }
    }
    out
}
