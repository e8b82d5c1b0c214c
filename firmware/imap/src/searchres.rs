//! SEARCHRES (RFC 5182, part of IMAP4rev2: RFC 9051 §6.4.4.1): `$` stands
//! for the result of the last `SEARCH RETURN (SAVE)`.
//!
//! imap-codec does not know `$`, so it is handled in two steps. Before the
//! codec sees a command, [`rewrite`] replaces each `$` that stands where a
//! sequence set may (the set of FETCH, STORE, COPY, MOVE, UID EXPUNGE; a
//! search key of SEARCH, SORT and THREAD, or the argument of their UID key)
//! with a placeholder set no client sends. After parsing, [`resolve`] puts
//! the saved messages in its place: UIDs for UID commands and search keys,
//! the current sequence numbers otherwise.
//!
//! Sans-I/O: bytes in, bytes out; parsed commands in, parsed commands out.

use std::sync::LazyLock;

use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::SequenceSet;

use crate::cmd::copy::uid_set;
use crate::lex::lex;
use crate::selected::Selected;

/// What `$` becomes for the codec: a valid set nobody writes.
const PLACEHOLDER: &str = "4294967295:4294967295,1:1,4294967295:4294967295";

static PLACEHOLDER_SET: LazyLock<SequenceSet> =
    LazyLock::new(|| SequenceSet::try_from(PLACEHOLDER).expect("a valid sequence set"));

/// Why a command with `$` cannot be rewritten.
#[derive(Debug, PartialEq, Eq)]
pub struct Ambiguous;

/// The command with each `$` replaced by the placeholder; `Ok(None)` when
/// it has none. A command that already holds the placeholder's text next
/// to a `$` is refused rather than guessed at.
pub fn rewrite(message: &[u8]) -> Result<Option<Vec<u8>>, Ambiguous> {
    if !message.contains(&b'$') {
        return Ok(None);
    }
    let tokens = lex(message);
    let atom = |i: usize| tokens.get(i).and_then(|t| t.atom(message));
    let is =
        |i: usize, word: &str| atom(i).is_some_and(|a| a.eq_ignore_ascii_case(word.as_bytes()));
    let mut first = 1;
    if is(1, "UID") {
        first = 2;
    }
    let Some(verb) = atom(first).map(|v| v.to_ascii_uppercase()) else {
        return Ok(None);
    };
    let args = first + 1;
    let mut dollars = Vec::new();
    match verb.as_slice() {
        b"FETCH" | b"STORE" | b"COPY" | b"MOVE" | b"EXPUNGE" if atom(args) == Some(b"$") => {
            dollars.push(args);
        }
        b"SEARCH" | b"SORT" | b"THREAD" => {
            for i in args..tokens.len() {
                if atom(i) != Some(b"$") {
                    continue;
                }
                // After SUBJECT, CHARSET etc. a `$` is that key's argument.
                let argument_of = |j: usize| {
                    atom(j).is_some_and(|a| {
                        (crate::nesting::arguments(a) > 0 && !a.eq_ignore_ascii_case(b"UID"))
                            || a.eq_ignore_ascii_case(b"CHARSET")
                    })
                };
                // `HEADER name $`: the value.
                if argument_of(i - 1) || (i >= 2 && is(i - 2, "HEADER")) {
                    continue;
                }
                dollars.push(i);
            }
        }
        _ => {}
    }
    if dollars.is_empty() {
        return Ok(None);
    }
    if message
        .windows(PLACEHOLDER.len())
        .any(|w| w == PLACEHOLDER.as_bytes())
    {
        return Err(Ambiguous);
    }
    let mut out = Vec::with_capacity(message.len() + dollars.len() * PLACEHOLDER.len());
    let mut at = 0;
    for i in dollars {
        out.extend_from_slice(&message[at..tokens[i].start]);
        out.extend_from_slice(PLACEHOLDER.as_bytes());
        at = tokens[i].end;
    }
    out.extend_from_slice(&message[at..]);
    Ok(Some(out))
}

/// What [`resolve`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    /// The command now names the saved messages (or had no `$`).
    Ready,
    /// `$` is empty (or none of its messages is left) in a command that
    /// acts on messages: it succeeds doing nothing (RFC 5182 §2.1).
    Nothing,
}

/// Puts the saved result in place of the placeholder. `saved` is sorted
/// UIDs; `view` the selected folder, for sequence numbers.
pub fn resolve(body: &mut CommandBody<'_>, saved: &[u32], view: Option<&Selected>) -> Resolved {
    let as_seqs = |set: &mut SequenceSet, by_uid: bool| -> Resolved {
        if *set != *PLACEHOLDER_SET {
            return Resolved::Ready;
        }
        let numbers: Vec<u32> = if by_uid {
            saved.to_vec()
        } else {
            saved
                .iter()
                .filter_map(|u| view.and_then(|v| v.seq_of(*u)))
                .collect()
        };
        match SequenceSet::try_from(uid_set(&numbers).as_str()) {
            Ok(s) => {
                *set = s;
                Resolved::Ready
            }
            Err(_) => Resolved::Nothing,
        }
    };
    match body {
        CommandBody::Fetch {
            sequence_set, uid, ..
        }
        | CommandBody::Store {
            sequence_set, uid, ..
        }
        | CommandBody::Copy {
            sequence_set, uid, ..
        }
        | CommandBody::Move {
            sequence_set, uid, ..
        } => as_seqs(sequence_set, *uid),
        CommandBody::ExpungeUid { sequence_set } => as_seqs(sequence_set, true),
        CommandBody::Search { criteria, .. } => {
            resolve_keys(criteria, saved);
            Resolved::Ready
        }
        CommandBody::Sort {
            search_criteria, ..
        }
        | CommandBody::Thread {
            search_criteria, ..
        } => {
            resolve_keys(search_criteria, saved);
            Resolved::Ready
        }
        _ => Resolved::Ready,
    }
}

/// [`resolve`] for the criteria of a `SEARCH RETURN (...)`, which reaches
/// the session apart from other commands.
pub fn resolve_search(keys: &mut Vec1<SearchKey<'_>>, saved: &[u32]) {
    resolve_keys(keys, saved);
}

fn resolve_keys(keys: &mut Vec1<SearchKey<'_>>, saved: &[u32]) {
    let mut list = std::mem::replace(keys, Vec1::from(SearchKey::All)).into_inner();
    list.iter_mut().for_each(|k| resolve_key(k, saved));
    // As many keys as before: still at least one.
    *keys = Vec1::unvalidated(list);
}

/// `$` as a search key, or as the argument of UID, matches the saved
/// messages by UID; an empty `$` matches nothing.
fn resolve_key(key: &mut SearchKey<'_>, saved: &[u32]) {
    match key {
        SearchKey::SequenceSet(set) | SearchKey::Uid(set) if *set == *PLACEHOLDER_SET => {
            *key = match SequenceSet::try_from(uid_set(saved).as_str()) {
                Ok(uids) => SearchKey::Uid(uids),
                Err(_) => SearchKey::Not(Box::new(SearchKey::All)),
            };
        }
        SearchKey::And(keys) => resolve_keys(keys, saved),
        SearchKey::Or(a, b) => {
            resolve_key(a, saved);
            resolve_key(b, saved);
        }
        SearchKey::Not(k) => resolve_key(k, saved),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(s: &str) -> Option<String> {
        rewrite(s.as_bytes())
            .unwrap()
            .map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn dollar_is_replaced_where_a_set_may_stand() {
        let p = PLACEHOLDER;
        assert_eq!(
            rw("a FETCH $ (FLAGS)\r\n"),
            Some(format!("a FETCH {p} (FLAGS)\r\n"))
        );
        assert_eq!(
            rw("a UID FETCH $ UID\r\n"),
            Some(format!("a UID FETCH {p} UID\r\n"))
        );
        assert_eq!(
            rw("a UID EXPUNGE $\r\n"),
            Some(format!("a UID EXPUNGE {p}\r\n"))
        );
        assert_eq!(
            rw("a COPY $ Trash\r\n"),
            Some(format!("a COPY {p} Trash\r\n"))
        );
        assert_eq!(
            rw("a SEARCH OR $ (UID $) FLAGGED\r\n"),
            Some(format!("a SEARCH OR {p} (UID {p}) FLAGGED\r\n"))
        );
        assert_eq!(
            rw("a UID SORT (DATE) UTF-8 $\r\n"),
            Some(format!("a UID SORT (DATE) UTF-8 {p}\r\n"))
        );
    }

    #[test]
    fn dollar_as_a_string_or_flag_stays() {
        for s in [
            "a COPY 1:2 $\r\n",
            "a STORE 1 +FLAGS ($)\r\n",
            "a SEARCH SUBJECT $\r\n",
            "a SEARCH HEADER X-Tag $\r\n",
            "a SEARCH KEYWORD $\r\n",
            "a SEARCH TEXT \"$\"\r\n",
            "a SEARCH BODY {1}\r\n$ ALL\r\n",
            "a FETCH 1 BODY[$]\r\n",
            "a SEARCH $Forwarded\r\n",
            "a APPEND $ {1}\r\n$\r\n",
        ] {
            assert_eq!(rw(s), None, "{s:?}");
        }
    }

    #[test]
    fn placeholder_text_with_a_dollar_is_refused() {
        let s = format!("a SEARCH $ UID {PLACEHOLDER}\r\n");
        assert_eq!(rewrite(s.as_bytes()), Err(Ambiguous));
    }

    #[test]
    fn hostile_literal_lengths_do_not_panic() {
        for s in [
            "a SEARCH {99999999999999999999}\r\n$\r\n",
            "a SEARCH {18446744073709551615}\r\n $\r\n",
            "a SEARCH ~{5}\r\n$",
            "a SEARCH \"\\",
            "$",
            "a $",
        ] {
            let _ = rewrite(s.as_bytes());
        }
    }
}
