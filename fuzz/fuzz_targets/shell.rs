//! Any bytes typed at the prompt: the line editor and the parser never panic,
//! and a finished line is always printable ASCII no longer than the buffer.
#![no_main]

use kernel::shell::editor::{Echo, LINE_MAX, LineEditor};
use kernel::shell::parse::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut editor = LineEditor::new();
    for &byte in data {
        if editor.feed(byte) == Echo::Enter {
            let Ok(line) = editor.take_line() else {
                continue;
            };
            let text = line.as_str();
            assert!(text.len() <= LINE_MAX);
            assert!(text.bytes().all(|b| (0x20..0x7f).contains(&b)));
            if let Err(e) = parse(text) {
                let _ = e.to_string();
            }
        }
    }
});
