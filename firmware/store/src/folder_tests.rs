use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::*;

fn setup() -> (tempfile::TempDir, Store, AccountId) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.add_domain("example.com").unwrap();
    let bob = store
        .add_account("bob@example.com", "Correct-horse-7", 0)
        .unwrap();
    (dir, store, bob)
}

fn append(s: &Store, account: AccountId, folder: &str, body: &str, flags: &[&str]) -> StoredCopy {
    let mut w = s.blob_writer().unwrap();
    w.write(body.as_bytes()).unwrap();
    let flags = flags.iter().map(|f| f.to_string()).collect();
    s.append(
        account,
        folder,
        w.finish().unwrap(),
        flags,
        Some(1_700_000_000),
    )
    .unwrap()
}

#[test]
fn append_keeps_flags_and_date_and_counts() {
    let (_d, s, bob) = setup();
    let c = append(
        &s,
        bob,
        "Drafts",
        "Subject: a\r\n\r\nx\r\n",
        &["\\Draft", "\\Seen", "\\seen"],
    );
    let drafts = s.folder(bob, "Drafts").unwrap().unwrap();
    assert_eq!((c.uid, c.uidvalidity), (1, drafts.uidvalidity));
    let msgs = s.folder_messages(drafts.id).unwrap();
    assert_eq!(msgs[0].flags, vec!["\\Draft", "\\Seen"]);
    assert_eq!(msgs[0].internaldate, 1_700_000_000);
    let counts = s.folder_counts(drafts.id).unwrap();
    assert_eq!((counts.messages, counts.unseen), (1, 0));
    append(&s, bob, "inbox", "Subject: b\r\n\r\ny\r\n", &[]);
    let inbox = s.folder(bob, "INBOX").unwrap().unwrap();
    assert_eq!(s.folder_counts(inbox.id).unwrap().unseen, 1);
}

#[test]
fn flag_changes_take_new_modseqs_and_show_in_changes() {
    let (_d, s, bob) = setup();
    for i in 0..3 {
        append(&s, bob, "INBOX", &format!("Subject: {i}\r\n\r\n"), &[]);
    }
    let inbox = s.folder(bob, "INBOX").unwrap().unwrap();
    let before = inbox.highestmodseq;
    let flags = vec!["\\Seen".to_string(), "$Work".to_string()];
    let (updated, refused) = s
        .set_flags(inbox.id, &[2, 3, 99], FlagOp::Add, &flags, None)
        .unwrap();
    assert!(refused.is_empty());
    assert_eq!(
        updated.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert!(updated.iter().all(|m| m.modseq > before));
    let changes = s.changes_since(inbox.id, before).unwrap();
    assert_eq!(
        changes.changed.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert!(changes.expunged.is_empty());
    // UNCHANGEDSINCE older than the message's modseq refuses the change.
    let (_, refused) = s
        .set_flags(inbox.id, &[1, 2], FlagOp::Remove, &flags, Some(before))
        .unwrap();
    assert_eq!(refused, vec![2]);
    // Setting what is already set changes nothing.
    let now = s.folder(bob, "INBOX").unwrap().unwrap().highestmodseq;
    s.set_flags(inbox.id, &[3], FlagOp::Add, &["\\seen".to_string()], None)
        .unwrap();
    assert_eq!(s.folder(bob, "INBOX").unwrap().unwrap().highestmodseq, now);
}

#[test]
fn expunge_removes_only_deleted_and_is_remembered() {
    let (_d, s, bob) = setup();
    for i in 0..4 {
        append(
            &s,
            bob,
            "INBOX",
            &format!("Subject: {i}\r\n\r\n"),
            if i % 2 == 0 { &["\\Deleted"] } else { &[] },
        );
    }
    let inbox = s.folder(bob, "INBOX").unwrap().unwrap();
    let mark = s.folder(bob, "INBOX").unwrap().unwrap().highestmodseq;
    // UID EXPUNGE limited to 1..2 removes only UID 1.
    assert_eq!(s.expunge(inbox.id, Some(&[1, 2])).unwrap(), vec![1]);
    assert_eq!(s.expunge(inbox.id, None).unwrap(), vec![3]);
    let left: Vec<u32> = s
        .folder_messages(inbox.id)
        .unwrap()
        .iter()
        .map(|m| m.uid)
        .collect();
    assert_eq!(left, vec![2, 4]);
    assert_eq!(
        s.changes_since(inbox.id, mark).unwrap().expunged,
        vec![1, 3]
    );
    assert_eq!(s.account("bob@example.com").unwrap().messages, 2);
    // POP3-style removal ignores flags.
    assert_eq!(s.remove_messages(inbox.id, &[2, 7]).unwrap(), vec![2]);
}

#[test]
fn copy_and_move_map_uids_and_respect_quota() {
    let (_d, s, bob) = setup();
    for i in 0..3 {
        append(
            &s,
            bob,
            "INBOX",
            &format!("Subject: {i}\r\n\r\n"),
            &["\\Flagged"],
        );
    }
    let inbox = s.folder(bob, "INBOX").unwrap().unwrap();
    let archive = s.folder(bob, "Archive").unwrap().unwrap();
    let c = s
        .copy_messages(inbox.id, &[3, 1], archive.id, false)
        .unwrap();
    assert_eq!(c.uids, vec![(1, 1), (3, 2)]);
    assert_eq!(c.uidvalidity, archive.uidvalidity);
    let m = s.copy_messages(inbox.id, &[2], archive.id, true).unwrap();
    assert_eq!(m.uids, vec![(2, 3)]);
    assert_eq!(s.folder_messages(inbox.id).unwrap().len(), 2);
    let archived = s.folder_messages(archive.id).unwrap();
    assert!(archived.iter().all(|m| m.has_flag("\\flagged")));
    let used = s.account("bob@example.com").unwrap().bytes;
    s.set_quota("bob@example.com", used + 1).unwrap();
    assert!(matches!(
        s.copy_messages(inbox.id, &[1], archive.id, false),
        Err(StoreError::OverQuota)
    ));
    // A move does not grow the account, so it is allowed.
    s.copy_messages(inbox.id, &[1], archive.id, true).unwrap();
}

#[test]
fn folders_are_created_renamed_and_deleted() {
    let (_d, s, bob) = setup();
    s.create_folder(bob, "Projects").unwrap();
    s.create_folder(bob, "Projects/2026").unwrap();
    assert!(matches!(
        s.create_folder(bob, "Projects"),
        Err(StoreError::Exists(_))
    ));
    for bad in [
        "",
        "a//b",
        "../x",
        "a/./b",
        "x%",
        "y*",
        "tab\there",
        "/lead",
    ] {
        assert!(
            matches!(s.create_folder(bob, bad), Err(StoreError::Invalid(_))),
            "{bad:?}"
        );
    }
    s.rename_folder(bob, "Projects", "Work").unwrap();
    let names: Vec<String> = s
        .folders(bob)
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert!(
        names.contains(&"Work".to_string()) && names.contains(&"Work/2026".to_string()),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.starts_with("Projects")));
    append(&s, bob, "INBOX", "Subject: keep\r\n\r\n", &[]);
    s.rename_folder(bob, "INBOX", "Old").unwrap();
    let old = s.folder(bob, "Old").unwrap().unwrap();
    assert_eq!(s.folder_messages(old.id).unwrap().len(), 1);
    let inbox = s.folder(bob, "INBOX").unwrap().unwrap();
    assert!(s.folder_messages(inbox.id).unwrap().is_empty());
    assert!(s.delete_folder(bob, "INBOX").is_err());
    assert!(s.delete_folder(bob, "Trash").is_err());
    s.delete_folder(bob, "Old").unwrap();
    assert!(s.folder(bob, "Old").unwrap().is_none());
    assert_eq!(s.account("bob@example.com").unwrap().messages, 0);
}

#[test]
fn change_hook_hears_deliveries_and_flag_changes() {
    let (_d, s, bob) = setup();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    s.set_change_hook(Arc::new(move |a| {
        assert_eq!(a, bob);
        c.fetch_add(1, Ordering::SeqCst);
    }));
    append(&s, bob, "INBOX", "Subject: x\r\n\r\n", &[]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let inbox = s.folder(bob, "INBOX").unwrap().unwrap();
    s.set_flags(inbox.id, &[1], FlagOp::Add, &["\\Seen".into()], None)
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn index_narrows_text_search_and_catches_up_in_the_background() {
    let (_d, s, bob) = setup();
    append(
        &s,
        bob,
        "INBOX",
        "Subject: Quarterly figures\r\n\r\nThe zebra count rose.\r\n",
        &[],
    );
    append(
        &s,
        bob,
        "INBOX",
        "Subject: Lunch\r\n\r\nPizza or pasta?\r\n",
        &[],
    );
    s.start_indexer(crate::structure_tests::extractor(1))
        .unwrap();
    let inbox = s.folder(bob, "INBOX").unwrap().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.indexed_uids(inbox.id).unwrap().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "indexer did not catch up"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let body = |n: &str| s.text_candidates(inbox.id, TextField::Body, n).unwrap();
    assert_eq!(body("ZEBRA"), Some([1].into()));
    assert_eq!(body("ebra co"), Some([1].into()), "substrings match");
    assert_eq!(body("quarterly"), Some(HashSet::new()), "not in the body");
    assert_eq!(
        s.text_candidates(inbox.id, TextField::Headers, "quarterly")
            .unwrap(),
        Some([1].into())
    );
    assert_eq!(
        s.text_candidates(inbox.id, TextField::Any, "pasta")
            .unwrap(),
        Some([2].into())
    );
    assert_eq!(body("\"quoted\" text"), Some(HashSet::new()));
    assert_eq!(body("ab"), None, "too short for trigrams");
}
