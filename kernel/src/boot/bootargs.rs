//! The kernel command line (`/chosen/bootargs`): `key=value` and bare flags,
//! separated by spaces. Unknown keys are reported, not fatal; a malformed value
//! is rejected with its key named and ignored (what the key held before stays:
//! the default, or an earlier word's value).

use core::fmt;

use crate::console::escape::Escaped;

use log::LevelFilter;

/// Settings taken from the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootArgs<'a> {
    /// `loglevel=`: `off`, `error`, `warn`, `info`, `debug`, `trace` or 0-5.
    pub loglevel: LevelFilter,
    /// `nokaslr`: keep the image at its link address.
    pub nokaslr: bool,
    /// `kaslr.seed=`: the KASLR seed, ahead of every other source.
    pub kaslr_seed: Option<u64>,
    /// `kaslr.window=0xSTART-0xEND`, checked by `kaslr::window_from_args`.
    pub kaslr_window: Option<&'a str>,
    /// `kaslr.align=4K|64K|2M`, checked likewise.
    pub kaslr_align: Option<&'a str>,
    /// `kaslr.linear=on`: randomise the linear map's base too (an experiment,
    /// off by default; Linux did this until v6.16).
    pub kaslr_linear: bool,
    /// `rodata=full`: make the linear alias of text and rodata read-only too,
    /// splitting the linear-map block that covers it (Linux's name; `on` and
    /// `off` keep the alias writable, the default).
    pub rodata_full: bool,
    /// `module.region=far`: load modules at the far end of the module region,
    /// out of `bl` reach of the kernel, so calls go through PLT veneers
    /// (`near`, the default, keeps them in reach).
    pub module_far: bool,
    /// `module.watchdog=MS`: how long a call into module code may run
    /// before it is ended as a contained fault (0: never; needs a GIC).
    pub module_watchdog_ms: u64,
    /// `maxcpus=N`: bring up at most N CPUs, the boot CPU included (1 to
    /// `percpu::MAX_CPUS`; all the device tree lists by default).
    pub maxcpus: Option<usize>,
}

/// `module.watchdog=`'s default, in milliseconds.
pub const DEFAULT_WATCHDOG_MS: u64 = 2000;
/// The longest `module.watchdog=` accepted: an hour.
pub const MAX_WATCHDOG_MS: u64 = 3_600_000;

impl BootArgs<'_> {
    /// Every setting at its default, as a command line without words leaves
    /// them; a constant, so a static can start from it.
    pub const DEFAULT: BootArgs<'static> = BootArgs {
        loglevel: LevelFilter::Info,
        nokaslr: false,
        kaslr_seed: None,
        kaslr_window: None,
        kaslr_align: None,
        kaslr_linear: false,
        rodata_full: false,
        module_far: false,
        module_watchdog_ms: DEFAULT_WATCHDOG_MS,
        maxcpus: None,
    };
}

impl Default for BootArgs<'_> {
    fn default() -> Self {
        BootArgs::DEFAULT
    }
}

/// Every setting, as `key=value` words in command-line order (what `bootargs`
/// shows): `loglevel=INFO nokaslr=false kaslr.seed=none …`.
impl fmt::Display for BootArgs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "loglevel={} nokaslr={}", self.loglevel, self.nokaslr)?;
        match self.kaslr_seed {
            Some(seed) => write!(f, " kaslr.seed={seed:#x}")?,
            None => write!(f, " kaslr.seed=none")?,
        }
        write!(
            f,
            " kaslr.window={} kaslr.align={} kaslr.linear={} rodata={} module.region={} module.watchdog={}",
            Escaped(self.kaslr_window.unwrap_or("default")),
            Escaped(self.kaslr_align.unwrap_or("default")),
            if self.kaslr_linear { "on" } else { "off" },
            if self.rodata_full { "full" } else { "on" },
            if self.module_far { "far" } else { "near" },
            self.module_watchdog_ms,
        )?;
        // Only when given: a boot without it reads as it always has.
        match self.maxcpus {
            Some(n) => write!(f, " maxcpus={n}"),
            None => Ok(()),
        }
    }
}

/// A problem with one word of the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootArgIssue<'a> {
    /// A key we do not know (ignored).
    Unknown(&'a str),
    /// A known key with a value we cannot use (ignored).
    BadValue {
        /// The key.
        key: &'a str,
        /// The value given.
        value: &'a str,
    },
}

/// What each key that takes a value accepts. Looked up when an issue is
/// printed, not stored in it: issues found before the KASLR move are printed
/// after it, and must not hold addresses of the image's old mapping.
const EXPECTED: &[(&str, &str)] = &[
    ("loglevel", "off, error, warn, info, debug, trace or 0-5"),
    ("kaslr.seed", "a non-zero 64-bit number (0x…); 0 means no seed"),
    ("kaslr.window", "0xSTART-0xEND"),
    ("kaslr.align", "4K, 64K or 2M"),
    ("kaslr.linear", "on or off"),
    ("rodata", "full, on or off"),
    ("module.region", "near or far"),
    (
        "module.watchdog",
        "milliseconds, 0 to 3600000 (0 turns the watchdog off)",
    ),
    ("maxcpus", "1 to 8 (CPUs brought up, the boot CPU included)"),
];

fn expected(key: &str) -> &'static str {
    EXPECTED
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("another value", |(_, e)| e)
}

impl fmt::Display for BootArgIssue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The words are the command line's text: escaped.
            BootArgIssue::Unknown(word) => write!(f, "unknown boot argument '{}' ignored", Escaped(word)),
            BootArgIssue::BadValue { key, value } => {
                write!(
                    f,
                    "boot argument {}={} rejected: expected {}; ignored",
                    Escaped(key),
                    Escaped(value),
                    expected(key)
                )
            }
        }
    }
}

/// Keys the stage-0 loader owns: accepted silently so they are not reported
/// as unknown.
const LOADER_KEYS: &[&str] = &["splitmap.load", "splitmap.dtb"];

/// Parses `line`, calling `issue` for every word it cannot use.
pub fn parse<'a>(line: &'a str, issue: impl FnMut(BootArgIssue<'a>)) -> BootArgs<'a> {
    let mut args = BootArgs::default();
    parse_into(&mut args, line, issue);
    args
}

/// [`parse`], into `args`, which holds the defaults (boot's `BootInfo` is
/// read in place: returned, the value was copied twice on its way there).
pub fn parse_into<'a>(args: &mut BootArgs<'a>, line: &'a str, mut issue: impl FnMut(BootArgIssue<'a>)) {
    for word in line.split_ascii_whitespace() {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, None),
        };
        match (key, value) {
            ("loglevel", Some(v)) => match parse_level(v) {
                Some(level) => args.loglevel = level,
                None => issue(BootArgIssue::BadValue { key, value: v }),
            },
            ("nokaslr", None) => args.nokaslr = true,
            ("kaslr.seed", Some(v)) => match crate::num::parse_u64(v) {
                // Zero is no seed: say so rather than quietly use another source.
                Some(seed) if seed != 0 => args.kaslr_seed = Some(seed),
                _ => issue(BootArgIssue::BadValue { key, value: v }),
            },
            ("kaslr.window", Some(v)) => args.kaslr_window = Some(v),
            ("kaslr.align", Some(v)) => args.kaslr_align = Some(v),
            ("kaslr.linear", Some("on")) => args.kaslr_linear = true,
            ("kaslr.linear", Some("off")) => args.kaslr_linear = false,
            ("kaslr.linear", Some(v)) => issue(BootArgIssue::BadValue { key, value: v }),
            ("rodata", Some("full")) => args.rodata_full = true,
            ("rodata", Some("on" | "off")) => args.rodata_full = false,
            ("rodata", Some(v)) => issue(BootArgIssue::BadValue { key, value: v }),
            ("module.region", Some("near")) => args.module_far = false,
            ("module.region", Some("far")) => args.module_far = true,
            ("module.region", Some(v)) => issue(BootArgIssue::BadValue { key, value: v }),
            ("module.watchdog", Some(v)) => match v.parse::<u64>() {
                Ok(ms) if ms <= MAX_WATCHDOG_MS => args.module_watchdog_ms = ms,
                _ => issue(BootArgIssue::BadValue { key, value: v }),
            },
            ("maxcpus", Some(v)) => match v.parse::<usize>() {
                Ok(n) if (1..=crate::arch::percpu::MAX_CPUS).contains(&n) => args.maxcpus = Some(n),
                _ => issue(BootArgIssue::BadValue { key, value: v }),
            },
            (_, None) if EXPECTED.iter().any(|(k, _)| *k == key) => issue(BootArgIssue::BadValue { key, value: "" }),
            _ if LOADER_KEYS.contains(&key) => {}
            _ => issue(BootArgIssue::Unknown(word)),
        }
    }
}

fn parse_level(value: &str) -> Option<LevelFilter> {
    const LEVELS: [LevelFilter; 6] = [
        LevelFilter::Off,
        LevelFilter::Error,
        LevelFilter::Warn,
        LevelFilter::Info,
        LevelFilter::Debug,
        LevelFilter::Trace,
    ];
    if let Ok(n) = value.parse::<usize>() {
        return LEVELS.get(n).copied();
    }
    LEVELS.into_iter().find(|l| l.as_str().eq_ignore_ascii_case(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> (BootArgs<'_>, Vec<String>) {
        let mut issues = Vec::new();
        let args = parse(line, |i| issues.push(i.to_string()));
        (args, issues)
    }

    #[test]
    fn the_command_lines_words_are_escaped_where_shown() {
        let (args, issues) = run("fr\x1bob kaslr.window=a\x07b loglevel=\u{e9}");
        assert_eq!(
            issues,
            [
                "unknown boot argument 'fr\\x1bob' ignored",
                "boot argument loglevel=\\xc3\\xa9 rejected: expected off, error, warn, info, debug, trace or 0-5; ignored",
            ]
        );
        assert!(args.to_string().contains(" kaslr.window=a\\x07b "), "{args}");
    }

    #[test]
    fn known_keys() {
        // (command line, loglevel, nokaslr)
        let rows = [
            ("", LevelFilter::Info, false),
            ("loglevel=debug", LevelFilter::Debug, false),
            ("loglevel=TRACE nokaslr", LevelFilter::Trace, true),
            ("  loglevel=2   ", LevelFilter::Warn, false),
            ("loglevel=0", LevelFilter::Off, false),
        ];
        for (line, level, nokaslr) in rows {
            let (args, issues) = run(line);
            assert_eq!((args.loglevel, args.nokaslr), (level, nokaslr), "{line:?}");
            assert!(issues.is_empty(), "{line:?}: {issues:?}");
        }
    }

    #[test]
    fn problems_are_named_and_the_values_ignored() {
        let (args, issues) = run("loglevel=loud frob nokaslr=1 kaslr.align=2M");
        assert_eq!(args.loglevel, LevelFilter::Info);
        assert!(!args.nokaslr);
        assert_eq!(issues.len(), 3, "{issues:?}");
        assert!(issues[0].contains("loglevel=loud rejected"));
        assert!(issues[1].contains("'frob'"));
        assert!(issues[2].contains("'nokaslr=1'"));
        let (_, issues) = run("loglevel=6");
        assert_eq!(issues.len(), 1);
    }

    #[test]
    fn kaslr_keys() {
        let (args, issues) = run("kaslr.seed=0x1234 kaslr.window=0xffff900000000000-0xffff910000000000 kaslr.align=4K");
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(args.kaslr_seed, Some(0x1234));
        assert_eq!(args.kaslr_window, Some("0xffff900000000000-0xffff910000000000"));
        assert_eq!(args.kaslr_align, Some("4K"));
        let (args, issues) = run("kaslr.seed=zz");
        assert_eq!((args.kaslr_seed, issues.len()), (None, 1));
        let (args, issues) = run("kaslr.seed=0x5 kaslr.seed=zz");
        assert_eq!(args.kaslr_seed, Some(0x5), "an earlier value stays");
        assert!(issues[0].ends_with("; ignored"), "not 'default kept': {issues:?}");
        let (args, issues) = run("kaslr.seed=0");
        assert_eq!(args.kaslr_seed, None, "zero is no seed");
        assert!(issues[0].contains("0 means no seed"), "{issues:?}");
        assert!(!args.kaslr_linear, "off by default");
        assert!(run("kaslr.linear=on").0.kaslr_linear);
        let (args, issues) = run("kaslr.linear=on kaslr.linear=maybe");
        assert!(args.kaslr_linear, "a bad value changes nothing");
        assert_eq!(issues.len(), 1);
        assert!(issues[0].contains("kaslr.linear"), "{issues:?}");
    }

    #[test]
    fn every_bad_value_says_what_would_do() {
        for line in [
            "loglevel=x",
            "kaslr.seed=x",
            "kaslr.linear=x",
            "rodata=x",
            "module.region=x",
            "module.watchdog=x",
        ] {
            let (_, issues) = run(line);
            assert_eq!(issues.len(), 1, "{line}");
            assert!(!issues[0].contains("another value"), "{line}: {issues:?}");
        }
    }

    #[test]
    fn a_key_without_its_value_is_named_not_swallowed() {
        for key in EXPECTED.iter().map(|(k, _)| *k) {
            let (args, issues) = run(key);
            assert_eq!(args.to_string(), run("").0.to_string(), "{key}: nothing set");
            assert_eq!(
                issues,
                [format!(
                    "boot argument {key}= rejected: expected {}; ignored",
                    expected(key)
                )]
            );
        }
        // The stage-0 loader's keys are its business.
        assert!(run("splitmap.load splitmap.dtb=0x46000000").1.is_empty());
    }

    #[test]
    fn every_setting_is_shown() {
        let (args, _) = run("");
        assert_eq!(
            args.to_string(),
            "loglevel=INFO nokaslr=false kaslr.seed=none kaslr.window=default kaslr.align=default kaslr.linear=off rodata=on module.region=near module.watchdog=2000"
        );
        let (args, _) =
            run("nokaslr kaslr.seed=0x5 kaslr.align=4K kaslr.linear=on rodata=full module.region=far loglevel=debug");
        assert_eq!(
            args.to_string(),
            "loglevel=DEBUG nokaslr=true kaslr.seed=0x5 kaslr.window=default kaslr.align=4K kaslr.linear=on rodata=full module.region=far module.watchdog=2000"
        );
    }

    #[test]
    fn module_watchdog_takes_milliseconds() {
        assert_eq!(run("").0.module_watchdog_ms, DEFAULT_WATCHDOG_MS);
        assert_eq!(run("module.watchdog=0").0.module_watchdog_ms, 0, "0 is off");
        assert_eq!(run("module.watchdog=150").0.module_watchdog_ms, 150);
        assert_eq!(run("module.watchdog=3600000").0.module_watchdog_ms, MAX_WATCHDOG_MS);
        for bad in ["abc", "-1", "1.5", "0x10", "3600001", "99999999999999999999"] {
            let (args, issues) = run_owned(&format!("module.watchdog=150 module.watchdog={bad}"));
            assert_eq!(args, 150, "{bad}: an earlier value stays");
            assert_eq!(
                issues,
                [format!(
                    "boot argument module.watchdog={bad} rejected: expected milliseconds, 0 to 3600000 (0 turns the watchdog off); ignored"
                )]
            );
        }
    }

    #[test]
    fn maxcpus_takes_one_to_eight_and_shows_only_when_given() {
        assert_eq!(run("").0.maxcpus, None);
        assert!(!run("").0.to_string().contains("maxcpus"));
        assert_eq!(run("maxcpus=2").0.maxcpus, Some(2));
        assert!(run("maxcpus=2").0.to_string().ends_with(" maxcpus=2"));
        for bad in ["0", "9", "two", ""] {
            let line = format!("maxcpus={bad}");
            let (args, issues) = run(&line);
            assert_eq!(args.maxcpus, None, "{bad}");
            assert_eq!(
                issues,
                [format!(
                    "boot argument maxcpus={bad} rejected: expected 1 to 8 (CPUs brought up, the boot CPU included); ignored"
                )]
            );
        }
    }

    fn run_owned(line: &str) -> (u64, Vec<String>) {
        let (args, issues) = run(line);
        (args.module_watchdog_ms, issues)
    }

    #[test]
    fn very_long_lines_are_fine() {
        let line = "x ".repeat(10_000);
        let (_, issues) = run(&line);
        assert_eq!(issues.len(), 10_000);
    }
}
