//! How a module's `splitmap_log` line is printed: the module's text,
//! escaped, after its name, so that no module can print a line that passes
//! for the kernel's (`kernel panic: …`, `splitmap: …`, the prompt), nor
//! break a line in two. Modules name themselves by convention
//! (`hello: loaded`); such a line keeps its one name.

use core::fmt::{self, Display};

use crate::console::escape::Escaped;

/// Names the kernel's own lines start with (`error:` is the shell's error
/// prefix, `efistub:` the EFI stub's): a module called so is named
/// `module 'NAME'` instead.
const KERNEL_SPEAKERS: [&str; 5] = ["splitmap", "stage0", "kernel", "error", "efistub"];

/// Module `module`'s log line `message`, as printed.
#[derive(Clone, Copy, Debug)]
pub struct LogLine<'a> {
    /// The module's name.
    pub module: &'a str,
    /// What it logged.
    pub message: &'a str,
}

impl Display for LogLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = !self.module.is_empty()
            && self
                .module
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && !KERNEL_SPEAKERS.contains(&self.module);
        if !plain {
            return write!(f, "module '{}': {}", Escaped(self.module), Escaped(self.message));
        }
        let named = self
            .message
            .strip_prefix(self.module)
            .is_some_and(|rest| rest.starts_with(": "));
        if named {
            write!(f, "{}", Escaped(self.message))
        } else {
            write!(f, "{}: {}", self.module, Escaped(self.message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_starts_with_the_modules_name() {
        let line = |module, message| format!("{}", LogLine { module, message });
        let rows = [
            ("hello", "hello: loaded", "hello: loaded"),
            ("hello", "hello from a module", "hello: hello from a module"),
            ("hello", "hello:loaded", "hello: hello:loaded"),
            ("hostile", "kernel panic: x", "hostile: kernel panic: x"),
            ("hostile", "ok\nkernel panic: x", "hostile: ok\\nkernel panic: x"),
            ("hostile", "\rsplitmap> ", "hostile: \\rsplitmap> "),
            (
                "splitmap",
                "splitmap: power-off is unavailable",
                "module 'splitmap': splitmap: power-off is unavailable",
            ),
            ("kernel", "kernel: panic", "module 'kernel': kernel: panic"),
            ("error", "unknown command", "module 'error': unknown command"),
            (
                "kernel panic",
                "kernel panic: x",
                "module 'kernel panic': kernel panic: x",
            ),
            ("a\nb", "x", "module 'a\\nb': x"),
            ("", "x", "module '': x"),
        ];
        for (module, message, want) in rows {
            assert_eq!(line(module, message), want, "{module:?} {message:?}");
        }
    }
}
