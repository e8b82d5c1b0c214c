//! One file per verb group; each takes the session and the parsed command.

pub(crate) mod auth;
pub(crate) mod data;
pub(crate) mod ehlo;
pub(crate) mod envelope;
mod message_id;

use pochta_store::Store;

use crate::session::Session;

/// Runs a store call off the async runtime (SQLite and argon2 block).
pub(crate) async fn blocking<T: Send + 'static>(
    s: &Session,
    f: impl FnOnce(&Store) -> T + Send + 'static,
) -> Option<T> {
    let store = s.ctx.store.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(session = %s.id, error = %e, "store task failed");
            None
        }
    }
}
