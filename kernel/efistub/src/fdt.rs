//! A copy of a flattened device tree with properties set in `/chosen`.
//!
//! The firmware's tree lives in boot-services memory, which is free once boot
//! services exit; the stub copies it into loader data and, on the way, sets
//! the properties it hands the kernel (`bootargs`, `kaslr-seed`, the memory
//! map's `linux,uefi-mmap-*`, …). A property of the same name already in
//! `/chosen` is dropped; a tree without `/chosen` gets one. The copy is
//! rebuilt whole rather than edited in place: one pass, no moves.

/// One property to set: its name and its value, as the tree stores it.
#[derive(Debug, Clone, Copy)]
pub struct Prop<'a> {
    /// Name, without NUL.
    pub name: &'a [u8],
    /// Value bytes (big-endian for numbers).
    pub value: &'a [u8],
}

/// Why the copy could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdtError {
    /// No FDT magic, or offsets outside the blob.
    NotATree,
    /// The structure block ends early or holds an unknown token.
    Malformed,
    /// The destination is too small.
    NoRoom,
}

impl FdtError {
    /// What the stub prints (see [`crate::mem::nth_str`] for why not a `match`).
    pub fn message(self) -> &'static [u8] {
        crate::mem::nth_str(
            b"the firmware's device tree has no valid header\0\
              the firmware's device tree structure block is malformed\0\
              the device tree copy has no room for /chosen",
            self as usize,
        )
    }
}

const MAGIC: u32 = 0xd00d_feed;
const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;
const HEADER: usize = 40;

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

const fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// The tree's `totalsize`, if `blob` starts with an FDT header.
pub fn total_size(blob: &[u8]) -> Option<usize> {
    (be32(blob, 0)? == MAGIC).then_some(be32(blob, 4)? as usize)
}

struct Out<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), FdtError> {
        let end = self.at.checked_add(bytes.len()).ok_or(FdtError::NoRoom)?;
        let dst = self.buf.get_mut(self.at..end).ok_or(FdtError::NoRoom)?;
        crate::mem::copy(dst, bytes);
        self.at = end;
        Ok(())
    }

    fn u32(&mut self, v: u32) -> Result<(), FdtError> {
        self.put(&v.to_be_bytes())
    }

    fn align4(&mut self) -> Result<(), FdtError> {
        while !self.at.is_multiple_of(4) {
            self.put(&[0])?;
        }
        Ok(())
    }

    fn set_u32(&mut self, at: usize, v: u32) -> Result<(), FdtError> {
        let dst = self.buf.get_mut(at..at + 4).ok_or(FdtError::NoRoom)?;
        crate::mem::copy(dst, &v.to_be_bytes());
        Ok(())
    }
}

/// Copies the tree `src` into `dst` with `props` set in `/chosen`; returns
/// the new tree's size. `dst` is left a complete tree (version 17).
///
/// # Errors
/// [`FdtError`].
pub fn copy_with_chosen(src: &[u8], dst: &mut [u8], props: &[Prop<'_>]) -> Result<usize, FdtError> {
    let total = total_size(src).ok_or(FdtError::NotATree)?;
    let src = src.get(..total).ok_or(FdtError::NotATree)?;
    let field = |i: usize| be32(src, 4 * i).map(|v| v as usize).ok_or(FdtError::NotATree);
    let (off_struct, off_strings, off_rsv) = (field(2)?, field(3)?, field(4)?);
    let (size_strings, size_struct) = (field(8)?, field(9)?);
    let strings = src
        .get(off_strings..off_strings.checked_add(size_strings).ok_or(FdtError::NotATree)?)
        .ok_or(FdtError::NotATree)?;
    let structure = src
        .get(off_struct..off_struct.checked_add(size_struct).ok_or(FdtError::NotATree)?)
        .ok_or(FdtError::NotATree)?;

    let mut out = Out { buf: dst, at: HEADER };
    // The reserve map: 16-byte (address, size) entries up to a zero pair.
    out.align4()?;
    let rsv_at = out.at;
    let mut at = off_rsv;
    loop {
        let entry = src.get(at..at + 16).ok_or(FdtError::NotATree)?;
        out.put(entry)?;
        at += 16;
        if entry.iter().all(|&b| b == 0) {
            break;
        }
    }

    let struct_at = out.at;
    let mut pos = 0;
    let mut depth = 0usize;
    let mut in_chosen = false;
    let mut chosen_done = false;
    loop {
        let token = be32(structure, pos).ok_or(FdtError::Malformed)?;
        let start = pos;
        pos += 4;
        match token {
            BEGIN_NODE => {
                let name_len = structure
                    .get(pos..)
                    .and_then(|r| r.iter().position(|&b| b == 0))
                    .ok_or(FdtError::Malformed)?;
                let name = structure.get(pos..pos + name_len).ok_or(FdtError::Malformed)?;
                pos += pad4(name_len + 1);
                depth += 1;
                if depth == 2 && crate::mem::eq(name, b"chosen") {
                    in_chosen = true;
                }
                out.put(structure.get(start..pos).ok_or(FdtError::Malformed)?)?;
            }
            END_NODE => {
                if in_chosen && depth == 2 {
                    put_props(&mut out, props, size_strings)?;
                    in_chosen = false;
                    chosen_done = true;
                } else if depth == 1 && !chosen_done {
                    out.u32(BEGIN_NODE)?;
                    out.put(b"chosen\0\0")?;
                    put_props(&mut out, props, size_strings)?;
                    out.u32(END_NODE)?;
                    chosen_done = true;
                }
                depth = depth.checked_sub(1).ok_or(FdtError::Malformed)?;
                out.u32(END_NODE)?;
            }
            PROP => {
                let len = be32(structure, pos).ok_or(FdtError::Malformed)? as usize;
                let nameoff = be32(structure, pos + 4).ok_or(FdtError::Malformed)? as usize;
                pos += 8 + pad4(len);
                let replaced = in_chosen
                    && depth == 2
                    && props
                        .iter()
                        .any(|p| name_at(strings, nameoff).is_some_and(|n| crate::mem::eq(n, p.name)));
                if !replaced {
                    out.put(structure.get(start..pos).ok_or(FdtError::Malformed)?)?;
                }
            }
            NOP => {}
            END => {
                out.u32(END)?;
                break;
            }
            _ => return Err(FdtError::Malformed),
        }
    }
    let struct_size = out.at - struct_at;

    let strings_at = out.at;
    out.put(strings)?;
    for p in props {
        out.put(p.name)?;
        out.put(&[0])?;
    }
    let strings_size = out.at - strings_at;
    let total = out.at;

    for (i, v) in [
        MAGIC as usize,
        total,
        struct_at,
        strings_at,
        rsv_at,
        17,
        16,
        field(7)?,
        strings_size,
        struct_size,
    ]
    .into_iter()
    .enumerate()
    {
        out.set_u32(4 * i, v as u32)?;
    }
    Ok(total)
}

/// The NUL-terminated name at `nameoff` in the strings block.
fn name_at(strings: &[u8], nameoff: usize) -> Option<&[u8]> {
    let rest = strings.get(nameoff..)?;
    rest.get(..rest.iter().position(|&b| b == 0)?)
}

/// `props` as PROP tokens; their names follow the old strings block, in order.
fn put_props(out: &mut Out<'_>, props: &[Prop<'_>], old_strings: usize) -> Result<(), FdtError> {
    let mut nameoff = old_strings;
    for p in props {
        out.u32(PROP)?;
        out.u32(p.value.len() as u32)?;
        out.u32(nameoff as u32)?;
        out.put(p.value)?;
        out.align4()?;
        nameoff += p.name.len() + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_fdt::FdtWriter;

    fn tree(with_chosen: bool) -> Vec<u8> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_string("compatible", "linux,dummy-virt").unwrap();
        if with_chosen {
            let c = w.begin_node("chosen").unwrap();
            w.property_string("bootargs", "old").unwrap();
            w.property_string("stdout-path", "/pl011@9000000").unwrap();
            w.end_node(c).unwrap();
        }
        let m = w.begin_node("memory@40000000").unwrap();
        w.property_array_u64("reg", &[0x4000_0000, 0x800_0000]).unwrap();
        w.end_node(m).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    /// Every /chosen property of `blob` as (name, value), read by a walk of
    /// the structure block independent of the writer above.
    fn chosen(blob: &[u8]) -> Vec<(String, Vec<u8>)> {
        let strings = be32(blob, 12).unwrap() as usize;
        let mut pos = be32(blob, 8).unwrap() as usize;
        let mut depth = 0;
        let mut inside = false;
        let mut found = Vec::new();
        loop {
            let t = be32(blob, pos).unwrap();
            pos += 4;
            match t {
                BEGIN_NODE => {
                    let n = blob[pos..].iter().position(|&b| b == 0).unwrap();
                    depth += 1;
                    inside = depth == 2 && &blob[pos..pos + n] == b"chosen";
                    pos += pad4(n + 1);
                }
                END_NODE => {
                    depth -= 1;
                    inside = false;
                }
                PROP => {
                    let len = be32(blob, pos).unwrap() as usize;
                    let off = be32(blob, pos + 4).unwrap() as usize;
                    let name = name_at(&blob[strings..], off).unwrap();
                    if inside {
                        found.push((
                            String::from_utf8(name.to_vec()).unwrap(),
                            blob[pos + 8..pos + 8 + len].to_vec(),
                        ));
                    }
                    pos += 8 + pad4(len);
                }
                END => break,
                _ => {}
            }
        }
        found
    }

    #[test]
    fn sets_and_replaces_chosen_properties() {
        let src = tree(true);
        let mut dst = vec![0u8; src.len() + 256];
        let seed = 0x1234u64.to_be_bytes();
        let props = [
            Prop {
                name: b"bootargs",
                value: b"nokaslr\0",
            },
            Prop {
                name: b"kaslr-seed",
                value: &seed,
            },
        ];
        let n = copy_with_chosen(&src, &mut dst, &props).unwrap();
        assert_eq!(total_size(&dst), Some(n));
        let c = chosen(&dst[..n]);
        assert_eq!(
            c,
            [
                ("stdout-path".to_string(), b"/pl011@9000000\0".to_vec()),
                ("bootargs".to_string(), b"nokaslr\0".to_vec()),
                ("kaslr-seed".to_string(), seed.to_vec()),
            ]
        );
    }

    #[test]
    fn adds_chosen_when_missing() {
        let src = tree(false);
        let mut dst = vec![0u8; src.len() + 256];
        let props = [Prop {
            name: b"linux,uefi-mmap-desc-ver",
            value: &1u32.to_be_bytes(),
        }];
        let n = copy_with_chosen(&src, &mut dst, &props).unwrap();
        assert_eq!(
            chosen(&dst[..n]),
            [("linux,uefi-mmap-desc-ver".to_string(), vec![0, 0, 0, 1])]
        );
    }

    #[test]
    fn refusals() {
        let src = tree(true);
        let mut small = vec![0u8; src.len()];
        let props = [Prop {
            name: b"x",
            value: &[0; 64],
        }];
        assert_eq!(copy_with_chosen(&src, &mut small, &props), Err(FdtError::NoRoom));
        assert_eq!(copy_with_chosen(&[0; 64], &mut small, &props), Err(FdtError::NotATree));
        let mut bad = src.clone();
        let off = be32(&bad, 8).unwrap() as usize;
        bad[off..off + 4].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(
            copy_with_chosen(&bad, &mut vec![0; 4096], &props),
            Err(FdtError::Malformed)
        );
    }
}
