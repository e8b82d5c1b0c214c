//! The administration commands, one file per noun. They use the store
//! directly, so they work whether or not `pochta serve` is running (SQLite
//! WAL lets both write safely), and they never create a data folder: that
//! is `serve`'s and `init`'s job (see `datadir`).
//!
//! Every listing says so when it is empty, sizes are in human units (exact
//! bytes in `--json`), and a command that destroys something asks first
//! (`confirm`).

pub mod account;
pub mod alias;
pub mod backup;
pub mod domain;
pub mod health;
pub mod mailbox;
pub mod queue;
pub mod status;

use std::io::{BufRead, IsTerminal, Write};

/// What a person types to go ahead with a destructive command.
pub enum Answer<'a> {
    /// This exact text (an address, a domain), as the admin page asks.
    Typed(&'a str),
    /// `y` or `yes`.
    Yes,
}

/// Asks before a destructive command acts. `--yes` goes ahead at once; on
/// a terminal the person is shown `warning` and asked; otherwise (a script
/// without `--yes`) nothing happens and the error says how to confirm.
pub fn confirm(yes: bool, warning: &str, answer: Answer) -> Result<(), String> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "{warning}\nNothing was changed: add --yes to confirm."
        ));
    }
    let prompt = match answer {
        Answer::Typed(text) => format!("Type {text} to confirm: "),
        Answer::Yes => "Go ahead? [y/N] ".to_string(),
    };
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{warning}\n{prompt}");
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    let line = line.trim();
    let agreed = match answer {
        Answer::Typed(text) => line.eq_ignore_ascii_case(text),
        Answer::Yes => matches!(line.to_ascii_lowercase().as_str(), "y" | "yes"),
    };
    if agreed {
        Ok(())
    } else {
        Err("nothing was changed".into())
    }
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `1 message`, `3 messages`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Truncates to `width` characters with an ellipsis, for table columns.
pub fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(count(1, "message", "messages"), "1 message");
        assert_eq!(count(0, "message", "messages"), "0 messages");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }
}
