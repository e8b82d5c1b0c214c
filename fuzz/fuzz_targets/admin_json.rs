//! Admin API JSON bodies: an object or a 400 with a message; nothing over
//! the body limit reaches the parser in the server, and nothing here may
//! panic or recurse without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_admin::parsers;
use serde_json::Value;

/// Equal but for the digits of numbers (serde_json's float parsing is not
/// exact, so a number may read back one unit off in the last place).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => true,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((k, a), (l, b))| k == l && same(a, b))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() as u64 > parsers::MAX_BODY {
        return;
    }
    match parsers::json(data) {
        Ok(fields) => {
            // What parsed is an object that writes back and reads the same.
            let text = serde_json::to_vec(&fields).expect("a parsed object serialises");
            let again = parsers::json(&text).expect("a written object parses");
            assert!(same(&Value::Object(fields), &Value::Object(again)));
        }
        Err((status, message)) => {
            assert_eq!(status, 400);
            assert!(!message.is_empty());
        }
    }
});
