//! The flattened device tree's blocks, and its structure block as a stream
//! of tokens (devicetree specification, "Flattened Devicetree (DTB)
//! Format"): big-endian 32-bit tokens, each `FDT_BEGIN_NODE` followed by the
//! node's NUL-terminated name and each `FDT_PROP` by its value's length, its
//! name's offset in the strings block and the value, both padded to 4 bytes.
//!
//! Our own walker, not fdt-rs's `parse_iter`, which the kernel used first.
//! Measured under `--icount` on QEMU virt's tree (335 tokens, 56 nodes):
//! fdt-rs's `next_devtree_token` took 54 k instructions for the three walks
//! boot then made (its per-token checks, the `FromPrimitive` conversion and
//! a 30-byte cap on the name scan each token goes through), about 160 an
//! token; the whole `devicetree` phase was 84 k. This walker reads a token
//! with one bounds check, and knows the tree's nesting itself, so each
//! reader of the tree stops repeating the same depth checks; with it boot's
//! one walk costs what the `phases` command prints as
//! `instructions-per-token` (docs/design-notes.md). Every read is checked:
//! a tree that ends early, names a token it does not know or a string past
//! its strings block is [`DtbError::Malformed`], never a fault.

use core::ffi::CStr;

use super::{DtbError, MAX_DEPTH};

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// The big-endian word at `at`, if `bytes` holds all of it.
fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
}

/// The tree's blocks, each bounded by what the header says of it.
#[derive(Clone, Copy, Debug)]
pub struct Blocks<'dt> {
    /// The whole blob, `totalsize` bytes.
    pub blob: &'dt [u8],
    /// The structure block: `size_dt_struct` bytes from `off_dt_struct`.
    pub structure: &'dt [u8],
    /// The strings block: `size_dt_strings` bytes from `off_dt_strings`.
    pub strings: &'dt [u8],
    /// From `off_mem_rsvmap` to the end of the blob (the list ends itself).
    pub memreserve: &'dt [u8],
}

/// The blocks of the tree in `blob`, cut to the header's `totalsize`.
///
/// # Errors
/// [`DtbError::BadMagic`], [`DtbError::BadSize`], [`DtbError::BadVersion`],
/// or [`DtbError::Malformed`] for a block that is empty, misaligned or not
/// inside the blob.
pub fn blocks(blob: &[u8]) -> Result<Blocks<'_>, DtbError> {
    let blob = &blob[..super::totalsize(blob)? as usize];
    if !(blob.as_ptr() as usize).is_multiple_of(4) {
        return Err(DtbError::Malformed);
    }
    // `totalsize` is at least the 40 bytes of the header.
    let word = |at: usize| be32(blob, at).unwrap_or(0) as usize;
    let version = word(20) as u32;
    if !(16..=17).contains(&version) {
        return Err(DtbError::BadVersion(version));
    }
    // Tokens and the reservation list are read a word at a time from their
    // start: a block off a 4-byte boundary is no tree a loader writes.
    let block = |offset: usize, size: usize| {
        let inside = blob.get(offset..offset.checked_add(size)?)?;
        (size > 0 && offset.is_multiple_of(4)).then_some(inside)
    };
    let structure = block(word(8), word(36)).ok_or(DtbError::Malformed)?;
    // Strings are bytes: any offset will do.
    let strings = blob
        .get(word(12)..word(12).saturating_add(word(32)))
        .filter(|s| !s.is_empty())
        .ok_or(DtbError::Malformed)?;
    let memreserve = block(word(16), blob.len().saturating_sub(word(16))).ok_or(DtbError::Malformed)?;
    Ok(Blocks {
        blob,
        structure,
        strings,
        memreserve,
    })
}

impl<'dt> Blocks<'dt> {
    /// The property name at `offset` in the strings block, without its NUL.
    ///
    /// # Errors
    /// [`DtbError::Malformed`] if the offset is outside the block, or the
    /// name runs past its end without a NUL.
    pub fn name(&self, offset: u32) -> Result<&'dt [u8], DtbError> {
        let rest = self.strings.get(offset as usize..).ok_or(DtbError::Malformed)?;
        let name = CStr::from_bytes_until_nul(rest).map_err(|_| DtbError::Malformed)?;
        Ok(name.to_bytes())
    }
}

/// One token of the structure block (`FDT_NOP` is skipped, `FDT_END` ends
/// the walk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Token<'dt> {
    /// A node opens: its name, unit address included (empty for the root).
    Begin(&'dt [u8]),
    /// A property of the innermost open node: its name's offset in the
    /// strings block ([`Blocks::name`]) and its value.
    Prop(u32, &'dt [u8]),
    /// The innermost open node closes.
    End,
}

/// The structure block's tokens, in order, with the nesting checked: no
/// property or `FDT_END_NODE` outside a node, no more than [`MAX_DEPTH`]
/// nodes open, none left open at `FDT_END`.
pub struct Tokens<'dt> {
    /// The block as words, for tokens and property headers: one load each
    /// (the kernel is built for strict alignment, where a word read from
    /// bytes is four loads).
    words: &'dt [u32],
    /// The same block as bytes, for node names and property values.
    bytes: &'dt [u8],
    /// The word where the next token starts.
    at: usize,
    /// Nodes open.
    depth: usize,
    /// Tokens read so far, `FDT_NOP` and `FDT_END` included.
    count: usize,
}

impl<'dt> Tokens<'dt> {
    /// The tokens of `structure`, a tree's structure block.
    ///
    /// # Errors
    /// [`DtbError::Malformed`] if the block is not 4-byte aligned in memory
    /// (its offset in the blob is checked by [`blocks`]; the boot protocol
    /// puts the blob itself on an 8-byte boundary).
    pub fn new(structure: &'dt [u8]) -> Result<Self, DtbError> {
        // A last partial word holds no token.
        let bytes = &structure[..structure.len() / 4 * 4];
        let words = bytemuck::try_cast_slice(bytes).map_err(|_| DtbError::Malformed)?;
        Ok(Tokens {
            words,
            bytes,
            at: 0,
            depth: 0,
            count: 0,
        })
    }

    /// Nodes open after the last token read: 1 inside the root's own
    /// properties, 2 inside a child of the root's.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Tokens read so far, each `FDT_NOP` and the `FDT_END` included.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The big-endian word `at` words into the block.
    fn word(&self, at: usize) -> Result<u32, DtbError> {
        self.words.get(at).map(|&w| u32::from_be(w)).ok_or(DtbError::Malformed)
    }

    /// The next token; `None` at `FDT_END`.
    ///
    /// # Errors
    /// [`DtbError::Malformed`] for a token that runs past the block, a
    /// token value the format does not have, a property or end of node
    /// outside every node, or `FDT_END` with nodes still open;
    /// [`DtbError::TooDeep`] for a node nested deeper than [`MAX_DEPTH`].
    pub fn next_token(&mut self) -> Result<Option<Token<'dt>>, DtbError> {
        loop {
            let token = self.word(self.at)?;
            self.count += 1;
            let after = self.at + 1;
            match token {
                FDT_NOP => self.at = after,
                FDT_BEGIN_NODE => {
                    if self.depth == MAX_DEPTH {
                        return Err(DtbError::TooDeep);
                    }
                    // The name and its NUL fill whole words: look for the
                    // NUL a word at a time.
                    let len = self.words[after..]
                        .iter()
                        .enumerate()
                        .find_map(|(i, word)| Some(4 * i + word.to_ne_bytes().iter().position(|&b| b == 0)?))
                        .ok_or(DtbError::Malformed)?;
                    let name = &self.bytes[4 * after..4 * after + len];
                    self.at = after + len / 4 + 1;
                    self.depth += 1;
                    return Ok(Some(Token::Begin(name)));
                }
                FDT_PROP => {
                    if self.depth == 0 {
                        return Err(DtbError::Malformed);
                    }
                    let (len, name) = (self.word(after)? as usize, self.word(after + 1)?);
                    let start = 4 * (after + 2);
                    let value = self.bytes.get(start..start + len).ok_or(DtbError::Malformed)?;
                    self.at = after + 2 + len.div_ceil(4);
                    return Ok(Some(Token::Prop(name, value)));
                }
                FDT_END_NODE => {
                    self.depth = self.depth.checked_sub(1).ok_or(DtbError::Malformed)?;
                    self.at = after;
                    return Ok(Some(Token::End));
                }
                // A tree whose root is never closed was cut short.
                FDT_END if self.depth == 0 => return Ok(None),
                _ => return Err(DtbError::Malformed),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A structure block of big-endian words (names and values padded by
    /// the caller).
    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    /// `bytes` in 4-byte-aligned storage, as a loader leaves a tree.
    struct Aligned(Vec<u32>, usize);

    impl Aligned {
        fn new(bytes: &[u8]) -> Self {
            let mut words = vec![0u32; bytes.len().div_ceil(4)];
            bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
            Aligned(words, bytes.len())
        }

        fn bytes(&self) -> &[u8] {
            &bytemuck::cast_slice(&self.0)[..self.1]
        }
    }

    /// Every token of `block`, or the first error.
    fn all(block: &[u8]) -> Result<Vec<Token<'_>>, DtbError> {
        let mut tokens = Tokens::new(block)?;
        let mut out = Vec::new();
        while let Some(t) = tokens.next_token()? {
            out.push(t);
        }
        Ok(out)
    }

    /// `/ { a@1 { p = <7>; q = "xyz"; }; }`, with a NOP before `q`.
    fn small() -> Vec<u8> {
        let mut b = words(&[FDT_BEGIN_NODE, 0, FDT_BEGIN_NODE]);
        b.extend_from_slice(b"a@1\0");
        b.extend(words(&[FDT_PROP, 4, 0, 7, FDT_NOP, FDT_PROP, 3, 2]));
        b.extend_from_slice(b"xyz\0");
        b.extend(words(&[FDT_END_NODE, FDT_END_NODE, FDT_END]));
        b
    }

    #[test]
    fn tokens_come_in_order_with_names_and_values() {
        let block = Aligned::new(&small());
        assert_eq!(
            all(block.bytes()),
            Ok(vec![
                Token::Begin(b""),
                Token::Begin(b"a@1"),
                Token::Prop(0, &[0, 0, 0, 7]),
                Token::Prop(2, b"xyz"),
                Token::End,
                Token::End,
            ])
        );
        let mut tokens = Tokens::new(block.bytes()).unwrap();
        while tokens.next_token().unwrap().is_some() {}
        assert_eq!(tokens.count(), 8, "the NOP and the END count");
        assert_eq!(tokens.depth(), 0);
    }

    #[test]
    fn a_value_not_a_multiple_of_four_is_padded_to_the_next_token() {
        // A 5-byte value, then a 1-byte one, then a node named with 4 bytes
        // (its NUL takes a word of its own).
        let mut b = words(&[FDT_BEGIN_NODE, 0, FDT_PROP, 5, 0]);
        b.extend_from_slice(&[1, 2, 3, 4, 5, 0, 0, 0]);
        b.extend(words(&[FDT_PROP, 1, 0]));
        b.extend_from_slice(&[9, 0, 0, 0]);
        b.extend(words(&[FDT_BEGIN_NODE]));
        b.extend_from_slice(b"abcd\0\0\0\0");
        b.extend(words(&[FDT_END_NODE, FDT_END_NODE, FDT_END]));
        let b = Aligned::new(&b);
        assert_eq!(
            all(b.bytes()),
            Ok(vec![
                Token::Begin(b""),
                Token::Prop(0, &[1, 2, 3, 4, 5]),
                Token::Prop(0, &[9]),
                Token::Begin(b"abcd"),
                Token::End,
                Token::End,
            ])
        );
    }

    #[test]
    fn a_tree_cut_anywhere_is_malformed() {
        let block = Aligned::new(&small());
        for len in 0..block.1 {
            assert_eq!(all(&block.bytes()[..len]), Err(DtbError::Malformed), "cut at {len}");
        }
        // A value longer than the block; a name without its NUL.
        let long = words(&[FDT_BEGIN_NODE, 0, FDT_PROP, 0xffff_fff0, 0, FDT_END_NODE, FDT_END]);
        assert_eq!(all(Aligned::new(&long).bytes()), Err(DtbError::Malformed));
        let mut unnamed = words(&[FDT_BEGIN_NODE]);
        unnamed.extend_from_slice(b"abc");
        assert_eq!(all(Aligned::new(&unnamed).bytes()), Err(DtbError::Malformed));
        // Not on a 4-byte boundary in memory.
        let shifted = Aligned::new(&[&[0][..], &small()].concat());
        assert_eq!(all(&shifted.bytes()[1..]).map(|_| ()), Err(DtbError::Malformed));
    }

    #[test]
    fn unknown_tokens_and_broken_nesting_are_malformed() {
        for bad in [0, 5, 8, 10, 0x0100_0000] {
            let b = Aligned::new(&words(&[FDT_BEGIN_NODE, 0, bad, FDT_END_NODE, FDT_END]));
            assert_eq!(all(b.bytes()), Err(DtbError::Malformed), "token {bad:#x}");
        }
        // A property before any node; an END_NODE too many; a node left open.
        let orphan = Aligned::new(&words(&[FDT_PROP, 0, 0, FDT_END]));
        assert_eq!(all(orphan.bytes()), Err(DtbError::Malformed));
        let extra_end = Aligned::new(&words(&[FDT_BEGIN_NODE, 0, FDT_END_NODE, FDT_END_NODE, FDT_END]));
        assert_eq!(all(extra_end.bytes()), Err(DtbError::Malformed));
        let open = Aligned::new(&words(&[FDT_BEGIN_NODE, 0, FDT_BEGIN_NODE, 0, FDT_END_NODE, FDT_END]));
        assert_eq!(all(open.bytes()), Err(DtbError::Malformed));
    }

    #[test]
    fn nesting_deeper_than_max_depth_is_too_deep() {
        let nested = |levels: usize| {
            let mut w = vec![];
            for _ in 0..levels {
                w.extend([FDT_BEGIN_NODE, 0]);
            }
            w.extend(std::iter::repeat_n(FDT_END_NODE, levels));
            w.push(FDT_END);
            words(&w)
        };
        let (deepest, deeper) = (Aligned::new(&nested(MAX_DEPTH)), Aligned::new(&nested(MAX_DEPTH + 1)));
        assert_eq!(all(deepest.bytes()).map(|t| t.len()), Ok(2 * MAX_DEPTH));
        assert_eq!(all(deeper.bytes()), Err(DtbError::TooDeep));
    }

    /// A header for a blob of `total` bytes: the structure block at 40
    /// (`structure` bytes), strings at `strings_at` (`strings` bytes), the
    /// reservation list at `rsv`.
    fn header(total: u32, structure: u32, strings_at: u32, strings: u32, rsv: u32) -> Vec<u8> {
        let mut b = words(&[0xd00d_feed, total, 40, strings_at, rsv, 17, 16, 0, strings, structure]);
        b.resize(total as usize, 0);
        b
    }

    #[test]
    fn blocks_are_bounded_by_the_header() {
        let good = header(64, 8, 48, 16, 40);
        let aligned = Aligned::new(&good);
        let b = blocks(aligned.bytes()).unwrap();
        assert_eq!((b.structure.len(), b.strings.len(), b.memreserve.len()), (8, 16, 24));
        // Past the blob, empty, off a word boundary.
        for bad in [
            header(64, 32, 48, 16, 40),
            header(64, 8, 48, 17, 40),
            header(64, 0, 48, 16, 40),
            header(64, 8, 48, 0, 40),
            header(64, 8, 48, 16, 42),
            header(64, 8, 48, 16, 64),
        ] {
            let bad = Aligned::new(&bad);
            assert_eq!(
                blocks(bad.bytes()).map(|_| ()),
                Err(DtbError::Malformed),
                "{:?}",
                bad.bytes()
            );
        }
        let mut v15 = good.clone();
        v15[20..24].copy_from_slice(&15u32.to_be_bytes());
        assert_eq!(
            blocks(Aligned::new(&v15).bytes()).map(|_| ()),
            Err(DtbError::BadVersion(15))
        );
        // The blob itself off a 4-byte boundary.
        let shifted = Aligned::new(&[&[0][..], &good].concat());
        assert_eq!(blocks(&shifted.bytes()[1..]).map(|_| ()), Err(DtbError::Malformed));
    }

    #[test]
    fn a_string_offset_outside_the_strings_block_is_malformed() {
        let mut blob = header(64, 8, 48, 16, 40);
        blob[48..56].copy_from_slice(b"reg\0abcd");
        blob[56..64].copy_from_slice(b"efghijkl");
        let blob = Aligned::new(&blob);
        let b = blocks(blob.bytes()).unwrap();
        assert_eq!(b.name(0), Ok(&b"reg"[..]));
        assert_eq!(b.name(3), Ok(&b""[..]));
        // Runs to the block's end without a NUL; starts past it.
        assert_eq!(b.name(4), Err(DtbError::Malformed));
        assert_eq!(b.name(17), Err(DtbError::Malformed));
        assert_eq!(b.name(u32::MAX), Err(DtbError::Malformed));
    }
}
