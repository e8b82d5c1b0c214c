//! Who may ask and who answers: the source address check, then the route;
//! routes behind a login get the [`Session`], and state-changing ones only
//! after the CSRF token matched.

use tiny_http::{Method, Request};

use crate::http::{self, Body, Reply};
use crate::session::{Session, COOKIE};
use crate::{
    accounts, aliases, backup, clientsetup, dashboard, directory, dnscheck, keys, login, logsearch,
    queue, security, trace, State,
};

/// What a request asks for.
pub(crate) enum Route<'p> {
    SetupState,
    Setup,
    Login,
    Logout,
    SessionInfo,
    ConfirmTotp,
    TotpQr,
    Domains,
    AddDomain,
    DomainDns(&'p str),
    RemoveDomain(&'p str),
    Accounts,
    AddAccount,
    RecoveryCodes,
    NewRecoveryCodes,
    ApiTokens,
    AddApiToken,
    RevokeApiToken(&'p str),
    AccountSetup(&'p str),
    AccountMobileconfig(&'p str),
    DomainCheck(&'p str),
    /// `/api/accounts/ADDR/...`: the address as in the path, and what is asked.
    Account(&'p str, accounts::Action<'p>),
    Dashboard,
    Health,
    Queue,
    QueueRetry(&'p str),
    QueueDelete(&'p str),
    Log,
    LogTrace,
    Security,
    Unban,
    Aliases,
    AddAlias,
    RemoveAlias,
    Backup,
    BackupSettings,
    BackupRun,
    BackupVerify,
    BackupKey,
}

impl Route<'_> {
    /// Whether only a logged-in administrator may ask.
    fn needs_session(&self) -> bool {
        !matches!(self, Route::SetupState | Route::Setup | Route::Login)
    }

    /// Whether the request carries a JSON body to read.
    fn takes_body(&self) -> bool {
        matches!(
            self,
            Route::Setup
                | Route::Login
                | Route::ConfirmTotp
                | Route::AddDomain
                | Route::AddAccount
                | Route::AddApiToken
                | Route::RemoveDomain(_)
                | Route::Unban
                | Route::AddAlias
                | Route::RemoveAlias
                | Route::BackupSettings
                | Route::BackupVerify
                | Route::BackupKey
        ) || matches!(self, Route::Account(_, action) if action.takes_body())
    }

    /// Whether an API token may ask: not for what belongs to a person's
    /// login (the session, TOTP, recovery codes, the tokens themselves), so
    /// that a leaked token cannot make itself a longer life; nor for the
    /// backup key, which asks for a person's password and code.
    fn token_allowed(&self) -> bool {
        !matches!(
            self,
            Route::Logout
                | Route::SessionInfo
                | Route::ConfirmTotp
                | Route::TotpQr
                | Route::RecoveryCodes
                | Route::NewRecoveryCodes
                | Route::ApiTokens
                | Route::AddApiToken
                | Route::RevokeApiToken(_)
                | Route::BackupKey
        )
    }

    /// Whether a session that has not finished TOTP enrolment may ask.
    fn before_enrolment(&self) -> bool {
        matches!(
            self,
            Route::Logout | Route::SessionInfo | Route::ConfirmTotp | Route::TotpQr
        )
    }
}

/// The route of a method and path; `Err` is the reply (404, 405).
pub(crate) fn route<'p>(method: &Method, path: &'p str) -> Result<Route<'p>, Reply> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (get, post) = match segments.as_slice() {
        ["api", "setup"] => (Some(Route::SetupState), Some(Route::Setup)),
        ["api", "login"] => (None, Some(Route::Login)),
        ["api", "logout"] => (None, Some(Route::Logout)),
        ["api", "session"] => (Some(Route::SessionInfo), None),
        ["api", "totp", "confirm"] => (None, Some(Route::ConfirmTotp)),
        ["api", "totp", "qr.svg"] => (Some(Route::TotpQr), None),
        ["api", "domains"] => (Some(Route::Domains), Some(Route::AddDomain)),
        ["api", "domains", name, "dns"] => (Some(Route::DomainDns(name)), None),
        ["api", "domains", name, "remove"] => (None, Some(Route::RemoveDomain(name))),
        ["api", "accounts"] => (Some(Route::Accounts), Some(Route::AddAccount)),
        ["api", "recovery-codes"] => (Some(Route::RecoveryCodes), Some(Route::NewRecoveryCodes)),
        ["api", "tokens"] => (Some(Route::ApiTokens), Some(Route::AddApiToken)),
        ["api", "tokens", id, "revoke"] => (None, Some(Route::RevokeApiToken(id))),
        ["api", "accounts", addr, "setup"] => (Some(Route::AccountSetup(addr)), None),
        ["api", "accounts", addr, "mobileconfig"] => (Some(Route::AccountMobileconfig(addr)), None),
        ["api", "domains", name, "check"] => (Some(Route::DomainCheck(name)), None),
        ["api", "accounts", address, rest @ ..] => match accounts::route(rest) {
            Some((get, post)) => (
                get.map(|a| Route::Account(address, a)),
                post.map(|a| Route::Account(address, a)),
            ),
            None => return Err(Reply::error(404, "no such page")),
        },
        ["api", "dashboard"] => (Some(Route::Dashboard), None),
        ["api", "health"] => (Some(Route::Health), None),
        ["api", "queue"] => (Some(Route::Queue), None),
        ["api", "queue", id, "retry"] => (None, Some(Route::QueueRetry(id))),
        ["api", "queue", id, "delete"] => (None, Some(Route::QueueDelete(id))),
        ["api", "log"] => (Some(Route::Log), None),
        ["api", "log", "trace"] => (Some(Route::LogTrace), None),
        ["api", "security"] => (Some(Route::Security), None),
        ["api", "security", "unban"] => (None, Some(Route::Unban)),
        ["api", "aliases"] => (Some(Route::Aliases), Some(Route::AddAlias)),
        ["api", "aliases", "remove"] => (None, Some(Route::RemoveAlias)),
        ["api", "backup"] => (Some(Route::Backup), None),
        ["api", "backup", "settings"] => (None, Some(Route::BackupSettings)),
        ["api", "backup", "run"] => (None, Some(Route::BackupRun)),
        ["api", "backup", "verify"] => (None, Some(Route::BackupVerify)),
        ["api", "backup", "key"] => (None, Some(Route::BackupKey)),
        _ => return Err(Reply::error(404, "no such page")),
    };
    let allowed = match (&get, &post) {
        (Some(_), Some(_)) => "GET, POST",
        (Some(_), None) => "GET",
        _ => "POST",
    };
    let chosen = match method {
        Method::Get | Method::Head => get,
        Method::Post => post,
        _ => None,
    };
    chosen.ok_or_else(|| {
        Reply::error(405, "method not allowed").with_header("Allow", allowed.to_string())
    })
}

/// Answers one request that came through the front ([`crate::front`]),
/// whose record names the real client; `https` when it came over HTTPS.
pub fn handle(state: &State, mut request: Request, https: bool) {
    let remote = request.remote_addr().copied();
    let Some(peer) = remote.and_then(|r| state.peers.client(r.port())) else {
        // A connection to the backend that the front did not make.
        return Reply::error(403, "forbidden").send(request, https);
    };
    let path = request.url().split('?').next().unwrap_or("").to_owned();
    // Client setup files answer every source (see clientsetup's doc).
    if let Some(reply) = crate::clientsetup::public(state, &mut request, &path) {
        return reply.send(request, https);
    }
    if !state.access.allows(peer.ip()) {
        state.ctx.maillog.admin_refused(peer, &path);
        tracing::warn!(%peer, path, "admin page: source address not allowed");
        return Reply::error(
            403,
            "the admin page answers only on the local network (see [admin] allow)",
        )
        .send(request, https);
    }
    if matches!(request.method(), Method::Post)
        && !same_origin(
            http::header(&request, "Origin"),
            http::header(&request, "Host"),
        )
    {
        tracing::warn!(%peer, path, "admin page: cross-site request refused");
        return Reply::error(403, "cross-site request refused").send(request, https);
    }
    if !path.starts_with("/api/") {
        let reply = crate::pages::handle(state, &mut request, peer, &path);
        return reply.send(request, https);
    }
    let method = request.method().clone();
    let reply = match route(&method, &path) {
        Ok(route) => dispatch(state, &mut request, peer, route),
        Err(reply) => reply,
    };
    reply.send(request, https)
}

fn dispatch(
    state: &State,
    request: &mut Request,
    peer: std::net::SocketAddr,
    route: Route<'_>,
) -> Reply {
    let session = if route.needs_session() {
        match authorize(state, request, peer, &route) {
            Ok(s) => Some(s),
            Err(reply) => return reply,
        }
    } else {
        None
    };
    let body = if route.takes_body() {
        match http::read_json(request) {
            Ok(b) => b,
            Err(reply) => return reply,
        }
    } else {
        Body::new()
    };
    match (route, session) {
        (Route::SetupState, _) => login::setup_state(state),
        (Route::Setup, _) => login::setup(state, &body, peer),
        (Route::Login, _) => login::login(state, &body, peer),
        (Route::Logout, Some(s)) => login::logout(state, &s),
        (Route::SessionInfo, Some(s)) => login::session_info(state, &s),
        (Route::ConfirmTotp, Some(s)) => login::confirm_totp(state, &body, &s),
        (Route::TotpQr, Some(s)) => login::totp_qr(state, &s),
        (Route::Domains, Some(_)) => directory::domains(state),
        (Route::AddDomain, Some(_)) => directory::add_domain(state, &body),
        (Route::DomainDns(name), Some(_)) => directory::dns(state, name),
        (Route::RemoveDomain(name), Some(_)) => directory::remove_domain(state, name, &body),
        (Route::Accounts, Some(_)) => directory::accounts(state),
        (Route::AddAccount, Some(_)) => directory::add_account(state, &body),
        (Route::RecoveryCodes, Some(s)) => keys::recovery_state(state, &s),
        (Route::NewRecoveryCodes, Some(s)) => keys::regenerate_recovery(state, &s),
        (Route::ApiTokens, Some(s)) => keys::tokens(state, &s),
        (Route::AddApiToken, Some(s)) => keys::add_token(state, &s, &body),
        (Route::RevokeApiToken(id), Some(s)) => keys::revoke_token(state, &s, id),
        (Route::AccountSetup(addr), Some(_)) => clientsetup::setup(state, addr),
        (Route::AccountMobileconfig(addr), Some(_)) => clientsetup::mobileconfig(state, addr),
        (Route::DomainCheck(name), Some(_)) => dnscheck::check(state, name),
        (Route::Account(address, action), Some(_)) => {
            accounts::handle(state, address, action, &body)
        }
        (Route::Dashboard, Some(_)) => dashboard::dashboard(state),
        (Route::Health, Some(_)) => dashboard::health(state),
        (Route::Queue, Some(_)) => queue::list(state),
        (Route::QueueRetry(id), Some(_)) => queue::retry(state, id),
        (Route::QueueDelete(id), Some(_)) => queue::delete(state, id),
        (Route::Log, Some(_)) => logsearch::search(state, &logsearch::query(request.url())),
        (Route::LogTrace, Some(_)) => trace::trace(state, &logsearch::query(request.url())),
        (Route::Security, Some(_)) => security::overview(state),
        (Route::Unban, Some(_)) => security::unban(state, &body),
        (Route::Aliases, Some(_)) => aliases::list(state),
        (Route::AddAlias, Some(_)) => aliases::add(state, &body),
        (Route::RemoveAlias, Some(_)) => aliases::remove(state, &body),
        (Route::Backup, Some(_)) => backup::show(state),
        (Route::BackupSettings, Some(_)) => backup::save_settings(state, &body),
        (Route::BackupRun, Some(_)) => backup::run(state),
        (Route::BackupVerify, Some(_)) => backup::verify(state, &body),
        (Route::BackupKey, Some(s)) => backup::key(state, &s, &body, peer),
        // needs_session() said yes, so authorize() gave a session.
        (_, None) => Reply::error(401, "log in first"),
    }
}

/// Whether a POST comes from this site: browsers send `Origin` with every
/// POST (RFC 6454 §7), and it must name the host the request went to. A
/// cross-site form, or a login forged from another site (which SameSite
/// cookies do not cover), is refused. Clients without `Origin` (scripts)
/// pass; they carry no ambient cookies.
pub(crate) fn same_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let Some(host) = host else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| o.eq_ignore_ascii_case(host.trim()))
}

/// The session of a request that needs one: an API token in
/// `Authorization: Bearer`, or a login that is enrolled in TOTP (unless the
/// route is part of enrolment) and, for anything but GET, sends the CSRF
/// token in `X-CSRF-Token`. A token request needs no CSRF token: a browser
/// never adds that header by itself, so another site cannot forge one.
fn authorize(
    state: &State,
    request: &Request,
    peer: std::net::SocketAddr,
    route: &Route<'_>,
) -> Result<Session, Reply> {
    if let Some(value) = http::header(request, "Authorization") {
        return token_session(state, value, peer, route);
    }
    let session = http::cookie(request, COOKIE)
        .and_then(|token| state.sessions.find(token))
        .ok_or_else(|| Reply::error(401, "log in first"))?;
    let changes_state = !matches!(request.method(), Method::Get | Method::Head);
    if changes_state {
        let sent = http::header(request, "X-CSRF-Token").unwrap_or("");
        if !http::same(sent, &session.csrf) {
            return Err(Reply::error(
                403,
                "missing or wrong CSRF token (send the session's csrf_token in X-CSRF-Token)",
            ));
        }
    }
    if !session.totp_enabled && !route.before_enrolment() {
        return Err(Reply::error(
            403,
            "finish TOTP enrolment first (POST /api/totp/confirm with a code from your app)",
        ));
    }
    Ok(session)
}

/// The stand-in session of an API token, or the refusal. Wrong tokens count
/// in the brute-force guard like wrong passwords.
fn token_session(
    state: &State,
    header: &str,
    peer: std::net::SocketAddr,
    route: &Route<'_>,
) -> Result<Session, Reply> {
    let Some(token) = header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Err(Reply::error(
            401,
            "send an API token as `Authorization: Bearer TOKEN`",
        ));
    };
    if !route.token_allowed() {
        return Err(Reply::error(
            403,
            "API tokens cannot manage logins or tokens, nor read the backup key; log in on the page",
        ));
    }
    login::guard_check(state, peer)?;
    match state.ctx.store.api_token_admin(token) {
        Ok(Some(admin)) => Ok(Session::for_api_token(&admin)),
        Ok(None) => {
            login::failed(state, peer, "(API token)");
            Err(Reply::error(401, "unknown or revoked API token"))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot check an API token");
            Err(Reply::error(500, "the store could not answer; try again"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let cases = [
            (None, Some("127.0.0.1:2080"), true),
            (Some("http://127.0.0.1:2080"), Some("127.0.0.1:2080"), true),
            (Some("http://Pochta.local"), Some("pochta.local"), true),
            (Some("https://pochta.local"), Some("pochta.local"), true),
            (Some("http://evil.example"), Some("pochta.local"), false),
            (
                Some("http://pochta.local:8080"),
                Some("pochta.local"),
                false,
            ),
            (Some("null"), Some("pochta.local"), false),
            (Some("http://pochta.local"), None, false),
        ];
        for (origin, host, expected) in cases {
            assert_eq!(same_origin(origin, host), expected, "{origin:?} {host:?}");
        }
    }

    #[test]
    fn routes() {
        assert!(matches!(
            route(&Method::Post, "/api/setup"),
            Ok(Route::Setup)
        ));
        assert!(matches!(
            route(&Method::Get, "/api/setup"),
            Ok(Route::SetupState)
        ));
        assert!(matches!(
            route(&Method::Get, "/api/domains/example.com/dns"),
            Ok(Route::DomainDns("example.com"))
        ));
        assert!(matches!(
            route(&Method::Post, "/api/accounts/"),
            Ok(Route::AddAccount)
        ));
        let r = route(&Method::Get, "/api/login").err().unwrap();
        assert_eq!(r.status, 405);
        assert_eq!(
            route(&Method::Delete, "/api/domains").err().unwrap().status,
            405
        );
        assert_eq!(
            route(&Method::Get, "/api/nothing").err().unwrap().status,
            404
        );
        assert_eq!(
            route(&Method::Get, "/api/domains/x/dns/y")
                .err()
                .unwrap()
                .status,
            404
        );
    }

    #[test]
    fn operational_routes() {
        assert!(matches!(
            route(&Method::Post, "/api/queue/12/retry"),
            Ok(Route::QueueRetry("12"))
        ));
        assert!(matches!(
            route(&Method::Post, "/api/queue/12/delete"),
            Ok(Route::QueueDelete("12"))
        ));
        assert!(matches!(
            route(&Method::Get, "/api/log/trace"),
            Ok(Route::LogTrace)
        ));
        assert!(matches!(
            route(&Method::Post, "/api/aliases"),
            Ok(Route::AddAlias)
        ));
        assert_eq!(
            route(&Method::Get, "/api/queue/12/retry")
                .err()
                .unwrap()
                .status,
            405
        );
        assert_eq!(
            route(&Method::Post, "/api/dashboard").err().unwrap().status,
            405
        );
    }

    #[test]
    fn backup_routes_and_the_key_is_not_for_tokens() {
        assert!(matches!(
            route(&Method::Get, "/api/backup"),
            Ok(Route::Backup)
        ));
        for path in [
            "/api/backup/settings",
            "/api/backup/run",
            "/api/backup/verify",
        ] {
            let r = route(&Method::Post, path).ok().unwrap();
            assert!(r.token_allowed() && r.needs_session(), "{path}");
        }
        let key = route(&Method::Post, "/api/backup/key").ok().unwrap();
        assert!(key.needs_session() && key.takes_body() && !key.token_allowed());
        assert_eq!(
            route(&Method::Get, "/api/backup/key").err().unwrap().status,
            405
        );
    }
}
