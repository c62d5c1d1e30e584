//! The step's output: its two pipes read into lines ([`LineSplitter`]: `\n`, `\r`
//! redraws, pieces of at most [`MAX_LINE`] bytes never cut through a secret, a
//! partial line after [`PARTIAL_LINE_IDLE`] of quiet), queued with back-pressure and
//! handed to `run`'s callback from one place, so calls never overlap.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use super::Stream;
use crate::core::line_split::LineSplitter;
use crate::core::mask::Masker;

/// The longest piece of a line handed to the callback. A step that writes
/// megabytes without a newline would otherwise grow one buffer without bound.
pub const MAX_LINE: usize = 16 * 1024;

/// How long a partial line (no newline yet) waits before it is shown anyway: long
/// enough that a line written in several `write`s arrives whole, short enough that a
/// prompt or a progress bar is seen while it is current.
pub const PARTIAL_LINE_IDLE: Duration = Duration::from_millis(250);

/// Lines in flight between the pipe readers and the callback. Bounded so that
/// a slow callback pushes back on the step (its writes block) instead of
/// buffering its output in memory.
const LINE_QUEUE: usize = 256;

/// Starts one reader task per pipe of `child`; the sink delivers their lines to
/// `on_line`.
pub(super) fn start<F>(child: &mut Child, secrets: &Masker, on_line: F) -> (Readers, LineSink<F>) {
    let (tx, rx) = mpsc::channel(LINE_QUEUE);
    let mut readers = Readers(Vec::with_capacity(2));
    if let Some(out) = child.stdout.take() {
        readers.0.push(tokio::spawn(read_lines(
            Stream::Stdout,
            out,
            secrets.clone(),
            tx.clone(),
        )));
    }
    if let Some(err) = child.stderr.take() {
        readers.0.push(tokio::spawn(read_lines(
            Stream::Stderr,
            err,
            secrets.clone(),
            tx.clone(),
        )));
    }
    // Only the readers may hold senders, so the channel closes exactly when
    // both pipes have reached end-of-file.
    drop(tx);
    let sink = LineSink {
        rx,
        open: true,
        on_line,
    };
    (readers, sink)
}

/// Aborts the pipe readers when dropped: a reader blocked on a pipe held open
/// by an escaped process would otherwise live forever.
pub(super) struct Readers(Vec<JoinHandle<()>>);

impl Readers {
    pub(super) fn abort(&self) {
        for reader in &self.0 {
            reader.abort();
        }
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.abort();
    }
}

/// The single place `on_line` is called from, so calls never overlap and the
/// reader tasks never run caller code.
pub(super) struct LineSink<F> {
    rx: mpsc::Receiver<(Stream, String)>,
    open: bool,
    on_line: F,
}

impl<F: FnMut(Stream, &str)> LineSink<F> {
    /// Delivers the next line; false once both pipes are closed.
    async fn deliver_next(&mut self) -> bool {
        if !self.open {
            return false;
        }
        match self.rx.recv().await {
            Some((stream, line)) => {
                (self.on_line)(stream, &line);
                true
            }
            None => {
                self.open = false;
                false
            }
        }
    }

    /// [`Self::deliver_next`] that never resolves once the pipes are closed,
    /// so it can sit in a `select!` next to the events that end the step.
    pub(super) async fn deliver_or_park(&mut self) {
        if !self.deliver_next().await {
            std::future::pending::<()>().await;
        }
    }

    /// Delivers lines until both pipes are closed or `deadline` passes.
    pub(super) async fn drain(&mut self, deadline: Instant) {
        let expired = sleep_until(deadline);
        tokio::pin!(expired);
        loop {
            tokio::select! {
                // Lines that are already queued are delivered before the
                // deadline is looked at.
                biased;
                delivered = self.deliver_next() => if !delivered { return },
                () = &mut expired => return,
            }
        }
    }

    pub(super) fn deliver_queued(&mut self) {
        while let Ok((stream, line)) = self.rx.try_recv() {
            (self.on_line)(stream, &line);
        }
    }
}

/// Splits one pipe into lines ([`LineSplitter`]: pieces of at most [`MAX_LINE`]
/// bytes never cut through a secret, `\r` redraws) and queues them; a partial line
/// is queued once the pipe has been quiet for [`PARTIAL_LINE_IDLE`]. Stops at
/// end-of-file, on a read error (the step's output is then cut short, but its
/// outcome still counts), or when nobody listens any more.
pub(super) async fn read_lines<R: AsyncRead + Unpin>(
    stream: Stream,
    mut pipe: R,
    secrets: Masker,
    tx: mpsc::Sender<(Stream, String)>,
) {
    let mut splitter = LineSplitter::new(MAX_LINE, &secrets);
    let mut chunk = vec![0u8; 8192];
    let mut lines = Vec::new();
    let mut partial = false;
    loop {
        // Reading a pipe is cancel-safe: a read the idle timer abandons took nothing.
        let read = if partial {
            match tokio::time::timeout(PARTIAL_LINE_IDLE, pipe.read(&mut chunk)).await {
                Ok(read) => read,
                Err(_) => {
                    partial = false;
                    if let Some(piece) = splitter.flush_partial()
                        && tx.send((stream, piece)).await.is_err()
                    {
                        return;
                    }
                    continue;
                }
            }
        } else {
            pipe.read(&mut chunk).await
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        splitter.push(&chunk[..n], &mut lines);
        partial = splitter.has_partial();
        for line in lines.drain(..) {
            if tx.send((stream, line)).await.is_err() {
                return;
            }
        }
    }
    splitter.finish(&mut lines);
    for line in lines {
        if tx.send((stream, line)).await.is_err() {
            return;
        }
    }
}
