//! What the admin page reads from request headers and the path: cookies and
//! the login session they select, the `Origin` check, and the API route.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_admin::parsers;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let cookies = parts.next().unwrap_or_default();
    let origin = parts.next();
    let host = parts.next();
    let path = parts.next().unwrap_or_default();
    // Cookies: a value found is on the header, without a separator.
    let headers: Vec<&str> = cookies.split('\r').collect();
    if let Some(v) = parsers::cookie(&headers, "pochta_session") {
        assert!(!v.contains(';'));
        assert!(headers.iter().any(|h| h.contains(v)));
    }
    // Sessions: only the login's own token finds it; with its cookie last,
    // it is found unless another pochta_session pair comes first.
    for with_own in [false, true] {
        let (token, found) = parsers::session_from_cookies(&headers, with_own);
        if let Some(f) = &found {
            assert_eq!(f, &token, "another token found the session");
        }
        if with_own && parsers::cookie(&headers, "pochta_session").is_none() {
            assert_eq!(found, Some(token));
        }
    }
    // Origin: only the same host, over http or https.
    if parsers::same_origin(origin, host) {
        if let (Some(o), Some(h)) = (origin, host) {
            let o = o
                .strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"));
            assert!(o.is_some_and(|o| o.eq_ignore_ascii_case(h.trim())));
        }
    }
    for method in ["GET", "POST", "HEAD", "PUT", "DELETE"] {
        match parsers::route(method, path) {
            Ok(()) => assert!(path.trim_matches('/').starts_with("api/")),
            Err(status) => assert!(status == 404 || status == 405, "{status}"),
        }
    }
});
