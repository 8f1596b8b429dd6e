//! The gateway config loader fed arbitrary text (bytes that are not UTF-8 are
//! decoded lossily, as an editor would show them): it must never panic, and
//! when it rejects the text it must say why — at least one error, each with a
//! non-empty key or message, naming the file it was given and a line that
//! exists in the text.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use meshgw_config::GatewayConfig;

const PATH: &str = "/nonexistent/fuzz.toml";

fn check(text: &str) {
    let path = Path::new(PATH);
    let Err(errs) = GatewayConfig::from_str_at(text, path) else {
        return;
    };
    assert!(!errs.0.is_empty(), "rejected with no error");
    let lines = text.matches('\n').count() + 1;
    for e in &errs.0 {
        assert!(
            !e.key.is_empty() || !e.message.is_empty(),
            "error with neither key nor message: {e:?}"
        );
        assert_eq!(e.file, path, "error names another file: {e:?}");
        if let Some(line) = e.line {
            assert!((1..=lines).contains(&line), "line {line} of {lines}: {e:?}");
        }
    }
    // Display must not panic either (it is what the operator sees).
    let shown = errs.to_string();
    assert!(!shown.is_empty());
}

fuzz_target!(|data: &[u8]| {
    match std::str::from_utf8(data) {
        Ok(text) => check(text),
        Err(_) => check(&String::from_utf8_lossy(data)),
    }
});
