//! `HubError`: why the hub could not start or serve.

use thiserror::Error;

use crate::reply::rules::RulesError;
use crate::store::StoreError;

/// A failure that stops the hub (bad configuration, storage that cannot open, the listener).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HubError {
    /// The reply rules file is unusable.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// A flag's value is unusable (the message names the flag and the value).
    #[error("{0}")]
    Config(String),
    /// The store could not be opened.
    #[error("cannot open storage: {0}")]
    Store(#[from] StoreError),
    /// The listener failed.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}
