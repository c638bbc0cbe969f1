//! Fuzzes the Windows command-line splitter that turns web.config's `arguments` into argv.

#![no_main]

use libfuzzer_sys::fuzz_target;

fn is_special(c: char) -> bool {
    // The splitter treats these four whitespace characters as separators and `"` and `\`
    // as syntax; every other character is plain text to it.
    matches!(c, ' ' | '\t' | '\n' | '\r' | '"' | '\\')
}

fuzz_target!(|data: &[u8]| {
    // The splitter takes &str; bytes that are not UTF-8 cannot reach it from web.config.
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let args = ancm::config::split_command_line(line);

    // Each argument but the last ends at a separator or a quote, so there can never be
    // more of them than characters, plus one for an empty `""` at the very end.
    let chars = line.chars().count();
    assert!(
        args.len() <= chars + 1,
        "{} args from {chars} chars: {line:?} -> {args:?}",
        args.len()
    );

    // With no quotes or backslashes the splitter must agree with a plain split on its own
    // separators (not `split_whitespace`, which also splits on Unicode spaces the Windows
    // C runtime leaves inside an argument).
    if !line.chars().any(|c| matches!(c, '"' | '\\')) {
        let words: Vec<&str> = line
            .split([' ', '\t', '\n', '\r'])
            .filter(|w| !w.is_empty())
            .collect();
        assert_eq!(args, words, "plain words split differently: {line:?}");
    }

    // Arguments carry every plain character over unchanged: none is invented or lost.
    let plain_in: usize = line.chars().filter(|&c| !is_special(c)).count();
    let plain_out: usize = args
        .iter()
        .flat_map(|a| a.chars())
        .filter(|&c| !is_special(c))
        .count();
    assert_eq!(
        plain_in, plain_out,
        "plain characters changed: {line:?} -> {args:?}"
    );
});
