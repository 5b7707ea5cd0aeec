//! Printing to stdout for a reader that may stop early (`once --dry-run |
//! head -1`): a closed pipe ends the output quietly, the command keeps its
//! own exit code. `println!` would panic there (Rust ignores SIGPIPE, so
//! the write fails with EPIPE), and restoring SIGPIPE would let a closed
//! stdout kill the service.

use std::io::{self, BufWriter, ErrorKind, Write};

/// Runs `print` on a buffered, locked stdout and flushes it. A closed pipe
/// is not an error (the rest of the output is dropped); any other write
/// error is, with what failed.
pub fn print_stdout(print: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<(), String> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = print(&mut out).and_then(|()| out.flush());
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => {
            // Drop what is still buffered without writing it again.
            let _ = out.into_parts();
            Ok(())
        }
        Err(e) => Err(format!("cannot write the output: {e}")),
    }
}
