//! Password strength for administrators and accounts set on the admin page:
//! long enough, not one repeated character class, not the user name.

/// Shortest password the page accepts.
pub const MIN_LENGTH: usize = 12;

/// `Err` with a message for the person typing when the password is weak.
pub fn check(password: &str, user: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_LENGTH {
        return Err(format!(
            "password too short: use at least {MIN_LENGTH} characters (a few words make a good one)"
        ));
    }
    if n > 1024 {
        return Err("password too long: use at most 1024 characters".into());
    }
    let distinct: std::collections::HashSet<char> = password.chars().collect();
    if distinct.len() < 5 {
        return Err("password too simple: it repeats the same few characters".into());
    }
    let lower = password.to_lowercase();
    let local = user.split('@').next().unwrap_or("").to_lowercase();
    if local.len() >= 3 && lower.contains(&local) {
        return Err("password must not contain the user name".into());
    }
    const COMMON: [&str; 6] = ["password", "123456", "qwerty", "letmein", "admin", "pochta"];
    // A common word with a few characters added is among the first guesses.
    let padded_common = COMMON.iter().any(|c| {
        lower
            .strip_prefix(c)
            .is_some_and(|rest| rest.chars().count() < 8)
    });
    if padded_common {
        return Err("password too easy to guess: avoid common words and sequences".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_and_strong() {
        let cases = [
            ("short", "root", Some("too short")),
            ("aaaaaaaaaaaaaaaa", "root", Some("too simple")),
            ("ababababababab", "root", Some("too simple")),
            ("my-rootpassword-7", "root", Some("user name")),
            ("alice-Secret-pw-1", "alice@example.test", Some("user name")),
            ("password1234", "root", Some("too easy")),
            ("correct horse battery", "root", None),
            ("Tr0ub4dor&3xyz", "admin@x", None),
        ];
        for (pw, user, expected) in cases {
            match (check(pw, user), expected) {
                (Ok(()), None) => {}
                (Err(e), Some(needle)) => assert!(e.contains(needle), "{pw}: {e}"),
                (got, _) => panic!("{pw}: {got:?}, expected {expected:?}"),
            }
        }
        assert!(check(&"x".repeat(2000), "root").is_err());
    }
}
