//! The `Message-ID:` of a received message, for the mail log: the one name
//! of a message that its sender and its recipients both see, so that "where
//! is my mail?" can be looked up by it.

use std::io::Read;
use std::path::Path;

/// Header bytes looked at: the header section of ordinary mail fits, and a
/// message with a huge header just goes without an id in the log.
const HEAD: u64 = 64 * 1024;

/// Longest id kept (RFC 5322 §2.1.1's line limit).
const MAX_ID: usize = 998;

/// The `Message-ID:` field of the message in `path` (RFC 5322 §3.6.4),
/// unfolded and trimmed; `None` when it has none in its first [`HEAD`]
/// bytes or the file cannot be read.
pub(crate) fn read(path: &Path) -> Option<String> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(HEAD).read_to_end(&mut head))
        .ok()?;
    find(&head)
}

/// The field in a header section (RFC 5322 §2.2: `name:` at a line start,
/// continued by lines starting with white space; §2.2.3 unfolding).
fn find(head: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(head);
    let mut found: Option<String> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(value) = found.as_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if found.is_some() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim_end().eq_ignore_ascii_case("message-id") {
                found = Some(value.trim().to_owned());
            }
        }
    }
    let id: String = found?.chars().filter(|c| !c.is_control()).collect();
    let id = id.trim();
    (!id.is_empty()).then(|| id.chars().take(MAX_ID).collect())
}

#[cfg(test)]
mod tests {
    use super::find;

    #[test]
    fn finds_the_field() {
        let cases: [(&[u8], Option<&str>); 6] = [
            (
                b"Received: x\r\n\tby y\r\nMessage-ID: <a@b>\r\n\r\nbody",
                Some("<a@b>"),
            ),
            (
                b"message-id:\r\n <folded@b>\r\nSubject: s\r\n\r\n",
                Some("<folded@b>"),
            ),
            (b"Subject: s\r\n\r\nMessage-ID: <in-body@b>\r\n", None),
            (b"Message-ID:   \r\n\r\n", None),
            (b"X-Message-ID: <not@this>\r\n\r\n", None),
            (b"Message-Id : <spaced@b>\n\n", Some("<spaced@b>")),
        ];
        for (head, expected) in cases {
            assert_eq!(
                find(head).as_deref(),
                expected,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }
}
