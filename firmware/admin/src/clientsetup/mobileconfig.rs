//! The Apple configuration profile of one account (`.mobileconfig`): a
//! `Configuration` profile holding one `com.apple.mail.managed` payload
//! (Apple's "Configuration Profile Reference", Mail payload). iOS and macOS
//! install it from a download and then ask for the password: none is in
//! the file.

use sha2::{Digest, Sha256};

use super::{account, xml_escape, Servers};
use crate::http::Reply;
use crate::State;

/// `GET /api/accounts/ADDR/mobileconfig`.
pub fn mobileconfig(state: &State, raw_address: &str) -> Reply {
    let address = match account(state, raw_address) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let servers = Servers::of(state);
    let Some(profile) = profile(&address, &servers) else {
        return Reply::error(
            409,
            "the server has no IMAP or no submission listener: nothing to configure",
        );
    };
    // The file name is made of the address's safe characters only, so the
    // header value stays a plain quoted string.
    let file: String = address
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@.-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Reply::typed(
        200,
        "application/x-apple-aspen-config",
        profile.into_bytes(),
    )
    .with_header(
        "Content-Disposition",
        format!("attachment; filename=\"{file}.mobileconfig\""),
    )
}

/// A UUID (RFC 9562 §5.8 layout, version 8) made from a hash of `seed`:
/// the same account always gets the same identifiers, so installing a new
/// download replaces the old profile instead of adding a second account.
fn stable_uuid(seed: &str) -> String {
    let hash = Sha256::digest(seed.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&hash[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The reversed-DNS identifier prefix of a host's profiles.
fn identifier(host: &str) -> String {
    let mut labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
    labels.reverse();
    labels.join(".")
}

/// The profile, or `None` when there is no IMAP or no submission port.
fn profile(address: &str, servers: &Servers) -> Option<String> {
    let imap = servers.imap.first()?;
    let smtp = servers.smtp.first()?;
    let id = identifier(&servers.host);
    let addr = xml_escape(address);
    let host = xml_escape(&servers.host);
    let mail_uuid = stable_uuid(&format!("mail-payload {address} {}", servers.host));
    let profile_uuid = stable_uuid(&format!("profile {address} {}", servers.host));
    // UseSSL is true for both kinds of port: Apple Mail then insists on
    // TLS, implicit on 993/465 and by STARTTLS on 143/587 (the servers
    // refuse a password before TLS anyway). Implicit TLS ports come first
    // in `Servers`, so they are the ones named when they listen.
    Some(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
<plist version=\"1.0\">\n\
<dict>\n\
\t<key>PayloadContent</key>\n\
\t<array>\n\
\t\t<dict>\n\
\t\t\t<key>EmailAccountDescription</key>\n\t\t\t<string>{addr}</string>\n\
\t\t\t<key>EmailAccountName</key>\n\t\t\t<string>{addr}</string>\n\
\t\t\t<key>EmailAccountType</key>\n\t\t\t<string>EmailTypeIMAP</string>\n\
\t\t\t<key>EmailAddress</key>\n\t\t\t<string>{addr}</string>\n\
\t\t\t<key>IncomingMailServerAuthentication</key>\n\t\t\t<string>EmailAuthPassword</string>\n\
\t\t\t<key>IncomingMailServerHostName</key>\n\t\t\t<string>{host}</string>\n\
\t\t\t<key>IncomingMailServerPortNumber</key>\n\t\t\t<integer>{imap_port}</integer>\n\
\t\t\t<key>IncomingMailServerUseSSL</key>\n\t\t\t<true/>\n\
\t\t\t<key>IncomingMailServerUsername</key>\n\t\t\t<string>{addr}</string>\n\
\t\t\t<key>OutgoingMailServerAuthentication</key>\n\t\t\t<string>EmailAuthPassword</string>\n\
\t\t\t<key>OutgoingMailServerHostName</key>\n\t\t\t<string>{host}</string>\n\
\t\t\t<key>OutgoingMailServerPortNumber</key>\n\t\t\t<integer>{smtp_port}</integer>\n\
\t\t\t<key>OutgoingMailServerUseSSL</key>\n\t\t\t<true/>\n\
\t\t\t<key>OutgoingMailServerUsername</key>\n\t\t\t<string>{addr}</string>\n\
\t\t\t<key>OutgoingPasswordSameAsIncomingPassword</key>\n\t\t\t<true/>\n\
\t\t\t<key>PayloadDescription</key>\n\t\t\t<string>Mail account {addr}</string>\n\
\t\t\t<key>PayloadDisplayName</key>\n\t\t\t<string>{addr}</string>\n\
\t\t\t<key>PayloadIdentifier</key>\n\t\t\t<string>{id}.mail.{mail_uuid}</string>\n\
\t\t\t<key>PayloadType</key>\n\t\t\t<string>com.apple.mail.managed</string>\n\
\t\t\t<key>PayloadUUID</key>\n\t\t\t<string>{mail_uuid}</string>\n\
\t\t\t<key>PayloadVersion</key>\n\t\t\t<integer>1</integer>\n\
\t\t</dict>\n\
\t</array>\n\
\t<key>PayloadDescription</key>\n\t<string>Sets up the mail account {addr} on {host}. The device asks for the password.</string>\n\
\t<key>PayloadDisplayName</key>\n\t<string>Mail: {addr}</string>\n\
\t<key>PayloadIdentifier</key>\n\t<string>{id}.profile.{profile_uuid}</string>\n\
\t<key>PayloadRemovalDisallowed</key>\n\t<false/>\n\
\t<key>PayloadType</key>\n\t<string>Configuration</string>\n\
\t<key>PayloadUUID</key>\n\t<string>{profile_uuid}</string>\n\
\t<key>PayloadVersion</key>\n\t<integer>1</integer>\n\
</dict>\n\
</plist>\n",
        id = xml_escape(&id),
        imap_port = imap.port,
        smtp_port = smtp.port,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::{Endpoint, Security};
    use super::*;

    #[test]
    fn uuids_are_stable_and_well_formed() {
        let a = stable_uuid("x");
        assert_eq!(a, stable_uuid("x"));
        assert_ne!(a, stable_uuid("y"));
        assert_eq!(a.len(), 36);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('8'), "version 8: {a}");
        assert!("89AB".contains(&parts[3][..1]), "RFC 9562 variant: {a}");
    }

    #[test]
    fn profile_has_no_password_and_escapes() {
        let servers = Servers {
            host: "mail.a.test".into(),
            imap: vec![Endpoint {
                port: 993,
                security: Security::Tls,
            }],
            pop3: vec![],
            smtp: vec![Endpoint {
                port: 465,
                security: Security::Tls,
            }],
        };
        let p = profile("o<b@a.test", &servers).unwrap();
        assert!(p.contains("<string>o&lt;b@a.test</string>"));
        assert!(!p.contains("o<b"));
        for key in ["<key>IncomingPassword</key>", "<key>OutgoingPassword</key>"] {
            assert!(!p.contains(key), "{key} in {p}");
        }
        assert!(p.contains("<string>test.a.mail.mail."));
        let none = Servers {
            smtp: vec![],
            ..servers
        };
        assert!(profile("x@a.test", &none).is_none());
    }
}
