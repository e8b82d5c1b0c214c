//! Generated mailbox data: message `i` of a seed is always the same bytes, so
//! both servers get identical mailboxes, and a run can be repeated.
//!
//! Words are made of syllables that contain neither `q` nor `z`, so the rare
//! search word [`RARE_WORD`] occurs exactly in the messages that
//! [`has_rare_word`] names, about one in [`RARE_EVERY`].

/// A small deterministic generator (SplitMix64): the same seed gives the
/// same choices on every machine and for every server.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below(u64::from(hi - lo) + 1) as u32
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < u64::from(percent)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The word `SEARCH TEXT` looks for; no generated word contains it.
pub const RARE_WORD: &str = "quetzal";
/// One message in this many carries the rare word.
pub const RARE_EVERY: u64 = 9973;
const RARE_OFFSET: u64 = 1234;

/// Whether message `index` carries [`RARE_WORD`].
pub fn has_rare_word(index: u64) -> bool {
    index % RARE_EVERY == RARE_OFFSET
}

/// How many of messages `0..count` carry [`RARE_WORD`].
pub fn rare_word_count(count: u64) -> u64 {
    if count <= RARE_OFFSET {
        0
    } else {
        (count - RARE_OFFSET - 1) / RARE_EVERY + 1
    }
}

const SYLLABLES: &[&str] = &[
    "ba", "ko", "ri", "tan", "mel", "dor", "si", "pa", "lu", "ven", "gre", "nor", "fi", "ta", "mo",
    "ser", "lin", "ca", "de", "ro", "wel", "han", "bri", "tu", "ge", "am", "op", "est", "ul", "ik",
];
const FIRST_NAMES: &[&str] = &[
    "Anna", "Boris", "Clara", "Dmitri", "Elena", "Felix", "Greta", "Hugo", "Irina", "Jonas",
    "Katya", "Lev", "Marta", "Nikolai", "Olga", "Pavel",
];
const LAST_NAMES: &[&str] = &[
    "Ivanova",
    "Petrov",
    "Smirnova",
    "Kovalenko",
    "Novak",
    "Horvat",
    "Larsen",
    "Berg",
];
const DOMAINS: &[&str] = &["example.org", "example.com", "mail.test", "partner.test"];
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn word(rng: &mut Rng) -> String {
    // Short words are common, long ones rare, roughly as in prose.
    let n = match rng.below(10) {
        0..=3 => 1,
        4..=7 => 2,
        8 => 3,
        _ => 4,
    };
    (0..n).map(|_| *rng.pick(SYLLABLES)).collect()
}

fn words(rng: &mut Rng, count: usize) -> String {
    (0..count).map(|_| word(rng)).collect::<Vec<_>>().join(" ")
}

/// Body size in bytes: mostly small, some medium, a few large, as in a
/// business mailbox without attachments.
fn body_size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=69 => rng.between(400, 3_000) as usize,
        70..=94 => rng.between(3_000, 20_000) as usize,
        _ => rng.between(20_000, 100_000) as usize,
    }
}

/// Lines of text of about `size` bytes, CRLF-terminated, at most 76
/// characters each; the rare word goes into the middle when asked for.
fn text_body(rng: &mut Rng, size: usize, rare: bool) -> String {
    let mut out = String::with_capacity(size + 100);
    let mut line = String::new();
    let mut rare_pending = rare;
    while out.len() < size {
        let w = if rare_pending && out.len() >= size / 2 {
            rare_pending = false;
            RARE_WORD.to_string()
        } else {
            word(rng)
        };
        if line.len() + w.len() + 1 > 76 {
            out.push_str(&line);
            out.push_str(".\r\n");
            line.clear();
            if rng.chance(15) {
                out.push_str("\r\n");
            }
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&w);
    }
    if rare_pending {
        line.push(' ');
        line.push_str(RARE_WORD);
    }
    out.push_str(&line);
    out.push_str(".\r\n");
    out
}

/// `d Mon yyyy hh:mm:ss +0000` for seconds since the epoch (RFC 5322 §3.3,
/// without the optional day of the week).
fn rfc5322_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{day} {} {year} {:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Message `index` for `recipient`: RFC 5322 headers and a plain-text body,
/// or (one in five) a multipart/alternative with text and HTML parts.
pub fn generate(seed: u64, index: u64, recipient: &str) -> Vec<u8> {
    let mut rng = Rng::new(seed.wrapping_mul(0x1000_0000_01b3) ^ index);
    let first = *rng.pick(FIRST_NAMES);
    let last = *rng.pick(LAST_NAMES);
    let domain = *rng.pick(DOMAINS);
    // 2026-01-01T00:00:00Z, then one message every few minutes.
    let date = rfc5322_date(1_767_225_600 + index * 240 + rng.below(200));
    let subject_words = rng.between(2, 8) as usize;
    let mut subject = words(&mut rng, subject_words);
    if let Some(c) = subject.get(..1) {
        subject = c.to_uppercase() + &subject[1..];
    }
    let rare = has_rare_word(index);
    let size = body_size(&mut rng);
    let multipart = rng.chance(20);
    let mut m = format!(
        "From: \"{first} {last}\" <{}.{}@{domain}>\r\n\
         To: {recipient}\r\n\
         Subject: {subject}\r\n\
         Date: {date}\r\n\
         Message-ID: <{index:x}.{seed:x}@gen.bench.test>\r\n\
         MIME-Version: 1.0\r\n",
        first.to_lowercase(),
        last.to_lowercase(),
    );
    let text = text_body(&mut rng, size, rare);
    if multipart {
        let boundary = format!("=_b{index:x}");
        let html: String = text
            .split("\r\n\r\n")
            .map(|p| format!("<p>{}</p>\r\n", p.trim_end()))
            .collect();
        m.push_str(&format!(
            "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n\
             --{boundary}\r\n\
             Content-Type: text/plain; charset=us-ascii\r\n\r\n\
             {text}\
             --{boundary}\r\n\
             Content-Type: text/html; charset=us-ascii\r\n\r\n\
             <html><body>\r\n{html}</body></html>\r\n\
             --{boundary}--\r\n"
        ));
    } else {
        m.push_str("Content-Type: text/plain; charset=us-ascii\r\n\r\n");
        m.push_str(&text);
    }
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(hay: &[u8], needle: &str) -> bool {
        hay.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
    }

    #[test]
    fn same_seed_same_bytes() {
        assert_eq!(generate(7, 42, "u@x.test"), generate(7, 42, "u@x.test"));
        assert_ne!(generate(7, 42, "u@x.test"), generate(7, 43, "u@x.test"));
    }

    #[test]
    fn rare_word_only_where_announced() {
        for i in (0..30_000)
            .step_by(97)
            .chain([RARE_OFFSET, RARE_OFFSET + RARE_EVERY])
        {
            let m = generate(1, i, "user@bench.test");
            assert_eq!(contains(&m, RARE_WORD), has_rare_word(i), "message {i}");
        }
        assert!(SYLLABLES.iter().all(|s| !s.contains(['q', 'z'])));
    }

    #[test]
    fn rare_word_count_matches() {
        for n in [0, RARE_OFFSET, RARE_OFFSET + 1, 50_000, 2_000] {
            let brute = (0..n).filter(|&i| has_rare_word(i)).count() as u64;
            assert_eq!(rare_word_count(n), brute, "n = {n}");
        }
    }

    #[test]
    fn lines_end_in_crlf_and_stay_short() {
        for i in 0..200 {
            let m = generate(3, i, "user@bench.test");
            let text = String::from_utf8(m).unwrap();
            assert!(text.ends_with("\r\n"));
            for line in text.split("\r\n") {
                assert!(!line.contains('\n') && line.len() <= 998, "message {i}");
            }
        }
    }

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "1 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(1_767_225_600), "1 Jan 2026 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(951_782_400 + 3661),
            "29 Feb 2000 01:01:01 +0000"
        );
    }
}
