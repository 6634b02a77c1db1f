//! The exchange log in memory ([`crate::exchange::ExchangeLog`]), the reference the
//! contract (`contract::exchange_log_contract`) describes.

use std::{collections::BTreeMap, sync::Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    StoreError,
    exchange::{Exchange, ExchangeLog, ExchangeQuery, Kept},
};

/// Exchanges by ID (which sorts by time), decoded from the records appended (so a test reads
/// what a store would).
#[derive(Debug, Default)]
pub struct MemoryExchangeLog {
    exchanges: Mutex<BTreeMap<String, Exchange>>,
}

impl MemoryExchangeLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything kept, oldest first (expired or not).
    pub fn all(&self) -> Vec<Exchange> {
        self.exchanges.lock().unwrap().values().cloned().collect()
    }
}

#[async_trait]
impl ExchangeLog for MemoryExchangeLog {
    async fn append(&self, records: &[Kept]) -> Result<(), StoreError> {
        let decoded = records
            .iter()
            .map(Kept::exchange)
            .collect::<Result<Vec<_>, _>>()?;
        let mut kept = self.exchanges.lock().unwrap();
        for e in decoded {
            kept.entry(e.id.clone()).or_insert(e);
        }
        Ok(())
    }

    async fn find(
        &self,
        query: &ExchangeQuery,
        now: DateTime<Utc>,
    ) -> Result<Vec<Exchange>, StoreError> {
        let kept = self.exchanges.lock().unwrap();
        Ok(kept
            .values()
            .rev()
            .filter(|e| e.expires_at > now && query.matches(e))
            .take(query.bounded_limit())
            .cloned()
            .collect())
    }
}
