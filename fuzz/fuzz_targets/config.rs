//! The configuration file (config::Config::parse: TOML, then validation):
//! never a panic, the same answer for both port sets' defaults where the
//! file names every listener, and an error message that names the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pochta_config::{Config, PortSet};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/pochta/fuzz.toml");
    match Config::parse(text, path, PortSet::Unprivileged) {
        Ok(config) => {
            // Parsing is a function of the text.
            let again = Config::parse(text, path, PortSet::Unprivileged).expect("parsed once");
            assert_eq!(config, again);
        }
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains("fuzz.toml"),
                "error without the file: {message}"
            );
        }
    }
    let _ = Config::parse(text, path, PortSet::Standard);
});
