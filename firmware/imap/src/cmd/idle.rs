//! IDLE (RFC 2177): the client waits; new mail, expunges and flag changes
//! made elsewhere are pushed at once (the store's change hook wakes us).

use std::time::Duration;

use imap_codec::IdleDoneCodec;
use tokio::sync::broadcast::error::RecvError;

use super::refresh;
use crate::session::{Flow, Session, Wait};

/// Longest IDLE before the server ends it (RFC 2177 suggests clients
/// re-issue IDLE at least every 29 minutes).
const MAX_IDLE: Duration = Duration::from_secs(30 * 60);
/// Also look every so often, for changes made by another process (the CLI).
const POLL: Duration = Duration::from_secs(15);

pub(crate) async fn idle(s: &mut Session, tag: &str) -> Flow {
    let account = s.login().expect("authenticated").account;
    // Subscribe before looking, so nothing slips between the two.
    let mut changes = s.ctx.changes.subscribe();
    s.conn.push("+ idling\r\n");
    refresh(s, true).await;
    let started = tokio::time::Instant::now();
    loop {
        let left = MAX_IDLE.saturating_sub(started.elapsed());
        tokio::select! {
            wait = s.next_message(left) => {
                return match wait {
                    Wait::Message => match s.frag.decode_message(&IdleDoneCodec::default()) {
                        Ok(_) => {
                            s.ok(tag, None, "IDLE terminated");
                            Flow::Continue
                        }
                        Err(_) => {
                            s.bad(tag, "Expected DONE");
                            Flow::Continue
                        }
                    },
                    // Only before login; IDLE comes after it.
                    Wait::Closed | Wait::TooLong => Flow::Close,
                    Wait::Timeout => {
                        s.conn.push("* BYE IDLE too long\r\n");
                        Flow::Close
                    }
                    Wait::Shutdown => {
                        s.conn.push("* BYE [UNAVAILABLE] Server shutting down\r\n");
                        Flow::Close
                    }
                };
            }
            changed = changes.recv() => match changed {
                Ok(a) if a == account => refresh(s, true).await,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => refresh(s, true).await,
                Err(RecvError::Closed) => return Flow::Close,
            },
            _ = tokio::time::sleep(POLL) => refresh(s, true).await,
        }
    }
}
