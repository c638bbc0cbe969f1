//! `--env-file`: KEY=VALUE lines in systemd's EnvironmentFile syntax, read for the app's
//! environment. Blank lines and lines starting with `#` or `;` are skipped, a line ending in
//! `\` goes on on the next, and a value in double or single quotes loses them (with `\"`, `\\`
//! and `\n` understood inside double quotes); nothing is expanded, as systemd expands nothing.

use std::path::Path;

use super::ConfigError;

/// The variables of the file at `path`, in order.
pub(crate) fn read(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        ConfigError::invalid(
            super::Origin::Flag("--env-file"),
            "file",
            path.display().to_string(),
            format!("a readable file of KEY=VALUE lines ({err})"),
        )
    })?;
    parse(&text).map_err(|(line, reason)| {
        ConfigError::invalid(
            super::Origin::Flag("--env-file"),
            "line",
            format!("{}:{line}", path.display()),
            reason.to_owned(),
        )
    })
}

/// The variables in `text`, or the number of the first bad line and what is wrong with it.
fn parse(text: &str) -> Result<Vec<(String, String)>, (usize, &'static str)> {
    let mut variables = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, first)) = lines.next() {
        let number = index + 1;
        let mut line = first.to_owned();
        while line.ends_with('\\') {
            line.pop();
            match lines.next() {
                Some((_, next)) => line.push_str(next),
                None => break,
            }
        }
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let (name, value) = trimmed
            .split_once('=')
            .ok_or((number, "KEY=VALUE (no `=` on this line)"))?;
        let name = name.trim();
        let valid_name = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err((
                number,
                "a name of letters, digits and _ that does not start with a digit",
            ));
        }
        variables.push((
            name.to_owned(),
            unquote(value.trim()).ok_or((number, "a closing quote"))?,
        ));
    }
    Ok(variables)
}

fn unquote(value: &str) -> Option<String> {
    if let Some(inner) = value.strip_prefix('\'') {
        return inner.strip_suffix('\'').map(str::to_owned);
    }
    let Some(inner) = value.strip_prefix('"') else {
        return Some(value.to_owned());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_environment_file_syntax() {
        let text = "# a comment\n; another\n\nPLAIN=value with spaces \nQUOTED=\"a \\\"b\\\" $HOME\"\nSINGLE='$NOT ${EXPANDED}'\nLONG=one \\\ntwo\n  SPACED = x\nEMPTY=\n";
        assert_eq!(
            parse(text).expect("valid"),
            [
                ("PLAIN", "value with spaces"),
                ("QUOTED", "a \"b\" $HOME"),
                ("SINGLE", "$NOT ${EXPANDED}"),
                ("LONG", "one two"),
                ("SPACED", "x"),
                ("EMPTY", ""),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        assert_eq!(parse("A=1\nnot a pair\n").map_err(|e| e.0), Err(2));
        assert_eq!(parse("1A=x").map_err(|e| e.0), Err(1));
        assert_eq!(parse("A=\"open").map_err(|e| e.0), Err(1));
    }
}
