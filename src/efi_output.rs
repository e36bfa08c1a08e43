//! Keeps UEFI firmware output off the learner's screen under `--uefi`
//! (shown with `-v`): everything before the kernel's first line is the
//! firmware's (its banner, its screen clears, its terminal queries), except
//! the EFI stub's own lines (`efistub: …`), which say what went wrong or what
//! the stub fell back to. From the kernel's first line on, everything passes.
//!
//! Shown or not, the firmware's escape sequences never reach the terminal:
//! EDK2 clears the screen and sets ANSI.SYS modes (`ESC[2J`, `ESC[=3h`), and
//! U-Boot's EFI asks the terminal where its cursor is (`ESC[6n`) to learn its
//! size. A terminal answers such a query by *typing* the answer
//! (`ESC[24;80R`); if that arrives after the firmware stopped listening,
//! the kernel's shell reads it as a command line. So queries are dropped, not
//! answered: the firmware waits a moment for an answer and then assumes
//! 80x25, and nothing is ever typed that the user did not type.

/// The firmware QEMU boots under `--uefi`: EDK2 for arm64 from Debian's
/// `qemu-efi-aarch64` (scripts/setup.sh installs it).
pub const FIRMWARE: &str = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd";

/// The firmware file, or why there is none.
///
/// # Errors
/// What to install.
pub fn firmware() -> Result<std::path::PathBuf, String> {
    let path = std::path::PathBuf::from(FIRMWARE);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "--uefi needs EDK2's firmware at {FIRMWARE}: run scripts/setup.sh (it installs qemu-efi-aarch64)"
        ))
    }
}

/// Lines that pass before the kernel speaks; the second is its first line.
const PASSED: [&[u8]; 2] = [b"efistub:", b"splitmap:"];

/// A filter over QEMU's output, fed in arbitrary pieces.
#[derive(Debug, Default)]
pub struct FirmwareFilter {
    /// With `-v`: the firmware's text is shown as it comes (escape
    /// sequences still dropped).
    show: bool,
    /// The kernel has spoken: everything passes.
    kernel: bool,
    /// Where in an escape sequence the firmware's output is.
    escape: Escape,
    /// The current line's text so far (escape sequences dropped), while the
    /// firmware speaks.
    line: Vec<u8>,
}

/// A position in the firmware's output with respect to escape sequences
/// (ECMA-48): `ESC` starts one; `ESC [` a control sequence that parameter
/// and intermediate bytes continue and a byte in `@`..=`~` ends; `ESC ]`,
/// `ESC P`, `ESC X`, `ESC ^`, `ESC _` a string that BEL or `ESC \` ends.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// Text.
    #[default]
    None,
    /// After `ESC`, or after `ESC` and intermediate bytes (`ESC ( B`).
    Esc,
    /// In a control sequence (`ESC [ 6 n`).
    Csi,
    /// In a control string (`ESC ] 0 ; title BEL`).
    String,
    /// After `ESC` in a control string (the start of `ESC \`).
    StringEsc,
}

impl Escape {
    /// The state after `b`, and whether `b` is text.
    fn next(self, b: u8) -> (Escape, bool) {
        const ESC: u8 = 0x1b;
        match (self, b) {
            (Escape::None, ESC) => (Escape::Esc, false),
            (Escape::None, _) => (Escape::None, true),
            (Escape::Esc, b'[') => (Escape::Csi, false),
            (Escape::Esc, b']' | b'P' | b'X' | b'^' | b'_') => (Escape::String, false),
            (Escape::Esc, 0x20..=0x2f) => (Escape::Esc, false),
            (Escape::Esc | Escape::Csi, 0x40..=0x7e) | (Escape::Esc, 0x30..=0x3f) => (Escape::None, false),
            (Escape::Csi, 0x20..=0x3f) => (Escape::Csi, false),
            (Escape::String, 0x07) | (Escape::StringEsc, b'\\') => (Escape::None, false),
            (Escape::String | Escape::StringEsc, ESC) => (Escape::StringEsc, false),
            (Escape::String | Escape::StringEsc, _) => (Escape::String, false),
            // A sequence broken off by a byte that cannot continue it: the
            // byte is text again.
            (Escape::Esc | Escape::Csi, _) => (Escape::None, true),
        }
    }
}

impl FirmwareFilter {
    /// A filter that hides the firmware's text, or with `show` (`-v`)
    /// shows it without its escape sequences.
    pub fn new(show: bool) -> FirmwareFilter {
        FirmwareFilter {
            show,
            ..FirmwareFilter::default()
        }
    }

    /// Whether the kernel's first line has gone by: from there on, all
    /// passes (and keys typed meanwhile can go to the kernel, not the
    /// firmware).
    pub fn kernel_spoke(&self) -> bool {
        self.kernel
    }

    /// What of `bytes` to show.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        if self.kernel {
            return bytes.to_vec();
        }
        let mut shown = Vec::new();
        for (i, &b) in bytes.iter().enumerate() {
            let (escape, text) = self.escape.next(b);
            self.escape = escape;
            if !text {
                continue;
            }
            self.line.push(b);
            if self.show {
                shown.push(b);
            }
            if b != b'\n' {
                continue;
            }
            let line = self.line.strip_prefix(b"\r").unwrap_or(&self.line);
            if let Some(which) = PASSED.iter().position(|p| line.starts_with(p)) {
                if !self.show {
                    shown.extend_from_slice(line);
                }
                if which == 1 {
                    self.kernel = true;
                    self.line.clear();
                    shown.extend_from_slice(&bytes[i + 1..]);
                    return shown;
                }
            }
            self.line.clear();
        }
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `f` shows of `pieces`, fed one after another.
    fn shown(mut f: FirmwareFilter, pieces: &[&[u8]]) -> String {
        let bytes: Vec<u8> = pieces.iter().flat_map(|p| f.feed(p)).collect();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn firmware_lines_are_hidden_until_the_kernel_speaks() {
        let out = shown(
            FirmwareFilter::new(false),
            &[
                b"\x1b[2J\x1b[01;01HUEFI firmware (version  built at 13:10)\r\n\x1b[6nefistub: no EFI_RNG_",
                b"PROTOCOL: fallback\r\nBdsDxe: loading\r\nsplitmap: image pa=0x1\r\n[INFO ] x",
                b"\x1b[6n rest\r\n",
            ],
        );
        assert_eq!(
            out,
            "efistub: no EFI_RNG_PROTOCOL: fallback\r\nsplitmap: image pa=0x1\r\n[INFO ] x\x1b[6n rest\r\n"
        );
    }

    #[test]
    fn shown_firmware_output_loses_its_escape_sequences_even_split_across_pieces() {
        // EDK2's screen setup and U-Boot's size query, cut at every byte.
        let edk2: &[u8] = b"UEFI firmware\r\n\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01Hefistub: x\r\n";
        let uboot: &[u8] = b"Hit any key:  2 \x08\x08\x08 0 \r\n\x1b7\x1b[r\x1b[999;999H\x1b[6n\x1b8No EFI\r\n";
        let title: &[u8] = b"\x1b]0;title\x07\x1b]2;t\x1b\\\x1b(B\x1bZok\r\nsplitmap: k\r\n\x1b[6n";
        let all = [edk2, uboot, title].concat();
        let pieces: Vec<&[u8]> = all.chunks(1).collect();
        assert_eq!(
            shown(FirmwareFilter::new(true), &pieces),
            "UEFI firmware\r\nefistub: x\r\nHit any key:  2 \x08\x08\x08 0 \r\nNo EFI\r\nok\r\nsplitmap: k\r\n\x1b[6n",
            "the kernel's own output (last) passes as it is"
        );
        let mut f = FirmwareFilter::new(true);
        f.feed(&all[..all.len() - 10]);
        assert!(!f.kernel_spoke());
        f.feed(&all[all.len() - 10..]);
        assert!(f.kernel_spoke());
    }

    #[test]
    fn a_broken_off_sequence_leaves_the_text_after_it() {
        // ESC followed by a control character cannot continue a sequence.
        assert_eq!(shown(FirmwareFilter::new(true), &[b"a\x1b\nb\x1b[1\rc"]), "a\nb\rc");
    }
}
