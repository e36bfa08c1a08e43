//! Reading the initrd: a cpio archive in the "newc" format (what the Linux
//! kernel unpacks too). Each entry is a 110-byte ASCII header — `070701` and
//! thirteen 8-digit hex fields — then the NUL-terminated name and the data,
//! each padded to 4 bytes. `TRAILER!!!` ends the archive.

/// One file in the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct File<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its bytes.
    pub data: &'a [u8],
}

/// Why the archive could not be read further.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpioError {
    /// Not `070701` where a header should start (offset given).
    BadMagic(usize),
    /// A header field is not hex, or an entry runs past the end (offset given).
    Truncated(usize),
}

impl core::fmt::Display for CpioError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CpioError::BadMagic(at) => write!(f, "initrd: no cpio (newc) header at offset {at:#x}"),
            CpioError::Truncated(at) => write!(f, "initrd: entry at offset {at:#x} is malformed or truncated"),
        }
    }
}

const HEADER: usize = 110;

/// The files in `archive`, in order; stops at the trailer or the first error.
pub fn files(archive: &[u8]) -> impl Iterator<Item = Result<File<'_>, CpioError>> + '_ {
    let mut at = 0usize;
    let mut done = false;
    core::iter::from_fn(move || {
        if done {
            return None;
        }
        let entry = next(archive, at);
        match entry {
            Ok(Some((file, next_at))) => {
                at = next_at;
                Some(Ok(file))
            }
            Ok(None) => {
                done = true;
                None
            }
            Err(e) => {
                done = true;
                Some(Err(e))
            }
        }
    })
}

fn field(header: &[u8], index: usize) -> Option<usize> {
    let digits = header.get(6 + 8 * index..14 + 8 * index)?;
    usize::from_str_radix(core::str::from_utf8(digits).ok()?, 16).ok()
}

fn next(archive: &[u8], at: usize) -> Result<Option<(File<'_>, usize)>, CpioError> {
    let header = archive.get(at..at + HEADER).ok_or(CpioError::Truncated(at))?;
    if &header[..6] != b"070701" {
        return Err(CpioError::BadMagic(at));
    }
    let size = field(header, 6).ok_or(CpioError::Truncated(at))?;
    let name_size = field(header, 11).ok_or(CpioError::Truncated(at))?;
    let name_at = at + HEADER;
    let name = archive
        .get(name_at..name_at + name_size.saturating_sub(1))
        .ok_or(CpioError::Truncated(at))?;
    let name = core::str::from_utf8(name).map_err(|_| CpioError::Truncated(at))?;
    let data_at = (name_at + name_size).next_multiple_of(4);
    let data = archive.get(data_at..data_at + size).ok_or(CpioError::Truncated(at))?;
    if name == "TRAILER!!!" {
        return Ok(None);
    }
    Ok(Some((File { name, data }, (data_at + size).next_multiple_of(4))))
}
