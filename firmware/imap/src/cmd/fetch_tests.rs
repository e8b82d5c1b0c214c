//! ENVELOPE, BODY and BODYSTRUCTURE sent from the store's cache are the
//! bytes FETCH makes from the file: for a set of awkward messages, through
//! a real store and its background indexer.

use std::time::{Duration, Instant};

use imap_codec::imap_types::fetch::MessageDataItemName;
use pochta_store::{BlobId, Extractor, Store};

use super::write_items;
use crate::mime;

/// Messages whose structure is easy to get wrong: the conformance suite's
/// fixtures (LF line ends, as stored in the repo) and more.
fn corpus() -> Vec<Vec<u8>> {
    let fixtures: [&[u8]; 11] = [
        include_bytes!("../../../../tests/e2e/imap_scripts/messages/b64.eml"),
        include_bytes!("../../../../tests/e2e/imap_scripts/messages/groups.eml"),
        include_bytes!("../../../../tests/e2e/imap_scripts/messages/mixed.eml"),
        include_bytes!("../../../../tests/e2e/imap_scripts/messages/qp.eml"),
        include_bytes!("../../../../tests/e2e/imap_scripts/messages/rfc3501-append.eml"),
        include_bytes!("../../../../tests/e2e/imap_scripts/messages/rfc3501-fetch.eml"),
        include_bytes!("../../../../tests/e2e/imap_scripts/messages/rfc3501-sections.eml"),
        include_bytes!("../../../../tests/e2e/imap_scripts/messages/s1.eml"),
        include_bytes!("../../../../tests/e2e/imap_scripts/messages/s2.eml"),
        include_bytes!("../../../../tests/e2e/imap_scripts/messages/s3.eml"),
        include_bytes!("../../../../tests/e2e/imap_scripts/messages/s4.eml"),
    ];
    let mut all: Vec<Vec<u8>> = fixtures.iter().map(|f| f.to_vec()).collect();
    // The same with CRLF, as mail arrives over SMTP.
    all.extend(fixtures.iter().map(|f| {
        String::from_utf8_lossy(f)
            .replace('\n', "\r\n")
            .into_bytes()
    }));
    let crafted: [&[u8]; 14] = [
        // Nothing at all, and a blank line only: no parse, default forms.
        b"",
        b"\r\n",
        // Headers without a body or a blank line.
        b"Subject: no body\r\nFrom: a@example.com",
        // Encoded words, folding, quotes and backslashes, raw UTF-8 (sent as
        // literals), a comment in the date, no Message-ID.
        "Subject: =?utf-8?B?w5xiZXIgZGllIEJyw7xja2U=?=\r\n =?iso-8859-1?Q?caf=E9?= and \"quotes\" \\ too\r\n\
From: =?utf-8?Q?J=C3=B6rg?= <j@example.de>, \"Smith, J. \\\"JJ\\\"\" <jj@example.com>\r\n\
To: Zoë <zoe@example.com>\r\nCc: bare@example.com, (comment) <c@example.com>\r\n\
Bcc: undisclosed-recipients:;\r\nDate: Tue, 1 Jul 2003 10:52:37 +0200 (CEST)\r\n\
In-Reply-To: <a@b> <c@d>\r\n\r\nbody\r\n"
            .as_bytes(),
        // A forwarded message inside a multipart, with its own multipart.
        b"From: a@example.com\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n\
--outer\r\nContent-Type: text/plain\r\n\r\nsee below\r\n\
--outer\r\nContent-Type: message/rfc822\r\nContent-Description: the original\r\n\r\n\
From: b@example.com\r\nTo: c@example.com\r\nSubject: original\r\nMessage-ID: <o@x>\r\n\
Content-Type: multipart/alternative; boundary=inner\r\n\r\n\
--inner\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n\
--inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>caf\xc3\xa9</p>\r\n--inner--\r\n\
--outer\r\nContent-Type: application/octet-stream; name=\"a b.bin\"\r\nContent-ID: <part3@x>\r\n\
Content-Disposition: attachment; filename=\"a b.bin\"; size=3\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n\
--outer--\r\n",
        // An empty enclosed message.
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n--b--\r\n",
        // A multipart with no boundary, one never closed, one with no parts.
        b"Content-Type: multipart/mixed\r\n\r\nno boundary given\r\n",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nnever closed",
        b"Content-Type: multipart/related; boundary=y; type=\"text/html\"\r\n\r\npreamble only\r\n--y--\r\n",
        // Odd types and encodings, disposition without parameters, a part
        // without Content-Type.
        b"Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n\r\nno content type\r\n\
--z\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: x-uuencode\r\nContent-Disposition: inline\r\n\r\nbegin 644\r\n\
--z\r\nContent-Type: TEXT/Calendar; METHOD=REQUEST; charset=\"UTF-8\"\r\n\r\nBEGIN:VCALENDAR\r\n--z--\r\n",
        // Bare LF, NUL and 8-bit bytes in the body, a very long subject.
        b"Subject: lf only\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\nna\xefve \x00 nul\nline 2\n",
        b"Subject: \xff\xfe not utf-8\r\nFrom: \xe9@example.com\r\n\r\n\xff\r\n",
        // Address list oddities: empty display name, no domain, a route.
        b"From: \"\" <@route.example:user@example.com>\r\nTo: localonly, <>\r\nSender: ,\r\nReply-To: \r\n\r\nx\r\n",
        b"Content-Type: text/plain\r\nContent-Type: text/html\r\nMIME-Version: 1.0\r\n\r\ntwo content types\r\n",
    ];
    all.extend(crafted.iter().map(|m| m.to_vec()));
    all.push(format!("Subject: {}\r\n\r\nlong\r\n", "word ".repeat(400)).into_bytes());
    // Nested beyond mime::MAX_DEPTH.
    let mut deep = String::new();
    for i in 0..40 {
        deep.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"d{i}\"\r\n\r\n--d{i}\r\n"
        ));
    }
    deep.push_str("Content-Type: text/plain\r\n\r\nbottom\r\n");
    all.push(deep.into_bytes());
    all
}

const ITEMS: [MessageDataItemName<'static>; 4] = [
    MessageDataItemName::Uid,
    MessageDataItemName::Envelope,
    MessageDataItemName::Body,
    MessageDataItemName::BodyStructure,
];

#[test]
fn cached_structures_are_the_bytes_fetch_computes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.add_domain("example.com").unwrap();
    let bob = store
        .add_account("bob@example.com", "Correct-horse-7", 0)
        .unwrap();
    let corpus = corpus();
    for raw in &corpus {
        let mut w = store.blob_writer().unwrap();
        w.write(raw).unwrap();
        store
            .append(bob, "INBOX", w.finish().unwrap(), Vec::new(), Some(0))
            .unwrap();
    }
    store
        .start_indexer(Extractor {
            structure_version: mime::STRUCTURE_VERSION,
            extract: std::sync::Arc::new(mime::extract),
        })
        .unwrap();
    let inbox = store.folder(bob, "INBOX").unwrap().unwrap();
    let messages = store.folder_messages(inbox.id).unwrap();
    assert_eq!(messages.len(), corpus.len());
    let blobs: Vec<BlobId> = messages.iter().map(|m| m.blob.clone()).collect();
    let distinct: std::collections::HashSet<&BlobId> = blobs.iter().collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let cached = loop {
        let cached = store
            .cached_structures(&blobs, mime::STRUCTURE_VERSION)
            .unwrap();
        if cached.len() == distinct.len() {
            break cached;
        }
        assert!(
            Instant::now() < deadline,
            "indexer cached {} of {} bodies within 60 s",
            cached.len(),
            distinct.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    for (m, raw) in messages.iter().zip(&corpus) {
        let stored = std::fs::read(store.blob_path(&m.blob)).unwrap();
        assert_eq!(&stored, raw, "message {} stored as given", m.uid);
        let mut computed = Vec::new();
        write_items(&mut computed, &ITEMS, m, Some(raw), None);
        let mut from_cache = Vec::new();
        write_items(&mut from_cache, &ITEMS, m, None, Some(&cached[&m.blob]));
        assert_eq!(
            String::from_utf8_lossy(&from_cache),
            String::from_utf8_lossy(&computed),
            "message {}:\n{}",
            m.uid,
            String::from_utf8_lossy(raw)
        );
        assert_eq!(from_cache, computed, "message {}", m.uid);
    }
}

/// FNV-1a, 64 bits: a stable digest for the pin below.
fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The cache keeps forms made by earlier builds: a change to what
/// `mime::envelope_or_nil` or `mime::body_structure_or_default` write must
/// come with a new `mime::STRUCTURE_VERSION`, or clients get stale forms.
#[test]
fn structure_output_is_pinned() {
    let mut h = 0xcbf2_9ce4_8422_2325;
    for raw in corpus() {
        let s = mime::structure_of(mime::parse(&raw).as_ref());
        for form in [&s.envelope, &s.body, &s.body_structure] {
            h = fnv1a(form, h);
            h = fnv1a(b"\0", h);
        }
    }
    assert_eq!(
        (mime::STRUCTURE_VERSION, format!("{h:016x}")),
        (2, "25cc11772746433d".to_string()),
        "ENVELOPE/BODY/BODYSTRUCTURE output changed (new code or a new \
         mail-parser): bump mime::STRUCTURE_VERSION, so that the store \
         remakes its cached forms, and pin the new version and digest here. \
         (Only the corpus changed: pin the new digest alone.)"
    );
}

/// The header items mail clients list folders with.
fn header_items() -> Vec<MessageDataItemName<'static>> {
    use imap_codec::imap_types::core::{AString, Vec1};
    use imap_codec::imap_types::fetch::Section;
    let names = |list: &[&'static str]| -> Vec1<AString<'static>> {
        Vec1::try_from(
            list.iter()
                .map(|n| AString::try_from(*n).unwrap())
                .collect::<Vec<_>>(),
        )
        .unwrap()
    };
    let body = |section| MessageDataItemName::BodyExt {
        section: Some(section),
        partial: None,
        peek: true,
    };
    vec![
        MessageDataItemName::Uid,
        MessageDataItemName::Rfc822Header,
        body(Section::Header(None)),
        body(Section::HeaderFields(
            None,
            names(&[
                "From",
                "To",
                "Cc",
                "Subject",
                "Date",
                "Message-ID",
                "Content-Type",
            ]),
        )),
        body(Section::HeaderFieldsNot(
            None,
            names(&["Received", "Subject"]),
        )),
        MessageDataItemName::BodyExt {
            section: Some(Section::HeaderFields(None, names(&["Subject"]))),
            partial: Some((2, std::num::NonZeroU32::new(10).unwrap())),
            peek: true,
        },
    ]
}

/// HEADER sections answered from the start of the file (read_header) are
/// the bytes answered from the whole file, also when the blank line
/// straddles two reads.
#[test]
fn header_sections_need_only_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let mut corpus = corpus();
    for pad in 8170..8200 {
        let header = format!("X-Pad: {}\r\nSubject: padded\r\n", "p".repeat(pad - 34));
        corpus.push(format!("{header}\r\nbody after the blank line\r\n").into_bytes());
    }
    let big = format!(
        "Subject: big\r\n\r\n{}",
        "attachment line\r\n".repeat(100_000)
    );
    corpus.push(big.into_bytes());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let items = header_items();
    for (i, raw) in corpus.iter().enumerate() {
        let path = dir.path().join(format!("m{i}"));
        std::fs::write(&path, raw).unwrap();
        let head = runtime.block_on(super::read_header(&path)).unwrap();
        assert!(raw.starts_with(&head), "message {i}: a prefix");
        let header_end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(raw.len(), |p| p + 4);
        assert_eq!(
            head.len(),
            header_end,
            "message {i}: read up to the blank line"
        );
        let meta = pochta_store::Message {
            uid: i as u32 + 1,
            modseq: 1,
            size: raw.len() as u64,
            blob: BlobId(String::new()),
            internaldate: 0,
            flags: Vec::new(),
        };
        let mut whole = Vec::new();
        write_items(&mut whole, &items, &meta, Some(raw), None);
        let mut from_head = Vec::new();
        write_items(&mut from_head, &items, &meta, Some(&head), None);
        assert_eq!(
            String::from_utf8_lossy(&from_head),
            String::from_utf8_lossy(&whole),
            "message {i}"
        );
    }
}
