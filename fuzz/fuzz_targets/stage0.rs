//! The stage-0 loader's inputs: any command line (`splitmap.load=`,
//! `splitmap.dtb=`), RAM ranges, things in memory and a raw tree's header.
//! Never a panic, and every placement it accepts is inside RAM, aligned, and
//! clear of everything in use.
#![no_main]

use kernel::mm::ranges::{PhysRange, RangeList};
use libfuzzer_sys::fuzz_target;
use stage0::placement::{self, Busy, Request};

fuzz_target!(|input: (&str, Vec<(u64, u64)>, Vec<(u64, u64)>, u64, u64, [u8; 8])| {
    let (bootargs, ram, busy, size, seed, header) = input;
    let mut list = RangeList::new();
    for (start, len) in ram {
        if let Some(r) = PhysRange::new(start, len) {
            let _ = list.insert(r);
        }
    }
    let busy: Vec<Busy> = busy
        .into_iter()
        .filter_map(|(start, len)| PhysRange::new(start, len))
        .map(|range| Busy { range, what: "busy" })
        .collect();
    let size = size % (64 << 20);
    // An Image of any granule.
    let page = [4 << 10, 16 << 10, 64 << 10][(seed % 3) as usize];
    let placed = match placement::parse_request(bootargs) {
        Ok(Some(Request::At(pa))) => placement::check(pa, size, page, &list, &busy).map(|()| pa),
        Ok(Some(Request::Random)) => placement::random_slot(seed, size, page, &list, &busy),
        Ok(None) | Err(_) => return,
    };
    if let Ok(pa) = placed {
        let image = PhysRange::new(pa, size).expect("an accepted image does not wrap");
        assert!(pa % page == 0);
        assert!(size == 0 || list.covers(image), "{image:?} outside RAM");
        assert!(busy.iter().all(|b| b.range.end <= image.start || image.end <= b.range.start));
    }
    if let Ok(Some(raw)) = placement::parse_raw_dtb(bootargs) {
        let _ = placement::check_raw_dtb(raw, &list, || header);
    }
});
