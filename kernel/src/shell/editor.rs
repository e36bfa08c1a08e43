//! The shell's line editor: bytes from the terminal in, what to echo out,
//! one line at a time. Printable ASCII only, so the parser only ever sees
//! UTF-8. Left and Right move the cursor; Up and Down walk the history; Tab
//! completes command names and the arguments named in `help` (see
//! `complete`); Ctrl-U and Ctrl-W cut what is before the cursor and the word
//! before it, and Ctrl-C drops the line being typed, as in a shell.
//!
//! Not `noline`: its editor starts every line by asking the terminal where
//! the cursor is (`ESC [6n`) and waits for the answer, which a script piping
//! commands into QEMU's serial port never sends; and it swallows the first
//! typed byte that is not that answer.

use super::complete::{self, Completion};

/// Longest command line kept; further characters are refused with a bell.
pub const LINE_MAX: usize = 256;

// Every module name (`module::name`) can be typed: `insmod NAME.ko` fits a line.
const _: () = assert!("insmod ".len() + crate::module::name::NAME_MAX + ".ko".len() <= LINE_MAX);

/// Lines the history keeps (the oldest is dropped first).
pub const HISTORY_MAX: usize = 16;

/// What the terminal should see after one input byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    /// Nothing.
    None,
    /// This byte, typed at the end of the line.
    Byte(u8),
    /// Erase the character left of the cursor, at the end of the line
    /// ("\x08 \x08").
    Erase,
    /// Move the cursor one place left ("\x08") or right (`ESC [C`).
    Left,
    Right,
    /// The line is full or the byte is not allowed: ring the bell.
    Bell,
    /// The line is complete: print a newline, then run [`LineEditor::take_line`].
    Enter,
    /// The line changed beyond the cursor's reach: move left `erase`
    /// places, erase to the end of the line, print [`LineEditor::text`] from
    /// byte `from` (where the cursor then is), and move left `back` places.
    Rewrite {
        erase: usize,
        from: usize,
        back: usize,
    },
    /// Tab found several words: print [`LineEditor::choices`] on a line of
    /// their own, then the prompt and the line again.
    Choices,
    /// Ctrl-C: the line was dropped; print `^C`, a newline and a fresh prompt.
    Cancel,
}

/// A line being typed, and the lines typed before.
pub struct LineEditor {
    line: LineBuf,
    /// Where the next byte goes: `0..=line.len`.
    cursor: usize,
    /// The previous byte was CR, so an LF right after it is the same Enter.
    after_cr: bool,
    /// More was typed than the buffer holds: the line is refused at Enter.
    overflowed: bool,
    /// Inside a terminal escape sequence (an arrow key, say), which is
    /// consumed whole rather than typed as text.
    escape: Escape,
    /// Earlier lines, oldest first; `history[..kept]` are valid.
    history: [LineBuf; HISTORY_MAX],
    kept: usize,
    /// Which history line is shown (0 = the newest), if Up was pressed; the
    /// line being typed before that waits in `draft`, still refused at Enter
    /// if it had overflowed (`draft_overflowed`) when it comes back.
    shown: Option<usize>,
    draft: LineBuf,
    draft_overflowed: bool,
}

/// Where the editor is in an escape sequence: `ESC`, then `[` or `O` and
/// parameter bytes, up to a final byte in `@`..`~`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escape {
    None,
    /// Just after `ESC`.
    Started,
    /// After `ESC [` or `ESC O`: parameters until the final byte.
    Sequence,
}

/// The finished line was longer than the buffer; nothing of it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineTooLong;

impl core::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "line too long (max {LINE_MAX} characters); nothing was run")
    }
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    /// An empty line and no history.
    pub const fn new() -> Self {
        LineEditor {
            line: LineBuf::EMPTY,
            cursor: 0,
            after_cr: false,
            overflowed: false,
            escape: Escape::None,
            history: [LineBuf::EMPTY; HISTORY_MAX],
            kept: 0,
            shown: None,
            draft: LineBuf::EMPTY,
            draft_overflowed: false,
        }
    }

    /// Takes one byte from the terminal.
    pub fn feed(&mut self, byte: u8) -> Echo {
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        if self.escape != Escape::None
            && let Some(echo) = self.in_escape(byte)
        {
            return echo;
        }
        // A printable byte and Enter, the keys every line takes, come first;
        // the rest are out of line (`key`). Through the comparisons for
        // every key, and the frame their state needed, they were 6 more
        // blocks and 6 stack-pair stores QEMU translated at the first line.
        match byte {
            0x20..=0x7e => self.type_byte(byte),
            b'\r' => Echo::Enter,
            _ => self.key(byte, after_cr),
        }
    }

    /// A byte inside an escape sequence: what it did, or `None` if it cut
    /// the sequence short and counts as typed.
    #[inline(never)]
    fn in_escape(&mut self, byte: u8) -> Option<Echo> {
        match (self.escape, byte) {
            (Escape::Started, b'[' | b'O') => {
                self.escape = Escape::Sequence;
                Some(Echo::None)
            }
            (Escape::Sequence, 0x20..=0x3f) => Some(Echo::None),
            // The final byte: the arrow keys, or another key, consumed whole.
            (Escape::Sequence, 0x40..=0x7e) => {
                self.escape = Escape::None;
                Some(match byte {
                    b'A' => self.older(),
                    b'B' => self.newer(),
                    b'C' => self.right(),
                    b'D' => self.left(),
                    _ => Echo::None,
                })
            }
            (Escape::Started, 0x40..=0x7e) => {
                self.escape = Escape::None;
                Some(Echo::None)
            }
            // A sequence cut short.
            _ => {
                self.escape = Escape::None;
                None
            }
        }
    }

    /// A byte that is neither printable nor CR.
    #[inline(never)]
    fn key(&mut self, byte: u8, after_cr: bool) -> Echo {
        match byte {
            b'\n' if after_cr => Echo::None,
            b'\n' => Echo::Enter,
            b'\t' => self.complete(),
            0x03 => self.cancel(),
            0x1b => {
                self.escape = Escape::Started;
                Echo::None
            }
            0x08 | 0x7f if self.cursor == 0 => Echo::None,
            0x08 | 0x7f => self.cut(self.cursor - 1),
            // Ctrl-U: all before the cursor; Ctrl-W: the word before it.
            0x15 => self.cut(0),
            0x17 => {
                let before = &self.text()[..self.cursor];
                self.cut(before.trim_end_matches(' ').trim_end_matches(|c| c != ' ').len())
            }
            // Other control bytes and non-UTF-8 input never reach the parser.
            _ => Echo::Bell,
        }
    }

    /// A printable ASCII byte typed at the cursor.
    fn type_byte(&mut self, byte: u8) -> Echo {
        if !self.line.insert(self.cursor, byte) {
            self.overflowed = true;
            return Echo::Bell;
        }
        self.cursor += 1;
        match self.line.len - self.cursor {
            0 => Echo::Byte(byte),
            back => Echo::Rewrite {
                erase: 0,
                from: self.cursor - 1,
                back,
            },
        }
    }

    /// The line as typed so far.
    pub fn text(&self) -> &str {
        self.line.as_str()
    }

    /// The words Tab could complete the line with.
    pub fn choices(&self) -> impl Iterator<Item = &'static str> + '_ {
        complete::choices(self.text())
    }

    /// The completed line, or [`LineTooLong`] if more was typed than fits;
    /// the editor is empty again afterwards, and the line is in the history.
    ///
    /// # Errors
    /// [`LineTooLong`]: running what fits would run a different command.
    pub fn take_line(&mut self) -> Result<LineBuf, LineTooLong> {
        self.cursor = 0;
        self.escape = Escape::None;
        self.shown = None;
        let overflowed = core::mem::take(&mut self.overflowed);
        if !overflowed {
            self.remember();
        }
        let line = self.line;
        // Emptied by its length alone: no byte past it is ever read (and a
        // whole `LineBuf::EMPTY` put in its place was a copy and a fill of
        // the buffer QEMU translated at the first Enter).
        self.line.len = 0;
        if overflowed { Err(LineTooLong) } else { Ok(line) }
    }

    /// Ctrl-C: drops the line being typed (not kept in the history), and a
    /// history line shown in its place; the next line starts empty.
    fn cancel(&mut self) -> Echo {
        self.line = LineBuf::EMPTY;
        self.cursor = 0;
        self.overflowed = false;
        self.shown = None;
        Echo::Cancel
    }

    /// Keeps the line unless it is blank or repeats the newest one.
    fn remember(&mut self) {
        let line = &self.line;
        let newest = self.kept.checked_sub(1).map(|i| self.history[i].bytes());
        if line.is_blank() || newest == Some(line.bytes()) {
            return;
        }
        if self.kept == HISTORY_MAX {
            self.history.rotate_left(1);
            self.kept -= 1;
        }
        self.history[self.kept] = self.line;
        self.kept += 1;
    }

    /// Up: the line before the one shown.
    fn older(&mut self) -> Echo {
        let next = self.shown.map_or(0, |i| i + 1);
        if next >= self.kept {
            return Echo::Bell;
        }
        if self.shown.is_none() {
            self.draft = self.line;
            self.draft_overflowed = self.overflowed;
        }
        self.show(Some(next))
    }

    /// Down: the line after the one shown, and after the newest, the draft.
    fn newer(&mut self) -> Echo {
        match self.shown {
            None => Echo::Bell,
            Some(0) => self.show(None),
            Some(i) => self.show(Some(i - 1)),
        }
    }

    fn show(&mut self, shown: Option<usize>) -> Echo {
        let erase = self.cursor;
        self.shown = shown;
        (self.line, self.overflowed) = match shown {
            Some(i) => (self.history[self.kept - 1 - i], false),
            None => (self.draft, self.draft_overflowed),
        };
        self.cursor = self.line.len;
        Echo::Rewrite {
            erase,
            from: 0,
            back: 0,
        }
    }

    fn left(&mut self) -> Echo {
        if self.cursor == 0 {
            return Echo::Bell;
        }
        self.cursor -= 1;
        Echo::Left
    }

    fn right(&mut self) -> Echo {
        if self.cursor == self.line.len {
            return Echo::Bell;
        }
        self.cursor += 1;
        Echo::Right
    }

    /// Cuts the line from byte `from` to the cursor. An emptied line is a
    /// fresh one, overflowed or not before.
    fn cut(&mut self, from: usize) -> Echo {
        let erase = self.cursor - from;
        self.line.remove(from..self.cursor);
        self.cursor = from;
        self.overflowed &= self.line.len > 0;
        match (erase, self.line.len - from) {
            (0, _) => Echo::Bell,
            (1, 0) => Echo::Erase,
            (erase, back) => Echo::Rewrite { erase, from, back },
        }
    }

    fn complete(&mut self) -> Echo {
        // Only a word being typed at the end of the line is completed.
        if self.cursor != self.line.len {
            return Echo::Bell;
        }
        let from = self.line.len;
        match complete::complete(self.text()) {
            Completion::Nothing => Echo::Bell,
            Completion::Choices => Echo::Choices,
            Completion::Extend { text, word_done } => {
                let space: &[u8] = if word_done { b" " } else { b"" };
                if self.line.push(text.as_bytes()) && self.line.push(space) {
                    self.cursor = self.line.len;
                    Echo::Rewrite {
                        erase: 0,
                        from,
                        back: 0,
                    }
                } else {
                    self.line.len = from;
                    Echo::Bell
                }
            }
        }
    }
}

/// A line of at most [`LINE_MAX`] printable ASCII bytes.
#[derive(Clone, Copy)]
pub struct LineBuf {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl LineBuf {
    const EMPTY: LineBuf = LineBuf {
        buf: [0; LINE_MAX],
        len: 0,
    };

    /// The text (printable ASCII by construction).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.bytes()).unwrap_or("")
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Whether there is nothing but spaces: the only blank a line of
    /// printable ASCII can hold. (Not `as_str().trim()`: `str`'s Unicode
    /// whitespace search was 13 blocks QEMU translated at the first Enter.)
    fn is_blank(&self) -> bool {
        self.bytes().iter().all(|&b| b == b' ')
    }

    /// Appends `bytes` if they fit; whether they did.
    fn push(&mut self, bytes: &[u8]) -> bool {
        let Some(room) = self.buf.get_mut(self.len..self.len + bytes.len()) else {
            return false;
        };
        room.copy_from_slice(bytes);
        self.len += bytes.len();
        true
    }

    /// Puts `byte` in at `at` (at most `len`), if it fits; whether it did.
    fn insert(&mut self, at: usize, byte: u8) -> bool {
        if self.len == LINE_MAX {
            return false;
        }
        // Typed at the end, as most bytes are, nothing moves (and QEMU
        // translates no `copy_within` for it).
        if at < self.len {
            self.buf.copy_within(at..self.len, at + 1);
        }
        self.buf[at] = byte;
        self.len += 1;
        true
    }

    /// Takes the bytes in `range` out.
    fn remove(&mut self, range: core::ops::Range<usize>) {
        self.buf.copy_within(range.end..self.len, range.start);
        self.len -= range.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_bytes(bytes: &[u8]) -> (Vec<String>, Vec<Echo>) {
        let mut ed = LineEditor::new();
        let mut lines = Vec::new();
        let mut echoes = Vec::new();
        for &b in bytes {
            let e = ed.feed(b);
            if e == Echo::Enter {
                lines.push(match ed.take_line() {
                    Ok(line) => line.as_str().to_string(),
                    Err(e) => e.to_string(),
                });
            }
            echoes.push(e);
        }
        (lines, echoes)
    }

    #[test]
    fn line_editing() {
        // (bytes typed, lines completed)
        let rows: &[(&[u8], &[&str])] = &[
            (b"help\r", &["help"]),
            (b"help\n", &["help"]),
            (b"help\r\nmem\r\n", &["help", "mem"]),
            (b"\r\r", &["", ""]),
            (b"hellp\x7f\x7fp\r", &["help"]),
            (b"\x08\x08x\r", &["x"]),
            // Arrow keys and other escape sequences are consumed whole.
            (b"a\x1b[Ab\r", &["ab"]),
            (b"a\x1bOAb\r", &["ab"]),
            (b"x\x1b[1;5Cy\r", &["xy"]),
            // An escape cut short by a printable byte: the byte is typed.
            (b"\x1b1\r", &["1"]),
            (b"a\xff\xc3\xa9b\r", &["ab"]),
        ];
        for (bytes, lines) in rows {
            assert_eq!(type_bytes(bytes).0, *lines, "{bytes:?}");
        }
    }

    /// A terminal's line after the prompt: what it shows, and where its
    /// cursor is. Printing overwrites and moves right, as on a terminal.
    #[derive(Default)]
    struct Screen {
        text: Vec<u8>,
        at: usize,
    }

    impl Screen {
        fn print(&mut self, bytes: &[u8]) {
            for &b in bytes {
                match self.text.get_mut(self.at) {
                    Some(cell) => *cell = b,
                    None => self.text.push(b),
                }
                self.at += 1;
            }
        }

        /// Shows `echo` as the shell's loop prints it (commands.rs, `run`).
        fn show(&mut self, echo: Echo, ed: &LineEditor) {
            match echo {
                Echo::Byte(b) => self.print(&[b]),
                // "\x08 \x08" at the end of the line: the blank is nothing.
                Echo::Erase => {
                    self.at -= 1;
                    self.text.truncate(self.at);
                }
                Echo::Left => self.at -= 1,
                Echo::Right => self.at += 1,
                Echo::Rewrite { erase, from, back } => {
                    self.at -= erase;
                    assert_eq!(self.at, from, "the rewrite starts where the cursor is");
                    self.text.truncate(self.at); // ESC [K
                    self.print(&ed.text().as_bytes()[from..]);
                    self.at -= back;
                }
                // The prompt and the whole line are printed again.
                Echo::Choices => {
                    *self = Screen::default();
                    self.print(ed.text().as_bytes());
                }
                Echo::Enter | Echo::Cancel => *self = Screen::default(),
                Echo::None | Echo::Bell => {}
            }
        }
    }

    /// Types `bytes`; the lines run, and checks after each byte that the
    /// terminal shows exactly the editor's line, its cursor where the
    /// editor's is.
    fn type_on_screen(ed: &mut LineEditor, bytes: &[u8]) -> Vec<String> {
        let mut screen = Screen::default();
        screen.print(ed.text().as_bytes());
        screen.at = ed.cursor;
        let mut lines = Vec::new();
        for &b in bytes {
            let echo = ed.feed(b);
            if echo == Echo::Enter {
                lines.push(ed.take_line().map(|l| l.as_str().to_string()).unwrap_or_default());
            }
            screen.show(echo, ed);
            assert_eq!(screen.text, ed.text().as_bytes(), "after {b:#x} in {bytes:?}");
            assert_eq!(screen.at, ed.cursor, "after {b:#x} in {bytes:?}");
        }
        lines
    }

    const UP: &[u8] = b"\x1b[A";
    const DOWN: &[u8] = b"\x1b[B";
    const RIGHT: &[u8] = b"\x1b[C";
    const LEFT: &[u8] = b"\x1b[D";

    #[test]
    fn left_and_right_move_the_cursor_and_typing_goes_there() {
        let mut ed = LineEditor::new();
        let typed = [b"wlk 0x1".as_slice(), LEFT, LEFT, LEFT, LEFT, LEFT, LEFT, b"a\r"].concat();
        assert_eq!(type_on_screen(&mut ed, &typed), ["walk 0x1"], "inserted");
        let typed = [b"helpp walk".as_slice(), &LEFT.repeat(5), b"\x7f\r"].concat();
        assert_eq!(
            type_on_screen(&mut ed, &typed),
            ["help walk"],
            "deleted before the cursor"
        );
        let typed = [b"x 0 bogus".as_slice(), &LEFT.repeat(6), b"\x15mem", RIGHT, b"\r"].concat();
        assert_eq!(
            type_on_screen(&mut ed, &typed),
            ["mem bogus"],
            "Ctrl-U cuts only before it"
        );
        let typed = [b"walk 0x1 0x2".as_slice(), &LEFT.repeat(4), b"\x17\r"].concat();
        assert_eq!(
            type_on_screen(&mut ed, &typed),
            ["walk  0x2"],
            "Ctrl-W the word before it"
        );
        // At either end the cursor goes no further, and Tab completes only at the end.
        let typed = [LEFT, b"me".as_slice(), RIGHT, LEFT, LEFT, b"\t", RIGHT, RIGHT, b"\t\r"].concat();
        assert_eq!(type_on_screen(&mut ed, &typed), ["mem "]);
        assert_eq!(ed.feed(LEFT[0]), Echo::None);
        assert_eq!((ed.feed(LEFT[1]), ed.feed(LEFT[2])), (Echo::None, Echo::Bell));
        // Up then Down brings the draft back with the cursor at its end.
        let mut ed = LineEditor::new();
        let typed = [b"mem\rwalk 0x".as_slice(), LEFT, LEFT, UP, DOWN, b"1\r"].concat();
        assert_eq!(type_on_screen(&mut ed, &typed), ["mem", "walk 0x1"]);
    }

    #[test]
    fn up_and_down_walk_the_history_and_come_back_to_the_draft() {
        let mut ed = LineEditor::new();
        type_on_screen(&mut ed, b"mem\rkaslr\r\r  \rkaslr\r");
        let typed = [UP, UP, b"\r"].concat();
        assert_eq!(
            type_on_screen(&mut ed, &typed),
            ["mem"],
            "blank and repeated lines are not kept"
        );
        let typed = [b"wa", UP, UP, UP, UP, DOWN, DOWN, DOWN, b"lk\r"].concat();
        assert_eq!(type_on_screen(&mut ed, &typed), ["walk"], "the draft comes back");
        let typed = [UP, b" 0x1\r", UP, b"\x7f2\r"].concat();
        assert_eq!(
            type_on_screen(&mut ed, &typed),
            ["walk 0x1", "walk 0x2"],
            "a recalled line can be edited"
        );
        assert_eq!(ed.feed(DOWN[0]), Echo::None);
        assert_eq!(
            (ed.feed(DOWN[1]), ed.feed(DOWN[2])),
            (Echo::None, Echo::Bell),
            "nothing newer"
        );
    }

    #[test]
    fn the_history_keeps_the_newest_lines() {
        let mut ed = LineEditor::new();
        for i in 0..HISTORY_MAX + 5 {
            type_on_screen(&mut ed, format!("peek {i}\r").as_bytes());
        }
        let all_the_way_up = [UP.repeat(HISTORY_MAX + 3), b"\r".to_vec()].concat();
        assert_eq!(type_on_screen(&mut ed, &all_the_way_up), ["peek 5"]);
    }

    #[test]
    fn tab_completes_in_place() {
        let mut ed = LineEditor::new();
        assert_eq!(type_on_screen(&mut ed, b"lay\t\r"), ["layout "]);
        assert_eq!(type_on_screen(&mut ed, b"crash wr\ta\t\r"), ["crash write-alias "]);
        assert_eq!(type_on_screen(&mut ed, b"zz\t\x7f\x7f\r"), [""]);
        type_on_screen(&mut ed, b"p");
        assert_eq!(ed.feed(b'\t'), Echo::Choices);
        assert_eq!(
            ed.choices().collect::<Vec<_>>(),
            ["phases", "peek", "pa2va", "ptdump", "poweroff"]
        );
        // A completion that would not fit rings the bell and changes nothing.
        let mut ed = LineEditor::new();
        let long = [b"help".to_vec(), vec![b' '; LINE_MAX - 7], b"wa".to_vec()].concat();
        type_on_screen(&mut ed, &long);
        assert_eq!(ed.feed(b'\t'), Echo::Bell, "`lk ` does not fit");
        assert_eq!(ed.text().len(), LINE_MAX - 1);
    }

    #[test]
    fn ctrl_u_cuts_the_line_and_ctrl_w_the_last_word() {
        let mut ed = LineEditor::new();
        assert_eq!(
            type_on_screen(&mut ed, b"frob nicate\x15walk 0x1  \x17\x17help walk\r"),
            ["help walk"]
        );
        assert_eq!(ed.feed(0x17), Echo::Bell, "nothing to cut");
        assert_eq!(type_on_screen(&mut ed, b"x 0 \x17\x17\x17mem\r"), ["mem"]);
        // A line cut to nothing is fresh again, even after overflowing.
        let overlong = [vec![b'a'; LINE_MAX + 1], b"\x15mem\r".to_vec()].concat();
        assert_eq!(type_bytes(&overlong).0, ["mem"]);
        let erased = [vec![b'a'; LINE_MAX + 1], vec![0x7f; LINE_MAX], b"\x15mem\r".to_vec()].concat();
        assert_eq!(type_bytes(&erased).0, ["mem"], "backspaced to nothing, then Ctrl-U");
        let erased = [vec![b'a'; LINE_MAX + 1], vec![0x7f; LINE_MAX], b"mem\r".to_vec()].concat();
        assert_eq!(type_bytes(&erased).0, ["mem"], "backspaced to nothing");
    }

    #[test]
    fn ctrl_c_drops_the_line_being_typed() {
        let mut ed = LineEditor::new();
        assert_eq!(type_on_screen(&mut ed, b"crash null\x03mem\r"), ["mem"]);
        type_on_screen(&mut ed, b"walk 0x1");
        assert_eq!(ed.feed(0x03), Echo::Cancel, "a shell prints ^C and a new prompt");
        assert_eq!((ed.text(), ed.cursor), ("", 0));
        // Not in the history: Up brings back the line run before it.
        let typed = [b"kaslr\x03".as_slice(), UP, b"\r"].concat();
        assert_eq!(type_on_screen(&mut ed, &typed), ["mem"]);
        // A recalled line, dropped, leaves an empty one (the draft too).
        let typed = [b"x 0".as_slice(), UP, b"\x03\r"].concat();
        assert_eq!(type_on_screen(&mut ed, &typed), [""]);
        // An overlong line dropped is not refused later, and Ctrl-C mid-escape
        // ends the escape.
        let bytes = [vec![b'a'; LINE_MAX + 1], b"\x03mem\r\x1b[\x03help\r".to_vec()].concat();
        assert_eq!(type_bytes(&bytes).0, ["mem", "help"]);
    }

    #[test]
    fn overlong_lines_ring_the_bell_and_are_refused_whole() {
        let mut bytes = vec![b'a'; LINE_MAX + 10];
        bytes.extend(b"\rhelp\r");
        let (lines, echoes) = type_bytes(&bytes);
        assert_eq!(lines[0], LineTooLong.to_string());
        assert_eq!(echoes.iter().filter(|e| **e == Echo::Bell).count(), 10);
        assert_eq!(lines[1], "help", "the next line is fine again");
        let exactly = [vec![b'a'; LINE_MAX], b"\r".to_vec()].concat();
        assert_eq!(type_bytes(&exactly).0[0].len(), LINE_MAX, "a full line is not too long");
        // Up and Down bring an overlong draft back refused, as it was; a
        // line recalled instead of it is fine.
        let overlong = [b"mem\rhelp walk".to_vec(), vec![b' '; LINE_MAX], b"x 0 bogus".to_vec()].concat();
        let (lines, _) = type_bytes(&[overlong.as_slice(), UP, DOWN, b"\r"].concat());
        assert_eq!(lines[1], LineTooLong.to_string(), "{lines:?}");
        let (lines, _) = type_bytes(&[overlong.as_slice(), UP, b"\r"].concat());
        assert_eq!(lines[1], "mem", "{lines:?}");
    }
}
