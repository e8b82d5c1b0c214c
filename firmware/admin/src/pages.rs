//! Server-rendered HTML. No inline script or style (the CSP forbids both);
//! nothing is fetched from the internet.

use crate::http::Reply;

/// `GET /`: for now a pointer to the JSON API; the setup, login and
/// dashboard pages come next.
pub fn home() -> Reply {
    Reply::html(
        200,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Pochta</title></head><body><h1>Pochta</h1>\
         <p>The admin pages are not built yet. The JSON API is under <code>/api/</code>: \
         see the README.</p></body></html>\n"
            .to_string(),
    )
}
