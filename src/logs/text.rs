//! The app's output bytes as text: invalid UTF-8 replaced, and control sequences removed. A
//! terminal gets the app's colours (SGR) and nothing else: a cursor move, a title, a clipboard
//! write (OSC 52) or a bare carriage return would let whoever gets a line into the app's
//! output (a client whose input the app logs) rewrite or hide what the operator sees. Files,
//! pages, `ancm logs` and ancm's log get no escape at all.

use std::borrow::Cow;

use anstyle_parse::{DefaultCharAccumulator, Params, Parser, Perform};

/// One line of output as bytes read: valid UTF-8, not yet cleaned.
pub(crate) fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// One line as a terminal shows it: colours kept, every other control sequence and control
/// character (but TAB) removed.
pub(crate) fn terminal(text: &str) -> Cow<'_, str> {
    clean(text, true)
}

/// One line as files, pages, `ancm logs` and ancm's log show it: no control sequence and no
/// control character but TAB.
pub(crate) fn plain(text: &str) -> Cow<'_, str> {
    clean(text, false)
}

fn clean(text: &str, keep_colours: bool) -> Cow<'_, str> {
    // Most lines hold no control at all (C0, DEL or C1, which some terminals obey as well);
    // those are kept as they are.
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return Cow::Borrowed(text);
    }
    let mut cleaner = Cleaner {
        out: String::with_capacity(text.len()),
        keep_colours,
    };
    let mut parser = Parser::<DefaultCharAccumulator>::new();
    for &byte in text.as_bytes() {
        parser.advance(&mut cleaner, byte);
    }
    Cow::Owned(cleaner.out)
}

/// Keeps printable characters, TAB and (for a terminal) SGR sequences; drops the rest.
struct Cleaner {
    out: String,
    keep_colours: bool,
}

impl Perform for Cleaner {
    fn print(&mut self, c: char) {
        if !c.is_control() {
            self.out.push(c);
        }
    }

    fn execute(&mut self, byte: u8) {
        if byte == b'\t' {
            self.out.push('\t');
        }
    }

    fn csi_dispatch(&mut self, params: &Params, intermediates: &[u8], ignore: bool, action: u8) {
        if !self.keep_colours || action != b'm' || !intermediates.is_empty() || ignore {
            return;
        }
        self.out.push_str("\x1b[");
        for (i, param) in params.iter().enumerate() {
            if i > 0 {
                self.out.push(';');
            }
            for (j, sub) in param.iter().enumerate() {
                if j > 0 {
                    self.out.push(':');
                }
                self.out.push_str(&sub.to_string());
            }
        }
        self.out.push('m');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KESTREL: &str =
        "\x1b[40m\x1b[32minfo\x1b[39m\x1b[22m\x1b[49m: Microsoft.Hosting.Lifetime[14]";

    #[test]
    fn colours_and_cursor_moves_are_removed() {
        assert_eq!(plain(KESTREL), "info: Microsoft.Hosting.Lifetime[14]");
        assert_eq!(plain("\x1b[2K\x1b[1Gdone"), "done");
        assert_eq!(plain("title\x1b]0;window\x07 text"), "title text");
        assert_eq!(plain("tab\tkept"), "tab\tkept");
        assert!(matches!(plain("plain"), Cow::Borrowed("plain")));
        assert!(matches!(plain("café ©"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_terminal_gets_colours_only() {
        assert_eq!(terminal(KESTREL), KESTREL);
        assert_eq!(
            terminal("\x1b[38:2:255:0:0mred\x1b[m"),
            "\x1b[38:2:255:0:0mred\x1b[0m"
        );
        // A clipboard write (OSC 52), a title, both string terminators.
        assert_eq!(terminal("a\x1b]52;c;cm0gLXJmIH4=\x07b"), "ab");
        assert_eq!(terminal("a\x1b]0;pwned\x1b\\b"), "ab");
        // Cursor moves, erasing, a private mode, a device control string, C1 CSI.
        assert_eq!(terminal("a\x1b[1A\x1b[2K\x1b[?25lb"), "ab");
        assert_eq!(terminal("a\x1bP1$r\x1b\\b"), "ab");
        // A C1 CSI goes; what followed it is harmless text once it has.
        assert_eq!(terminal("a\u{9b}2Jb"), "a2Jb");
        assert_eq!(terminal("a\x1bcb"), "ab");
    }

    #[test]
    fn a_carriage_return_cannot_overwrite_a_line() {
        let forged = "GET /login user=alice ok\r[ancm] all fine";
        assert_eq!(plain(forged), "GET /login user=alice ok[ancm] all fine");
        assert_eq!(terminal(forged), "GET /login user=alice ok[ancm] all fine");
        assert_eq!(plain("bell\x07 back\x08space\x7f"), "bell backspace");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(lossy(b"bad \xff\xfe end"), "bad \u{fffd}\u{fffd} end");
        assert_eq!(plain(&lossy(b"\x1b[31m\xffred\x1b[0m")), "\u{fffd}red");
    }
}
