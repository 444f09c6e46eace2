//! Progress bars on stderr, only when stderr is a terminal and --quiet is not given.

use std::io::{self, IsTerminal, Read};
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};

static QUIET: AtomicBool = AtomicBool::new(false);

pub(crate) fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::Relaxed);
}

pub(crate) fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

fn enabled() -> bool {
    !quiet() && io::stderr().is_terminal()
}

/// A byte-count bar for `len` bytes (a spinner when unknown), or a hidden one.
pub(crate) fn bytes(len: Option<u64>, label: &str) -> ProgressBar {
    if !enabled() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{msg} {spinner} {bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(label.to_owned());
    bar
}

/// A file counter for bulk work (the total is not known in advance).
pub(crate) fn files(label: &str) -> ProgressBar {
    if !enabled() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{msg} {spinner} {pos} files {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(label.to_owned());
    bar
}

/// `reader`, advancing `bar` as it is read.
pub(crate) fn wrap<R: Read + 'static>(reader: R, bar: ProgressBar) -> Box<dyn Read> {
    if bar.is_hidden() {
        Box::new(reader)
    } else {
        Box::new(bar.wrap_read(reader))
    }
}
