//! One file per verb group; each takes the session (or, in the TRANSACTION
//! state, the maildrop) and the parsed arguments.

pub(crate) mod auth;
pub(crate) mod capa;
pub(crate) mod maildrop;
pub(crate) mod quit;
pub(crate) mod retr;

use pochta_store::Store;

use crate::session::Session;

/// Runs a store call off the async runtime (SQLite blocks).
pub(crate) async fn blocking<T: Send + 'static>(
    store: &Store,
    session: &str,
    f: impl FnOnce(&Store) -> T + Send + 'static,
) -> Option<T> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(session, error = %e, "store task failed");
            None
        }
    }
}

/// Whether the session is still before login (AUTHORIZATION state).
pub(crate) fn in_authorization(s: &Session) -> bool {
    matches!(s.state, crate::session::State::Authorization { .. })
}
