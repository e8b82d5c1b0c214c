//! The privileged helper: a second process, started by `pochta serve`
//! while it is still root (a re-exec of its own binary, never a fork of a
//! threaded process), that does the few things the server may not do
//! itself. It talks over a socket pair that is its standard input, gives
//! up everything but `CAP_SYS_TIME` before reading a request, checks every
//! request itself (`request`), and ends when the server closes the socket.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::request::{self, Action, Answer, Bounds, Request};

/// The hidden subcommand that runs the helper.
pub const HELPER_COMMAND: &str = "privileged-helper";

/// The helper's process name (`ps`, `pidof`).
pub const PROCESS_NAME: &str = "pochta-helper";

/// Its option naming the setup code's copy.
pub const SETUP_COPY_ARG: &str = "--setup-copy";

/// How long the server waits for the helper's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The capabilities the helper keeps: the clock.
const HELPER_CAPS: &[u32] = &[crate::caps::CAP_SYS_TIME];

/// The server's end: one request at a time.
pub struct Helper {
    stream: Mutex<UnixStream>,
    child: Mutex<Child>,
}

impl Helper {
    /// Starts the helper from this process's own binary and waits for it to
    /// say it is ready (hardened). `setup_copy` is the one file it may
    /// write for the server (`admin.setup_code_copy`).
    pub fn start(setup_copy: Option<&Path>) -> Result<Helper, String> {
        let (ours, theirs) =
            UnixStream::pair().map_err(|e| format!("cannot make the helper's socket: {e}"))?;
        let mut command = Command::new("/proc/self/exe");
        // Its own name in `ps`. (BusyBox's `pidof pochta` still finds it by
        // its executable: scripts take the server's pid from
        // `run/serve.json`; the helper ends with the server's socket.)
        command.arg0(PROCESS_NAME).arg(HELPER_COMMAND);
        if let Some(path) = setup_copy {
            command.arg(SETUP_COPY_ARG).arg(path);
        }
        let child = command
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .spawn()
            .map_err(|e| format!("cannot start the privileged helper: {e}"))?;
        ours.set_read_timeout(Some(ANSWER_TIMEOUT))
            .and_then(|()| ours.set_write_timeout(Some(ANSWER_TIMEOUT)))
            .map_err(|e| format!("cannot set the helper's timeouts: {e}"))?;
        let helper = Helper {
            stream: Mutex::new(ours),
            child: Mutex::new(child),
        };
        let mut stream = helper.lock_stream();
        match read_answer(&mut stream)? {
            Answer::Done => {}
            other => return Err(format!("the privileged helper did not start: {other:?}")),
        }
        drop(stream);
        Ok(helper)
    }

    /// The helper's process id.
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap_or_else(|e| e.into_inner()).id()
    }

    fn lock_stream(&self) -> std::sync::MutexGuard<'_, UnixStream> {
        // A request either completes or the stream is broken for everyone:
        // nothing half-done is left for the next caller to trip on, because
        // a broken stream makes every later request an error too.
        self.stream.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends one request and reads its answer.
    pub fn ask(&self, request: &Request) -> Result<Answer, String> {
        let body = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        let mut stream = self.lock_stream();
        write_frame(&mut stream, &body)?;
        read_answer(&mut stream)
    }

    /// Sets the system clock to `since_epoch`.
    pub fn set_clock(&self, since_epoch: Duration) -> Result<(), String> {
        let request = Request::SetClock {
            unix_secs: since_epoch.as_secs() as i64,
            nanos: since_epoch.subsec_nanos(),
        };
        done(self.ask(&request)?)
    }

    /// Writes the setup code's copy (the file the helper was started with).
    pub fn write_setup_copy(&self, text: &str) -> Result<(), String> {
        done(self.ask(&Request::WriteSetupCopy { text: text.into() })?)
    }

    /// Removes the setup code's copy.
    pub fn remove_setup_copy(&self) -> Result<(), String> {
        done(self.ask(&Request::RemoveSetupCopy)?)
    }
}

fn done(answer: Answer) -> Result<(), String> {
    match answer {
        Answer::Done => Ok(()),
        Answer::Refused { reason } => Err(format!("the privileged helper refused: {reason}")),
        Answer::Failed { error } => Err(error),
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        // The helper ends when its socket closes; then it is reaped.
        let _ = self.lock_stream().shutdown(std::net::Shutdown::Both);
        let _ = self.child.lock().unwrap_or_else(|e| e.into_inner()).wait();
    }
}

fn write_frame(stream: &mut UnixStream, body: &[u8]) -> Result<(), String> {
    let header = request::frame_header(body.len())?;
    stream
        .write_all(&header)
        .and_then(|()| stream.write_all(body))
        .map_err(|e| format!("cannot reach the privileged helper: {e}"))
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
fn read_frame(stream: &mut UnixStream) -> Result<Option<Vec<u8>>, String> {
    let mut header = [0u8; 4];
    match stream.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(format!("cannot read a frame: {e}")),
    }
    let len = request::frame_len(header)?;
    let mut body = vec![0u8; len];
    stream
        .read_exact(&mut body)
        .map_err(|e| format!("cannot read a frame: {e}"))?;
    Ok(Some(body))
}

fn read_answer(stream: &mut UnixStream) -> Result<Answer, String> {
    let body = read_frame(stream)
        .map_err(|e| format!("no answer from the privileged helper: {e}"))?
        .ok_or("the privileged helper is gone")?;
    serde_json::from_slice(&body)
        .map_err(|e| format!("a bad answer from the privileged helper: {e}"))
}

/// The helper process (`pochta privileged-helper [--setup-copy FILE]`): its
/// standard input is the socket to the server. Returns the exit status.
pub fn run(setup_copy: Option<PathBuf>) -> i32 {
    // SAFETY: fd 0 is this process's standard input; it is owned here
    // and by nothing else in this process.
    let fd = unsafe { OwnedFd::from_raw_fd(0) };
    if nix::sys::socket::getsockname::<nix::sys::socket::UnixAddr>(std::os::fd::AsRawFd::as_raw_fd(
        &fd,
    ))
    .is_err()
    {
        eprintln!("pochta: privileged-helper is started by `pochta serve`, with a socket as its standard input");
        return 2;
    }
    let mut stream = UnixStream::from(fd);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16
    // bytes; this one is a literal.
    unsafe { nix::libc::prctl(nix::libc::PR_SET_NAME, c"pochta-helper".as_ptr(), 0, 0, 0) };
    if let Err(e) = harden(setup_copy.as_deref()) {
        tracing::error!("privileged helper: {e}");
        let _ = send(&mut stream, &Answer::Refused { reason: e });
        return 1;
    }
    if send(&mut stream, &Answer::Done).is_err() {
        return 1;
    }
    let bounds = Bounds {
        setup_copy: setup_copy.is_some(),
        ..Bounds::default()
    };
    serve(&mut stream, &bounds, setup_copy.as_deref())
}

/// Everything but the clock given up; nothing may be run, and nothing
/// written but in the setup copy's folder.
fn harden(setup_copy: Option<&Path>) -> Result<(), String> {
    if nix::unistd::Uid::effective().is_root() {
        crate::caps::limit_bounding_set(HELPER_CAPS)?;
        crate::caps::keep_only(HELPER_CAPS)?;
    }
    let confinement = crate::sandbox::confine(&crate::sandbox::Policy {
        writable: setup_copy
            .and_then(Path::parent)
            .map(Path::to_owned)
            .into_iter()
            .collect(),
        execute: false,
    })?;
    if let crate::sandbox::Confinement::None(why) = confinement {
        tracing::warn!("privileged helper: not confined by Landlock: {why}");
    }
    Ok(())
}

fn send(stream: &mut UnixStream, answer: &Answer) -> Result<(), String> {
    let body = serde_json::to_vec(answer).map_err(|e| e.to_string())?;
    write_frame(stream, &body)
}

/// Answers requests until the server closes the socket.
fn serve(stream: &mut UnixStream, bounds: &Bounds, setup_copy: Option<&Path>) -> i32 {
    loop {
        let frame = match read_frame(stream) {
            Ok(Some(frame)) => frame,
            Ok(None) => return 0,
            Err(e) => {
                // A frame too long (or a broken socket) cannot be skipped:
                // say why and end.
                tracing::warn!("privileged helper: refused: {e}");
                let _ = send(stream, &Answer::Refused { reason: e });
                return 1;
            }
        };
        let answer = match request::decide(&frame, bounds) {
            Ok(action) => act(action, setup_copy),
            Err(reason) => {
                tracing::warn!("privileged helper: refused: {reason}");
                Answer::Refused { reason }
            }
        };
        if send(stream, &answer).is_err() {
            return 1;
        }
    }
}

fn act(action: Action, setup_copy: Option<&Path>) -> Answer {
    let failed = |what: &str, e: std::io::Error| Answer::Failed {
        error: format!("cannot {what}: {e}"),
    };
    match action {
        Action::SetClock { unix_secs, nanos } => {
            use nix::sys::time::TimeSpec;
            use nix::time::{clock_settime, ClockId};
            let to = TimeSpec::new(unix_secs, i64::from(nanos) as _);
            match clock_settime(ClockId::CLOCK_REALTIME, to) {
                Ok(()) => {
                    tracing::info!(unix_secs, "privileged helper: clock set");
                    Answer::Done
                }
                Err(e) => Answer::Failed {
                    error: format!("cannot set the clock: {}", e.desc()),
                },
            }
        }
        // `check` allows these only when the helper has the file.
        Action::WriteSetupCopy { text } => match setup_copy {
            Some(path) => match write_file(path, &text) {
                Ok(()) => Answer::Done,
                Err(e) => failed(&format!("write {}", path.display()), e),
            },
            None => Answer::Refused {
                reason: "no setup copy file".into(),
            },
        },
        Action::RemoveSetupCopy => match setup_copy.map(std::fs::remove_file) {
            Some(Ok(())) => Answer::Done,
            Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Answer::Done,
            Some(Err(e)) => failed("remove the setup copy", e),
            None => Answer::Refused {
                reason: "no setup copy file".into(),
            },
        },
    }
}

/// Written to a temporary name (mode 0600), synced, renamed: a power cut
/// leaves the old file or the new one (the boot partition is FAT, mounted
/// with `flush`). The admin page writes its setup code the same way.
pub fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
