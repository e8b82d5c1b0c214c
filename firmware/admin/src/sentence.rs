//! Messages turned into sentences for a person at the page. Handlers and
//! the store word their messages for every caller, the command line
//! included (`no such domain x.test`, ``` `quota_mb` is missing```); a page
//! shows them as sentences: a capital letter, a full stop, the page's own
//! words for the API's field names, and nothing a person at a browser
//! cannot do (a `pochta …` command, a `--flag`). Free of I/O.

/// The words a page uses for a field an API message names in backticks.
const FIELDS: &[(&str, &str)] = &[
    ("address", "the address"),
    ("auto_reply", "the automatic answer"),
    ("code", "the code"),
    ("confirm", "the confirmation"),
    ("daily", "the number of daily snapshots"),
    ("folder", "the backup folder"),
    ("forward_to", "the forwarding address"),
    ("full", "the choice of a full test"),
    ("hour", "the hour"),
    ("monthly", "the number of monthly snapshots"),
    ("name", "the name"),
    ("password", "the password"),
    ("quota_bytes", "the quota"),
    ("quota_mb", "the quota"),
    ("setup_code", "the setup code"),
    ("target", "the target"),
    ("targets", "the list of targets"),
    ("totp", "the code"),
    ("user", "the user name"),
    ("weekly", "the number of weekly snapshots"),
];

/// `message` as a sentence for a page.
pub fn sentence(message: &str) -> String {
    let text = without_commands(message);
    let text = named_fields(&text);
    let text = text.trim().trim_end_matches([';', ',', ':']).trim_end();
    if text.is_empty() {
        return "The request failed.".to_owned();
    }
    let mut out = capitalised(text);
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// Whether a piece of a message tells the reader to run something.
fn is_command(piece: &str) -> bool {
    piece.contains("`pochta") || piece.contains(" --") || piece.starts_with("--")
}

/// The message without its command-line hints: a parenthesised hint
/// (`(add it first with `pochta domain add x`)`), an alternative that
/// names a command (`… or pass --host`) and a clause between `;` that
/// names one go; the rest stays.
fn without_commands(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find('(') {
        let Some(close) = rest[open..].find(')').map(|c| open + c) else {
            break;
        };
        out.push_str(&rest[..open]);
        if !is_command(&rest[open..=close]) {
            out.push_str(&rest[open..=close]);
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    let clauses: Vec<&str> = out
        .split("; ")
        .map(|clause| match clause.find(" or ") {
            Some(or) if is_command(&clause[or..]) => &clause[..or],
            _ => clause,
        })
        .filter(|clause| !is_command(clause))
        .collect();
    let text = clauses.join("; ");
    // Dropping a hint leaves a space before the punctuation that followed it.
    text.replace(" :", ":")
        .replace(" ,", ",")
        .replace("  ", " ")
}

/// Backticked field names as the page's words (or at least without the
/// backticks).
fn named_fields(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut parts = text.split('`');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (n, part) in parts.enumerate() {
        // Odd pieces (0, 2, … here) were inside backticks.
        if n % 2 == 0 {
            let word = FIELDS
                .iter()
                .find(|(field, _)| *field == part)
                .map_or(part, |(_, word)| word);
            out.push_str(word);
        } else {
            out.push_str(part);
        }
    }
    out
}

/// The sentence begun with a capital. A message that starts with what was
/// typed (an address, a quoted value, a number) keeps it as typed
/// (`anna@x.test` is not `Anna@x.test`) and gets a word before it.
fn capitalised(text: &str) -> String {
    let first_word = text.split([' ', ':', ',', ';']).next().unwrap_or("");
    let plain = first_word.starts_with(char::is_alphabetic)
        && !first_word.contains(['@', '.', '/', '"'])
        && !first_word.contains(|c: char| c.is_ascii_digit());
    if !plain {
        let what = if first_word.contains('@') && !first_word.starts_with('"') {
            "The address"
        } else {
            "The value"
        };
        return format!("{what} {text}");
    }
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_become_sentences() {
        let cases = [
            (
                "no such domain x.test (add it first with `pochta domain add x.test`)",
                "No such domain x.test.",
            ),
            (
                "domain x.test (add it first with `pochta domain add x.test`) has no accounts",
                "Domain x.test has no accounts.",
            ),
            (
                "the mail host \"vm\" is not a full domain name; set `hostname` in the \
                 configuration (such as mail.example.com) or pass --host",
                "The mail host \"vm\" is not a full domain name; set hostname in the \
                 configuration (such as mail.example.com).",
            ),
            (
                "`quota_mb` must be a whole number of megabytes from 0 (no limit) to 9",
                "The quota must be a whole number of megabytes from 0 (no limit) to 9.",
            ),
            ("`targets` is missing", "The list of targets is missing."),
            (
                "`odd_field` must be a string",
                "Odd_field must be a string.",
            ),
            (
                "setup is done: log in instead",
                "Setup is done: log in instead.",
            ),
            ("Already a sentence.", "Already a sentence."),
            (
                "example.test exists already",
                "The value example.test exists already.",
            ),
            (
                "42 is not an app password id",
                "The value 42 is not an app password id.",
            ),
            ("what now?", "What now?"),
            (
                "anna@x.test cannot be its own target",
                "The address anna@x.test cannot be its own target.",
            ),
            (
                "\"x\" is not an address (expected e.g. anna@example.com)",
                "The value \"x\" is not an address (expected e.g. anna@example.com).",
            ),
            ("run `pochta init` first; then try again", "Then try again."),
            ("", "The request failed."),
        ];
        for (message, want) in cases {
            assert_eq!(sentence(message), want, "{message}");
        }
    }

    #[test]
    fn no_message_keeps_a_command() {
        for message in [
            "no such domain x (add it first with `pochta domain add …`)",
            "wrong; try `pochta account add a@b.c` instead",
            "no key; pass --host mail.example.com",
        ] {
            let s = sentence(message);
            assert!(
                !s.contains('`') && !s.contains("pochta ") && !s.contains("--"),
                "{s}"
            );
        }
    }
}
