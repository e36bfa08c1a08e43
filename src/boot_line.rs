//! The kernel's boot line, `splitmap: image pa=0x… va=0x… kaslr=0x…
//! (SOURCE)` (a contract: DESIGN's kernel console), as the tool's commands
//! read it.

/// Where the image ran in one boot, from the kernel's boot line
/// (`splitmap: image pa=0x… va=0x… kaslr=…`): its first byte's physical
/// address and the virtual address it runs at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub pa: u64,
    pub va: u64,
}

/// The placement the boot line in `output` states, if there is one.
pub fn placement(output: &str) -> Option<Placement> {
    let line = output
        .lines()
        .map(|l| l.trim_start_matches('\r'))
        .find(|l| l.starts_with("splitmap: image pa="))?;
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
    };
    Some(Placement {
        pa: field("pa=")?,
        va: field("va=")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_line_gives_where_the_image_ran() {
        let at = placement("x\r\n\rsplitmap: image pa=0x40200000 va=0xffff800080000000 kaslr=0x0 (disabled)\r\n");
        assert_eq!(
            at,
            Some(Placement {
                pa: 0x4020_0000,
                va: 0xffff_8000_8000_0000
            })
        );
        assert_eq!(placement("no boot line"), None);
    }
}
