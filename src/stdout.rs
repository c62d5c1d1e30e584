//! Everything the command line prints on stdout goes through [`line`] (the `outln!`
//! macro), so a closed stdout (`stagehand logs … | head`) ends the command quietly
//! instead of panicking with "failed printing to stdout: Broken pipe".

use std::io::Write;

/// Prints `args` and a newline.
///
/// Rust ignores SIGPIPE, so a reader that went away shows up here as `EPIPE`: the
/// reader has all it wanted, so the command ends at once with success, as `head`'s
/// writers do. Any other failure to write is reported and ends the command with 1.
pub fn line(args: std::fmt::Arguments) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: writing to stdout: {e}");
            std::process::exit(1)
        }
    }
}

/// `println!` for the command line's output: a closed stdout ends the command quietly.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::stdout::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::stdout::line(format_args!($($arg)*))
    };
}
