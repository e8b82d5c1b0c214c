//! The one set of rules for what an address and a password may be. The CLI,
//! the admin page and its API all create accounts and aliases through the
//! store, so a rule written here holds for all three.

use std::fmt;

/// Longest local part (RFC 5321 §4.5.3.1.1).
const MAX_LOCAL_OCTETS: usize = 64;
/// Longest domain (RFC 5321 §4.5.3.1.2, without the final dot).
const MAX_DOMAIN_OCTETS: usize = 253;

/// Shortest password anyone may set.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password: argon2id hashes any length, but nobody types more.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Why a text is not a mail address.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadAddress {
    /// No `@`, or nothing before or after it.
    NotLocalAtDomain,
    /// The local part has a character outside RFC 5321's dot-string (a
    /// space, a quote, a comma, a control character, a second `@`).
    LocalCharacter(char),
    /// The local part starts or ends with a dot or has two in a row.
    LocalDots,
    /// The local part is longer than 64 octets.
    LocalTooLong,
    /// The domain is not a host name with a top-level domain.
    Domain(String),
}

impl fmt::Display for BadAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadAddress::NotLocalAtDomain => write!(f, "an address looks like name@example.com"),
            BadAddress::LocalCharacter(c) if c.is_whitespace() => {
                write!(f, "an address cannot contain spaces")
            }
            BadAddress::LocalCharacter(c) if c.is_control() => {
                write!(f, "an address cannot contain control characters")
            }
            BadAddress::LocalCharacter(c) => write!(
                f,
                "the part before @ cannot contain {c:?} (use letters, digits and . - _ +)"
            ),
            BadAddress::LocalDots => write!(
                f,
                "the part before @ cannot start or end with a dot or have two dots in a row"
            ),
            BadAddress::LocalTooLong => {
                write!(
                    f,
                    "the part before @ is longer than {MAX_LOCAL_OCTETS} characters"
                )
            }
            BadAddress::Domain(why) => write!(f, "{why}"),
        }
    }
}

/// Checks a domain name: labels of letters, digits and hyphens (any
/// script, for internationalised names), at least two of them, so that
/// `nowhere` and `localhost` are refused. Trimmed, lower case, without the
/// final dot.
pub fn parse_domain(text: &str) -> Result<String, BadAddress> {
    let d = text.trim().trim_end_matches('.').to_lowercase();
    if d.is_empty() {
        return Err(BadAddress::Domain("the domain is empty".into()));
    }
    if d.len() > MAX_DOMAIN_OCTETS {
        return Err(BadAddress::Domain(format!(
            "the domain is longer than {MAX_DOMAIN_OCTETS} characters"
        )));
    }
    let labels_ok = d.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    });
    if !labels_ok {
        return Err(BadAddress::Domain(format!(
            "{d:?} is not a domain name (expected e.g. example.com)"
        )));
    }
    if !d.contains('.') {
        return Err(BadAddress::Domain(format!(
            "{d:?} is not a domain name: it has no top-level domain such as .com"
        )));
    }
    Ok(d)
}

/// Checks and normalises an address (`local@domain`): trimmed, lower case.
/// The local part is an RFC 5321 dot-string, with UTF-8 allowed (RFC 6531);
/// quoted local parts are refused, as no mail client needs them for a
/// mailbox of its own.
pub fn parse_address(text: &str) -> Result<String, BadAddress> {
    let a = text.trim().to_lowercase();
    let (local, domain) = a.rsplit_once('@').ok_or(BadAddress::NotLocalAtDomain)?;
    if local.is_empty() || domain.is_empty() {
        return Err(BadAddress::NotLocalAtDomain);
    }
    // RFC 5321 §4.1.2 atext, plus anything beyond ASCII (RFC 6531 §3.3).
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    if let Some(c) = local.chars().find(|&c| {
        !(atext(c) || c == '.' || (!c.is_ascii() && !c.is_control() && !c.is_whitespace()))
    }) {
        return Err(BadAddress::LocalCharacter(c));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(BadAddress::LocalDots);
    }
    if local.len() > MAX_LOCAL_OCTETS {
        return Err(BadAddress::LocalTooLong);
    }
    let domain = parse_domain(domain)?;
    Ok(format!("{local}@{domain}"))
}

/// Why a password is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WeakPassword {
    /// Fewer than [`MIN_PASSWORD_CHARS`] characters.
    TooShort,
    /// More than [`MAX_PASSWORD_CHARS`] characters.
    TooLong,
    /// Fewer than five different characters.
    TooSimple,
    /// It contains the user's name (the part before `@`).
    ContainsUserName,
    /// A common password with a few characters added.
    Common,
}

impl fmt::Display for WeakPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeakPassword::TooShort => write!(
                f,
                "password too short: use at least {MIN_PASSWORD_CHARS} characters \
                 (a few words make a good one)"
            ),
            WeakPassword::TooLong => {
                write!(
                    f,
                    "password too long: use at most {MAX_PASSWORD_CHARS} characters"
                )
            }
            WeakPassword::TooSimple => {
                write!(f, "password too simple: it repeats the same few characters")
            }
            WeakPassword::ContainsUserName => write!(f, "password must not contain the user name"),
            WeakPassword::Common => {
                write!(
                    f,
                    "password too easy to guess: avoid common words and sequences"
                )
            }
        }
    }
}

/// Checks a password someone chose for `user` (an address or an
/// administrator's name): long enough, not one repeated character class,
/// not the user's name, not a common password with a suffix.
pub fn check_password(password: &str, user: &str) -> Result<(), WeakPassword> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(WeakPassword::TooShort);
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(WeakPassword::TooLong);
    }
    let distinct: std::collections::HashSet<char> = password.chars().collect();
    if distinct.len() < 5 {
        return Err(WeakPassword::TooSimple);
    }
    let lower = password.to_lowercase();
    let local = user.split('@').next().unwrap_or("").to_lowercase();
    if local.chars().count() >= 3 && lower.contains(&local) {
        return Err(WeakPassword::ContainsUserName);
    }
    const COMMON: [&str; 9] = [
        "password", "passwort", "123456", "qwerty", "letmein", "welcome", "admin", "pochta",
        "iloveyou",
    ];
    // A common word with a few characters added is among the first guesses.
    let padded_common = COMMON.iter().any(|c| {
        lower
            .strip_prefix(c)
            .is_some_and(|rest| rest.chars().count() < 8)
    });
    if padded_common {
        return Err(WeakPassword::Common);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let good = [
            ("Alice@Example.COM", "alice@example.com"),
            (" bob@example.com ", "bob@example.com"),
            (
                "first.last+tag@mail.example.org",
                "first.last+tag@mail.example.org",
            ),
            ("o'brien@example.ie", "o'brien@example.ie"),
            ("jürgen@müller.de", "jürgen@müller.de"),
            ("x@example.com.", "x@example.com"),
        ];
        for (text, normal) in good {
            assert_eq!(parse_address(text).as_deref(), Ok(normal), "{text}");
        }
        let bad = [
            ("a b@example.com", "spaces"),
            ("a\tb@example.com", "spaces"),
            ("nosuch@nowhere", "no top-level domain"),
            ("x@localhost", "no top-level domain"),
            ("plain", "name@example.com"),
            ("@example.com", "name@example.com"),
            ("x@", "name@example.com"),
            ("a,b@example.com", "','"),
            ("\"a\"@example.com", "'\"'"),
            ("a@b@example.com", "'@'"),
            (".a@example.com", "dot"),
            ("a..b@example.com", "dot"),
            ("x@exa mple.com", "not a domain name"),
            ("x@-example.com", "not a domain name"),
        ];
        for (text, needle) in bad {
            let e = parse_address(text).expect_err(text).to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
        assert!(parse_address(&format!("{}@example.com", "a".repeat(65))).is_err());
        assert!(parse_address(&format!("{}@example.com", "a".repeat(64))).is_ok());
    }

    #[test]
    fn passwords() {
        let cases = [
            ("short", "root", Some(WeakPassword::TooShort)),
            ("Summer2024!", "root", Some(WeakPassword::TooShort)),
            ("aaaaaaaaaaaaaaaa", "root", Some(WeakPassword::TooSimple)),
            ("ababababababab", "root", Some(WeakPassword::TooSimple)),
            (
                "my-rootpassword-7",
                "root",
                Some(WeakPassword::ContainsUserName),
            ),
            (
                "alice-Secret-pw-1",
                "alice@example.test",
                Some(WeakPassword::ContainsUserName),
            ),
            ("password1234", "root", Some(WeakPassword::Common)),
            ("Welcome2026!", "root", Some(WeakPassword::Common)),
            ("correct horse battery", "root", None),
            ("Tr0ub4dor&3xyz", "admin@x", None),
        ];
        for (pw, user, expected) in cases {
            assert_eq!(check_password(pw, user).err(), expected, "{pw}");
        }
        assert_eq!(
            check_password(&"xyzzy".repeat(400), "root"),
            Err(WeakPassword::TooLong)
        );
    }
}
