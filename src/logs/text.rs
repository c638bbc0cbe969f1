//! The app's output bytes as text: invalid UTF-8 replaced, and ANSI escape sequences (colours,
//! cursor moves) removed wherever the reader is not a terminal.

use std::borrow::Cow;

/// One line of output as the console shows it: valid UTF-8, escapes kept for a terminal.
pub(crate) fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// One line of output as files, pages and ancm's log show it: valid UTF-8, no escapes.
pub(crate) fn plain(text: &str) -> Cow<'_, str> {
    // Most lines hold no escape at all; those are kept as they are.
    if !text
        .bytes()
        .any(|b| b == 0x1b || b == 0x9b || (b < 0x20 && b != b'\t'))
    {
        return Cow::Borrowed(text);
    }
    Cow::Owned(anstream::adapter::strip_str(text).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_and_cursor_moves_are_removed() {
        let kestrel =
            "\x1b[40m\x1b[32minfo\x1b[39m\x1b[22m\x1b[49m: Microsoft.Hosting.Lifetime[14]";
        assert_eq!(plain(kestrel), "info: Microsoft.Hosting.Lifetime[14]");
        assert_eq!(plain("\x1b[2K\x1b[1Gdone"), "done");
        assert_eq!(plain("title\x1b]0;window\x07 text"), "title text");
        assert_eq!(plain("tab\tkept"), "tab\tkept");
        assert!(matches!(plain("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(lossy(b"bad \xff\xfe end"), "bad \u{fffd}\u{fffd} end");
        assert_eq!(plain(&lossy(b"\x1b[31m\xffred\x1b[0m")), "\u{fffd}red");
    }
}
