//! The structure cache: filled by the background indexer, keyed by body,
//! remade for a new renderer, never holding made-up forms for a file that
//! could not be read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

/// A stand-in for the protocol crate's parser: header and body text as
/// they are, and "forms" that show which renderer made them.
pub(crate) fn extractor(version: u32) -> Extractor {
    Extractor {
        structure_version: version,
        extract: Arc::new(move |raw: &[u8]| {
            let text = String::from_utf8_lossy(raw);
            let (h, b) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            Extracted {
                text: IndexText {
                    headers: h.to_string(),
                    body: b.to_string(),
                },
                structure: forms(version, raw),
            }
        }),
    }
}

fn forms(version: u32, raw: &[u8]) -> Structure {
    Structure {
        envelope: format!("v{version} envelope of {} bytes", raw.len()).into_bytes(),
        body: format!("v{version} body").into_bytes(),
        body_structure: format!("v{version} bodystructure").into_bytes(),
    }
}

fn setup() -> (tempfile::TempDir, Store, AccountId) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.add_domain("example.com").unwrap();
    let bob = store
        .add_account("bob@example.com", "Correct-horse-7", 0)
        .unwrap();
    (dir, store, bob)
}

fn append(s: &Store, account: AccountId, folder: &str, body: &str) -> BlobId {
    let mut w = s.blob_writer().unwrap();
    w.write(body.as_bytes()).unwrap();
    let staged = w.finish().unwrap();
    let blob = staged.id.clone();
    s.append(account, folder, staged, Vec::new(), Some(1_700_000_000))
        .unwrap();
    blob
}

/// Waits (bounded) until `done` holds.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rows(s: &Store) -> i64 {
    s.conn()
        .unwrap()
        .query_row("SELECT count(*) FROM blob_structure", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn indexer_caches_structures_by_body() {
    let (_d, s, bob) = setup();
    let a = append(&s, bob, "INBOX", "Subject: a\r\n\r\nfirst\r\n");
    let b = append(&s, bob, "INBOX", "Subject: b\r\n\r\nsecond one\r\n");
    // The same body in another folder is the same cache row.
    assert_eq!(append(&s, bob, "Archive", "Subject: a\r\n\r\nfirst\r\n"), a);
    let blobs = [a.clone(), b.clone()];
    assert!(s.cached_structures(&blobs, 1).unwrap().is_empty());
    s.start_indexer(extractor(1)).unwrap();
    wait_for("structures cached", || {
        s.cached_structures(&blobs, 1).unwrap().len() == 2
    });
    let cached = s.cached_structures(&blobs, 1).unwrap();
    assert_eq!(cached[&a], forms(1, b"Subject: a\r\n\r\nfirst\r\n"));
    assert_eq!(cached[&b], forms(1, b"Subject: b\r\n\r\nsecond one\r\n"));
    assert_eq!(rows(&s), 2);
    assert!(
        s.cached_structures(&blobs, 2).unwrap().is_empty(),
        "another renderer's forms are not handed out"
    );
    let unknown = BlobId("0".repeat(64));
    assert_eq!(
        s.cached_structures(&[unknown, a.clone(), a.clone()], 1)
            .unwrap()
            .len(),
        1
    );
    assert!(s.cached_structures(&[], 1).unwrap().is_empty());
}

#[test]
fn a_new_renderer_remakes_the_forms_and_keeps_the_text_index() {
    let dir = tempfile::tempdir().unwrap();
    let body = "Subject: zebra\r\n\r\nstripes\r\n";
    let blob = {
        let s = Store::open(dir.path()).unwrap();
        s.add_domain("example.com").unwrap();
        let bob = s
            .add_account("bob@example.com", "Correct-horse-7", 0)
            .unwrap();
        let blob = append(&s, bob, "INBOX", body);
        s.start_indexer(extractor(1)).unwrap();
        wait_for("v1 cached", || {
            s.cached_structures(std::slice::from_ref(&blob), 1)
                .unwrap()
                .len()
                == 1
        });
        blob
    };
    // Restarted with a new renderer, as after an upgrade.
    let s = Store::open(dir.path()).unwrap();
    s.start_indexer(extractor(2)).unwrap();
    wait_for("v2 cached", || {
        s.cached_structures(std::slice::from_ref(&blob), 2)
            .unwrap()
            .len()
            == 1
    });
    assert_eq!(
        s.cached_structures(std::slice::from_ref(&blob), 2).unwrap()[&blob],
        forms(2, body.as_bytes())
    );
    assert!(s
        .cached_structures(std::slice::from_ref(&blob), 1)
        .unwrap()
        .is_empty());
    assert_eq!(rows(&s), 1);
    let bob = s.account("bob@example.com").unwrap().id;
    let inbox = s.folder(bob, "INBOX").unwrap().unwrap();
    assert_eq!(
        s.text_candidates(inbox.id, TextField::Headers, "zebra")
            .unwrap(),
        Some([1].into()),
        "indexed once, still found"
    );
}

#[test]
fn scans_find_bodies_without_text_or_structure() {
    use crate::index::{index_batch, Scan};
    let (_d, s, bob) = setup();
    let a = append(&s, bob, "INBOX", "Subject: old\r\n\r\nfrom before\r\n");
    let b = append(&s, bob, "INBOX", "Subject: new\r\n\r\nfrom after\r\n");
    let blobs = [a.clone(), b.clone()];
    // The indexer's own steps, one at a time, on its own connection.
    let mut conn = crate::open_connection(&s.dir().join("pochta.db")).unwrap();
    let blob_dir = s.dir().join("blobs");
    let mut batch = |version: u32, scan: Scan| {
        index_batch(&mut conn, &blob_dir, &extractor(version), scan).unwrap()
    };
    assert_eq!(batch(1, Scan::New), 2, "new bodies: text and structure");
    assert_eq!(s.cached_structures(&blobs, 1).unwrap().len(), 2);
    assert_eq!(batch(1, Scan::All), 0);
    // A body indexed before the structure cache existed.
    s.conn()
        .unwrap()
        .execute("DELETE FROM blob_structure WHERE blob = ?1", [&a.0])
        .unwrap();
    assert_eq!(
        batch(1, Scan::New),
        0,
        "the cheap scan looks for new bodies only"
    );
    assert_eq!(batch(1, Scan::All), 1);
    assert_eq!(s.cached_structures(&blobs, 1).unwrap().len(), 2);
    // A new renderer.
    assert_eq!(batch(2, Scan::All), 2);
    assert_eq!(batch(2, Scan::All), 0);
    assert_eq!(
        s.cached_structures(&blobs, 2).unwrap()[&a],
        forms(2, b"Subject: old\r\n\r\nfrom before\r\n")
    );
    let indexed: i64 = s
        .conn()
        .unwrap()
        .query_row("SELECT count(*) FROM indexed_blobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(indexed, 2, "text indexed once");
    let inbox = s.folder(bob, "INBOX").unwrap().unwrap();
    assert_eq!(
        s.text_candidates(inbox.id, TextField::Body, "before")
            .unwrap(),
        Some([1].into())
    );
}

#[test]
fn an_unreadable_file_gets_no_forms_and_is_not_retried() {
    let (_d, s, bob) = setup();
    let blob = append(&s, bob, "INBOX", "Subject: lost\r\n\r\ngone\r\n");
    std::fs::remove_file(s.blob_path(&blob)).unwrap();
    s.start_indexer(extractor(1)).unwrap();
    wait_for("marked as tried", || rows(&s) == 1);
    assert!(
        s.cached_structures(std::slice::from_ref(&blob), 1)
            .unwrap()
            .is_empty(),
        "FETCH reads (and reports) the file itself"
    );
}
