//! Standard output: results go here, through [`out!`](crate::out) and
//! [`outln!`](crate::outln), so that a reader that stops early (`deploygraph … | head -1`) ends
//! the command quietly (exit 0) instead of a panic on the broken pipe.

use crate::commands::Failure;
use std::io::Write as _;

/// Writes `text` to standard output.
///
/// # Errors
/// [`Failure::output_closed`] when the reader has gone; another write error is a failure.
pub fn write(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure::output_closed()),
        Err(e) => Err(Failure::rejected(format!(
            "failed to write to standard output: {e}"
        ))),
    }
}

/// `print!` to standard output, as a `Result<(), Failure>`.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write(&format!($($arg)*))
    };
}

/// `println!` to standard output, as a `Result<(), Failure>`.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::out::write("\n")
    };
    ($($arg:tt)*) => {
        $crate::out::write(&format!("{}\n", format_args!($($arg)*)))
    };
}
