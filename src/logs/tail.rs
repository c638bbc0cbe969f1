//! The last 30 KB of an app's output, kept for the start-failure page and ancm's own log.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// As much output as ANCM keeps for its start-failure event (spec §3.8).
const CAPACITY: usize = 30 * 1024;

/// A shared ring of the most recent output bytes, line by line.
#[derive(Debug, Clone, Default)]
pub struct Tail {
    bytes: Arc<Mutex<VecDeque<u8>>>,
}

impl Tail {
    pub fn push(&self, line: &[u8]) {
        let Ok(mut bytes) = self.bytes.lock() else {
            return;
        };
        let line = &line[line.len().saturating_sub(CAPACITY - 1)..];
        let overflow = (bytes.len() + line.len() + 1).saturating_sub(CAPACITY);
        bytes.drain(..overflow);
        bytes.extend(line);
        bytes.push_back(b'\n');
    }

    /// The kept output as text, starting at a line boundary.
    pub fn text(&self) -> String {
        let Ok(bytes) = self.bytes.lock() else {
            return String::new();
        };
        let (a, b) = bytes.as_slices();
        let mut all = Vec::with_capacity(bytes.len());
        all.extend_from_slice(a);
        all.extend_from_slice(b);
        drop(bytes);
        let text = String::from_utf8_lossy(&all);
        let full = text.len() >= CAPACITY - 4;
        match text.find('\n') {
            // The oldest line may have lost its start to the ring; drop it.
            Some(i) if full => text[i + 1..].to_owned(),
            _ => text.into_owned(),
        }
    }

    pub fn clear(&self) {
        if let Ok(mut bytes) = self.bytes.lock() {
            bytes.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_30_kb_from_a_line_start() {
        let tail = Tail::default();
        for i in 0..10_000 {
            tail.push(format!("line {i}").as_bytes());
        }
        let text = tail.text();
        assert!(text.len() <= CAPACITY);
        assert!(text.ends_with("line 9999\n"));
        assert!(text.starts_with("line "), "{}", &text[..20]);
    }
}
