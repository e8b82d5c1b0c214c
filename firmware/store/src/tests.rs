use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.add_domain("example.com").unwrap();
    (dir, store)
}

fn stage(store: &Store, body: &[u8]) -> StagedBlob {
    let mut w = store.blob_writer().unwrap();
    w.write(body).unwrap();
    w.finish().unwrap()
}

fn inbox(account: AccountId, address: &str) -> LocalRecipient {
    LocalRecipient {
        account,
        address: address.into(),
        folder: "INBOX".into(),
    }
}

#[test]
fn account_gets_special_folders_and_hashed_password() {
    let (_d, s) = store();
    let id = s
        .add_account("Bob@Example.com", "correct horse", 0)
        .unwrap();
    for (folder, _) in SPECIAL_FOLDERS {
        assert!(s.messages("bob@example.com", folder).unwrap().is_empty());
    }
    let hash: String = s
        .conn()
        .unwrap()
        .query_row("SELECT password FROM accounts", [], |r| r.get(0))
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert_eq!(
        s.authenticate("bob@example.com", "correct horse", "-")
            .unwrap(),
        LoginCheck::Accepted {
            account: id,
            via: Credential::AccountPassword
        }
    );
    assert_eq!(
        s.authenticate("bob@example.com", "wrong horse", "-")
            .unwrap(),
        LoginCheck::Refused(Refusal::WrongPassword)
    );
    assert_eq!(
        s.authenticate("nobody@example.com", "correct horse", "-")
            .unwrap(),
        LoginCheck::Refused(Refusal::WrongPassword)
    );
    s.set_account_disabled("bob@example.com", true).unwrap();
    assert_eq!(
        s.authenticate("bob@example.com", "correct horse", "-")
            .unwrap(),
        LoginCheck::Refused(Refusal::Disabled)
    );
}

#[test]
fn account_needs_known_domain_and_decent_password() {
    let (_d, s) = store();
    assert!(matches!(
        s.add_account("a@other.org", "long enough phrase", 0),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.add_account("a@example.com", "short", 0),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.add_account("not-an-address", "long enough phrase", 0),
        Err(StoreError::Invalid(_))
    ));
    s.add_account("a@example.com", "long enough phrase", 0)
        .unwrap();
    assert!(matches!(
        s.add_account("A@example.com", "long enough phrase", 0),
        Err(StoreError::Exists(_))
    ));
    assert!(matches!(
        s.remove_domain("example.com"),
        Err(StoreError::Invalid(_))
    ));
}

#[test]
fn deliveries_get_ascending_uids_and_modseqs_and_dedupe_bodies() {
    let (_d, s) = store();
    let bob = s
        .add_account("bob@example.com", "Correct-horse-7", 0)
        .unwrap();
    let amy = s
        .add_account("amy@example.com", "Correct-horse-7", 0)
        .unwrap();
    for i in 0..3 {
        let body = format!("Subject: {i}\r\n\r\nhello\r\n");
        let r = s
            .deliver(
                stage(&s, body.as_bytes()),
                Delivery {
                    local: vec![inbox(bob, "bob@example.com"), inbox(amy, "amy@example.com")],
                    ..Delivery::default()
                },
            )
            .unwrap();
        assert_eq!(r.stored.len(), 2);
    }
    let msgs = s.messages("bob@example.com", "INBOX").unwrap();
    assert_eq!(
        msgs.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(msgs.windows(2).all(|w| w[0].modseq < w[1].modseq));
    let amy_msgs = s.messages("amy@example.com", "INBOX").unwrap();
    // One body on disk for both recipients.
    assert_eq!(msgs[0].path, amy_msgs[0].path);
    assert_eq!(
        std::fs::read(&msgs[2].path).unwrap(),
        b"Subject: 2\r\n\r\nhello\r\n"
    );
    let acc = s.account("bob@example.com").unwrap();
    assert_eq!(
        (acc.messages, acc.bytes),
        (3, msgs.iter().map(|m| m.size).sum())
    );
}

#[test]
fn quota_is_enforced_at_commit() {
    let (_d, s) = store();
    let bob = s
        .add_account("bob@example.com", "Correct-horse-7", 100)
        .unwrap();
    let d = || Delivery {
        local: vec![inbox(bob, "bob@example.com")],
        ..Delivery::default()
    };
    s.deliver(stage(&s, &[b'a'; 60]), d()).unwrap();
    assert!(!s.has_room(bob, 60).unwrap());
    let err = s.deliver(stage(&s, &[b'b'; 60]), d()).unwrap_err();
    assert!(matches!(err, DeliveryError::QuotaExceeded(_)), "{err}");
    assert_eq!(s.messages("bob@example.com", "INBOX").unwrap().len(), 1);
}

#[test]
fn aliases_groups_and_catch_all_resolve() {
    let (_d, s) = store();
    let ids: Vec<AccountId> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            s.add_account(&format!("{n}@example.com"), "Correct-horse-7", 0)
                .unwrap()
        })
        .collect();
    s.add_alias("info@example.com", &["a@example.com".into()])
        .unwrap();
    s.add_alias(
        "team@example.com",
        &[
            "a@example.com".into(),
            "b@example.com".into(),
            "c@example.com".into(),
            "x@remote.org".into(),
        ],
    )
    .unwrap();
    s.add_alias("@example.com", &["c@example.com".into()])
        .unwrap();
    let accounts = |r: Resolution| match r {
        Resolution::Deliver { accounts, remote } => (
            accounts.into_iter().map(|(id, _)| id).collect::<Vec<_>>(),
            remote,
        ),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        accounts(s.resolve("info@example.com", CatchAll::Use).unwrap()).0,
        vec![ids[0]]
    );
    let (team, remote) = accounts(s.resolve("team@example.com", CatchAll::Use).unwrap());
    assert_eq!(team, ids);
    assert_eq!(remote, vec!["x@remote.org".to_string()]);
    assert_eq!(
        accounts(s.resolve("whoever@example.com", CatchAll::Use).unwrap()).0,
        vec![ids[2]]
    );
    assert_eq!(
        s.resolve("whoever@example.com", CatchAll::Ignore).unwrap(),
        Resolution::Unknown
    );
    assert_eq!(
        s.resolve("x@remote.org", CatchAll::Use).unwrap(),
        Resolution::NotLocal
    );
    assert!(s.may_send_as(ids[0], "info@example.com").unwrap());
    assert!(s.may_send_as(ids[0], "A@example.com").unwrap());
    assert!(!s.may_send_as(ids[1], "info@example.com").unwrap());
    assert!(!s.may_send_as(ids[2], "whoever@example.com").unwrap());
    // A disabled account still receives (directly and through groups),
    // and its forward is followed.
    s.set_account_disabled("b@example.com", true).unwrap();
    assert_eq!(
        accounts(s.resolve("b@example.com", CatchAll::Use).unwrap()),
        (vec![ids[1]], vec![])
    );
    let off = Offboarding {
        forward_to: Some("c@example.com".into()),
        auto_reply: None,
    };
    s.disable_account("b@example.com", &off).unwrap();
    assert_eq!(
        accounts(s.resolve("b@example.com", CatchAll::Use).unwrap()).0,
        vec![ids[1], ids[2]]
    );
    assert_eq!(
        accounts(s.resolve("team@example.com", CatchAll::Use).unwrap()).0,
        ids
    );
    let off = Offboarding {
        forward_to: Some("b@elsewhere.org".into()),
        auto_reply: None,
    };
    s.disable_account("b@example.com", &off).unwrap();
    assert_eq!(
        accounts(s.resolve("b@example.com", CatchAll::Use).unwrap()),
        (vec![ids[1]], vec!["b@elsewhere.org".to_string()])
    );
    // The forward ends with the offboarding.
    s.enable_account("b@example.com").unwrap();
    assert_eq!(
        accounts(s.resolve("b@example.com", CatchAll::Use).unwrap()),
        (vec![ids[1]], vec![])
    );
}

#[test]
fn alias_loops_terminate() {
    let (_d, s) = store();
    s.add_alias("x@example.com", &["y@example.com".into()])
        .unwrap();
    s.add_alias("y@example.com", &["x@example.com".into()])
        .unwrap();
    assert_eq!(
        s.resolve("x@example.com", CatchAll::Use).unwrap(),
        Resolution::Unknown
    );
}

#[test]
fn concurrent_deliveries_share_commits_and_all_land() {
    let (dir, s) = store();
    let bob = s
        .add_account("bob@example.com", "Correct-horse-7", 0)
        .unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let body = format!("Message-ID: <{t}.{i}@x>\r\n\r\nbody\r\n");
                    s.deliver(
                        stage(&s, body.as_bytes()),
                        Delivery {
                            local: vec![inbox(bob, "bob@example.com")],
                            remote: vec![QueuedRecipient {
                                address: "far@away.org".into(),
                                ..Default::default()
                            }],
                            ..Delivery::default()
                        },
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let msgs = s.messages("bob@example.com", "INBOX").unwrap();
    let uids: Vec<u32> = msgs.iter().map(|m| m.uid).collect();
    assert_eq!(uids, (1..=200).collect::<Vec<_>>());
    drop(s);
    // Everything is there after reopening, and tmp/ is empty.
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.messages("bob@example.com", "INBOX").unwrap().len(), 200);
    assert_eq!(s.queue().unwrap().len(), 200);
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
    assert_eq!(s.integrity_check().unwrap(), "ok");
}

#[test]
fn abandoned_writer_leaves_nothing() {
    let (dir, s) = store();
    let mut w = s.blob_writer().unwrap();
    w.write(b"partial").unwrap();
    drop(w);
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}

#[test]
fn dkim_keys_are_stored_per_domain_and_go_with_it() {
    let (_d, s) = store();
    assert_eq!(s.domains_without_dkim_keys().unwrap(), vec!["example.com"]);
    let key = DkimKey {
        domain: "Example.COM".into(),
        selector: "pe202611".into(),
        algorithm: DkimAlgorithm::Ed25519,
        private_key: vec![1; 48],
        public_key: vec![2; 32],
        created: 0,
    };
    s.add_dkim_key(&key).unwrap();
    assert!(matches!(s.add_dkim_key(&key), Err(StoreError::Exists(_))));
    let other = DkimKey {
        domain: "nowhere.test".into(),
        ..key.clone()
    };
    assert!(matches!(
        s.add_dkim_key(&other),
        Err(StoreError::NotFound(_))
    ));
    let keys = s.dkim_keys("example.com").unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].private_key, vec![1; 48]);
    assert_eq!(keys[0].domain, "example.com");
    assert!(s.domains_without_dkim_keys().unwrap().is_empty());
    s.remove_domain("example.com").unwrap();
    s.add_domain("example.com").unwrap();
    assert!(s.dkim_keys("example.com").unwrap().is_empty());
}

#[test]
fn submitted_recipients_are_counted_durably() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let s = Store::open(dir.path()).unwrap();
        s.add_domain("example.com").unwrap();
        let id = s
            .add_account("ann@example.com", "Correct-horse-7", 0)
            .unwrap();
        assert_eq!(s.send_limit(id).unwrap(), None);
        s.set_send_limit("ann@example.com", Some(7)).unwrap();
        let d = Delivery {
            sender: "ann@example.com".into(),
            remote: vec![QueuedRecipient {
                address: "x@remote.test".into(),
                ..QueuedRecipient::default()
            }],
            submitted_by: Some(id),
            counted_recipients: 3,
            ..Delivery::default()
        };
        s.deliver(stage(&s, b"Subject: x\r\n\r\nx\r\n"), d.clone())
            .unwrap();
        s.deliver(stage(&s, b"Subject: y\r\n\r\ny\r\n"), d).unwrap();
        id
    };
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.recipients_sent(id).unwrap(), 6);
    assert_eq!(s.send_limit(id).unwrap(), Some(7));
    s.set_send_limit("ann@example.com", None).unwrap();
    assert_eq!(s.send_limit(id).unwrap(), None);
}

#[test]
fn a_missing_folder_falls_back_when_asked() {
    let (_d, s) = store();
    let id = s
        .add_account("cy@example.com", "Correct-horse-7", 0)
        .unwrap();
    s.rename_folder(id, "Junk", "Spam").unwrap();
    let junk = LocalRecipient {
        folder: "Junk".into(),
        ..inbox(id, "cy@example.com")
    };
    let d = Delivery {
        local: vec![junk],
        ..Delivery::default()
    };
    assert!(s
        .deliver(stage(&s, b"Subject: a\r\n\r\na\r\n"), d.clone())
        .is_err());
    let d = Delivery {
        fallback_folder: Some("INBOX".into()),
        ..d
    };
    let r = s.deliver(stage(&s, b"Subject: b\r\n\r\nb\r\n"), d).unwrap();
    assert_eq!(r.stored[0].folder, "INBOX");
}
