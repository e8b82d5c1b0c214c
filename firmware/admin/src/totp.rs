//! TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps, one step of
//! clock skew) for administrator logins, with each step accepted once
//! (RFC 6238 §5.2).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::RngCore;
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Shown in authenticator apps next to the account name.
const ISSUER: &str = "Pochta";

/// A new secret: 160 random bits (RFC 4226 §4 recommends 160), base32.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Secret::from(bytes.to_vec()).to_base32()
}

fn totp(secret: &str, account: &str) -> Option<Totp> {
    let secret = Secret::try_from_base32(secret).ok()?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_skew(1)
        .with_secret(secret)
        .with_issuer(Some(ISSUER))
        // A colon would split issuer and account in the URI's label.
        .with_account_name(account.replace(':', "_"))
        .build()
        .ok()
}

/// The `otpauth://` URI that authenticator apps read (usually as a QR code).
pub fn uri(secret: &str, account: &str) -> Option<String> {
    totp(secret, account)?.to_url().ok()
}

/// The `otpauth://` URI as a QR code (SVG), drawn here: no image service
/// outside the box sees the secret.
pub fn qr_svg(secret: &str, account: &str) -> Option<String> {
    let uri = uri(secret, account)?;
    let code = qrcode::QrCode::with_error_correction_level(uri, qrcode::EcLevel::M).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(240, 240)
            .build(),
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The last step accepted per administrator, so that an observed code
/// cannot be replayed within its lifetime. In memory: a restart takes
/// longer than a step's lifetime.
#[derive(Default)]
pub struct Replay {
    last: Mutex<HashMap<String, u64>>,
}

impl Replay {
    /// Whether `code` is valid now for `secret` and was not used before by
    /// `admin`; a valid code is then used up.
    pub fn check(&self, admin: &str, secret: &str, code: &str) -> bool {
        self.check_at(admin, secret, code, unix_now())
    }

    fn check_at(&self, admin: &str, secret: &str, code: &str, now: u64) -> bool {
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        let Some(totp) = totp(secret, admin) else {
            return false;
        };
        let Some(step) = totp.check(code, now) else {
            return false;
        };
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match last.get(admin) {
            Some(&used) if step <= used => false,
            _ => {
                last.insert(admin.to_owned(), step);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 Appendix B: the SHA-1 seed "12345678901234567890"; the test
    // vectors are 8 digits, their last 6 are the 6-digit codes.
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn rfc_6238_vectors() {
        for (time, code) in [
            (59, "287082"),
            (1111111109, "081804"),
            (2000000000, "279037"),
        ] {
            let replay = Replay::default();
            assert!(replay.check_at("root", RFC_SECRET, code, time), "{time}");
        }
    }

    #[test]
    fn codes_are_used_once_and_skew_is_one_step() {
        let replay = Replay::default();
        let t = 1111111109;
        assert!(replay.check_at("root", RFC_SECRET, "081804", t));
        assert!(
            !replay.check_at("root", RFC_SECRET, "081804", t),
            "replayed"
        );
        // The next step's code is still good.
        let next = totp(RFC_SECRET, "root")
            .unwrap()
            .generate(t + 30)
            .to_string();
        assert!(replay.check_at("root", RFC_SECRET, &next, t));
        // Two steps away is not.
        let far = totp(RFC_SECRET, "root")
            .unwrap()
            .generate(t + 90)
            .to_string();
        assert!(!replay.check_at("root", RFC_SECRET, &far, t));
        for bad in ["", "12345", "1234567", "abcdef", "08180４"] {
            assert!(!replay.check_at("root", RFC_SECRET, bad, t), "{bad}");
        }
    }

    #[test]
    fn secrets_and_uris() {
        let s = new_secret();
        assert_eq!(s.len(), 32);
        assert_ne!(s, new_secret());
        let uri = uri(&s, "root").unwrap();
        assert!(uri.starts_with("otpauth://totp/Pochta:root?"), "{uri}");
        assert!(uri.contains(&format!("secret={s}")), "{uri}");
        assert!(uri.contains("issuer=Pochta"), "{uri}");
        let svg = qr_svg(&s, "root").unwrap();
        assert!(svg.contains("<svg") && svg.contains("<path"), "{svg}");
    }
}
