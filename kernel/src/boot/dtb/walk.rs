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

use super::{DtbError, MAX_DEPTH};

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

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
    // `totalsize` is at least the header's ten words, read as words: one
    // load each, no bounds checks (five inlined byte reads were a dozen
    // translated blocks). Misaligned, the blob is refused here.
    let header: &[u32; 10] = bytemuck::try_from_bytes(&blob[..40]).map_err(|_| DtbError::Malformed)?;
    let word = |at: usize| u32::from_be(header[at / 4]) as usize;
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
        // A plain scan: names are a dozen bytes, too short for `memchr`'s
        // word-at-a-time search (`CStr::from_bytes_until_nul`) to pay for
        // its setup.
        let len = rest.iter().position(|&b| b == 0).ok_or(DtbError::Malformed)?;
        Ok(&rest[..len])
    }
}

/// What [`walk`] hands its caller, token by token (`FDT_NOP` skipped,
/// `FDT_END` ending the walk), the nesting already checked: no property or
/// `FDT_END_NODE` outside a node, no more than [`MAX_DEPTH`] nodes open, none
/// left open at `FDT_END`.
///
/// Calls rather than an iterator of tokens: a loop over an iterator
/// matches each token twice, once to read it and once to act on it, and
/// measured under `--icount` the boot's walk cost a third more that way
/// (the compiler did not merge the two, inlined or not).
pub trait Visit<'dt> {
    /// What stops the walk: a malformed tree ([`DtbError`]) or the caller's
    /// own reason.
    type Error: From<DtbError>;

    /// A node opens: its name, unit address included (empty for the
    /// root); `depth` nodes are open, this one included.
    ///
    /// # Errors
    /// The caller's, which ends the walk.
    fn begin(&mut self, depth: usize, name: &'dt [u8]) -> Result<(), Self::Error>;

    /// A property of the innermost of the `depth` open nodes: its name's
    /// offset in the strings block ([`Blocks::name`]) and its value.
    ///
    /// # Errors
    /// The caller's, which ends the walk.
    fn prop(&mut self, depth: usize, name: u32, value: &'dt [u8]) -> Result<(), Self::Error>;

    /// The innermost open node closes; `depth` nodes are still open.
    ///
    /// # Errors
    /// The caller's, which ends the walk.
    fn end(&mut self, depth: usize) -> Result<(), Self::Error>;
}

/// Walks the structure block `structure`, handing each token to `visit`;
/// the tokens read, each `FDT_NOP` and the `FDT_END` included.
///
/// # Errors
/// What `visit` returns, or [`DtbError::Malformed`] for a block not 4-byte
/// aligned in memory (its offset in the blob is checked by [`blocks`]; the
/// boot protocol puts the blob itself on an 8-byte boundary), a token that
/// runs past the block, a token value the format does not have, a property
/// or end of node outside every node, or `FDT_END` with nodes still open;
/// [`DtbError::TooDeep`] for a node nested deeper than [`MAX_DEPTH`].
pub fn walk<'dt, V: Visit<'dt>>(structure: &'dt [u8], visit: &mut V) -> Result<usize, V::Error> {
    // A last partial word holds no token. The block is read as words for
    // tokens and property headers, one load each (the kernel is built for
    // strict alignment, where a word read from bytes is four loads), and as
    // bytes for node names and property values.
    let bytes = &structure[..structure.len() / 4 * 4];
    let words: &[u32] = bytemuck::try_cast_slice(bytes).map_err(|_| DtbError::Malformed)?;
    let word = |at: usize| words.get(at).map(|&w| u32::from_be(w)).ok_or(DtbError::Malformed);
    // The word after the token being read; nodes open; tokens read.
    let (mut at, mut depth, mut count) = (0, 0, 0);
    loop {
        let token = word(at)?;
        at += 1;
        count += 1;
        match token {
            FDT_PROP => {
                if depth == 0 {
                    return Err(DtbError::Malformed.into());
                }
                // The header's two words in one bounds check, the value in
                // another.
                let &[len, name]: &[u32; 2] = words
                    .get(at..at + 2)
                    .and_then(|header| header.try_into().ok())
                    .ok_or(DtbError::Malformed)?;
                let (len, name) = (u32::from_be(len) as usize, u32::from_be(name));
                let start = 4 * (at + 2);
                let value = bytes.get(start..start + len).ok_or(DtbError::Malformed)?;
                at += 2 + len.div_ceil(4);
                visit.prop(depth, name, value)?;
            }
            FDT_BEGIN_NODE => {
                if depth == MAX_DEPTH {
                    return Err(DtbError::TooDeep.into());
                }
                // The name and its NUL fill whole words: look for the NUL a
                // word at a time, in one test a word (a byte is 0 where
                // taking 1 from it borrows and its top bit was clear; the
                // lowest such byte is the first 0, as bytes above a 0 may
                // look like one). Byte by byte, the four bytes' tests were
                // a dozen translated blocks more.
                let mut end = at;
                let len = loop {
                    // The first byte in memory lowest.
                    let w = u32::from_le(*words.get(end).ok_or(DtbError::Malformed)?);
                    let zeros = w.wrapping_sub(0x0101_0101) & !w & 0x8080_8080;
                    if zeros != 0 {
                        break 4 * (end - at) + zeros.trailing_zeros() as usize / 8;
                    }
                    end += 1;
                };
                let name = &bytes[4 * at..4 * at + len];
                at += len / 4 + 1;
                depth += 1;
                visit.begin(depth, name)?;
            }
            FDT_END_NODE => {
                depth = depth.checked_sub(1).ok_or(DtbError::Malformed)?;
                visit.end(depth)?;
            }
            FDT_NOP => {}
            // A tree whose root is never closed was cut short.
            FDT_END if depth == 0 => return Ok(count),
            _ => return Err(DtbError::Malformed.into()),
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

    /// One token, as the walk handed it over (with the depth it gave).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Token<'dt> {
        Begin(&'dt [u8]),
        Prop(u32, &'dt [u8]),
        End,
    }

    /// Collects the tokens, checking the depth the walk hands over.
    #[derive(Default)]
    struct All<'dt> {
        tokens: Vec<Token<'dt>>,
        depth: usize,
    }

    impl<'dt> Visit<'dt> for All<'dt> {
        type Error = DtbError;

        fn begin(&mut self, depth: usize, name: &'dt [u8]) -> Result<(), DtbError> {
            self.depth += 1;
            assert_eq!(depth, self.depth);
            self.tokens.push(Token::Begin(name));
            Ok(())
        }

        fn prop(&mut self, depth: usize, name: u32, value: &'dt [u8]) -> Result<(), DtbError> {
            assert_eq!(depth, self.depth);
            self.tokens.push(Token::Prop(name, value));
            Ok(())
        }

        fn end(&mut self, depth: usize) -> Result<(), DtbError> {
            self.depth -= 1;
            assert_eq!(depth, self.depth);
            self.tokens.push(Token::End);
            Ok(())
        }
    }

    /// Every token of `block`, or the first error.
    fn all(block: &[u8]) -> Result<Vec<Token<'_>>, DtbError> {
        let mut all = All::default();
        walk(block, &mut all)?;
        Ok(all.tokens)
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
        let mut all = All::default();
        assert_eq!(walk(block.bytes(), &mut all), Ok(8), "the NOP and the END count");
        assert_eq!(all.depth, 0);
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
