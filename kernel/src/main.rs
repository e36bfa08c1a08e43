//! The kernel binary: the Linux arm64 Image header, and the library linked in.
//!
//! Built on the host (by `cargo test`), this file is an empty program: the
//! kernel only runs on `aarch64-unknown-none`, built by the top-level build.rs.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    // Pulls in the library, which holds the whole kernel.
    use kernel as _;
    // The EFI stub, which the PE header's entry point names.
    use efistub as _;

    // The 64-byte header from Documentation/arch/arm64/booting.rst, which is
    // at the same time the start of a PE/COFF image (an EFI application), as
    // Linux's is. One file, two doors: a boot-protocol loader jumps to the
    // first word; UEFI firmware reads `MZ`, follows the offset at 0x3c to the
    // PE header right after, and calls the EFI stub (kernel/efistub) at
    // AddressOfEntryPoint. `MZ` is the low half of `ccmp x18, #0, #0xd, pl`,
    // which only changes the flags, so the boot-protocol door still works.
    //
    // PE layout (file offset = RVA, so the file is its own memory image):
    // headers in the first page (the linker script pads `.head.text` to
    // one), `.text` from there to `__text_end`, `.data` the rest up to
    // `_end` (bss, pool and stack are its zero-filled tail). SectionAlignment
    // is the kernel's page size, so the firmware's placement keeps every
    // segment page-aligned. No base relocations: the stub is
    // position-independent and moves the image before it runs it.
    core::arch::global_asm!(
        r#"
        .section .head.text, "ax"
        .global _head
    _head:
        .long   0xfa405a4d          // code0: "MZ", ccmp x18, #0, #0xd, pl
        b       __pi_primary_entry  // code1: branch to the early code
        .quad   0                   // text_offset: load anywhere (2 MiB + 0)
        .quad   __image_size        // image_size: up to _end, bss included
        .quad   {flags}             // flags
        .quad   0                   // res2
        .quad   0                   // res3
        .quad   0                   // res4
        .ascii  "ARM\x64"           // magic
        .long   .Lpe_header - _head // res5: offset of the PE header

    .Lpe_header:
        .ascii  "PE\0\0"
        .short  0xaa64              // Machine: IMAGE_FILE_MACHINE_ARM64
        .short  2                   // NumberOfSections
        .long   0                   // TimeDateStamp
        .long   0                   // PointerToSymbolTable
        .long   0                   // NumberOfSymbols
        .short  .Lsection_table - .Loptional_header // SizeOfOptionalHeader
        .short  0x0206              // EXECUTABLE_IMAGE | LINE_NUMS_STRIPPED | DEBUG_STRIPPED
    .Loptional_header:
        .short  0x020b              // PE32+
        .byte   0, 0                // linker version
        .long   __pe_text_size      // SizeOfCode
        .long   __pe_data_size      // SizeOfInitializedData
        .long   0                   // SizeOfUninitializedData
        .long   __efistub_pe_entry - _head // AddressOfEntryPoint
        .long   __pe_head_size      // BaseOfCode
        .quad   0                   // ImageBase
        .long   {page_size}         // SectionAlignment
        .long   {file_align}        // FileAlignment
        .short  0, 0                // OS version
        .short  0, 1                // image version
        .short  0, 0                // subsystem version
        .long   0                   // Win32VersionValue
        .long   __image_size        // SizeOfImage
        .long   __pe_head_size      // SizeOfHeaders
        .long   0                   // CheckSum
        .short  10                  // Subsystem: EFI application
        .short  0x0100              // DllCharacteristics: NX_COMPAT
        .quad   0, 0, 0, 0          // stack and heap reserve and commit
        .long   0                   // LoaderFlags
        .long   6                   // NumberOfRvaAndSizes
        .quad   0, 0, 0, 0, 0, 0    // export .. base relocation tables: none
    .Lsection_table:
        .ascii  ".text\0\0\0"
        .long   __pe_text_size      // VirtualSize
        .long   __pe_head_size      // VirtualAddress
        .long   __pe_text_size      // SizeOfRawData
        .long   __pe_head_size      // PointerToRawData
        .long   0, 0                // relocations, line numbers
        .short  0, 0
        .long   0x60000020          // CODE | EXECUTE | READ
        .ascii  ".data\0\0\0"
        .long   __pe_data_size      // VirtualSize: up to _end
        .long   __pe_data_start     // VirtualAddress
        .long   __pe_data_rawsize   // SizeOfRawData: up to the file's end
        .long   __pe_data_start     // PointerToRawData
        .long   0, 0
        .short  0, 0
        .long   0xc0000040          // INITIALIZED_DATA | READ | WRITE
        "#,
        flags = const FLAGS,
        page_size = const pi::layout::PAGE_SIZE,
        file_align = const PE_FILE_ALIGNMENT,
    );

    /// PE/COFF FileAlignment: the linker script pads the file's end to it
    /// (`.pe_padding`), so every section's raw size is a multiple of it.
    const PE_FILE_ALIGNMENT: u64 = 512;

    /// Image flags: bit 0 = 0 little-endian; bits 1-2 the page size (1 = 4 KiB,
    /// 2 = 16 KiB, 3 = 64 KiB); bit 3 = 1 the image may be placed anywhere in
    /// RAM (not just near the start).
    const FLAGS: u64 = (pi::layout::GRANULE.image_flag() << 1) | (1 << 3);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("splitmap-kernel runs only on aarch64-unknown-none: use `cargo run` at the top of the repository");
}
