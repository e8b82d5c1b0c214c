//! The Backup page: how the last backups and test restores went, each
//! destination's snapshots, "Back up now" and "Test restore now" (started
//! in the background; the page reloads itself while one runs), where and
//! when backups go, and the backup key's recovery sheet behind the
//! password and a code. Forms post to `/backup/...` and are handled by the
//! same functions as `/api/backup/...`. A destination is a section of its
//! own, so that another kind of destination is another section.

use std::net::SocketAddr;

use pochta_backup::{DestinationStatus, Settings, SnapshotInfo};
use pochta_config::{format_duration, format_size};

use crate::backup::{self, DestinationView, Ended, Overview, Runs};
use crate::http::{Body, Reply};
use crate::session::Session;
use crate::State;

use super::{csrf_field, error_box, esc, page, refusal_box, reloading_page, typed, when, Refused};

/// Seconds between the page's reloads while a run is under way.
const RELOAD_SECS: u32 = 5;

/// `GET /backup`, or the page again after a refused form.
pub(super) fn show(state: &State, s: &Session, status: u16, refused: Option<Refused<'_>>) -> Reply {
    let o = match backup::overview(state) {
        Ok(o) => o,
        Err(reply) => {
            return page(
                reply.status,
                "Backup",
                Some(s),
                &error_box(Some(&reply.error_message())),
            )
        }
    };
    let content = [
        refusal_box(refused),
        summary(&o),
        runs(&o.runs),
        o.destinations
            .iter()
            .map(|d| destination(d, &o))
            .collect::<String>(),
        actions(s, &o),
        settings_form(s, &o.settings, refused),
        key_form(s),
    ]
    .concat();
    if o.runs.running.is_some() {
        reloading_page(status, "Backup", s, &content, RELOAD_SECS)
    } else {
        page(status, "Backup", Some(s), &content)
    }
}

/// `POST /backup/ACTION`: the same handlers as the API, then the page (or,
/// for the key, the recovery sheet).
pub(super) fn act(
    state: &State,
    s: &Session,
    action: &str,
    form: &Body,
    peer: SocketAddr,
) -> Reply {
    let reply = match action {
        "settings" => backup::save_settings(state, form),
        "run" => backup::run(state),
        "verify" => backup::verify(state, form),
        "key" => backup::key(state, s, form, peer),
        _ => return super::not_found(Some(s)),
    };
    if !reply.is_success() {
        let message = reply.error_message();
        return show(state, s, reply.status, Some(Refused::new(&message, form)));
    }
    if action != "key" {
        return Reply::redirect("/backup");
    }
    let value = reply.json_value().unwrap_or_default();
    let sheet = sheet(state, value["key"].as_str().unwrap_or(""));
    page(
        200,
        "Recovery sheet",
        Some(s),
        &format!(
            "{sheet}<section class=\"no-print\"><p>Print this page (the browser's Print, \
             Ctrl+P: the menu and this note are left out) or copy the key by hand, and \
             keep it away from the box.</p>\
             <p><a class=\"button\" href=\"/backup\">Back to the Backup page</a></p></section>"
        ),
    )
}

/// How long a run took: tenths of a second when short.
fn took(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format_duration((ms / 1000) as i64)
    }
}

fn summary(o: &Overview) -> String {
    if !o.set_up {
        return format!(
            "<section><h2>Backups</h2>\
             <p class=\"alert warning\" id=\"no-backup\">{}</p>\
             <p>Plug a USB disk into the box, make a folder on it and choose it below. \
             Pochta then backs up every day: encrypted with this box's backup key, \
             incremental, and readable by the standard <code>restic</code> program on \
             any computer.</p></section>",
            esc(backup::NOT_SET_UP)
        );
    }
    let r = o.settings.retention;
    format!(
        "<section><h2>Backups</h2><p>Every day at {:02}:00 (the box's time), to each \
         destination below; a test restore once a week. Kept: {} daily, {} weekly and {} \
         monthly snapshots.</p></section>",
        o.settings.hour, r.daily, r.weekly, r.monthly
    )
}

/// The run under way, or how the last one ended.
fn runs(runs: &Runs) -> String {
    if let Some(r) = &runs.running {
        return format!(
            "<section class=\"notice\" id=\"run-in-progress\" role=\"status\">\
             <h2>A {} is running</h2><p>Started at {}. This page reloads every {RELOAD_SECS} s \
             until it has finished.</p></section>",
            r.kind.noun(),
            when(Some(r.started_at))
        );
    }
    match &runs.last {
        None => String::new(),
        Some(ended) => last_run(ended),
    }
}

fn last_run(e: &Ended) -> String {
    let head = format!(
        "The {} started here at {} ended at {}",
        e.kind.noun(),
        when(Some(e.started_at)),
        when(Some(e.ended_at))
    );
    if e.ok {
        return format!(
            "<section class=\"notice\" id=\"last-run\" data-ok=\"true\" role=\"status\">\
             <p>{}: all went well.</p></section>",
            esc(&head)
        );
    }
    let problems: String = e
        .problems
        .iter()
        .map(|p| format!("<li>{}</li>", esc(&crate::sentence::sentence(p))))
        .collect();
    format!(
        "<section id=\"last-run\" data-ok=\"false\"><p class=\"error\">{}: \
         it did not go well.</p><ul>{problems}</ul></section>",
        esc(&head)
    )
}

/// One destination: its restart notice, how its runs went, its snapshots.
fn destination(d: &DestinationView, o: &Overview) -> String {
    let empty = DestinationStatus::default();
    let st = o.status.destinations.get(d.id).unwrap_or(&empty);
    let restart = d.restart_message.as_deref().map_or(String::new(), |m| {
        format!(
            "<p class=\"alert warning\" id=\"restart-needed\">{}</p>",
            esc(m)
        )
    });
    let last_ok = st.last_ok.as_ref().map_or("none yet".to_owned(), |ok| {
        format!(
            "{}: {} ({} added), {} messages, took {}; snapshot <code>{}</code>",
            when(Some(ok.at)),
            format_size(ok.bytes),
            format_size(ok.added),
            ok.messages,
            took(ok.duration_ms),
            esc(&ok.snapshot)
        )
    });
    let failure = st.last_failure.as_ref().map_or("none".to_owned(), |f| {
        format!(
            "{}: {}",
            when(Some(f.at)),
            esc(&crate::sentence::sentence(&f.error))
        )
    });
    let verify = st.last_verify.as_ref().map_or("none yet".to_owned(), |v| {
        if v.ok {
            format!(
                "{}: <span class=\"state ok\">ok</span> {} message files of snapshot \
                 <code>{}</code> restored and checked{}",
                when(Some(v.at)),
                v.bodies,
                esc(&v.snapshot),
                if v.full { " (all of them)" } else { "" }
            )
        } else {
            format!(
                "{}: <span class=\"state failing\">failed</span> {}",
                when(Some(v.at)),
                esc(&crate::sentence::sentence(&v.problems.join("; ")))
            )
        }
    });
    format!(
        "<section class=\"destination\" data-destination=\"{id}\"><h2>Backups to {name}</h2>\
         {restart}<table class=\"facts\">\
         <tr><th>Last backup</th><td id=\"last-backup-{id}\">{last_ok}</td></tr>\
         <tr><th>Last failure</th><td id=\"last-failure-{id}\">{failure}</td></tr>\
         <tr><th>Last test restore</th><td id=\"last-verify-{id}\">{verify}</td></tr>\
         </table><h3>Snapshots</h3>{snapshots}</section>",
        id = esc(d.id),
        name = esc(&d.destination),
        snapshots = snapshots(d),
    )
}

/// A snapshot's time (RFC 3339) on the page's clock.
fn snapshot_time(text: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| when(Some(t.timestamp())))
        .unwrap_or_else(|_| esc(text))
}

fn snapshots(d: &DestinationView) -> String {
    if let Some(e) = &d.snapshots_error {
        return format!(
            "<p class=\"error\">The snapshots cannot be listed: {}</p>",
            esc(&crate::sentence::sentence(e))
        );
    }
    if d.snapshots.is_empty() {
        return "<p>No snapshots yet.</p>".into();
    }
    let rows: String = d
        .snapshots
        .iter()
        .rev()
        .map(|s: &SnapshotInfo| {
            format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td>\
                 <td class=\"optional\">{}</td><td class=\"optional\">{}</td></tr>",
                esc(&s.id),
                snapshot_time(&s.time),
                format_size(s.bytes),
                format_size(s.bytes_added),
                esc(&s.host)
            )
        })
        .collect();
    format!(
        "<table id=\"snapshots-{}\" class=\"snapshots\"><tr><th>Snapshot</th><th>Made</th>\
         <th>Size</th><th class=\"optional\">Added</th><th class=\"optional\">Host</th></tr>\
         {rows}</table><p class=\"muted\">Newest first. A snapshot holds the whole box as \
         it was; the data they share is stored once.</p>",
        esc(d.id)
    )
}

/// "Back up now" and "Test restore now".
fn actions(s: &Session, o: &Overview) -> String {
    if !o.set_up {
        return String::new();
    }
    let csrf = csrf_field(s);
    let disabled = if o.runs.running.is_some() {
        " disabled"
    } else {
        ""
    };
    format!(
        "<section><h2>Now</h2><p>Back up now makes a snapshot at once. Test restore now \
         restores the newest backup's database and three accounts' mail into a scratch \
         folder and checks every file. Either may take minutes; the page shows when it \
         has finished.</p><div class=\"actions\">\
         <form method=\"post\" action=\"/backup/run\">{csrf}\
         <button id=\"back-up-now\"{disabled}>Back up now</button></form>\
         <form method=\"post\" action=\"/backup/verify\">{csrf}\
         <button id=\"test-restore-now\"{disabled}>Test restore now</button></form>\
         </div></section>"
    )
}

fn settings_form(s: &Session, settings: &Settings, refused: Option<Refused<'_>>) -> String {
    let folder = settings
        .folder
        .as_ref()
        .map(|f| f.display().to_string())
        .unwrap_or_default();
    let r = settings.retention;
    let number = |id: &str, name: &str, label: &str, value: u32| {
        format!(
            "<div><label for=\"{id}\">{label}</label>\
             <input id=\"{id}\" name=\"{name}\" type=\"number\" min=\"0\" max=\"3650\" \
             inputmode=\"numeric\" value=\"{}\" required></div>",
            typed(refused, name, &value.to_string())
        )
    };
    format!(
        "<section><h2>Where and when</h2>\
         <form method=\"post\" action=\"/backup/settings\">{csrf}\
         <label for=\"backup-folder\">Backup folder (on the USB disk; it must exist)</label>\
         <input id=\"backup-folder\" class=\"wide\" name=\"folder\" placeholder=\"/media/usb/backup\" value=\"{folder}\">\
         <label for=\"backup-hour\">Daily backup at this hour (0–23, the box's time)</label>\
         <input id=\"backup-hour\" name=\"hour\" type=\"number\" min=\"0\" max=\"23\" \
         inputmode=\"numeric\" value=\"{hour}\" required>\
         <fieldset class=\"counts\"><legend>Snapshots kept</legend>{daily}{weekly}{monthly}</fieldset>\
         <button>Save</button></form>\
         <p class=\"muted\">An empty folder stops the backups. A folder chosen here is \
         written by the running server only after a restart.</p></section>",
        csrf = csrf_field(s),
        folder = typed(refused, "folder", &folder),
        hour = typed(refused, "hour", &settings.hour.to_string()),
        daily = number("keep-daily", "daily", "Daily", r.daily),
        weekly = number("keep-weekly", "weekly", "Weekly", r.weekly),
        monthly = number("keep-monthly", "monthly", "Monthly", r.monthly),
    )
}

fn key_form(s: &Session) -> String {
    format!(
        "<section id=\"key\"><h2>The backup key</h2>\
         <p>Backups are encrypted with this box's backup key. Without it the backup cannot \
         be read, by Pochta or anyone, and a lost box takes its own copy with it. Print \
         the recovery sheet (or write the key down) and keep it away from the box.</p>\
         <form method=\"post\" action=\"/backup/key\">{}\
         <label for=\"key-password\">Your password</label>\
         <input id=\"key-password\" name=\"password\" type=\"password\" \
         autocomplete=\"current-password\" required>\
         <label for=\"key-code\">Code from your authenticator app (or a recovery code)</label>\
         <input id=\"key-code\" name=\"totp\" autocomplete=\"one-time-code\" required>\
         <button>Show the recovery sheet</button></form></section>",
        csrf_field(s)
    )
}

/// A path as one word for a shell (quoted when it holds anything else).
fn shell_word(path: &str) -> String {
    if !path.is_empty()
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@".contains(&b))
    {
        path.to_owned()
    } else {
        format!("'{}'", path.replace('\'', r"'\''"))
    }
}

/// The key with a line break allowed after each dash (never inside a
/// group: a group split over two lines is easily copied wrong).
fn key_html(key: &str) -> String {
    key.split('-').map(esc).collect::<Vec<_>>().join("-<wbr>")
}

/// The recovery sheet: the key, the box, the date, where backups go, and
/// how to restore with stock restic or with Pochta. The style sheet prints
/// it on one page without the menu.
pub(super) fn sheet(state: &State, key: &str) -> String {
    let settings = Settings::load(&state.ctx.store).unwrap_or_default();
    let destinations = settings.destinations();
    let gone = if destinations.is_empty() {
        "nowhere yet: choose a folder on the Backup page".to_owned()
    } else {
        destinations
            .iter()
            .map(|d| esc(&d.describe()))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let folder = settings
        .folder
        .as_ref()
        .map_or("/path/to/folder".to_owned(), |f| {
            shell_word(&f.display().to_string())
        });
    let root = pochta_backup::SNAPSHOT_ROOT.trim_start_matches('/');
    format!(
        "<section class=\"sheet\" id=\"recovery-sheet\"><h2>Pochta backup key</h2>\
         <p><code class=\"backup-key\" id=\"backup-key\">{key}</code></p>\
         <table class=\"facts\">\
         <tr><th>Box</th><td id=\"sheet-host\">{host}</td></tr>\
         <tr><th>Written on</th><td>{date}</td></tr>\
         <tr><th>Backups go to</th><td id=\"sheet-destinations\">{gone}</td></tr></table>\
         <p class=\"warning-line\"><strong>Without this key the backup cannot be read, by \
         Pochta or anyone: keep it away from the box.</strong></p>\
         <h3>To restore with restic, on any computer</h3>\
         <p>Install restic (on Debian or Ubuntu: <code>apt install restic</code>), connect \
         the backup disk, and run (with the folder where that computer sees it):</p>\
         <p><code class=\"command\">restic -r {folder} restore latest \
         <span class=\"nowrap\">--target DIR</span></code></p>\
         <p>Type the key when asked. The box's files land in <code>DIR/{root}/</code>: the \
         database, the mail, the certificates and the configuration.</p>\
         <h3>To restore with Pochta, on a new box</h3>\
         <p><code class=\"command\">pochta backup restore latest \
         <span class=\"nowrap\">--from</span> {folder} <span class=\"nowrap\">--key-stdin</span> \
         <span class=\"nowrap\">--into NEWDATA</span></code></p>\
         <p>Type the key, press Enter and then Ctrl+D. Every message is checked; then \
         <code>pochta serve --data NEWDATA</code> serves the restored box.</p></section>",
        key = key_html(key),
        host = esc(&state.ctx.hostname),
        date = when(Some(crate::dashboard::now())),
        folder = esc(&folder),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_break_only_at_their_dashes_and_paths_are_one_word() {
        assert_eq!(key_html("ABCDE-12345-FGHJK"), "ABCDE-<wbr>12345-<wbr>FGHJK");
        assert_eq!(key_html("<b>"), "&lt;b&gt;");
        assert_eq!(shell_word("/media/usb/backup"), "/media/usb/backup");
        assert_eq!(shell_word("/media/My Disk"), "'/media/My Disk'");
        assert_eq!(shell_word("/x/it's"), r"'/x/it'\''s'");
        assert_eq!(took(1234), "1.2 s");
        assert_eq!(took(125_000), "2 min");
    }

    #[test]
    fn snapshot_times_on_the_page_clock() {
        assert!(snapshot_time("2026-11-27T23:50:41.123456789Z").starts_with("2026-11-2"));
        assert_eq!(snapshot_time("<not a time>"), "&lt;not a time&gt;");
    }
}
