//! Keeps UEFI firmware output off the learner's screen under `--uefi`
//! (shown with `-v`): everything before the kernel's first line is the
//! firmware's (its banner, its terminal queries such as `ESC[6n`), except the
//! EFI stub's own lines (`efistub: …`), which say what went wrong or what the
//! stub fell back to. From the kernel's first line on, everything passes.

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

/// Lines that pass before the kernel speaks.
const PASSED: [&[u8]; 2] = [b"efistub:", b"splitmap:"];

/// A filter over QEMU's output, fed in arbitrary pieces.
#[derive(Debug, Default)]
pub struct FirmwareFilter {
    /// The kernel has spoken: everything passes.
    kernel: bool,
    /// The current line so far, while the firmware speaks.
    line: Vec<u8>,
}

impl FirmwareFilter {
    /// What of `bytes` to show.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        if self.kernel {
            return bytes.to_vec();
        }
        let mut shown = Vec::new();
        for (i, &b) in bytes.iter().enumerate() {
            self.line.push(b);
            if b != b'\n' {
                continue;
            }
            let text = strip_escapes(&self.line);
            let text = text.strip_prefix(b"\r").unwrap_or(&text);
            if let Some(which) = PASSED.iter().position(|p| text.starts_with(p)) {
                shown.extend_from_slice(text);
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

/// `line` without ANSI escape sequences (`ESC [ … letter`) and lone ESCs.
fn strip_escapes(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < line.len() {
        if line[i] == 0x1b {
            i += 1;
            if line.get(i) == Some(&b'[') {
                i += 1;
                while i < line.len() && !line[i].is_ascii_alphabetic() {
                    i += 1;
                }
            }
            i += 1;
            continue;
        }
        out.push(line[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_lines_are_hidden_until_the_kernel_speaks() {
        let mut f = FirmwareFilter::default();
        let mut shown =
            f.feed(b"\x1b[2J\x1b[01;01HUEFI firmware (version  built at 13:10)\r\n\x1b[6nefistub: no EFI_RNG_");
        shown.extend(f.feed(b"PROTOCOL: fallback\r\nBdsDxe: loading\r\nsplitmap: image pa=0x1\r\n[INFO ] x"));
        shown.extend(f.feed(b"\x1b[6n rest\r\n"));
        assert_eq!(
            String::from_utf8(shown).unwrap(),
            "efistub: no EFI_RNG_PROTOCOL: fallback\r\nsplitmap: image pa=0x1\r\n[INFO ] x\x1b[6n rest\r\n"
        );
    }
}
