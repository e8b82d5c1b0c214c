//! The privileged helper: a second process, started by `pochta serve`
//! while it is still root (a re-exec of its own binary, never a fork of a
//! threaded process), that does the few things the server may not do
//! itself. It talks over a socket pair that is its standard input, gives
//! up everything but `CAP_SYS_TIME` before reading a request, checks every
//! request itself (`request`), and ends when the server closes the socket.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::request::{self, Action, Answer, Bounds, Request};

/// The hidden subcommand that runs the helper.
pub const HELPER_COMMAND: &str = "privileged-helper";

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
    /// say it is ready (hardened).
    pub fn start() -> Result<Helper, String> {
        let (ours, theirs) =
            UnixStream::pair().map_err(|e| format!("cannot make the helper's socket: {e}"))?;
        let child = Command::new("/proc/self/exe")
            .arg0("pochta")
            .arg(HELPER_COMMAND)
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
        match self.ask(&request)? {
            Answer::Done => Ok(()),
            Answer::Refused { reason } => Err(format!("the privileged helper refused: {reason}")),
            Answer::Failed { error } => Err(error),
        }
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

/// The helper process (`pochta privileged-helper`): its standard input is
/// the socket to the server. Returns the exit status.
pub fn run() -> i32 {
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
    if let Err(e) = harden() {
        tracing::error!("privileged helper: {e}");
        let _ = send(&mut stream, &Answer::Refused { reason: e });
        return 1;
    }
    if send(&mut stream, &Answer::Done).is_err() {
        return 1;
    }
    serve(&mut stream, &Bounds::default())
}

/// Everything but the clock given up; nothing may be written or run.
fn harden() -> Result<(), String> {
    if nix::unistd::Uid::effective().is_root() {
        crate::caps::limit_bounding_set(HELPER_CAPS)?;
        crate::caps::keep_only(HELPER_CAPS)?;
    }
    let confinement = crate::sandbox::confine(&crate::sandbox::Policy {
        writable: Vec::new(),
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
fn serve(stream: &mut UnixStream, bounds: &Bounds) -> i32 {
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
            Ok(action) => act(action),
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

fn act(action: Action) -> Answer {
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
    }
}
