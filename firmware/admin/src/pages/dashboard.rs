//! The dashboard: how the box is doing at a glance.

use crate::http::Reply;
use crate::session::Session;
use crate::State;

use super::{page, store_failed};

/// `GET /` once logged in.
pub(super) fn show(state: &State, s: &Session) -> Reply {
    let store = &state.ctx.store;
    let (Ok(domains), Ok(accounts)) = (store.domains(), store.accounts()) else {
        return store_failed(s);
    };
    page(
        200,
        "Dashboard",
        Some(s),
        &format!(
            "<section><h2>Dashboard</h2><table>\
             <tr><th>Domains</th><td><a href=\"/domains\">{}</a></td></tr>\
             <tr><th>Accounts</th><td><a href=\"/accounts\">{}</a></td></tr>\
             </table></section>",
            domains.len(),
            accounts.len()
        ),
    )
}
