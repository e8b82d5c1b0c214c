//! Counters of a load run: per command kind, replies by status and latency;
//! per run, completed sessions and errors. Each simulated client keeps its
//! own [`Stats`]; they are merged at the end, so nothing is shared while the
//! load runs.

use std::fmt::Write as _;
use std::time::Duration;

use crate::client::{ClientError, Status};

/// What a step of the profile does; one row of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// TCP connect, TLS handshake and greeting (not an IMAP command, so not
    /// counted in operations).
    Connect,
    Login,
    List,
    Status,
    Select,
    /// FETCH of the newest messages' UID, FLAGS and ENVELOPE.
    Fetch,
    /// FETCH of one message's BODY.PEEK[].
    Fetch2,
    /// STORE +FLAGS / -FLAGS of ordinary flags and keywords.
    Store,
    /// STORE +FLAGS.SILENT (\Deleted).
    Delete,
    Expunge,
    Append,
    Idle,
    Logout,
}

impl Op {
    pub const ALL: [Op; 13] = [
        Op::Connect,
        Op::Login,
        Op::List,
        Op::Status,
        Op::Select,
        Op::Fetch,
        Op::Fetch2,
        Op::Store,
        Op::Delete,
        Op::Expunge,
        Op::Append,
        Op::Idle,
        Op::Logout,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::Connect => "connect+TLS",
            Op::Login => "LOGIN",
            Op::List => "LIST",
            Op::Status => "STATUS",
            Op::Select => "SELECT",
            Op::Fetch => "FETCH env",
            Op::Fetch2 => "FETCH body",
            Op::Store => "STORE flags",
            Op::Delete => "STORE \\Deleted",
            Op::Expunge => "EXPUNGE",
            Op::Append => "APPEND",
            Op::Idle => "IDLE",
            Op::Logout => "LOGOUT",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Row {
    ok: u64,
    no: u64,
    bad: u64,
    total: Duration,
    max: Duration,
}

/// Most error messages kept for the report.
const KEEP_ERRORS: usize = 8;

#[derive(Debug, Default)]
pub struct Stats {
    rows: [Row; Op::ALL.len()],
    /// Sessions that went from connect to LOGOUT before the deadline.
    pub sessions: u64,
    /// Connections lost, timeouts and protocol violations.
    pub errors: u64,
    /// The first few errors and NO and BAD replies, for the report.
    pub samples: Vec<String>,
    /// Body and envelope bytes received.
    pub literal_bytes: u64,
    /// IDLEs during which the server reported a change.
    pub idle_news: u64,
}

impl Stats {
    /// Counts a command that completed before the deadline.
    pub fn record(&mut self, op: Op, status: Status, took: Duration, what: &str, reply: &str) {
        let row = &mut self.rows[op.index()];
        row.total += took;
        row.max = row.max.max(took);
        match status {
            Status::Ok => row.ok += 1,
            Status::No => {
                row.no += 1;
                self.sample(format!("{} NO: {what} -> {reply}", op.name()));
            }
            Status::Bad => {
                row.bad += 1;
                self.sample(format!("{} BAD: {what} -> {reply}", op.name()));
            }
        }
    }

    pub fn error(&mut self, op: Op, e: &ClientError) {
        self.errors += 1;
        self.sample(format!("{}: {e}", op.name()));
    }

    fn sample(&mut self, text: String) {
        if self.samples.len() < KEEP_ERRORS {
            self.samples.push(text);
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        for (a, b) in self.rows.iter_mut().zip(other.rows.iter()) {
            a.ok += b.ok;
            a.no += b.no;
            a.bad += b.bad;
            a.total += b.total;
            a.max = a.max.max(b.max);
        }
        self.sessions += other.sessions;
        self.errors += other.errors;
        self.literal_bytes += other.literal_bytes;
        self.idle_news += other.idle_news;
        for s in &other.samples {
            self.sample(s.clone());
        }
    }

    /// IMAP commands completed (any status), connects not included.
    pub fn operations(&self) -> u64 {
        self.replies(|r| r.ok + r.no + r.bad)
    }

    /// A count summed over the IMAP commands (connects left out).
    fn replies(&self, pick: impl Fn(&Row) -> u64) -> u64 {
        Op::ALL
            .iter()
            .filter(|&&op| op != Op::Connect)
            .map(|&op| pick(&self.rows[op.index()]))
            .sum()
    }

    /// The totals as `key=value` pairs for the driving script.
    pub fn result_fields(&self, secs: f64) -> String {
        let ops = self.operations();
        let ok = self.replies(|r| r.ok);
        format!(
            "ops={ops} ok={ok} secs={secs:.3} ops_per_s={:.2} ok_per_s={:.2} sessions={} no={} bad={} errors={}",
            ops as f64 / secs,
            ok as f64 / secs,
            self.sessions,
            self.replies(|r| r.no),
            self.replies(|r| r.bad),
            self.errors
        )
    }

    /// The per-command table and the totals, for a run of `secs` seconds.
    pub fn report(&self, secs: f64) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<15} {:>8} {:>6} {:>5} {:>9} {:>9} {:>9}",
            "command", "ok", "no", "bad", "per s", "mean ms", "max ms"
        );
        for op in Op::ALL {
            let r = &self.rows[op.index()];
            let n = r.ok + r.no + r.bad;
            if n == 0 {
                continue;
            }
            let _ = writeln!(
                out,
                "{:<15} {:>8} {:>6} {:>5} {:>9.1} {:>9.2} {:>9.1}",
                op.name(),
                r.ok,
                r.no,
                r.bad,
                n as f64 / secs,
                r.total.as_secs_f64() * 1000.0 / n as f64,
                r.max.as_secs_f64() * 1000.0
            );
        }
        let ops = self.operations();
        let _ = writeln!(
            out,
            "operations {ops} in {secs:.1} s = {:.1} ops/s; sessions {} = {:.2}/s; \
             {:.1} MiB of literals received; errors {}",
            ops as f64 / secs,
            self.sessions,
            self.sessions as f64 / secs,
            self.literal_bytes as f64 / (1024.0 * 1024.0),
            self.errors
        );
        let idles = self.rows[Op::Idle.index()];
        let _ = writeln!(
            out,
            "IDLEs that saw a change reported: {} of {}",
            self.idle_news,
            idles.ok + idles.no + idles.bad
        );
        for s in &self.samples {
            let _ = writeln!(out, "  e.g. {s}");
        }
        out
    }
}
