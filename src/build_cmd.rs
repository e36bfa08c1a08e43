//! `splitmap build`: the paths of a granule's artifacts, built if need be.

use splitmap::qemu::Artifacts;

use crate::BuildArgs;

/// `splitmap build`.
pub fn build(args: &BuildArgs) -> Result<(), String> {
    let artifacts = Artifacts::for_granule(&args.granule)?;
    println!("image: {}", artifacts.image.display());
    println!("elf: {}", artifacts.elf.display());
    println!("initrd: {}", artifacts.initrd.display());
    println!("boot: {}", artifacts.boot.display());
    Ok(())
}
