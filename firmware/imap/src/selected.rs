//! A session's view of its selected folder: the sequence-number map and the
//! untagged updates that keep the client in step with the store (RFC 9051
//! §7.4, §7.5). Other sessions' changes are learnt from the store's
//! mod-sequences, never guessed.

use std::collections::HashMap;

use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use pochta_store::{Folder, Message, Store, StoreError};

use crate::cmd::copy::uid_set;
use crate::cmd::flag_list;

pub(crate) struct Selected {
    pub folder: Folder,
    pub read_only: bool,
    /// MODSEQ in FETCH responses (RFC 7162 §3.1).
    pub condstore: bool,
    /// VANISHED instead of EXPUNGE (RFC 7162 §3.2.10).
    pub qresync: bool,
    /// UIDs by sequence number (index + 1), ascending.
    pub uids: Vec<u32>,
    /// The store mod-sequence this view reflects.
    modseq: u64,
    /// Messages from this UID on are new to the client.
    next_uid: u32,
    /// Expunged in the store but not yet announced (announcing is only
    /// allowed at certain moments, RFC 9051 §7.5.1).
    pending_expunge: Vec<u32>,
    /// Flag changes this session made and already reported (UID → modseq),
    /// so that a refresh does not report them again (or at all, after
    /// STORE .SILENT).
    own_changes: HashMap<u32, u64>,
}

/// A sequence set that names messages that do not exist.
#[derive(Debug)]
pub(crate) struct BadSequence;

impl Selected {
    /// Opens a folder: the folder row first, then its messages, so that any
    /// change in between is reported by the next refresh.
    pub fn open(
        store: &Store,
        folder: Folder,
        read_only: bool,
        condstore: bool,
        qresync: bool,
    ) -> Result<(Selected, Vec<Message>), StoreError> {
        let messages = store.folder_messages(folder.id)?;
        let uids: Vec<u32> = messages.iter().map(|m| m.uid).collect();
        let next_uid = uids.last().map_or(1, |u| u + 1);
        let selected = Selected {
            modseq: folder.highestmodseq,
            folder,
            read_only,
            condstore,
            qresync,
            uids,
            next_uid,
            pending_expunge: Vec::new(),
            own_changes: HashMap::new(),
        };
        Ok((selected, messages))
    }

    /// Sequence number of a UID.
    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        self.uids.binary_search(&uid).ok().map(|i| i as u32 + 1)
    }

    /// Brings the view up to date and writes the untagged responses:
    /// `EXPUNGE` (only when `allow_expunge`), `EXISTS`, and `FETCH (UID
    /// FLAGS)` for flags changed elsewhere.
    pub fn refresh(
        &mut self,
        store: &Store,
        allow_expunge: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        let changes = store.changes_since(self.folder.id, self.modseq)?;
        for uid in changes.expunged {
            if self.uids.binary_search(&uid).is_ok() && !self.pending_expunge.contains(&uid) {
                self.pending_expunge.push(uid);
            }
        }
        if allow_expunge {
            self.announce_expunges(out);
        }
        let before = self.uids.len();
        for m in &changes.changed {
            if m.uid >= self.next_uid {
                self.uids.push(m.uid);
                self.next_uid = m.uid + 1;
            } else if let Some(seq) = self.seq_of(m.uid) {
                if self.own_changes.get(&m.uid) == Some(&m.modseq) {
                    continue;
                }
                if !self.pending_expunge.contains(&m.uid) {
                    let item = self.flags_item(m, self.qresync);
                    out.extend_from_slice(format!("* {seq} FETCH ({item})\r\n").as_bytes());
                }
            }
        }
        if self.uids.len() != before {
            out.extend_from_slice(format!("* {} EXISTS\r\n", self.uids.len()).as_bytes());
        }
        self.own_changes.clear();
        self.modseq = changes.highestmodseq;
        self.folder.highestmodseq = changes.highestmodseq;
        self.folder.uidnext = changes.uidnext;
        Ok(())
    }

    /// Remembers a flag change this session made and reported itself.
    pub fn note_own_change(&mut self, uid: u32, modseq: u64) {
        self.own_changes.insert(uid, modseq);
    }

    /// `[UID u ]FLAGS (..)[ MODSEQ (m)]`: UID when asked (UID commands,
    /// QRESYNC, RFC 7162 §3.2.4), MODSEQ under CONDSTORE (§3.1).
    pub fn flags_item(&self, m: &Message, with_uid: bool) -> String {
        let uid = if with_uid {
            format!("UID {} ", m.uid)
        } else {
            String::new()
        };
        let modseq = if self.condstore {
            format!(" MODSEQ ({})", m.modseq)
        } else {
            String::new()
        };
        format!("{uid}FLAGS ({}){modseq}", flag_list(&m.flags))
    }

    /// Announces expunges learnt earlier: with QRESYNC as one `VANISHED`,
    /// otherwise as `EXPUNGE`s, highest sequence number first so that each
    /// number is right when the client reads it.
    pub fn announce_expunges(&mut self, out: &mut Vec<u8>) {
        self.pending_expunge.sort_unstable();
        let mut gone = Vec::new();
        for uid in self.pending_expunge.drain(..).rev() {
            if let Ok(i) = self.uids.binary_search(&uid) {
                self.uids.remove(i);
                if self.qresync {
                    gone.push(uid);
                } else {
                    out.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
                }
            }
        }
        if !gone.is_empty() {
            gone.sort_unstable();
            out.extend_from_slice(format!("* VANISHED {}\r\n", uid_set(&gone)).as_bytes());
        }
    }

    /// Records messages this session expunged itself (announced by the
    /// caller as it sees fit).
    pub fn forget(&mut self, uids: &[u32], out: &mut Vec<u8>) {
        for &uid in uids {
            if !self.pending_expunge.contains(&uid) {
                self.pending_expunge.push(uid);
            }
        }
        self.announce_expunges(out);
    }

    /// The (sequence number, UID) pairs a set names, ascending. With UIDs,
    /// UIDs that do not exist are skipped (RFC 9051 §6.4.9); with sequence
    /// numbers, a number past the end is an error.
    pub fn resolve(&self, set: &SequenceSet, by_uid: bool) -> Result<Vec<(u32, u32)>, BadSequence> {
        let count = self.uids.len() as u32;
        let max_uid = self.uids.last().copied().unwrap_or(0);
        let value = |v: &SeqOrUid| -> u32 {
            match v {
                SeqOrUid::Value(n) => n.get(),
                SeqOrUid::Asterisk => {
                    if by_uid {
                        max_uid
                    } else {
                        count
                    }
                }
            }
        };
        let mut out: Vec<(u32, u32)> = Vec::new();
        for seq in set.0.as_ref() {
            let (a, b) = match seq {
                Sequence::Single(v) => (value(v), value(v)),
                Sequence::Range(x, y) => (value(x).min(value(y)), value(x).max(value(y))),
            };
            if by_uid {
                let start = self.uids.partition_point(|&u| u < a);
                for (i, &u) in self.uids[start..].iter().enumerate() {
                    if u > b {
                        break;
                    }
                    out.push(((start + i) as u32 + 1, u));
                }
            } else {
                if a == 0 || b > count {
                    return Err(BadSequence);
                }
                for n in a..=b {
                    out.push((n, self.uids[(n - 1) as usize]));
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}
