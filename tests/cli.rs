use std::process::Command;

use crate::support::ancm_bin;

/// The committed completion scripts are what `ancm completions` prints today.
#[test]
fn committed_completions_match_the_cli() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    for (shell, file) in [
        ("bash", "ancm.bash"),
        ("zsh", "_ancm"),
        ("fish", "ancm.fish"),
        ("powershell", "_ancm.ps1"),
        ("elvish", "ancm.elv"),
    ] {
        let output = Command::new(ancm_bin())
            .args(["completions", shell])
            .output()
            .expect("run ancm completions");
        assert!(output.status.success(), "{shell}");
        assert!(!output.stdout.is_empty(), "{shell}");
        let committed = std::fs::read(dir.join(file)).expect("committed completion script");
        assert!(
            committed == output.stdout,
            "completions/{file} is out of date with the command line: run scripts/completions"
        );
    }
}

/// Every subcommand's help ends with examples.
#[test]
fn every_subcommand_help_ends_with_an_example() {
    for subcommand in ["run", "check", "smoke", "completions"] {
        let output = Command::new(ancm_bin())
            .args([subcommand, "--help"])
            .output()
            .expect("run ancm --help");
        assert!(output.status.success(), "{subcommand}");
        let help = String::from_utf8_lossy(&output.stdout);
        let examples = help
            .find("Examples:")
            .unwrap_or_else(|| panic!("{subcommand}: {help}"));
        assert!(
            help[examples..].contains(&format!("ancm {subcommand}")),
            "{subcommand}'s examples show the command: {help}"
        );
    }
}
