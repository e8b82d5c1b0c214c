//! Writes generated messages straight into a Maildir folder, the quick way
//! to give Dovecot a large mailbox (APPEND into a big Maildir slows down as
//! it grows). The server indexes the files when the folder is next opened.

use std::fs;
use std::io;
use std::path::Path;

use crate::message;

/// Writes messages `start..start + count` into `dir/cur` (creating `cur`,
/// `new` and `tmp`) as old mail without flags. Files get LF line ends, as
/// Dovecot stores what it receives (`mail_save_crlf = no`), and names with
/// the file size (`S=`) and the CRLF size (`W=`) so that it need not
/// compute them.
pub fn write(dir: &Path, seed: u64, start: u64, count: u64, recipient: &str) -> io::Result<()> {
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for i in start..start + count {
        let crlf = message::generate(seed, i, recipient);
        let lf: Vec<u8> = crlf.iter().copied().filter(|&b| b != b'\r').collect();
        // `base + i` keeps names unique and in the same order as the index.
        let name = format!(
            "{}.M{i}P0.imap-load,S={},W={}:2,",
            base + i,
            lf.len(),
            crlf.len()
        );
        fs::write(dir.join("cur").join(name), &lf)?;
    }
    Ok(())
}
