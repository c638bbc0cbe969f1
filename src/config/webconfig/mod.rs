//! Reads the `<aspNetCore>` element out of a web.config file: its attributes and
//! `<environmentVariables>`, each with the line and column it came from; and, beside it, the
//! `<security><requestFiltering><requestLimits>` that IIS enforces before the app.
//!
//! This file takes the file's bytes (size cap, UTF-8 or UTF-16) to text; `parse` reads the
//! element out of the text, and `schema` names the attributes ANCM's and IIS's schemas know.
//! Must not import the sections that interpret the element.

mod parse;
mod schema;

use std::path::Path;

use super::error::ConfigError;

pub(super) use parse::{AspNetCoreElement, Attribute};

/// Larger files are refused: a web.config is a few kilobytes, and IIS refuses those over
/// 250 KB unless its registry says otherwise.
const MAX_SIZE: u64 = 4 * 1024 * 1024;

pub(super) fn read(path: &Path) -> Result<AspNetCoreElement, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > MAX_SIZE {
        return Err(too_big(path, size));
    }
    let bytes = std::fs::read(path).map_err(read_error)?;
    from_bytes(path, &bytes)
}

fn too_big(path: &Path, size: u64) -> ConfigError {
    ConfigError::Read {
        path: path.to_owned(),
        source: std::io::Error::other(format!(
            "the file is {size} bytes; a web.config over {MAX_SIZE} bytes is not read"
        )),
    }
}

/// Parses web.config bytes (UTF-8, with or without BOM, or UTF-16 with BOM); `path` is only
/// for messages.
pub(super) fn from_bytes(path: &Path, bytes: &[u8]) -> Result<AspNetCoreElement, ConfigError> {
    // The file may have grown between the size check and the read.
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > MAX_SIZE {
        return Err(too_big(path, size));
    }
    let text = decode(bytes).map_err(|message| ConfigError::Xml {
        path: path.to_owned(),
        line: 1,
        column: 1,
        message,
    })?;
    parse::parse(path, &text)
}

/// web.config files come as UTF-8 (often with a BOM) or, from some Windows editors, UTF-16.
fn decode(bytes: &[u8]) -> Result<String, String> {
    let utf16 = |data: &[u8], from: fn([u8; 2]) -> u16| {
        if data.len() % 2 != 0 {
            return Err("the file is UTF-16 (it starts with its byte-order mark) but has an odd number of bytes".to_owned());
        }
        let units: Vec<u16> = data
            .chunks_exact(2)
            .map(|pair| from([pair[0], pair[1]]))
            .collect();
        String::from_utf16(&units).map_err(|_| "invalid UTF-16 text".to_owned())
    };
    match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8(rest.to_vec()),
        [0xFF, 0xFE, rest @ ..] => return utf16(rest, u16::from_le_bytes),
        [0xFE, 0xFF, rest @ ..] => return utf16(rest, u16::from_be_bytes),
        _ => String::from_utf8(bytes.to_vec()),
    }
    .map_err(|e| {
        format!(
            "the file is not UTF-8 (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_and_bom() {
        let text = r#"<configuration><system.webServer><aspNetCore processPath="x"/></system.webServer></configuration>"#;
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(decode(&utf16).as_deref(), Ok(text));
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(text.as_bytes());
        assert_eq!(decode(&bom).as_deref(), Ok(text));
    }

    #[test]
    fn a_file_over_the_size_cap_is_refused_naming_its_size() {
        let bytes = vec![b' '; 4 * 1024 * 1024 + 1];
        let err = from_bytes(Path::new("web.config"), &bytes).expect_err("too big");
        assert_eq!(
            err.to_string(),
            "cannot read web.config: the file is 4194305 bytes; a web.config over 4194304 bytes \
             is not read"
        );
    }

    #[test]
    fn odd_length_utf16_is_an_error() {
        let text = "<configuration/>";
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        utf16.push(b'<');
        assert!(decode(&utf16)
            .expect_err("odd length")
            .contains("odd number of bytes"));
    }
}
