//! `--uefi --firmware u-boot`: U-Boot's own UEFI (`bootefi`) starts the
//! Image. U-Boot runs an EFI application only from a file it loaded itself
//! (`load` remembers the device and path `bootefi` needs; an image QEMU's
//! loader put in RAM is refused), so the tool gives it a disk: a directory
//! QEMU presents as a FAT-formatted virtio disk (`-drive file=fat:DIR`),
//! holding the Image, the initrd and `boot.scr`, the script U-Boot's
//! distro boot runs from the first partition it finds one on.
//!
//! U-Boot's UEFI has no LoadFile2 for the initrd, so the script names it on
//! the command line (`initrd=initrd`) and the stub reads the file from the
//! volume the Image came from; without a virtio RNG (`--no-rng`) it has no
//! EFI_RNG_PROTOCOL either, and the stub says it falls back.

use std::path::{Path, PathBuf};

/// U-Boot for QEMU's arm64 `virt`, from Debian's `u-boot-qemu`
/// (scripts/setup.sh installs it).
pub const FIRMWARE: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";

/// The firmware file, or why there is none.
///
/// # Errors
/// What to install.
pub fn firmware() -> Result<PathBuf, String> {
    let path = PathBuf::from(FIRMWARE);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "--firmware u-boot needs U-Boot at {FIRMWARE}: run scripts/setup.sh (it installs u-boot-qemu)"
        ))
    }
}

/// The script: the command line as `bootargs` (which `bootefi` hands the
/// image as its load options), the Image loaded from the disk, and
/// `bootefi` with U-Boot's own device tree (QEMU's). Should `bootefi`
/// return, U-Boot powers off rather than wait at its prompt.
///
/// # Errors
/// A command line U-Boot's shell would not pass on as written: single
/// quotes delimit it, so it cannot hold one, nor a line break.
pub fn boot_script(cmdline: &str, initrd: bool) -> Result<String, String> {
    if cmdline.contains(['\'', '\n', '\r']) {
        return Err(format!(
            "--firmware u-boot: the command line goes into U-Boot's script in single quotes, so it cannot hold a quote or a line break: {cmdline:?}"
        ));
    }
    let mut args = cmdline.to_string();
    if initrd {
        // The stub reads this file when the firmware offers no LoadFile2.
        if !args.is_empty() {
            args.push(' ');
        }
        args.push_str("initrd=initrd");
    }
    Ok(format!(
        "setenv bootargs '{args}'\n\
         load virtio 0:1 ${{kernel_addr_r}} Image\n\
         bootefi ${{kernel_addr_r}} ${{fdtcontroladdr}}\n\
         echo u-boot: bootefi returned\n\
         poweroff\n"
    ))
}

/// CRC-32 (IEEE 802.3, reflected), as U-Boot's image headers use it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// `script` as U-Boot's `source` reads it: a legacy image (`mkimage -T
/// script`): a 64-byte big-endian header (magic, header CRC, time, size,
/// load, entry, data CRC, OS, architecture, type, compression, name), then
/// the data as a multi-file image of one file: its length, a zero, the text.
pub fn script_image(script: &str) -> Vec<u8> {
    const MAGIC: u32 = 0x2705_1956;
    const OS_LINUX: u8 = 5;
    const ARCH_ARM64: u8 = 22;
    const TYPE_SCRIPT: u8 = 6;
    let mut data = Vec::new();
    data.extend_from_slice(&(script.len() as u32).to_be_bytes());
    data.extend_from_slice(&0u32.to_be_bytes());
    data.extend_from_slice(script.as_bytes());
    let mut header = Vec::with_capacity(64);
    header.extend_from_slice(&MAGIC.to_be_bytes());
    header.extend_from_slice(&0u32.to_be_bytes()); // header CRC, below
    header.extend_from_slice(&0u32.to_be_bytes()); // time
    header.extend_from_slice(&(data.len() as u32).to_be_bytes());
    header.extend_from_slice(&0u32.to_be_bytes()); // load
    header.extend_from_slice(&0u32.to_be_bytes()); // entry
    header.extend_from_slice(&crc32(&data).to_be_bytes());
    header.extend_from_slice(&[OS_LINUX, ARCH_ARM64, TYPE_SCRIPT, 0]);
    let mut name = [0u8; 32];
    let text = b"splitmap bootefi";
    name[..text.len()].copy_from_slice(text);
    header.extend_from_slice(&name);
    let hcrc = crc32(&header);
    header[4..8].copy_from_slice(&hcrc.to_be_bytes());
    header.extend_from_slice(&data);
    header
}

/// Writes the disk's directory under `root`: `Image`, `initrd` (if any) and
/// `boot.scr`. Its name comes from what it holds apart from the files'
/// bytes (the command line and the files' paths), so parallel runs alike
/// share one and different ones never meet; each file is written beside
/// and renamed into place, so a QEMU reading the directory sees whole files.
///
/// # Errors
/// The command line's refusal, or what the file system said.
pub fn write_disk(root: &Path, image: &Path, initrd: Option<&Path>, cmdline: &str) -> Result<PathBuf, String> {
    use std::hash::{Hash, Hasher};
    let script = script_image(&boot_script(cmdline, initrd.is_some())?);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (cmdline, image, initrd).hash(&mut h);
    let dir = root.join(format!("{:016x}", h.finish()));
    let io = |e: std::io::Error| format!("cannot write U-Boot's disk in {}: {e}", dir.display());
    std::fs::create_dir_all(&dir).map_err(io)?;
    let put = |name: &str, bytes: &[u8]| -> Result<(), String> {
        let tmp = dir.join(format!(".{name}.{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, dir.join(name)).map_err(io)
    };
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    put("Image", &read(image)?)?;
    if let Some(initrd) = initrd {
        put("initrd", &read(initrd)?)?;
    }
    put("boot.scr", &script)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_ieee() {
        // The standard check value.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn script_image_is_a_legacy_script_image() {
        let text = "echo hi\n";
        let img = script_image(text);
        let be = |o: usize| u32::from_be_bytes(img[o..o + 4].try_into().unwrap());
        assert_eq!(be(0), 0x2705_1956);
        let mut header = img[..64].to_vec();
        header[4..8].fill(0);
        assert_eq!(be(4), crc32(&header), "header CRC over the header with it zeroed");
        assert_eq!(be(12) as usize, img.len() - 64);
        assert_eq!(be(24), crc32(&img[64..]));
        assert_eq!(&img[28..32], &[5, 22, 6, 0]);
        assert_eq!(be(64) as usize, text.len());
        assert_eq!(be(68), 0, "one file");
        assert_eq!(&img[72..], text.as_bytes());
    }

    #[test]
    fn the_script_passes_the_command_line_and_names_the_initrd() {
        let s = boot_script("nokaslr loglevel=debug", true).unwrap();
        assert!(s.starts_with("setenv bootargs 'nokaslr loglevel=debug initrd=initrd'\n"));
        assert!(s.contains("load virtio 0:1 ${kernel_addr_r} Image\n"));
        assert!(s.contains("bootefi ${kernel_addr_r} ${fdtcontroladdr}\n"));
        assert!(boot_script("", false).unwrap().starts_with("setenv bootargs ''\n"));
        assert!(boot_script("a'b", false).unwrap_err().contains("cannot hold a quote"));
    }
}
