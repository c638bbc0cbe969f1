//! What a command prints on stdout: one write that reports its failure instead of panicking,
//! and the rule that a reader gone away (`ancm ... | head`) is not an error. A leaf: it imports
//! nothing from the crate.

/// Writes a command's result to stdout, reporting a failed write instead of panicking as
/// `print!` does.
pub(crate) fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|err| anyhow::Error::new(err).context("cannot write to stdout"))
}

/// The reader of ancm's output went away (`ancm ... | head`): nothing is wrong, and there is
/// no one to tell.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
