//! Device trees, malformed every way: parse must return Ok or an error, never
//! panic. Two inputs per run: the raw bytes as a blob, and the bytes as edits
//! (offset, value pairs) to a valid QEMU-like tree, which reaches the deep
//! parsing code that random bytes never get past the magic number to.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vm_fdt::FdtWriter;

fn base_tree() -> &'static [u8] {
    static TREE: OnceLock<Vec<u8>> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let chosen = w.begin_node("chosen").unwrap();
        w.property_string("bootargs", "loglevel=debug kaslr.seed=0x5").unwrap();
        w.property_string("stdout-path", "/pl011@9000000").unwrap();
        w.property_u64("kaslr-seed", 0x1234).unwrap();
        w.property_u64("linux,initrd-start", 0x4800_0000).unwrap();
        w.property_u64("linux,initrd-end", 0x4810_0000).unwrap();
        w.end_node(chosen).unwrap();
        let memory = w.begin_node("memory@40000000").unwrap();
        w.property_string("device_type", "memory").unwrap();
        w.property_array_u64("reg", &[0x4000_0000, 0x4000_0000]).unwrap();
        w.end_node(memory).unwrap();
        let rm = w.begin_node("reserved-memory").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let area = w.begin_node("area@50000000").unwrap();
        w.property_array_u64("reg", &[0x5000_0000, 0x1000]).unwrap();
        w.end_node(area).unwrap();
        w.end_node(rm).unwrap();
        let uart = w.begin_node("pl011@9000000").unwrap();
        w.property_string("compatible", "arm,pl011").unwrap();
        w.property_array_u64("reg", &[0x900_0000, 0x1000]).unwrap();
        w.end_node(uart).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    })
}

fn parse(bytes: &[u8]) {
    // The reader wants a 4-byte aligned buffer, as the kernel's DTB window is.
    let mut words = vec![0u32; bytes.len().div_ceil(4)];
    for (i, b) in bytes.iter().enumerate() {
        words[i / 4] |= u32::from(*b) << (8 * (i % 4));
    }
    // SAFETY: reinterpreting initialised u32s as bytes, within the vector.
    let blob = unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), bytes.len()) };
    if let Ok(info) = kernel::boot::dtb::parse(blob) {
        // Whatever was found is consistent: sorted, disjoint RAM ranges.
        let ranges: Vec<_> = info.memory.iter().collect();
        assert!(ranges.windows(2).all(|w| w[0].end < w[1].start));
        let _ = info.problems.iter().flatten().map(|p| p.to_string()).count();
    }
}

fuzz_target!(|data: &[u8]| {
    parse(data);
    let mut tree = base_tree().to_vec();
    for edit in data.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([edit[0], edit[1]])) % tree.len();
        tree[at] = edit[2];
    }
    parse(&tree);
});
